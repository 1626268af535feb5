"""What the two network edges (the Google source and the Entra exchange) share.

A failed request from ``requests`` reads as a 700-character urllib3 repr; users need the endpoint
and the reason in a few words. A CA bundle named in the environment that no longer exists surfaces
from ``requests`` as a bare ``OSError`` at request time; it is checked first and named instead.
Retries that make a user wait are announced on the ``azfed_helper.retry`` logger, which stays
silent in library use (a ``NullHandler``) unless the CLI or the daemon's logging shows it.
Light: ``logging`` and ``requests`` are imported only where a retry or a failure is handled.
"""

from __future__ import annotations

import os
import sys

from . import TYPE_CHECKING
from .errors import UsageError

if TYPE_CHECKING:
    import logging

RETRY_LOGGER = "azfed_helper.retry"
# requests reads these (first non-empty wins) for https requests whose verify is left default.
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
UNRESOLVED = "the host name does not resolve"
# Waits longer than this are announced at WARNING (shown by foreground commands).
NOTICEABLE = 1.0


def check_ca_bundle(url: str) -> None:
    """Refuse an https request whose CA bundle variable names a file that is not there."""
    if not url.lower().startswith("https:"):
        return
    for name in CA_VARIABLES:
        path = os.environ.get(name)
        if path:
            if not os.path.exists(path):
                raise UsageError(
                    f"{name} names the CA bundle {path}, which does not exist",
                    f"point {name} at an existing PEM bundle or unset it (a stopped emulator "
                    "deletes its CA file)",
                )
            return


def timeout_reason(exc: BaseException, limit: float) -> str:
    """What a requests timeout means, in a few words: a silent server or a silent resolver."""
    from .dnsbound import SlowResolution  # requests is loaded already: it raised exc

    for inner in _chain(exc):
        if isinstance(inner, SlowResolution):
            return f"{inner.args[0]} (no answer from DNS: check /etc/resolv.conf)"
    return f"no answer within {seconds(limit)}"


def endpoint(url: str) -> str:
    """``scheme://host/path`` of a URL: what to name in a message (no query string)."""
    return url.split("?", 1)[0]


def seconds(value: float) -> str:
    """``2s``, ``0.5s``: a duration as messages show it."""
    return f"{value:.1f}".rstrip("0").rstrip(".") + "s"


def reason(exc: BaseException) -> str:
    """A requests/urllib3 failure in a few words: what a user can act on, without the repr."""
    import socket
    import ssl

    import requests

    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy failed (check HTTPS_PROXY/NO_PROXY)"
    for inner in _chain(exc):
        if isinstance(inner, socket.gaierror) or type(inner).__name__ == "NameResolutionError":
            return UNRESOLVED
        if isinstance(inner, ssl.SSLError):
            return f"TLS failed: {getattr(inner, 'reason', None) or inner}"
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror.lower()
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def is_tls_failure(exc: BaseException) -> bool:
    """True for a certificate or handshake failure: retrying the same request cannot help."""
    import ssl

    return any(isinstance(inner, ssl.SSLError) for inner in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (urllib3 keeps causes in ``reason`` and ``args``)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 20:
        current = todo.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        for inner in (
            getattr(current, "reason", None),
            *(arg for arg in current.args if isinstance(arg, BaseException)),
            current.__cause__,
            current.__context__,
        ):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return seen


def announce_retry(problem: str, delay: float, attempt: int, attempts: int) -> None:
    """Say why and how long we wait before ``attempt`` (of ``attempts``)."""
    import logging

    level = logging.WARNING if delay > NOTICEABLE else logging.INFO
    _retry_log().log(
        level,
        "%s; retrying in %s (attempt %d of %d)",
        problem,
        seconds(delay),
        attempt,
        attempts,
        extra={"event": "retry", "attempt": attempt},
    )


def show_retry_notices() -> None:
    """For foreground commands (the CLI calls this): retry notices that make the user wait go to
    stderr as ``azfed-helper: ...`` lines. Costs nothing until a retry happens."""
    _notices["stderr"] = True


_notices = {"stderr": False}


def _retry_log() -> logging.Logger:
    """The retry logger, given its handler on first use: stderr for the CLI's foreground
    commands; otherwise a NullHandler (records still propagate to the daemon's or the library
    user's logging, but Python's last-resort handler never prints them)."""
    import logging

    log = logging.getLogger(RETRY_LOGGER)
    if not log.handlers:
        if _notices["stderr"]:
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("azfed-helper: %(message)s"))
            handler.setLevel(logging.WARNING)
            log.propagate = False
        else:
            handler = logging.NullHandler()
        log.addHandler(handler)
    return log
