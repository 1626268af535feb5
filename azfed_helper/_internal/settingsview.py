"""Every setting in effect and where it came from: the ``settings`` command and doctor's first check.

Generated from the option table, so a new option shows up without touching this module. Reads no
network, writes nothing, takes no lock.
"""

from __future__ import annotations

from . import TYPE_CHECKING, paths
from .option import compact_duration, mode
from .options import ACTIONS_TOKEN, ACTIONS_URL, SETTINGS

if TYPE_CHECKING:
    from .config import Settings
    from .option import Option


def effective(settings: Settings, option: Option) -> object:
    """The value a command would use: a directory default is resolved to the real path."""
    value = getattr(settings, option.dest)
    if value is None and option.dest == "cache_dir":
        return paths.user_cache_dir()
    if value is None and option.dest == "env_file":
        from .identity.envfile import default_env_file

        return default_env_file(settings)
    return value


def _json_value(option: Option, value: object) -> object:
    if option.parse is mode and isinstance(value, int):
        return f"{value:04o}"
    return value


def _why(option: Option, value: object, origin: str) -> str:
    """Why a default is what it is, when the environment chose it."""
    if option.dest == "source" and origin == "default" and value != option.default:
        return f" ({ACTIONS_URL} and {ACTIONS_TOKEN} are set)"
    return ""


def _shown(option: Option, value: object) -> str:
    if value is None:
        return f"({option.default_text})" if option.default_text else "(unset)"
    if option.parse is mode and isinstance(value, int):
        return f"{value:04o}"
    if option.metavar == "DURATION" and isinstance(value, int):
        return compact_duration(value)
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def as_json(settings: Settings) -> dict[str, object]:
    """``{"settings": {name: {"value", "origin"}}, "config_file", "profile"}``."""
    return {
        "settings": {
            option.name: {
                "value": _json_value(option, effective(settings, option)),
                "origin": settings.origins[option.dest],
            }
            for option in SETTINGS
        },
        "config_file": settings.config_file,
        "profile": settings.profile,
    }


def lines(settings: Settings) -> list[str]:
    """One aligned line per setting (``name  value  (origin)``), then the file and profile."""
    rows = [
        (
            option.name,
            _shown(option, value := effective(settings, option))
            + _why(option, value, settings.origins[option.dest]),
            settings.origins[option.dest],
        )
        for option in SETTINGS
    ]
    name_width = max(len(name) for name, _, _ in rows)
    value_width = min(max(len(value) for _, value, _ in rows), 48)
    text = [
        f"{name:<{name_width}}  {value:<{value_width}}  ({origin})" for name, value, origin in rows
    ]
    searched = f"none found at {paths.user_config_file()} or {paths.SYSTEM_CONFIG_FILE}"
    text.append(f"config file: {settings.config_file or searched}")
    text.append(f"profile: {settings.profile or '(none)'}")
    return text
