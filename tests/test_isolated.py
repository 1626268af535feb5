"""Nothing we start imports code from the working directory (issue 10 §1).

An attacker who can write the directory a daemon or a shell is started from plants
``azfed_helper/__init__.py`` there. ``python -m`` would put that directory first on ``sys.path``:
the daemon's fetch child (at start and on every SIGHUP) and the printed az hook would then run the
attacker's code with our Google credentials. The planted module writes a marker file when imported.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken, isolated
from azfed_helper._internal.config import resolve
from azfed_helper._internal.sources import child_fetch

from .conftest import cli_env, make_jwt
from .test_azcli import CLIENT, TENANT, recording_az, write_az_state

CONSOLE_SCRIPT = Path(sys.executable).parent / "azfed-helper"


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """A directory holding an attacker's ``azfed_helper`` package, and the marker it writes."""
    evil = tmp_path / "shared-checkout"
    marker = tmp_path / "PLANTED-CODE-RAN"
    package = evil / "azfed_helper"
    package.mkdir(parents=True)
    code = f"open({str(marker)!r}, 'a').write('imported\\n')\n"
    (package / "__init__.py").write_text(code)
    (package / "__main__.py").write_text(code)
    return evil, marker


def events(stream: Any, into: queue.Queue[dict[str, Any]]) -> None:
    for line in stream:
        if line.startswith("{"):
            into.put(json.loads(line))


def wait_event(lines: queue.Queue[dict[str, Any]], name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        record = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        assert record["event"] != "refresh_failed", record
        if record["event"] == name:
            return


@pytest.mark.skipif(not CONSOLE_SCRIPT.exists(), reason="needs the installed console script")
def test_daemon_fetch_child_never_imports_the_working_directory(
    emulator: Any, planted: tuple[Path, Path], tmp_path: Path
) -> None:
    evil, marker = planted
    key = emulator.write_service_account_key(tmp_path / "key.json")
    token_file = tmp_path / "run" / "token"
    token_file.parent.mkdir(mode=0o700)
    args = ["--token-file", str(token_file), "--credentials", str(key), "--log-format", "json"]
    daemon = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "daemon", *args],
        cwd=evil,
        env=cli_env(emulator.env()),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    reader = threading.Thread(target=events, args=(daemon.stderr, lines))
    reader.start()
    try:
        wait_event(lines, "refreshed")  # the first fetch, at start
        daemon.send_signal(signal.SIGHUP)
        wait_event(lines, "refreshed")  # and the one a SIGHUP asks for
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        reader.join(5)
        assert daemon.stderr is not None
        daemon.stderr.close()
    assert not marker.exists(), "the daemon's fetch child imported the planted package"
    assert emulator.counts["google.token"] == 2
    assert idtoken.decode(token_file.read_text()).claims["sub"] == emulator.service_account_id


def test_fetch_child_runs_isolated_from_root(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-I and cwd "/": a relative --credentials path still names the file next to the daemon."""
    emulator.write_service_account_key(tmp_path / "key.json")
    monkeypatch.chdir(tmp_path)
    token = child_fetch.fetch(resolve(argparse.Namespace(credentials="key.json")))
    assert idtoken.decode(token).claims["sub"] == emulator.service_account_id
    command = isolated.python_command(child_fetch.CHILD_MODULE, isolated.import_path())
    assert command[:3] == [sys.executable, "-I", "-c"]
    assert isolated.package_location() == str(Path(idtoken.__file__).parents[2])
    assert isolated.import_path()[0] == isolated.package_location()
    assert all(os.path.isabs(path) for path in isolated.import_path())


def print_hook(*how: str, shim: Path, cwd: Path) -> str:
    done = subprocess.run(
        [*how, "az-login", "--print-hook", "bash", "--az", str(shim)],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


HOW_PRINTED = {
    "python -m": [sys.executable, "-m", "azfed_helper"],
    "console script": [str(CONSOLE_SCRIPT)],
}


def bash_in(
    directory: Path, script: str, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``script`` in bash, in ``directory``, for our app; with no PYTHONPATH, so a hook must find
    its own package wherever the shell runs."""
    env = cli_env({"AZURE_CLIENT_ID": CLIENT, **extra})
    del env["PYTHONPATH"]
    return subprocess.run(
        ["bash", "-c", script],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("printed_by", sorted(HOW_PRINTED))
def test_printed_hook_never_imports_the_working_directory(
    planted: tuple[Path, Path], tmp_path: Path, printed_by: str
) -> None:
    if printed_by == "console script" and not CONSOLE_SCRIPT.exists():
        pytest.skip("needs the installed console script")
    evil, marker = planted
    write_az_state(tmp_path / "azure", make_jwt())  # az is current: the hook's no-op path
    shim, log = recording_az(tmp_path / "bin", 'echo "az ran"')
    hook = print_hook(*HOW_PRINTED[printed_by], shim=shim, cwd=tmp_path)
    assert " -m azfed_helper" not in hook
    azure = {"AZURE_CONFIG_DIR": str(tmp_path / "azure"), "AZURE_TENANT_ID": TENANT}
    ran = bash_in(evil, f'{hook}\naz account show "a b"', azure)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "az ran\n"
    assert log.read_text() == "account show a b \n"
    assert not marker.exists(), "the printed hook imported the planted package"


def test_printed_hook_from_python_m_runs_the_refresh_path_too(
    planted: tuple[Path, Path], tmp_path: Path
) -> None:
    """Not only the no-op path: a hook that must log in again reaches our real code (which here
    reports the missing az login state as usual) without importing the planted package."""
    evil, marker = planted
    shim, _log = recording_az(tmp_path / "bin", "exit 9")
    hook = print_hook(*HOW_PRINTED["python -m"], shim=shim, cwd=tmp_path)
    ran = bash_in(evil, f"{hook}\naz account show", {"AZURE_CONFIG_DIR": str(tmp_path / "azure")})
    assert ran.returncode == 2
    assert ran.stderr.startswith("azfed-helper: error: AZURE_TENANT_ID is not set"), ran.stderr
    assert not marker.exists()
