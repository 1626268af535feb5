"""``azfed-helper doctor``: every check in order, each passed, failed or skipped with the fix.

The checks run the real code paths (the selected source, a real ID token from it, a real Entra
exchange with that token, the token file on disk, the Azure CLI's state), so a pass means the
deployment works, and a failure shows the same explained error the commands would. Never prints
a token. Checks are yielded as each finishes, so a user watching a slow Entra sees the earlier
ones.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import idtoken, ownership, sources, tokenfile
from .config import Settings
from .durations import format_duration
from .errors import AzfedError
from .idtoken import IdToken
from .options import BY_DEST
from .shell import quote

PASS, FAIL, SKIP = "pass", "fail", "skip"
DEFAULT_SCOPE = "https://management.azure.com/.default"
# Readers of a token file reuse what they read for 10 minutes, and the file is replaced with
# (at most) half the token's life left: a token that lives no longer than this fails them.
SHORT_FOR_FILE_READERS = 1200
_APP_UNSET = f"{BY_DEST['client_id'].env} and {BY_DEST['tenant_id'].env} are not both set"
_APP_WAYS = f"{BY_DEST['client_id'].where()}, and {BY_DEST['tenant_id'].where()}"


class Check:
    """One check's outcome: a status, what was seen (lines) and, when not passed, the fix."""

    def __init__(self, name: str, status: str, details: list[str], fix: str | None = None) -> None:
        self.name = name
        self.status = status
        self.details = details
        self.fix = fix

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "status": self.status, "details": self.details, "fix": self.fix}


