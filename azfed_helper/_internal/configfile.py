"""The optional TOML configuration file with named profiles.

One VM can serve several apps or tenants: each profile holds any setting, under the same names
as the command-line options (``client-id``, ``token-file`` ...). Top-level keys apply to every
profile. Precedence (see config.resolve): flags, then environment, then the profile, then defaults.

Looked up at ``--config`` / ``AZFED_CONFIG``, else the user config directory
(``$XDG_CONFIG_HOME/azfed-helper/config.toml``), else ``/etc/azfed-helper/config.toml``. Finding
none is fine; the TOML parser is imported only when a file exists.
"""

from __future__ import annotations

import sys

from . import TYPE_CHECKING, paths
from .errors import UsageError
from .options import BY_DEST, CONFIG_KEYS

if TYPE_CHECKING:
    from collections.abc import Mapping

_FIX_TOML = "write the file as TOML text (see README, Config file), or give another config file"
_FIX_ACCESS = f"check the file's permissions, or give another one ({BY_DEST['config'].where()})"


class Profile:
    """What a config file says for one profile: setting name → text, and where each came from."""

    __slots__ = ("name", "origins", "path", "values")

    def __init__(self, path: str | None = None, name: str | None = None) -> None:
        self.path = path
        self.name = name
        self.values: dict[str, str] = {}
        self.origins: dict[str, str] = {}

    def take(self, values: dict[str, str], in_profile: bool) -> None:
        where = f"config {self.path}" + (f" profile {self.name}" if in_profile else "")
        self.values.update(values)
        self.origins.update(dict.fromkeys(values, where))


def _parse(path: str) -> dict[str, object]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            document: dict[str, object] = tomllib.load(handle)
            return document
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}", _FIX_ACCESS) from exc
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"config file {path} is not UTF-8 text (byte {exc.start})", _FIX_TOML
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}", _FIX_TOML) from exc
    except RecursionError as exc:
        raise UsageError(f"config file {path} is nested too deeply", _FIX_TOML) from exc


def _as_text(value: object, key: str, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    raise UsageError(
        f"config file {path}: {key!r} must be a string, number or boolean",
        'write durations as "10m" and modes as "0640"',
    )


def _settings_table(table: dict[str, object], path: str, where: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in table.items():
        if key not in CONFIG_KEYS:
            raise UsageError(
                f"config file {path}: unknown key {key!r}{where}",
                f"known keys: {', '.join(sorted(CONFIG_KEYS))}",
            )
        values[CONFIG_KEYS[key]] = _as_text(value, key, path)
    return values


def load(path: str | None, profile: str | None, environ: Mapping[str, str]) -> Profile:
    """What the config file at ``path`` (``paths.config_file``) says for ``profile``; an empty
    Profile without a file."""
    if path is None:
        if profile:
            raise UsageError(
                f"profile {profile!r} was asked for but no config file exists",
                f"create {paths.user_config_file(environ)} or {paths.SYSTEM_CONFIG_FILE}, or "
                f"give {BY_DEST['config'].where()}",
            )
        return Profile()
    document = _parse(path)
    profiles = document.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError(
            f"config file {path}: 'profiles' must be a table of [profiles.NAME]",
            "write each profile as a table: [profiles.NAME] followed by its keys",
        )
    chosen = Profile(path, profile)
    chosen.take(_settings_table(document, path, ""), in_profile=False)
    if profile:
        table = profiles.get(profile)
        if not isinstance(table, dict):
            names = ", ".join(sorted(profiles)) or "none"
            raise UsageError(
                f"config file {path} has no profile {profile!r}",
                f"profiles defined there: {names}",
            )
        chosen.take(_settings_table(table, path, f" in [profiles.{profile}]"), in_profile=True)
    return chosen
