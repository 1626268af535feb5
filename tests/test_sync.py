"""sync_once with our own fetch seam (a plain function): the decisions, not the Google side."""

from __future__ import annotations

import argparse
import stat
import time
from pathlib import Path

import pytest

from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.errors import InvalidTokenError, SourceError
from azfed_helper._internal.sync import sync_once

from .conftest import make_jwt


def settings_for(path: Path, **flags: object) -> Settings:
    return resolve(argparse.Namespace(token_file=str(path), **flags), {})


class CountingFetch:
    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls = 0

    def __call__(self, settings: Settings) -> str:
        self.calls += 1
        return self.tokens.pop(0)


def test_fresh_file_makes_no_fetch(tmp_path: Path) -> None:
    path = tmp_path / "token"
    fetch = CountingFetch(make_jwt())
    first = sync_once(settings_for(path), fetch=fetch)
    second = sync_once(settings_for(path), fetch=fetch)
    assert (first.wrote, second.wrote, fetch.calls) == (True, False, 1)
    assert path.read_text() == first.token.raw


def test_force_and_margin_refresh(tmp_path: Path) -> None:
    path = tmp_path / "token"
    now = int(time.time())
    short = make_jwt(iat=now - 3000, exp=now + 600)
    fetch = CountingFetch(short, make_jwt(), make_jwt(sub="2"))
    sync_once(settings_for(path), fetch=fetch)
    result = sync_once(settings_for(path), fetch=fetch)  # 10 min left < 20 min margin
    assert result.wrote and fetch.calls == 2
    sync_once(settings_for(path), fetch=fetch, force=True)
    assert fetch.calls == 3
    assert path.read_text() != result.token.raw


def test_bad_token_from_source_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "token"
    now = int(time.time())
    good = make_jwt(iat=now - 3000, exp=now + 900)
    path.write_text(good)
    for bad, claim in [
        (make_jwt(aud="wrong"), "aud"),
        (make_jwt(iat=now - 7200, exp=now - 3600), "exp"),
        ("not-a-jwt", "format"),
    ]:
        with pytest.raises(InvalidTokenError) as info:
            sync_once(settings_for(path), fetch=CountingFetch(bad))
        assert info.value.claim == claim
        assert path.read_text() == good


def test_source_failure_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old-but-whatever")

    def failing(settings: Settings) -> str:
        raise SourceError("metadata server unreachable")

    with pytest.raises(SourceError):
        sync_once(settings_for(path), fetch=failing)
    assert path.read_text() == "old-but-whatever"


def test_mode_change_applies_without_fetch(tmp_path: Path) -> None:
    path = tmp_path / "token"
    fetch = CountingFetch(make_jwt())
    sync_once(settings_for(path), fetch=fetch)
    result = sync_once(settings_for(path, mode="0640"), fetch=fetch)
    assert result.wrote and fetch.calls == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_never_replaces_with_shorter_lived_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    now = int(time.time())
    longer = make_jwt(iat=now, exp=now + 1000)
    path.write_text(longer)
    result = sync_once(settings_for(path), fetch=CountingFetch(make_jwt(iat=now, exp=now + 800)))
    assert path.read_text() == longer
    assert result.token.raw == longer
