"""The one token provider: memory → the on-disk cache → the exchange, single flight per token.

The credential, its async twin, ``serve`` and ``token`` all get access tokens here. A token's key
is (authority host, tenant, client, scopes sorted). Requests for one key share one acquisition (a
*flight*): the first caller leads it, later ones wait for its result; a failure reaches every
waiter once and is not kept, so the next request tries again. Nothing waits for another key:

- in this process, flights for different keys run side by side, and a hit in memory or in the
  cache file (read without a lock) never waits for any flight;
- across processes, a leader takes its key's own lock file, re-reads the cache under it (another
  process may have just written the token) and only then goes to Entra, so N processes racing on a
  cold cache make one request per key; the cache files are read and merged under the short cache
  lock (:mod:`store`), never held across the network.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..errors import UsageError
from . import aadsts, cache, store
from .assertion import AssertionSource
from .cache import AccessToken
from .exchange import Exchange

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ..config import Settings

log = logging.getLogger("azfed_helper.entra")

Key = tuple[str, str, str, tuple[str, ...]]  # authority host, tenant, client, scopes (sorted)
COUNTERS = ("cache_hits", "joined", "exchanges", "exchange_failures")


class _Flight:
    """One acquisition in progress; everyone asking for its key meanwhile waits on ``future``."""

    __slots__ = ("claims", "future", "key")

    def __init__(self, key: Key, claims: str | None) -> None:
        self.key = key
        self.claims = claims
        self.future: Future[AccessToken] = Future()
        self.future.set_running_or_notify_cancel()  # a waiter giving up cannot cancel it


class TokenProvider:
    """Access tokens for one app registration (any tenant); thread-safe.

    ``counts``: ``cache_hits`` (answered from memory), ``joined`` (waited for another caller's
    flight), ``exchanges`` (flights past the lock-free disk read), ``exchange_failures``.
    ``last_failure`` is the first line of the latest failed exchange, cleared by a success; a
    refusal of the requested scope itself (a resource Entra does not know) is the requester's
    problem and leaves it alone.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        persistent: bool = True,
        verify: bool | str | None = None,
        assertion: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tenant_id, self.client_id = settings.require_app()
        self.persistent = persistent
        self.directory = cache.cache_dir(settings) if persistent else ""
        self.assertion = assertion or AssertionSource(settings)
        self.clock = clock
        self._verify = verify
        self._sleep = sleep
        self._lock = threading.Lock()  # guards the members below; never held across I/O
        self._tokens: dict[Key, AccessToken] = {}
        self._flights: dict[tuple[Key, str | None], _Flight] = {}
        self._exchanges: dict[str, Exchange] = {}
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.last_failure: str | None = None

    def key(self, scopes: Sequence[str], tenant: str | None = None) -> Key:
        if not scopes:
            raise UsageError("a token request needs at least one scope")
        host = self.settings.authority_host.rstrip("/").lower()
        return (host, tenant or self.tenant_id, self.client_id, tuple(sorted(set(scopes))))

    def cached(self, scopes: Sequence[str], tenant: str | None = None) -> AccessToken | None:
        """The token in memory if MSAL would still hand it out: no I/O, no waiting."""
        key = self.key(scopes, tenant)
        with self._lock:
            return self._remembered(key)

    def get(
        self, scopes: Sequence[str], tenant: str | None = None, claims: str | None = None
    ) -> AccessToken:
        """The token for ``scopes``; a miss is led in this thread or waited for. ``claims`` (a
        claims challenge) skips both caches."""
        joined = self._join(self.key(scopes, tenant), claims)
        if isinstance(joined, AccessToken):
            return joined
        flight, lead = joined
        if lead:
            self._fly(flight)
        return flight.future.result()

    def submit(
        self, scopes: Sequence[str], tenant: str | None = None, claims: str | None = None
    ) -> Future[AccessToken]:
        """:meth:`get` without blocking: a new flight runs in a thread of its own, so flights
        for different keys never queue for the workers of a pool (the async credential)."""
        joined = self._join(self.key(scopes, tenant), claims)
        if isinstance(joined, AccessToken):
            done: Future[AccessToken] = Future()
            done.set_result(joined)
            return done
        flight, lead = joined
        if lead:
            threading.Thread(target=self._fly, args=(flight,), name="azfed-token").start()
        return flight.future

    def close(self) -> None:
        with self._lock:
            exchanges = list(self._exchanges.values())
            self._exchanges.clear()
        for exchange in exchanges:
            exchange.close()

    # -- memory and flights ----------------------------------------------------------------

    def _remembered(self, key: Key) -> AccessToken | None:
        token = self._tokens.get(key)
        if token is not None and token.expires_on - self.clock() >= cache.MIN_REMAINING:
            self.counts["cache_hits"] += 1
            return token
        return None

    def _join(self, key: Key, claims: str | None) -> AccessToken | tuple[_Flight, bool]:
        """The token from memory, or the flight for it and whether this caller leads it."""
        with self._lock:
            if claims is None:
                token = self._remembered(key)
                if token is not None:
                    return token
            flight = self._flights.get((key, claims))
            if flight is not None:
                self.counts["joined"] += 1
                return flight, False
            flight = self._flights[(key, claims)] = _Flight(key, claims)
            return flight, True

    def _fly(self, flight: _Flight) -> None:
        """Lead a flight; its outcome goes to every waiter, and only a token is remembered."""
        try:
            token = self._acquire(flight.key, flight.claims)
        except BaseException as exc:
            with self._lock:
                del self._flights[(flight.key, flight.claims)]
            flight.future.set_exception(exc)
            return
        with self._lock:
            self._tokens[flight.key] = token
            del self._flights[(flight.key, flight.claims)]
        flight.future.set_result(token)

    # -- the leader's way: the cache file, then the exchange -------------------------------

    def _acquire(self, key: Key, claims: str | None) -> AccessToken:
        if claims is None:
            hit = self._disk_hit(key)
            if hit is not None:
                return hit
        with self._lock:
            self.counts["exchanges"] += 1
        try:
            token = self._exchange(key, claims)
        except Exception as exc:
            with self._lock:
                self.counts["exchange_failures"] += 1
                if getattr(exc, "code", None) not in aadsts.SCOPE_ERRORS:
                    self.last_failure = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        with self._lock:
            self.last_failure = None
        return token

    def _disk_hit(self, key: Key) -> AccessToken | None:
        """Lock-free read of the shared cache file: never waits for any exchange."""
        if not self.persistent:
            return None
        _host, tenant, client_id, scopes = key
        return cache.find_access_token(
            self.directory,
            client_id,
            tenant,
            self.settings.authority_host,
            scopes,
            now=self.clock(),
        )

    def _exchange(self, key: Key, claims: str | None) -> AccessToken:
        """Through MSAL: in memory, or under the key's lock against the on-disk cache."""
        host, tenant, client_id, scopes = key
        exchange = self._exchange_for(tenant)
        if self.persistent and not cache.usable_dir(self.directory):
            self.persistent = False  # warned once; from now on tokens are kept in memory
        if not self.persistent:
            return self._logged(exchange.acquire(scopes, claims), scopes)
        with cache.key_locked(self.directory, (host, tenant, client_id, *scopes)):
            if claims is None:
                hit = self._disk_hit(key)
                if hit is not None:  # another process acquired it while we waited
                    return hit
            snapshot = store.Snapshot(self.directory)
            state = snapshot.state()
            try:
                return self._logged(exchange.acquire(scopes, claims, state), scopes)
            finally:
                snapshot.save(state, self.clock())

    def _exchange_for(self, tenant: str) -> Exchange:
        """One exchange per tenant (a multi-tenant app may ask for another tenant's token), all
        presenting the same assertion."""
        with self._lock:
            exchange = self._exchanges.get(tenant)
            if exchange is None:
                settings = self.settings
                if tenant != self.tenant_id:
                    settings = settings.replace(tenant_id=tenant)
                exchange = Exchange(
                    settings, self.assertion, verify=self._verify, sleep=self._sleep
                )
                self._exchanges[tenant] = exchange
            return exchange

    def _logged(self, token: AccessToken, scopes: Sequence[str]) -> AccessToken:
        log.info(
            "token for %s from Entra, expires in %ds",
            " ".join(scopes),
            token.expires_on - self.clock(),
            extra={"event": "token_exchanged", "scopes": list(scopes)},
        )
        return token
