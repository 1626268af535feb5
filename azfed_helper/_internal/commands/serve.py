"""``azfed-helper serve``: a local managed-identity endpoint for az and every Azure SDK.

Runs until SIGTERM/SIGINT. ``daemon --identity-endpoint`` runs the same server (with the same
options) next to its token-file loop.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from .. import TYPE_CHECKING, logs
from ..config import resolve
from ..identity import envfile as mi_env
from ..identity.endpoint import start_endpoint

if TYPE_CHECKING:
    from types import FrameType

log = logging.getLogger("azfed_helper.serve")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="also print the variables (with the secret) on stdout once listening",
    )


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    settings.require_app()
    logs.setup(settings.log_format, args.verbose - args.quiet)
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, stopping) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = start_endpoint(settings, args)
        try:
            if args.print_env:
                print(mi_env.shell_text(server.variables()), flush=True)
            stop.wait()
            log.info("stopping", extra={"event": "identity_stopping"})
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0
