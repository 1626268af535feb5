"""The whole command-line parser, for argparse-manpage (packaging/debian/build.py makes the
manual page azfed-helper(1) from it, so the page says what --help says)."""

from __future__ import annotations

import argparse

from azfed_helper._internal.cli import build_parser


def parser() -> argparse.ArgumentParser:
    return build_parser([], every=True)
