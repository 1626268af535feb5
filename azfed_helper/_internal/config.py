"""Settings: one object per command, from flags, then environment, then config file, then defaults.

Which settings exist, their flags, variables, defaults and parsers are declared once, in
``options.OPTIONS``; :func:`resolve` walks that table. Azure's and Google's own variable names are
used where they exist, so an environment set up for the Azure SDKs configures us too. Nothing here
reads the environment at import time, and nothing heavy is imported: this is on every command's
path.
"""

from __future__ import annotations

import os

from . import TYPE_CHECKING, paths
from .errors import UsageError
from .option import BadValue, mode
from .options import BY_DEST, OUTPUTS, SETTINGS, default_source

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .option import Option

__all__ = ["OUTPUTS", "Settings", "parse_mode", "resolve"]

# The AKS AAD server application: the audience kubectl's exec plugins request for AKS clusters.
AKS_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
DEFAULT = "default"


def parse_mode(text: str) -> int:
    """An octal token file mode, as ``--mode`` takes it."""
    try:
        return mode(text)
    except BadValue as exc:
        raise UsageError(
            f"invalid {BY_DEST['mode'].flag} {text!r}: {exc.detail}", exc.hint
        ) from None


class Settings:
    """Resolved configuration for one command; read-only by convention, changed by :meth:`replace`.

    ``origins`` says where each value came from: ``flag``, ``env NAME``, ``config FILE [profile
    P]`` or ``default`` (shown by ``settings`` and ``doctor``).
    """

    __slots__ = (*(option.dest for option in SETTINGS), "config_file", "origins", "profile")

    token_file: str | None
    audience: str
    source: str
    issuer: str | None
    assertion_file: str | None
    assertion_command: str | None
    credentials: str | None
    impersonate: str | None
    token_format: str
    refresh_margin: int
    source_timeout: int
    iam_endpoint: str | None
    mode: int
    group: str | None
    create_dirs: bool
    client_id: str | None
    tenant_id: str | None
    authority_host: str
    entra_timeout: int
    cache_dir: str | None
    scopes: list[str] | None
    resource: str | None
    output: str
    min_remaining: int
    max_backoff: int
    health_addr: str | None
    log_format: str
    az: str | None
    subscription: str | None
    port: int
    bind: str
    secret_file: str | None
    env_file: str | None
    # Where the values came from, and the config file and profile that were read (if any).
    origins: dict[str, str]
    config_file: str | None
    profile: str | None

    def __init__(
        self,
        values: Mapping[str, object] | None = None,
        origins: Mapping[str, str] | None = None,
        *,
        config_file: str | None = None,
        profile: str | None = None,
    ) -> None:
        given = dict(values or {})
        for option in SETTINGS:
            setattr(self, option.dest, given.pop(option.dest, option.default))
        if given:
            raise TypeError(f"unknown settings: {', '.join(sorted(given))}")
        self.origins = {option.dest: DEFAULT for option in SETTINGS}
        self.origins.update(origins or {})
        self.config_file = config_file
        self.profile = profile

    def values(self) -> dict[str, object]:
        return {option.dest: getattr(self, option.dest) for option in SETTINGS}

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes`` applied (their origin becomes ``derived``); self is unchanged."""
        values = self.values()
        unknown = set(changes) - set(values)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        values.update(changes)
        origins = {**self.origins, **dict.fromkeys(changes, "derived")}
        return Settings(values, origins, config_file=self.config_file, profile=self.profile)

    def given(self, name: str) -> bool:
        """True when the user chose the value (flag, variable or config file)."""
        return self.origins.get(name, DEFAULT) not in (DEFAULT, "derived")

    def require(self, *names: str) -> None:
        """Raise one UsageError naming every setting in ``names`` that has no value, and where
        each can be given, so a user fixes them all in one go."""
        missing = [BY_DEST[name] for name in names if not getattr(self, name)]
        if not missing:
            return
        named = [option.env or option.name for option in missing]
        ways = "; ".join(option.where() for option in missing)
        keys = ", ".join(option.name for option in missing)
        raise UsageError(
            "; ".join(f"{name} is not set" for name in named),
            f"give {ways} (or the config file key{'s' if len(named) > 1 else ''} {keys}; "
            "`azfed-helper settings` shows what is in effect)",
        )

    def require_token_file(self) -> str:
        """The token file path, or a usage error naming every way to give it."""
        self.require("token_file")
        assert self.token_file is not None
        return self.token_file

    def require_app(self) -> tuple[str, str]:
        """``(tenant_id, client_id)``, or one usage error naming whichever are missing."""
        self.require("tenant_id", "client_id")
        assert self.tenant_id is not None
        assert self.client_id is not None
        return self.tenant_id, self.client_id

    def require_scopes(self) -> list[str]:
        """The scopes to request: ``--scope``, else ``--resource`` az-style, else AKS's for kubectl.

        As in az, ``/.default`` is appended to the resource verbatim: a trailing slash is kept
        (``https://management.core.windows.net/`` → ``https://management.core.windows.net//.default``).
        """
        scope, resource = BY_DEST["scopes"], BY_DEST["resource"]
        if self.scopes and self.resource:
            raise UsageError(
                f"both {scope.flag} and {resource.flag} given", "pass only one of them"
            )
        if self.scopes:
            return list(self.scopes)
        if self.resource:
            return [self.resource + "/.default"]
        if self.output == "exec-credential":
            return [AKS_SCOPE]
        raise UsageError(
            "no scope given",
            f"give {scope.where()} (e.g. https://storage.azure.com/.default) or "
            f"{resource.where()} (e.g. https://management.azure.com)",
        )


def _parsed(option: Option, value: object, label: str) -> object:
    """A flag's or variable's text through the option's parser; errors name where it came from."""
    if not isinstance(value, str):
        return value  # argparse already parsed it (append lists, store_true flags)
    try:
        return option.parse(value)
    except BadValue as exc:
        raise UsageError(f"invalid {label} {value!r}: {exc.detail}", exc.hint) from None


def resolve(flags: object, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings: a flag value (not None) wins, then the environment, then the config-file
    profile, then the default.

    ``flags`` is an argparse namespace (or any object); missing attributes count as not given.
    ``flags.config`` and ``flags.profile`` (else their variables) choose the config file and
    profile.
    """
    env = os.environ if environ is None else environ
    config, profile_option = BY_DEST["config"], BY_DEST["profile"]
    assert config.env is not None
    assert profile_option.env is not None
    chosen = getattr(flags, "profile", None) or env.get(profile_option.env)
    path = paths.config_file(getattr(flags, "config", None) or env.get(config.env), env)
    from_file: dict[str, str] = {}
    file_origins: dict[str, str] = {}
    if path is not None or chosen:  # the TOML reader only when there is a file (or an error)
        from . import configfile

        profile = configfile.load(path, chosen, env)
        from_file, file_origins = profile.values, profile.origins
        path, chosen = profile.path, profile.name
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for option in SETTINGS:
        name = option.dest
        value = getattr(flags, name, None)
        if value is not None:
            values[name], origins[name] = _parsed(option, value, option.flag), "flag"
        elif option.env and env.get(option.env):
            text = env[option.env]
            values[name], origins[name] = _parsed(option, text, option.env), f"env {option.env}"
        elif name in from_file:
            label = f"{option.name} ({file_origins[name].replace('config ', 'config file ', 1)})"
            values[name] = _parsed(option, from_file[name], label)
            origins[name] = file_origins[name]
    if "source" not in values:
        values["source"] = default_source(env)  # its origin stays "default"
    return Settings(values, origins, config_file=path, profile=chosen)
