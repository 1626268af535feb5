"""The real Azure CLI (and azure-identity) with the sources other than Google: a GitHub Actions
job's 5-minute-style tokens through the az hook, and a rotating Kubernetes projected token
behind `serve`. Against the emulator, as in test_az_e2e.py; every run counts events (logins,
rotations), never things done in some number of seconds."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken

from .test_az_e2e import AzWorld, assert_no_token_in, real_az  # noqa: F401 (a fixture)
from .test_serve_cli import Serve

pytestmark = pytest.mark.az

GET = ("account", "get-access-token", "--resource", "https://storage.azure.com", "-o", "json")


@pytest.fixture
def world(emulator: Any, tmp_path: Path, real_az: Path) -> AzWorld:  # noqa: F811
    return AzWorld(emulator, tmp_path, real_az)


def test_github_source_keeps_az_working_where_plain_login_expires(
    world: AzWorld, tmp_path: Path
) -> None:
    """20-second GitHub tokens: `azfed-helper az --` runs until az has been logged in with three
    tokens and a plain `az login --federated-token` token has expired; each login fetched one
    token (replaced at half its life, never on every call)."""
    emulator = world.emulator
    emulator.github.lifetime = 20
    emulator.access_token_lifetime = 60  # < 5 minutes: az's MSAL never serves it from cache
    emulator.add_github_actions_credential()
    runner = emulator.github_actions_env()  # the source by default inside the job
    plain, plain_expires = world.plain_login(tmp_path, emulator.mint_github_id_token(lifetime=20))
    assert world.az(*GET, config=plain).returncode == 0  # works at first
    world.calls()
    logins: list[list[str]] = []
    held: set[int] = set()
    record = world.config / "azfed-helper.json"
    deadline = time.monotonic() + 100  # bounds a failure only; never reached on a working hook
    while len(held) < 3 or time.time() < plain_expires + 1:
        assert time.monotonic() < deadline, f"only {len(held)} tokens"
        wrapped = world.helper("az", "--", *GET, **runner)
        assert wrapped.returncode == 0, wrapped.stderr
        assert json.loads(wrapped.stdout)["tokenType"] == "Bearer"
        logins += [argv for argv in world.calls() if argv[:1] == ["login"]]
        held.add(json.loads(record.read_text())["assertion_exp"])
    assert_no_token_in(logins)
    assert len(logins) == len(held) == emulator.counts["github.token"]  # one fetch per login
    assert runner["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] not in json.dumps(logins)
    expired = world.az(*GET, config=plain)
    assert expired.returncode != 0
    assert "AADSTS700024" in expired.stderr  # plain `az login --federated-token` ran out


def test_serve_with_a_rotating_projected_token(
    world: AzWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --source file` reads the kubelet's file before each exchange: az (logged in with
    --identity) and azure-identity's ManagedIdentityCredential keep getting tokens until the
    file has been rotated twice and its first token has expired."""
    from azure.identity import ManagedIdentityCredential

    emulator = world.emulator
    emulator.access_token_lifetime = 60  # every request needs an exchange
    emulator.add_kubernetes_credential()
    path = tmp_path / "tokens" / "azure-identity-token"
    # Rotated every 12 s: 3 s of slack before expiry for a rotation delayed on a busy machine.
    projected = emulator.start_projected_token_file(path, lifetime=15)
    first_expires = idtoken.decode(path.read_text()).expires_at
    serve = Serve(world.env, tmp_path / "mi.env", "--source", "file", "--assertion-file", str(path))
    try:
        variables = serve.variables()
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        identity = {name: variables[name] for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
        world.env.update(identity)
        done = world.az("login", "--identity", "--allow-no-subscriptions", "-o", "none")
        assert done.returncode == 0, done.stderr
        rounds = 0
        deadline = time.monotonic() + 90  # bounds a failure only
        with ManagedIdentityCredential() as credential:
            while projected.writes < 3 or time.time() < first_expires + 1:
                assert time.monotonic() < deadline, f"{projected.writes} tokens in {rounds} rounds"
                got = world.az(*GET)
                assert got.returncode == 0, got.stderr
                access = credential.get_token("https://vault.azure.net/.default")
                assert idtoken.decode(access.token).claims["aud"] == "https://vault.azure.net"
                rounds += 1
        assert emulator.counts["entra.token"] >= 2 * rounds  # each request was an exchange
        assert os.readlink(path) == f"..data/{path.name}"  # read through the link, never written
    finally:
        code, _, stderr = serve.stop()
    assert code == 0, stderr
