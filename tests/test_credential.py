"""GoogleFederatedCredential (sync and async) against the emulator, through azure-core types."""

from __future__ import annotations

import asyncio
import inspect
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo, SupportsTokenInfo, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

import azfed_helper
import azfed_helper.aio
from azfed_helper import aio
from azfed_helper._internal.entra.aadsts import EntraError
from azfed_helper.emulator import FederatedCredential

SCOPE = "https://storage.azure.com/.default"


@pytest.fixture
def configured(
    emulator_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("AZFED_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_public_api_is_pinned() -> None:
    assert azfed_helper.__all__ == [
        "FederatedCredential",
        "GoogleFederatedCredential",
        "__version__",
    ]
    from azfed_helper.credential import GoogleFederatedCredential

    assert azfed_helper.GoogleFederatedCredential is GoogleFederatedCredential
    # The neutral name is the same class, in both modules.
    assert azfed_helper.FederatedCredential is GoogleFederatedCredential
    assert azfed_helper.aio.FederatedCredential is azfed_helper.aio.GoogleFederatedCredential
    assert azfed_helper.aio.__all__ == ["FederatedCredential", "GoogleFederatedCredential"]


def test_sync_credential_from_environment(emulator: Any, configured: Path) -> None:
    with azfed_helper.GoogleFederatedCredential() as credential:
        assert isinstance(credential, TokenCredential)
        assert isinstance(credential, SupportsTokenInfo)
        token = credential.get_token(SCOPE)
        assert isinstance(token, AccessToken)
        assert 3000 < token.expires_on - time.time() <= 3600
        info = credential.get_token_info(SCOPE)
        assert isinstance(info, AccessTokenInfo)
        assert (info.token, info.token_type) == (token.token, "Bearer")
    assert emulator.counts["entra.token"] == 1
    assert emulator.counts["metadata.identity"] == 1  # no token file: the source, in memory
    assert (configured / "msal_token_cache.json").exists()


def test_memory_only_credential_refreshes_near_expiry(emulator: Any, configured: Path) -> None:
    emulator.access_token_lifetime = 400  # more than MSAL's 5-minute margin: reused
    credential = azfed_helper.GoogleFederatedCredential(persistent_cache=False)
    first = credential.get_token(SCOPE)
    assert credential.get_token(SCOPE).token == first.token
    assert emulator.counts["entra.token"] == 1
    emulator.access_token_lifetime = 200  # less: every call goes back to Entra
    credential.get_token("https://vault.azure.net/.default")
    credential.get_token("https://vault.azure.net/.default")
    assert emulator.counts["entra.token"] == 3
    assert emulator.counts["metadata.identity"] == 1  # the ID token is reused from memory
    assert not configured.exists()


def test_errors_become_client_authentication_errors_with_the_cause(
    emulator: Any, configured: Path
) -> None:
    emulator.federated_credentials[:] = [
        FederatedCredential("https://accounts.google.com", "nobody")
    ]
    credential = azfed_helper.GoogleFederatedCredential()
    with pytest.raises(ClientAuthenticationError) as info:
        credential.get_token(SCOPE)
    assert "AADSTS700213" in str(info.value)
    assert isinstance(info.value.__cause__, EntraError)


def test_missing_configuration_is_a_value_error(
    emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_TENANT_ID")
    with pytest.raises(ValueError, match="AZURE_TENANT_ID"):
        azfed_helper.GoogleFederatedCredential()


def test_async_credential(emulator: Any, configured: Path) -> None:
    async def main() -> tuple[list[AccessToken], AccessTokenInfo]:
        async with aio.GoogleFederatedCredential() as credential:
            assert isinstance(credential, AsyncTokenCredential)
            tokens = await asyncio.gather(*(credential.get_token(SCOPE) for _ in range(5)))
            info = await credential.get_token_info(SCOPE)
            return list(tokens), info

    tokens, info = asyncio.run(main())
    assert len({t.token for t in tokens} | {info.token}) == 1
    assert emulator.counts["entra.token"] == 1


def test_async_errors(emulator: Any, configured: Path) -> None:
    async def main() -> None:
        credential = aio.GoogleFederatedCredential(client_id="00000000-0000-0000-0000-000000000000")
        try:
            await credential.get_token(SCOPE)
        finally:
            await credential.close()

    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        asyncio.run(main())


def test_with_an_unmodified_sdk_pipeline(emulator: Any, configured: Path) -> None:
    """azure-core's own bearer-token policy uses the credential as any SDK client does."""
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.core.rest import HttpRequest

    policy = BearerTokenCredentialPolicy(azfed_helper.GoogleFederatedCredential(), SCOPE)
    request = PipelineRequest(HttpRequest("GET", "https://example.invalid/"), PipelineContext(None))
    policy.on_request(request)
    assert request.http_request.headers["Authorization"].startswith("Bearer ey")


def test_another_tenant_gets_its_own_exchange(emulator: Any, configured: Path) -> None:
    """get_token(tenant_id=...) asks that tenant's authority (an unknown one here: AADSTS90002)."""
    credential = azfed_helper.GoogleFederatedCredential()
    assert credential.get_token(SCOPE, tenant_id=emulator.tenant_id).token
    with pytest.raises(ClientAuthenticationError) as info:
        credential.get_token(SCOPE, tenant_id="00000000-0000-0000-0000-00000000beef")
    assert isinstance(info.value.__cause__, EntraError)
    assert info.value.__cause__.code == 90002


def test_threads_share_one_exchange(emulator: Any, configured: Path) -> None:
    credential = azfed_helper.GoogleFederatedCredential()
    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(lambda _: credential.get_token(SCOPE).token, range(8)))
    assert len(set(tokens)) == 1
    assert emulator.counts["entra.token"] == 1


def test_both_credentials_have_one_signature_of_settings() -> None:
    """Declared once for both; every argument but the credential's own is a setting, resolved
    as its flag would be."""
    from azfed_helper._internal.options import SETTINGS

    sync = inspect.signature(azfed_helper.GoogleFederatedCredential)
    assert inspect.signature(aio.GoogleFederatedCredential) == sync
    own = {"persistent_cache", "connection_verify"}
    assert set(sync.parameters) - own <= {option.dest for option in SETTINGS}
    assert own <= set(sync.parameters)
