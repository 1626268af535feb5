"""Our default directories are platformdirs' (computed without importing it on Linux)."""

from __future__ import annotations

import os

import platformdirs
import pytest

from azfed_helper._internal import paths


@pytest.mark.parametrize(
    ("xdg", "home"),
    [(None, "/home/u"), ("/xdg/base", "/home/u"), ("relative/base", "/home/u"), ("", "/h")],
)
def test_cache_and_config_dirs_are_what_platformdirs_says(
    monkeypatch: pytest.MonkeyPatch, xdg: str | None, home: str
) -> None:
    monkeypatch.setenv("HOME", home)
    for variable in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        if xdg is not None:
            monkeypatch.setenv(variable, xdg)
    assert paths.user_cache_dir() == platformdirs.user_cache_dir("azfed-helper", appauthor=False)
    expected = os.path.join(
        platformdirs.user_config_dir("azfed-helper", appauthor=False), "config.toml"
    )
    assert paths.user_config_file() == expected


def test_a_relative_xdg_value_is_ignored_as_the_spec_says() -> None:
    env = {"HOME": "/home/u", "XDG_CACHE_HOME": "rel", "XDG_CONFIG_HOME": "rel"}
    assert paths.user_cache_dir(env) == "/home/u/.cache/azfed-helper"
    assert paths.user_config_file(env) == "/home/u/.config/azfed-helper/config.toml"
