"""``azfed-helper az [OPTIONS] -- ARGS...``: run the az-login hook, then become ``az ARGS...``.

``os.execvp`` replaces this process, so az's exit status, stdin/stdout/stderr and signals are its
own. The no-op case goes straight to the exec from fastpath.py.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..azcli import login, process, state
from ..config import resolve
from ..durations import format_duration
from ..errors import AzfedError
from ..idtoken import MIN_PRESENTED_LIFETIME


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "az_args", nargs=argparse.REMAINDER, metavar="-- ARGS", help="arguments for az"
    )


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    target = state.target_from_settings(settings)
    az_args = args.az_args[1:] if args.az_args[:1] == ["--"] else args.az_args
    try:
        login.ensure(settings, target)
    except AzfedError as exc:
        # Like the daemon: a failed refresh does not stop az while its login is still good.
        held = state.held_token(target, state.config_dir())
        if held is None or not held.fresh(time.time(), MIN_PRESENTED_LIFETIME):
            raise
        left = held.remaining(time.time())
        print(
            f"azfed-helper: warning: could not refresh az's login: {exc}\n"
            f"  az's current login stays valid for {format_duration(left)}",
            file=sys.stderr,
        )
    process.exec_az(target.az, az_args)
