from __future__ import annotations

import pytest

from azfed_helper._internal import cli
from azfed_helper._internal.fastpath import fast_tables, parse_simple


def _argv_for(command: str) -> list[str]:
    """Every option the fast path reads for ``command``, each given once with a plain value."""
    values, flags = fast_tables(command)
    argv: list[str] = []
    seen: set[str] = set()
    for flag, option in {**values, **flags}.items():
        if option.dest in seen or not flag.startswith("--"):
            continue
        seen.add(option.dest)
        argv += (
            [flag, option.choices[0] if option.choices else "v"] if option.takes_value else [flag]
        )
    return argv


@pytest.mark.parametrize("command", cli.FAST_PATHS)
def test_fast_path_reads_arguments_exactly_as_the_parser_does(command: str) -> None:
    argv = _argv_for(command)
    fast = parse_simple(argv, command)
    assert fast is not None
    full = vars(
        cli.build_parser([command]).parse_args(
            [command, *argv, *(["--"] if command == "az" else [])]
        )
    )
    assert {dest: full[dest] for dest in fast} == fast


def test_parse_simple_forms() -> None:
    assert parse_simple(["--token-file", "/t", "--mode=0640", "-q"], "write") == {
        "token_file": "/t",
        "mode": "0640",
        "quiet": True,
    }
    assert parse_simple(["--token-file"], "write") is None
    assert parse_simple(["--help"], "write") is None
    assert parse_simple(["--force"], "write") is None
    assert parse_simple(["extra"], "write") is None
    # No prefixes, exactly as the parser (allow_abbrev=False): anything else is the full path.
    assert parse_simple(["--token-f", "/t"], "write") is None
