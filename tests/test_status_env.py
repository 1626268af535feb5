"""`status` (a probe: exit codes and output) and `env` (what consumers read)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from azfed_helper._internal.cli import main

from .conftest import make_jwt, run_cli
from .ptyrun import run_in_pty


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["status", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_status_healthy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    raw = make_jwt(email="sa@p.iam.gserviceaccount.com")
    token_file.write_text(raw)
    code, text = status(capsys, "--token-file", str(token_file))
    assert code == 0
    assert "status: ok" in text
    assert "sub: 112233445566778899001" in text
    assert "remaining: 59m" in text
    assert raw not in text and raw.split(".")[1] not in text


def test_status_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(make_jwt())
    code, text = status(capsys, "--token-file", str(token_file), "--json")
    report = json.loads(text)
    assert code == 0
    assert report["ok"] is True
    assert report["claims"]["aud"] == "api://AzureADTokenExchange"
    assert 3500 < report["remaining_seconds"] <= 3600


@pytest.mark.parametrize(
    ("content", "args", "reason"),
    [
        (None, [], "does not exist"),
        ("", [], "is empty"),
        ("garbage", [], "not a JWT"),
        ("expired", [], "claim 'exp'"),
        ("short", [], "less than the required 10m00s"),
        ("ok", ["--min-remaining", "2h"], "less than the required 2h00m00s"),
        ("ok", ["--audience", "other"], "claim 'aud'"),
    ],
)
def test_status_unhealthy(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    args: list[str],
    reason: str,
) -> None:
    token_file = tmp_path / "token"
    now = int(time.time())
    tokens = {
        "expired": make_jwt(iat=now - 7200, exp=now - 3600),
        "short": make_jwt(iat=now - 3300, exp=now + 300),
        "ok": make_jwt(),
    }
    if content is not None:
        token_file.write_text(tokens.get(content, content))
    code, text = status(capsys, "--token-file", str(token_file), *args)
    assert code == 1
    assert reason in text


def test_env_for_azure_and_terraform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--client-id", "app-id", "--tenant-id", "tenant-id"]
    odd_path = tmp_path / "it's here" / "token"
    assert main(["env", "--token-file", str(odd_path), *common]) == 0
    script = capsys.readouterr().out
    printed = subprocess.run(
        ["sh", "-c", script + '\nprintf %s "$AZURE_FEDERATED_TOKEN_FILE|$AZURE_AUTHORITY_HOST"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == f"{odd_path}|https://login.microsoftonline.com"
    assert "export AZURE_CLIENT_ID=app-id" in script
    argv = ["env", "--for", "terraform", "--format", "json", "--token-file", "t", *common]
    argv += ["--authority-host", "https://login.microsoftonline.us"]
    assert main(argv) == 0
    terraform = json.loads(capsys.readouterr().out)
    assert terraform == {
        "ARM_USE_OIDC": "true",
        "ARM_OIDC_TOKEN_FILE_PATH": str(Path("t").resolve()),
        "ARM_CLIENT_ID": "app-id",
        "ARM_TENANT_ID": "tenant-id",
        "ARM_ENVIRONMENT": "usgovernment",
    }


def test_env_missing_values_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["env", "--token-file", "t"]) == 2
    assert "AZURE_TENANT_ID is not set" in capsys.readouterr().err
    assert main(["env", "--token-file", "t", "--tenant-id", "x"]) == 2
    assert "AZURE_CLIENT_ID is not set" in capsys.readouterr().err


def test_debug_shows_the_traceback_before_or_after_the_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["env", "--token-file", "t"]) == 2  # without --debug: one line, no traceback
    assert "Traceback" not in capsys.readouterr().err
    for argv in (["--debug", "env", "--token-file", "t"], ["env", "--debug", "--token-file", "t"]):
        assert main(argv) == 2  # the documented exit code, with the traceback shown too
        err = capsys.readouterr().err
        assert "Traceback" in err
        assert err.rstrip().splitlines()[-2].startswith("azfed-helper: error: ")


def test_status_colours_its_verdict_on_a_terminal_only(tmp_path: Path) -> None:
    """ok in green, NOT OK in red; the reason (token text) escaped and uncoloured; plain with
    NO_COLOR and through a pipe."""
    token_file = tmp_path / "token"
    token_file.write_text(make_jwt())
    code, text = run_in_pty("status", "--token-file", str(token_file))
    assert code == 0
    assert "status: \x1b[32mok\x1b[0m\n" in text
    token_file.write_text(make_jwt(aud="api://x\x1b[2J"))
    code, text = run_in_pty("status", "--token-file", str(token_file))
    assert code == 1
    assert "status: \x1b[31mNOT OK\x1b[0m: " in text
    assert "\x1b[2J" not in text and "\\x1b[2J" in text.split("NOT OK")[1]
    code, text = run_in_pty("status", "--token-file", str(token_file), env={"NO_COLOR": "1"})
    assert code == 1
    assert "status: NOT OK: " in text and "\x1b[" not in text
    piped = run_cli("status", "--token-file", str(token_file))
    assert piped.returncode == 1
    assert "status: NOT OK: " in piped.stdout and "\x1b" not in piped.stdout
