"""The daemon loop in-process: real google-auth against the emulator, short token lifetimes.

Each test runs the loop in its own thread and stops it; time passes only as long as the
emulator's short lifetimes make it, never waiting on hour-long tokens. Tests count events (writes,
fetches, the delays the loop asks to wait through its ``wait`` seam), never how many things happen
within so many seconds, and every wall-clock wait only bounds a failure: a busy machine makes a
test slower, never wrong.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken, options
from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.errors import SourceError, UsageError
from azfed_helper._internal.idtoken import IdToken
from azfed_helper._internal.sidecar import schedule as refresh
from azfed_helper._internal.sidecar.health import Checks
from azfed_helper._internal.sidecar.loop import Sidecar

from .conftest import make_jwt

AUDIENCE = options.DEFAULT_AUDIENCE


def settings_for(path: Path, **flags: object) -> Settings:
    return resolve(argparse.Namespace(token_file=str(path), **flags))


class Writes:
    """A hook that records every written token and lets a test wait for the n-th write."""

    def __init__(self) -> None:
        self.tokens: list[IdToken] = []
        self._cond = threading.Condition()

    def __call__(self, token: IdToken) -> None:
        with self._cond:
            self.tokens.append(token)
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.tokens) >= count, timeout), (
                f"only {len(self.tokens)} of {count} writes within {timeout}s"
            )


class Running:
    """A started sidecar with a write recorder; stopped (and checked) on exit."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.writes = Writes()
        sidecar.hooks.append(self.writes)
        self.thread = sidecar.start()

    def stop(self) -> None:
        assert self.sidecar.stop(timeout=30)
        assert self.sidecar.error is None


@pytest.fixture
def start() -> Iterator[Any]:
    started: list[Running] = []

    def _start(settings: Settings, policy: refresh.Policy, **kwargs: Any) -> Running:
        running = Running(Sidecar(settings, policy, **kwargs))
        started.append(running)
        return running

    yield _start
    for running in started:
        running.sidecar.stop(timeout=5)


class Timeline:
    """The loop's fetches (through the real Google source) and waits, in the order they happen.

    Passed as both ``fetch`` and ``wait``: ``("fetch", ok)`` per fetch, ``("wait", delay)`` per
    sleep, which still really waits (the emulator's tokens expire in real time).
    """

    def __init__(self) -> None:
        from azfed_helper._internal.sources import google as google_source

        self._fetch = google_source.fetch
        self.events: list[tuple[str, bool | float]] = []

    def fetch(self, settings: Settings) -> str:
        try:
            raw = self._fetch(settings)
        except Exception:
            self.events.append(("fetch", False))
            raise
        self.events.append(("fetch", True))
        return raw

    def wait(self, event: threading.Event, delay: float) -> bool:
        self.events.append(("wait", delay))
        return event.wait(delay)

    def waits_after_failures(self) -> list[float]:
        """The delay the loop chose after each failed fetch."""
        return [
            float(after[1])
            for before, after in itertools.pairwise(list(self.events))
            if before == ("fetch", False) and after[0] == "wait"
        ]


