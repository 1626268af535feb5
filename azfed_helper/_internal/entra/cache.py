"""The on-disk access-token cache: where it lives, the lock-free hit, the locked update.

The cache file is MSAL's own ``SerializableTokenCache`` JSON, so MSAL stays the authority on what
it holds; this module only *reads* it without MSAL to answer a cache hit (the ``token`` fast path:
standard library only, no lock), applying MSAL's own matching rule. Two kinds of ``filelock`` lock
guard updates (see ``provider`` and ``store``): one per token, held across that token's exchange
so that processes wanting the same token make one request, and the cache lock, held only while
the files are read or merged and replaced (atomically, and only when changed). A file that cannot
be parsed is set aside and rebuilt, never fatal.

What the cache holds is trusted only if nobody else could have put it there: the directory and
every file read from it must be the effective user's and writable by nobody else, or the command
refuses (a planted cache would hand out the planter's tokens). A directory that cannot be created
or written (a read-only home) is a lesser matter: the cache is an optimisation, so the caller
carries on in memory, with one warning.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import TYPE_CHECKING, jsonfast, ownership, paths
from ..options import BY_DEST

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ..config import Settings
    from ..locks import ProcessLock

TOKEN_CACHE = "msal_token_cache.json"  # noqa: S105 (a file name)
HTTP_CACHE = "msal_http_cache.json"
LOCK_FILE = ".cache.lock"
KEY_LOCK_PREFIX = ".token-"
# MSAL counts an access token with less than 5 minutes left as expired; so do we.
MIN_REMAINING = 300
_MAX_BYTES = 4 * 1024 * 1024
# Never follow a link, never wait on a FIFO.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPTION = f"{BY_DEST['cache_dir'].flag} ({BY_DEST['cache_dir'].env})"


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
    means "miss": the locked path then reads it properly. A directory or file that is not ours
    alone raises UsageError: its tokens could be anyone's.
    """
    try:
        text = _read_trusted(directory, TOKEN_CACHE)
        document: Any = jsonfast.loads(text) if text is not None else {}
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


def _read_trusted(directory: str, name: str) -> str | None:
    """The text of ``directory/name``; None when either is missing. Two stats and one read.

    Raises UsageError when the directory or the file is not private to the effective user,
    OSError when unreadable, ValueError when too large or not UTF-8.
    """
    try:
        info = os.stat(directory)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None  # not a cache at all; the locked path says why it cannot be used
    ownership.require_private_dir(directory, info, "cache directory", _OPTION)
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # a symbolic link: refused like any file not ours
            ownership.require_private_file(path, os.lstat(path), "cache file", _OPTION)
        raise
    with open(fd, "rb") as handle:
        ownership.require_private_file(path, os.fstat(fd), "cache file", _OPTION)
        data = handle.read(_MAX_BYTES + 1)
    if len(data) > _MAX_BYTES:
        raise ValueError("file too large")
    return data.decode("utf-8")


def prepare_dir(directory: str) -> str | None:
    """Create the cache directory private to this user (0700); None when it is ready to use.

    Otherwise the reason it cannot be used (not creatable, not writable): the caller decides
    whether that is fatal. A directory that exists but is not ours alone raises UsageError.
    """
    try:
        from ..tokenwriter import make_private_dirs  # writers only, as below

        make_private_dirs(directory)
    except OSError as exc:
        return f"cannot create the cache directory {directory}: {exc.strerror}"
    try:
        info = os.stat(directory)
    except OSError as exc:
        return f"cannot use the cache directory {directory}: {exc.strerror}"
    ownership.require_private_dir(directory, info, "cache directory", _OPTION)
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the cache directory {directory} is not writable (read-only file system?)"
    return None


_WARNED: set[str] = set()


def usable_dir(directory: str) -> bool:
    """True when the on-disk cache can be used; else warn (once per directory and process) and
    return False, so the caller keeps its cache in memory: the cache is only an optimisation."""
    reason = prepare_dir(directory)
    if reason is None:
        return True
    if directory not in _WARNED:
        _WARNED.add(directory)
        import logging

        logging.getLogger("azfed_helper").warning(
            "azfed-helper: warning: %s; keeping tokens in memory only (set %s to a "
            "writable directory to share them between processes)",
            reason,
            BY_DEST["cache_dir"].env,
        )
    return False


def locked(directory: str, timeout: float = 120) -> ProcessLock:
    """The cache lock, held while the cache files are read, or merged and replaced; never across
    the network."""
    from ..locks import ProcessLock  # updates only: a cache hit takes no lock

    return ProcessLock(os.path.join(directory, LOCK_FILE), timeout, "the token cache lock")


def key_locked(directory: str, key: Sequence[str], timeout: float = 120) -> ProcessLock:
    """The lock of one token (``key`` names it: authority, tenant, client, scopes), held across
    its exchange: processes wanting that token wait for one request, others are not held up.

    One small file per token ever requested (``.token-<hash>.lock``); never removed, since
    removing a lock file another process may be waiting on would let two holders in.
    """
    import hashlib

    digest = hashlib.sha256("\n".join(key).encode("utf-8")).hexdigest()[:24]
    path = os.path.join(directory, f"{KEY_LOCK_PREFIX}{digest}.lock")
    from ..locks import ProcessLock

    return ProcessLock(path, timeout, "the lock of a token being acquired")


def read_document(path: str, shape: Callable[[object], bool]) -> str | None:
    """The file's JSON text, None when absent; a file that is not JSON of ``shape`` is set aside.

    Call with the cache lock held. A corrupt or unreadable cache costs one exchange, not a
    failure: the file is renamed to ``<name>.corrupt-<timestamp>`` with a warning. A file that
    is not ours alone raises UsageError (see find_access_token).
    """
    directory, name = os.path.split(path)
    try:
        text = _read_trusted(directory, name)
        if text is None:
            return None
        if not shape(jsonfast.loads(text)):
            raise ValueError("not the expected JSON structure")
    except (OSError, ValueError) as exc:
        set_aside(path, exc)
        return None
    return text


# The sections of MSAL's serialized cache it iterates (anything else there it ignores).
_MSAL_SECTIONS = ("AccessToken", "RefreshToken", "IdToken", "Account", "AppMetadata")


def msal_shaped(document: object) -> bool:
    """MSAL's token cache: an object whose sections are objects of entries (objects); MSAL
    itself would fail on anything else, on every run."""
    if not isinstance(document, dict):
        return False
    for name in _MSAL_SECTIONS:
        section = document.get(name, {})
        if not isinstance(section, dict):
            return False
        if not all(isinstance(entry, dict) for entry in section.values()):
            return False
    return True


def list_shaped(document: object) -> bool:
    return isinstance(document, list)


def set_aside(path: str, cause: BaseException, what: str = "cache file") -> None:
    """Rename a corrupt file to ``<name>.corrupt-<time>`` with a warning, so the next reader
    starts afresh instead of failing on it every time."""
    import logging
    import time

    aside = f"{path}.corrupt-{int(time.time())}"
    try:
        os.replace(path, aside)
        where = f"moved it to {aside}"
    except OSError:
        where = "could not move it aside"
    logging.getLogger("azfed_helper").warning(
        "azfed-helper: warning: %s %s is unreadable (%s); %s and starting afresh",
        what,
        path,
        cause,
        where,
    )


def write_document(path: str, text: str) -> None:
    """Replace the cache file atomically, 0600 (it holds access tokens)."""
    from ..tokenwriter import write_atomic

    write_atomic(path, text.encode("utf-8"), 0o600)


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
