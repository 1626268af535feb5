"""The daemon loop in-process: real google-auth against the emulator, short token lifetimes.

Each test runs the loop in its own thread and stops it; time passes only as long as the
emulator's short lifetimes make it, never waiting on hour-long tokens.
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

from azfed_helper._internal import idtoken
from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.errors import SourceError, UsageError
from azfed_helper._internal.idtoken import IdToken
from azfed_helper._internal.sidecar import schedule as refresh
from azfed_helper._internal.sidecar.health import Checks
from azfed_helper._internal.sidecar.loop import Sidecar

from .conftest import make_jwt

AUDIENCE = idtoken.DEFAULT_AUDIENCE


def settings_for(path: Path, **flags: object) -> Settings:
    return resolve(argparse.Namespace(token_file=str(path), **flags))


class Writes:
    """A hook that records every written token and lets a test wait for the n-th write."""

    def __init__(self) -> None:
        self.tokens: list[IdToken] = []
        self.times: list[float] = []
        self._cond = threading.Condition()

    def __call__(self, token: IdToken) -> None:
        with self._cond:
            self.tokens.append(token)
            self.times.append(time.time())
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> None:
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
        assert self.sidecar.stop(timeout=5)
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


class CountingFetch:
    """Our fetch seam around the real Google source: records when each request was made."""

    def __init__(self) -> None:
        from azfed_helper._internal.sources import google as google_source

        self._fetch = google_source.fetch
        self.times: list[float] = []

    def __call__(self, settings: Settings) -> str:
        self.times.append(time.time())
        return self._fetch(settings)


class TopJitter(random.Random):
    """Jitter always at its top: every back-off is its ceiling, so each delay is known ahead."""

    def random(self) -> float:
        return 1.0


def remaining_in_file(path: Path) -> float:
    return idtoken.decode(path.read_bytes()).remaining(time.time())


def test_reader_always_sees_a_whole_valid_token(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    emulator.id_token_lifetime = 3
    path = tmp_path / "token"
    policy = refresh.Policy(margin=1.5, min_backoff=0.1, max_backoff=0.5)
    running = start(settings_for(path), policy)
    running.writes.wait_for(1)
    reads, least = 0, float("inf")
    deadline = time.time() + 4
    while time.time() < deadline:
        raw = path.read_bytes()  # never missing, empty or partial: decode + validate must pass
        token = idtoken.validate(idtoken.decode(raw), AUDIENCE, time.time(), min_remaining=1)
        assert not raw.endswith(b"\n")
        least = min(least, token.remaining(time.time()))
        reads += 1
        time.sleep(0.05)
    running.stop()
    assert len(running.writes.tokens) >= 3  # refreshes every ~1.5 s, each a new token
    assert len({t.raw for t in running.writes.tokens}) == len(running.writes.tokens)
    assert reads >= 60 and least > 1


def test_outage_keeps_last_token_then_not_ready_then_recovers(
    emulator: Any, tmp_path: Path, start: Any
) -> None:
    """Key-file source: google-auth fails a refused connection at once (the metadata path
    retries three times inside google-auth, which only makes each of our attempts slower)."""
    emulator.id_token_lifetime = 2
    key = emulator.write_service_account_key(tmp_path / "key.json")
    path = tmp_path / "token"
    settings = settings_for(path, credentials=str(key), min_remaining="1")
    settings.min_remaining = 0.5  # type: ignore[assignment] # sub-second for the test
    fetch = CountingFetch()
    policy = refresh.Policy(margin=1, min_backoff=0.2, max_backoff=0.5)
    running = start(settings, policy, fetch=fetch, rng=TopJitter())
    checks = Checks(running.sidecar.state, str(path), AUDIENCE, 0.5)
    running.writes.wait_for(1)
    emulator.set_google_available(False)
    outage_start, kept = time.time(), path.read_bytes()
    samples: list[tuple[bool, float]] = []
    while time.time() < outage_start + 2.5:  # longer than the token's whole life
        samples.append((checks.ready()[0], remaining_in_file(path)))
        assert checks.live()[0]
        time.sleep(0.05)
    outage_end = time.time()
    assert path.read_bytes() == kept  # the last valid token stayed in place
    # Ready exactly while the file's token has more than min_remaining left (boundary fuzz 0.1 s).
    assert all(ready == (left > 0.5) for ready, left in samples if abs(left - 0.5) > 0.1)
    assert samples[0][0] and not samples[-1][0]
    attempts = [t for t in fetch.times if outage_start < t < outage_end]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) >= 3
    # Retry n waits min(0.5, 0.2 * 2**n) at top jitter: 0.4 s, then 0.5 s; plus the failing call.
    planned = [0.4, *[0.5] * (len(gaps) - 1)]
    assert all(plan - 0.01 <= gap <= plan + 1.0 for plan, gap in zip(planned, gaps, strict=True))
    assert len(attempts) <= 2.5 / 0.4 + 1
    failures = running.sidecar.state.snapshot().failures
    assert failures["source"] >= len(attempts) - 1
    emulator.set_google_available(True)
    before = len(running.writes.tokens)
    running.writes.wait_for(before + 1, timeout=3)
    assert checks.ready()[0] and path.read_bytes() != kept
    running.stop()


def test_refresh_now_fetches_at_once_despite_a_distant_schedule(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    path = tmp_path / "token"
    running = start(settings_for(path), refresh.Policy(margin=1200))
    running.writes.wait_for(1)
    assert emulator.counts["metadata.identity"] == 1
    requested = time.time()
    running.sidecar.refresh_now()
    running.writes.wait_for(2, timeout=3)
    assert running.writes.times[1] - requested < 1
    assert emulator.counts["metadata.identity"] == 2
    running.stop()


def test_restart_keeps_a_fresh_file_without_asking_the_source(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    path = tmp_path / "token"
    path.write_text(emulator.mint_google_id_token())
    path.chmod(0o600)
    running = start(settings_for(path), refresh.Policy(margin=1200))
    deadline = time.time() + 5
    while running.sidecar.state.snapshot().last_success is None and time.time() < deadline:
        time.sleep(0.01)
    running.stop()
    assert emulator.counts["metadata.identity"] == 0
    assert [t.raw for t in running.writes.tokens] == [path.read_text()]  # hooks see it once
    assert running.sidecar.state.snapshot().refreshes == 0


def test_fleet_started_together_spreads_its_refreshes(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any
) -> None:
    """Thirty daemons fetch at the same moment; their next refreshes spread over the window."""
    runs = [
        start(settings_for(tmp_path / f"token{i}"), refresh.Policy(margin=1200)) for i in range(30)
    ]
    for running in runs:
        running.writes.wait_for(1)
    planned = [r.sidecar.state.snapshot().next_refresh for r in runs]
    assert all(p is not None for p in planned)
    times = sorted(float(p or 0) for p in planned)
    first_write = min(r.writes.times[0] for r in runs)
    assert all(1700 < t - first_write < 2410 for t in times)  # second half of life, margin kept
    assert times[-1] - times[0] > 300  # most of the 10-minute window is used
    assert len({int(t // 60) for t in times}) >= 5  # no single minute takes the whole fleet
    for running in runs:
        running.stop()


def test_short_lived_tokens_get_a_bounded_logged_back_off(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, start: Any, caplog: Any
) -> None:
    emulator.id_token_lifetime = 2  # shorter than the 3 s margin: always due at once
    path = tmp_path / "token"
    policy = refresh.Policy(margin=3, min_backoff=0.2, max_backoff=0.4)
    settings = settings_for(path, refresh_margin="3", min_remaining="1")
    with caplog.at_level(logging.WARNING, logger="azfed_helper"):
        running = start(settings, policy, rng=TopJitter())
        running.writes.wait_for(3)
        snapshot = running.sidecar.state.snapshot()
        running.stop()
    # Each short-lived token is asked for again after the capped back-off, never at once.
    assert snapshot.last_success is not None and snapshot.next_refresh is not None
    assert snapshot.next_refresh - snapshot.last_success == pytest.approx(0.4)
    times = running.writes.times
    assert all(b - a >= 0.39 for a, b in itertools.pairwise(times))  # no busy loop
    assert emulator.counts["metadata.identity"] <= len(times) + 1  # at most one in flight at stop
    assert any(getattr(r, "event", "") == "short_lived" for r in caplog.records)


def test_stop_mid_fetch_is_quick_and_never_writes(tmp_path: Path, start: Any) -> None:
    path = tmp_path / "token"
    path.write_text(make_jwt(iat=int(time.time()) - 3000, exp=int(time.time()) + 500))
    old = path.read_bytes()
    entered, release = threading.Event(), threading.Event()

    def hanging_fetch(settings: Settings) -> str:
        entered.set()
        release.wait(10)
        return make_jwt()

    running = start(settings_for(path), refresh.Policy(margin=1200), fetch=hanging_fetch)
    assert entered.wait(5)
    begun = time.monotonic()
    assert not running.sidecar.stop(timeout=0.5)  # the fetch still hangs: abandoned
    assert time.monotonic() - begun < 0.9
    release.set()
    running.thread.join(5)
    assert not running.thread.is_alive()
    assert path.read_bytes() == old  # the token fetched after stop was never written
    assert running.writes.tokens == []


def test_config_error_before_first_success_ends_the_loop(tmp_path: Path, start: Any) -> None:
    settings = settings_for(tmp_path / "token", credentials=str(tmp_path / "missing.json"))
    running = start(settings, refresh.Policy(margin=1200))
    running.thread.join(5)
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
    assert sidecar.stop(timeout=2)
    snapshot = sidecar.state.snapshot()
    assert snapshot.failures["hook"] == 2
    assert snapshot.failures["source"] == 1
    assert snapshot.refreshes == 2 and snapshot.consecutive_failures == 0
