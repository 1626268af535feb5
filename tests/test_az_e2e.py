"""The az hook against the real Azure CLI (its own venv, see az_venv.py) and the emulator.

az reaches only loopback: the emulator's Entra is registered as a custom cloud, telemetry is off,
the version check is pre-seeded and proxies point at a port that refuses connections. A recording shim named `az`,
first on PATH, logs every az invocation's argv before running the real az.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken
from azfed_helper.emulator import Subscription

from .az_venv import AZ_VERSION, ensure_az
from .conftest import cli_env, refusing_port, run_cli

pytestmark = pytest.mark.az

JWT = re.compile(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+")
RESOURCE = ("--resource", "https://storage.azure.com")
DEV = Subscription("0b1f6471-1bf0-4dda-aec3-cb9272f09590", "Development")
PROD = Subscription("3c7a9d2e-5f18-4b6a-9e0d-71c4a8b2f3d6", "Production Apps")


@pytest.fixture(scope="session")
def real_az() -> Path:
    return ensure_az()


class AzWorld:
    """One az profile pointed at the emulator, with the recording shim on PATH."""

    def __init__(self, emulator: Any, tmp_path: Path, real_az: Path) -> None:
        self.emulator = emulator
        self.config = tmp_path / "azure"
        self.log = tmp_path / "az-argv.log"
        shim_dir = tmp_path / "shim"
        shim_dir.mkdir()
        shim = shim_dir / "az"
        shim.write_text(
            f'#!/bin/sh\nprintf "%s\\037" "$@" >> "{self.log}"\necho >> "{self.log}"\n'
            f'exec "{real_az}" "$@"\n'
        )
        shim.chmod(0o755)
        self.env = {
            **emulator.env(),
            "AZURE_CONFIG_DIR": str(self.config),
            "AZFED_CACHE_DIR": str(tmp_path / "cache"),
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_INSTANCE_DISCOVERY": "false",
            "HTTPS_PROXY": f"http://127.0.0.1:{refusing_port()}",
            "HTTP_PROXY": f"http://127.0.0.1:{refusing_port()}",
            "NO_PROXY": "127.0.0.1,localhost",
            "PATH": f"{shim_dir}:{cli_env()['PATH']}",
        }
        self.config.mkdir()
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
        versions = {name: {"local": AZ_VERSION} for name in ("azure-cli", "core", "telemetry")}
        (self.config / "versionCheck.json").write_text(
            json.dumps({"versions": versions, "update_time": stamp})
        )
        host = emulator.authority_host
        self.az(
            "cloud", "register", "-n", "azfedemu", "--endpoint-active-directory", host,
            "--endpoint-resource-manager", host + "/",
            "--endpoint-active-directory-resource-id", "https://management.core.windows.net/",
            "--skip-endpoint-discovery",
        )  # fmt: skip
        self.az("cloud", "set", "-n", "azfedemu")
        self.log.unlink()

    def az(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = cli_env({**self.env, "AZURE_CONFIG_DIR": str(config or self.config)})
        return subprocess.run(
            ["az", *args], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    def helper(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env={**self.env, **extra}, timeout=120)

    def plain_login(self, tmp_path: Path, assertion: str) -> tuple[Path, float]:
        """Log a profile of its own in with plain ``az login --federated-token`` (what the hook
        improves on): its config directory, and when the assertion it replays expires."""
        plain = tmp_path / "plain-azure"
        plain.mkdir()
        for name in ("versionCheck.json", "clouds.config", "config"):
            (plain / name).write_bytes((self.config / name).read_bytes())
        token_file = tmp_path / "plain-token"
        token_file.write_text(assertion)
        login = self.az(
            "login", "--service-principal", "-u", self.emulator.client_id,
            "--tenant", self.emulator.tenant_id, "--federated-token", f"@{token_file}",
            "--skip-subscription-discovery", "-o", "none", config=plain,
        )  # fmt: skip
        assert login.returncode == 0, login.stderr
        return plain, idtoken.decode(assertion).expires_at

    def calls(self) -> list[list[str]]:
        """The argv of every az run since the last call, and forget them."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        self.log.unlink()
        return [line.split("\x1f")[:-1] for line in lines]


