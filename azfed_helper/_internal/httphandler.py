"""Answering our local endpoints' requests: who may ask (loopback, the ``Host`` header), and the
base handler whose errors and replies every endpoint shares (see httpserve for the server).

DNS rebinding: the ``Host`` header must be ``localhost`` or an IP address, and a loopback one when
the server listens on loopback; a rebinding page always sends its own DNS name.
"""

from __future__ import annotations

import ipaddress
import logging
from http.server import BaseHTTPRequestHandler
from io import BytesIO

from . import TYPE_CHECKING
from .logs import printable

if TYPE_CHECKING:
    from .httpserve import Connection, Server

log = logging.getLogger("azfed_helper.http")

TEXT_PLAIN = "text/plain; charset=utf-8"


def is_loopback(host: str) -> bool:
    """True for addresses only this machine (network namespace) can reach."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _host_name(value: str) -> str | None:
    """The host in a ``Host`` header value (``[v6]``, ``v4`` or a name, each with an optional
    port), lower-cased; None when the value is malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, after = value[1:].partition("]")
        if not bracket or ":" not in host or after[:1] not in ("", ":"):
            return None
        port = after[1:] if after else None
    else:
        host, colon, rest = value.partition(":")
        port = rest if colon else None
    if port is not None and not (port.isascii() and port.isdigit()):
        return None
    return host or None


def host_allowed(value: str, loopback_only: bool, extra: tuple[str, ...] = ()) -> bool:
    """Whether a request with ``Host: value`` may be answered.

    Only ``localhost``, an IP address literal (a loopback one when ``loopback_only``) or one of
    ``extra``; any port. A DNS name is refused: DNS rebinding needs one, and a page that names
    an address itself is same-origin with it and gains nothing.
    """
    host = _host_name(value)
    if host is None:
        return False
    if host == "localhost" or host in extra:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return is_loopback(host) or not loopback_only


class Handler(BaseHTTPRequestHandler):
    """Base of our endpoints' handlers: reads the head the server thread received, refuses a
    ``Host`` that does not name this machine before any route runs, logs through our logger.

    Subclasses set ``log`` and answer errors in their own format by overriding :meth:`error_body`.
    """

    server: Server
    log = log

    def setup(self) -> None:
        connection: Connection = self.request
        self.connection = connection.sock
        self.rfile = BytesIO(connection.head)
        self.wfile = connection.sock.makefile("wb")

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        problem = self.host_problem()
        if problem is not None:
            self.refuse(403, problem)
            return False
        return True

    def host_problem(self) -> str | None:
        """Why this request's ``Host`` is refused, or None (exactly one, naming this machine)."""
        values = self.headers.get_all("Host") or []
        if len(values) == 1 and host_allowed(
            values[0], self.server.loopback_only, self.extra_hosts()
        ):
            return None
        if len(values) == 1:
            problem = f"Host '{printable(values[0])}' does not name this machine"
        else:
            problem = f"{len(values)} Host headers" if values else "no Host header"
        return (
            f"forbidden: {problem}; use an IP address or localhost in the URL (other names are "
            "refused: DNS rebinding protection)"
        )

    def extra_hosts(self) -> tuple[str, ...]:
        """Hosts besides ``localhost`` and IP literals that this request may name."""
        return ()

    def refuse(self, status: int, message: str) -> None:
        self.reply(status, *self.error_body(status, message))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (bad syntax, unknown method ...) in the endpoint's format."""
        self.close_connection = True
        self.refuse(code, message or self.responses.get(code, ("error",))[0])

    @classmethod
    def error_body(cls, status: int, message: str) -> tuple[bytes, str]:
        """The body and content type of an error answer."""
        return (message + "\n").encode("utf-8"), TEXT_PLAIN

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # http.server's request lines and parse errors; the human formatter escapes them.
        self.log.debug("%s " + format, self.address_string(), *args, extra={"event": "http"})
