"""``azfed-helper az-login``: make sure az is logged in as the configured app, before each use.

The no-op case (az already holds our validated assertion with more than the refresh margin left)
is answered by fastpath.py without reaching this module; here run the refresh and ``--print-hook``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from .. import options
from ..azcli import hooks, login, state
from ..config import resolve
from ..durations import format_duration


def add_hook_options(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``azfed-helper az`` (and mirrored in fastpath.AZ_LOGIN_VALUES)."""
    options.add_token_file(parser)
    options.add_source(parser)
    options.add_azure(parser)
    group = parser.add_argument_group("Azure CLI")
    group.add_argument("--az", metavar="PATH", help="the az executable (default: az on PATH)")
    group.add_argument(
        "--subscription",
        metavar="ID_OR_NAME",
        help="subscription to select at login (default: none, so login makes no ARM call)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    add_hook_options(parser)
    parser.add_argument(
        "--force", action="store_true", default=None, help="log in again even if az is current"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.add_argument(
        "--print-hook",
        choices=hooks.SHELLS,
        metavar="SHELL",
        help="print a shell function `az` that runs this hook first, then exit "
        f'({", ".join(hooks.SHELLS)}); e.g. eval "$(azfed-helper az-login --print-hook bash)"',
    )


# Hook options whose values are file paths (made absolute in the printed hook).
_PATH_OPTIONS = frozenset({"token_file", "credentials", "config", "az"})


def _self_command() -> list[str]:
    """How the hook calls us back from whatever directory ``az`` runs in: this console script by
    absolute path, else this interpreter isolated, importing this package from where it is now
    (never ``python -m``, which would import an ``azfed_helper`` planted in that directory)."""
    script = sys.argv[0]
    if os.path.basename(script) == "azfed-helper" and os.path.isfile(script):
        return [os.path.abspath(script)]
    from ..isolated import package_location, python_command

    return python_command("azfed_helper._internal.cli", [package_location()])


def hook_command(args: argparse.Namespace) -> list[str]:
    """``azfed-helper az`` with the hook options given on this command line."""
    from ..fastpath import AZ_LOGIN_VALUES, CONFIG_VALUES

    command = [*_self_command(), "az"]
    for option, dest in {**AZ_LOGIN_VALUES, **CONFIG_VALUES}.items():
        value = getattr(args, dest, None)
        if value is not None:
            # The hook runs from any directory: paths given relative to this one must not move.
            text = os.path.abspath(value) if dest in _PATH_OPTIONS else str(value)
            command += [option, text]
    return command


def run(args: argparse.Namespace) -> int:
    if args.print_hook:
        sys.stdout.write(hooks.hook_snippet(args.print_hook, hook_command(args)))
        return 0
    settings = resolve(args)
    target = state.target_from_args(settings, args)
    done = login.ensure(settings, target, force=bool(args.force))
    if done is not None and not args.quiet:
        left = format_duration(done.token.remaining(time.time()))
        print(
            f"az logged in as {target.client_id} (tenant {target.tenant_id}, cloud "
            f"{done.cloud.name}); assertion valid for {left}",
            file=sys.stderr,
        )
    return 0
