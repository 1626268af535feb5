"""One refresh step shared by every mode: check → fetch → validate → write atomically.

``write`` calls it once, the az hook before each command, the daemon on its schedule. The cheap
check runs without any lock or heavy import; only a refresh takes the writer lock, re-checks (another
process may have just refreshed) and then asks the token source.

A token is due once less than the refresh margin, or half its lifetime, is left
(``IdToken.due_margin``). The ``file`` source has nothing to write: its file already is a token
file, which ``write`` says (exit 2) instead of copying it.
"""

from __future__ import annotations

import os
import time

from . import TYPE_CHECKING, idtoken, sources, tokenfile
from .errors import UsageError
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


def already_a_token_file(settings: Settings) -> UsageError:
    """Why there is nothing to write with the ``file`` source, and what to do instead."""
    from .options import BY_DEST

    token_file, source = BY_DEST["token_file"], BY_DEST["source"]
    return UsageError(
        f"{source.flag} file: {settings.assertion_file} already is a token file that another "
        "process keeps fresh; azfed-helper reads it and never writes a copy",
        f"point {token_file.env} at it for the Azure SDKs and Terraform, or run `daemon "
        "--identity-endpoint` / `--az-login`, `serve` or `az-login` to use it",
    )


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
    if sources.select(settings).reads_file:
        raise already_a_token_file(settings)
    path = settings.require_token_file()
    current = tokenfile.fresh_token(
        path,
        settings.audience,
        clock(),
        settings.refresh_margin,
        issuer=sources.expected_issuer(settings),
    )
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
    due: bool = False,
) -> SyncResult:
    """Make the token file hold a valid token that is not due (``due``: the caller's schedule
    says it is, so fetch even while it is not, yet keep a longer-lived token already in the
    file; ``force``: fetch and write a new one whatever the file holds)."""
    if sources.select(settings).reads_file:
        raise already_a_token_file(settings)
    path = settings.require_token_file()
    audience, margin = settings.audience, settings.refresh_margin
    issuer = sources.expected_issuer(settings)
    gid = tokenfile.resolve_group(settings.group)
    if not (force or due):
        current = current_if_fresh(settings, clock)
        if current is not None:
            return SyncResult(current, wrote=False)
    from . import tokenwriter  # the writing path only: the no-op check above stays light

    tokenwriter.check_target(path, settings.create_dirs)
    with tokenwriter.writer_lock(path):
        current = tokenfile.fresh_token(path, audience, clock(), margin, issuer=issuer)
        if current is not None and not (force or due):
            if _needs_attributes(path, settings.mode, gid):
                tokenwriter.write_atomic(path, current.raw.encode("ascii"), settings.mode, gid)
                return SyncResult(current, wrote=True)
            return SyncResult(current, wrote=False)
        raw = (fetch or sources.fetch)(settings)
        token = idtoken.validate(idtoken.decode(raw), audience, clock(), issuer=issuer)
        previous = tokenfile.fresh_token(path, audience, clock(), 0, issuer=issuer)
        if previous is not None and previous.expires_at > token.expires_at and not force:
            token = previous  # never trade a longer-lived valid token for a shorter one
        tokenwriter.write_atomic(path, token.raw.encode("ascii"), settings.mode, gid)
    return SyncResult(token, wrote=True)
