"""``azfed-helper write``: one-shot, idempotent refresh of the token file."""

from __future__ import annotations

import argparse
import sys
import time

from .. import options
from ..config import resolve
from ..durations import format_duration
from ..sync import sync_once


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_token_file(parser)
    options.add_source(parser)
    options.add_file_writing(parser)
    parser.add_argument(
        "--force", action="store_true", default=None, help="refresh even if the token is fresh"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    result = sync_once(settings)
    if result.wrote and not args.quiet:
        left = format_duration(result.token.remaining(time.time()))
        print(
            f"wrote {settings.token_file} (sub {result.token.claims.get('sub')}, expires in {left})",
            file=sys.stderr,
        )
    return 0
