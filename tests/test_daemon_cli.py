"""``azfed-helper daemon`` as a process: signals, --exec, exit codes, JSON logs, health over HTTP."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken, options

from .conftest import cli_env, make_jwt, run_cli


class Daemon:
    """A daemon child whose JSON log lines are read as they come."""

    def __init__(self, emulator: Any, *args: str, launcher: str | None = None) -> None:
        program = ["-m", "azfed_helper"] if launcher is None else ["-c", launcher]
        self.process = subprocess.Popen(
            [sys.executable, *program, "daemon", "--log-format", "json", *args],
            env=cli_env(emulator.env()),
            stdin=subprocess.DEVNULL if launcher is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.raw: list[str] = []
        assert self.process.stderr is not None
        stderr = self.process.stderr
        self.reader = threading.Thread(target=self._read, args=(stderr,))
        self.reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line)

    def wait_event(self, *events: str, timeout: float = 30) -> dict[str, Any]:
        """The next record of one of ``events`` (those before it are in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            self.raw.append(line)
            record: dict[str, Any] = json.loads(line)
            self.seen.append(record)
            if record["event"] in events:
                return record

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.process.wait(timeout)

    def rest(self) -> str:
        """Everything logged, once the process has ended."""
        self.reader.join(5)
        while not self.lines.empty():
            self.raw.append(self.lines.get())
        return "".join(self.raw)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.close()


@pytest.fixture
def start_daemon(emulator: Any, daemons: list[Daemon]) -> Any:
    def start(*args: str, launcher: str | None = None) -> Daemon:
        daemon = Daemon(emulator, *args, launcher=launcher)
        daemons.append(daemon)
        return daemon

    return start


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Poll a condition another process makes true (no event to wait on crosses the boundary)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def fetch_state(pid: int) -> tuple[str, int]:
    """(state letter, parent pid) of ``pid`` if it is a token fetch process, else ("X", 0)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return "X", 0
    if b"azfed_helper._internal.sources.child_fetch" not in cmdline:
        return "X", 0
    return fields[0], int(fields[1])


def fetch_children(parent: int) -> list[int]:
    """Pids of the live `azfed_helper._internal.sources.child_fetch` children of ``parent``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            state, ppid = fetch_state(int(entry))
            if state not in "XZ" and ppid == parent:
                found.append(int(entry))
    return found


def freeze_a_fetch(parent: int) -> int:
    """SIGSTOP a fetch child of ``parent``: a source that never answers, however long a test
    waits. Returns its pid; SIGKILL still ends it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for pid in fetch_children(parent):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            wait_until(lambda pid=pid: fetch_state(pid)[0] in "TXZ")
            if fetch_state(pid)[0] == "T":
                return pid
        time.sleep(0.01)
    raise AssertionError("no fetch process to freeze")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sighup_refreshes_and_sigterm_mid_refresh_stops_cleanly(
    emulator: Any, start_daemon: Any, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    daemon = start_daemon("--token-file", str(path), "--health-addr", "127.0.0.1:0")
    address = daemon.wait_event("health_listening")["address"]
    first = daemon.wait_event("refreshed")
    assert http_status(f"http://{address}/readyz") == 200
    assert http_status(f"http://{address}/livez") == 200
    daemon.signal(signal.SIGHUP)
    second = daemon.wait_event("refreshed")
    assert emulator.counts["metadata.identity"] == 2
    assert {"sub", "exp", "time", "level"} <= second.keys() and second["sub"] == first["sub"]
    kept = path.read_bytes()
    emulator.fail_next("metadata.identity", 503, count=20)  # retried inside google-auth
    daemon.signal(signal.SIGHUP)
    daemon.wait_event("sighup")
    wait_until(lambda: emulator.counts["metadata.identity"] > 2)  # the refresh hangs in retries
    frozen = freeze_a_fetch(daemon.process.pid)  # the fetch runs in a child process, now stuck
    try:
        daemon.signal(signal.SIGTERM)
        # It stops without waiting for the fetch, which the daemon would allow 4 x the source
        # timeout + 30 s (70 s): this wait's timeout bounds a failure only.
        assert daemon.wait(30) == 0
        wait_until(lambda: fetch_state(frozen)[0] in "XZ")  # the fetch does not outlive it
    finally:
        if fetch_state(frozen)[0] == "T":
            os.kill(frozen, signal.SIGKILL)
    assert path.read_bytes() == kept  # whole, and still the last good token
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    stderr = daemon.rest()
    assert kept.decode() not in stderr  # the token itself is never logged
    for line in stderr.splitlines():
        json.loads(line)  # one JSON object per line, nothing else


# Runs the CLI as `python -m azfed_helper` does, but holds it still (a breakpoint, no change to
# what it does) when it loads the daemon command's module, which happens while the command line
# is read: it tells the test on stdout and goes on once the test writes a line to stdin.
PAUSE_WHILE_STARTING = """
import os, runpy, sys
held = []
def pause(event, args):
    if event == "open" and not held and "commands" in str(args[0]) \\
            and os.path.basename(str(args[0])).startswith("daemon."):
        held.append(1)
        print("starting", flush=True)
        sys.stdin.readline()
sys.addaudithook(pause)
sys.argv[0] = "azfed-helper"
runpy.run_module("azfed_helper", run_name="__main__", alter_sys=True)
"""


def test_sighup_while_starting_is_a_refresh_request(
    emulator: Any, start_daemon: Any, tmp_path: Path
) -> None:
    """Building the parser and importing the command take most of start-up; a SIGHUP then
    (a reload sent by an operator or a tool at the wrong moment) used to end the daemon with 129.
    Now it is remembered: the daemon starts, keeps the still-fresh file, then refreshes."""
    path = tmp_path / "token"
    path.write_text(make_jwt(sub="from-before"))
    path.chmod(0o600)  # as the daemon would leave it: nothing to do at start
    daemon = start_daemon("--token-file", str(path), launcher=PAUSE_WHILE_STARTING)
    assert daemon.process.stdout.readline() == "starting\n"
    daemon.signal(signal.SIGHUP)
    daemon.process.stdin.write("go on\n")
    daemon.process.stdin.flush()
    refreshed = daemon.wait_event("refreshed")
    assert refreshed["sub"] == idtoken.decode(path.read_bytes()).claims["sub"] != "from-before"
    events = [record["event"] for record in daemon.seen]
    # The signal's log line and the loop's first step run in different threads: either may come
    # first, but the refresh comes after both.
    assert max(events.index("sighup"), events.index("kept")) < events.index("refreshed")
    assert emulator.counts["metadata.identity"] == 1  # the refresh SIGHUP asked for
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0


def test_remove_on_exit_with_sigint(emulator: Any, start_daemon: Any, tmp_path: Path) -> None:
    path = tmp_path / "token"
    daemon = start_daemon("--token-file", str(path), "--remove-on-exit")
    daemon.wait_event("refreshed")
    assert path.exists()
    daemon.signal(signal.SIGINT)
    assert daemon.wait() == 0
    assert not path.exists()


CHILD = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
    "print(open(os.environ['AZURE_FEDERATED_TOKEN_FILE']).read().count('.'), flush=True)\n"
    "time.sleep(30)\n"
)


def test_exec_starts_after_first_write_and_passes_signals_and_status(
    emulator: Any, start_daemon: Any, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    daemon = start_daemon("--token-file", str(path), "--exec", "--", sys.executable, "-c", CHILD)
    assert daemon.process.stdout is not None
    assert daemon.process.stdout.readline().strip() == "2"  # the child read a whole JWT
    daemon.wait_event("exec_started")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 42
    assert daemon.wait_event("exec_exited")["status"] == 42


def test_exec_exit_status_and_missing_command(emulator: Any, tmp_path: Path) -> None:
    env = emulator.env()
    path = str(tmp_path / "token")
    done = run_cli("daemon", "--token-file", path, "--exec", "--", "sh", "-c", "exit 3", env=env)
    assert done.returncode == 3
    killed = run_cli("daemon", "--token-file", path, "--exec", "sh", "-c", "kill -9 $$", env=env)
    assert killed.returncode == 128 + 9
    missing = run_cli("daemon", "--token-file", path, "--exec", "--", "/no/such/cmd", env=env)
    assert missing.returncode == 127 and "/no/such/cmd" in missing.stderr


def test_once_is_write(emulator: Any, tmp_path: Path) -> None:
    path = tmp_path / "token"
    result = run_cli("daemon", "--once", "--token-file", str(path), env=emulator.env())
    assert result.returncode == 0 and result.stderr.startswith("wrote ")
    idtoken.validate(
        idtoken.decode(path.read_bytes()),
        options.DEFAULT_AUDIENCE,
        time.time(),
        issuer=idtoken.GOOGLE_ISSUER,
    )
    assert emulator.counts["metadata.identity"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--refresh-margin", "10m", "--min-remaining", "10m"], "must be below"),
        (["--max-backoff", "soon"], "--max-backoff"),
        (["--health-addr", "8080"], "--health-addr"),
        (["--credentials", "/no/such/key.json"], "does not exist"),
        (["--exec"], "needs a command"),
        (["stray"], "unexpected argument 'stray'"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_cli("daemon", "--token-file", str(tmp_path / "token"), *args, timeout=20)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_missing_token_file_setting_exits_2() -> None:
    result = run_cli("daemon")
    assert result.returncode == 2 and "AZURE_FEDERATED_TOKEN_FILE" in result.stderr


def test_systemd_readiness_notification(emulator: Any, tmp_path: Path) -> None:
    """Type=notify: READY=1 arrives after the first write, STOPPING=1 on SIGTERM."""
    import socket

    address = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(30)
        token_file = tmp_path / "token"
        env = cli_env({**emulator.env(), "NOTIFY_SOCKET": address})
        daemon = subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", "daemon", "--token-file", str(token_file)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            ready = listener.recv(4096).decode()
            assert ready.startswith("READY=1\n")
            assert token_file.exists()  # ready means the token is already in place
            daemon.send_signal(signal.SIGTERM)
            assert listener.recv(4096).decode() == "STOPPING=1"
            assert daemon.wait(timeout=30) == 0
        finally:
            daemon.kill()
            daemon.wait()


def test_identity_endpoint_in_the_sidecar(emulator: Any, start_daemon: Any, tmp_path: Path) -> None:
    """One sidecar, both conventions: the token file and a managed-identity endpoint, in /readyz."""
    from azfed_helper._internal.identity import envfile as mi_env

    env_file = tmp_path / "identity.env"
    token_file = tmp_path / "token"
    daemon = start_daemon(
        "--token-file",
        str(token_file),
        "--health-addr",
        "127.0.0.1:0",
        "--identity-endpoint",
        "--port",
        "0",
        "--env-file",
        str(env_file),
    )
    listening = daemon.wait_event("identity_listening")
    health = daemon.wait_event("health_listening")
    variables = mi_env.read_env_file(str(env_file))
    assert variables["IDENTITY_ENDPOINT"] == listening["endpoint"]
    request = urllib.request.Request(
        variables["IDENTITY_ENDPOINT"]
        + "?api-version=2019-08-01&resource=https://management.azure.com",
        headers={"X-IDENTITY-HEADER": variables["IDENTITY_HEADER"], "Metadata": "true"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert idtoken.decode(answer["access_token"]).claims["aud"] == "https://management.azure.com"
    assert emulator.counts["metadata.identity"] == 1  # the endpoint presents the daemon's file
    base = f"http://{health['address']}"
    assert http_status(base + "/readyz") == 200
    with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
        assert "endpoint:" in response.read().decode()
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        assert "azfed_identity_requests_total" in response.read().decode()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait() == 0
    assert not env_file.exists()  # the endpoint's environment is withdrawn with it


def test_once_refuses_running_daemon_options(tmp_path: Path) -> None:
    done = run_cli("daemon", "--once", "--token-file", str(tmp_path / "t"), "--health-addr", ":0")
    assert done.returncode == 2
    assert "--once cannot be combined with --health-addr" in done.stderr


def test_configured_by_environment(emulator: Any, tmp_path: Path) -> None:
    """A container or unit file sets AZFED_* variables instead of flags."""
    token_file = tmp_path / "token"
    env = cli_env(
        {
            **emulator.env(),
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZFED_HEALTH_ADDR": "127.0.0.1:0",
            "AZFED_LOG_FORMAT": "json",
            "AZFED_MAX_BACKOFF": "30s",
        }
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "azfed_helper", "daemon"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert daemon.stderr is not None
        events = {}
        for line in daemon.stderr:
            record = json.loads(line)  # json because of AZFED_LOG_FORMAT
            events[record["event"]] = record
            if {"health_listening", "refreshed"} <= events.keys():
                break
        address = events["health_listening"]["address"]
        assert http_status(f"http://{address}/readyz") == 200
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
    finally:
        daemon.kill()
        daemon.wait()
        if daemon.stderr is not None:
            daemon.stderr.close()
    bad = run_cli("daemon", env={**emulator.env(), "AZFED_LOG_FORMAT": "xml"})
    assert bad.returncode == 2
    assert "invalid AZFED_LOG_FORMAT 'xml'" in bad.stderr
