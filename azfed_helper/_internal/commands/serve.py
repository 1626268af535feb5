"""``azfed-helper serve``: a local managed-identity endpoint for az and every Azure SDK.

Runs until SIGTERM/SIGINT. The endpoint options and :func:`start_endpoint` are shared with
``daemon --identity-endpoint``, which runs the same server next to its token-file loop.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import stat
import threading

from .. import TYPE_CHECKING, logs, options
from ..config import resolve
from ..errors import UsageError
from ..identity import envfile as mi_env

if TYPE_CHECKING:
    from types import FrameType

    from ..config import Settings
    from ..identity.server import IdentityServer

log = logging.getLogger("azfed_helper.serve")

_MAX_SECRET = 4096


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


def read_secret(path: str) -> str:
    """The secret in ``path``, whitespace stripped; it becomes an HTTP header value."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_SECRET + 1)
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(
            f"cannot read --secret-file {path}: {exc.strerror}", "check the path"
        ) from exc
    try:
        secret = data.decode("ascii").strip()
    except UnicodeDecodeError:
        secret = ""
    if not secret or len(data) > _MAX_SECRET or not secret.isprintable() or " " in secret:
        raise UsageError(
            f"--secret-file {path} must hold one line of printable ASCII without spaces",
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE",
        )
    if mode & stat.S_IROTH:
        log.warning(
            "--secret-file %s is readable by every user: anyone on this machine can get tokens",
            path,
            extra={"event": "identity_secret_exposed"},
        )
    return secret


def start_endpoint(settings: Settings, args: argparse.Namespace) -> IdentityServer:
    """Start the server from the endpoint options and publish its env file; ``stop()`` ends both."""
    from ..httpserve import is_loopback
    from ..identity.server import IdentityServer

    if not is_loopback(args.bind) and not args.allow_remote:
        raise UsageError(
            f"refusing to serve managed-identity tokens on non-loopback address {args.bind}",
            "keep the default 127.0.0.1, or pass --allow-remote if other hosts really must reach it",
        )
    secret = read_secret(args.secret_file) if args.secret_file else secrets.token_urlsafe(32)
    server = IdentityServer(settings, secret, host=args.bind, port=args.port, imds=args.imds)
    env_file = args.env_file or mi_env.default_env_file(settings)
    server.start()
    try:
        server.publish(env_file)
    except BaseException:
        server.stop()
        raise
    _announce(server, env_file, args)
    return server


def _announce(server: IdentityServer, env_file: str, args: argparse.Namespace) -> None:
    from ..httpserve import is_loopback

    fields = {"event": "identity_listening", "endpoint": server.url, "env_file": env_file}
    log.info(
        "managed-identity endpoint on %s (app %s); environment in %s "
        '(eval "$(azfed-helper env --for managed-identity)")',
        server.url,
        server.client_id,
        env_file,
        extra=fields,
    )
    if not is_loopback(server.address[0]):
        log.warning(
            "the managed-identity endpoint %s is reachable from other hosts: anyone who learns "
            "the secret can get Azure tokens as %s",
            server.url,
            server.client_id,
            extra={"event": "identity_exposed"},
        )
    if args.imds:
        log.warning(
            "IMDS path %s answers requests without a secret: any local process can get tokens",
            server.imds_url,
            extra={"event": "identity_imds_open"},
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
