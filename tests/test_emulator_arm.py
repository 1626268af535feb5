"""The emulator's sliver of ARM: subscriptions and tenants as az's subscription client reads them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.identity import ClientAssertionCredential

from azfed_helper.emulator import Emulator, Subscription
from azfed_helper.emulator.keys import SigningKey

API = "?api-version=2022-12-01"  # what az 2.91 sends for subscriptions and tenants
ARM_SCOPE = "https://management.core.windows.net//.default"
DEV = Subscription("0b1f6471-1bf0-4dda-aec3-cb9272f09590", "Development")
PROD = Subscription("3c7a9d2e-5f18-4b6a-9e0d-71c4a8b2f3d6", "Production")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
    monkeypatch.setenv("CURL_CA_BUNDLE", emu.ca_file)
    yield
    emu.subscriptions.clear()
    emu.reset_counts()


@pytest.fixture(scope="module")
def arm_token(emu: Emulator) -> str:
    """A real ARM token from the emulated Entra, obtained as azure-identity would."""
    credential = ClientAssertionCredential(
        emu.tenant_id,
        emu.client_id,
        emu.mint_google_id_token,
        authority=emu.authority_host,
        connection_verify=emu.ca_file,
    )
    return credential.get_token(ARM_SCOPE).token


def get(emu: Emulator, path: str, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{emu.authority_host}{path}{API}", headers=headers, timeout=5)


def values(response: requests.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["count"] == {"type": "Total", "value": len(document["value"])}
    items: list[dict[str, Any]] = document["value"]
    return items


def test_no_subscriptions_by_default(emu: Emulator, arm_token: str) -> None:
    assert emu.subscriptions == []
    assert values(get(emu, "/subscriptions", arm_token)) == []
    (tenant,) = values(get(emu, "/tenants", arm_token))
    assert tenant["tenantId"] == emu.tenant_id


def test_lists_subscriptions_in_the_shape_az_reads(emu: Emulator, arm_token: str) -> None:
    emu.subscriptions.extend([DEV, PROD])
    listed = values(get(emu, "/subscriptions", arm_token))
    assert [s["displayName"] for s in listed] == ["Development", "Production"]
    dev = listed[0]
    # az keeps id.rpartition('/')[2], displayName, state, tenantId (as the home tenant).
    assert dev["id"] == f"/subscriptions/{DEV.subscription_id}"
    assert dev["subscriptionId"] == DEV.subscription_id
    assert dev["tenantId"] == emu.tenant_id
    assert dev["state"] == "Enabled"
    assert dev["authorizationSource"] == "RoleBased"
    assert dev["managedByTenants"] == []
    assert set(dev["subscriptionPolicies"]) == {"locationPlacementId", "quotaId", "spendingLimit"}
    (tenant,) = values(get(emu, "/tenants", arm_token))
    assert tenant["id"] == f"/tenants/{emu.tenant_id}"
    assert tenant["tenantId"] == emu.tenant_id
    assert tenant["defaultDomain"] in tenant["domains"]
    assert emu.counts["arm"] == 2


def test_list_follows_changes_on_a_running_emulator(emu: Emulator, arm_token: str) -> None:
    emu.subscriptions.append(DEV)
    assert [s["subscriptionId"] for s in values(get(emu, "/subscriptions", arm_token))] == [
        DEV.subscription_id
    ]
    emu.subscriptions[:] = [PROD]
    assert [s["displayName"] for s in values(get(emu, "/subscriptions", arm_token))] == [
        "Production"
    ]


def test_gets_one_subscription_by_id(emu: Emulator, arm_token: str) -> None:
    emu.subscriptions.extend([DEV, PROD])
    found = get(emu, f"/subscriptions/{PROD.subscription_id.upper()}", arm_token)
    assert found.status_code == 200
    assert found.json()["displayName"] == "Production"
    missing_id = "99999999-9999-9999-9999-999999999999"
    missing = get(emu, f"/subscriptions/{missing_id}", arm_token)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "SubscriptionNotFound"
    assert missing_id in missing.json()["error"]["message"]
    assert get(emu, "/subscriptions/x/resourceGroups", arm_token).status_code == 404
    assert emu.counts["arm"] == 2  # the unknown path is not ARM's


def test_arm_wants_a_live_token_from_this_entra(emu: Emulator, arm_token: str) -> None:
    emu.subscriptions.append(DEV)
    now = int(time.time())
    claims = {"aud": "https://management.core.windows.net/", "tid": emu.tenant_id}
    expired = emu.entra_key.sign({**claims, "iat": now - 7200, "exp": now - 3600})
    foreign = SigningKey.generate().sign({**claims, "iat": now, "exp": now + 3600})
    for path in ("/subscriptions", "/tenants", f"/subscriptions/{DEV.subscription_id}"):
        assert get(emu, path, arm_token).status_code == 200
        for token in (None, "not-a-jwt", expired, foreign):
            refused = get(emu, path, token)
            assert refused.status_code == 401, (path, token)
            assert refused.json()["error"]["code"] == "AuthenticationFailed"
            assert DEV.subscription_id not in refused.text


def test_faults_apply_to_arm(emu: Emulator, arm_token: str) -> None:
    emu.subscriptions.append(DEV)
    emu.fail_next("arm", 503)
    assert get(emu, "/subscriptions", arm_token).status_code == 503
    assert len(values(get(emu, "/subscriptions", arm_token))) == 1
