"""Host-name lookups bounded by the connect timeout, for our ``requests`` sessions.

``getaddrinfo`` has no timeout of its own: with a DNS server that does not answer, the resolver
waits its ``resolv.conf`` timeout for every try and server (glibc: 5 s, twice, per server)
before a socket timeout even starts, which would outlast every wait we document. Here each new
connection looks its host up in a helper thread, waits at most the connect timeout, then
connects to the addresses found (so there is no second, unbounded lookup), all attempts within
the same timeout; the certificate is still checked against the host name. The host looked up is
the proxy's when one applies (it is the connection's own host then). A lookup that outlasts its
bound is abandoned: its thread ends when the resolver gives up. A pooled connection needs no lookup at all. SOCKS proxies keep
urllib3's own connections. Imported only where a request is made (``requests`` is heavy).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from .net import seconds


class SlowResolution(ConnectTimeoutError):
    """The host name did not resolve within the connect timeout (``args[0]`` says which)."""


def bounded_session(session: requests.Session) -> requests.Session:
    """``session``, its lookups bounded (see the module's docstring)."""
    session.mount("https://", _BoundedLookupAdapter())
    session.mount("http://", _BoundedLookupAdapter())
    return session


def _addresses_within(host: str, port: int, limit: float) -> list[Any] | BaseException | None:
    """``host``'s addresses, the lookup's error, or None when it did not end within ``limit``."""
    done = threading.Event()
    outcome: list[Any] = []

    def look_up() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"look up {host}", daemon=True).start()
    return outcome[0] if done.wait(limit) else None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _connect(connection: HTTPConnection, connect: Any) -> socket.socket:
    """``connect()`` (urllib3's ``_new_conn``) per address found for the connection's host, the
    lookup and every attempt together within the connect timeout: each attempt but the last gets
    half of what is left (a silent first address, such as a broken IPv6 route, leaves time for
    the next), the last all of it. urllib3 alone gives every address the whole timeout, so a
    host with many addresses (Entra has several) could make one request wait many times it.
    The host itself is restored before TLS looks at it."""
    host, limit = connection._dns_host, connection.timeout
    if not isinstance(limit, (int, float)) or _is_address(host):
        return connect()  # type: ignore[no-any-return]
    deadline = time.monotonic() + limit
    found = _addresses_within(host, connection.port, float(limit))
    if found is None:
        raise SlowResolution(f"{host.rstrip('.')} did not resolve within {seconds(limit)}")
    if isinstance(found, BaseException):
        raise NewConnectionError(connection, f"cannot resolve {host}: {found}") from found
    addresses = list(dict.fromkeys(info[4][0] for info in found))  # in order, once each
    failure: Exception = ConnectTimeoutError(
        connection, f"cannot connect to {host} within {seconds(limit)}"
    )
    for index, address in enumerate(addresses):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        connection._dns_host = address
        connection.timeout = left if index == len(addresses) - 1 else left / 2
        try:
            sock: socket.socket = connect()
        except (ConnectTimeoutError, NewConnectionError) as exc:
            failure = exc
        else:
            sock.settimeout(limit)  # what urllib3 would have left on it (TLS, a proxy's answer)
            return sock
        finally:
            connection._dns_host, connection.timeout = host, limit
    raise failure


class _HTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self, super()._new_conn)


class _HTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self, super()._new_conn)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _BoundedLookupAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager
