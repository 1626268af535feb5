"""``azfed-helper az-login``: make sure az is logged in as the configured app, before each use.

The no-op case (az already holds our validated assertion with more than the refresh margin left)
is answered by fastpath.py without reaching this module; here run the refresh and ``--print-hook``.
"""

from __future__ import annotations

import argparse
import sys
import time

from ..azcli import hooks, login, state
from ..config import resolve
from ..durations import format_duration


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-hook",
        choices=hooks.SHELLS,
        metavar="SHELL",
        help="print a shell function `az` that runs this hook first, then exit "
        f'({", ".join(hooks.SHELLS)}); e.g. eval "$(azfed-helper az-login --print-hook bash)"',
    )


def run(args: argparse.Namespace) -> int:
    if args.print_hook:
        sys.stdout.write(hooks.hook_snippet(args.print_hook, hooks.hook_command(args)))
        return 0
    settings = resolve(args)
    target = state.target_from_settings(settings)
    done = login.ensure(settings, target, force=bool(args.force))
    if done is not None and not args.quiet:
        left = format_duration(done.token.remaining(time.time()))
        print(
            f"az logged in as {target.client_id} (tenant {target.tenant_id}, cloud "
            f"{done.cloud.name}); assertion valid for {left}",
            file=sys.stderr,
        )
    return 0
