"""The refresh path: log az in with a fresh assertion Entra has just accepted, and record it.

A re-login while az holds a cached ARM token is served from MSAL's cache and never shows the new
assertion to Entra, so az alone would report success for a token Entra refuses later: the
assertion is validated with our own exchange first. ``daemon_hook`` does the same after each of
the daemon's writes.
"""

from __future__ import annotations

import os
import time

from .. import TYPE_CHECKING, sources, tokenwriter
from ..errors import UsageError
from ..locks import ProcessLock
from ..options import BY_DEST
from .process import AZ_TIMEOUT, Cloud, az_cloud, find_az, run_az
from .state import (
    RECORD,
    SERVICE_PRINCIPALS,
    AzCliError,
    Target,
    checksum,
    config_dir,
    is_current,
    load_json,
    same_url,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import Settings
    from ..idtoken import IdToken

LOCK = "azfed-helper.lock"
# In our cache directory, when no token file is configured.
TOKEN_FILE = "az-login-token.jwt"  # noqa: S105 (a file name)


class Login:
    """What a refresh did: the assertion az now holds and the cloud it was logged into."""

    __slots__ = ("cloud", "token")

    def __init__(self, token: IdToken, cloud: Cloud) -> None:
        self.token, self.cloud = token, cloud


class _Presented:
    """The one assertion to validate, shaped like assertion.AssertionSource (``last``)."""

    def __init__(self, token: IdToken) -> None:
        self.last = token

    def __call__(self) -> str:
        return self.last.raw


def token_settings(settings: Settings) -> Settings:
    """The settings with a token file for az to read: the configured one, else a private one in
    our cache directory (which must be ours alone, as for the token cache). With the ``file``
    source, always the private one: the source's file is never written, and the token az reads
    must be the one validated even if the file rotates meanwhile."""
    if settings.token_file and not sources.select(settings).reads_file:
        return settings
    from ..entra import cache

    directory = cache.cache_dir(settings)
    unusable = cache.prepare_dir(directory)
    if unusable is not None:
        raise UsageError(
            f"{unusable}; az-login keeps the assertion it hands to az there",
            f"set {BY_DEST['cache_dir'].env} to a writable directory, or configure a token file "
            f"({BY_DEST['token_file'].where()})",
        )
    private = os.path.join(directory, TOKEN_FILE)
    return settings.replace(token_file=private, mode=0o600, create_dirs=True)


def validate(settings: Settings, cloud: Cloud, token: IdToken) -> None:
    """Make Entra judge the assertion now, so a token az would accept from its cache but Entra
    would refuse fails here, loudly, with the AADSTS explanation."""
    from ..entra.exchange import Exchange

    against = settings.replace(authority_host=cloud.authority)
    exchange = Exchange(against, _Presented(token))
    try:
        exchange.acquire([cloud.resource + "/.default"])
    finally:
        exchange.close()


def login_args(target: Target, token_file: str) -> list[str]:
    """``az login`` for our app; ``@FILE`` keeps the token out of every process's argv."""
    args = [
        "login",
        "--service-principal",
        "--username",
        target.client_id,
        "--tenant",
        target.tenant_id,
        "--federated-token",
        "@" + os.path.abspath(token_file),
        "--output",
        "none",
        "--only-show-errors",
    ]
    # Without a subscription, no discovery: login makes no ARM call. With a subscription id, az
    # fetches that one subscription and fails without touching its profile; a name needs the
    # listing, and az 2.91 saves the listed subscriptions before it looks for the name.
    if not target.subscription:
        args += ["--skip-subscription-discovery"]
    elif _is_guid(target.subscription):
        args += ["--skip-subscription-discovery", "--subscription", target.subscription]
    else:
        args += ["--subscription", target.subscription]
    return args


def _is_guid(text: str) -> bool:
    parts = text.split("-")
    return [len(part) for part in parts] == [8, 4, 4, 4, 12] and all(
        char in "0123456789abcdefABCDEF" for part in parts for char in part
    )


def _locked(directory: str, timeout: float = 2 * AZ_TIMEOUT + 60) -> ProcessLock:
    """Serialise refreshes of one az profile across processes (refresh path only)."""
    return ProcessLock(
        os.path.join(directory, LOCK),
        timeout,
        "the az profile lock",
        "check for a stuck `az login`; the lock is released when its process exits",
        AzCliError,
    )


def ensure(
    settings: Settings,
    target: Target,
    *,
    force: bool = False,
    clock: Callable[[], float] = time.time,
) -> Login | None:
    """Log az in as ``target`` unless it already is (None: nothing was needed)."""
    directory = config_dir()
    if not force and is_current(target, directory, clock()):
        return None
    az = find_az(target.az)

    try:
        tokenwriter.make_private_dirs(directory)
    except OSError as exc:
        raise UsageError(
            f"cannot create az's configuration directory {directory}: {exc.strerror}",
            "set AZURE_CONFIG_DIR to a writable directory",
        ) from exc
    with _locked(directory):
        if not force and is_current(target, directory, clock()):
            return None  # another process logged in while we waited
        cloud = az_cloud(az)
        if target.authority is not None and not same_url(target.authority, cloud.authority):
            raise UsageError(
                f"az's active cloud {cloud.name} signs in at {cloud.authority}, "
                f"but the authority host asked for is {target.authority}",
                "switch az to the matching cloud (`az cloud list -o table`, `az cloud set --name "
                f"NAME`) or unset {BY_DEST['authority_host'].where()}",
            )
        with_file = token_settings(settings)
        token = _assertion(with_file, clock)
        validate(with_file, cloud, token)
        _set_aside_if_corrupt(os.path.join(directory, SERVICE_PRINCIPALS))
        run_az(az, login_args(target, with_file.require_token_file()), token)
        _write_record(directory, target, cloud, token)
    return Login(token, cloud)


def _assertion(with_file: Settings, clock: Callable[[], float]) -> IdToken:
    """The assertion to log az in with, in ``with_file``'s token file (refreshed when due; with
    the ``file`` source, copied there from the source's file, read now)."""
    from ..entra.assertion import AssertionSource

    source = AssertionSource(with_file, clock)
    source()
    token = source.last
    assert token is not None
    if sources.select(with_file).reads_file:
        path = with_file.require_token_file()
        tokenwriter.write_atomic(path, token.raw.encode("ascii"), 0o600)
    return token


def _set_aside_if_corrupt(path: str) -> None:
    """az itself fails with a traceback on a corrupt service_principal_entries.json (overlapping
    az runs leave one truncated), on every later login: set it aside so az starts afresh."""
    from .. import jsonfast

    try:
        with open(path, "rb") as handle:
            jsonfast.loads(handle.read())
    except OSError:
        return  # missing or unreadable: az's own business
    except ValueError as exc:
        from ..entra import cache

        cache.set_aside(path, exc, "az's file")


def _write_record(directory: str, target: Target, cloud: Cloud, token: IdToken) -> None:

    record = {
        "client_id": target.client_id,
        "tenant_id": target.tenant_id,
        "cloud": cloud.name,
        "authority": cloud.authority,
        "subscription": target.subscription,
        "assertion_crc32": checksum(token.raw),
        "assertion_exp": int(token.expires_at),
    }
    import json

    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    tokenwriter.write_atomic(os.path.join(directory, RECORD), text.encode("utf-8"), 0o600)


def _holds(target: Target, token: IdToken, directory: str, now: float) -> bool:
    """az is current and holds exactly ``token`` (the one the daemon just handed over)."""
    record = load_json(os.path.join(directory, RECORD))
    return (
        isinstance(record, dict)
        and record.get("assertion_crc32") == checksum(token.raw)
        and is_current(target, directory, now)
    )


def daemon_hook(settings: Settings) -> Callable[[IdToken], None]:
    """The daemon's after-write hook: log az in with each new token (fails early if az is missing)."""
    import logging

    log = logging.getLogger("azfed_helper.azcli")
    target = Target(settings)
    find_az(None)

    def az_login(token: IdToken) -> None:
        if _holds(target, token, config_dir(), time.time()):
            return
        login = ensure(settings, target, force=True)
        assert login is not None
        log.info(
            "az logged in as %s (cloud %s, assertion exp %s)",
            target.client_id,
            login.cloud.name,
            login.token.claims.get("exp"),
            extra={"event": "az_login", "cloud": login.cloud.name},
        )

    return az_login
