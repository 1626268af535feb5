"""The client assertion MSAL presents to Entra: a fresh ID token, never a stored string.

MSAL calls :class:`AssertionSource` only when it goes to the network, so each call decides anew.
With the ``file`` source, the assertion file is read and checked on every call (another process
keeps it fresh; it is never written). Otherwise, with a token file configured, the file is
re-read and validated (and refreshed through ``sync_once`` when it is due, exactly as ``write``
would); without one, the token comes from the source and is kept in memory until it is due. The
last token presented is remembered (as decoded claims) so an Entra refusal can be explained next
to what was sent.
"""

from __future__ import annotations

import os
import threading
import time

from .. import TYPE_CHECKING, idtoken, sources, tokenfile
from ..errors import AzfedError
from ..idtoken import MIN_PRESENTED_LIFETIME

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import Settings
    from ..idtoken import IdToken
    from ..sync import Fetcher


class AssertionSource:
    """A no-argument callable returning the JWT to present; safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        fetch: Fetcher | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.fetch = fetch
        self.last: IdToken | None = None
        self._memory: IdToken | None = None
        self._fetching = threading.Lock()

    def __call__(self) -> str:
        if sources.select(self.settings).reads_file:
            token = self._fetched()
        elif self.settings.token_file:
            token = self._from_file()
        else:
            token = self._from_source()
        self.last = token
        return token.raw

    def _from_file(self) -> IdToken:
        """The file's token; refresh it when due, fall back to it when we may not write it.

        A consumer reads: a fresh token is used whoever wrote it (a sidecar under another UID
        keeps it fresh; presenting a token planted by someone else gains them nothing, as Entra
        accepts only our federated identity), and never rewritten, which would take it from its
        other readers. Only a token that is due is refreshed, as ``write`` would (replacing a
        file that is not ours); one we cannot refresh is still presented while it is good.
        """
        from ..sync import sync_once

        settings = self.settings
        path = settings.require_token_file()
        issuer = sources.expected_issuer(settings)
        fresh = tokenfile.fresh_token(
            path,
            settings.audience,
            self.clock(),
            settings.refresh_margin,
            issuer=issuer,
            ours=False,
        )
        if fresh is not None:
            return fresh
        try:
            return sync_once(keeping_readers(settings, path), self.clock, self.fetch).token
        except AzfedError:
            usable = tokenfile.fresh_token(
                path,
                settings.audience,
                self.clock(),
                MIN_PRESENTED_LIFETIME,
                issuer=issuer,
                ours=False,
            )
            if usable is None:
                raise
            return usable

    def _from_source(self) -> IdToken:
        """A token straight from the source, reused until it is due; exchanges for several
        scopes at once wait for one fetch (the file's lock does that for a file)."""
        with self._fetching:
            cached = self._memory
            if cached is not None and cached.fresh(self.clock(), self.settings.refresh_margin):
                return cached
            token = self._fetched()
            self._memory = token
            return token

    def _fetched(self) -> IdToken:
        """A token from the source now, checked. As in sync_once, the source's freshest token
        is taken whatever its remaining life."""
        raw = (self.fetch or sources.fetch)(self.settings)
        return idtoken.validate(
            idtoken.decode(raw),
            self.settings.audience,
            self.clock(),
            issuer=sources.expected_issuer(self.settings),
        )


def keeping_readers(settings: Settings, path: str) -> Settings:
    """The settings with which a consumer refreshes ``path``: the existing file's mode and group,
    unless ``--mode``/``--group`` were given. A consumer (``token``, ``serve``, the credential)
    that refreshes a shared file must not take it away from the readers it was made for."""
    kept = tokenfile.attributes(path)
    if kept is None:
        return settings
    kept_mode, gid = kept
    # Only a group this process may give (chown refuses others, except to root).
    may_chown = os.geteuid() == 0 or gid == os.getegid() or gid in os.getgroups()
    mode = settings.mode if _given(settings, "mode") else kept_mode
    group = settings.group if _given(settings, "group") or not may_chown else str(gid)
    if (mode, group) == (settings.mode, settings.group):
        return settings
    return settings.replace(mode=mode, group=group)


def _given(settings: Settings, name: str) -> bool:
    """Not left at its default: chosen by the user, or by our code (``derived``: the az hook's
    private token file is 0600 whatever the file held), unlike ``Settings.given``."""
    return settings.origins.get(name, "default") != "default"
