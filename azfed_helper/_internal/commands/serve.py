"""``azfed-helper serve``: a local managed-identity endpoint for az and every Azure SDK.

Runs until SIGTERM/SIGINT; SIGHUP re-reads ``--secret-file`` (or changes nothing). The endpoint
options are shared with ``daemon --identity-endpoint``, which runs the same server next to its
token-file loop.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal

from .. import TYPE_CHECKING, logs, options, sighup
from ..config import resolve
from ..identity import envfile as mi_env
from ..identity.endpoint import reload_secret, start_endpoint

if TYPE_CHECKING:
    from types import FrameType

    from ..identity.server import IdentityServer

log = logging.getLogger("azfed_helper.serve")
_STOP = (signal.SIGTERM, signal.SIGINT)


def add_endpoint_options(group: argparse._ArgumentGroup) -> None:
    """The endpoint's own options (also offered by ``daemon --identity-endpoint``)."""
    group.add_argument(
        "--port",
        type=int,
        default=mi_env.DEFAULT_PORT,
        help=f"port to listen on (default {mi_env.DEFAULT_PORT}; 0 picks a free one)",
    )
    group.add_argument(
        "--bind",
        metavar="HOST",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; others need --allow-remote)",
    )
    group.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --bind: anyone who can reach it and knows the secret gets tokens",
    )
    group.add_argument(
        "--secret-file",
        metavar="FILE",
        help="read the X-IDENTITY-HEADER secret from FILE (default: a new random one per start)",
    )
    group.add_argument(
        "--env-file",
        metavar="FILE",
        help="where to write IDENTITY_ENDPOINT/IDENTITY_HEADER/NO_PROXY for shells, mode 0600 "
        f"(default <cache dir>/{mi_env.ENV_FILE_NAME})",
    )
    group.add_argument(
        "--imds",
        action="store_true",
        help="also answer IMDS-shaped requests that carry no secret (Metadata: true only); any "
        "local process can then get tokens",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_azure(parser)
    options.add_cache(parser)
    options.add_token_file(parser)
    options.add_source(parser)
    group = parser.add_argument_group("managed-identity endpoint")
    add_endpoint_options(group)
    group.add_argument(
        "--print-env",
        action="store_true",
        help="also print the variables (with the secret) on stdout once listening",
    )
    options.add_logging(group)


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
            _serve(server, args.secret_file, events)
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
