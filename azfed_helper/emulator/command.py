"""``azfed-helper emulator``: run the emulator in the foreground for demos and CI jobs.

Importing this module stays cheap (argparse only); the emulator and its crypto load
inside :func:`run`, so the CLI's start-up is unaffected when another command runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Emulator


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument(
        "--id-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of Google ID tokens the emulator mints (default 3600)",
    )
    parser.add_argument(
        "--access-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of access tokens it issues (default 3600)",
    )
    parser.add_argument("--tenant-id", help="Entra tenant id to emulate (default: a fixed GUID)")
    parser.add_argument("--client-id", help="Entra application (client) id (default: a fixed GUID)")
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help="also write a service-account key there and export GOOGLE_APPLICATION_CREDENTIALS",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="also write the export lines to this file (mode 0600)",
    )


def export_lines(emulator: Emulator, key_file: Path | None = None) -> list[str]:
    """Shell ``export`` lines for the emulator's environment, plus one identity comment."""
    env = emulator.env()
    if key_file is not None:
        env["GOOGLE_APPLICATION_CREDENTIALS"] = os.fspath(key_file.resolve())
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    lines.append(
        f"# service account {emulator.service_account_email} (sub {emulator.service_account_id});"
        f" federated credential issuer https://accounts.google.com, audience"
        f" api://AzureADTokenExchange"
    )
    return lines


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_on_signals(stop: threading.Event) -> dict[signal.Signals, Any]:
    """Turn SIGINT/SIGTERM into ``stop``; returns the handlers to restore afterwards."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        signal.signal(signum, handler)
    return previous


def run(args: argparse.Namespace) -> int:
    """Start the emulator, print its environment, and serve until SIGINT/SIGTERM."""
    from .core import Emulator

    stop = threading.Event()
    previous = _stop_on_signals(stop)
    from .._internal.tokenfile import write_atomic

    try:
        with Emulator(
            id_token_lifetime=args.id_token_lifetime,
            access_token_lifetime=args.access_token_lifetime,
            tenant_id=args.tenant_id,
            client_id=args.client_id,
        ) as emulator:
            if args.key_file is not None:
                emulator.write_service_account_key(args.key_file)
            text = "\n".join(export_lines(emulator, args.key_file)) + "\n"
            if args.env_file is not None:
                write_atomic(os.fspath(args.env_file), text.encode("utf-8"))
            sys.stdout.write(text)
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
    return 0
