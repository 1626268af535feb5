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
    from collections.abc import Mapping
    from typing import Any

    import requests
    import requests.adapters

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


def bounded_session(session: requests.Session) -> requests.Session:
    """``session`` with host-name lookups bounded by each request's connect timeout.

    ``getaddrinfo`` has no timeout of its own: with a DNS server that does not answer, the
    resolver waits its ``resolv.conf`` timeout for every attempt and server (30 s or more) before
    the socket timeout even starts, which would outlast every bound we document. The lookup runs
    in a helper thread instead; past the bound the request fails with :class:`SlowResolution`
    (the thread is left to finish on its own). The host looked up is the proxy's when one applies.
    """
    if not _ADAPTER:
        _ADAPTER.append(_bounded_adapter())  # made once: requests is heavy
    session.mount("https://", _ADAPTER[0]())
    session.mount("http://", _ADAPTER[0]())
    return session


def timeout_reason(exc: BaseException, limit: float) -> str:
    """What a requests timeout means, in a few words: a silent server or a silent resolver."""
    if type(exc).__name__ == "SlowResolution":
        return f"{exc} (no answer from DNS: check /etc/resolv.conf)"
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


def _looked_up_within(host: str, port: int, limit: float) -> bool:
    """Whether looking ``host`` up ends within ``limit`` seconds (its result is not needed:
    the connection looks it up again, answered at once by now, and reports its own errors)."""
    import socket
    import threading

    done = threading.Event()

    def look_up() -> None:
        try:
            socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            pass  # the connection reports it in its own words
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"resolve {host}", daemon=True).start()
    return done.wait(limit)


def _needs_lookup(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


_ADAPTER: list[type[requests.adapters.HTTPAdapter]] = []


def _bounded_adapter() -> type[requests.adapters.HTTPAdapter]:
    """The adapter class behind :func:`bounded_session`."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util import parse_url

    class SlowResolution(requests.exceptions.ConnectTimeout):
        """The host name did not resolve within the connect timeout."""

    class BoundedLookupAdapter(HTTPAdapter):
        def send(  # noqa: PLR0917 (requests calls it so)
            self,
            request: requests.PreparedRequest,
            stream: bool = False,
            timeout: Any = None,
            verify: Any = True,
            cert: Any = None,
            proxies: Mapping[str, str] | None = None,
        ) -> requests.Response:
            limit = timeout[0] if isinstance(timeout, tuple) else timeout
            url = str(request.url)
            target = parse_url(requests.utils.select_proxy(url, proxies or {}) or url)
            if isinstance(limit, (int, float)) and target.host and _needs_lookup(target.host):
                port = target.port or (443 if target.scheme == "https" else 80)
                if not _looked_up_within(target.host, port, float(limit)):
                    raise SlowResolution(
                        f"{target.host} did not resolve within {seconds(limit)}", request=request
                    )
            return super().send(request, stream, timeout, verify, cert, proxies)

    return BoundedLookupAdapter


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
