"""Small HTTP servers answered in a background thread: the health and managed-identity endpoints.

The thread waits on the listening socket and a wake-up pipe, not on ``serve_forever``'s
half-second poll, so an idle server costs no CPU and :meth:`BackgroundServer.stop` is immediate.
Each request is answered in its own daemon thread (``ThreadingHTTPServer``).
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import threading
from http.server import ThreadingHTTPServer

from . import TYPE_CHECKING
from .errors import UsageError

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler
    from typing import Any


def is_loopback(host: str) -> bool:
    """True for addresses only this machine (network namespace) can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server(ThreadingHTTPServer):
    """A ``ThreadingHTTPServer`` whose handlers reach their application as ``server.context``.

    ``context`` is ``Any`` (handlers annotate what they read): a Generic class would import
    ``typing`` at run time, a cost this light module avoids.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], context: Any
    ) -> None:
        self.context: Any = context
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)


class BackgroundServer:
    """Owns a :class:`Server`, the thread answering it and the pipe that wakes that thread to stop.

    ``purpose`` and ``hint`` word the UsageError raised when the address cannot be bound.
    """

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        context: Any,
        *,
        name: str,
        purpose: str,
        hint: str,
    ) -> None:
        host, port = address
        try:
            self.server = Server(address, handler, context)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} for {purpose}: {exc.strerror}", hint
            ) from exc
        self._name = name
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return not self._closed and self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.server.socket, selectors.EVENT_READ, "request")
            selector.register(self._wake_read, selectors.EVENT_READ, "stop")
            while True:
                events = selector.select()
                if any(key.data == "stop" for key, _ in events):
                    return
                self.server.handle_request()

    def stop(self, timeout: float = 1.0) -> bool:
        """Close the socket (started or not); requests being answered finish in their own threads.

        Returns False when it was already stopped, so owners can release their own resources once.
        """
        if self._closed:
            return False
        self._closed = True
        os.write(self._wake_write, b"x")
        if self._thread is not None:
            self._thread.join(timeout)
        self.server.server_close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        return True
