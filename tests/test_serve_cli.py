"""``azfed-helper serve`` and ``env --for managed-identity`` as processes: the env file, signals,
refusals at start-up, and that the secret never reaches the log."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import httpserve
from azfed_helper._internal.identity import envfile as mi_env

from .conftest import cli_env, refusing_port, run_cli


class Serve:
    """A running ``serve`` child, its env file, and its log lines as they come."""

    def __init__(
        self, env: dict[str, str], env_file: Path, *args: str, open_files: int | None = None
    ) -> None:
        self.env_file = env_file
        argv = ["serve", "--port", "0", "--env-file", str(env_file), *args]
        self.child = subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", *argv],
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if open_files is not None:  # ulimit -n, set before the server opens anything much
            resource.prlimit(self.child.pid, resource.RLIMIT_NOFILE, (open_files, open_files))
        self.lines: list[str] = []
        self._arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if self.child.poll() is not None or time.monotonic() > deadline:
                self.child.kill()
                raise AssertionError(f"serve did not start: {self.stop()[2]}")
            time.sleep(0.02)

    def _read(self) -> None:
        assert self.child.stderr is not None
        for line in self.child.stderr:
            with self._arrived:
                self.lines.append(line)
                self._arrived.notify_all()

    def wait_line(self, text: str, timeout: float = 20) -> str:
        """The first log line containing ``text``; fails if serve exits or is silent too long."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [line for line in self.lines if text in line]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                assert left > 0 and self._reader.is_alive(), f"no {text!r} in {self.lines}"
                self._arrived.wait(min(left, 0.5))

    def variables(self) -> dict[str, str]:
        return mi_env.read_env_file(str(self.env_file))

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM (unless it has ended), then its exit status, stdout and stderr."""
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
        self.child.wait(timeout=30)
        self._reader.join(10)
        out = ""
        if self.child.stdout is not None and not self.child.stdout.closed:
            out = self.child.stdout.read()
        with self.child:  # closes the pipes
            pass
        return self.child.returncode, out, "".join(self.lines)


@pytest.fixture
def base_env(emulator: Any, tmp_path: Path) -> dict[str, str]:
    return {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def serve(base_env: dict[str, str], tmp_path: Path) -> Iterator[Serve]:
    running = Serve(base_env, tmp_path / "mi.env")
    yield running
    running.stop()


def test_env_file_is_private_and_env_prints_it(serve: Serve, base_env: dict[str, str]) -> None:
    assert serve.env_file.stat().st_mode & 0o777 == 0o600
    shown = run_cli("env", "--for", "managed-identity", "--env-file", str(serve.env_file))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("export IDENTITY_ENDPOINT=http://127.0.0.1:")
    assert lines[0].endswith("/msi/token")
    assert lines[1].startswith("export IDENTITY_HEADER=")
    assert lines[2].startswith("export NO_PROXY=")
    assert lines[3] == "unset IDENTITY_SERVER_THUMBPRINT"
    as_json = run_cli(
        "env", "--for", "managed-identity", "--env-file", str(serve.env_file), "--format", "json"
    )
    variables = json.loads(as_json.stdout)
    assert set(variables) == {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "NO_PROXY"}
    assert set(variables["NO_PROXY"].split(",")) == {"127.0.0.1", "localhost", "::1", "[::1]"}
    request = urllib.request.Request(
        variables["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://vault.azure.net",
        headers={"X-IDENTITY-HEADER": variables["IDENTITY_HEADER"]},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["resource"] == "https://vault.azure.net"
    code, _out, err = serve.stop()
    assert code == 0
    assert variables["IDENTITY_HEADER"] not in err  # the secret is never logged
    assert "managed-identity endpoint on http://127.0.0.1:" in err
    assert not serve.env_file.exists()  # removed on a clean stop
    gone = run_cli("env", "--for", "managed-identity", "--env-file", str(serve.env_file))
    assert gone.returncode == 2 and "no managed-identity endpoint file" in gone.stderr


def test_default_env_file_lives_in_the_cache_dir(base_env: dict[str, str], tmp_path: Path) -> None:
    env_file = tmp_path / "cache" / "identity-endpoint.env"
    child = subprocess.Popen(
        [sys.executable, "-m", "azfed_helper", "serve", "--port", "0", "--print-env"],
        env=cli_env(base_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        printed = [child.stdout.readline() for _ in range(4)]
        assert printed[0].startswith("export IDENTITY_ENDPOINT=")
        shown = run_cli("env", "--for", "managed-identity", env=base_env)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == [line.rstrip("\n") for line in printed]
        assert env_file.exists()
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=30)
    assert child.returncode == 0
    assert not env_file.exists()


def test_env_refuses_a_file_whose_server_is_gone(tmp_path: Path) -> None:
    port = refusing_port()
    stale = tmp_path / "stale.env"
    stale.write_text(
        f"export IDENTITY_ENDPOINT=http://127.0.0.1:{port}/msi/token\nexport IDENTITY_HEADER=x\n"
    )
    shown = run_cli("env", "--for", "managed-identity", "--env-file", str(stale))
    assert shown.returncode == 1
    assert "no managed-identity endpoint is listening" in shown.stderr


def test_secret_file_is_used(base_env: dict[str, str], tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("my-fixed-secret-123\n")
    secret_file.chmod(0o600)
    running = Serve(base_env, tmp_path / "mi.env", "--secret-file", str(secret_file))
    try:
        assert "export IDENTITY_HEADER=my-fixed-secret-123" in running.env_file.read_text()
    finally:
        code, _out, err = running.stop()
    assert code == 0 and "my-fixed-secret-123" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bind", "0.0.0.0"), "refusing to serve managed-identity tokens on non-loopback"),
        (("--secret-file", "/nonexistent/secret"), "cannot read --secret-file"),
    ],
)
def test_refusals_at_start(base_env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    done = run_cli("serve", "--port", "0", *args, env=base_env)
    assert done.returncode == 2
    assert message in done.stderr


def test_busy_port_is_a_usage_error(base_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = run_cli("serve", "--port", port, env=base_env)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port 0" in done.stderr


def test_missing_app_configuration_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("serve", "--port", "0", env={"AZFED_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 2
    assert "AZURE_TENANT_ID is not set" in done.stderr
    assert not (tmp_path / "cache").exists()  # nothing written


def token_status(variables: dict[str, str], timeout: float = 30, **headers: str) -> int | str:
    """The HTTP status of a token request with the handed-out variables, or why none came."""
    request = urllib.request.Request(
        variables["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://vault.azure.net",
        headers={"X-IDENTITY-HEADER": variables["IDENTITY_HEADER"], **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return repr(exc)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_idle_connections_neither_stop_nor_spin_the_server(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    """Issue 10's figure: 300 idle connections against `serve` under ulimit -n 256 made it stop
    answering and spin on EMFILE. Now a real request is answered within the read deadline plus a
    second, the process stays under 10% of a core meanwhile, and it is fine once they close."""
    running = Serve(base_env, tmp_path / "mi.env", open_files=256)
    idle: list[socket.socket] = []
    try:
        variables = running.variables()
        assert token_status(variables) == 200  # the token is in memory from here on
        port = int(variables["IDENTITY_ENDPOINT"].split(":")[2].split("/")[0])
        for _ in range(300):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except TimeoutError:
                break  # no longer accepting at all (the listen backlog is full)
        # Answered after the server has taken in every connection before it (in order).
        assert token_status(variables, timeout=httpserve.READ_TIMEOUT + 1) == 200
        before, begun = cpu_seconds(running.child.pid), time.monotonic()
        time.sleep(2)  # with the idle connections still open (the server holds at most 64)
        used, elapsed = cpu_seconds(running.child.pid) - before, time.monotonic() - begun
        assert used < 0.1 * elapsed, f"{used:.2f} s of CPU in {elapsed:.2f} s"
        for sock in idle:
            sock.close()
        idle.clear()
        assert token_status(variables, timeout=5) == 200
    finally:
        for sock in idle:
            sock.close()
        code, _out, err = running.stop()
    assert code == 0 and "Traceback" not in err


def test_sighup_rereads_the_secret_file(base_env: dict[str, str], tmp_path: Path) -> None:
    """SIGHUP used to end serve (status 129) and leave its env file behind. Now it re-reads
    --secret-file; a file that became invalid keeps the old secret in force."""
    secret_file = tmp_path / "secret"
    secret_file.write_text("first-secret-123\n")
    secret_file.chmod(0o600)
    running = Serve(base_env, tmp_path / "mi.env", "--secret-file", str(secret_file))
    try:
        first = running.variables()
        assert token_status(first) == 200
        secret_file.write_text("second-secret-456\n")
        running.child.send_signal(signal.SIGHUP)
        running.wait_line("new secret from")
        second = running.variables()  # the env file follows
        assert second["IDENTITY_HEADER"] == "second-secret-456"
        assert token_status(second) == 200
        assert token_status(first) == 401
        secret_file.write_text("")
        running.child.send_signal(signal.SIGHUP)
        assert "keeping the previous secret" in running.wait_line("cannot use --secret-file")
        assert token_status(second) == 200
        assert running.variables() == second
    finally:
        code, _out, err = running.stop()
    assert code == 0
    assert not running.env_file.exists()
    assert "first-secret" not in err and "second-secret" not in err


def test_sighup_without_secret_file_changes_nothing(serve: Serve) -> None:
    variables = serve.variables()
    for _ in range(3):
        serve.child.send_signal(signal.SIGHUP)
    serve.wait_line("nothing to re-read")
    assert token_status(variables) == 200
    assert serve.variables() == variables
    code, _out, _err = serve.stop()
    assert code == 0 and not serve.env_file.exists()