class Doctor:
    """Runs the checks against one Settings; later checks use what earlier ones found."""

    def __init__(self, settings: Settings, readers: list[str], scopes: list[str]) -> None:
        self.settings = settings
        self.readers = readers
        self.scopes = scopes
        self.token: IdToken | None = None
        self.source_ok = False  # set by the source check; the token check needs it
        self.kind = sources.select(settings)

    def run(self) -> Iterator[Check]:
        """Each check's outcome as soon as it is known (later checks wait for earlier ones)."""
        steps: list[Callable[[], Check]] = [
            self.configuration,
            self.source,
            self.id_token,
            self.federated_credential,
            self.token_file,
            self.entra_exchange,
            self.azure_cli,
        ]
        for step in steps:
            yield _guarded(step)

    def configuration(self) -> Check:
        """Every setting in effect and where it came from, as ``azfed-helper settings`` shows."""
        from .settingsview import lines

        return Check("configuration", PASS, lines(self.settings))

    def source(self) -> Check:
        """The source the settings select and what it reads; a Google metadata server must
        also answer (off Google Cloud none does, and describing it would pass a deployment that
        cannot work), and the file source's file must be there."""
        settings, kind = self.settings, self.kind
        details = [f"{kind.name}: {kind.describe(settings)}"]
        if kind.name == "google":
            from .sources import google as google_source
            from .sources.google_credentials import detect

            if detect(settings)[0].kind == "metadata":
                google_source.probe_metadata(settings)
                details.append("it answers as a metadata server (Metadata-Flavor: Google)")
        elif kind.reads_file:
            path = str(settings.assertion_file)
            kind.fetch(settings)  # there, a regular file, readable and not empty
            details.append(f"{path}: {ownership.describe(os.stat(path))}")
        issuer = sources.expected_issuer(settings)
        pinned = f" (pinned by {BY_DEST['issuer'].flag})" if settings.issuer else ""
        details.append(f"expected issuer: {issuer or 'any https issuer'}{pinned}")
        self.source_ok = True
        return Check("source", PASS, details)

    def id_token(self) -> Check:
        if not self.source_ok:
            return Check("id token", SKIP, ["needs a working source (see above)"])
        settings = self.settings
        raw = self.kind.fetch(settings)
        now = time.time()
        token = idtoken.validate(
            idtoken.decode(raw), settings.audience, now, issuer=sources.expected_issuer(settings)
        )
        self.token = token
        details = [f"{key}: {value}" for key, value in token.summary().items()]
        lifetime = token.expires_at - token.issued_at
        details.append(
            f"expires in {format_duration(token.remaining(now))} (lifetime "
            f"{format_duration(lifetime)}; replaced with "
            f"{format_duration(token.due_margin(settings.refresh_margin))} left)"
        )
        if lifetime <= SHORT_FOR_FILE_READERS:
            details.append(
                "note: tokens this short outlive no reader of a token file (the Azure SDKs reuse "
                "what they read from it for 10 minutes): give the SDKs `azfed-helper serve` "
                "(managed identity) or FederatedCredential instead"
            )
        return Check("id token", PASS, details)

    def federated_credential(self) -> Check:
        if self.token is None:
            return Check("federated credential", SKIP, ["needs an ID token (see above)"])
        client = self.settings.client_id or "CLIENT_ID"
        parameters = self.kind.federated_credential(self.token.claims, self.settings)
        command = (
            f"az ad app federated-credential create --id {quote(client)} "
            f"--parameters {quote(json.dumps(parameters))}"
        )
        details = [
            f"issuer {parameters['issuer']}, subject {parameters['subject']}, audience "
            f"{self.settings.audience}",
            "the app registration needs exactly this federated credential; create it with:",
            command,
        ]
        return Check("federated credential", PASS, details)

    def token_file(self) -> Check:
        if self.kind.reads_file:
            return self._source_file()
        path = self.settings.token_file
        if not path:
            return Check(
                "token file",
                SKIP,
                ["no token file configured (token/credential keep the ID token in memory)"],
                f"set {BY_DEST['token_file'].where()} for the Azure SDKs, az and Terraform",
            )
        if self.token is not None:
            from .sync import sync_once

            # What `write` does (a no-op when fresh), with the token minted above: no second fetch.
            minted = self.token.raw
            sync_once(self.settings, fetch=lambda _settings: minted)
        token = tokenfile.read(path)
        if token is None:
            return Check("token file", FAIL, [f"{path} does not exist"], "run `azfed-helper write`")
        return self._readable(path, token)

    def _source_file(self) -> Check:
        """The file source's file is the token file: nothing is written, its readers checked."""
        path = str(self.settings.assertion_file)
        variable = BY_DEST["token_file"].env
        configured = self.settings.token_file
        if configured and os.path.realpath(configured) != os.path.realpath(path):
            return Check(
                "token file",
                FAIL,
                [
                    f"{variable} is {configured}, which nothing writes with {BY_DEST['source'].flag} file"
                ],
                f"set {variable}={path}: that file already is a token file, kept fresh by "
                "another process",
            )
        token = tokenfile.read(path)
        if token is None:
            return Check("token file", FAIL, [f"{path} does not exist"], "check the source above")
        check = self._readable(path, token)
        check.details.insert(0, f"the source's file is the token file: {variable}={path}")
        return check

    def _readable(self, path: str, token: IdToken) -> Check:
        """A token file's state: valid, its mode and owner, and whether the readers can read it."""
        settings = self.settings
        idtoken.validate(
            token, settings.audience, time.time(), issuer=sources.expected_issuer(settings)
        )
        info = os.stat(path)
        details = [
            f"path: {path}",
            f"mode: {stat.S_IMODE(info.st_mode):04o}, owner {_user(info.st_uid)}, group {_group(info.st_gid)}",
        ]
        details.append(
            f"holds a valid token, expires in {format_duration(token.remaining(time.time()))}"
        )
        warning = tokenfile.directory_warning(path)
        if warning is not None:
            details.append(f"warning: {warning}")
        unreadable = [user for user in self.readers if not _can_read(user, path)]
        details += [f"readable by {user}" for user in self.readers if user not in unreadable]
        if unreadable:
            return Check(
                "token file",
                FAIL,
                details + [f"NOT readable by {user}" for user in unreadable],
                f"grant the readers a group: {BY_DEST['group'].flag} GROUP {BY_DEST['mode'].flag} 0640, and "
                "make every directory "
                "on the path searchable by them",
            )
        return Check("token file", PASS, details)

    def entra_exchange(self) -> Check:
        if not (self.settings.client_id and self.settings.tenant_id):
            return Check(
                "entra exchange",
                SKIP,
                [_APP_UNSET],
                f"set {_APP_WAYS} to test the exchange",
            )
        if self.token is None:
            return Check("entra exchange", SKIP, ["needs an ID token (see above)"])
        from .entra.exchange import Exchange

        raw = self.token.raw
        exchange = Exchange(self.settings, lambda: raw)
        try:
            access = exchange.acquire(self.scopes)
        finally:
            exchange.close()
        claims = idtoken.decode(access.token).claims
        return Check(
            "entra exchange",
            PASS,
            [
                f"Entra issued a token for {', '.join(self.scopes)} "
                f"(aud {claims.get('aud')}, tid {claims.get('tid')}), "
                f"expires in {format_duration(access.expires_on - time.time())}"
            ],
        )

    def azure_cli(self) -> Check:
        """az's state, when az is in use: is it logged in as we left it, and for how long?"""
        import shutil

        from .azcli import state as azcli

        az = shutil.which("az")
        if az is None:
            return Check("azure cli", SKIP, ["az is not on PATH (needed only for the az hook)"])
        directory = azcli.config_dir()
        if not os.path.exists(os.path.join(directory, azcli.RECORD)):
            return Check(
                "azure cli",
                SKIP,
                [f"{az} found; azfed-helper has not logged it in (config dir {directory})"],
                "if you use az, run `azfed-helper az-login` or add its --print-hook to your shell",
            )
        if not (self.settings.client_id and self.settings.tenant_id):
            return Check("azure cli", SKIP, [_APP_UNSET])
        target = azcli.target_from_settings(self.settings)
        left = azcli.held_lifetime(target, directory, time.time())
        if left is None:
            return Check(
                "azure cli",
                FAIL,
                [f"az ({directory}) is no longer logged in as {target.client_id} by azfed-helper"],
                "someone ran az login/logout or switched cloud; `azfed-helper az-login` logs in again",
            )
        state = "current" if left > target.margin else "due for refresh at the next az-login"
        return Check(
            "azure cli",
            PASS,
            [
                f"az is logged in as {target.client_id}; assertion expires in {format_duration(left)} ({state})"
            ],
        )


