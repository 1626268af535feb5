"""azure-identity's own managed-identity credentials against `azfed-helper serve` (a child
process backed by the emulator). This process sees only what `env --for managed-identity`
hands out: no AZURE_* variable, no Google configuration, a proxy that must be bypassed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import refusing_port, run_cli
from .test_serve_cli import Serve

pytest.importorskip("azure.identity")

ARM = "https://management.azure.com/.default"
VAULT = "https://vault.azure.net/.default"


def hand_out(running: Serve, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set what `env --for managed-identity` prints, and a proxy that only NO_PROXY avoids."""
    shown = run_cli(
        "env", "--for", "managed-identity", "--env-file", str(running.env_file), "--format", "json"
    )
    variables: dict[str, str] = json.loads(shown.stdout)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    # NO_PROXY must keep us off it.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{refusing_port()}")
    return variables


@pytest.fixture
def server_env(emulator: Any, tmp_path: Path) -> dict[str, str]:
    return {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def handed_out(
    server_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Serve, dict[str, str]]]:
    running = Serve(server_env, tmp_path / "mi.env")
    yield running, hand_out(running, monkeypatch)
    running.stop()


def test_managed_identity_credential_gets_arm_and_key_vault_tokens(
    handed_out: tuple[Serve, dict[str, str]], emulator: Any
) -> None:
    from azure.identity import ManagedIdentityCredential

    with ManagedIdentityCredential() as credential:
        arm = credential.get_token(ARM)
        vault = credential.get_token(VAULT)
        info = credential.get_token_info(VAULT)
    assert arm.token != vault.token and info.token == vault.token
    assert arm.expires_on > time.time() + 3000
    assert emulator.counts["entra.token"] == 2


def test_default_azure_credential_finds_the_endpoint(
    handed_out: tuple[Serve, dict[str, str]], emulator: Any
) -> None:
    from azure.identity import DefaultAzureCredential

    with DefaultAzureCredential() as credential:
        token = credential.get_token(ARM)
    assert token.expires_on > time.time() + 3000
    assert emulator.counts["entra.token"] == 1


def test_user_assigned_client_id_ours_and_not_ours(
    handed_out: tuple[Serve, dict[str, str]], emulator: Any
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ManagedIdentityCredential

    with ManagedIdentityCredential(client_id=emulator.client_id) as credential:
        assert credential.get_token(VAULT).token
    stranger = "11111111-2222-3333-4444-555555555555"
    with (
        ManagedIdentityCredential(client_id=stranger) as credential,
        pytest.raises(ClientAuthenticationError) as caught,
    ):
        credential.get_token(VAULT)
    assert f"unknown client_id {stranger}" in str(caught.value)


def test_wrong_header_and_entra_refusal_reach_the_user_verbatim(
    handed_out: tuple[Serve, dict[str, str]], emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")
    with (
        ManagedIdentityCredential() as credential,
        pytest.raises(ClientAuthenticationError) as caught,
    ):
        credential.get_token(ARM)
    assert "missing or wrong X-IDENTITY-HEADER" in str(caught.value)
    monkeypatch.setenv("IDENTITY_HEADER", handed_out[1]["IDENTITY_HEADER"])
    emulator.federated_credentials.clear()
    with (
        ManagedIdentityCredential() as credential,
        pytest.raises(ClientAuthenticationError) as caught,
    ):
        credential.get_token(ARM)
    assert "AADSTS70021" in str(caught.value)


def test_stopped_server_is_a_clear_client_error(handed_out: tuple[Serve, dict[str, str]]) -> None:
    from azure.core.exceptions import ServiceRequestError
    from azure.identity import ManagedIdentityCredential

    handed_out[0].stop()
    # Without retry_total=0 azure-identity retries for ~5 s first, then raises the same error.
    with (
        ManagedIdentityCredential(retry_total=0) as credential,
        pytest.raises(ServiceRequestError) as caught,
    ):
        credential.get_token(ARM)
    assert "refused" in str(caught.value).lower()


def test_imds_route_through_the_pod_identity_host(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --imds` reached as the VM metadata endpoint, moved by
    AZURE_POD_IDENTITY_AUTHORITY_HOST (the JS SDK honours it too: tests/test_js_clients.py)."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    server_env = {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}
    running = Serve(server_env, tmp_path / "mi.env", "--imds")
    try:
        endpoint = next(
            line.split("=", 1)[1]
            for line in running.env_file.read_text().splitlines()
            if line.startswith("export IDENTITY_ENDPOINT=")
        )
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", endpoint.rsplit("/", 2)[0])
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{refusing_port()}")
        with ManagedIdentityCredential() as credential:
            assert credential.get_token(ARM).expires_on > time.time() + 3000
        with DefaultAzureCredential() as credential:
            assert credential.get_token(VAULT).expires_on > time.time() + 3000
    finally:
        running.stop()
    assert emulator.counts["entra.token"] == 2


def test_ipv6_loopback_endpoint_is_reached_past_the_proxy(
    server_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve --bind ::1`: NO_PROXY used to name only 127.0.0.1 and localhost, so
    azure-identity sent the request for http://[::1]:PORT to the proxy."""
    from azure.identity import ManagedIdentityCredential

    running = Serve(server_env, tmp_path / "mi.env", "--bind", "::1")
    try:
        variables = hand_out(running, monkeypatch)
        assert variables["IDENTITY_ENDPOINT"].startswith("http://[::1]:")
        with ManagedIdentityCredential(retry_total=0) as credential:
            assert credential.get_token(ARM).expires_on > time.time() + 3000
    finally:
        code, _out, err = running.stop()
    assert code == 0 and "Traceback" not in err
