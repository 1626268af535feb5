"""``azfed-helper daemon``: keep the token file fresh forever, as a sidecar or a service.

The refresh loop runs in a worker thread; the main thread only handles signals, which arrive
through a queue that is safe to fill from a signal handler. So SIGTERM is honoured within a
second even while a request to the token source hangs, and nothing ever polls.

With the ``file`` source there is no token file to keep: the source's file already is one. The
daemon then runs only to serve it (``--identity-endpoint``, ``--az-login``), and says so (exit 2)
when asked for nothing else.
"""

from __future__ import annotations

import argparse

from .. import logs, sources
from ..config import Settings, resolve
from ..errors import UsageError
from ..options import BY_DEST
from ..sidecar import schedule as refresh
from ..sidecar.supervisor import Supervisor
from ..sync import already_a_token_file


def configure(parser: argparse.ArgumentParser) -> None:
    endpoint = parser.add_argument_group("managed-identity endpoint")
    endpoint.add_argument(
        "--identity-endpoint",
        action="store_true",
        help="also serve the managed-identity endpoint, as `azfed-helper serve` does",
    )
    group = parser.add_argument_group("daemon")
    group.add_argument(
        "--once",
        action="store_true",
        help="write once and exit, exactly like `write` (init containers)",
    )
    group.add_argument(
        "--remove-on-exit", action="store_true", help="delete the token file on a clean stop"
    )
    # A flag plus a trailing positional: argparse keeps "--" and what follows for a positional
    # REMAINDER, while an optional's REMAINDER rejects "--" inside a subcommand.
    group.add_argument(
        "--exec",
        dest="exec_flag",
        action="store_true",
        help=f"after the first write run CMD (with {BY_DEST['token_file'].env} set), pass it "
        "signals and exit with its status; write it last: --exec -- CMD [ARGS...]",
    )
    group.add_argument(
        "--az-login",
        action="store_true",
        help="log the Azure CLI in with each new token (see `azfed-helper az-login`)",
    )
    parser.add_argument("exec_argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    if args.once:
        _refuse_with_once(args)
        from .write import write_once

        return write_once(settings, quiet=bool(args.quiet))
    command = _exec_argv(args)
    policy = _policy(settings)
    if sources.select(settings).reads_file:
        _check_file_source(settings, args)
    else:
        settings.require_token_file()
    logs.setup(settings.log_format, args.verbose - args.quiet)
    return Supervisor(settings, policy, args, command).run()


def _refuse_with_once(args: argparse.Namespace) -> None:
    """--once is exactly `write`: options that only mean something to a running daemon clash."""
    clashing = [
        flag
        for flag, given in (
            ("--exec", args.exec_flag or bool(args.exec_argv)),
            (BY_DEST["health_addr"].flag, args.health_addr),
            ("--identity-endpoint", args.identity_endpoint),
            ("--az-login", args.az_login),
            ("--remove-on-exit", args.remove_on_exit),
        )
        if given
    ]
    if clashing:
        raise UsageError(
            f"--once cannot be combined with {', '.join(clashing)}",
            "--once writes the file and exits (an init container); drop --once to run the daemon",
        )


def _check_file_source(settings: Settings, args: argparse.Namespace) -> None:
    """With the file source, the daemon only serves the file: it needs something to serve it
    with, and never deletes what it did not write."""
    if not (args.identity_endpoint or args.az_login):
        raise already_a_token_file(settings)
    if args.remove_on_exit:
        raise UsageError(
            f"--remove-on-exit would delete {settings.assertion_file}, which another process "
            f"keeps fresh ({BY_DEST['source'].flag} file)",
            "drop --remove-on-exit",
        )
    settings.require("assertion_file")


def _exec_argv(args: argparse.Namespace) -> list[str] | None:
    command = args.exec_argv[1:] if args.exec_argv[:1] == ["--"] else args.exec_argv
    if not args.exec_flag:
        if command:
            raise UsageError(
                f"unexpected argument {command[0]!r}",
                "to run a command after the first write, end with --exec -- CMD [ARGS...]",
            )
        return None
    if not command:
        raise UsageError("--exec needs a command", "write it last: --exec -- CMD [ARGS...]")
    return list(command)


def _policy(settings: Settings) -> refresh.Policy:
    low = BY_DEST["min_remaining"]
    if settings.min_remaining >= settings.refresh_margin:
        raise UsageError(
            f"{low.flag} ({settings.min_remaining}s) must be below the refresh margin "
            f"({settings.refresh_margin}s)",
            f"otherwise /readyz fails before every refresh; lower {low.flag} or raise "
            f"{BY_DEST['refresh_margin'].flag}",
        )
    return refresh.Policy(settings.refresh_margin, max_backoff=settings.max_backoff)