def _guarded(step: Callable[[], Check]) -> Check:
    """A check that raised becomes a failed check carrying the error's message and hint."""
    name = step.__name__.replace("_", " ")
    try:
        return step()
    except AzfedError as exc:
        return Check(name, FAIL, exc.message.splitlines(), exc.hint)
    except Exception as exc:
        return Check(
            name, FAIL, [f"{type(exc).__name__}: {exc}"], "rerun with --debug and report it"
        )


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} ({uid})"
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} ({gid})"
    except KeyError:
        return str(gid)


def _can_read(user: str, path: str) -> bool:
    """Would ``user`` be able to open ``path`` for reading (file mode and every directory)?"""
    try:
        account = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        return False
    if account.pw_uid == 0:
        return True
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem}
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    while True:
        if not _allowed(os.stat(directory), account.pw_uid, groups, 0o1):
            return False
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return _allowed(os.stat(target), account.pw_uid, groups, 0o4)


def _allowed(info: os.stat_result, uid: int, groups: set[int], bit: int) -> bool:
    if info.st_uid == uid:
        return bool(info.st_mode & (bit << 6))
    if info.st_gid in groups:
        return bool(info.st_mode & (bit << 3))
    return bool(info.st_mode & bit)


def report(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.status != FAIL for c in checks), "checks": [c.as_dict() for c in checks]}
