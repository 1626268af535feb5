"""MSAL's state in the cache directory, shared by processes with no lock held across the network.

An acquisition reads a :class:`Snapshot` of both files under the cache lock (held for the read
only), lets MSAL work on it (the network, unlocked), then takes the cache lock again, re-reads the
files and merges what it changed into what is there now: entry by entry for the token cache
(a three-way merge of the snapshot, MSAL's result and the file's current text), answer by answer
for the discovery records. Two processes acquiring different tokens at once therefore neither wait
for each other's network nor lose each other's entries. Files are replaced atomically, 0600, and
only when the merge changes them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from . import cache, httpcache
from .exchange import MsalState


class Snapshot:
    """Both cache files as one acquisition found them: what its changes are merged against."""

    def __init__(self, directory: str) -> None:
        self.token_path = os.path.join(directory, cache.TOKEN_CACHE)
        self.http_path = os.path.join(directory, cache.HTTP_CACHE)
        self.directory = directory
        with cache.locked(directory):
            self.token_text = cache.read_document(self.token_path, cache.msal_shaped)
            http_text = cache.read_document(self.http_path, cache.list_shaped)
        self.records = httpcache.records_from(http_text)

    def state(self) -> MsalState:
        """A fresh MSAL state holding the snapshot, for one acquisition."""
        return MsalState(self.token_text, self.records)

    def save(self, state: MsalState, now: float) -> None:
        """Merge what the acquisition changed in ``state`` into the files, under the cache lock."""
        changed = state.token_cache.has_state_changed
        mine = state.token_cache.serialize() if changed else None
        if mine is None and state.http_records == self.records:
            return
        with cache.locked(self.directory):
            if mine is not None:
                current = cache.read_document(self.token_path, cache.msal_shaped)
                text = merged_token_cache(self.token_text, mine, current)
                if text != current:
                    cache.write_document(self.token_path, text)
            if state.http_records != self.records:
                current = cache.read_document(self.http_path, cache.list_shaped)
                records = httpcache.records_from(current)
                text = json.dumps(
                    httpcache.merged(records, state.http_records, now), sort_keys=True
                )
                if text != current:
                    cache.write_document(self.http_path, text)


def merged_token_cache(snapshot: str | None, mine: str, current: str | None) -> str:
    """MSAL's serialized cache as ``current`` holds it, with the changes that turned ``snapshot``
    into ``mine`` applied entry by entry: an entry added or changed is taken from ``mine``; one
    removed is removed unless another process has changed it meanwhile. Texts are MSAL-shaped
    (:func:`cache.msal_shaped`); None is an empty cache."""
    before, after = _sections(snapshot), _sections(mine)
    result = _sections(current)
    for name in before.keys() | after.keys():
        old, new = before.get(name, {}), after.get(name, {})
        target = result.setdefault(name, {})
        for key in old.keys() | new.keys():
            if key not in new:
                if target.get(key) == old[key]:
                    target.pop(key, None)
            elif old.get(key) != new[key]:
                target[key] = new[key]
    return json.dumps(result, indent=4)


def _sections(text: str | None) -> dict[str, dict[str, Any]]:
    """The sections of a serialized MSAL cache (each a mapping of entries); others are dropped."""
    document = json.loads(text) if text else {}
    return {name: dict(value) for name, value in document.items() if isinstance(value, dict)}
