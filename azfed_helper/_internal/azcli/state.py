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
import sys
import time

from .. import TYPE_CHECKING, idtoken, jsonfast
from ..errors import AzfedError, InvalidTokenError, UsageError
from ..locks import ProcessLock

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import NoReturn

    from ..config import Settings
    from ..idtoken import IdToken

RECORD = "azfed-helper.json"
LOCK = "azfed-helper.lock"
DEFAULT_CLOUD = "AzureCloud"  # az's cloud when its config names none
# In our cache directory, when no token file is configured.
TOKEN_FILE = "az-login-token.jwt"  # noqa: S105 (a file name)
AZ_TIMEOUT = 120  # seconds for one az command
_INSTALL_HINT = (
    "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli) "
    "or pass --az PATH"
)


class AzCliError(AzfedError):
    """The Azure CLI itself failed (exit 1)."""


class Target:
    """What az must be logged in as: the app, and optionally the cloud authority and subscription.

    ``authority`` is only the one the user gave explicitly (flag or AZURE_AUTHORITY_HOST):
    otherwise az's current cloud decides, so a US Gov profile works without configuration.
    """

    __slots__ = ("authority", "az", "client_id", "margin", "subscription", "tenant_id")

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
        self.authority = authority or None
        self.subscription = subscription or None
        self.az = az or None


def target_from_args(settings: Settings, flags: object) -> Target:
    """The target the hook options name (``az-login``, ``az``; absent attributes read as None).

    Only an authority the user chose (flag, AZURE_AUTHORITY_HOST, config file) pins the cloud;
    otherwise az's current cloud decides, so a US Gov profile works without configuration.
    """
    chosen = settings.origins.get("authority_host", "default") != "default"
    return Target(
        settings,
        authority=settings.authority_host if chosen else None,
        subscription=getattr(flags, "subscription", None),
        az=getattr(flags, "az", None),
    )


# -- what az holds (no-op path: files only) ---------------------------------------------------


def config_dir(environ: Mapping[str, str] | None = None) -> str:
    """az's configuration directory, as az computes it."""
    env = os.environ if environ is None else environ
    return os.path.expanduser(env.get("AZURE_CONFIG_DIR") or os.path.join("~", ".azure"))


def _load_json(path: str) -> object:
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


def _same_url(left: object, right: object) -> bool:
    return (
        isinstance(left, str)
        and isinstance(right, str)
        and _same(left.rstrip("/"), right.rstrip("/"))
    )


def _checksum(raw: str) -> int:
    """Identifies the assertion we validated. Change detection, not security: whoever can write
    az's files can log az in as anyone anyway. (crc32 keeps hashlib off the no-op path.)"""
    return binascii.crc32(raw.encode("ascii", "replace"))


def _default_account(directory: str, cloud: str) -> dict[str, object] | None:
    profile = _load_json(os.path.join(directory, "azureProfile.json"))
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
    entries = _load_json(os.path.join(directory, "service_principal_entries.json"))
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
        and (target.authority is None or _same_url(record.get("authority"), target.authority))
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
    """Seconds left on the assertion az uses for ``target``, if az is logged in as we left it.

    None when anything differs from our last login: no record, another app, tenant, authority,
    cloud or subscription, az logged out or in as someone else, or an assertion we did not validate.
    """
    record = _load_json(os.path.join(directory, RECORD))
    cloud = current_cloud(directory)
    if not _record_matches(record, target, cloud):
        return None
    if not _account_matches(_default_account(directory, cloud), target):
        return None
    assertion = _held_assertion(directory, target)
    assert isinstance(record, dict)
    if assertion is None or _checksum(assertion) != record.get("assertion_crc32"):
        return None
    try:
        return idtoken.decode(assertion).remaining(now)
    except InvalidTokenError:
        return None


def is_current(target: Target, directory: str | None = None, now: float | None = None) -> bool:
    """True when az needs nothing: our validated assertion, with more than the margin left."""
    left = held_lifetime(target, directory or config_dir(), time.time() if now is None else now)
    return left is not None and left > target.margin


