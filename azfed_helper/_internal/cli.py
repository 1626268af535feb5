"""The ``azfed-helper`` command line: the subcommand table and the one error boundary.

Only the chosen subcommand's module is imported, so ``azfed-helper write`` on a fresh token file
loads nothing beyond the standard library and our light modules (see benchmarks/).
"""

from __future__ import annotations

import sys

from .._version import __version__
from . import TYPE_CHECKING
from .errors import EXIT_RUNTIME, EXIT_USAGE, AzfedError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

PROG = "azfed-helper"

# name -> (module providing configure(parser) and run(args) -> int, one-line summary)
COMMANDS: dict[str, tuple[str, str]] = {
    "write": (
        "azfed_helper._internal.commands.write",
        "make the token file hold a fresh Google ID token",
    ),
    "status": (
        "azfed_helper._internal.commands.status",
        "inspect the token file (exit 1 when stale)",
    ),
    "daemon": (
        "azfed_helper._internal.commands.daemon",
        "keep the token file fresh forever (sidecar/service)",
    ),
    "env": ("azfed_helper._internal.commands.env", "print the environment that Azure clients read"),
    "az-login": (
        "azfed_helper._internal.commands.az_login",
        "keep the Azure CLI logged in (run before az)",
    ),
    "az": ("azfed_helper._internal.commands.az", "run the az-login hook, then become `az ARGS...`"),
    "token": (
        "azfed_helper._internal.commands.token",
        "print an Azure access token (no Azure secret)",
    ),
    "serve": (
        "azfed_helper._internal.commands.serve",
        "run a local managed-identity endpoint for az/SDKs",
    ),
    "doctor": (
        "azfed_helper._internal.commands.doctor",
        "diagnose the set-up, each check with its fix",
    ),
    "emulator": ("azfed_helper.emulator.command", "run the offline Google + Entra emulator"),
    "demo": (
        "azfed_helper._internal.commands.demo",
        "walk the whole flow against the embedded emulator",
    ),
}

# Commands whose no-op case is answered without argparse (see fastpath.py).
FAST_PATHS = ("write", "token", "az-login", "az")
# Long-running commands for which SIGHUP is a request from the start (see sighup.py).
HOLD_SIGHUP = ("daemon", "serve")


def _chosen_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with full options only for the subcommand named in ``argv``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reach Azure from Google Cloud with no Azure secret.",
        epilog="exit codes: 0 success, 1 runtime failure, 2 usage or configuration error",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen_command(argv)
    for name, (module_name, summary) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=summary, description=summary)
        if name == chosen:
            import importlib

            module = importlib.import_module(module_name)
            module.configure(sub)
            # Also accepted after the command; SUPPRESS keeps a top-level --debug from being reset.
            sub.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
            if name not in WITHOUT_SETTINGS:
                _add_config_options(sub)
            sub.set_defaults(_run=module.run)
    return parser


# Commands that do not read Settings, so a config file means nothing to them.
WITHOUT_SETTINGS = ("emulator", "demo")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration file")
    group.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (env AZFED_CONFIG; default: ~/.config/azfed-helper/config.toml, "
        "then /etc/azfed-helper/config.toml)",
    )
    group.add_argument(
        "--profile", metavar="NAME", help="profile in the config file (env AZFED_PROFILE)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. The only place errors become messages."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in FAST_PATHS:
        from .fastpath import try_fast_path

        code = try_fast_path(args_list)
        if code is not None:
            return code
    if _chosen_command(args_list) in HOLD_SIGHUP:
        from .sighup import hold

        hold()
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    try:
        result: int = args._run(args)
        return result
    except AzfedError as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_RUNTIME
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {exc}\n"
            "  hint: rerun with --debug for a traceback and report it",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


__all__ = ["COMMANDS", "EXIT_USAGE", "main"]
