"""The defences every local HTTP endpoint shares (httpserve), over real sockets on loopback with the
health endpoint as the application: the Host check against DNS rebinding, the read deadline, the
connection cap, accept() running out of file descriptors, and clients that reset."""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from azfed_helper._internal import httphandler, httpserve, logs
from azfed_helper._internal.options import DEFAULT_AUDIENCE
from azfed_helper._internal.sidecar import health
from azfed_helper._internal.sidecar.loop import HealthState

from .conftest import REPO, make_jwt


@pytest.mark.parametrize(
    ("host", "loopback_only", "allowed"),
    [
        ("127.0.0.1:50342", True, True),
        ("127.0.0.1", True, True),
        ("127.9.9.9:80", True, True),
        ("localhost:50342", True, True),
        ("LocalHost", True, True),
        ("[::1]:50342", True, True),
        ("[::1]", True, True),
        ("[::ffff:127.0.0.1]:80", True, True),
        # DNS rebinding: a page at http://evil.example:50342/ whose name now resolves to us.
        ("evil.example:50342", True, False),
        ("evil.example", True, False),
        ("127.0.0.1.nip.io:50342", True, False),
        ("localhost.evil.example", True, False),
        ("sub.localhost", True, False),
        ("10.0.0.5:50342", True, False),  # not us: we listen on loopback only
        ("169.254.169.254", True, False),  # only where the endpoint allows it (IMDS path)
        # Malformed values.
        ("", True, False),
        ("::1", True, False),  # IPv6 needs brackets
        ("[::1", True, False),
        ("[127.0.0.1]:80", True, False),
        ("127.0.0.1:", True, False),
        ("127.0.0.1:http", True, False),
        ("127.0.0.1:\uff18\uff10", True, False),  # full-width digits
        ("127.0.0.1 evil", True, False),
        # Listening on another address (--allow-remote, --health-addr 0.0.0.0:P): any IP literal
        # (a kubelet probe sends the pod IP), still never a DNS name.
        ("10.0.0.5:8080", False, True),
        ("[fd00::5]:8080", False, True),
        ("evil.example:8080", False, False),
    ],
)
def test_host_allowed(host: str, loopback_only: bool, allowed: bool) -> None:
    assert httphandler.host_allowed(host, loopback_only) is allowed


def test_extra_hosts() -> None:
    assert httphandler.host_allowed("169.254.169.254", True, ("169.254.169.254",))
    assert httphandler.host_allowed("169.254.169.254:80", True, ("169.254.169.254",))


@pytest.fixture
def checks(tmp_path: Path) -> health.Checks:
    path = tmp_path / "token"
    now = int(time.time())
    path.write_text(make_jwt(iat=now, exp=now + 3600))
    state = HealthState()
    state.update(running=True, expect_by=time.time() + 600)
    return health.Checks(state, str(path), DEFAULT_AUDIENCE, 600, issuer=None)


def started(
    checks: health.Checks, read_timeout: float = 10.0, max_connections: int = 64
) -> health.HealthServer:
    limits = httpserve.Limits(read_timeout, max_connections)
    server = health.HealthServer(("127.0.0.1", 0), checks, limits)
    server.start()
    return server