# -- running az -------------------------------------------------------------------------------


def exec_az(az: str | None, args: Sequence[str]) -> NoReturn:
    """Replace this process with az: its exit status, stdio and signals are az's own."""
    program = az or "az"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(program, [program, *args])  # noqa: S606 (becoming az is the point)
    except OSError as exc:
        raise UsageError(f"cannot run {program}: {exc.strerror}", _INSTALL_HINT) from exc


def find_az(az: str | None) -> str:
    """The az executable to run (``--az`` or PATH), or a usage error saying how to get one."""
    import shutil

    found = shutil.which(az or "az")
    if found is None:
        where = f"{az} is not an executable file" if az else "az was not found on PATH"
        raise UsageError(f"the Azure CLI is missing: {where}", _INSTALL_HINT)
    return found


def _az_json(az: str, args: Sequence[str]) -> object:
    output = _run_az(az, [*args, "--output", "json", "--only-show-errors"])
    try:
        return jsonfast.loads(output)
    except ValueError as exc:
        raise AzCliError(f"`az {' '.join(args)}` printed something that is not JSON") from exc


def _run_az(az: str, args: Sequence[str], token: IdToken | None = None) -> str:
    """Run az quietly; on failure raise its error, explained (AADSTS codes) and never the token."""
    import subprocess

    try:
        done = subprocess.run(
            [az, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=AZ_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AzCliError(
            f"`az {args[0]}` did not finish within {AZ_TIMEOUT}s",
            "check network access to Entra (proxy settings) and run the command by hand with --debug",
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot run {az}: {exc.strerror}", _INSTALL_HINT) from exc
    if done.returncode != 0:
        raise _az_error(args, done.returncode, done.stderr, token)
    return done.stdout


def _az_error(args: Sequence[str], code: int, stderr: str, token: IdToken | None) -> AzfedError:
    from ..entra import aadsts

    text = stderr.replace(token.raw, "<assertion>") if token is not None else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "AADSTS" in line:
            said = line.removeprefix("ERROR:").strip()
            return aadsts.explain(
                {"error_description": said}, token.claims if token is not None else None
            )
    said = lines[-1].removeprefix("ERROR:").strip() if lines else "no error output"
    hint = f"run `az {' '.join(args[:1])} --debug` by hand for details"
    if "--subscription" in args and ("not found" in said or "could not be retrieved" in said):
        client = args[args.index("--username") + 1] if "--username" in args else "the app"
        hint = (
            f"check the subscription id or name and that app {client} has a role on it; "
            "`az account list --refresh -o table` lists the subscriptions it can see"
        )
    return AzCliError(f"`az {' '.join(args[:1])}` failed with exit status {code}: {said}", hint)


class Cloud:
    """az's active cloud: its name, Entra authority and ARM's token audience."""

    __slots__ = ("authority", "name", "resource")

    def __init__(self, name: str, authority: str, resource: str) -> None:
        self.name, self.authority, self.resource = name, authority, resource


def az_cloud(az: str) -> Cloud:
    shown = _az_json(az, ["cloud", "show"])
    endpoints = shown.get("endpoints") if isinstance(shown, dict) else None
    if not isinstance(shown, dict) or not isinstance(endpoints, dict):
        raise AzCliError("`az cloud show` did not describe a cloud")
    authority = str(endpoints.get("activeDirectory") or "")
    resource = str(endpoints.get("activeDirectoryResourceId") or "")
    if not authority.startswith("https://") or not resource:
        raise UsageError(
            f"az's cloud {shown.get('name')} has no usable Entra endpoint ({authority or 'none'})",
            "select a cloud with `az cloud set --name NAME` (see `az cloud list -o table`)",
        )
    return Cloud(str(shown.get("name")), authority.rstrip("/"), resource)


# -- the refresh path -------------------------------------------------------------------------


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
    """The settings with a token file: the configured one, else a private one in our cache."""
    if settings.token_file:
        return settings
    import copy

    from ..entra import cache

    private = copy.copy(settings)
    private.token_file = os.path.join(cache.cache_dir(settings), TOKEN_FILE)
    private.mode = 0o600
    private.create_dirs = True
    return private


def validate(settings: Settings, cloud: Cloud, token: IdToken) -> None:
    """Make Entra judge the assertion now, so a token az would accept from its cache but Entra
    would refuse fails here, loudly, with the AADSTS explanation."""
    import copy

    from ..entra.exchange import Exchange

    against = copy.copy(settings)
    against.authority_host = cloud.authority
    exchange = Exchange(against, _Presented(token), persistent=False)
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
    from .. import tokenfile  # the refresh path only: the hook's no-op path stays lean

    try:
        tokenfile.make_private_dirs(directory)
    except OSError as exc:
        raise UsageError(
            f"cannot create az's configuration directory {directory}: {exc.strerror}",
            "set AZURE_CONFIG_DIR to a writable directory",
        ) from exc
    with _locked(directory):
        if not force and is_current(target, directory, clock()):
            return None  # another process logged in while we waited
        cloud = az_cloud(az)
        if target.authority is not None and not _same_url(target.authority, cloud.authority):
            raise UsageError(
                f"az's active cloud {cloud.name} signs in at {cloud.authority}, "
                f"but the authority host asked for is {target.authority}",
                "switch az to the matching cloud (`az cloud list -o table`, `az cloud set --name "
                "NAME`) or unset AZURE_AUTHORITY_HOST / --authority-host",
            )
        from ..entra.assertion import AssertionSource

        with_file = token_settings(settings)
        source = AssertionSource(with_file, clock)
        source()
        token = source.last
        assert token is not None
        validate(with_file, cloud, token)
        _run_az(az, login_args(target, with_file.require_token_file()), token)
        _write_record(directory, target, cloud, token)
    return Login(token, cloud)


def _write_record(directory: str, target: Target, cloud: Cloud, token: IdToken) -> None:
    from .. import tokenfile

    record = {
        "client_id": target.client_id,
        "tenant_id": target.tenant_id,
        "cloud": cloud.name,
        "authority": cloud.authority,
        "subscription": target.subscription,
        "assertion_crc32": _checksum(token.raw),
        "assertion_exp": int(token.expires_at),
    }
    import json

    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    tokenfile.write_atomic(os.path.join(directory, RECORD), text.encode("utf-8"), 0o600)


# -- shell hooks ------------------------------------------------------------------------------

SHELLS = ("bash", "zsh", "fish", "powershell")


def _quote_fish(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_powershell(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"


def hook_snippet(shell: str, command: Sequence[str]) -> str:
    """A function named ``az`` that runs ``command az ... -- ARGS`` (the hook, then the real az)."""
    if shell in ("bash", "zsh"):
        import shlex

        line = " ".join(shlex.quote(word) for word in command)
        return f'az() {{ {line} -- "$@"; }}\n'
    if shell == "fish":
        line = " ".join(_quote_fish(word) for word in command)
        return (
            "function az --wraps az --description 'az, kept logged in by azfed-helper'\n"
            f"    {line} -- $argv\nend\n"
        )
    if shell == "powershell":
        line = " ".join(_quote_powershell(word) for word in command)
        return f"function az {{ & {line} -- @args }}\n"
    raise UsageError(f"unknown shell {shell!r}", f"use one of: {', '.join(SHELLS)}")


# -- the daemon's --az-login ------------------------------------------------------------------


def _holds(target: Target, token: IdToken, directory: str, now: float) -> bool:
    """az is current and holds exactly ``token`` (the one the daemon just handed over)."""
    record = _load_json(os.path.join(directory, RECORD))
    return (
        isinstance(record, dict)
        and record.get("assertion_crc32") == _checksum(token.raw)
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
