"""Corrupt or absurd state read back is never sticky (issue 11 §1 JSON part, §2 claims).

az corrupts its JSON files when runs overlap, a killed writer or a full disk truncates a cache,
a forged token carries ``exp: 10**400``. Each must cost at most one refresh or one exchange,
never a traceback on every later run; and the readers behave alike on every Python (3.10 and
3.11 raised SystemError for invalid JSON where 3.12 raised ValueError).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken

from .conftest import REPO, b64url, run_cli
from .test_daemon_cli import Daemon
from .test_jsonfast import interpreters

RESOURCE = ("--resource", "https://management.azure.com")
TRUNCATED = '{"AccessToken": {"k": {"secret": "s", "expires_on": "17'


def jwt_with_payload(payload: str) -> str:
    return f"{b64url(b'{}')}.{b64url(payload.encode())}.{b64url(b'sig')}"


READERS = r"""
import os, sys, tempfile, time
from azfed_helper._internal import formats, idtoken, tokenfile
from azfed_helper._internal.azcli import state
from azfed_helper._internal.entra import cache
from azfed_helper._internal.errors import InvalidTokenError, UsageError

truncated, bad_payload = sys.argv[1:]
work = tempfile.mkdtemp()
with open(os.path.join(work, cache.TOKEN_CACHE), "w") as f:
    f.write(truncated)
assert cache.find_access_token(work, "c", "t", "https://h", ["s"], now=time.time()) is None
for name in ("azureProfile.json", "service_principal_entries.json", state.RECORD):
    with open(os.path.join(work, name), "w") as f:
        f.write('[{"client_id": "c", "tenant')
    assert state.load_json(os.path.join(work, name)) is None
with open(os.path.join(work, "token"), "w") as f:
    f.write(bad_payload)
assert tokenfile.fresh_token(os.path.join(work, "token"), "aud", time.time(), 0, issuer=None) is None
try:
    tokenfile.read(os.path.join(work, "token"))
    raise SystemExit("a token whose payload is not JSON was read")
except InvalidTokenError as exc:
    assert exc.claim == "format" and exc.hint, exc
try:
    formats.exec_api_version('{"apiVersion": "client.auth')
    raise SystemExit("bad KUBERNETES_EXEC_INFO accepted")
except UsageError as exc:
    assert "KUBERNETES_EXEC_INFO" in exc.message
print("coped")
"""


@pytest.mark.parametrize("python", interpreters())
@pytest.mark.parametrize("payload", ['{"iss": "https://acc', "[1, 2]", '"text"', "\xff\xfe"])
def test_readers_cope_with_corrupt_json_on_every_interpreter(python: str, payload: str) -> None:
    script = f"import sys; sys.path.insert(0, {str(REPO)!r})\n{READERS}"
    done = subprocess.run(
        [python, "-I", "-c", script, TRUNCATED, jwt_with_payload(payload)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "coped", done.stdout + done.stderr


def test_truncated_cache_is_set_aside_once_then_rebuilt(emulator: Any, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    (directory / "msal_token_cache.json").write_text(TRUNCATED)
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(directory)}
    first = run_cli("token", *RESOURCE, env=env)
    assert first.returncode == 0, first.stderr
    (warning,) = first.stderr.splitlines()
    assert warning.startswith("azfed-helper: warning: cache file ") and "moved it to" in warning
    assert len(list(directory.glob("msal_token_cache.json.corrupt-*"))) == 1
    again = run_cli("token", *RESOURCE, env=env)
    assert (again.returncode, again.stderr, again.stdout) == (0, "", first.stdout)  # a hit
    assert emulator.counts["entra.token"] == 1


NOW = int(time.time())
ABSURD = {
    "exp 10**400": f'"iat": {NOW}, "exp": 1{"0" * 400}',
    "iat = exp = 1e400": '"iat": 1e400, "exp": 1e400',
    "exp 1e20": f'"iat": {NOW}, "exp": 1e20',
    "iat in the future": f'"iat": {NOW + 3000}, "exp": {NOW + 6600}',
}


def absurd_token(times: str) -> str:
    fixed = json.dumps(
        {"iss": "https://accounts.google.com", "aud": "api://AzureADTokenExchange", "sub": "1"}
    )
    return jwt_with_payload(fixed[:-1] + ", " + times + "}")


def strict_json(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("name", sorted(ABSURD))
def test_absurd_times_are_invalid_for_status_and_replaced_by_write(
    emulator: Any, tmp_path: Path, name: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(absurd_token(ABSURD[name]))
    status = run_cli("status", "--json", "--token-file", str(token_file))
    assert status.returncode == 1, status.stdout + status.stderr
    report = strict_json(status.stdout)  # JSON has no Infinity
    assert report["ok"] is False
    assert "claim 'iat'" in report["reason"] or "claim 'exp'" in report["reason"]
    human = run_cli("status", "--token-file", str(token_file))
    assert human.returncode == 1 and "Traceback" not in human.stderr
    assert "status: NOT OK: claim" in human.stdout
    done = run_cli("write", "--token-file", str(token_file), env=emulator.env())
    assert done.returncode == 0, done.stderr
    assert idtoken.decode(token_file.read_text()).claims["sub"] == emulator.service_account_id
    assert run_cli("write", "--token-file", str(token_file), env=emulator.env()).returncode == 0
    assert emulator.counts["metadata.identity"] == 1  # and then a no-op, as it should be


def test_daemon_starts_over_an_absurd_token(emulator: Any, tmp_path: Path) -> None:
    """Today's crash: float(10**400) at start, exit 1, and a systemd restart loop."""
    token_file = tmp_path / "token"
    token_file.write_text(absurd_token(ABSURD["exp 10**400"]))
    daemon = Daemon(emulator, "--token-file", str(token_file))
    try:
        outcome = daemon.wait_event("refreshed", "refresh_failed")["event"]
        daemon.signal(signal.SIGTERM)
        code = daemon.wait(10)
    finally:
        daemon.close()
    assert outcome == "refreshed", daemon.seen
    assert code == 0
    assert idtoken.decode(token_file.read_text()).claims["sub"] == emulator.service_account_id


@pytest.mark.az
@pytest.mark.parametrize(
    "name", ["azfed-helper.json", "service_principal_entries.json", "azureProfile.json"]
)
def test_az_login_logs_in_again_over_corrupt_records(
    emulator: Any, tmp_path: Path, name: str
) -> None:
    from .test_az_e2e import AzWorld, ensure_az

    world = AzWorld(emulator, tmp_path, ensure_az())
    assert world.helper("az-login").returncode == 0
    path = world.config / name
    path.write_text(path.read_text()[:25])  # as overlapping az runs leave it
    world.calls()
    again = world.helper("az-login")
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    if name == "service_principal_entries.json":  # az itself fails on it: set aside, once
        assert f"warning: az's file {path} is unreadable" in again.stderr
        assert len(list(world.config.glob(name + ".corrupt-*"))) == 1
    assert [argv[0] for argv in world.calls()] == ["cloud", "login"]  # "not current": log in
    got = world.az("account", "get-access-token", *RESOURCE, "-o", "json")
    assert got.returncode == 0, got.stderr
    quiet = world.helper("az-login")
    assert (quiet.returncode, quiet.stderr) == (0, "")  # and current again
