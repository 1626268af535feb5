"""The async ``GoogleFederatedCredential`` (alias ``FederatedCredential``), for
``azure.core.credentials_async`` clients.

Same arguments and behaviour as :class:`azfed_helper.credential.GoogleFederatedCredential` (the
layout azure-identity uses: ``azure.identity.aio``), from the same token provider. MSAL is
synchronous, so a token not in memory is acquired in a worker thread of its own while the event
loop goes on: concurrent coroutines asking for one token await one exchange, and coroutines asking
for another token do not wait for it.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._internal.errors import AzfedError
from .credential import _authentication_error, _CredentialBase

try:  # at module level, so that typing.get_type_hints resolves the public signatures
    from azure.core.credentials import AccessToken as CoreAccessToken
    from azure.core.credentials import AccessTokenInfo, TokenRequestOptions
except ImportError:  # the optional extra is missing: constructing a credential says how to add it
    pass

if TYPE_CHECKING:
    from ._internal.entra.cache import AccessToken

__all__ = ["FederatedCredential", "GoogleFederatedCredential"]


class GoogleFederatedCredential(_CredentialBase):
    """Azure access tokens from an ID token; azure-core's ``AsyncTokenCredential``."""

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> CoreAccessToken:
        token = await self._acquire(scopes, tenant_id, claims)
        return CoreAccessToken(token.token, token.expires_on)

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        opts: dict[str, Any] = dict(options or {})
        token = await self._acquire(scopes, opts.get("tenant_id"), opts.get("claims"))
        return AccessTokenInfo(token.token, token.expires_on, token_type=token.token_type)

    async def _acquire(
        self, scopes: tuple[str, ...], tenant_id: str | None, claims: str | None
    ) -> AccessToken:
        try:
            token = self._provider.cached(scopes, tenant_id) if claims is None else None
            if token is not None:
                return token  # the common case: no thread, no waiting
            return await asyncio.wrap_future(self._provider.submit(scopes, tenant_id, claims))
        except AzfedError as exc:
            raise _authentication_error(exc) from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._provider.close)

    async def __aenter__(self) -> GoogleFederatedCredential:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


# The same class under a name that does not suggest Google (see azfed_helper.FederatedCredential).
FederatedCredential = GoogleFederatedCredential
