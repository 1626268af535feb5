"""``GoogleFederatedCredential`` (alias ``FederatedCredential``): an azure-core
``TokenCredential`` backed by an OIDC ID token, from Google unless ``source=`` says otherwise.

Hand it to any Azure SDK client (``BlobServiceClient(url, credential=...)``, ``azure-mgmt-*``) on
Google Cloud: it exchanges a Google ID token for Entra access tokens, with no Azure secret. With
``source="file"``, ``"github-actions"`` or ``"command"`` the ID token comes from a projected
Kubernetes token, a GitHub Actions job or a command instead. The
decisions live in :class:`CredentialCore`, shared with the async twin in ``aio.py``; the classes
here only adapt it to azure-core's types and exceptions. azure-core is imported when a credential is
built, never by ``import azfed_helper``, and stays an optional extra (``azfed-helper[azure]``).
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any

from ._internal import config
from ._internal.entra.cache import MIN_REMAINING, AccessToken
from ._internal.errors import AzfedError, UsageError

try:  # at module level, so that typing.get_type_hints resolves the public signatures
    from azure.core.credentials import AccessToken as CoreAccessToken
    from azure.core.credentials import AccessTokenInfo, TokenRequestOptions
except ImportError:  # the optional extra is missing: constructing a credential says how to add it
    pass

if TYPE_CHECKING:
    from ._internal.config import Settings
    from ._internal.entra.exchange import Exchange


def require_azure_core() -> None:
    """Fail early, with the fix, when the optional azure-core is not installed."""
    try:
        import azure.core.credentials  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "GoogleFederatedCredential needs azure-core: pip install 'azfed-helper[azure]'"
        ) from exc


def authentication_error(exc: AzfedError) -> Exception:
    """azure-core's ClientAuthenticationError for one of ours (the caller chains the cause)."""
    from azure.core.exceptions import ClientAuthenticationError

    return ClientAuthenticationError(message=str(exc))


class CredentialCore:
    """Settings, the per-tenant exchanges and an in-memory token cache; thread-safe.

    Tokens are reused until MSAL would stop using them (5 minutes before expiry); ``expires_on``
    is an absolute time computed from Entra's ``expires_in`` duration.
    """

    def __init__(
        self, settings: Settings, *, persistent_cache: bool, connection_verify: bool | str | None
    ) -> None:
        self.settings = settings
        self.tenant_id, self.client_id = self.settings.require_app()
        self.persistent = persistent_cache
        self.verify = connection_verify
        self._lock = threading.Lock()
        self._exchanges: dict[str, Exchange] = {}
        self._tokens: dict[tuple[str, tuple[str, ...]], AccessToken] = {}

    def cached(self, scopes: tuple[str, ...], tenant_id: str | None) -> AccessToken | None:
        token = self._tokens.get(self._key(scopes, tenant_id))
        if token is not None and token.expires_on - time.time() >= MIN_REMAINING:
            return token
        return None

    def acquire(
        self, scopes: tuple[str, ...], tenant_id: str | None, claims: str | None
    ) -> AccessToken:
        """The token for ``scopes``: memory, then the exchange (disk cache, then Entra)."""
        if not scopes:
            raise UsageError("get_token needs at least one scope")
        if claims is None:
            token = self.cached(scopes, tenant_id)
            if token is not None:
                return token
        token = self._exchange(tenant_id).acquire(scopes, claims)
        self._tokens[self._key(scopes, tenant_id)] = token
        return token

    def close(self) -> None:
        with self._lock:
            for exchange in self._exchanges.values():
                exchange.close()
            self._exchanges.clear()

    def _key(self, scopes: tuple[str, ...], tenant_id: str | None) -> tuple[str, tuple[str, ...]]:
        return (tenant_id or self.tenant_id, tuple(sorted(scopes)))

    def _exchange(self, tenant_id: str | None) -> Exchange:
        """One exchange per tenant: a multi-tenant app may ask for another tenant's token."""
        from ._internal.entra.exchange import Exchange

        tenant = tenant_id or self.tenant_id
        with self._lock:
            if tenant not in self._exchanges:
                settings = self.settings
                if tenant != self.tenant_id:
                    settings = settings.replace(tenant_id=tenant)
                self._exchanges[tenant] = Exchange(
                    settings, persistent=self.persistent, verify=self.verify
                )
            return self._exchanges[tenant]


def build_core(
    tenant_id: str | None,
    client_id: str | None,
    *,
    persistent_cache: bool,
    connection_verify: bool | str | None,
    **setting_options: str | None,
) -> CredentialCore:
    """The core, resolving the settings exactly as the CLI does (arguments in the place of flags);
    configuration mistakes are raised as ValueError, as azure-identity does."""
    flags = SimpleNamespace(tenant_id=tenant_id, client_id=client_id, **setting_options)
    try:
        return CredentialCore(
            config.resolve(flags),
            persistent_cache=persistent_cache,
            connection_verify=connection_verify,
        )
    except UsageError as exc:
        raise ValueError(str(exc)) from exc


class GoogleFederatedCredential:
    """Azure access tokens from an ID token; implements azure-core's ``TokenCredential``.

    Every argument defaults from the environment the CLI reads: ``AZURE_TENANT_ID``,
    ``AZURE_CLIENT_ID``, ``AZURE_AUTHORITY_HOST``, ``AZURE_FEDERATED_TOKEN_FILE`` (the ID token is
    read from, and refreshed in, that file when set; otherwise fetched from the source and kept
    in memory), ``AZFED_AUDIENCE``, ``AZFED_SOURCE`` (``google``, ``file``, ``github-actions``
    or ``command``; ``github-actions`` by default inside a GitHub Actions job that may mint ID
    tokens), ``AZFED_ISSUER``, ``AZFED_ASSERTION_FILE``, ``AZFED_ASSERTION_COMMAND``,
    ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZFED_IMPERSONATE``, ``AZFED_CACHE_DIR``. Tokens are
    shared with ``azfed-helper token`` through the on-disk cache unless
    ``persistent_cache=False``. ``connection_verify`` is a CA bundle path (or False) for Entra,
    as in azure-identity.
    """

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
        self._core = build_core(
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

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> CoreAccessToken:
        token = self._acquire(scopes, tenant_id, claims)
        return CoreAccessToken(token.token, token.expires_on)

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        opts: dict[str, Any] = dict(options or {})
        token = self._acquire(scopes, opts.get("tenant_id"), opts.get("claims"))
        return AccessTokenInfo(token.token, token.expires_on, token_type=token.token_type)

    def _acquire(
        self, scopes: tuple[str, ...], tenant_id: str | None, claims: str | None
    ) -> AccessToken:
        try:
            return self._core.acquire(scopes, tenant_id, claims)
        except AzfedError as exc:
            raise authentication_error(exc) from exc

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> GoogleFederatedCredential:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# The same class under a name that does not suggest Google: for the file, github-actions and
# command sources.
FederatedCredential = GoogleFederatedCredential
