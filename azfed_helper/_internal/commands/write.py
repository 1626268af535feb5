"""``azfed-helper write``: one-shot, idempotent refresh of the token file."""

from __future__ import annotations

import argparse
import sys
import time

from ..config import Settings, resolve
from ..durations import format_duration
from ..sync import sync_once


def run(args: argparse.Namespace) -> int:
    return write_once(resolve(args), force=bool(args.force), quiet=bool(args.quiet))


def write_once(settings: Settings, *, force: bool = False, quiet: bool = False) -> int:
    """One refresh of the token file, saying on stderr when it was replaced (also daemon --once)."""
    result = sync_once(settings, force=force)
    if result.wrote and not quiet:
        left = format_duration(result.token.remaining(time.time()))
        print(
            f"wrote {settings.token_file} (sub {result.token.claims.get('sub')}, expires in {left})",
            file=sys.stderr,
        )
    return 0
