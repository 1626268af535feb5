"""The one token provider, through the real MSAL against the emulator's Entra over https.

Single flight per token (threads, coroutines, processes), no waiting for another token's exchange
(in this process and across processes), a failure shared by every waiter once and not kept, and
cache files merged so that concurrent writers lose nothing. An exchange is held mid-request on an
Event the test controls (MSAL asks for the client assertion while it builds the token request);
everything is counted (the emulator's requests, the provider's counters), nothing is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.entra import cache, httpcache, store
from azfed_helper._internal.entra.aadsts import EntraError
from azfed_helper._internal.entra.assertion import AssertionSource
from azfed_helper._internal.entra.cache import AccessToken
from azfed_helper._internal.entra.provider import TokenProvider

from .conftest import cli_env, wait_until

A = "https://vault.azure.net/.default"
B = "https://storage.azure.com/.default"
C = "https://management.azure.com/.default"


class HeldOnce:
    """A client assertion whose first call after :meth:`arm` waits for :attr:`release`: it holds
    that one exchange in the middle of its request to Entra, and no other."""

    def __init__(self, source: Callable[[], str]) -> None:
        self.source = source
        self.entered = threading.Event()
        self.release = threading.Event()
        self._armed = False
        self._lock = threading.Lock()

    def arm(self) -> None:
        self._armed = True

    def __call__(self) -> str:
        with self._lock:
            hold, self._armed = self._armed, False
        if hold:
            self.entered.set()
            assert self.release.wait(60)
        return self.source()


@pytest.fixture
def settings(emulator_env: dict[str, str], tmp_path: Path, monkeypatch: Any) -> Settings:
    monkeypatch.setenv("AZFED_CACHE_DIR", str(tmp_path / "cache"))
    return resolve(argparse.Namespace())


def held_provider(settings: Settings) -> tuple[TokenProvider, HeldOnce]:
    held = HeldOnce(AssertionSource(settings))
    return TokenProvider(settings, assertion=held, sleep=lambda _: None), held


def in_threads(count: int, call: Callable[[], AccessToken]) -> tuple[list[Any], list[Any]]:
    """Start ``count`` threads calling ``call``; returns their results and errors (filled in as
    they finish) and leaves them running."""
    results: list[Any] = []
    errors: list[Any] = []

    def run() -> None:
        try:
            results.append(call())
        except Exception as exc:
            errors.append(exc)

    for _ in range(count):
        threading.Thread(target=run).start()
    return results, errors


def cached_scopes(directory: Path) -> list[str]:
    document = json.loads((directory / cache.TOKEN_CACHE).read_text())
    return sorted(entry["target"] for entry in document["AccessToken"].values())


def test_concurrent_requests_for_one_token_make_one_exchange(
    settings: Settings, emulator: Any
) -> None:
    provider, held = held_provider(settings)
    held.arm()
    results, errors = in_threads(8, lambda: provider.get([A]))
    assert held.entered.wait(30)
    wait_until(lambda: provider.counts["joined"] == 7)  # all eight are in, one exchange held
    held.release.set()
    wait_until(lambda: len(results) + len(errors) == 8)
    assert errors == []
    assert len({token.token for token in results}) == 1
    assert emulator.counts["entra.token"] == 1
    assert provider.counts["exchanges"] == 1
    assert provider.get([A]).token == results[0].token  # from memory
    assert provider.counts["cache_hits"] == 1


def test_a_held_exchange_delays_no_other_tokens_hit_or_miss(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    provider, held = held_provider(settings)
    warm = provider.get([C])
    held.arm()
    results, errors = in_threads(1, lambda: provider.get([A]))
    assert held.entered.wait(30)
    # While A's exchange waits mid-request: C from memory, C from the file (another provider,
    # as another process would), and B all the way from Entra.
    assert provider.get([C]).token == warm.token
    assert TokenProvider(settings).get([C]).token == warm.token
    assert emulator.counts["entra.token"] == 1
    other = provider.get([B])
    assert other.token != warm.token
    assert emulator.counts["entra.token"] == 2
    assert (results, errors) == ([], [])  # A is still held
    held.release.set()
    wait_until(lambda: len(results) + len(errors) == 1)
    assert errors == []
    assert emulator.counts["entra.token"] == 3
    assert cached_scopes(tmp_path / "cache") == sorted([A, B, C])  # no writer lost another's


def test_a_failure_reaches_every_waiter_once_and_is_not_kept(
    settings: Settings, emulator: Any
) -> None:
    credentials = list(emulator.federated_credentials)
    emulator.federated_credentials.clear()  # AADSTS70021
    provider, held = held_provider(settings)
    held.arm()
    results, errors = in_threads(5, lambda: provider.get([A]))
    assert held.entered.wait(30)
    wait_until(lambda: provider.counts["joined"] == 4)
    held.release.set()
    wait_until(lambda: len(results) + len(errors) == 5)
    assert results == []
    assert [type(error) for error in errors] == [EntraError] * 5
    assert {error.code for error in errors} == {70021}
    assert emulator.counts["entra.token"] == 1
    assert provider.counts["exchange_failures"] == 1
    assert provider.last_failure is not None and "AADSTS70021" in provider.last_failure
    emulator.federated_credentials[:] = credentials
    assert provider.get([A]).token  # not kept: the next request goes to Entra again
    assert emulator.counts["entra.token"] == 2
    assert provider.last_failure is None


def test_a_claims_challenge_skips_the_caches(settings: Settings, emulator: Any) -> None:
    provider = TokenProvider(settings)
    first = provider.get([A])
    renewed = provider.get([A], claims='{"access_token": {"nbf": {"essential": true}}}')
    assert renewed.token != first.token
    assert emulator.counts["entra.token"] == 2
    assert provider.get([A]).token == renewed.token  # the new one is remembered


def test_async_coroutines_share_one_exchange_and_other_tokens_go_on(
    settings: Settings, emulator: Any
) -> None:
    from azfed_helper import aio

    async def main() -> None:
        async with aio.GoogleFederatedCredential() as credential:
            provider = credential._provider
            held = HeldOnce(provider.assertion)
            provider.assertion = held  # before its first exchange, which takes it
            warm = await credential.get_token(C)
            held.arm()
            waiting = [asyncio.create_task(credential.get_token(A)) for _ in range(5)]
            deadline = time.monotonic() + 30
            while not held.entered.is_set():  # the event loop runs while A's exchange waits
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert provider.counts["joined"] == 4
            assert (await credential.get_token(C)).token == warm.token
            other = await credential.get_token(B)
            assert other.token != warm.token
            assert not any(task.done() for task in waiting)
            held.release.set()
            tokens = await asyncio.gather(*waiting)
            assert len({token.token for token in tokens}) == 1

    asyncio.run(main())
    assert emulator.counts["entra.token"] == 3  # C, B, and A once


def test_async_failure_reaches_every_coroutine(settings: Settings, emulator: Any) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from azfed_helper import aio

    emulator.federated_credentials.clear()

    async def main() -> list[BaseException]:
        async with aio.GoogleFederatedCredential() as credential:
            held = HeldOnce(credential._provider.assertion)
            credential._provider.assertion = held
            held.arm()
            waiting = [asyncio.create_task(credential.get_token(A)) for _ in range(4)]
            await asyncio.sleep(0)  # each task joins the flight before it can end
            assert credential._provider.counts["joined"] == 3
            held.release.set()
            return await asyncio.gather(*waiting, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(outcome) for outcome in outcomes] == [ClientAuthenticationError] * 4
    assert all("AADSTS70021" in str(outcome) for outcome in outcomes)
    assert emulator.counts["entra.token"] == 1


def test_a_link_planted_at_a_tokens_lock_is_never_followed(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    from azfed_helper._internal.errors import UsageError

    provider = TokenProvider(settings)
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    host, tenant, client_id, scopes = provider.key([A])
    lock = Path(cache.key_locked(str(directory), (host, tenant, client_id, *scopes)).path)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock.symlink_to(victim)
    with pytest.raises(UsageError, match="symbolic link"):
        provider.get([A])
    assert victim.read_text() == "precious"
    assert emulator.counts["entra.token"] == 0
    assert provider.get([B]).token  # another token has a lock of its own


# -- across processes ---------------------------------------------------------------------

CHILD = """
import sys
from azfed_helper._internal.config import resolve
from azfed_helper._internal.entra.assertion import AssertionSource
from azfed_helper._internal.entra.provider import TokenProvider

