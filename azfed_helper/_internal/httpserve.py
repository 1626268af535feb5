"""Small HTTP servers answered in a background thread: the health and managed-identity endpoints.

Both face local attackers (other users, browser pages), so the server, not each endpoint, holds
the line:

- DNS rebinding: every request's ``Host`` is checked before any route runs (httphandler).
- Idle and slow clients: one thread waits (``selectors``) on the listening socket, every
  connection still sending its request and a wake-up pipe. A connection gets a thread of its
  own only once its request head has arrived, and has :attr:`Limits.read_timeout` seconds to
  send it. At most :attr:`Limits.max_connections` are open: a new one takes the place of the
  oldest still sending, so a flood of idle connections cannot lock a real client out; when all
  are being answered, a new one gets a 503.
- ``accept()`` failing for want of file descriptors (EMFILE) pauses accepting for a moment
  instead of spinning; the stop pipe is still heard.
- A client that resets or sends garbage costs one log line, never a traceback.

Nothing polls: an idle server costs no CPU and :meth:`BackgroundServer.stop` is immediate.
HTTP/1.0: one request per connection.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
import time
from http.server import HTTPServer

from . import TYPE_CHECKING
from .errors import UsageError
from .httphandler import Handler, is_loopback

if TYPE_CHECKING:
    from typing import Any

log = logging.getLogger("azfed_helper.http")

READ_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
MAX_HEAD = 64 * 1024  # the request line and headers; http.server allows lines of 64 KiB
ACCEPT_PAUSE = 0.5  # seconds without accept() after it failed for want of resources
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_WARN_EVERY = 60.0  # seconds between repeats of one overload warning
_LISTENER, _STOP = "listener", "stop"


class Limits:
    """What clients may hold: ``read_timeout`` seconds for each to send its request head (and
    then to take its answer), ``max_connections`` open at once."""

    __slots__ = ("max_connections", "read_timeout")

    def __init__(
        self, read_timeout: float = READ_TIMEOUT, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.read_timeout = read_timeout
        self.max_connections = max_connections


class Connection:
    """An accepted connection and the request head received on it so far."""

    __slots__ = ("address", "deadline", "head", "sock")

    def __init__(self, sock: socket.socket, address: Any, deadline: float) -> None:
        self.sock = sock
        self.address = address
        self.deadline = deadline
        self.head = b""

    @property
    def peer(self) -> str:
        host, port = self.address[:2]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"

    def complete(self) -> bool:
        return b"\r\n\r\n" in self.head or b"\n\n" in self.head


class Server(HTTPServer):
    """The listening socket (``HTTPServer`` binds it); handlers reach their application as
    ``server.context``.

    ``context`` is ``Any`` (handlers annotate what they read): a Generic class would import
    ``typing`` at run time, a cost this light module avoids.
    """

    request_queue_size = 128  # the listen backlog: a burst waits in the kernel

    def __init__(self, address: tuple[str, int], handler: type[Handler], context: Any) -> None:
        self.context: Any = context
        self.handler = handler
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.loopback_only = is_loopback(address[0])
        super().__init__(address, handler)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class BackgroundServer:
    """Owns a :class:`Server`, the thread answering it and the pipe that wakes that thread to stop.

    ``purpose`` and ``hint`` word the UsageError raised when the address cannot be bound.
    """

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[Handler],
        context: Any,
        *,
        name: str,
        purpose: str,
        hint: str,
        limits: Limits | None = None,
    ) -> None:
        host, port = address
        try:
            self.server = Server(address, handler, context)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {host}:{port} for {purpose}: {exc.strerror}", hint
            ) from exc
        self.server.socket.setblocking(False)
        self.limits = limits or Limits()
        self._name = name
        self._wake_read, self._wake_write = os.pipe()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Served by the server thread only: connections still sending, oldest first.
        self._reading: dict[socket.socket, Connection] = {}
        self._selector: selectors.BaseSelector | None = None
        self._paused_until: float | None = None
        self._warned: dict[str, float] = {}
        # Shared with the answering threads.
        self._answering = 0
        self._lock = threading.Lock()

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

    # -- the server thread -----------------------------------------------------------------

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            self._selector = selector
            selector.register(self.server.socket, selectors.EVENT_READ, _LISTENER)
            selector.register(self._wake_read, selectors.EVENT_READ, _STOP)
            try:
                while True:
                    for key, _ in selector.select(self._timeout()):
                        if key.data is _STOP:
                            return
                        if key.data is _LISTENER:
                            self._accept()
                        else:
                            self._receive(key.data)
                    self._expire(time.monotonic())
            except Exception:  # a bug here must not leave a silent, dead endpoint behind
                log.error("%s stopped answering", self._name, exc_info=True)
            finally:
                for connection in list(self._reading.values()):
                    self._drop(connection)

    def _timeout(self) -> float | None:
        """Until the oldest connection's deadline or the end of an accept pause, else forever."""
        deadlines = [] if self._paused_until is None else [self._paused_until]
        if self._reading:
            deadlines.append(next(iter(self._reading.values())).deadline)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _accept(self) -> None:
        assert self._selector is not None
        for _ in range(self.limits.max_connections):  # then the selector comes back for more
            try:
                sock, address = self.server.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # ECONNABORTED and the like: that client is gone already
                self._selector.unregister(self.server.socket)
                self._paused_until = time.monotonic() + ACCEPT_PAUSE
                self._warn(
                    "accept",
                    "cannot accept connections on %s: %s; pausing %.1fs (raise the open-files "
                    "limit, ulimit -n, if this repeats)",
                    self._shown_address(),
                    exc.strerror,
                    ACCEPT_PAUSE,
                )
                return
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: Any) -> None:
        assert self._selector is not None
        with self._lock:
            answering = self._answering
        if len(self._reading) + answering >= self.limits.max_connections:
            if not self._reading:
                self._refuse_busy(sock)
                return
            oldest = next(iter(self._reading.values()))
            log.debug("closing %s: still no request, and a new client came", oldest.peer)
            self._drop(oldest)
        sock.setblocking(False)
        connection = Connection(sock, address, time.monotonic() + self.limits.read_timeout)
        self._reading[sock] = connection
        self._selector.register(sock, selectors.EVENT_READ, connection)

    def _refuse_busy(self, sock: socket.socket) -> None:
        """Best effort 503: all slots are answering requests, none is merely waiting."""
        taken = self.limits.max_connections
        message = f"busy: all {taken} connections are taken by requests being answered; retry"
        body, content_type = self.server.handler.error_body(503, message)
        head = (
            "HTTP/1.0 503 Service Unavailable\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            sock.setblocking(False)
            sock.send(head.encode("ascii") + body)
        except OSError:
            pass
        _close(sock)
        self._warn("busy", "refusing connections on %s: %s", self._shown_address(), message)

    def _receive(self, connection: Connection) -> None:
        if self._reading.get(connection.sock) is not connection:
            return  # dropped earlier in this round of events to make room
        try:
            data = connection.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("%s: %s before sending a request", connection.peer, exc.strerror or exc)
            self._drop(connection)
            return
        if not data:
            self._drop(connection)  # the client gave up
            return
        connection.head += data
        if connection.complete():
            self._dispatch(connection)
        elif len(connection.head) > MAX_HEAD:
            log.debug("closing %s: request head over %d bytes", connection.peer, MAX_HEAD)
            self._drop(connection)

    def _expire(self, now: float) -> None:
        assert self._selector is not None
        if self._paused_until is not None and now >= self._paused_until:
            self._paused_until = None
            self._selector.register(self.server.socket, selectors.EVENT_READ, _LISTENER)
        while self._reading:
            oldest = next(iter(self._reading.values()))
            if oldest.deadline > now:
                return
            log.debug(
                "closing %s: no complete request within %gs",
                oldest.peer,
                self.limits.read_timeout,
            )
            self._drop(oldest)

    def _drop(self, connection: Connection) -> None:
        assert self._selector is not None
        self._selector.unregister(connection.sock)
        del self._reading[connection.sock]
        _close(connection.sock)

    def _dispatch(self, connection: Connection) -> None:
        """The head is complete: answer it in a thread of its own, with a deadline to write."""
        assert self._selector is not None
        self._selector.unregister(connection.sock)
        del self._reading[connection.sock]
        connection.sock.settimeout(self.limits.read_timeout)
        with self._lock:
            self._answering += 1
        name = f"{self._name}-{connection.peer}"
        try:
            threading.Thread(
                target=self._answer, args=(connection,), name=name, daemon=True
            ).start()
        except RuntimeError as exc:  # can't start new thread
            self._answered(connection)
            self._warn("thread", "cannot answer %s: %s", connection.peer, exc)

    # -- answering threads -----------------------------------------------------------------

    def _answer(self, connection: Connection) -> None:
        try:
            self.server.handler(connection, connection.address, self.server)  # type: ignore[arg-type]
        except OSError as exc:  # reset, broken pipe, timed out: the client's side
            log.info(
                "%s: connection lost while answering: %s",
                connection.peer,
                exc.strerror or exc,
                extra={"event": "http_client_error", "client": connection.peer},
            )
        except Exception:
            log.error("internal error answering %s", connection.peer, exc_info=True)
        finally:
            self._answered(connection)

    def _answered(self, connection: Connection) -> None:
        _close(connection.sock)
        with self._lock:
            self._answering -= 1

    # -- helpers ---------------------------------------------------------------------------

    def _shown_address(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _warn(self, kind: str, message: str, *args: object) -> None:
        """A warning about overload, at most once a minute per kind: a flood must not flood the log."""
        now = time.monotonic()
        if now - self._warned.get(kind, -_WARN_EVERY) < _WARN_EVERY:
            return
        self._warned[kind] = now
        log.warning(message, *args, extra={"event": f"http_{kind}"})
