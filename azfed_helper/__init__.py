"""azfed-helper: reach Azure from Google Cloud with no Azure secret.

The public API is ``__all__``; names resolve lazily so that importing the package (as every
command does) costs nothing beyond this file.
"""

from __future__ import annotations

from ._version import __version__

# Not typing.TYPE_CHECKING: importing typing costs ~8 ms on every command; mypy honours the name.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ._internal.config import Settings
    from ._internal.errors import AzfedError
    from ._internal.idtoken import IdToken
    from ._internal.sync import sync_once
    from .credential import GoogleFederatedCredential

__all__ = [
    "AzfedError",
    "GoogleFederatedCredential",
    "IdToken",
    "Settings",
    "__version__",
    "sync_once",
]

_LAZY = {
    "AzfedError": ("azfed_helper._internal.errors", "AzfedError"),
    "GoogleFederatedCredential": ("azfed_helper.credential", "GoogleFederatedCredential"),
    "IdToken": ("azfed_helper._internal.idtoken", "IdToken"),
    "Settings": ("azfed_helper._internal.config", "Settings"),
    "sync_once": ("azfed_helper._internal.sync", "sync_once"),
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'azfed_helper' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)