@pytest.fixture
def world(emulator: Any, tmp_path: Path, real_az: Path) -> AzWorld:
    return AzWorld(emulator, tmp_path, real_az)


def assert_no_token_in(calls: list[list[str]]) -> None:
    for argv in calls:
        assert not any(JWT.search(arg) for arg in argv), argv


def test_login_then_noop_runs_no_az(world: AzWorld) -> None:
    done = world.helper("az-login")
    assert done.returncode == 0, done.stderr
    assert "az logged in as" in done.stderr
    calls = world.calls()
    assert [argv[:2] for argv in calls] == [["cloud", "show"], ["login", "--service-principal"]]
    login = calls[1]
    assert login[login.index("--federated-token") + 1].startswith("@")
    assert "--skip-subscription-discovery" in login
    assert_no_token_in(calls)
    got = world.az("account", "get-access-token", *RESOURCE, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["accessToken"].count(".") == 2
    world.calls()
    world.emulator.reset_counts()
    again = world.helper("az-login")
    assert (again.returncode, again.stderr) == (0, "")
    assert world.calls() == []  # the no-op path starts no az process...
    assert sum(world.emulator.counts.values()) == 0  # ...and makes no request


def test_wrapper_keeps_az_working_where_plain_login_expires(world: AzWorld, tmp_path: Path) -> None:
    """The wrapper runs until it has logged az in again twice and the plain login's token has
    expired: counted in events, so a slow machine makes the test longer, never false."""
    emulator = world.emulator
    # Google tokens live 28 s and are replaced with 14 s left (the margin, and half their life):
    # a new login every ~14 s, while an az command (5 s and more on a busy machine) always
    # starts with 14 s to present its token.
    emulator.id_token_lifetime = 28
    margin = {"AZFED_REFRESH_MARGIN": "14"}
    emulator.access_token_lifetime = 60  # < 5 minutes: az's MSAL never serves it from cache
    get = ("account", "get-access-token", *RESOURCE, "-o", "json")
    plain, plain_expires = world.plain_login(tmp_path, emulator.mint_google_id_token())
    assert world.az(*get, config=plain).returncode == 0  # works at first
    world.calls()  # forget the plain profile's az runs
    # The wrapper, called again and again: the first login, two more as tokens near expiry.
    logins: list[list[str]] = []
    deadline = time.monotonic() + 90  # bounds a failure only; never reached on a working hook
    while len(logins) < 3 or time.time() < plain_expires + 1:
        assert time.monotonic() < deadline, f"only {len(logins)} logins"
        wrapped = world.helper("az", "--", *get, **margin)
        assert wrapped.returncode == 0, wrapped.stderr
        assert json.loads(wrapped.stdout)["tokenType"] == "Bearer"
        logins += [argv for argv in world.calls() if argv[:1] == ["login"]]
    assert_no_token_in(logins)
    expired = world.az(*get, config=plain)
    assert expired.returncode != 0
    assert "AADSTS700024" in expired.stderr  # plain `az login --federated-token` ran out


def test_assertion_entra_refuses_fails_now_not_later(world: AzWorld, tmp_path: Path) -> None:
    assert world.helper("az-login").returncode == 0
    record = (world.config / "azfed-helper.json").read_text()
    world.emulator.federated_credentials.clear()  # the app no longer trusts this Google account
    refused = world.helper("az-login", "--force")
    assert refused.returncode == 1
    assert "AADSTS70021" in refused.stderr and "federated credential" in refused.stderr
    assert (world.config / "azfed-helper.json").read_text() == record  # nothing recorded
    # What the hook protects against: plain az "succeeds" from its cached ARM token.
    token_file = tmp_path / "t"
    token_file.write_text(world.emulator.mint_google_id_token())
    plain = world.az(
        "login", "--service-principal", "-u", world.emulator.client_id,
        "--tenant", world.emulator.tenant_id, "--federated-token", f"@{token_file}",
        "--skip-subscription-discovery", "-o", "none",
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr


def test_user_logout_and_own_login_are_handled(world: AzWorld, tmp_path: Path) -> None:
    assert world.helper("az-login").returncode == 0
    assert world.az("logout").returncode == 0
    assert world.az("account", "get-access-token").returncode != 0  # az really is logged out
    world.calls()
    assert world.helper("az-login", "-q").returncode == 0
    assert [argv[0] for argv in world.calls()] == ["cloud", "login"]
    assert world.az("account", "get-access-token", *RESOURCE).returncode == 0
    # The user logs in by hand with some token: not one we validated, so the hook takes over.
    token_file = tmp_path / "mine"
    token_file.write_text(world.emulator.mint_google_id_token())
    world.az(
        "login", "--service-principal", "-u", world.emulator.client_id,
        "--tenant", world.emulator.tenant_id, "--federated-token", f"@{token_file}",
        "--skip-subscription-discovery", "-o", "none",
    )  # fmt: skip
    world.calls()
    assert world.helper("az-login", "-q").returncode == 0
    assert [argv[0] for argv in world.calls()] == ["cloud", "login"]


def test_daemon_az_login(world: AzWorld, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "azfed_helper",
            "daemon",
            "--token-file",
            str(token_file),
            "--az-login",
        ],
        env=cli_env(world.env),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        record = world.config / "azfed-helper.json"
        deadline = time.time() + 60
        while not record.exists() and daemon.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert record.exists()
    finally:
        daemon.terminate()
        _, stderr = daemon.communicate(timeout=30)
    assert "az logged in as" in stderr
    assert json.loads(record.read_text())["assertion_exp"] > time.time()
    assert world.az("account", "get-access-token", *RESOURCE).returncode == 0


def test_login_selects_a_subscription_by_name(world: AzWorld) -> None:
    world.emulator.subscriptions.extend([DEV, PROD])
    done = world.helper("az-login", "--subscription", PROD.display_name)
    assert done.returncode == 0, done.stderr
    login = world.calls()[-1]
    assert login[login.index("--subscription") + 1] == PROD.display_name
    assert "--skip-subscription-discovery" not in login
    assert world.emulator.counts["arm"] >= 1  # az listed the subscriptions
    shown = world.az("account", "show", "--query", "id", "-o", "tsv")
    assert shown.stdout.strip() == PROD.subscription_id, shown.stderr
    listed = world.az("account", "list", "--query", "[].name", "-o", "json")
    assert sorted(json.loads(listed.stdout)) == [DEV.display_name, PROD.display_name]
    world.calls()
    world.emulator.reset_counts()
    for same in (PROD.display_name, PROD.subscription_id.upper()):
        again = world.helper("az-login", "--subscription", same)
        assert (again.returncode, again.stderr) == (0, "")
    assert world.calls() == []  # no-op: no az process...
    assert sum(world.emulator.counts.values()) == 0  # ...and no request
    switched = world.helper("az-login", "-q", "--subscription", DEV.display_name)
    assert switched.returncode == 0, switched.stderr
    assert [argv[0] for argv in world.calls()] == ["cloud", "login"]
    shown = world.az("account", "show", "--query", "id", "-o", "tsv")
    assert shown.stdout.strip() == DEV.subscription_id


def test_unknown_subscription_fails_naming_it(world: AzWorld) -> None:
    world.emulator.subscriptions.append(DEV)
    missing = world.helper("az-login", "--subscription", "No Such Sub")
    assert missing.returncode == 1
    assert "`az login` failed" in missing.stderr  # az's own words, passed on:
    assert "Subscription 'No Such Sub' not found" in missing.stderr
    assert not (world.config / "azfed-helper.json").exists()  # nothing recorded...
    assert_no_token_in(world.calls())
    again = world.helper("az-login", "--subscription", "No Such Sub")
    assert again.returncode == 1  # ...so nothing is taken as current


def test_unknown_subscription_id_leaves_the_profile_alone(world: AzWorld) -> None:
    world.emulator.subscriptions.append(DEV)
    assert world.helper("az-login", "--subscription", DEV.subscription_id).returncode == 0
    unknown = "0badc0de-0000-4000-8000-000000000000"
    failed = world.helper("az-login", "--subscription", unknown)
    assert failed.returncode == 1
    assert unknown in failed.stderr
    assert "az account list --refresh" in failed.stderr  # the hint says how to see what exists
    shown = world.az("account", "show", "--query", "id", "-o", "tsv")
    assert shown.stdout.strip() == DEV.subscription_id  # still where the user left it
