"""Settings: one object built per command from flags, then environment, then defaults.

Flags win over environment variables; Azure's and Google's own variable names are used where they
exist so an environment set up for the Azure SDKs configures us too. Nothing here reads the
environment at import time, and nothing heavy is imported: this is on every command's path.
"""

from __future__ import annotations

import os

from . import TYPE_CHECKING, configfile
from .durations import parse_duration
from .errors import UsageError
from .idtoken import DEFAULT_AUDIENCE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
# Readers (azure-identity, the Go SDK) reuse what they read for 10 minutes; a `write` every
# 5 minutes with a 20-minute margin keeps every reader's copy valid (see README "Timing").
DEFAULT_REFRESH_MARGIN = 1200
DEFAULT_MIN_REMAINING = 600
DEFAULT_MODE = 0o600
OUTPUTS = ("raw", "json", "exec-credential", "env")
# The AKS AAD server application: the audience kubectl's exec plugins request for AKS clusters.
AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"


def parse_mode(text: str) -> int:
    """Parse an octal file mode such as ``0640``; the owner must keep read and write, and nobody
    else may write: the file is a credential that readers trust."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or mode & 0o600 != 0o600:
        raise UsageError(
            f"invalid --mode {text!r}",
            "give an octal mode that keeps owner read/write, e.g. 0600, 0640 or 0644",
        )
    if mode & 0o022:
        raise UsageError(
            f"--mode {text} lets group or others write the token file",
            "the token is a credential: give write to the owner only, e.g. 0600, 0640 or 0644",
        )
    return mode


def _text(value: str) -> str:
    return value


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _token_format(value: str) -> str:
    if value not in ("standard", "full"):
        raise UsageError(f"invalid token format {value!r}", "use 'standard' (default) or 'full'")
    return value


def _output(value: str) -> str:
    if value not in OUTPUTS:
        raise UsageError(f"invalid output {value!r}", f"use one of: {', '.join(OUTPUTS)}")
    return value


def _log_format(value: str) -> str:
    if value not in ("human", "json"):
        raise UsageError(f"invalid log format {value!r}", "use 'human' (default) or 'json'")
    return value


def _scopes(value: str) -> list[str]:
    return value.split()


def _seconds(what: str) -> Callable[[str], int]:
    return lambda value: parse_duration(value, what)


# (attribute, environment variable or None, default, parser for string values)
_SPECS: tuple[tuple[str, str | None, object, Callable[[str], object]], ...] = (
    ("token_file", "AZURE_FEDERATED_TOKEN_FILE", None, _text),
    ("audience", "AZFED_AUDIENCE", DEFAULT_AUDIENCE, _text),
    ("credentials", "GOOGLE_APPLICATION_CREDENTIALS", None, _text),
    ("impersonate", "AZFED_IMPERSONATE", None, _text),
    ("refresh_margin", "AZFED_REFRESH_MARGIN", DEFAULT_REFRESH_MARGIN, _seconds("refresh margin")),
    ("min_remaining", "AZFED_MIN_REMAINING", DEFAULT_MIN_REMAINING, _seconds("--min-remaining")),
    ("token_format", "AZFED_TOKEN_FORMAT", "standard", _token_format),
    ("mode", "AZFED_MODE", DEFAULT_MODE, parse_mode),
    ("group", "AZFED_GROUP", None, _text),
    ("create_dirs", None, False, _flag),
    ("force", None, False, _flag),
    ("iam_endpoint", "AZFED_IAM_ENDPOINT", None, _text),
    ("source_timeout", "AZFED_SOURCE_TIMEOUT", 10, _seconds("source timeout")),
    ("client_id", "AZURE_CLIENT_ID", None, _text),
    ("tenant_id", "AZURE_TENANT_ID", None, _text),
    ("authority_host", "AZURE_AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST, _text),
    ("cache_dir", "AZFED_CACHE_DIR", None, _text),
    ("entra_timeout", "AZFED_ENTRA_TIMEOUT", 10, _seconds("Entra timeout")),
    ("scopes", "AZFED_SCOPES", None, _scopes),
    ("resource", None, None, _text),
    ("output", None, "raw", _output),
    # The long-running commands (daemon, serve): containers and unit files configure by variable.
    ("health_addr", "AZFED_HEALTH_ADDR", None, _text),
    ("log_format", "AZFED_LOG_FORMAT", "human", _log_format),
    ("max_backoff", "AZFED_MAX_BACKOFF", 60, _seconds("--max-backoff")),
)


# Settings a config-file profile may hold: all but the per-invocation switches.
PROFILE_KEYS = frozenset(name for name, *_ in _SPECS) - {"force"}


class Settings:
    """Resolved configuration for one command. Treat as read-only after :func:`resolve`."""

    token_file: str | None
    audience: str
    credentials: str | None
    impersonate: str | None
    refresh_margin: int
    min_remaining: int
    token_format: str
    mode: int
    group: str | None
    create_dirs: bool
    force: bool
    iam_endpoint: str | None
    source_timeout: int
    client_id: str | None
    tenant_id: str | None
    authority_host: str
    cache_dir: str | None
    entra_timeout: int
    scopes: list[str] | None
    resource: str | None
    output: str
    health_addr: str | None
    log_format: str
    max_backoff: int

    # Where each value came from ("command line", an environment variable, "config file",
    # "default"), for `doctor`; filled by resolve().
    origins: dict[str, str]

    def __init__(self, **values: object) -> None:
        self.origins = {}
        for name, _env, default, _parse in _SPECS:
            setattr(self, name, values.pop(name, default))
        if values:
            raise TypeError(f"unknown settings: {', '.join(sorted(values))}")

    def require_token_file(self) -> str:
        """The token file path, or a usage error naming both ways to give it."""
        if not self.token_file:
            raise UsageError(
                "no token file given",
                "pass --token-file PATH or set AZURE_FEDERATED_TOKEN_FILE",
            )
        return self.token_file

    def require_app(self) -> tuple[str, str]:
        """``(tenant_id, client_id)``, or a usage error naming the flag and variable for each."""
        if not self.tenant_id:
            raise UsageError(
                "AZURE_TENANT_ID is not set", "pass --tenant-id or set AZURE_TENANT_ID"
            )
        if not self.client_id:
            raise UsageError(
                "AZURE_CLIENT_ID is not set", "pass --client-id or set AZURE_CLIENT_ID"
            )
        return self.tenant_id, self.client_id

    def require_scopes(self) -> list[str]:
        """The scopes to request: ``--scope``, else ``--resource`` az-style, else AKS's for kubectl.

        As in az, ``/.default`` is appended to the resource verbatim: a trailing slash is kept
        (``https://management.core.windows.net/`` → ``https://management.core.windows.net//.default``).
        """
        if self.scopes and self.resource:
            raise UsageError("both --scope and --resource given", "pass only one of them")
        if self.scopes:
            return list(self.scopes)
        if self.resource:
            return [self.resource + "/.default"]
        if self.output == "exec-credential":
            return [AKS_SCOPE]
        raise UsageError(
            "no scope given",
            "pass --scope SCOPE (e.g. https://storage.azure.com/.default) or "
            "--resource URL (e.g. https://management.azure.com), or set AZFED_SCOPES",
        )


def resolve(flags: object, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings: a flag value (not None) wins, then the environment, then the config-file
    profile, then the default.

    ``flags`` is an argparse namespace (or any object); missing attributes count as not given.
    Flag values may already be parsed (argparse ``type=``) or strings. ``flags.config`` and
    ``flags.profile`` (else ``AZFED_CONFIG`` / ``AZFED_PROFILE``) choose the config file and profile.
    """
    env = os.environ if environ is None else environ
    profile = configfile.load(
        getattr(flags, "config", None) or env.get("AZFED_CONFIG"),
        getattr(flags, "profile", None) or env.get("AZFED_PROFILE"),
        PROFILE_KEYS,
        env,
    )
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for name, env_name, default, parse in _SPECS:
        value, origins[name] = getattr(flags, name, None), "command line"
        if value is None and env_name and env.get(env_name):
            value, origins[name] = env[env_name], env_name
        if value is None and name in profile:
            value, origins[name] = profile[name], "config file"
        if value is None:
            value, origins[name] = default, "default"
        elif isinstance(value, str) and parse is not _text:
            value = parse(value)
        values[name] = value
    settings = Settings(**values)
    settings.origins = origins
    if settings.audience == "":
        raise UsageError("the audience is empty", "pass --audience or unset AZFED_AUDIENCE")
    return settings
