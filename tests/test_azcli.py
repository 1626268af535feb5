"""The az-login hook without the real Azure CLI: the no-op check against az's files, the fast
path's option table, start-up imports, exec semantics, error translation and shell snippets."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azfed_helper._internal import idtoken
from azfed_helper._internal.azcli import hooks, login, process
from azfed_helper._internal.azcli import state as azcli
from azfed_helper._internal.config import resolve
from azfed_helper._internal.entra.aadsts import EntraError

from .conftest import cli_env, make_jwt, run_cli

CLIENT = "124f22da-d438-5667-bb35-9ca8415ebe0c"
TENANT = "1ba1f313-6e32-57e8-85fe-2d684ae4416c"
HEAVY = ("msal", "requests", "google", "azure", "filelock", "platformdirs", "argparse", "shutil")


def write_az_state(
    directory: Path,
    token: str,
    *,
    user: str = CLIENT,
    cloud: str = "AzureCloud",
    record_token: str | None = None,
) -> None:
    """az's files as `az login --service-principal` leaves them, plus our record."""
    directory.mkdir(parents=True, exist_ok=True)
    profile = {
        "subscriptions": [
            {
                "id": TENANT,
                "name": "N/A(tenant level account)",
                "state": "Enabled",
                "user": {"name": user, "type": "servicePrincipal"},
                "isDefault": True,
                "tenantId": TENANT,
                "environmentName": cloud,
            }
        ]
    }
    (directory / "azureProfile.json").write_text(json.dumps(profile), encoding="utf-8-sig")
    entries = [{"client_id": user, "tenant": TENANT, "client_assertion": token}]
    (directory / "service_principal_entries.json").write_text(json.dumps(entries))
    record = {
        "client_id": CLIENT,
        "tenant_id": TENANT,
        "cloud": cloud,
        "authority": "https://login.microsoftonline.com",
        "subscription": None,
        "assertion_crc32": azcli.checksum(record_token or token),
    }
    (directory / azcli.RECORD).write_text(json.dumps(record))


@pytest.fixture
def az_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "azure"
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(directory))
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    return directory


def target(**flags: object) -> azcli.Target:
    return azcli.Target(resolve(argparse.Namespace(**flags)))


def test_current_only_when_az_holds_our_fresh_validated_assertion(az_dir: Path) -> None:
    now = time.time()
    fresh = make_jwt(exp=int(now) + 3600)
    assert not azcli.is_current(target(), str(az_dir))  # nothing at all
    write_az_state(az_dir, fresh)
    assert azcli.is_current(target(), str(az_dir))
    assert azcli.held_lifetime(target(), str(az_dir), now) == pytest.approx(3600, abs=2)
    # Within the refresh margin (20 minutes by default): not current.
    write_az_state(az_dir, make_jwt(iat=int(now) - 3000, exp=int(now) + 600))
    assert not azcli.is_current(target(), str(az_dir))
    assert azcli.is_current(target(refresh_margin="5m"), str(az_dir))
    # A token too short-lived for the margin is due at half its life: current with 3 of 5
    # minutes left, not with 2.
    write_az_state(az_dir, make_jwt(iat=int(now) - 120, exp=int(now) + 180))
    assert azcli.is_current(target(), str(az_dir))
    write_az_state(az_dir, make_jwt(iat=int(now) - 180, exp=int(now) + 120))
    assert not azcli.is_current(target(), str(az_dir))
    # The user logged in with their own token, or as someone else: not ours.
    write_az_state(az_dir, fresh, record_token=make_jwt(sub="other"))
    assert not azcli.is_current(target(), str(az_dir))
    write_az_state(az_dir, fresh, user="0000-someone-else")
    assert not azcli.is_current(target(), str(az_dir))
    # Another app or subscription asked for than the one az holds.
    write_az_state(az_dir, fresh)
    assert not azcli.is_current(target(client_id="another-app"), str(az_dir))
    assert not azcli.is_current(
        azcli.Target(resolve(argparse.Namespace()), subscription="prod"), str(az_dir)
    )
    assert azcli.is_current(
        azcli.Target(resolve(argparse.Namespace()), subscription=TENANT.upper()), str(az_dir)
    )


