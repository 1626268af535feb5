"""refresh: the pure timing decisions, with a seeded Random and explicit times (no clock at all)."""

from __future__ import annotations

import random

import pytest

from azfed_helper._internal.sidecar import schedule as refresh

HOUR = 3600.0
POLICY = refresh.Policy(margin=1200, min_backoff=1, max_backoff=60)


def test_window_is_second_half_of_life_up_to_the_margin() -> None:
    assert refresh.refresh_window(0, HOUR, 1200) == (1800, 2400)
    # A life too short for the margin (GitHub's 5 minutes): due at half its life, not at once.
    assert refresh.refresh_window(0, 300, 1200) == (150, 150)
    assert refresh.refresh_window(0, 2000, 1200) == (1000, 1000)
    assert refresh.refresh_window(0, 3000, 1200) == (1500, 1800)


def test_next_refresh_stays_in_window_and_spreads() -> None:
    rng = random.Random(7)
    times = [refresh.next_refresh(0, HOUR, POLICY, rng) for _ in range(1000)]
    assert all(1800 <= t <= 2400 for t in times)
    assert max(times) - min(times) > 500  # a fleet uses most of the 10-minute window
    assert len({int(t // 60) for t in times}) >= 10  # every minute of the window is used


def test_no_jitter_refreshes_at_the_latest_point() -> None:
    policy = refresh.Policy(margin=1200, jitter=0)
    assert refresh.next_refresh(100, 100 + HOUR, policy, random.Random(1)) == 100 + 2400


def test_readers_window_always_kept_for_an_hour_token() -> None:
    """Whatever the jitter, the file keeps more than the margin (> readers' 600 s) at refresh."""
    rng = random.Random(3)
    for _ in range(1000):
        due = refresh.next_refresh(0, HOUR, POLICY, rng)
        assert HOUR - due >= 1200


def test_backoff_is_bounded_and_grows() -> None:
    rng = random.Random(11)
    for attempt in range(1, 80):
        for _ in range(50):
            delay = refresh.backoff(attempt, POLICY, rng)
            assert 1 <= delay <= 60
    early = [refresh.backoff(1, POLICY, rng) for _ in range(500)]
    late = [refresh.backoff(10, POLICY, rng) for _ in range(500)]
    assert max(early) <= 2
    assert sum(late) / len(late) > 20  # full jitter over [0, 60]: mean ~30


def test_backoff_cap_never_below_floor() -> None:
    policy = refresh.Policy(margin=10, min_backoff=5, max_backoff=1)
    assert policy.max_backoff == 5
    assert refresh.backoff(3, policy, random.Random(0)) == 5


def test_success_schedules_from_the_tokens_own_exp() -> None:
    """A token handed out with 45 min left (a cached one) is refreshed relative to its exp."""
    rng = random.Random(5)
    now = 1000.0
    delay, streak = refresh.delay_after_success(
        now - 900, now + 2700, now, 0, policy=refresh.Policy(margin=1200, jitter=0), rng=rng
    )
    assert (delay, streak) == (1500, 0)


def test_short_lived_tokens_back_off_instead_of_spinning() -> None:
    rng = random.Random(9)
    now = 0.0
    streak = 0
    delays = []
    for _ in range(12):  # the source keeps handing out tokens with only 5 minutes left
        delay, streak = refresh.delay_after_success(-3300, 300, now, streak, policy=POLICY, rng=rng)
        delays.append(delay)
    assert streak == 12
    assert all(1 <= d <= 60 for d in delays)
    assert sum(delays[6:]) > sum(delays[:3])  # the ceiling grows with the streak
    # A good token again resets the streak.
    delay, streak = refresh.delay_after_success(
        now, now + HOUR, now, streak, policy=POLICY, rng=rng
    )
    assert streak == 0 and delay >= 1800


@pytest.mark.parametrize("jitter", [-1.0, 2.0])
def test_jitter_fraction_is_clamped(jitter: float) -> None:
    assert 0 <= refresh.Policy(margin=1, jitter=jitter).jitter <= 1
