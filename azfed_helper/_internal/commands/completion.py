"""``azfed-helper completion SHELL``: print a completion script generated from the parser."""

from __future__ import annotations

import argparse
import sys

from ..completion import SHELLS, script


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help=" or ".join(SHELLS))


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(script(args.shell))
    return 0
