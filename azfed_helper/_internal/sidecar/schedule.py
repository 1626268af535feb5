"""When to refresh: pure timing decisions, no I/O, time passed in as ``now``.

Readers reuse what they read for 10 minutes (FACTS.md), so the daemon replaces a token while it
still has more than the refresh margin left (or half its lifetime, for tokens too short-lived for
the margin), somewhere in the second half of its life. The point
inside that window is random so that a fleet started together spreads its requests, and every
retry waits an exponentially growing, fully jittered, bounded delay so that nothing ever spins.
"""

from __future__ import annotations

from .. import TYPE_CHECKING

if TYPE_CHECKING:
    import random

# Refresh no earlier than this fraction of a token's life: earlier refreshes buy nothing and cost
# one more request to the source per lifetime.
EARLIEST_FRACTION = 0.5


class Policy:
    """The daemon's timing knobs, in seconds (floats: tests use sub-second back-offs)."""

    __slots__ = ("jitter", "margin", "max_backoff", "min_backoff")

    def __init__(
        self,
        margin: float,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        jitter: float = 1.0,
    ) -> None:
        self.margin = margin
        self.min_backoff = min_backoff
        self.max_backoff = max(max_backoff, min_backoff)
        self.jitter = min(max(jitter, 0.0), 1.0)


def refresh_window(issued_at: float, expires_at: float, margin: float) -> tuple[float, float]:
    """The (earliest, latest) refresh times for a token: from half its life to ``exp - margin``.

    A token is due once less than the margin or half its lifetime is left, whichever is less
    (``IdToken.due_margin``): a token too short-lived for the margin (GitHub's 5 minutes) is
    replaced at half its life, never fetched again at once.
    """
    lifetime = expires_at - issued_at
    earliest = issued_at + lifetime * EARLIEST_FRACTION
    latest = expires_at - (min(margin, lifetime / 2) if lifetime > 0 else margin)
    return min(earliest, latest), latest


def next_refresh(issued_at: float, expires_at: float, policy: Policy, rng: random.Random) -> float:
    """The absolute time at which to replace this token: a jittered point inside its window."""
    earliest, latest = refresh_window(issued_at, expires_at, policy.margin)
    return latest - policy.jitter * rng.random() * (latest - earliest)


def backoff(attempt: int, policy: Policy, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1, 2, ...): full jitter, never below the floor.

    Full jitter (uniform in [0, min(max, min * 2**attempt)]) spreads a fleet's retries after a
    shared outage; the floor keeps a failing or short-lived source from being hammered.
    """
    ceiling = min(policy.max_backoff, policy.min_backoff * 2.0 ** min(attempt, 62))
    return max(policy.min_backoff, rng.uniform(0.0, ceiling))


def delay_after_success(
    issued_at: float,
    expires_at: float,
    now: float,
    short_streak: int,
    *,
    policy: Policy,
    rng: random.Random,
) -> tuple[float, int]:
    """Seconds to wait after a successful refresh, and the new count of too-short tokens in a row.

    A token already due (the source handed back a stale or short-lived one) counts as a failure
    for back-off purposes: the daemon waits and asks again instead of looping.
    """
    wait = next_refresh(issued_at, expires_at, policy, rng) - now
    if wait >= policy.min_backoff:
        return wait, 0
    streak = short_streak + 1
    return backoff(streak, policy, rng), streak
