"""The TOML config file: profiles, precedence (flags > environment > profile > defaults), errors."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import platformdirs
import pytest

from azfed_helper._internal import paths
from azfed_helper._internal.cli import main
from azfed_helper._internal.config import resolve
from azfed_helper._internal.errors import UsageError

from .conftest import make_jwt, run_cli

CONFIG = """
refresh-margin = "30m"
audience = "api://AzureADTokenExchange"

[profiles.payments]
client-id = "payments-app"
tenant-id = "tenant-a"
token-file = "{token}"
mode = "0640"

[profiles.reports]
client-id = "reports-app"
refresh-margin = 900
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(token=tmp_path / "payments.token"))
    return path


def test_profile_values_and_precedence(config_file: Path, tmp_path: Path) -> None:
    chosen = argparse.Namespace(config=str(config_file), profile="payments")
    settings = resolve(chosen, {})
    assert settings.client_id == "payments-app"
    assert settings.token_file == str(tmp_path / "payments.token")
    assert settings.mode == 0o640
    assert settings.refresh_margin == 1800  # top-level key
    assert (
        resolve(argparse.Namespace(config=str(config_file), profile="reports"), {}).refresh_margin
        == 900
    )
    from_env = resolve(chosen, {"AZURE_CLIENT_ID": "env-app"})
    assert from_env.client_id == "env-app"  # environment beats the profile
    flags = argparse.Namespace(config=str(config_file), profile="payments", client_id="flag-app")
    assert resolve(flags, {"AZURE_CLIENT_ID": "env-app"}).client_id == "flag-app"
    # The environment may choose the file and the profile too.
    by_env = resolve(
        argparse.Namespace(), {"AZFED_CONFIG": str(config_file), "AZFED_PROFILE": "reports"}
    )
    assert by_env.client_id == "reports-app"


def test_no_profile_uses_top_level_only(config_file: Path) -> None:
    settings = resolve(argparse.Namespace(config=str(config_file)), {})
    assert settings.refresh_margin == 1800
    assert settings.client_id is None


@pytest.mark.parametrize(
    ("text", "profile", "message"),
    [
        ("colour = 'blue'\n", None, "unknown key 'colour'"),
        ("[profiles.a]\nclient-idd = 'x'\n", "a", "unknown key 'client-idd' in [profiles.a]"),
        ("[profiles.a]\nclient-id = 'x'\n", "b", "has no profile 'b'"),
        ("refresh-margin = [1]\n", None, "must be a string, number or boolean"),
        ("this is = not toml\n", None, "is not valid TOML"),
        ("mode = '0400'\n", None, "invalid mode (config file"),
    ],
)
def test_errors_name_the_key_and_file(
    tmp_path: Path, text: str, profile: str | None, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        resolve(argparse.Namespace(config=str(path), profile=profile), {})
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        resolve(argparse.Namespace(config=str(tmp_path / "nope.toml")), {})
    with pytest.raises(UsageError, match="no config file exists"):
        resolve(argparse.Namespace(profile="x"), {"HOME": str(tmp_path)})


def test_user_config_location_matches_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    expected = os.path.join(
        platformdirs.user_config_dir("azfed-helper", appauthor=False), "config.toml"
    )
    assert paths.user_config_file(os.environ) == expected
    Path(expected).parent.mkdir(parents=True)
    Path(expected).write_text("[profiles.p]\nclient-id = 'from-user-config'\n")
    assert resolve(argparse.Namespace(profile="p")).client_id == "from-user-config"


def test_cli_commands_take_profiles(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "payments.token").write_text(make_jwt())
    assert main(["status", "--config", str(config_file), "--profile", "payments"]) == 0
    assert f"token file: {tmp_path / 'payments.token'}" in capsys.readouterr().out
    assert main(["env", "--config", str(config_file), "--profile", "payments"]) == 0
    assert "export AZURE_CLIENT_ID=payments-app" in capsys.readouterr().out
    assert main(["status", "--config", str(config_file), "--profile", "nope"]) == 2
    assert "has no profile 'nope'" in capsys.readouterr().err


def test_fast_path_honours_the_profile(config_file: Path, tmp_path: Path) -> None:
    token = tmp_path / "payments.token"
    token.write_text(make_jwt())
    token.chmod(0o640)
    # Fresh token, no Google source reachable: only a no-op can succeed.
    done = run_cli("write", "--config", str(config_file), "--profile", "payments")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_scope_key_as_the_option_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('scope = "https://vault.azure.net/.default https://x/.default"\n')
    assert resolve(argparse.Namespace(config=str(path)), {}).scopes == [
        "https://vault.azure.net/.default",
        "https://x/.default",
    ]
