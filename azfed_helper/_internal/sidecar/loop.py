"""The daemon loop: keep the token file valid forever, back off on failures, record health.

The loop is ``sync.sync_once`` on ``refresh``'s schedule. It sleeps on an Event until the next
deadline (no polling), so an idle daemon costs no CPU; ``refresh_now`` (SIGHUP) and ``stop``
(SIGTERM) wake it. A failed refresh leaves the file alone: the old token keeps serving readers
until it really expires, while retries back off. Writes are guarded so that ``stop`` never
returns while a write is landing and no write starts after it.

With the ``file`` source there is nothing to write: the loop reads the source's file on the
same schedule instead, to hand each new token to the hooks (``--az-login``). Once a token is
due, the file's writer (the kubelet rotates at 80% of a token's life) may not have replaced it
yet: the same token read again is not a failure, only a reason to look again after the usual
bounded back-off.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
import time

from .. import TYPE_CHECKING, idtoken, sources, tokenfile
from ..errors import AzfedError, InvalidTokenError, SourceError, TokenFileError, UsageError
from ..sources import total_source_budget
from ..sync import SyncResult, sync_once
from . import schedule as refresh

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import Settings
    from ..idtoken import IdToken
    from ..sync import Fetcher

    Hook = Callable[[IdToken], None]

log = logging.getLogger("azfed_helper.sidecar")

# Failure reasons, the label values of azfed_token_refresh_failures_total.
REASONS = ("source", "invalid_token", "token_file", "config", "hook", "internal")
# How late past its planned wake-up the loop may be before /livez calls it stuck.
WAKE_GRACE = 30.0
# The writer lock's timeout in tokenwriter.writer_lock; a refresh step may wait that long for it.
_LOCK_WAIT = 60.0


def failure_reason(exc: BaseException) -> str:
    """The metric label for a failed refresh (the error tree's classes, coarse on purpose)."""
    if isinstance(exc, SourceError):
        return "source"
    if isinstance(exc, InvalidTokenError):
        return "invalid_token"
    if isinstance(exc, TokenFileError):
        return "token_file"
    if isinstance(exc, UsageError):
        return "config"
    return "internal"


class HealthState:
    """What the loop has done, for /livez, /readyz and /metrics; read as a locked copy."""

    __slots__ = (
        "_lock",
        "consecutive_failures",
        "expect_by",
        "failures",
        "last_success",
        "next_refresh",
        "refreshes",
        "running",
        "token",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = False
        self.expect_by = 0.0  # the loop promises to be back by then (heartbeat deadline)
        self.refreshes = 0  # successful writes
        self.failures: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.consecutive_failures = 0
        self.last_success: float | None = None
        self.next_refresh: float | None = None
        self.token: IdToken | None = None

    def snapshot(self) -> HealthState:
        with self._lock:
            copied = copy.copy(self)
            copied.failures = dict(self.failures)
            return copied

    def update(self, **values: object) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, value)

    def count_failure(self, reason: str) -> None:
        with self._lock:
            self.failures[reason] = self.failures.get(reason, 0) + 1


class _Stopped(Exception):
    """Raised inside a refresh when ``stop`` came first: the fetched token is not written."""


def _claims(token: IdToken) -> dict[str, object]:
    return {"sub": token.claims.get("sub"), "exp": token.claims.get("exp")}


class Sidecar:
    """Refreshes ``settings.token_file`` on ``policy``'s schedule until stopped (with the
    ``file`` source: reads the source's file, see the module's docstring).

    ``hooks`` are called in the loop's thread with each token new to this daemon: the first
    one (written, or found fresh in the file) and every one written after it. They are the
    extension point for work that follows a refresh (``--exec`` start, a future ``--az-login``);
    a failing hook is logged and counted, never fatal.
    """

    def __init__(
        self,
        settings: Settings,
        policy: refresh.Policy,
        *,
        clock: Callable[[], float] = time.time,
        fetch: Fetcher | None = None,
        rng: random.Random | None = None,
        wait: Callable[[threading.Event, float], object] = threading.Event.wait,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.hooks: list[Hook] = []
        self.state = HealthState()
        self.error: Exception | None = None
        self._clock = clock
        self._fetch = fetch or sources.fetch
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._wait = wait  # how the loop sleeps on its wake-up event: tests record the delays
        self.reads_file = sources.select(settings).reads_file
        # The file readers see: the token file, or the source's own file (never written).
        self.watched = sources.readers_file(settings)
        self._step_budget = _LOCK_WAIT + total_source_budget(settings) + WAKE_GRACE
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._commit = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- control, from any thread ---------------------------------------------------------

    def start(self, done: Callable[[], None] | None = None) -> threading.Thread:
        """Run the loop in a daemon thread; ``done`` is called when it ends (``error`` set if it failed)."""

        def target() -> None:
            try:
                self.run()
            except Exception as exc:
                self.error = exc
            finally:
                if done is not None:
                    done()

        self._thread = threading.Thread(target=target, name="azfed-sidecar", daemon=True)
        self._thread.start()
        return self._thread

    def refresh_now(self) -> None:
        """Refresh at once (SIGHUP), whatever the schedule or back-off says."""
        self._wake.set()

    def stop(self, timeout: float = 0.9) -> bool:
        """Stop the loop; return True once it has ended within ``timeout`` seconds.

        A write in progress is waited for; a fetch in progress is abandoned (its token is never
        written), so stopping is quick even while the source hangs.
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._commit.acquire(timeout=timeout):
            self._commit.release()
        if self._thread is None:
            return True
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """The loop itself (blocking). Raises UsageError when the configuration cannot work:
        only before the first success; afterwards every failure is retried."""
        self.state.update(running=True)
        if self.reads_file:
            log.info(
                "reading %s, which another process keeps fresh (refresh margin %ss)",
                self.watched,
                self.policy.margin,
                extra={"event": "started", "assertion_file": self.watched},
            )
        else:
            log.info(
                "keeping %s fresh (refresh margin %ss)",
                self.watched,
                self.policy.margin,
                extra={"event": "started", "token_file": self.watched},
            )
            warning = tokenfile.directory_warning(self.watched)
            if warning is not None:
                log.warning("%s", warning, extra={"event": "shared_directory"})
        try:
            self._loop()
        finally:
            self.state.update(running=False, next_refresh=None)
            log.info("stopped", extra={"event": "stopped"})

    def _loop(self) -> None:
        token: IdToken | None = None
        failures = short = 0
        while not self._stopping.is_set():
            self._wake.clear()
            self.state.update(expect_by=self._clock() + self._step_budget)
            try:
                # The first step keeps a file that is still fresh; later ones run when due.
                result = self._read(token) if self.reads_file else self._step(due=token is not None)
            except _Stopped:
                break
            except Exception as exc:
                if token is None and isinstance(exc, UsageError):
                    raise
                failures += 1
                delay = refresh.backoff(failures, self.policy, self._rng)
                self._failed(exc, failures, delay)
            else:
                delay, short = self._succeeded(result, failures, short, new=token is None)
                token = result.token
                failures = 0
            self._sleep(delay)

    def _read(self, previous: IdToken | None) -> SyncResult:
        """The ``file`` source's step: its token now, checked; ``wrote`` means "new"."""
        raw = self._fetch(self.settings)
        token = idtoken.validate(
            idtoken.decode(raw),
            self.settings.audience,
            self._clock(),
            issuer=sources.expected_issuer(self.settings),
        )
        return SyncResult(token, wrote=previous is None or token.raw != previous.raw)

    def _step(self, due: bool) -> SyncResult:
        """One sync_once whose write happens only under the commit lock and only if not stopping."""
        holding = False

        def guarded_fetch(fetch_settings: Settings) -> str:
            nonlocal holding
            raw = self._fetch(fetch_settings)
            self._commit.acquire()
            holding = True
            if self._stopping.is_set():
                raise _Stopped
            return raw

        try:
            return sync_once(self.settings, self._clock, guarded_fetch, due=due)
        finally:
            if holding:
                self._commit.release()

    def _succeeded(
        self, result: SyncResult, failures: int, short: int, new: bool
    ) -> tuple[float, int]:
        token, now = result.token, self._clock()
        delay, short = refresh.delay_after_success(
            token.issued_at, token.expires_at, now, short, policy=self.policy, rng=self._rng
        )
        fields = {**_claims(token), "next_refresh_in": round(delay, 3)}
        if failures:
            log.info("token source answers again", extra={"event": "recovered", **fields})
        if self.reads_file:
            verb = "read a new token from" if result.wrote else "no newer token yet in"
        else:
            verb = "refreshed" if result.wrote else "kept fresh"
        left = round(token.remaining(now))
        log.log(
            logging.DEBUG if self.reads_file and not result.wrote else logging.INFO,
            "%s %s (sub %s, expires in %ss, next refresh in %.0fs)",
            verb,
            self.watched,
            token.claims.get("sub"),
            left,
            delay,
            extra={"event": "refreshed" if result.wrote else "kept", **fields},
        )
        if short and (result.wrote or not self.reads_file):
            log.warning(
                "the source returned a token with only %ss left, not more than the refresh "
                "margin (%ss); asking again in %.1fs",
                left,
                self.policy.margin,
                delay,
                extra={"event": "short_lived", **fields},
            )
        self.state.update(
            refreshes=self.state.refreshes + result.wrote,
            last_success=now,
            next_refresh=now + delay,
            consecutive_failures=0,
            token=token,
        )
        if result.wrote or new:
            self._run_hooks(token)
        return delay, short

    def _failed(self, exc: Exception, failures: int, delay: float) -> None:
        reason = failure_reason(exc)
        self.state.count_failure(reason)
        now = self._clock()
        self.state.update(consecutive_failures=failures, next_refresh=now + delay)
        held = tokenfile.fresh_token(
            self.watched,
            self.settings.audience,
            now,
            0,
            issuer=sources.expected_issuer(self.settings),
            ours=not self.reads_file,
        )
        if held is not None:
            kept = f"the file keeps the previous token, expiring in {held.remaining(now):.0f}s"
        else:
            kept = "the file holds NO valid token (missing or expired)"
        level = logging.WARNING if held is not None else logging.ERROR
        log.log(
            level,
            "refresh failed (%s, attempt %d): %s; %s; retrying in %.1fs",
            reason,
            failures,
            exc.message if isinstance(exc, AzfedError) else f"{type(exc).__name__}: {exc}",
            kept,
            delay,
            exc_info=not isinstance(exc, AzfedError),
            extra={"event": "refresh_failed", "reason": reason, "attempt": failures},
        )

    def _run_hooks(self, token: IdToken) -> None:
        for hook in self.hooks:
            try:
                hook(token)
            except Exception as exc:
                self.state.count_failure("hook")
                log.error(
                    "after-write hook %s failed: %s",
                    getattr(hook, "__name__", hook),
                    exc,
                    exc_info=not isinstance(exc, AzfedError),
                    extra={"event": "hook_failed"},
                )

    def _sleep(self, delay: float) -> None:
        """Wait until the next deadline or a wake-up; never a polling loop."""
        self.state.update(expect_by=self._clock() + delay + WAKE_GRACE)
        if not self._stopping.is_set():
            self._wait(self._wake, delay)
