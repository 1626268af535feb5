"""Starting the managed-identity endpoint from its options: the secret, the bind address, the
environment file, and the warnings an operator must see. Shared by ``serve`` and
``daemon --identity-endpoint``.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat

from .. import TYPE_CHECKING
from ..errors import AzfedError, UsageError
from ..options import BY_DEST, BY_NAME
from . import envfile as mi_env

if TYPE_CHECKING:
    import argparse

    from ..config import Settings
    from .server import IdentityServer

log = logging.getLogger("azfed_helper.serve")

_MAX_SECRET = 4096
_SECRET = BY_DEST["secret_file"].flag
_ALLOW_REMOTE = BY_NAME["allow-remote"].flag


def read_secret(path: str) -> str:
    """The secret in ``path``, whitespace stripped; it becomes an HTTP header value."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_SECRET + 1)
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"cannot read {_SECRET} {path}: {exc.strerror}", "check the path") from exc
    try:
        secret = data.decode("ascii").strip()
    except UnicodeDecodeError:
        secret = ""
    if not secret or len(data) > _MAX_SECRET or not secret.isprintable() or " " in secret:
        raise UsageError(
            f"{_SECRET} {path} must hold one line of printable ASCII without spaces",
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE",
        )
    if mode & stat.S_IROTH:
        log.warning(
            "%s %s is readable by every user: anyone on this machine can get tokens",
            _SECRET,
            path,
            extra={"event": "identity_secret_exposed"},
        )
    return secret


def start_endpoint(settings: Settings, args: argparse.Namespace) -> IdentityServer:
    """Start the server from the endpoint options and publish its env file; ``stop()`` ends both."""
    from ..httphandler import is_loopback
    from .server import IdentityServer

    if not is_loopback(settings.bind) and not args.allow_remote:
        raise UsageError(
            f"refusing to serve managed-identity tokens on non-loopback address {settings.bind}",
            f"keep the default 127.0.0.1, or pass {_ALLOW_REMOTE} if other hosts really must reach it",
        )
    secret = (
        read_secret(settings.secret_file) if settings.secret_file else secrets.token_urlsafe(32)
    )
    server = IdentityServer(
        settings, secret, host=settings.bind, port=settings.port, imds=args.imds
    )
    env_file = settings.env_file or mi_env.default_env_file(settings)
    server.start()
    try:
        server.publish(env_file)
    except BaseException:
        server.stop()
        raise
    _announce(server, env_file, args)
    return server


def reload_secret(server: IdentityServer, path: str | None) -> None:
    """SIGHUP: re-read ``--secret-file``. A file that is now missing or invalid keeps the previous
    secret (clients holding it keep working) and logs why."""
    if not path:
        log.info(
            "SIGHUP: the endpoint's secret is random per start, nothing to re-read "
            f"({_SECRET} makes it replaceable)",
            extra={"event": "identity_secret_kept"},
        )
        return
    try:
        server.replace_secret(read_secret(path))
    except AzfedError as exc:
        log.error(
            "SIGHUP: cannot use %s %s, keeping the previous secret: %s",
            _SECRET,
            path,
            exc.message,
            extra={"event": "identity_secret_reload_failed"},
        )
        return
    log.info(
        "SIGHUP: new secret from %s in force", path, extra={"event": "identity_secret_reloaded"}
    )


def _announce(server: IdentityServer, env_file: str, args: argparse.Namespace) -> None:
    from ..httphandler import is_loopback

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
