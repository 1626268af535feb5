"""`azfed-helper doctor` against the emulator: passes when all is well, explains what is not."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Any

from azfed_helper.emulator import FederatedCredential

from .conftest import run_cli


def doctor(
    emulator: Any, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    done = run_cli("doctor", "--json", *args, env={**emulator.env(), **(env or {})})
    assert "eyJ" not in done.stdout + done.stderr  # never a token
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_healthy_setup_passes(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    code, checks = doctor(
        emulator, "--token-file", str(token_file), "--reader", "root", env={"PATH": "/usr/bin:/bin"}
    )
    assert code == 0, checks
    assert [c["status"] for c in checks.values()] == ["pass"] * 6 + ["skip"]  # no az on PATH
    shown = {line.split()[0]: line.split()[1:] for line in checks["configuration"]["details"]}
    assert shown["token-file"] == [str(token_file), "(flag)"]
    assert shown["client-id"] == [emulator.client_id, "(env", "AZURE_CLIENT_ID)"]
    assert checks["google source"]["details"][0].startswith("the metadata server at 127.0.0.1:")
    command = checks["federated credential"]["details"][-1]
    argv = shlex.split(command)
    assert argv[:5] == ["az", "ad", "app", "federated-credential", "create"]
    assert argv[argv.index("--id") + 1] == emulator.client_id
    parameters = json.loads(argv[argv.index("--parameters") + 1])
    assert parameters["subject"] == emulator.service_account_id
    assert parameters["issuer"] == "https://accounts.google.com"
    assert parameters["audiences"] == ["api://AzureADTokenExchange"]
    assert "readable by root" in checks["token file"]["details"]
    assert "aud https://management.azure.com" in checks["entra exchange"]["details"][0]
    assert token_file.exists()
    assert emulator.counts["metadata.identity"] == 1  # one token minted, checked and written


def test_problems_fail_with_their_fix(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    emulator.federated_credentials[:] = [FederatedCredential("https://accounts.google.com", "42")]
    code, checks = doctor(emulator, "--token-file", str(token_file), "--reader", "nobody")
    assert code == 1
    assert checks["token file"]["status"] == "fail"
    assert "NOT readable by nobody" in checks["token file"]["details"]
    assert "--group" in checks["token file"]["fix"]
    exchange = checks["entra exchange"]
    assert exchange["status"] == "fail"
    assert any("AADSTS700213" in line for line in exchange["details"])
    assert "federated credential" in exchange["fix"]


def test_missing_source_and_app(emulator: Any, tmp_path: Path) -> None:
    creds = emulator.write_authorized_user(tmp_path / "user.json")
    env = {"AZURE_CLIENT_ID": "", "GOOGLE_APPLICATION_CREDENTIALS": str(creds)}
    code, checks = doctor(emulator, env=env)
    assert code == 1
    assert checks["google source"]["status"] == "fail"
    assert "--impersonate" in checks["google source"]["fix"]
    assert checks["federated credential"]["status"] == "skip"
    assert checks["token file"]["status"] == "skip"
    assert checks["entra exchange"]["status"] == "skip"
    assert os.environ.get("AZURE_CLIENT_ID") is None
