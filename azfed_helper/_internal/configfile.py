"""The optional TOML configuration file with named profiles.

One VM can serve several apps or tenants: each profile holds any setting, under the same names
as the command-line options (``client-id``, ``token-file`` ...). Top-level keys apply to every
profile. Precedence (see config.resolve): flags, then environment, then the profile, then defaults.

Looked up at ``--config`` / ``AZFED_CONFIG``, else the user config directory
(``$XDG_CONFIG_HOME/azfed-helper/config.toml``), else ``/etc/azfed-helper/config.toml``. Finding
none is fine; the TOML parser is imported only when a file exists.
"""

from __future__ import annotations

import os
import sys

from . import TYPE_CHECKING
from .errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

SYSTEM_CONFIG = "/etc/azfed-helper/config.toml"
# Keys named after a command-line option whose setting has another name.
_ALIASES = {"scope": "scopes"}
APP_NAME = "azfed-helper"
_FIX_TOML = "write the file as TOML text (see README, Config file), or point --config elsewhere"
_FIX_ACCESS = "check the file's permissions, or point --config / AZFED_CONFIG elsewhere"


def user_config_path(environ: Mapping[str, str]) -> str:
    """Where platformdirs puts the user config on Linux, computed without importing it."""
    if sys.platform.startswith("linux"):
        home = environ.get("HOME") or os.path.expanduser("~")
        base = environ.get("XDG_CONFIG_HOME", "").strip() or os.path.join(home, ".config")
        return os.path.join(base, APP_NAME, "config.toml")
    import platformdirs

    return os.path.join(platformdirs.user_config_dir(APP_NAME, appauthor=False), "config.toml")


def find(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The config file to use: the explicit one (which must exist), else the first that exists."""
    if explicit:
        if not os.path.isfile(explicit):
            what = "is not a regular file" if os.path.exists(explicit) else "does not exist"
            raise UsageError(f"config file {explicit} {what}", "fix --config / AZFED_CONFIG")
        return explicit
    for candidate in (user_config_path(environ), SYSTEM_CONFIG):
        if os.path.isfile(candidate):
            return candidate
    return None


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


def _settings_table(
    table: dict[str, object], known: frozenset[str], path: str, where: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in table.items():
        attribute = _ALIASES.get(key, key.replace("-", "_"))
        if attribute not in known:
            raise UsageError(
                f"config file {path}: unknown key {key!r}{where}",
                f"known keys: {', '.join(sorted(name.replace('_', '-') for name in known))}",
            )
        values[attribute] = _as_text(value, key, path)
    return values


def load(
    explicit: str | None,
    profile: str | None,
    known: frozenset[str],
    environ: Mapping[str, str],
) -> dict[str, str]:
    """Settings from the config file for ``profile`` (attribute name → text), or {} without one."""
    path = find(explicit, environ)
    if path is None:
        if profile:
            raise UsageError(
                f"profile {profile!r} was asked for but no config file exists",
                f"create {user_config_path(environ)} or {SYSTEM_CONFIG}, or pass --config",
            )
        return {}
    document = _parse(path)
    profiles = document.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError(
            f"config file {path}: 'profiles' must be a table of [profiles.NAME]",
            "write each profile as a table: [profiles.NAME] followed by its keys",
        )
    values = _settings_table(document, known, path, "")
    if profile:
        chosen = profiles.get(profile)
        if not isinstance(chosen, dict):
            names = ", ".join(sorted(profiles)) or "none"
            raise UsageError(
                f"config file {path} has no profile {profile!r}",
                f"profiles defined there: {names}",
            )
        values.update(_settings_table(chosen, known, path, f" in [profiles.{profile}]"))
    return values
