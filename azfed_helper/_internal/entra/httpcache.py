"""MSAL's ``http_cache``, persisted as JSON between processes (never pickle: the file would run
code on load).

Every new process repeats MSAL's discovery GET unless its ``http_cache`` is persisted. MSAL keeps
more than discovery there (5xx/429 answers for 5 s, 400s for 60 s), and replaying another
process's failure would be wrong: only the live, successful GETs are persisted, and a persisted
answer is trusted only when it points at the configured authority host (see :func:`restore`).
"""

from __future__ import annotations

import json
import time
from typing import Any

_INDEX = "_index_"  # where MSAL's ExpiringMapping keeps (heap, {key: [expires_at, created_at]})


def records_from(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        records = json.loads(text)
    except ValueError:
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def persistable(http_cache: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """The live, successful GETs (discovery documents) in an MSAL ``http_cache``, as records."""
    try:
        _heap, timestamps = http_cache.get(_INDEX, ([], {}))
        records = []
        for key, (expires_at, created_at) in sorted(timestamps.items()):
            response = http_cache.get(key)
            status = getattr(response, "status_code", 0)
            if (
                response is not None
                and key.startswith("GET ")
                and 200 <= status < 300
                and expires_at > now
            ):
                records.append(
                    {
                        "key": key,
                        "expires_at": int(expires_at),
                        "created_at": int(created_at),
                        "status_code": status,
                        "text": response.text,
                        "headers": dict(response.headers),
                    }
                )
        return records
    except (AttributeError, TypeError, ValueError):
        return []  # MSAL changed its layout: lose the optimisation, not the exchange


def merged(
    current: list[dict[str, Any]], mine: list[dict[str, Any]], now: float
) -> list[dict[str, Any]]:
    """The file's records (``current``, as other processes left them) and ours, one per key: the
    newer answer (ours on a tie), expired and malformed ones dropped. Records for other authority
    hosts stay (processes sharing the directory may use them): :func:`restore` decides what is
    trusted."""
    newest: dict[str, dict[str, Any]] = {}
    for record in (*current, *mine):
        try:
            key, created_at = str(record["key"]), int(record["created_at"])
            if int(record["expires_at"]) <= now:
                continue
        except (KeyError, TypeError, ValueError):
            continue
        kept = newest.get(key)
        if kept is None or created_at >= int(kept["created_at"]):
            newest[key] = record
    return [newest[key] for key in sorted(newest)]


def restore(records: list[dict[str, Any]], authority_host: str) -> dict[str, Any]:
    """A fresh MSAL ``http_cache`` holding the given discovery records that are safe to trust.

    A record is used only if its URL and every endpoint in its answer are https on the configured
    authority host: the file may have been edited, and MSAL would send the client assertion (the
    Google ID token) to whatever token endpoint it names. Others are dropped, so MSAL fetches
    discovery afresh and the answer it gets replaces them in the file.
    """
    try:
        from msal.throttled_http_client import NormalizedResponse
    except ImportError:  # MSAL moved it: lose the optimisation, not the exchange
        return {}

    class _Raw:
        def __init__(self, record: dict[str, Any]) -> None:
            self.status_code = int(record["status_code"])
            self.text = str(record["text"])
            self.headers = dict(record.get("headers") or {})

    now = int(time.time())
    mapping: dict[str, Any] = {}
    heap: list[list[Any]] = []
    timestamps: dict[str, list[int]] = {}
    try:
        for record in records:
            key, expires_at, created_at = (
                str(record["key"]),
                int(record["expires_at"]),
                int(record["created_at"]),
            )
            if not created_at <= now < expires_at or not _trusted(key, record, authority_host):
                continue
            mapping[key] = NormalizedResponse(_Raw(record))
            heap.append([expires_at, created_at, key])
            timestamps[key] = [expires_at, created_at]
    except (KeyError, TypeError, ValueError):
        return {}
    heap.sort()  # a sorted list is a valid heap
    mapping[_INDEX] = (heap, timestamps)
    return mapping


# The fields of an OpenID configuration that MSAL requests, redirects or trusts.
_ENDPOINTS = (
    "token_endpoint",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "end_session_endpoint",
    "jwks_uri",
    "issuer",
)


def _trusted(key: str, record: dict[str, Any], authority_host: str) -> bool:
    """True for a persisted discovery answer from the authority host that points only there."""
    parts = key.split()
    if len(parts) < 2 or parts[0] != "GET" or not _on_host(parts[1], authority_host):
        return False
    try:
        document = json.loads(str(record["text"]))
    except ValueError:
        return False
    if not isinstance(document, dict) or "token_endpoint" not in document:
        return False
    return all(_on_host(document[name], authority_host) for name in _ENDPOINTS if name in document)


def _on_host(url: object, authority_host: str) -> bool:
    """True if ``url`` is https on the same host and port as ``authority_host``."""
    import urllib.parse

    if not isinstance(url, str):
        return False
    try:
        parsed, authority = urllib.parse.urlsplit(url), urllib.parse.urlsplit(authority_host)
        return (
            parsed.scheme == "https"
            and authority.scheme == "https"
            and parsed.hostname is not None
            and parsed.hostname == authority.hostname
            and (parsed.port or 443) == (authority.port or 443)
            and not parsed.username
            and not parsed.password
        )
    except ValueError:  # an invalid port
        return False
