"""The managed-identity endpoint in-process, over real HTTP, backed by the real exchange (MSAL)
against the emulator's Entra. The HTTP client here is urllib: what az and the SDKs make of the
answers is in test_managed_identity_e2e.py and test_managed_identity_az.py.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import logging
import socket
import struct
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

from azfed_helper._internal import httpserve, logs
from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.entra.assertion import AssertionSource
from azfed_helper._internal.entra.provider import TokenProvider
from azfed_helper._internal.identity.server import (
    IMDS_PATH,
    IdentityServer,
    RequestError,
    scope_for,
)

from .conftest import wait_until

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
    provider = TokenProvider(settings, sleep=no_sleep)
    with IdentityServer(settings, SECRET, port=0, provider=provider) as running:
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

    provider = TokenProvider(settings, assertion=assertion, sleep=no_sleep)
    with IdentityServer(settings, SECRET, port=0, provider=provider) as server:
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
    assert "NO_PROXY='::1,[::1],127.0.0.1,localhost'" in text  # IPv6 loopback too
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


def raw_get(server: IdentityServer, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    """A request with exactly these headers (urllib would add its own Host)."""
    connection = http.client.HTTPConnection(*server.address, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_dns_rebinding_host_is_refused_before_anything_else(
    server: IdentityServer, emulator: Any
) -> None:
    """A page at http://evil.example:PORT/ whose name now resolves to 127.0.0.1 is same-origin
    with us in the browser: it could set any header. Its Host still names evil.example."""
    port = server.address[1]
    query = f"/msi/token?api-version=2019-08-01&resource={ARM}"
    headers = {"X-IDENTITY-HEADER": SECRET, "Metadata": "true"}
    status, body = raw_get(server, query, {**headers, "Host": f"evil.example:{port}"})
    assert status == 403
    assert body["error"] == "forbidden" and body["statusCode"] == 403
    assert "Host 'evil.example:" in body["message"] and "DNS rebinding" in body["message"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert raw_get(server, query, {**headers, "Host": host})[0] == 200
    assert server.counters()["forbidden"] == 1 and server.counters()["ok"] == 3
    assert 'azfed_identity_requests_total{result="forbidden"} 1' in server.metrics_text()
    assert emulator.counts["entra.token"] == 1  # the refused request reached nothing


def test_imds_path_host_and_proxied_requests(settings: Settings, emulator: Any) -> None:
    """IMDS clients name 169.254.169.254 (where a DNAT rule may send them to us); the real IMDS
    refuses requests relayed by a proxy, and so do we, secret or not."""
    query = f"{IMDS_PATH}?api-version=2018-02-01&resource={ARM}"
    with IdentityServer(settings, SECRET, port=0, imds=True) as opened:
        assert raw_get(opened, query, {"Host": "169.254.169.254", "Metadata": "true"})[0] == 200
        app_service = f"/msi/token?api-version=2019-08-01&resource={ARM}"
        wrong_path = {"Host": "169.254.169.254", "X-IDENTITY-HEADER": SECRET}
        assert raw_get(opened, app_service, wrong_path)[0] == 403
        for relayed in ({"X-Forwarded-For": "10.0.0.9"}, {"Forwarded": "for=10.0.0.9"}):
            headers = {"Host": "127.0.0.1", "Metadata": "true", "x-ms-identity": SECRET, **relayed}
            status, body = raw_get(opened, query, headers)
            assert status == 400 and "relayed by a proxy" in body["message"]
        assert opened.counters()["bad_request"] == 2


def held_provider(
    settings: Settings, entered: threading.Event, release: threading.Event
) -> TokenProvider:
    """A provider whose assertion is held: it sets ``entered``, then waits for ``release``."""
    source = AssertionSource(settings)

    def slow_assertion() -> str:
        entered.set()
        release.wait(30)
        return source()

    return TokenProvider(settings, assertion=slow_assertion, sleep=no_sleep)


def test_all_slots_answering_gives_a_json_503(settings: Settings, emulator: Any) -> None:
    """When every connection is a request being answered (none merely idle), a new one is told
    to come back rather than queued without limit."""
    release, entered = threading.Event(), threading.Event()
    provider = held_provider(settings, entered, release)
    limits = httpserve.Limits(max_connections=1)
    with (
        IdentityServer(settings, SECRET, port=0, provider=provider, limits=limits) as server,
        ThreadPoolExecutor(max_workers=1) as pool,
    ):
        pending = pool.submit(token_for, server, ARM)
        assert entered.wait(20)  # that request is being answered: it holds the only slot
        status, body = token_for(server, "https://vault.azure.net")
        assert status == 503 and body["error"] == "temporarily_unavailable"
        assert "all 1 connections are taken" in body["message"]
        release.set()
        assert pending.result(timeout=30)[0] == 200
        # The slot is free once that answer's thread is done (a moment after the client has it).
        wait_until(lambda: token_for(server, ARM)[0] == 200)


def test_client_gone_before_the_answer_is_one_log_line(
    settings: Settings,
    emulator: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client that resets while its token is being fetched: our logger says so once (JSON
    here, as with --log-format json), and socketserver prints no traceback on stderr."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.setattr(logging.getLogger(), "level", logging.WARNING)
    stream = io.StringIO()
    logs.setup("json", stream=stream)
    release, entered = threading.Event(), threading.Event()
    provider = held_provider(settings, entered, release)
    with IdentityServer(settings, SECRET, port=0, provider=provider) as server:
        client = socket.create_connection(server.address, timeout=10)
        client.sendall(
            f"GET /msi/token?resource={ARM} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
            f"X-IDENTITY-HEADER: {SECRET}\r\n\r\n".encode()
        )
        assert entered.wait(20)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
        release.set()
        wait_until(lambda: "http_client_error" in stream.getvalue())
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    lost = [record for record in records if record["event"] == "http_client_error"]
    assert len(lost) == 1 and "connection lost while answering" in lost[0]["message"]
    assert "traceback" not in lost[0]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err


def test_malformed_requests_get_json_errors_too(server: IdentityServer) -> None:
    """What http.server itself refuses reaches clients in the endpoint's JSON shape."""
    for line, status in ((b"GET /a b HTTP/1.0", 400), (b"BREW /msi/token HTTP/1.0", 501)):
        with socket.create_connection(server.address, timeout=10) as sock:
            sock.sendall(line + b"\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == str(status).encode()
        assert json.loads(body)["statusCode"] == status
    assert server.counters()["bad_request"] == 2