def test_logout_cloud_switch_and_authority_are_detected(
    az_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_az_state(az_dir, make_jwt())
    assert azcli.is_current(target(), str(az_dir))
    (az_dir / "config").write_text("[core]\noutput = json\n\n[cloud]\nname = AzureUSGovernment\n")
    assert azcli.current_cloud(str(az_dir)) == "AzureUSGovernment"
    assert not azcli.is_current(target(), str(az_dir))
    monkeypatch.setenv("AZURE_CLOUD_NAME", "AzureCloud")  # az's own override wins
    assert azcli.is_current(target(), str(az_dir))
    gov = azcli.Target(resolve(argparse.Namespace()), authority="https://login.microsoftonline.us")
    assert not azcli.is_current(gov, str(az_dir))
    same = azcli.Target(
        resolve(argparse.Namespace()), authority="HTTPS://login.microsoftonline.com/"
    )
    assert azcli.is_current(same, str(az_dir))
    # `az logout` empties both files.
    (az_dir / "azureProfile.json").write_text('{"subscriptions": []}', encoding="utf-8-sig")
    (az_dir / "service_principal_entries.json").write_text("[]")
    assert not azcli.is_current(target(), str(az_dir))


def test_with_the_file_source_az_holding_the_files_token_is_current(
    az_dir: Path, tmp_path: Path
) -> None:
    """The kubelet rotates a projected token at 80% of its life, after our 20-minute margin:
    until it does, az holding the very token in the file is as current as az can be (no
    re-login with the same token before every az command); after, it is not."""
    now = int(time.time())
    projected = tmp_path / "token"
    due = make_jwt(iat=now - 2500, exp=now + 1100, iss="https://oidc.example/cluster")
    projected.write_text(due)
    write_az_state(az_dir, due)
    file_source = {"source": "file", "assertion_file": str(projected)}
    assert not azcli.is_current(target(), str(az_dir))  # Google's source: due, refresh
    assert azcli.is_current(target(**file_source), str(az_dir))
    projected.write_text(make_jwt(iat=now - 60, exp=now + 3540, iss="https://oidc.example/cluster"))
    assert not azcli.is_current(target(**file_source), str(az_dir))  # rotated: log in again
    # A token in its last minutes is never kept, even if the file has nothing newer.
    late = make_jwt(iat=now - 3500, exp=now + 100, iss="https://oidc.example/cluster")
    projected.write_text(late)
    write_az_state(az_dir, late)
    assert not azcli.is_current(target(**file_source), str(az_dir))


def imported_modules(args: list[str], env: dict[str, str]) -> tuple[int, list[str], str]:
    code = (
        "import sys\n"
        "from azfed_helper._internal.cli import main\n"
        f"code = main({args!r})\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(env), capture_output=True, text=True, timeout=60
    )
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    return done.returncode, heavy[-1].removeprefix("HEAVY=").split(","), done.stderr


def recording_az(directory: Path, body: str = "") -> tuple[Path, Path]:
    """A fake `az` that logs each invocation's argv (one line) and then runs ``body``."""
    directory.mkdir(exist_ok=True)
    log = directory / "az.log"
    shim = directory / "az"
    shim.write_text(f'#!/bin/sh\nprintf "%s " "$@" >> "{log}"\necho >> "{log}"\n{body}\n')
    shim.chmod(0o755)
    return shim, log


def test_noop_imports_nothing_heavy_and_runs_no_az(az_dir: Path, tmp_path: Path) -> None:
    write_az_state(az_dir, make_jwt())
    shim, log = recording_az(tmp_path / "bin")
    env = {"PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}"}
    code, heavy, stderr = imported_modules(["az-login"], env)
    assert code == 0, stderr
    assert heavy == [""]
    assert not log.exists()  # no az process
    write_az_state(az_dir, make_jwt(iat=int(time.time()) - 3540, exp=int(time.time()) + 60))
    code, heavy, _ = imported_modules(["az-login", "--az", str(shim)], env)
    assert log.exists()  # the check above can fail: a stale assertion does run az
    assert code != 0 and "filelock" in heavy


def test_wrapper_becomes_az(az_dir: Path, tmp_path: Path) -> None:
    write_az_state(az_dir, make_jwt())
    shim, log = recording_az(tmp_path / "bin", 'echo "pid $$"; read line; echo "in $line"; exit 7')
    child = subprocess.Popen(
        [sys.executable, "-m", "azfed_helper", "az", "--az", str(shim), "--", "group", "list"],
        env=cli_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = child.communicate("hello\n", timeout=30)
    assert child.returncode == 7
    assert out.splitlines() == [f"pid {child.pid}", "in hello"]  # exec: same process
    assert log.read_text().split() == ["group", "list"]


def test_az_missing_is_a_usage_error(az_dir: Path, tmp_path: Path) -> None:
    done = run_cli("az-login", "--az", str(tmp_path / "no-az"))
    assert done.returncode == 2
    assert "the Azure CLI is missing" in done.stderr and "--az PATH" in done.stderr
    done = run_cli("az-login", env={"PATH": str(tmp_path), "AZURE_CLIENT_ID": ""})
    assert done.returncode == 2 and "AZURE_CLIENT_ID is not set" in done.stderr


def test_az_errors_are_explained_without_the_token() -> None:
    token = idtoken.decode(make_jwt())
    stderr = (
        "WARNING: something\nERROR: AADSTS700024: Client assertion is not within its valid time "
        f"range. Current time: 2026-11-26T18:00:00Z {token.raw}\nTrace ID: x\n"
    )
    error = process._az_error(["account", "get-access-token"], 1, stderr, token)
    assert isinstance(error, EntraError) and error.code == 700024
    assert token.raw not in str(error) and "keep the token file fresh" in str(error)
    plain = process._az_error(["login"], 2, "ERROR: unrecognized arguments: --bogus\n", None)
    assert str(plain).startswith("`az login` failed with exit status 2: unrecognized arguments")


def test_login_keeps_the_token_out_of_argv() -> None:
    settings = resolve(argparse.Namespace(client_id=CLIENT, tenant_id=TENANT))
    args = login.login_args(azcli.Target(settings), "tok")
    assert args[args.index("--federated-token") + 1] == "@" + os.path.abspath("tok")
    assert "--skip-subscription-discovery" in args
    with_sub = login.login_args(azcli.Target(settings, subscription="prod"), "tok")
    assert with_sub[-2:] == ["--subscription", "prod"]
    assert "--skip-subscription-discovery" not in with_sub
    # An id is fetched alone (az then fails without switching its profile); no listing needed.
    guid = "6f2b1c3e-0a4d-4b5e-9c7f-1a2b3c4d5e6f"
    by_id = login.login_args(azcli.Target(settings, subscription=guid), "tok")
    assert by_id[-3:] == ["--skip-subscription-discovery", "--subscription", guid]


def test_print_hook_snippets(tmp_path: Path) -> None:
    done = run_cli("az-login", "--print-hook", "bash", "--subscription", "my sub")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("az() { ") and done.stdout.endswith(' -- "$@"; }\n')
    assert "az --subscription 'my sub' --" in done.stdout
    # Config file and profile travel with the hook; relative paths become absolute.
    done = run_cli("az-login", "--print-hook", "bash", "--profile", "p", "--token-file", "rel/t")
    assert done.returncode == 0, done.stderr
    assert "--profile p" in done.stdout
    assert f"--token-file {tmp_path.cwd() / 'rel' / 't'}" in done.stdout


# How each shell loads the printed hook, then calls az with an argument holding a space.
HOOK_SCRIPTS = {
    "bash": 'eval "$(python -m azfed_helper az-login --print-hook bash --az {shim})"\naz x "y z"',
    "zsh": 'eval "$(python -m azfed_helper az-login --print-hook zsh --az {shim})"\naz x "y z"',
    "fish": "python -m azfed_helper az-login --print-hook fish --az {shim} | source\naz x 'y z'",
}


@pytest.mark.parametrize("shell", sorted(HOOK_SCRIPTS))
def test_hook_snippet_wraps_az_in_the_shell(tmp_path: Path, shell: str) -> None:
    """The function really wraps az: its arguments and exit status pass through the hook."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed (.ci/run installs it)")
    write_az_state(tmp_path / "azure", make_jwt())
    shim, log = recording_az(tmp_path / "bin", "exit 3")
    env = cli_env(
        {
            "AZURE_CONFIG_DIR": str(tmp_path / "azure"),
            "AZURE_CLIENT_ID": CLIENT,
            "AZURE_TENANT_ID": TENANT,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
        }
    )
    script = HOOK_SCRIPTS[shell].format(shim=shim)
    ran = subprocess.run([shell, "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 3, ran.stderr
    assert log.read_text() == "x y z \n"


def test_hook_snippet_quoting() -> None:
    fish = hooks.hook_snippet("fish", ["/opt/it's/azfed-helper", "az"])
    assert fish.splitlines()[1] == "    '/opt/it\\'s/azfed-helper' 'az' -- $argv"
    pwsh = hooks.hook_snippet("powershell", ["/opt/it's/azfed-helper", "az"])
    assert pwsh == "function az { & '/opt/it''s/azfed-helper' 'az' -- @args }\n"
    assert (
        hooks.hook_snippet("zsh", ["azfed-helper", "az"]) == 'az() { azfed-helper az -- "$@"; }\n'
    )
