"""``GoogleFederatedCredential`` (alias ``FederatedCredential``): an azure-core
``TokenCredential`` backed by an OIDC ID token, from Google unless ``source=`` says otherwise.

Hand it to any Azure SDK client (``BlobServiceClient(url, credential=...)``, ``azure-mgmt-*``) on
Google Cloud: it exchanges a Google ID token for Entra access tokens, with no Azure secret
(with ``source="file"``, ``"github-actions"`` or ``"command"`` the ID token comes from a
projected Kubernetes token, a GitHub Actions job or a command instead). Tokens
come from the one token provider (``_internal.entra.provider``: memory, the on-disk cache shared
with ``azfed-helper token``, then Entra, one exchange per token however many callers wait). The
constructor is declared once, in ``_CredentialBase``, for this class and its async twin in
``aio.py``; the classes only adapt the provider to azure-core's types and exceptions. azure-core
is imported when a credential is built, never by ``import azfed_helper``, and stays an optional
extra (``azfed-helper[azure]``).
"""

from __future__ import annotations

from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any

from ._internal import config
from ._internal.errors import AzfedError, UsageError

try:  # at module level, so that typing.get_type_hints resolves the public signatures
    from azure.core.credentials import AccessToken as CoreAccessToken
    from azure.core.credentials import AccessTokenInfo, TokenRequestOptions
except ImportError:  # the optional extra is missing: constructing a credential says how to add it
    pass

if TYPE_CHECKING:
    from ._internal.entra.cache import AccessToken
    from ._internal.entra.provider import TokenProvider

__all__ = ["FederatedCredential", "GoogleFederatedCredential"]

# Constructor arguments that shape the credential itself; every other one is the setting of the
# same name, resolved as the command line resolves that flag.
_OWN_ARGUMENTS = ("persistent_cache", "connection_verify")


def _require_azure_core() -> None:
    """Fail early, with the fix, when the optional azure-core is not installed."""
    try:
        import azure.core.credentials  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "GoogleFederatedCredential needs azure-core: pip install 'azfed-helper[azure]'"
        ) from exc


def _authentication_error(exc: AzfedError) -> Exception:
    """azure-core's ClientAuthenticationError for one of ours (the caller chains the cause)."""
    from azure.core.exceptions import ClientAuthenticationError

    return ClientAuthenticationError(message=str(exc))


def _provider_for(arguments: dict[str, Any]) -> TokenProvider:
    """The token provider for a credential's constructor arguments: settings resolved exactly as
    the CLI resolves them (arguments in the place of flags, then the environment and the config
    file); configuration mistakes are raised as ValueError, as azure-identity does."""
    from ._internal.entra.provider import TokenProvider

    settings = {name: value for name, value in arguments.items() if name not in _OWN_ARGUMENTS}
    try:
        return TokenProvider(
            config.resolve(SimpleNamespace(**settings)),
            persistent=bool(arguments["persistent_cache"]),
            verify=arguments["connection_verify"],
        )
    except UsageError as exc:
        raise ValueError(str(exc)) from exc


class _CredentialBase:
    """The constructor both credentials share: one signature, one place to add an argument."""

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
        """Every argument defaults from the environment the CLI reads: ``AZURE_TENANT_ID``,
        ``AZURE_CLIENT_ID``, ``AZURE_AUTHORITY_HOST``, ``AZURE_FEDERATED_TOKEN_FILE`` (the ID
        token is read from, and refreshed in, that file when set; otherwise fetched from the
        source and kept in memory), ``AZFED_AUDIENCE``, ``AZFED_SOURCE`` (``google``, ``file``,
        ``github-actions`` or ``command``; ``github-actions`` by default inside a GitHub Actions
        job that may mint ID tokens), ``AZFED_ISSUER``, ``AZFED_ASSERTION_FILE``,
        ``AZFED_ASSERTION_COMMAND``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZFED_IMPERSONATE``,
        ``AZFED_CACHE_DIR``. Tokens are shared with ``azfed-helper token`` through the on-disk
        cache unless ``persistent_cache=False``. ``connection_verify`` is a CA bundle path (or
        False) for Entra, as in azure-identity.
        """
        arguments = dict(locals())  # first, so it holds exactly the parameters
        del arguments["self"]
        _require_azure_core()
        self._provider = _provider_for(arguments)


class GoogleFederatedCredential(_CredentialBase):
    """Azure access tokens from an ID token; implements azure-core's ``TokenCredential``.

    Thread-safe: concurrent requests for one token make one exchange, and a slow exchange for
    one scope never holds up another's.
    """

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
            return self._provider.get(scopes, tenant_id, claims)
        except AzfedError as exc:
            raise _authentication_error(exc) from exc

    def close(self) -> None:
        self._provider.close()

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
