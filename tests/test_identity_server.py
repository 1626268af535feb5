"""The managed-identity endpoint in-process, over real HTTP, backed by the real exchange (MSAL)
against the emulator's Entra. The HTTP client here is urllib: what az and the SDKs make of the
answers is in test_managed_identity_e2e.py and test_managed_identity_az.py.
"""

from __future__ import annotations

import argparse
import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.entra.assertion import AssertionSource
from azfed_helper._internal.entra.exchange import Exchange
from azfed_helper._internal.identity.server import (
    IMDS_PATH,
    IdentityServer,
    RequestError,
    scope_for,
)

SECRET = "s3cret-for-tests"
ARM = "https://management.core.windows.net/"


def claims_of(jwt: str) -> dict[str, Any]:
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))  # type: ignore[no-any-return]


def no_sleep(seconds: float) -> None:
    pass


@pytest.fixture
def settings(emulator_env: dict[str, str], tmp_path: Path, monkeypatch: Any) -> Settings:
    monkeypatch.setenv("AZFED_CACHE_DIR", str(tmp_path / "cache"))
    return resolve(argparse.Namespace())


@pytest.fixture
def server(settings: Settings) -> Iterator[IdentityServer]:
    exchange = Exchange(settings, sleep=no_sleep)
    with IdentityServer(settings, SECRET, port=0, exchange=exchange) as running:
        yield running


def get(
    url: str, headers: dict[str, str] | None = None, **params: str
) -> tuple[int, dict[str, Any]]:
    query = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in params.items())
    request = urllib.request.Request(f"{url}?{query}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def token_for(server: IdentityServer, resource: str, **params: str) -> tuple[int, dict[str, Any]]:
    headers = {"X-IDENTITY-HEADER": SECRET, "Metadata": "true"}
    return get(server.url, headers, **{"api-version": "2019-08-01", "resource": resource, **params})


@pytest.mark.parametrize(
    ("resource", "scope"),
    [
        (ARM, "https://management.core.windows.net//.default"),
        ("https://management.azure.com", "https://management.azure.com/.default"),
        ("https://vault.azure.net", "https://vault.azure.net/.default"),
        ("api://my-api", "api://my-api/.default"),
        ("6dae42f8-4368-4678-94ff-3960e28e3630", "6dae42f8-4368-4678-94ff-3960e28e3630/.default"),
        ("https://storage.azure.com/.default", "https://storage.azure.com/.default"),
    ],
)
def test_scope_for_appends_default_as_az_does(resource: str, scope: str) -> None:
    assert scope_for(resource) == scope


@pytest.mark.parametrize("resource", ["", "management", "https://a b", "/.default"])
def test_scope_for_refuses_unknown_forms(resource: str) -> None:
    with pytest.raises(RequestError) as caught:
        scope_for(resource)
    assert caught.value.status == 400


def test_app_service_answer_has_what_clients_require(
    server: IdentityServer, emulator: Any, settings: Settings
) -> None:
    asked = time.time()
    status, body = token_for(server, ARM)
    answered = time.time()
    assert status == 200
    assert set(body) >= {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["expires_on"].isdigit() and int(body["expires_on"]) > answered + 3000
    # expires_in counts from the moment of the answer (whole seconds either way).
    left = int(body["expires_on"]) - int(body["expires_in"])
    assert int(asked) - 1 <= left <= answered + 1
    assert (body["resource"], body["token_type"], body["client_id"]) == (
        ARM,
        "Bearer",
        emulator.client_id,
    )
    claims = claims_of(body["access_token"])
    assert claims["aud"] == ARM  # the double slash kept ARM's trailing slash
    assert claims["tid"] == emulator.tenant_id  # az reads the tenant from here


def test_cached_per_resource_and_shared_with_other_processes(
    server: IdentityServer, emulator: Any, settings: Settings
) -> None:
    first = token_for(server, "https://vault.azure.net")[1]["access_token"]
    assert token_for(server, "https://vault.azure.net")[1]["access_token"] == first
    assert token_for(server, "https://management.azure.com")[0] == 200
    assert emulator.counts["entra.token"] == 2
    assert server.counters()["cache_hits"] == 1
    # A second server (another process, a restart) finds both in the on-disk cache.
    with IdentityServer(settings, SECRET, port=0) as other:
        assert token_for(other, "https://vault.azure.net")[1]["access_token"] == first
    assert emulator.counts["entra.token"] == 2


def test_token_with_under_five_minutes_is_replaced(server: IdentityServer, emulator: Any) -> None:
    emulator.access_token_lifetime = 200  # MSAL would not hand it out from its cache either
    first = token_for(server, "https://vault.azure.net")[1]
    second = token_for(server, "https://vault.azure.net")[1]
    assert first["access_token"] != second["access_token"]
    assert emulator.counts["entra.token"] == 2


@pytest.mark.parametrize("headers", [{}, {"X-IDENTITY-HEADER": "wrong"}, {"X-IDENTITY-HEADER": ""}])
def test_missing_or_wrong_header_is_refused_and_counted(
    server: IdentityServer, emulator: Any, headers: dict[str, str]
) -> None:
    status, body = get(server.url, headers, resource=ARM)
    assert status == 401
    assert "missing or wrong X-IDENTITY-HEADER" in body["message"]
    assert body["statusCode"] == 401 and body["error_description"] == body["message"]
    assert SECRET not in json.dumps(body)
    assert server.counters()["wrong_header"] == 1
    assert 'azfed_identity_requests_total{result="wrong_header"} 1' in server.metrics_text()
    assert emulator.counts["entra.token"] == 0


def test_user_assigned_client_id_must_be_ours(server: IdentityServer, emulator: Any) -> None:
    assert token_for(server, ARM, client_id=emulator.client_id.upper())[0] == 200
    status, body = token_for(server, ARM, client_id="00000000-0000-0000-0000-000000000000")
    assert status == 400
    assert "unknown client_id 00000000-0000-0000-0000-000000000000" in body["message"]
    assert emulator.client_id in body["message"]
    for selector in ("object_id", "mi_res_id", "principal_id"):
        status, body = token_for(server, ARM, **{selector: "x"})
        assert status == 400 and selector in body["message"]


def test_unknown_resource_form_and_path(server: IdentityServer) -> None:
    status, body = token_for(server, "management")
    assert status == 400 and "unknown resource form 'management'" in body["message"]
    status, body = get(server.base_url + "/other", {"X-IDENTITY-HEADER": SECRET}, resource=ARM)
    assert status == 404 and "/msi/token" in body["message"]


def test_entra_refusing_is_explained_and_makes_it_unready(
    server: IdentityServer, emulator: Any
) -> None:
    assert server.ready()[0]
    emulator.federated_credentials.clear()
    status, body = token_for(server, ARM)
    assert status == 400  # not 5xx: retrying cannot help, and MSAL would replay a 5xx
    assert "AADSTS70021" in body["message"] and "federated credential" in body["message"]
    ready, reason = server.ready()
    assert not ready and "AADSTS70021" in reason
    assert "azfed_identity_ready 0" in server.metrics_text()


def test_transient_entra_failure_is_5xx(server: IdentityServer, emulator: Any) -> None:
    emulator.fail_next("entra.token", 503, count=4)
    status, body = token_for(server, ARM)
    assert status == 503
    assert "after 4 attempts" in body["message"]
    assert token_for(server, ARM)[0] == 200  # and the next request recovers
    assert server.ready()[0]


def test_fifty_concurrent_requests_make_one_exchange_per_resource(
    server: IdentityServer, emulator: Any
) -> None:
    resources = ["https://vault.azure.net", "https://management.azure.com"] * 25
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda r: token_for(server, r), resources))
    assert [status for status, _ in answers] == [200] * 50
    assert emulator.counts["entra.token"] == 2
    assert len({body["access_token"] for _, body in answers}) == 2