def wait_until(condition: Any, timeout: float = 30) -> None:
    """Poll a condition of the loop's state; the timeout only bounds a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class TopJitter(random.Random):
    """Jitter always at its top: every back-off is its ceiling, so each delay is known ahead."""

    def random(self) -> float:
        return 1.0


def test_reader_always_sees_a_whole_valid_token(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    """A reader polls the file until it has seen three tokens, i.e. across two replacements."""
    emulator.id_token_lifetime = 4
    path = tmp_path / "token"
    policy = refresh.Policy(margin=2, min_backoff=0.1, max_backoff=0.5)
    running = start(settings_for(path), policy)
    running.writes.wait_for(1)
    seen: set[bytes] = set()
    deadline = time.monotonic() + 60  # bounds a failure only
    while len(seen) < 3:
        assert time.monotonic() < deadline, f"saw only {len(seen)} tokens"
        raw = path.read_bytes()  # never missing, empty or partial: decode + validate must pass
        idtoken.validate(idtoken.decode(raw), AUDIENCE, time.time(), issuer=idtoken.GOOGLE_ISSUER)
        assert not raw.endswith(b"\n")
        seen.add(raw)
        time.sleep(0.01)
    running.stop()
    assert seen <= {t.raw.encode() for t in running.writes.tokens}  # each one a written token
    assert len({t.raw for t in running.writes.tokens}) == len(running.writes.tokens)  # all new


def test_outage_keeps_last_token_then_not_ready_then_recovers(
    emulator: Any, tmp_path: Path, start: Any
) -> None:
    """Key-file source: google-auth fails a refused connection at once (the metadata path
    retries three times inside google-auth, which only makes each of our attempts slower)."""
    emulator.id_token_lifetime = 4
    key = emulator.write_service_account_key(tmp_path / "key.json")
    path = tmp_path / "token"
    settings = settings_for(path, credentials=str(key), min_remaining="1")
    settings.min_remaining = 0.5  # type: ignore[assignment] # sub-second for the test
    timeline = Timeline()
    policy = refresh.Policy(margin=2, min_backoff=0.2, max_backoff=0.5)
    running = start(settings, policy, fetch=timeline.fetch, rng=TopJitter(), wait=timeline.wait)
    now = time.time()  # each sample judges readiness and the token's life at one instant
    checks = Checks(
        running.sidecar.state,
        str(path),
        AUDIENCE,
        0.5,
        issuer=idtoken.GOOGLE_ISSUER,
        clock=lambda: now,
    )
    running.writes.wait_for(1)
    emulator.set_google_available(False)
    wait_until(lambda: running.sidecar.state.snapshot().failures["source"] >= 1)
    kept = path.read_bytes()  # no write can be under way after a failed attempt
    expires = idtoken.decode(kept).expires_at
    samples: list[tuple[bool, float]] = []
    while now < expires + 0.5:  # until the kept token has expired
        now = time.time()
        samples.append((checks.ready()[0], idtoken.decode(path.read_bytes()).remaining(now)))
        assert checks.live()[0]
        time.sleep(0.05)
    assert path.read_bytes() == kept  # the last valid token stayed in place
    # Ready exactly while the file's token has more than min_remaining left.
    assert all(ready == (left > 0.5) for ready, left in samples)
    assert not samples[-1][0]
    now = expires - 1
    assert checks.ready()[0]  # a second before expiry it was (whenever the samples began)
    emulator.set_google_available(True)
    before = len(running.writes.tokens)
    running.writes.wait_for(before + 1)
    now = time.time()
    assert checks.ready()[0] and path.read_bytes() != kept
    running.stop()
    # Retry n waits min(0.5, 0.2 * 2**n) at top jitter: 0.4 s, then 0.5 s, ...
    retries = timeline.waits_after_failures()
    assert len(retries) >= 2
    assert retries == pytest.approx([0.4] + [0.5] * (len(retries) - 1))
    failed = timeline.events.count(("fetch", False))
    assert running.sidecar.state.snapshot().failures["source"] == failed


def test_refresh_now_fetches_at_once_despite_a_distant_schedule(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    path = tmp_path / "token"
    running = start(settings_for(path), refresh.Policy(margin=1200))
    running.writes.wait_for(1)
    assert emulator.counts["metadata.identity"] == 1
    planned = running.sidecar.state.snapshot().next_refresh
    assert planned is not None and planned > time.time() + 600  # far beyond any wait below
    running.sidecar.refresh_now()
    running.writes.wait_for(2)
    assert emulator.counts["metadata.identity"] == 2
    running.stop()


def test_restart_keeps_a_fresh_file_without_asking_the_source(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    path = tmp_path / "token"
    path.write_text(emulator.mint_google_id_token())
    path.chmod(0o600)
    running = start(settings_for(path), refresh.Policy(margin=1200))
    wait_until(lambda: running.sidecar.state.snapshot().last_success is not None)
    running.stop()
    assert emulator.counts["metadata.identity"] == 0
    assert [t.raw for t in running.writes.tokens] == [path.read_text()]  # hooks see it once
    assert running.sidecar.state.snapshot().refreshes == 0


def test_fleet_started_together_spreads_its_refreshes(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    """Thirty daemons fetch at the same moment; their next refreshes spread over the window.

    Each plan is judged against its own token's issue time, so however long the thirty fetches
    take on a busy machine, the answer is the same.
    """
    runs = [
        start(settings_for(tmp_path / f"token{i}"), refresh.Policy(margin=1200)) for i in range(30)
    ]
    for running in runs:
        running.writes.wait_for(1)
    snapshots = [r.sidecar.state.snapshot() for r in runs]
    offsets = sorted(
        float(s.next_refresh or 0) - s.token.issued_at for s in snapshots if s.token is not None
    )
    assert len(offsets) == 30
    # The second half of the token's hour, with the 20-minute margin kept: 1800 s to 2400 s.
    assert all(1800 - 1e-6 <= offset <= 2400 + 1e-6 for offset in offsets)
    assert offsets[-1] - offsets[0] > 300  # most of the 10-minute window is used
    assert len({int(offset // 60) for offset in offsets}) >= 5  # no single minute takes them all
    for running in runs:
        running.stop()


def test_short_lived_tokens_get_a_bounded_logged_back_off(
    tmp_path: Path, start: Any, caplog: Any
) -> None:
    """A source that hands out tokens already due (2 s left of 102, less than the 3 s margin;
    a token merely short-lived is replaced at half its life instead) is asked again after the
    capped back-off, never at once."""
    fetched: list[str] = []

    def stale(settings: Settings) -> str:
        now = int(time.time())
        fetched.append(make_jwt(iat=now - 100, exp=now + 2))
        return fetched[-1]

    path = tmp_path / "token"
    policy = refresh.Policy(margin=3, min_backoff=0.2, max_backoff=0.4)
    settings = settings_for(path, refresh_margin="3", min_remaining="1")
    timeline = Timeline()
    with caplog.at_level(logging.WARNING, logger="azfed_helper"):
        running = start(settings, policy, rng=TopJitter(), wait=timeline.wait, fetch=stale)
        running.writes.wait_for(3)
        snapshot = running.sidecar.state.snapshot()
        running.stop()
    assert snapshot.last_success is not None and snapshot.next_refresh is not None
    assert snapshot.next_refresh - snapshot.last_success == pytest.approx(0.4)
    waits = [delay for kind, delay in timeline.events if kind == "wait"]
    assert len(waits) >= 2 and waits == pytest.approx([0.4] * len(waits))  # no busy loop
    assert len(fetched) <= len(running.writes.tokens) + 1  # one in flight
    assert any(getattr(r, "event", "") == "short_lived" for r in caplog.records)


def test_short_lived_tokens_are_replaced_at_half_their_life(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any, caplog: Any
) -> None:
    """4-second tokens and a 20-minute margin: each is replaced at half its life (planned from
    the token), neither treated as due at once (a short-lived warning and back-off) nor kept
    until it expires."""
    emulator.id_token_lifetime = 4
    path = tmp_path / "token"
    timeline = Timeline()
    with caplog.at_level(logging.INFO, logger="azfed_helper"):
        running = start(settings_for(path), refresh.Policy(margin=1200), wait=timeline.wait)
        running.writes.wait_for(3)
        running.stop()
    planned = [r for r in caplog.records if getattr(r, "event", "") == "refreshed"][:2]
    assert len(planned) == 2
    for record, token in zip(planned, running.writes.tokens, strict=False):
        assert token.expires_at - token.issued_at == 4
        delay = record.next_refresh_in  # type: ignore[attr-defined]
        assert 0 < delay <= 2  # iat + 2 s, counted from whenever the write finished
    assert not [r for r in caplog.records if getattr(r, "event", "") == "short_lived"]
    assert emulator.counts["metadata.identity"] <= len(running.writes.tokens) + 1


def test_stop_mid_fetch_is_quick_and_never_writes(tmp_path: Path, start: Any) -> None:
    path = tmp_path / "token"
    path.write_text(make_jwt(iat=int(time.time()) - 3000, exp=int(time.time()) + 500))
    old = path.read_bytes()
    entered, release = threading.Event(), threading.Event()

    def hanging_fetch(settings: Settings) -> str:
        entered.set()
        release.wait(60)
        return make_jwt()

    running = start(settings_for(path), refresh.Policy(margin=1200), fetch=hanging_fetch)
    assert entered.wait(30)
    begun = time.monotonic()
    assert not running.sidecar.stop(timeout=0.5)  # the fetch still hangs: abandoned
    assert time.monotonic() - begun < 30  # stop kept its own timeout, not the fetch's 60 s
    release.set()
    running.thread.join(30)
    assert not running.thread.is_alive()
    assert path.read_bytes() == old  # the token fetched after stop was never written
    assert running.writes.tokens == []


def test_config_error_before_first_success_ends_the_loop(tmp_path: Path, start: Any) -> None:
    settings = settings_for(tmp_path / "token", credentials=str(tmp_path / "missing.json"))
    running = start(settings, refresh.Policy(margin=1200))
    running.thread.join(30)
    assert isinstance(running.sidecar.error, UsageError)


def test_failing_hook_is_counted_and_the_loop_goes_on(tmp_path: Path, start: Any) -> None:
    calls: list[str] = []

    def fetch(settings: Settings) -> str:
        calls.append("fetch")
        if len(calls) == 2:
            raise SourceError("temporary")
        return make_jwt()

    sidecar_settings = settings_for(tmp_path / "token")
    sidecar = Sidecar(
        sidecar_settings,
        refresh.Policy(margin=1200, min_backoff=0.05, max_backoff=0.05),
        fetch=fetch,
        rng=random.Random(1),
    )

    def broken_hook(token: IdToken) -> None:
        raise RuntimeError("az login failed")

    sidecar.hooks.append(broken_hook)
    writes = Writes()
    sidecar.hooks.append(writes)
    sidecar.start()
    writes.wait_for(1)
    sidecar.refresh_now()  # fails (SourceError), then retried after the 0.05 s back-off
    writes.wait_for(2)
    assert sidecar.stop(timeout=30)
    snapshot = sidecar.state.snapshot()
    assert snapshot.failures["hook"] == 2
    assert snapshot.failures["source"] == 1
    assert snapshot.refreshes == 2 and snapshot.consecutive_failures == 0
