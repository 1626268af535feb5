"""Offline, loopback-only emulator of Google identity and Entra ID for tests and demos.

It lets the product, its tests and users' CI run the whole Google-token-to-Azure flow
with the real client libraries and no network access. Names load lazily so that
``azfed_helper.emulator.command`` can be imported without google-auth or cryptography.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Emulator
    from .state import FederatedCredential, Subscription

__all__ = ["Emulator", "FederatedCredential", "Subscription"]


def __getattr__(name: str) -> Any:
    if name == "Emulator":
        from .core import Emulator

        return Emulator
    if name == "FederatedCredential":
        from .state import FederatedCredential

        return FederatedCredential
    if name == "Subscription":
        from .state import Subscription

        return Subscription
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
