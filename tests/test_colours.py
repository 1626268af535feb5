"""When a stream gets colour: a terminal, without NO_COLOR (any non-empty value) or TERM=dumb."""

from __future__ import annotations

import io
import os
import pty
from collections.abc import Iterator
from typing import TextIO

import pytest

from azfed_helper._internal import colours


@pytest.fixture
def terminal() -> Iterator[TextIO]:
    main, child = pty.openpty()
    try:
        with os.fdopen(child, "w") as stream:
            yield stream
    finally:
        os.close(main)


@pytest.mark.parametrize(
    ("no_color", "term", "expected"),
    [
        (None, "xterm", True),
        ("", "xterm", True),  # no-color.org: only a non-empty value disables
        ("1", "xterm", False),
        ("0", "xterm", False),  # any non-empty value, even "0"
        (None, "dumb", False),
        (None, None, True),
    ],
)
def test_a_terminal_gets_colour_unless_told_not_to(
    terminal: TextIO,
    monkeypatch: pytest.MonkeyPatch,
    no_color: str | None,
    term: str | None,
    expected: bool,
) -> None:
    for name, value in (("NO_COLOR", no_color), ("TERM", term)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert colours.enabled(terminal) is expected


def test_pipes_files_and_closed_streams_get_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert colours.enabled(io.StringIO()) is False
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as pipe:
        assert colours.enabled(pipe) is False
    assert colours.enabled(pipe) is False  # closed: ValueError inside, no colour


def test_paint() -> None:
    assert colours.paint("ok", colours.GREEN, True) == "\x1b[32mok\x1b[0m"
    assert colours.paint("NOT OK", colours.RED, False) == "NOT OK"
