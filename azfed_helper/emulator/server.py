"""Loopback HTTP(S) plumbing shared by the Google and Entra fakes.

Each fake is an *app*: a callable from :class:`Request` to :class:`Reply`. This module
only moves bytes, so the apps stay plain functions that are easy to read and test.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"
_MAX_BODY = 1 << 20


@dataclass(frozen=True)
class Request:
    """One parsed HTTP request, as an app sees it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Message
    body: bytes

    def form(self) -> dict[str, str]:
        """The urlencoded body; OAuth token endpoints take form posts."""
        pairs = urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return dict(pairs)

    def json(self) -> Any:
        """The JSON body, or ``None`` when it is absent or not JSON."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def bearer(self) -> str | None:
        """The token from ``Authorization: Bearer ...``, if any."""
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


@dataclass(frozen=True)
class Reply:
    """What an app answers; the server adds Content-Length."""

    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


def json_reply(status: int, document: object, headers: Mapping[str, str] | None = None) -> Reply:
    """A JSON answer, the shape every token endpoint uses."""
    body = json.dumps(document, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, headers=dict(headers or {}))


def text_reply(status: int, text: str, headers: Mapping[str, str] | None = None) -> Reply:
    """A plain-text answer, as the metadata server gives for scalar values."""
    return Reply(status, text.encode("utf-8"), "text/plain; charset=utf-8", dict(headers or {}))


App = Callable[[Request], Reply]


class _Handler(BaseHTTPRequestHandler):
    """Turns http.server callbacks into one ``app(request)`` call."""

    server: _LoopbackHTTPServer
    timeout = 30

    def version_string(self) -> str:
        return "azfed-emulator"

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, _MAX_BODY)) if length > 0 else b""
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        request = Request(self.command, url.path, query, self.headers, body)
        self._send(self.server.app(request))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: the emulator runs inside test output and demos."""


class _LoopbackHTTPServer(ThreadingHTTPServer):
    """Threading server that does TLS per connection, off the accept loop.

    Wrapping in the worker thread keeps one stalled handshake from blocking accept().
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, app: App, context: ssl.SSLContext | None) -> None:
        self.app = app
        self.context = context
        super().__init__((LOOPBACK, port), _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        # wrap_socket detaches ``request``; the TLS socket is ours to close.
        with self.context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up or fail TLS are normal in tests; do not print tracebacks."""


class LoopbackServer:
    """One listening socket on 127.0.0.1 that can be closed and re-opened on the same port."""

    def __init__(self, app: App, context: ssl.SSLContext | None = None) -> None:
        self._app = app
        self._context = context
        self._port = 0
        self._httpd: _LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port; stable across :meth:`stop`/:meth:`start` once assigned."""
        return self._port

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> None:
        """Listen (again): port 0 the first time, the same port afterwards."""
        with self._lock:
            if self._httpd is not None:
                return
            httpd = _LoopbackHTTPServer(self._port, self._app, self._context)
            self._port = httpd.server_address[1]
            thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                daemon=True,
                name=f"azfed-emulator-{self._port}",
            )
            thread.start()
            self._httpd, self._thread = httpd, thread

    def stop(self) -> None:
        """Close the listening socket so new connections are refused."""
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
