"""The on-disk access-token cache: where it lives, the lock-free hit, the locked update.

The cache file is MSAL's own ``SerializableTokenCache`` JSON, so MSAL stays the authority on what
it holds; this module only *reads* it without MSAL to answer a cache hit (the ``token`` fast path:
standard library only, no lock), applying MSAL's own matching rule. Every update happens under one
``filelock`` lock held across load → acquire → write, written atomically and only when changed.
A file that cannot be parsed is set aside and rebuilt, never fatal.
"""

from __future__ import annotations

import os

from .. import TYPE_CHECKING, jsonfast, paths, tokenfile
from ..errors import TokenFileError
from ..locks import ProcessLock

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..config import Settings

TOKEN_CACHE = "msal_token_cache.json"  # noqa: S105 (a file name)
HTTP_CACHE = "msal_http_cache.json"
LOCK_FILE = ".cache.lock"
# MSAL counts an access token with less than 5 minutes left as expired; so do we.
MIN_REMAINING = 300
_MAX_BYTES = 4 * 1024 * 1024


class AccessToken:
    """An Azure access token and when it expires (epoch seconds). Its repr never shows it."""

    __slots__ = ("expires_on", "token", "token_type")

    def __init__(self, token: str, expires_on: int, token_type: str = "Bearer") -> None:  # noqa: S107
        self.token = token
        self.expires_on = expires_on
        self.token_type = token_type

    def __repr__(self) -> str:
        return f"AccessToken(expires_on={self.expires_on})"


def cache_dir(settings: Settings) -> str:
    """``--cache-dir`` / ``AZFED_CACHE_DIR``, else the user cache directory."""
    return settings.cache_dir or paths.user_cache_dir()


def environment_of(authority_host: str) -> str:
    """The host name MSAL files tokens under: lower case, without scheme, port or path."""
    rest = authority_host.split("://", 1)[-1]
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[: host.find("]") + 1].lower()
    return host.split(":", 1)[0].lower()


def _matches(
    entry: object, client_id: str, tenant: str, environment: str, scopes: Sequence[str]
) -> bool:
    """MSAL's rule for an app-only access token (``acquire_token_for_client``)."""
    return (
        isinstance(entry, dict)
        and entry.get("credential_type") == "AccessToken"
        and entry.get("client_id") == client_id
        and entry.get("realm") == tenant
        and str(entry.get("environment", "")).lower() == environment
        and entry.get("home_account_id") is None
        and "ext_cache_key" not in entry
        and "key_id" not in entry
        and set(scopes) <= set(str(entry.get("target", "")).split())
    )


def find_access_token(
    directory: str,
    client_id: str,
    tenant: str,
    authority_host: str,
    scopes: Sequence[str],
    *,
    now: float,
) -> AccessToken | None:
    """A cached token MSAL itself would return (more than 5 minutes left), read without a lock.

    The file is replaced atomically, so a lock-free read sees a whole file. Anything unexpected
    means "miss": the locked path then reads it properly.
    """
    try:
        with open(os.path.join(directory, TOKEN_CACHE), "rb") as handle:
            document: Any = jsonfast.loads(handle.read(_MAX_BYTES))
        entries = document.get("AccessToken", {}).values()
    except (OSError, ValueError, AttributeError):
        return None
    environment = environment_of(authority_host)
    for entry in entries:
        if not _matches(entry, client_id, tenant, environment, scopes):
            continue
        try:
            expires_on = int(entry["expires_on"])
            refresh_on = int(entry.get("refresh_on", expires_on))
        except (KeyError, TypeError, ValueError):
            continue
        # MSAL goes back to Entra once refresh_on has passed; leave that case to it.
        if expires_on - now >= MIN_REMAINING and refresh_on >= now:
            return AccessToken(
                str(entry["secret"]), expires_on, str(entry.get("token_type", "Bearer"))
            )
    return None


def ensure_dir(directory: str) -> None:
    """Create the cache directory private to this user (0700); an existing one is left alone."""
    try:
        tokenfile.make_private_dirs(directory)
    except OSError as exc:
        raise TokenFileError(
            f"cannot create the token cache directory {directory}: {exc.strerror}",
            "choose a writable place with --cache-dir or AZFED_CACHE_DIR",
        ) from exc


def locked(directory: str, timeout: float = 120) -> ProcessLock:
    """The cache lock, held across load → acquire → write."""
    return ProcessLock(os.path.join(directory, LOCK_FILE), timeout, "the token cache lock")


def read_document(path: str) -> str | None:
    """The file's JSON text, None when absent; a file that is not JSON is set aside.

    Call with the cache lock held. A corrupt or unreadable cache costs one exchange, not a
    failure: the file is renamed to ``<name>.corrupt-<timestamp>`` with a warning.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise ValueError("file too large")
        text = data.decode("utf-8")
        jsonfast.loads(text)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _set_aside(path, exc)
        return None
    return text


def _set_aside(path: str, cause: BaseException) -> None:
    import logging
    import time

    aside = f"{path}.corrupt-{int(time.time())}"
    try:
        os.replace(path, aside)
        where = f"moved it to {aside}"
    except OSError:
        where = "could not move it aside"
    logging.getLogger("azfed_helper").warning(
        "azfed-helper: warning: cache file %s is unreadable (%s); %s and starting afresh",
        path,
        cause,
        where,
    )


def write_document(path: str, text: str) -> None:
    """Replace the cache file atomically, 0600 (it holds access tokens)."""
    tokenfile.write_atomic(path, text.encode("utf-8"), 0o600)


def lookup(settings: Settings, now: float) -> AccessToken | None:
    """The cache hit for the settings' app and scopes, if any (raises UsageError when unset)."""
    tenant, client_id = settings.require_app()
    return find_access_token(
        cache_dir(settings),
        client_id,
        tenant,
        settings.authority_host,
        settings.require_scopes(),
        now=now,
    )
