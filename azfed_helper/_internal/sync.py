"""One refresh step shared by every mode: check → fetch → validate → write atomically.

``write`` calls it once, the az hook before each command, the daemon on its schedule. The cheap
check runs without any lock or heavy import; only a refresh takes the writer lock, re-checks (another
process may have just refreshed) and then asks the Google source.
"""

from __future__ import annotations

import os
import time

from . import TYPE_CHECKING, idtoken, tokenfile
from .idtoken import IdToken

if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import Settings

    Fetcher = Callable[[Settings], str]


class SyncResult:
    """What a sync did: the token now in the file and whether this call replaced it."""

    __slots__ = ("token", "wrote")

    def __init__(self, token: IdToken, wrote: bool) -> None:
        self.token = token
        self.wrote = wrote


def google_fetch(settings: Settings) -> str:
    """The default fetch: the Google source (google-auth imported only when a refresh runs)."""
    from .sources import google as google_source

    return google_source.fetch(settings)


def _needs_attributes(path: str, mode: int, gid: int) -> bool:
    """True when the file's mode or group differs from what was asked (applied on every write)."""
    try:
        info = os.stat(path)
    except OSError:
        return True
    return (info.st_mode & 0o7777) != mode or gid not in (-1, info.st_gid)


def current_if_fresh(settings: Settings, clock: Callable[[], float] = time.time) -> IdToken | None:
    """The file's token when nothing needs doing: fresh enough, with the mode and group asked for.

    This is the whole no-op path (no lock, no heavy import), shared with the CLI's fast path.
    """
    path = settings.require_token_file()
    current = tokenfile.fresh_token(path, settings.audience, clock(), settings.refresh_margin)
    if current is None:
        return None
    if _needs_attributes(path, settings.mode, tokenfile.resolve_group(settings.group)):
        return None
    if tokenfile.directory_refusal(os.path.dirname(os.path.abspath(path))) is not None:
        return None  # the writing path refuses it, with the reason
    return current


def sync_once(
    settings: Settings,
    clock: Callable[[], float] = time.time,
    fetch: Fetcher | None = None,
    *,
    force: bool = False,
) -> SyncResult:
    """Make the token file hold a valid token with more than the refresh margin left (``force``:
    fetch a new one even so)."""
    path = settings.require_token_file()
    audience, margin = settings.audience, settings.refresh_margin
    gid = tokenfile.resolve_group(settings.group)
    if not force:
        current = current_if_fresh(settings, clock)
        if current is not None:
            return SyncResult(current, wrote=False)
    tokenfile.check_target(path, settings.create_dirs)
    with tokenfile.writer_lock(path):
        current = tokenfile.fresh_token(path, audience, clock(), margin)
        if current is not None and not force:
            if _needs_attributes(path, settings.mode, gid):
                tokenfile.write_atomic(path, current.raw.encode("ascii"), settings.mode, gid)
                return SyncResult(current, wrote=True)
            return SyncResult(current, wrote=False)
        token = idtoken.validate(
            idtoken.decode((fetch or google_fetch)(settings)), audience, clock()
        )
        previous = tokenfile.fresh_token(path, audience, clock(), 0)
        if previous is not None and previous.expires_at > token.expires_at and not force:
            token = previous  # never trade a longer-lived valid token for a shorter one
        tokenfile.write_atomic(path, token.raw.encode("ascii"), settings.mode, gid)
    return SyncResult(token, wrote=True)