def test_slow_exchange_does_not_block_another_resources_cache_hit(
    settings: Settings, emulator: Any
) -> None:
    release, entered = threading.Event(), threading.Event()
    source = AssertionSource(settings)
    slow = False

    def assertion() -> str:
        if slow:
            entered.set()
            release.wait(20)
        return source()

    exchange = Exchange(settings, assertion=assertion, sleep=no_sleep)
    with IdentityServer(settings, SECRET, port=0, exchange=exchange) as server:
        assert token_for(server, "https://vault.azure.net")[0] == 200
        slow = True
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(token_for, server, "https://management.azure.com")
            assert entered.wait(20)
            assert token_for(server, "https://vault.azure.net")[0] == 200
            # Answered while the slow exchange still waits for `release`: not blocked by it.
            assert not pending.done()
            release.set()
            assert pending.result(timeout=20)[0] == 200


def test_imds_path_needs_the_secret_unless_opted_in(settings: Settings, emulator: Any) -> None:
    params = {"api-version": "2018-02-01", "resource": "https://management.azure.com/"}
    with IdentityServer(settings, SECRET, port=0) as closed:
        url = closed.base_url + IMDS_PATH
        assert get(url, {"Metadata": "true"}, **params)[0] == 401
        # go-azure-sdk (Terraform) sends IDENTITY_HEADER as x-ms-identity on the IMDS path.
        status, body = get(url, {"Metadata": "true", "x-ms-identity": SECRET}, **params)
        assert status == 200 and int(body["expires_in"]) > 3000
        status, body = get(url, {"x-ms-identity": SECRET}, **params)
        assert status == 400 and "metadata header" in body["error_description"]
    with IdentityServer(settings, SECRET, port=0, imds=True) as opened:
        url = opened.base_url + IMDS_PATH
        assert get(url, {"Metadata": "true"}, **params)[0] == 200
        assert get(url, {"Metadata": "true", "x-ms-identity": "wrong"}, **params)[0] == 401
        assert get(opened.url, {"Metadata": "true"}, **params)[0] == 401  # App Service path


def test_stop_closes_the_port_and_removes_the_env_file(settings: Settings, tmp_path: Path) -> None:
    env_file = tmp_path / "mi.env"
    server = IdentityServer(settings, SECRET, port=0).start()
    server.publish(str(env_file))
    assert env_file.stat().st_mode & 0o777 == 0o600
    text = env_file.read_text()
    assert f"export IDENTITY_ENDPOINT={server.url}" in text
    assert f"export IDENTITY_HEADER={SECRET}" in text
    assert "unset IDENTITY_SERVER_THUMBPRINT" in text
    assert "NO_PROXY=127.0.0.1,localhost" in text
    server.stop()
    assert not env_file.exists()
    assert server.ready() == (False, "the managed-identity endpoint is not running")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url, timeout=5)


def test_unknown_resource_at_entra_does_not_make_it_unready(
    server: IdentityServer, emulator: Any
) -> None:
    """A client asking for a resource Entra does not know is that client's problem, not ours."""
    refusal = {
        "error": "invalid_resource",
        "error_description": "AADSTS500011: The resource principal named https://nope.example "
        "was not found in the tenant.",
        "error_codes": [500011],
    }
    emulator.fail_next("entra.token", 400, body=refusal)
    status, body = token_for(server, "https://nope.example")
    assert status == 400
    assert "AADSTS500011" in body["message"]
    assert server.ready()[0]
    assert token_for(server, ARM)[0] == 200
