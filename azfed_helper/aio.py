"""The async ``GoogleFederatedCredential`` (alias ``FederatedCredential``), for
``azure.core.credentials_async`` clients.

Same arguments and behaviour as :class:`azfed_helper.credential.GoogleFederatedCredential` (the
layout azure-identity uses: ``azure.identity.aio``). MSAL is synchronous, so the exchange runs in a
worker thread behind an ``asyncio.Lock``: concurrent coroutines wait for one exchange instead of
starting several, and the event loop is never blocked by network or file locks.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._internal.errors import AzfedError
from .credential import CredentialCore, authentication_error, build_core, require_azure_core

try:  # at module level, so that typing.get_type_hints resolves the public signatures
    from azure.core.credentials import AccessToken as CoreAccessToken
    from azure.core.credentials import AccessTokenInfo, TokenRequestOptions
except ImportError:  # the optional extra is missing: constructing a credential says how to add it
    pass

if TYPE_CHECKING:
    from ._internal.entra.cache import AccessToken

__all__ = ["FederatedCredential", "GoogleFederatedCredential"]


class GoogleFederatedCredential:
    """Azure access tokens from an ID token; azure-core's ``AsyncTokenCredential``."""

    def __init__(
        self,
        tenant_id: str | None = None,
        client_id: str | None = None,
        *,
        authority_host: str | None = None,
        token_file: str | None = None,
        audience: str | None = None,
        source: str | None = None,
        issuer: str | None = None,
        assertion_file: str | None = None,
        assertion_command: str | None = None,
        credentials: str | None = None,
        impersonate: str | None = None,
        cache_dir: str | None = None,
        persistent_cache: bool = True,
        connection_verify: bool | str | None = None,
    ) -> None:
        require_azure_core()
        self._core: CredentialCore = build_core(
            tenant_id,
            client_id,
            authority_host=authority_host,
            token_file=token_file,
            audience=audience,
            source=source,
            issuer=issuer,
            assertion_file=assertion_file,
            assertion_command=assertion_command,
            credentials=credentials,
            impersonate=impersonate,
            cache_dir=cache_dir,
            persistent_cache=persistent_cache,
            connection_verify=connection_verify,
        )
        self._lock = asyncio.Lock()

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
        if claims is None:
            token = self._core.cached(scopes, tenant_id)
            if token is not None:
                return token  # the common case: no thread, no lock
        async with self._lock:
            try:
                return await asyncio.to_thread(self._core.acquire, scopes, tenant_id, claims)
            except AzfedError as exc:
                raise authentication_error(exc) from exc

    async def close(self) -> None:
        await asyncio.to_thread(self._core.close)

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
