"""Keep the Azure CLI logged in as the configured app with a fresh Google assertion.

``az login --federated-token`` stores the JWT once and replays it until Entra refuses it
(AADSTS700024, Azure/azure-cli#28708). The hook logs az in again before that happens.

How we know what az holds, without running az (the no-op path runs before every ``az`` command,
so it reads files only, standard library only): our record ``$AZURE_CONFIG_DIR/azfed-helper.json``
says which assertion *we* validated with Entra and logged in with, and for which app, tenant, cloud
and subscription. az's own files are the truth about its current state: the default account in
``azureProfile.json`` must be our service principal in the current cloud, and the entry for our
client in ``service_principal_entries.json`` must hold that same assertion with more than the
refresh margin left. So ``az logout``, ``az account clear``, a login as someone else, a cloud switch
or a user's own ``az login --federated-token`` all make the check fail and the hook log in again.

The refresh path validates the assertion with our own exchange before ``az login``: a re-login
while az holds a cached ARM token is served from MSAL's cache and never shows the new assertion to
Entra, so az alone would report success for a token Entra refuses later.
"""

from __future__ import annotations

import binascii
import os
import time

from .. import TYPE_CHECKING, idtoken, jsonfast, sources
from ..errors import AzfedError, InvalidTokenError
from ..idtoken import MIN_PRESENTED_LIFETIME

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..config import Settings
    from ..idtoken import IdToken

RECORD = "azfed-helper.json"
# az's file of service-principal logins: the assertion az replays is stored there.
SERVICE_PRINCIPALS = "service_principal_entries.json"
DEFAULT_CLOUD = "AzureCloud"  # az's cloud when its config names none


class AzCliError(AzfedError):
    """The Azure CLI itself failed (exit 1)."""


class Target:
    """What az must be logged in as: the app, and optionally the cloud authority and subscription.

    ``authority`` is only the one the user gave explicitly (flag or AZURE_AUTHORITY_HOST):
    otherwise az's current cloud decides, so a US Gov profile works without configuration.
    ``source_file`` is the ``file`` source's file: az holding what it holds is as current as
    az can be, whatever the margin says.
    """

    __slots__ = (
        "authority",
        "az",
        "client_id",
        "margin",
        "source_file",
        "subscription",
        "tenant_id",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        authority: str | None = None,
        subscription: str | None = None,
        az: str | None = None,
    ) -> None:
        self.tenant_id, self.client_id = settings.require_app()
        self.margin = settings.refresh_margin
        self.source_file = settings.assertion_file if sources.select(settings).reads_file else None
        self.authority = authority or None
        self.subscription = subscription or None
        self.az = az or None


def target_from_settings(settings: Settings) -> Target:
    """The target the settings name (``az-login``, ``az``, the daemon's ``--az-login``).

    Only an authority the user chose (flag, AZURE_AUTHORITY_HOST, config file) pins the cloud;
    otherwise az's current cloud decides, so a US Gov profile works without configuration.
    """
    return Target(
        settings,
        authority=settings.authority_host if settings.given("authority_host") else None,
        subscription=settings.subscription,
        az=settings.az,
    )


# -- what az holds (no-op path: files only) ---------------------------------------------------


def config_dir(environ: Mapping[str, str] | None = None) -> str:
    """az's configuration directory, as az computes it."""
    env = os.environ if environ is None else environ
    return os.path.expanduser(env.get("AZURE_CONFIG_DIR") or os.path.join("~", ".azure"))


def load_json(path: str) -> object:
    """The parsed file, None when missing or unreadable.

    Read as bytes: az writes azureProfile.json with a BOM, which jsonfast.loads strips.
    """
    try:
        with open(path, "rb") as handle:
            return jsonfast.loads(handle.read())
    except (OSError, ValueError):
        return None


def current_cloud(directory: str, environ: Mapping[str, str] | None = None) -> str:
    """az's active cloud: AZURE_CLOUD_NAME, else ``[cloud] name`` in its config file.

    A line scan, not configparser (10 ms to import): az writes this section itself.
    """
    env = os.environ if environ is None else environ
    if env.get("AZURE_CLOUD_NAME"):
        return env["AZURE_CLOUD_NAME"]
    try:
        with open(os.path.join(directory, "config"), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, ValueError):
        return DEFAULT_CLOUD
    section = ""
    for line in lines:
        text = line.strip()
        if text.startswith("["):
            section = text.strip("[]").strip().lower()
        elif section == "cloud" and "=" in text:
            key, _, value = text.partition("=")
            if key.strip().lower() == "name" and value.strip():
                return value.strip()
    return DEFAULT_CLOUD


