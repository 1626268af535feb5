"""Shared fixtures: a scrubbed environment for every test, the emulator, and CLI runners."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
_SCRUBBED_PREFIXES = ("AZURE_", "GOOGLE_", "GCE_", "AZFED_", "XDG_", "IDENTITY_", "MSI_", "ARM_")
_SCRUBBED = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "KUBERNETES_EXEC_INFO")


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