settings = resolve(object())
source = AssertionSource(settings)

def held():
    print("held", flush=True)  # mid-request to Entra, after reading the cache files
    sys.stdin.readline()
    return source()

print(TokenProvider(settings, assertion=held).get([sys.argv[1]]).expires_on, flush=True)
"""


def test_two_processes_exchanging_different_tokens_at_once_lose_neither(
    settings: Settings, emulator: Any, tmp_path: Path
) -> None:
    """Both processes are held mid-exchange at the same moment (so neither waits for the other),
    each having read the cache before the other wrote it; both tokens land in the file."""
    with contextlib.ExitStack() as stack:
        children = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, scope],
                    env=cli_env(),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for scope in (A, B)
        ]
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline() == "held\n"  # both are held at once
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            assert int(out) > time.time() + 3000
    directory = tmp_path / "cache"
    assert cached_scopes(directory) == sorted([A, B])
    assert emulator.counts["entra.token"] == 2
    locks = list(directory.glob(cache.KEY_LOCK_PREFIX + "*.lock"))
    assert len(locks) == 2  # one per token
    assert {lock.stat().st_mode & 0o777 for lock in locks} == {0o600}
    assert TokenProvider(settings).get([A]).token  # and a later process finds them
    assert emulator.counts["entra.token"] == 2


# -- the merges -----------------------------------------------------------------------------


def msal_document(**entries: dict[str, object]) -> str:
    return json.dumps({"AccessToken": entries, "AppMetadata": {"app": {"client_id": "c"}}})


def test_token_cache_merge_is_three_way_entry_by_entry() -> None:
    snapshot = msal_document(kept={"v": 1}, replaced={"v": 1}, dropped={"v": 1}, moved={"v": 1})
    mine = msal_document(kept={"v": 1}, replaced={"v": 2}, added={"v": 1}, moved={"v": 1})
    # Meanwhile another process added its own entry and changed "moved"; "dropped" it left alone.
    current = msal_document(
        kept={"v": 1},
        replaced={"v": 1},
        dropped={"v": 1},
        moved={"v": 9},
        theirs={"v": 1},
    )
    merged = json.loads(store.merged_token_cache(snapshot, mine, current))
    assert merged["AccessToken"] == {
        "kept": {"v": 1},
        "replaced": {"v": 2},  # ours changed it
        "added": {"v": 1},  # ours added it
        "moved": {"v": 9},  # only theirs changed it
        "theirs": {"v": 1},  # theirs added it
    }
    assert merged["AppMetadata"] == {"app": {"client_id": "c"}}
    # A removal wins only over an entry nobody changed meanwhile.
    changed = msal_document(dropped={"v": 5})
    merged = json.loads(store.merged_token_cache(msal_document(dropped={"v": 1}), "{}", changed))
    assert merged["AccessToken"] == {"dropped": {"v": 5}}
    assert json.loads(store.merged_token_cache(None, mine, None))["AccessToken"]["added"]


def record(key: str, created_at: int, expires_at: int, text: str = "{}") -> dict[str, object]:
    return {"key": key, "created_at": created_at, "expires_at": expires_at, "text": text}


def test_discovery_records_merge_keeps_the_newer_answer_per_key() -> None:
    now = 1_000_000
    current = [
        record("GET a", now - 50, now + 100, "theirs-newer"),
        record("GET b", now - 50, now + 100, "theirs-older"),
        record("GET c", now - 50, now + 100, "theirs-only"),
        record("GET d", now - 500, now - 1, "expired"),
        {"key": "GET e"},  # malformed
    ]
    mine = [
        record("GET a", now - 60, now + 100, "mine-older"),
        record("GET b", now - 10, now + 100, "mine-newer"),
        record("GET f", now - 10, now + 100, "mine-only"),
    ]
    merged = httpcache.merged(current, mine, now)
    assert [(r["key"], r["text"]) for r in merged] == [
        ("GET a", "theirs-newer"),
        ("GET b", "mine-newer"),
        ("GET c", "theirs-only"),
        ("GET f", "mine-only"),
    ]
