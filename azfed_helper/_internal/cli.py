"""The ``azfed-helper`` command line: the parser built from the option table, and the one error
boundary.

Only the chosen subcommand's module is imported, and the no-op cases of the hot commands are
answered before argparse is even imported (fastpath.py), so ``azfed-helper write`` on a fresh token
file loads nothing beyond the standard library and our light modules (see benchmarks/).
"""

from __future__ import annotations

import sys

from . import TYPE_CHECKING
from .errors import EXIT_RUNTIME, EXIT_USAGE, AzfedError
from .paths import APP_NAME

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

PROG = APP_NAME
EXIT_INTERRUPTED = 130
# Commands whose no-op case is answered without argparse (see fastpath.py).
FAST_PATHS = ("write", "token", "az-login", "az")
# Long-running commands for which SIGHUP is a request from the start (see sighup.py).
HOLD_SIGHUP = ("daemon", "serve")


def _chosen_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str], every: bool = False) -> argparse.ArgumentParser:
    """The parser, with full options only for the subcommand named in ``argv``.

    ``every`` gives every subcommand its options (importing every command's module), for the
    ``completion`` command, which needs the whole tree; normal runs pay only for the one they run.
    """
    import argparse

    from .commands import COMMANDS
    from .parser import DESCRIPTION, EPILOG, Parser, VersionAction, add_options, version_line

    raw = argparse.RawDescriptionHelpFormatter
    parser = Parser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=raw, allow_abbrev=False
    )
    parser.add_argument("--version", action=VersionAction, line=version_line)
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    chosen = _chosen_command(argv)
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=command.summary,
            description=command.summary,
            epilog=command.epilog(),
            formatter_class=raw,
            allow_abbrev=False,
        )
        if every or name == chosen:
            add_options(sub, command)
    return parser


def _quiet_stdout() -> None:
    """The reader of our stdout went away (``| head``): drop what is left, say nothing."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fast(argv: Sequence[str]) -> int | None:
    """The no-op fast path, inside the same boundary: any surprise falls back to the full path."""
    try:
        from .fastpath import try_fast_path

        code = try_fast_path(argv)
        if code is not None:
            sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_RUNTIME
    except Exception:
        return None  # the full path does the same work and reports any error properly


def _report(exc: AzfedError) -> None:
    print(f"{PROG}: error: {exc}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. The only place errors become messages."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    if args_list and args_list[0] in FAST_PATHS and not debug:
        code = _fast(args_list)
        if code is not None:
            return code
    if _chosen_command(args_list) in HOLD_SIGHUP:
        from .sighup import hold

        hold()
    try:
        parser = build_parser(args_list)
        args = parser.parse_args(args_list)
        if args.command not in ("daemon", "serve"):  # those log through logs.setup
            from .net import show_retry_notices

            show_retry_notices()
        result: int = args._run(args)
        sys.stdout.flush()
        return result
    except AzfedError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_RUNTIME
    except Exception as exc:
        if debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc}\n"
            "  hint: rerun with --debug for a traceback and report it",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


__all__ = ["EXIT_USAGE", "main"]
