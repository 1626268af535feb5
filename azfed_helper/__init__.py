"""azfed-helper: reach Azure from Google Cloud (or with any OIDC token) with no Azure secret.

The public API is ``__all__`` here, ``azfed_helper.aio`` (the async credential) and
``azfed_helper.emulator`` (the offline emulator); everything under ``azfed_helper._internal`` may
change in any release. Names resolve lazily so that importing the package (as every command does)
costs nothing beyond this file.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing costs ~8 ms on every command; mypy honours the name.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from ._version import __version__
    from .credential import FederatedCredential, GoogleFederatedCredential

__all__ = ["FederatedCredential", "GoogleFederatedCredential", "__version__"]


def __getattr__(name: str) -> object:
    if name == "__version__":  # lazily too: the CLI's no-op paths never need it
        from ._version import __version__

        return __version__
    if name in ("FederatedCredential", "GoogleFederatedCredential"):
        from . import credential

        return getattr(credential, name)
    raise AttributeError(f"module 'azfed_helper' has no attribute {name!r}")
