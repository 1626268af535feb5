"""Where the assertion comes from: one module per source, chosen here from ``settings.source``.

Every source module has the same small interface: ``fetch(settings) -> str`` (the raw JWT),
``describe(settings) -> str`` (what it reads, for ``doctor`` and messages) and
``credential_name(claims) -> (name, description)`` (for the federated credential the app
registration needs). What the rest of the program must know about a source without importing it
(its issuer, whether it is a file someone else keeps fresh, whether its fetch belongs in a child
process) is in :data:`KINDS`. Standard library only, and no module of a source is imported until
a fetch or a description is asked for: the no-op ``write`` and the az hook read this.
"""

from __future__ import annotations

from .. import TYPE_CHECKING
from ..idtoken import GOOGLE_ISSUER

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

    from ..config import Settings

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

# One fetch may spend this many --source-timeout in all, every hop and retry together
# (impersonation from a key: the key's token_uri, then generateIdToken).
REQUEST_BUDGET = 3
# On top of that, for a fetch process to start and report (see total_source_budget).
SLACK = 2.0
# These answers (and refused connections where a restart is likely) are retried: this many
# attempts, pausing 0.5 s, then 1 s.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ATTEMPTS = 3
BACKOFF = 0.5


class Kind:
    """One source, as the rest of the program sees it.

    ``issuer`` is the ``iss`` its tokens carry (None: any https issuer); ``reads_file``: the
    source is a file another process keeps fresh, read before each use and never written (it
    already is a token file); ``isolated``: long-lived processes run its fetch in a child
    process (google-auth's weight stays out of the daemon).
    """

    __slots__ = ("isolated", "issuer", "module", "name", "reads_file")

    def __init__(
        self,
        name: str,
        module: str,
        issuer: str | None,
        *,
        isolated: bool = False,
        reads_file: bool = False,
    ) -> None:
        self.name = name
        self.module = module
        self.issuer = issuer
        self.isolated = isolated
        self.reads_file = reads_file

    def implementation(self) -> ModuleType:
        """The source's module, imported now (never on the light paths)."""
        import importlib

        return importlib.import_module(f"{__name__}.{self.module}")

    def fetch(self, settings: Settings) -> str:
        raw: str = self.implementation().fetch(settings)
        return raw

    def describe(self, settings: Settings) -> str:
        text: str = self.implementation().describe(settings)
        return text

    def federated_credential(
        self, claims: Mapping[str, object], settings: Settings
    ) -> dict[str, object]:
        """The federated credential the app registration needs for tokens with ``claims``:
        the parameters of ``az ad app federated-credential create``."""
        name, description = self.implementation().credential_name(claims)
        return {
            "name": _credential_name(name),
            "issuer": claims.get("iss"),
            "subject": claims.get("sub"),
            "audiences": [settings.audience],
            "description": description[:600],
        }


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("google", "google", GOOGLE_ISSUER, isolated=True),
        Kind("file", "file", None, reads_file=True),
        Kind("github-actions", "github", GITHUB_ISSUER),
        Kind("command", "command", None),
    )
}


def select(settings: Settings) -> Kind:
    """The source the settings name."""
    return KINDS[settings.source]


def expected_issuer(settings: Settings) -> str | None:
    """The ``iss`` tokens must carry: ``--issuer`` when given, else the source's (None: any
    https issuer)."""
    return settings.issuer or select(settings).issuer


def readers_file(settings: Settings) -> str:
    """The file Azure SDKs, az and ``status`` read: the source's own file when another process
    keeps it fresh (``--source file``: it already is a token file), else our token file. A usage
    error names the setting that is missing."""
    if select(settings).reads_file:
        from .file import path_of

        return path_of(settings)
    return settings.require_token_file()


def fetch(settings: Settings) -> str:
    """A raw JWT from the selected source, in this process."""
    return select(settings).fetch(settings)


def fetcher(settings: Settings) -> Callable[[Settings], str]:
    """How a long-lived process fetches: in a child process for sources that need one."""
    if select(settings).isolated:
        from .child_fetch import fetch as isolated_fetch

        return isolated_fetch
    return fetch


def total_source_budget(settings: Settings) -> float:
    """The longest one fetch may take in all (every hop and retry, a fresh process's start
    included): what anyone waiting for a fetch allows before giving up on it."""
    return REQUEST_BUDGET * settings.source_timeout + SLACK


def any_issuer_credential(claims: Mapping[str, object]) -> tuple[str, str]:
    """Name and description of a federated credential for a token of any issuer: a
    Kubernetes service account's (``system:serviceaccount:NS:NAME``) is named after it."""
    subject = str(claims.get("sub"))
    parts = subject.split(":")
    if len(parts) == 4 and parts[:2] == ["system", "serviceaccount"]:
        return (
            f"kubernetes-{parts[2]}-{parts[3]}",
            f"Kubernetes service account {parts[2]}/{parts[3]} of {claims.get('iss')}",
        )
    return f"oidc-{subject}", f"subject {subject} of {claims.get('iss')}"


def _credential_name(text: str) -> str:
    """A federated credential name Entra accepts: letters, digits, '-' and '_', 3 to 120
    characters, starting with a letter or digit."""
    name = "".join(
        char if char.isascii() and (char.isalnum() or char in "-_") else "-" for char in text
    )
    while "--" in name:
        name = name.replace("--", "-")
    name = name.strip("-_")[:120].rstrip("-_")
    return name if len(name) >= 3 else f"azfed-{name}".rstrip("-")
