"""Shared fixtures: a scrubbed environment for every test, the emulator, and CLI runners; the
azure-cli environment built before the tests that need it."""

from __future__ import annotations

import atexit
import base64
import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
_SCRUBBED_PREFIXES = ("AZURE_", "GOOGLE_", "GCE_", "AZFED_", "XDG_", "IDENTITY_", "MSI_", "ARM_")
_SCRUBBED = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "KUBERNETES_EXEC_INFO",
    # Inside a GitHub Actions job these would make github-actions the default source.
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the azure-cli venv now if az tests are selected: outside every per-test timeout,
    so a cold first run on a slow machine cannot time out half-way (tests/az_venv.py)."""
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("az") for item in session.items):
        return
    from .az_venv import AZ_VERSION, ensure_az, is_built, venv_dir

    if is_built():
        return
    say = session.config.get_terminal_writer().line
    say(f"building azure-cli {AZ_VERSION} for the az tests in {venv_dir()} (once, about a minute)")
    started = time.monotonic()
    try:
        ensure_az()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        pytest.exit(f"cannot build the azure-cli venv: {exc}\n(skip those tests: -m 'not az')")
    say(f"built azure-cli in {time.monotonic() - started:.0f}s")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the machine's real Azure/Google configuration or home directory."""
    for name in list(os.environ):
        if name.startswith(_SCRUBBED_PREFIXES) or name in _SCRUBBED:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    # Backstop: nothing a test starts may reach beyond loopback through a proxy-aware client.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@functools.cache
def refusing_port() -> int:
    """A loopback port that refuses connections for as long as the tests run: bound but never
    listening, so no other process can take it (a fixed number, such as 9, may be in use)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    atexit.register(holder.close)
    port: int = holder.getsockname()[1]
    return port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(**claims: Any) -> str:
    """An unsigned-looking JWT with the given claims (our own checks never verify signatures)."""
    now = int(time.time())
    body = {
        "iss": "https://accounts.google.com",
        "aud": "api://AzureADTokenExchange",
        "sub": "112233445566778899001",
        "iat": now,
        "exp": now + 3600,
    }
    body.update(claims)
    body = {key: value for key, value in body.items() if value is not None}
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(body).encode())}.{b64url(b'signature')}"


@pytest.fixture
def emulator() -> Iterator[Any]:
    from azfed_helper.emulator import Emulator

    with Emulator() as emu:
        yield emu


@pytest.fixture
def emulator_env(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point this process (and children given ``os.environ``) at the emulator."""
    env = emulator.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI subprocess: this process's, the repo importable, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m azfed_helper ARGS`` in a child process and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "azfed_helper", *args],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Wait for an event another thread or process causes; the timeout only bounds a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
