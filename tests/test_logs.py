"""Text a client or a token controls never forges a log line or drives the terminal: the escaping
helper, both log formats, and `status` printing a crafted token's claims."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from azfed_helper._internal import logs
from azfed_helper._internal.cli import main

from .conftest import make_jwt

# A fake second log line, a terminal clear-screen, a carriage return over the line, a Unicode
# line separator and a right-to-left override: what an attacker would put in a resource or claim.
HOSTILE = "x\n2026-01-01T00:00:00.000Z error   FAKE\x1b[2J\rover\u2028next\u202eevil\x00"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://vault.azure.net/", "https://vault.azure.net/"),
        ("a\nb", "a\\nb"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("cr\rlf", "cr\\rlf"),
        ("tab\there", "tab\\there"),
        ("nel\x85 ls\u2028 rlo\u202e", "nel\\x85 ls\\u2028 rlo\\u202e"),
        ("C:\\path é ü 日本", "C:\\path é ü 日本"),  # printable text and backslashes unchanged
        (42, "42"),
    ],
)
def test_printable(text: object, shown: str) -> None:
    assert logs.printable(text) == shown
    assert logs.printable(logs.printable(text)) == shown  # idempotent


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    yield stream, logging.getLogger("azfed_helper.test")
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def assert_harmless(output: str, records: int) -> None:
    """``records`` lines, each starting with a timestamp, and no other line break or control
    character (``splitlines`` also breaks at \\r, \\x1c-\\x1e, \\x85, \\u2028 ...)."""
    assert output.count("\n") == len(output.splitlines()) == records
    assert all(char.isprintable() for char in output.replace("\n", ""))
    for line in output.splitlines():
        assert line.startswith("20") and line[4] == "-", line


def test_human_lines_escape_the_message_and_the_traceback(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    logs.setup("human", stream=stream)
    log.info("token for %s from Entra", HOSTILE)
    assert_harmless(stream.getvalue(), 1)
    assert stream.getvalue().endswith(f"token for {logs.printable(HOSTILE)} from Entra\n")
    stream.seek(0)
    stream.truncate()
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.error("internal error answering %s", HOSTILE, exc_info=True)
    output = stream.getvalue()
    lines = output.splitlines()
    assert output.count("\n") == len(lines)  # no line breaks but the traceback's own
    assert all(char.isprintable() for char in output.replace("\n", ""))
    assert lines[0].startswith("20") and lines[1] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in lines[1:])  # no line passes for a record
    assert lines[-2:] == [
        "  ValueError: x",
        "  2026-01-01T00:00:00.000Z error   FAKE\\x1b[2J\\rover\\u2028next\\u202eevil\\x00",
    ]


def test_json_lines_stay_one_object_each(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured
    logs.setup("json", stream=stream)
    log.info("token for %s from Entra", HOSTILE, extra={"event": "x", "scope": HOSTILE})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert all(char.isprintable() for char in lines[0])
    record = json.loads(lines[0])
    assert record["scope"] == HOSTILE and HOSTILE in record["message"]  # exact, once decoded


def test_status_prints_crafted_claims_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token file anyone could have written (or a hostile source) names itself in claims."""
    token_file = tmp_path / "token"
    token_file.write_text(make_jwt(sub=HOSTILE, email=HOSTILE, aud="aud\x1b]0;title\x07"))
    code = main(["status", "--token-file", str(token_file)])
    out = capsys.readouterr().out
    assert code == 1  # the audience is wrong, and the reason quotes it
    assert all(char.isprintable() for char in out.replace("\n", ""))
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "token file",
        "  iss",
        "  sub",
        "  aud",
        "  email",
        "  iat",
        "  exp",
        "  remaining",
        "status",
    ]
    assert "  sub: x\\n2026-01-01T00:00:00.000Z error   FAKE\\x1b[2J\\rover" in out
    assert "aud\\x1b]0;title\\x07" in lines[-1]


def test_status_survives_absurd_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(make_jwt(iat=10**20, exp=10**21))
    assert main(["status", "--token-file", str(token_file)]) == 1
    out = capsys.readouterr().out
    assert "  iat: a number far too large for a time" in out
