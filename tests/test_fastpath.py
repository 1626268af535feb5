from __future__ import annotations

import argparse

from azfed_helper._internal.commands import write
from azfed_helper._internal.fastpath import WRITE_FLAGS, WRITE_VALUES, parse_simple


def test_fast_path_tables_match_write_parser() -> None:
    parser = argparse.ArgumentParser()
    write.configure(parser)
    value_options: dict[str, str] = {}
    flag_options: dict[str, str] = {}
    for action in parser._actions:
        if action.dest in ("help", "force"):
            continue  # --help and --force always take the full path
        target = value_options if action.nargs is None and action.const is None else flag_options
        for option in action.option_strings:
            target[option] = action.dest
    assert value_options == WRITE_VALUES
    assert flag_options == WRITE_FLAGS


def test_parse_simple_forms() -> None:
    assert parse_simple(["--token-file", "/t", "--mode=0640", "-q"], WRITE_VALUES, WRITE_FLAGS) == {
        "token_file": "/t",
        "mode": "0640",
        "quiet": True,
    }
    assert parse_simple(["--token-file"], WRITE_VALUES, WRITE_FLAGS) is None
    assert parse_simple(["--help"], WRITE_VALUES, WRITE_FLAGS) is None
    assert parse_simple(["--force"], WRITE_VALUES, WRITE_FLAGS) is None
    assert parse_simple(["extra"], WRITE_VALUES, WRITE_FLAGS) is None
