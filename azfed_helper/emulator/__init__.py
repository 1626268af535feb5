"""Offline, loopback-only emulator of Google identity, GitHub Actions and Kubernetes token
issuers, and Entra ID, for tests and demos.

It lets the product, its tests and users' CI run the whole token-to-Azure flow with the real
client libraries and no network access. Names load lazily so that
``azfed_helper.emulator.command`` can be imported without google-auth or cryptography.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Emulator
    from .projected import ProjectedTokenFile
    from .state import FederatedCredential, Subscription

__all__ = ["Emulator", "FederatedCredential", "ProjectedTokenFile", "Subscription"]

_HOMES = {
    "Emulator": ".core",
    "FederatedCredential": ".state",
    "ProjectedTokenFile": ".projected",
    "Subscription": ".state",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