@pytest.fixture
def server(checks: health.Checks) -> Iterator[health.HealthServer]:
    running = health.HealthServer(("127.0.0.1", 0), checks)
    running.start()
    yield running
    running.stop()


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` as is and read the whole answer (the server closes after one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_rebinding_hosts_get_403_and_loopback_names_200(server: health.HealthServer) -> None:
    port = server.address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/livez", headers={"Host": host})
        assert connection.getresponse().status == 200
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/livez", headers={"Host": f"evil.example:{port}"})
    response = connection.getresponse()
    body = response.read().decode()
    assert response.status == 403
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "Host 'evil.example:" in body and "DNS rebinding" in body
    connection.close()
    # HTTP/1.0 without Host: every client we know sends one, so none is refused like a bad one.
    answer = raw_request(port, b"GET /livez HTTP/1.0\r\n\r\n")
    assert status_of(answer) == 403 and b"no Host header" in answer
    two = b"GET /livez HTTP/1.0\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
    answer = raw_request(port, two)
    assert status_of(answer) == 403 and b"2 Host headers" in answer


def test_ipv6_loopback_with_brackets(checks: health.Checks) -> None:
    server = health.HealthServer(("::1", 0), checks)
    server.start()
    try:
        connection = http.client.HTTPConnection("::1", server.address[1], timeout=10)
        connection.request("GET", "/readyz")  # http.client sends Host: [::1]:PORT
        assert connection.getresponse().status == 200
        connection.close()
    finally:
        server.stop()


def eof_within(sock: socket.socket, timeout: float) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), False if it is still open."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_a_slow_request_is_cut_at_the_deadline(checks: health.Checks) -> None:
    """Slowloris: a byte every 0.1 s keeps any per-read timeout happy; the deadline is for the
    whole request head."""
    server = started(checks, read_timeout=1.0)
    try:
        port = server.address[1]
        begun = time.monotonic()
        slow = connect(port)
        slow.sendall(b"GET /livez HTTP/1.0\r\n")
        idle = connect(port)
        closed_at = None
        for char in b"X-Padding: " + b"a" * 200:  # 20 s at most
            if eof_within(slow, 0.1):
                closed_at = time.monotonic() - begun
                break
            try:
                slow.send(bytes([char]))
            except OSError:
                closed_at = time.monotonic() - begun
                break
        assert closed_at is not None, "the trickling client was never cut off"
        assert closed_at >= 1.0
        assert eof_within(idle, 10)  # the silent one too
        # A request sent in time is answered, however many were cut off.
        assert (
            status_of(raw_request(port, b"GET /livez HTTP/1.0\r\nHost: localhost\r\n\r\n")) == 200
        )
        slow.close()
        idle.close()
    finally:
        server.stop()


def test_idle_connections_give_way_to_new_ones(checks: health.Checks) -> None:
    """Over the cap, the oldest connection still sending gives way: idle ones cannot lock a real
    client out, and the server holds at most the cap."""
    server = started(checks, max_connections=4, read_timeout=60)
    try:
        port = server.address[1]
        idle = [connect(port) for _ in range(10)]
        request = b"GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        assert status_of(raw_request(port, request)) == 200  # at once, not after 60 s
        # Accepted in order: the 6 oldest made room for the next 6, the 7th for the request.
        assert [eof_within(sock, 10) for sock in idle[:7]] == [True] * 7
        assert [eof_within(sock, 0.2) for sock in idle[7:]] == [False] * 3
        for sock in idle:
            sock.close()
        assert status_of(raw_request(port, request)) == 200
    finally:
        server.stop()


def test_reset_and_garbage_cost_no_traceback(
    server: health.HealthServer, capfd: pytest.CaptureFixture[str]
) -> None:
    port = server.address[1]
    for data in (b"GET /livez HTTP/1.0\r\nHost: 127.0.0.1\r\n", b"\x16\x03\x01\x02\x00\x01\x00"):
        sock = connect(port)
        sock.sendall(data)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # RST
    assert status_of(raw_request(port, b"GET /livez HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")) == 200
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception occurred" not in captured.err


HARNESS = """
import os, resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1])))
from azfed_helper._internal import httpserve, logs
from azfed_helper._internal.sidecar import health
from azfed_helper._internal.sidecar.loop import HealthState
logs.setup("json")
state = HealthState()
state.update(running=True, expect_by=time.time() + 3600)
checks = health.Checks(state, os.devnull, "api://AzureADTokenExchange", 600, issuer=None)
limits = httpserve.Limits(read_timeout=120, max_connections=1000)
server = health.HealthServer(("127.0.0.1", 0), checks, limits)
server.start()
print(server.address[1], flush=True)
sys.stdin.read()
server.stop()
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_running_out_of_descriptors_pauses_instead_of_spinning() -> None:
    """With a cap above ``ulimit -n``, accept() fails with EMFILE: the server waits instead of
    retrying in a loop, warns once, and answers again as soon as descriptors are free."""
    idle: list[socket.socket] = []
    with subprocess.Popen(
        [sys.executable, "-c", HARNESS, "64"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None and child.stdin is not None
            port = int(child.stdout.readline())
            for _ in range(100):  # more than the server has descriptors for
                idle.append(connect(port))
            before, begun = cpu_seconds(child.pid), time.monotonic()
            time.sleep(2)
            used, elapsed = cpu_seconds(child.pid) - before, time.monotonic() - begun
            assert used < 0.1 * elapsed, f"{used:.2f} s of CPU in {elapsed:.2f} s"
            for sock in idle:
                sock.close()
            request = b"GET /livez HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
            assert status_of(raw_request(port, request, timeout=30)) == 200
            _, err = child.communicate("", timeout=10)
            assert child.returncode == 0
        finally:
            for sock in idle:
                sock.close()
            child.kill()
    warnings = [json.loads(line) for line in err.splitlines() if '"http_accept"' in line]
    assert len(warnings) == 1 and "Too many open files" in warnings[0]["message"]


def test_request_lines_are_logged_escaped(
    server: health.HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    logs.setup("human", verbosity=1, stream=stream)
    port = server.address[1]
    for line, status in (
        (b"GET /\x1b[2J\x1b[31mFAKE HTTP/1.0", 404),
        (b"GET /\x1b[2J\rFAKE\x85 2026-01-01 HTTP/1.0", 400),
    ):
        assert status_of(raw_request(port, line + b"\r\nHost: 127.0.0.1\r\n\r\n")) == status
    server.stop()  # the answering thread has logged by the time the answer is complete
    output = stream.getvalue()
    assert "FAKE" in output
    assert output.count("\n") == len(output.splitlines())
    assert all(char.isprintable() for char in output.replace("\n", ""))
