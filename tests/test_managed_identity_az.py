"""The real Azure CLI (`az login --identity`) against `azfed-helper serve` and the emulator.

az runs in its own venv (az_venv.py) with the emulator registered as a custom cloud (AzWorld from
test_az_e2e.py); it sees the endpoint only through IDENTITY_ENDPOINT/IDENTITY_HEADER.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .test_az_e2e import AzWorld, real_az  # noqa: F401 (real_az is a fixture)
from .test_serve_cli import Serve

pytestmark = pytest.mark.az

VAULT = ("--resource", "https://vault.azure.net")


class MiWorld:
    """An az profile plus a running `serve`; ``az()`` runs az with the handed-out variables."""

    def __init__(self, world: AzWorld, tmp_path: Path) -> None:
        self.world = world
        self.serve = Serve(world.env, tmp_path / "mi.env")
        self.variables = {}
        for line in self.serve.env_file.read_text().splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                self.variables[name] = value.strip("'")

    def az(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        saved = dict(self.world.env)
        self.world.env.update({**self.variables, **extra})
        try:
            return self.world.az(*args)
        finally:
            self.world.env.clear()
            self.world.env.update(saved)


@pytest.fixture
def mi(emulator: Any, tmp_path: Path, real_az: Path) -> Iterator[MiWorld]:  # noqa: F811
    world = MiWorld(AzWorld(emulator, tmp_path, real_az), tmp_path)
    yield world
    world.serve.stop()


def login(mi: MiWorld) -> None:
    done = mi.az("login", "--identity", "--allow-no-subscriptions", "-o", "none")
    assert done.returncode == 0, done.stderr


def test_login_identity_then_tokens_for_two_resources(mi: MiWorld, emulator: Any) -> None:
    login(mi)
    account = json.loads(mi.az("account", "show", "-o", "json").stdout)
    assert account["tenantId"] == emulator.tenant_id  # from the token's tid claim
    arm = json.loads(mi.az("account", "get-access-token", "-o", "json").stdout)
    vault = json.loads(mi.az("account", "get-access-token", *VAULT, "-o", "json").stdout)
    assert arm["accessToken"] != vault["accessToken"]
    assert vault["expires_on"] > time.time() + 3000
    assert not list(mi.world.config.glob("service_principal_entries*"))  # az stores no secret
    assert emulator.counts["entra.token"] == 2  # ARM once (login + get-access-token), vault once


def test_az_keeps_working_across_many_google_token_lifetimes(mi: MiWorld, emulator: Any) -> None:
    """az runs at least four times and until two Google token lifetimes have passed since its
    login: a slow machine makes the test longer, never false."""
    lifetime = 5
    emulator.id_token_lifetime = lifetime  # Google tokens live 5 s
    emulator.access_token_lifetime = 60  # < 5 minutes: every az command needs a new exchange
    login(mi)
    logged_in, calls = time.time(), 0
    deadline = time.monotonic() + 90  # bounds a failure only
    while calls < 4 or time.time() < logged_in + 2 * lifetime:
        assert time.monotonic() < deadline, f"only {calls} az commands"
        done = mi.az("account", "get-access-token", *VAULT, "-o", "json")
        assert done.returncode == 0, done.stderr
        calls += 1
    assert emulator.counts["metadata.identity"] >= 3  # fresh Google tokens along the way


def test_wrong_header_shows_our_message(mi: MiWorld) -> None:
    login(mi)
    done = mi.az("account", "get-access-token", "-o", "json", IDENTITY_HEADER="wrong")
    assert done.returncode != 0
    assert "missing or wrong X-IDENTITY-HEADER" in done.stderr
