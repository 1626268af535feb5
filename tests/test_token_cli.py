"""`azfed-helper token` as users run it: a child process against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal.fastpath import parse_simple
from azfed_helper.emulator import FederatedCredential

from .conftest import cli_env, make_jwt, run_cli

RESOURCE = ("--resource", "https://management.azure.com")
HEAVY = ("msal", "requests", "google.auth", "azure.core", "filelock", "platformdirs", "argparse")


@pytest.fixture
def env(emulator: Any, tmp_path: Path) -> dict[str, str]:
    return {
        **emulator.env(),
        "AZFED_CACHE_DIR": str(tmp_path / "cache"),
        "AZURE_FEDERATED_TOKEN_FILE": str(tmp_path / "token"),
    }


def test_fast_path_reads_repeated_scopes() -> None:
    assert parse_simple(["--scope", "a", "--scope=b", "-o", "json"], "token") == {
        "scopes": ["a", "b"],
        "output": "json",
    }


def test_outputs_and_cache_hits(emulator: Any, env: dict[str, str]) -> None:
    first = run_cli("token", *RESOURCE, env=env)
    assert first.returncode == 0, first.stderr
    access_token = first.stdout.strip()
    assert access_token.count(".") == 2
    as_json = json.loads(run_cli("token", *RESOURCE, "--output", "json", env=env).stdout)
    assert as_json["accessToken"] == access_token
    assert as_json["tenant"] == emulator.tenant_id
    kube = json.loads(
        run_cli(
            "token",
            *RESOURCE,
            "-o",
            "exec-credential",
            env={
                **env,
                "KUBERNETES_EXEC_INFO": '{"apiVersion": "client.authentication.k8s.io/v1beta1"}',
            },
        ).stdout
    )
    assert (kube["apiVersion"], kube["status"]["token"]) == (
        "client.authentication.k8s.io/v1beta1",
        access_token,
    )
    shell = run_cli("token", *RESOURCE, "-o", "env", env=env).stdout
    assert shell.startswith(
        f"export AZURE_ACCESS_TOKEN={access_token}\n"
    )  # shell.quote: a JWT needs no quotes
    assert emulator.counts["entra.token"] == 1
    assert emulator.counts["metadata.identity"] == 1
    other = run_cli("token", "--scope", "https://storage.azure.com/.default", env=env)
    assert other.returncode == 0 and other.stdout.strip() != access_token
    assert emulator.counts["entra.token"] == 2


def imported_modules(args: list[str], env: dict[str, str]) -> tuple[int, list[str], str]:
    """Run main(args) in a fresh interpreter; report which heavy modules it loaded."""
    code = (
        "import sys\n"
        "from azfed_helper._internal.cli import main\n"
        f"code = main({args!r})\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r})\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    return (
        done.returncode,
        heavy[-1].removeprefix("HEAVY=").split(",") if heavy else ["?"],
        done.stderr,
    )


def test_cache_hit_imports_nothing_heavy(env: dict[str, str]) -> None:
    assert run_cli("token", *RESOURCE, env=env).returncode == 0
    code, heavy, stderr = imported_modules(["token", *RESOURCE, "-o", "json"], env)
    assert code == 0, stderr
    assert heavy == [""]
    code, heavy, _ = imported_modules(["token", "--scope", "https://other/.default"], env)
    assert code == 0
    assert "msal" in heavy  # the check above can fail: a miss does load MSAL


def test_noop_write_imports_nothing_heavy(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    path.write_text(make_jwt())
    path.chmod(0o600)
    code, heavy, stderr = imported_modules(["write", "--token-file", str(path)], env)
    assert code == 0, stderr
    assert heavy == [""]


def herd(env: dict[str, str], *requests: tuple[str, ...]) -> list[str]:
    """Start one ``token`` process per request at once; their outputs, once all have ended."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", "token", *request],
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for request in requests
    ]
    outputs = [child.communicate(timeout=90) for child in children]
    assert [child.returncode for child in children] == [0] * len(children), outputs[0][1]
    return [out for out, _ in outputs]


def test_thundering_herd_makes_one_exchange(emulator: Any, env: dict[str, str]) -> None:
    outputs = herd(env, *[RESOURCE] * 16)
    assert len(set(outputs)) == 1
    assert emulator.counts["entra.token"] == 1
    assert emulator.counts["metadata.identity"] == 1
    assert emulator.counts["entra.discovery"] == 1


def test_a_herd_for_two_tokens_makes_one_exchange_each_and_keeps_both(
    emulator: Any, env: dict[str, str]
) -> None:
    """Each token has its own lock: one request per token, and neither writer loses the other's."""
    storage = ("--scope", "https://storage.azure.com/.default")
    outputs = herd(env, *[RESOURCE, storage] * 8)
    assert len(set(outputs[0::2])) == 1 and len(set(outputs[1::2])) == 1
    assert outputs[0] != outputs[1]
    assert emulator.counts["entra.token"] == 2
    cached = json.loads((Path(env["AZFED_CACHE_DIR"]) / "msal_token_cache.json").read_text())
    assert sorted(entry["target"] for entry in cached["AccessToken"].values()) == [
        "https://management.azure.com/.default",
        "https://storage.azure.com/.default",
    ]


def test_corrupted_cache_file_is_rebuilt(emulator: Any, env: dict[str, str]) -> None:
    cache_dir = Path(env["AZFED_CACHE_DIR"])
    cache_dir.mkdir(mode=0o700)
    (cache_dir / "msal_token_cache.json").write_text("garbage{")
    done = run_cli("token", *RESOURCE, env=env)
    assert done.returncode == 0
    assert "unreadable" in done.stderr
    assert run_cli("token", *RESOURCE, env=env).stdout == done.stdout
    assert emulator.counts["entra.token"] == 1


def test_refusal_is_explained_without_any_token(emulator: Any, env: dict[str, str]) -> None:
    emulator.federated_credentials[:] = [
        FederatedCredential("https://accounts.google.com", "wrong")
    ]
    done = run_cli("token", *RESOURCE, env=env)
    assert done.returncode == 1
    assert "AADSTS700213" in done.stderr
    assert emulator.service_account_id in done.stderr
    assert Path(env["AZURE_FEDERATED_TOKEN_FILE"]).read_text() not in done.stderr + done.stdout


def test_usage_errors(env: dict[str, str]) -> None:
    done = run_cli("token", env=env)
    assert (done.returncode, "no scope given" in done.stderr) == (2, True)
    done = run_cli("token", *RESOURCE, env={**env, "AZURE_CLIENT_ID": ""})
    assert (done.returncode, "AZURE_CLIENT_ID" in done.stderr) == (2, True)


def test_azure_cli_credential_reads_our_json(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """azure-identity's AzureCliCredential, unmodified, with `az` answered by `token -o json`."""
    from azure.identity import AzureCliCredential

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_az = bin_dir / "az"
    # AzureCliCredential runs: az account get-access-token --output json --resource R
    fake_az.write_text(
        f'#!/bin/sh\nshift 4\nexec {sys.executable} -m azfed_helper token -o json "$@"\n'
    )
    fake_az.chmod(0o755)
    for name, value in cli_env(env).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    token = AzureCliCredential().get_token("https://management.azure.com/.default")
    assert token.token == run_cli("token", *RESOURCE, env=env).stdout.strip()
    assert token.expires_on > 0