def _same(left: object, right: object) -> bool:
    return isinstance(left, str) and isinstance(right, str) and left.lower() == right.lower()


def same_url(left: object, right: object) -> bool:
    return (
        isinstance(left, str)
        and isinstance(right, str)
        and _same(left.rstrip("/"), right.rstrip("/"))
    )


def checksum(raw: str) -> int:
    """Identifies the assertion we validated. Change detection, not security: whoever can write
    az's files can log az in as anyone anyway. (crc32 keeps hashlib off the no-op path.)"""
    return binascii.crc32(raw.encode("ascii", "replace"))


def _default_account(directory: str, cloud: str) -> dict[str, object] | None:
    profile = load_json(os.path.join(directory, "azureProfile.json"))
    accounts = profile.get("subscriptions") if isinstance(profile, dict) else None
    for account in accounts if isinstance(accounts, list) else []:
        if (
            isinstance(account, dict)
            and account.get("isDefault") is True
            and account.get("environmentName") == cloud
        ):
            return account
    return None


def _held_assertion(directory: str, target: Target) -> str | None:
    """The client assertion az stored for our app and tenant (plaintext except on Windows)."""
    entries = load_json(os.path.join(directory, SERVICE_PRINCIPALS))
    for entry in entries if isinstance(entries, list) else []:
        if (
            isinstance(entry, dict)
            and _same(entry.get("client_id"), target.client_id)
            and _same(entry.get("tenant"), target.tenant_id)
        ):
            assertion = entry.get("client_assertion")
            return assertion if isinstance(assertion, str) else None
    return None


def _record_matches(record: object, target: Target, cloud: str) -> bool:
    return (
        isinstance(record, dict)
        and _same(record.get("client_id"), target.client_id)
        and _same(record.get("tenant_id"), target.tenant_id)
        and record.get("cloud") == cloud
        and (target.authority is None or same_url(record.get("authority"), target.authority))
    )


def _account_matches(account: dict[str, object] | None, target: Target) -> bool:
    """az's default account is our service principal (and the subscription asked for, if any)."""
    if account is None:
        return False
    user = account.get("user")
    return (
        isinstance(user, dict)
        and _same(user.get("name"), target.client_id)
        and user.get("type") == "servicePrincipal"
        and _same(account.get("tenantId"), target.tenant_id)
        and (
            target.subscription is None
            or _same(account.get("id"), target.subscription)
            or _same(account.get("name"), target.subscription)
        )
    )


def held_lifetime(target: Target, directory: str, now: float) -> float | None:
    """Seconds left on the assertion az uses for ``target``, if az is logged in as we left it
    (see :func:`held_token`)."""
    token = held_token(target, directory)
    return None if token is None else token.remaining(now)


def held_token(target: Target, directory: str) -> IdToken | None:
    """The assertion az uses for ``target``, if az is logged in as we left it.

    None when anything differs from our last login: no record, another app, tenant, authority,
    cloud or subscription, az logged out or in as someone else, or an assertion we did not validate.
    """
    record = load_json(os.path.join(directory, RECORD))
    cloud = current_cloud(directory)
    if not _record_matches(record, target, cloud):
        return None
    if not _account_matches(_default_account(directory, cloud), target):
        return None
    assertion = _held_assertion(directory, target)
    assert isinstance(record, dict)
    if assertion is None or checksum(assertion) != record.get("assertion_crc32"):
        return None
    try:
        return idtoken.decode(assertion)
    except InvalidTokenError:
        return None


def is_current(target: Target, directory: str | None = None, now: float | None = None) -> bool:
    """True when az needs nothing: our validated assertion, not yet due (more than the margin,
    or half its lifetime, left); with the ``file`` source, also the very token the file holds
    while it may still be presented (nothing fresher exists until the file's writer rotates it)."""
    token = held_token(target, directory or config_dir())
    if token is None:
        return False
    at = time.time() if now is None else now
    if token.fresh(at, target.margin):
        return True
    return (
        target.source_file is not None
        and token.fresh(at, MIN_PRESENTED_LIFETIME)
        and _file_holds(target.source_file, token.raw)
    )


def _file_holds(path: str, raw: str) -> bool:
    """The file holds exactly this token. Links are followed (the kubelet's layout); only a
    regular file is read, so a FIFO never makes the hook hang."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        data = os.read(fd, len(raw) + 64)
    except OSError:
        return False
    finally:
        os.close(fd)
    return data.strip() == raw.encode("ascii", "replace")
