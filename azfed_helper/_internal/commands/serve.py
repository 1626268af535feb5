"""``azfed-helper serve``: a local managed-identity endpoint for az and every Azure SDK.

Runs until SIGTERM/SIGINT; SIGHUP re-reads ``--secret-file`` (or changes nothing).
``daemon --identity-endpoint`` runs the same server, with the same options, next to its
token-file loop.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal

from .. import TYPE_CHECKING, logs, sighup
from ..config import resolve
from ..identity import envfile as mi_env
from ..identity.endpoint import reload_secret, start_endpoint

if TYPE_CHECKING:
    from types import FrameType

    from ..identity.server import IdentityServer

log = logging.getLogger("azfed_helper.serve")
_STOP = (signal.SIGTERM, signal.SIGINT)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="also print the variables (with the secret) on stdout once listening",
    )


def run(args: argparse.Namespace) -> int:
    events: queue.SimpleQueue[int] = queue.SimpleQueue()

    def signalled(signum: int, frame: FrameType | None) -> None:
        events.put(signum)  # SimpleQueue.put is reentrant: safe in a signal handler

    previous = {s: signal.signal(s, signalled) for s in (*_STOP, signal.SIGHUP)}
    sighup.take()  # one during start-up: the secret is about to be read anyway
    try:
        settings = resolve(args)
        settings.require_app()
        logs.setup(settings.log_format, args.verbose - args.quiet)
        server = start_endpoint(settings, args)
        try:
            if args.print_env:
                print(mi_env.shell_text(server.variables()), flush=True)
            _serve(server, settings.secret_file, events)
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _serve(server: IdentityServer, secret_file: str | None, events: queue.SimpleQueue[int]) -> None:
    """Handle signals until SIGTERM or SIGINT: SIGHUP re-reads the secret file."""
    while True:
        signum = events.get()
        if signum == signal.SIGHUP:
            reload_secret(server, secret_file)
        else:
            name = signal.Signals(signum).name
            log.info("%s: stopping", name, extra={"event": "identity_stopping"})
            return
