from __future__ import annotations

import argparse

import pytest

from azfed_helper._internal.config import parse_mode, resolve
from azfed_helper._internal.durations import format_duration, parse_duration
from azfed_helper._internal.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "10x", "-5", "1.5h", "h1"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid"):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(3725) == "1h02m05s"
    assert format_duration(65) == "1m05s"
    assert format_duration(-5) == "-5s"


@pytest.mark.parametrize(("text", "mode"), [("0600", 0o600), ("640", 0o640), ("0644", 0o644)])
def test_parse_mode(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize("text", ["rw", "0400", "1777", "9", "0o1600"])
def test_parse_mode_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="--mode"):
        parse_mode(text)


def test_flags_override_environment_which_overrides_defaults() -> None:
    env = {"AZURE_FEDERATED_TOKEN_FILE": "/env/token", "AZFED_REFRESH_MARGIN": "5m"}
    flags = argparse.Namespace(token_file="/flag/token", refresh_margin=None, mode="0640")
    settings = resolve(flags, env)
    assert settings.token_file == "/flag/token"
    assert settings.refresh_margin == 300
    assert settings.mode == 0o640
    assert settings.audience == "api://AzureADTokenExchange"
    assert resolve(argparse.Namespace(), {}).refresh_margin == 1200


def test_require_token_file_names_both_ways() -> None:
    with pytest.raises(UsageError) as info:
        resolve(argparse.Namespace(), {}).require_token_file()
    assert "--token-file" in str(info.value)
    assert "AZURE_FEDERATED_TOKEN_FILE" in str(info.value)
