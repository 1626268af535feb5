"""Where our files live by default: the user's cache and config directories, as platformdirs says.

On Linux the answer is computed here without importing platformdirs (~15 ms, as much as the rest
of a cache hit): ``$XDG_CACHE_HOME`` / ``$XDG_CONFIG_HOME`` when absolute, else ``~/.cache`` /
``~/.config``. A relative ``XDG_*`` value is ignored, as the XDG Base Directory spec says (it would
otherwise name a directory under whatever the current directory happens to be). Elsewhere
platformdirs decides.
"""

from __future__ import annotations

import os
import sys

from . import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

APP_NAME = "azfed-helper"
SYSTEM_CONFIG_FILE = "/etc/azfed-helper/config.toml"


def _home(environ: Mapping[str, str]) -> str:
    home = environ.get("HOME", "")
    return home if os.path.isabs(home) else os.path.expanduser("~")


def _xdg(environ: Mapping[str, str], variable: str, fallback: str) -> str:
    value = environ.get(variable, "").strip()
    return value if os.path.isabs(value) else os.path.join(_home(environ), fallback)


def user_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """Our user cache directory (``~/.cache/azfed-helper`` on Linux)."""
    env = os.environ if environ is None else environ
    if sys.platform.startswith("linux"):
        return os.path.join(_xdg(env, "XDG_CACHE_HOME", ".cache"), APP_NAME)
    import platformdirs

    return platformdirs.user_cache_dir(APP_NAME, appauthor=False)


def user_config_file(environ: Mapping[str, str] | None = None) -> str:
    """Our user config file (``~/.config/azfed-helper/config.toml`` on Linux)."""
    env = os.environ if environ is None else environ
    if sys.platform.startswith("linux"):
        return os.path.join(_xdg(env, "XDG_CONFIG_HOME", ".config"), APP_NAME, "config.toml")
    import platformdirs

    return os.path.join(platformdirs.user_config_dir(APP_NAME, appauthor=False), "config.toml")


def config_file(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The config file to use: the explicit one (which must exist), else the first of ours that
    exists (the user's, then the system's), else None."""
    if explicit:
        if not os.path.isfile(explicit):
            from .errors import UsageError
            from .options import BY_DEST

            what = "is not a regular file" if os.path.exists(explicit) else "does not exist"
            raise UsageError(f"config file {explicit} {what}", f"fix {BY_DEST['config'].where()}")
        return explicit
    for candidate in (user_config_file(environ), SYSTEM_CONFIG_FILE):
        if os.path.isfile(candidate):
            return candidate
    return None
