"""The offline emulator, exercised with the real client libraries over loopback HTTP(S)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from google.auth import exceptions as google_exceptions
from google.auth import impersonated_credentials, jwt
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import id_token, service_account

from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.sources import google as google_source
from azfed_helper.emulator import Emulator, FederatedCredential
from azfed_helper.emulator.keys import SigningKey

REPO = Path(__file__).resolve().parent.parent
AUDIENCE = "api://AzureADTokenExchange"
ARM_SCOPE = "https://management.azure.com/.default"
CLOUD_PLATFORM = ["https://www.googleapis.com/auth/cloud-platform"]
OTHER_SA = "other-sa@emulated-project.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the module (key generation is the slow part); reset per test."""
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(emu: Emulator) -> Iterator[None]:
    yield
    emu.set_google_available(True)
    emu.id_token_lifetime = emu.access_token_lifetime = 3600
    emu.federated_credentials[:] = [
        FederatedCredential("https://accounts.google.com", emu.service_account_id, [AUDIENCE])
    ]
    emu.reset_counts()


@pytest.fixture
def trust(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make requests (MSAL, azure-core) trust the emulator's CA, as users must."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
    monkeypatch.setenv("CURL_CA_BUNDLE", emu.ca_file)


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, verify=False)
    return decoded


def acquire(
    emu: Emulator,
    assertion: str | Callable[[], str] | None = None,
    *,
    client_id: str | None = None,
    scopes: list[str] | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """One fresh MSAL confidential client (empty cache) asking for an ARM token."""
    token = assertion if assertion is not None else emu.mint_google_id_token
    credential: Any = secret or {"client_assertion": token if callable(token) else lambda: token}
    app = msal.ConfidentialClientApplication(
        client_id or emu.client_id,
        authority=f"{emu.authority_host}/{emu.tenant_id}",
        client_credential=credential,
        instance_discovery=False,
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes or [ARM_SCOPE])
    return result


def metadata_get(emu: Emulator, path: str, **headers: str) -> requests.Response:
    return requests.get(f"{emu.google_url}/computeMetadata/v1/{path}", headers=headers, timeout=5)


# -- Google: service-account keys, metadata server, impersonation, STS -------------------


def test_fetch_id_token_with_key_file_honours_token_uri(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = emu.write_service_account_key(tmp_path / "key.json")
    info = json.loads(key.read_text())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert info["token_uri"] == emu.token_uri and "universe_domain" not in info
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    request = GoogleRequest()

    token = id_token.fetch_id_token(request, AUDIENCE)
    claims = id_token.verify_token(
        token, request, audience=AUDIENCE, certs_url=emu.google_url + "/oauth2/v3/certs"
    )

    assert claims["iss"] == "https://accounts.google.com"
    assert claims["sub"] == emu.service_account_id and claims["email"] == emu.service_account_email
    assert claims["exp"] - claims["iat"] == 3600 and "nbf" not in claims
    assert jwt.decode_header(token)["kid"] == jwt.decode_header(emu.mint_google_id_token())["kid"]
    assert emu.counts["google.token"] == 1 and emu.counts["jwks"] == 1


def test_google_kid_matches_jwks_and_discovery(emu: Emulator) -> None:
    discovery = requests.get(emu.google_url + "/.well-known/openid-configuration", timeout=5).json()
    keys = requests.get(discovery["jwks_uri"], timeout=5).json()["keys"]
    header = jwt.decode_header(emu.mint_google_id_token())
    assert discovery["issuer"] == "https://accounts.google.com"
    assert [k["kid"] for k in keys] == [header["kid"]]
    assert keys[0]["alg"] == "RS256" and keys[0]["use"] == "sig" and keys[0]["e"] == "AQAB"


def test_token_endpoint_rejects_unknown_key_and_garbage(emu: Emulator, tmp_path: Path) -> None:
    info = json.loads(emu.write_service_account_key(tmp_path / "key.json").read_text())
    info["private_key"] = SigningKey.generate(info["private_key_id"]).private_pem.decode()
    creds = service_account.IDTokenCredentials.from_service_account_info(
        info, target_audience=AUDIENCE
    )
    with pytest.raises(google_exceptions.RefreshError, match="invalid_grant"):
        creds.refresh(GoogleRequest())
    reply = requests.post(
        emu.token_uri,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y"},
        timeout=5,
    )
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_grant"


METADATA_SCRIPT = textwrap.dedent(
    """
    import json
    import google.auth.transport.requests as tr
    from google.auth import jwt
    from google.auth.compute_engine import _metadata, Credentials
    from google.oauth2 import id_token

    request = tr.Request()
    path = "instance/service-accounts/default/identity"
    out = {"ping": _metadata.ping(request)}
    for fmt in ("standard", "full"):
        token = _metadata.get(request, path, params={"audience": "api://AzureADTokenExchange",
                                                    "format": fmt})
        out[fmt] = jwt.decode(token, verify=False)
    out["fetched"] = jwt.decode(id_token.fetch_id_token(request, "aud-x"), verify=False)
    creds = Credentials()
    creds.refresh(request)
    out["sa"] = [creds.service_account_email, bool(creds.token)]
    out["project"] = _metadata.get_project_id(request)
    print(json.dumps(out))
    """
)


def test_metadata_server_with_google_auth_in_subprocess(emu: Emulator) -> None:
    """GCE_METADATA_HOST is read at import time, so google-auth runs in a fresh process."""
    env = {**os.environ, **emu.env(), "PYTHONPATH": str(REPO)}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    done = subprocess.run(
        [sys.executable, "-c", METADATA_SCRIPT], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)

    assert out["ping"] is True
    assert "google" not in out["standard"] and out["standard"]["sub"] == emu.service_account_id
    engine = out["full"]["google"]["compute_engine"]
    assert engine["project_id"] == emu.project_id and engine["zone"] and engine["instance_name"]
    assert out["fetched"]["aud"] == "aud-x" and "google" in out["fetched"]  # hard-coded full
    assert out["sa"] == [emu.service_account_email, True]
    assert out["project"] == emu.project_id
    assert emu.counts["metadata.identity"] == 3 and emu.counts["metadata.token"] == 1
    assert emu.counts["metadata.ping"] >= 1


def test_metadata_flavor_enforced_and_echoed(emu: Emulator) -> None:
    path = f"instance/service-accounts/default/identity?audience={AUDIENCE}"
    refused = metadata_get(emu, path)
    granted = metadata_get(emu, path, **{"Metadata-Flavor": "Google"})
    no_audience = metadata_get(
        emu, "instance/service-accounts/default/identity", **{"Metadata-Flavor": "Google"}
    )
    assert refused.status_code == 403 and refused.headers["Metadata-Flavor"] == "Google"
    assert granted.status_code == 200 and granted.headers["Metadata-Flavor"] == "Google"
    assert claims_of(granted.text)["aud"] == AUDIENCE
    assert no_audience.status_code == 400
    info = metadata_get(
        emu, "instance/service-accounts/default/?recursive=true", **{"Metadata-Flavor": "Google"}
    ).json()
    assert info["email"] == emu.service_account_email
    assert emu.counts["metadata.identity"] == 3 and emu.counts["metadata.other"] == 1


def google_source_settings(emu: Emulator, **flags: object) -> Settings:
    """Settings for our Google source, its IAM calls pointed at the emulator (--iam-endpoint)."""
    return resolve(argparse.Namespace(iam_endpoint=emu.iam_endpoint, **flags))


def test_impersonated_id_token_via_iam(emu: Emulator, tmp_path: Path) -> None:
    key = emu.write_service_account_key(tmp_path / "key.json")
    settings = google_source_settings(emu, credentials=str(key), impersonate=OTHER_SA)
    claims = claims_of(google_source.fetch(settings))
    # The access-token side of impersonation, through google-auth's public endpoint override.
    source = service_account.Credentials.from_service_account_file(str(key), scopes=CLOUD_PLATFORM)
    target = impersonated_credentials.Credentials(
        source,
        OTHER_SA,
        CLOUD_PLATFORM,
        iam_endpoint_override=f"{emu.iam_endpoint}/v1/projects/-/serviceAccounts/{OTHER_SA}:generateAccessToken",
    )
    target.refresh(GoogleRequest())

    assert claims["email"] == OTHER_SA and claims["aud"] == AUDIENCE
    assert claims["sub"].isdigit() and claims["sub"] != emu.service_account_id
    assert target.token and target.expiry is not None
    assert emu.counts["iam.generateIdToken"] == 1 and emu.counts["iam.generateAccessToken"] == 1
    unauthenticated = requests.post(
        f"{emu.iam_endpoint}/v1/projects/-/serviceAccounts/{OTHER_SA}:generateIdToken",
        json={"audience": AUDIENCE},
        timeout=5,
    )
    assert unauthenticated.status_code == 401


def test_impersonated_adc_file_and_authorized_user(emu: Emulator, tmp_path: Path) -> None:
    """An ADC impersonation file works through our source with its IAM endpoint setting."""
    adc = emu.write_impersonated_adc(tmp_path / "adc.json", OTHER_SA, source="service_account")
    token = google_source.fetch(google_source_settings(emu, credentials=str(adc)))
    assert claims_of(token)["email"] == OTHER_SA and claims_of(token)["aud"] == AUDIENCE

    # authorized_user files: google-auth ignores their token_uri, so point it explicitly.
    user_file = emu.write_authorized_user(tmp_path / "user.json")
    assert json.loads(user_file.read_text())["type"] == "authorized_user"
    user = user_credentials.Credentials.from_authorized_user_file(str(user_file))
    user = user.with_token_uri(emu.token_uri)
    user.refresh(GoogleRequest())
    assert user.token and emu.counts["google.token"] == 2


def test_external_account_sts_then_impersonation(emu: Emulator, tmp_path: Path) -> None:
    from google.auth import identity_pool

    subject = tmp_path / "subject.jwt"
    subject.write_text(emu.mint_google_id_token("//iam.googleapis.com/some-provider"))
    config = emu.write_external_account(tmp_path / "wif.json", subject, impersonate_email=OTHER_SA)
    creds = identity_pool.Credentials.from_file(str(config), scopes=CLOUD_PLATFORM)
    creds.refresh(GoogleRequest())
    assert creds.token and creds.expiry is not None
    assert emu.counts["sts.token"] == 1 and emu.counts["iam.generateAccessToken"] == 1
    bad = requests.post(emu.sts_uri, data={"grant_type": "password"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"] == "unsupported_grant_type"


# -- Entra ------------------------------------------------------------------------------


@pytest.mark.usefixtures("trust")
def test_msal_exchanges_google_token_for_arm_token(emu: Emulator) -> None:
    import jwt as pyjwt

    result = acquire(emu)
    assert result["token_type"] == "Bearer" and result["token_source"] == "identity_provider"
    keys_url = f"{emu.authority_host}/{emu.tenant_id}/discovery/v2.0/keys"
    jwks = pyjwt.PyJWKSet.from_dict(requests.get(keys_url, timeout=5).json())
    claims = pyjwt.decode(
        result["access_token"],
        jwks.keys[0].key,
        algorithms=["RS256"],
        audience="https://management.azure.com",
    )
    assert claims["iss"] == f"https://sts.windows.net/{emu.tenant_id}/"
    assert claims["tid"] == emu.tenant_id and claims["appid"] == emu.client_id == claims["azp"]
    assert claims["oid"] == claims["sub"] and claims["exp"] - claims["iat"] == 3600
    assert "nbf" in claims
    for alias in ("organizations", "common"):  # az needs these after `az logout`
        discovery = requests.get(
            f"{emu.authority_host}/{alias}/v2.0/.well-known/openid-configuration", timeout=5
        ).json()
        assert discovery["token_endpoint"].startswith(f"{emu.authority_host}/{alias}/")
    assert emu.counts["entra.token"] == 1 and emu.counts["entra.discovery"] == 4


@pytest.mark.usefixtures("trust")
def test_resource_audience_and_scope_errors(emu: Emulator) -> None:
    core = acquire(emu, scopes=["https://management.core.windows.net//.default"])
    assert claims_of(core["access_token"])["aud"] == "https://management.core.windows.net/"
    not_default = acquire(emu, scopes=["https://management.azure.com/user_impersonation"])
    two_resources = acquire(emu, scopes=[ARM_SCOPE, "https://vault.azure.net/.default"])
    assert not_default["error_codes"] == [1002012] and not_default["error"] == "invalid_scope"
    assert two_resources["error_codes"] == [70011]


@pytest.mark.usefixtures("trust")
def test_error_shape_is_entra_like(emu: Emulator) -> None:
    result = acquire(emu, client_id="00000000-0000-0000-0000-000000000000")
    assert result["error"] == "unauthorized_client" and result["error_codes"] == [700016]
    description = result["error_description"]
    assert description.startswith("AADSTS700016: Application with identifier")
    for part in ("Trace ID: ", "Correlation ID: ", "Timestamp: "):
        assert part in description
    assert result["trace_id"] in description and result["correlation_id"] in description
    assert result["error_uri"].endswith("code=700016")


def _tampered(emu: Emulator) -> str:
    header, _, signature = emu.mint_google_id_token().split(".")
    forged = emu.mint_google_id_token(sub="999").split(".")[1]
    return f"{header}.{forged}.{signature}"


BAD_ASSERTIONS: list[tuple[str, Callable[[Emulator], str], int]] = [
    ("empty", lambda emu: "", 7000218),
    ("not a jwt", lambda emu: "not-a-jwt", 50027),
    ("bad json", lambda emu: "a.b.c", 50027),
    (
        "unknown key",
        lambda emu: SigningKey.generate().sign(claims_of(emu.mint_google_id_token())),
        700027,
    ),
    ("bad signature", _tampered, 700027),
    ("no iat", lambda emu: emu.mint_google_id_token(iat=None), 70023),
    ("26 hours", lambda emu: emu.mint_google_id_token(lifetime=26 * 3600), 70023),
    ("expired", lambda emu: emu.mint_google_id_token(issued_at=time.time() - 7200), 700024),
    ("future", lambda emu: emu.mint_google_id_token(issued_at=time.time() + 3600), 700024),
    ("issuer", lambda emu: emu.mint_google_id_token(iss="https://accounts.google.com/"), 700211),
    ("audience", lambda emu: emu.mint_google_id_token("api://Other"), 700212),
    ("subject", lambda emu: emu.mint_google_id_token(email=OTHER_SA), 700213),
]


@pytest.mark.usefixtures("trust")
@pytest.mark.parametrize(
    ("make", "code"), [(m, c) for _, m, c in BAD_ASSERTIONS], ids=[n for n, _, _ in BAD_ASSERTIONS]
)
def test_bad_assertions_get_their_aadsts_code(
    emu: Emulator, make: Callable[[Emulator], str], code: int
) -> None:
    result = acquire(emu, make(emu))
    assert result.get("error_codes") == [code], result
    assert "access_token" not in result


@pytest.mark.usefixtures("trust")
def test_federated_credential_matching(emu: Emulator) -> None:
    emu.federated_credentials.clear()
    assert acquire(emu)["error_codes"] == [70021]
    emu.federated_credentials.append(
        FederatedCredential("https://accounts.google.com", emu.service_account_id + "0")
    )
    assert acquire(emu)["error_codes"] == [700213]
    emu.federated_credentials.append(
        FederatedCredential("https://accounts.google.com", emu.service_account_id)
    )
    assert "access_token" in acquire(emu)


@pytest.mark.usefixtures("trust")
def test_client_secret_and_unknown_tenant(emu: Emulator) -> None:
    assert acquire(emu, secret="s3cret")["error_codes"] == [7000215]
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        msal.ConfidentialClientApplication(
            emu.client_id,
            authority=emu.authority_host + "/11111111-2222-3333-4444-555555555555",
            client_credential={"client_assertion": emu.mint_google_id_token},
            instance_discovery=False,
        )
    direct = requests.post(
        f"{emu.authority_host}/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": emu.client_id, "scope": ARM_SCOPE},
        timeout=5,
    )
    assert direct.status_code == 400 and direct.json()["error_codes"] == [90002]
    assert emu.counts["entra.discovery"] == 2  # the good app's and the unknown tenant's


@pytest.mark.usefixtures("trust")
def test_azure_identity_assertion_credential(emu: Emulator) -> None:
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import ClientAssertionCredential

    good = ClientAssertionCredential(
        emu.tenant_id, emu.client_id, emu.mint_google_id_token, authority=emu.authority_host
    )
    assert claims_of(good.get_token(ARM_SCOPE).token)["tid"] == emu.tenant_id
    expired = ClientAssertionCredential(
        emu.tenant_id,
        emu.client_id,
        lambda: emu.mint_google_id_token(issued_at=time.time() - 4000),
        authority=emu.authority_host,
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS700024"):
        expired.get_token(ARM_SCOPE)


@pytest.mark.usefixtures("trust")
def test_arm_endpoints(emu: Emulator) -> None:
    token = acquire(emu, scopes=["https://management.core.windows.net//.default"])["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    subscriptions = requests.get(
        f"{emu.authority_host}/subscriptions?api-version=2022-12-01", headers=auth, timeout=5
    )
    tenants = requests.get(
        f"{emu.authority_host}/tenants?api-version=2022-12-01", headers=auth, timeout=5
    )
    anonymous = requests.get(
        f"{emu.authority_host}/subscriptions?api-version=2022-12-01", timeout=5
    )
    cloud = requests.get(
        f"{emu.authority_host}/metadata/endpoints?api-version=2015-01-01", timeout=5
    ).json()
    assert subscriptions.json()["value"] == []
    assert [t["tenantId"] for t in tenants.json()["value"]] == [emu.tenant_id]
    assert anonymous.status_code == 401
    assert cloud["authentication"]["loginEndpoint"] == emu.authority_host
    assert "https://management.core.windows.net/" in cloud["authentication"]["audiences"]
    clouds = requests.get(
        f"{emu.authority_host}/metadata/endpoints?api-version=2022-09-01", timeout=5
    ).json()
    assert clouds[0]["authentication"]["loginEndpoint"] == emu.authority_host
    assert emu.counts["arm"] == 5


# -- knobs: faults, outage, lifetimes, clock --------------------------------------------


@pytest.mark.usefixtures("trust")
def test_fail_next(emu: Emulator) -> None:
    emu.fail_next("jwks", 503, count=2)
    statuses = [
        requests.get(emu.google_url + "/oauth2/v3/certs", timeout=5).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200] and emu.counts["jwks"] == 3
    emu.fail_next("entra.token", 400, body={"error": "invalid_request", "error_codes": [12345]})
    assert acquire(emu)["error_codes"] == [12345]
    assert "access_token" in acquire(emu)
    with pytest.raises(ValueError, match="unknown endpoint key"):
        emu.fail_next("nope", 500)


@pytest.mark.usefixtures("trust")
def test_google_outage_refuses_connections_and_keeps_the_port(emu: Emulator) -> None:
    port = int(emu.metadata_host.rsplit(":", 1)[1])
    emu.set_google_available(False)
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.google_url + "/", timeout=2)
    assert "access_token" in acquire(emu)  # Entra is a separate server and stays up
    emu.set_google_available(True)
    ping = requests.get(f"http://{emu.metadata_host}/", timeout=5)
    assert ping.status_code == 200 and ping.headers["Metadata-Flavor"] == "Google"
    assert emu.metadata_host.endswith(f":{port}")


@pytest.mark.usefixtures("trust")
def test_lifetimes_are_read_at_each_mint(emu: Emulator) -> None:
    emu.id_token_lifetime, emu.access_token_lifetime = 120, 900
    flavor = {"Metadata-Flavor": "Google"}
    google = claims_of(
        metadata_get(
            emu, f"instance/service-accounts/default/identity?audience={AUDIENCE}", **flavor
        ).text
    )
    access = metadata_get(emu, "instance/service-accounts/default/token", **flavor).json()
    result = acquire(emu)
    azure = claims_of(result["access_token"])
    assert google["exp"] - google["iat"] == 120
    assert access["expires_in"] == 900 and access["token_type"] == "Bearer"
    assert result["expires_in"] == 900 and azure["exp"] - azure["iat"] == 900


def test_injected_clock_drives_minting_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_700_000_000.0]
    with Emulator(clock=lambda: now[0], tenant_id="t-1", client_id="c-1") as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
        token = emu.mint_google_id_token()
        assert claims_of(token)["iat"] == 1_700_000_000
        assert "access_token" in acquire(emu, token)
        now[0] += 3600  # exactly at exp: expired
        assert acquire(emu, token)["error_codes"] == [700024]
        assert emu.env()["AZURE_TENANT_ID"] == "t-1" and emu.env()["AZURE_CLIENT_ID"] == "c-1"
        ca_file = Path(emu.ca_file)
    assert not ca_file.exists()


# -- the command ------------------------------------------------------------------------

COMMAND = (
    "import argparse, sys\n"
    "from azfed_helper.emulator import command\n"
    "assert 'cryptography' not in sys.modules and 'google.auth' not in sys.modules\n"
    "parser = argparse.ArgumentParser()\n"
    "command.configure(parser)\n"
    "sys.exit(command.run(parser.parse_args(sys.argv[1:])))\n"
)


class EmulatorCommand:
    """``azfed-helper emulator`` as a child process; reads its output up to the ready line."""

    def __init__(self, *args: str) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", COMMAND, *args],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.child.stdout is not None
        self.lines: list[str] = []
        while not (line := self.child.stdout.readline()).startswith("# ready: "):
            assert line, self.child.communicate()[1]
            self.lines.append(line)
        self.ready = line
        # eval of the whole output in a real shell: the comment lines are harmless.
        shell = subprocess.run(
            ["sh", "-c", 'eval "$1" && env', "sh", "".join([*self.lines, line])],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": os.environ["PATH"]},
        )
        self.exports = dict(
            entry.split("=", 1) for entry in shell.stdout.splitlines() if "=" in entry
        )

    def stop(self, signum: int = signal.SIGTERM) -> int:
        if self.child.poll() is None:
            self.child.send_signal(signum)
        self.child.communicate(timeout=10)
        return self.child.returncode

    def kill(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.communicate()


def test_command_prints_env_and_stops_on_sigterm(tmp_path: Path) -> None:
    env_file, key_file = tmp_path / "emu.env", tmp_path / "key.json"
    command = EmulatorCommand(
        "--env-file",
        str(env_file),
        "--key-file",
        str(key_file),
        "--id-token-lifetime",
        "120",
        "--tenant-id",
        "my-tenant",
    )
    try:
        exports = command.exports
        assert exports["AZURE_TENANT_ID"] == "my-tenant"
        assert exports["GOOGLE_APPLICATION_CREDENTIALS"] == str(key_file)
        assert exports["NODE_EXTRA_CA_CERTS"] == exports["REQUESTS_CA_BUNDLE"]
        assert "ACTIONS_ID_TOKEN_REQUEST_URL" not in exports
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and key_file.exists()
        assert env_file.read_text() == "".join(command.lines)  # complete before the ready line
        assert command.ready.rstrip("\n").endswith("stop with Ctrl-C or SIGTERM")
        assert (
            "federated credential google-service-account: issuer https://accounts.google.com"
            in ("".join(command.lines))
        )
        ping = requests.get(f"http://{exports['GCE_METADATA_HOST']}/", timeout=5)
        assert ping.headers["Metadata-Flavor"] == "Google"
        identity = requests.get(
            f"http://{exports['GCE_METADATA_HOST']}/computeMetadata/v1/instance/service-accounts/"
            f"default/identity?audience={AUDIENCE}",
            headers={"Metadata-Flavor": "Google"},
            timeout=5,
        )
        assert claims_of(identity.text)["exp"] - claims_of(identity.text)["iat"] == 120
        assert command.stop() == 0
        assert not Path(exports["REQUESTS_CA_BUNDLE"]).exists()
        assert not env_file.exists()  # a stale file would point shells at a deleted CA
        assert key_file.exists()
    finally:
        command.kill()


def test_command_keeps_an_env_file_someone_else_rewrote(tmp_path: Path) -> None:
    env_file = tmp_path / "emu.env"
    command = EmulatorCommand("--env-file", str(env_file))
    try:
        env_file.write_text("export SOMETHING=else\n")
        assert command.stop(signal.SIGINT) == 0
        assert env_file.read_text() == "export SOMETHING=else\n"
    finally:
        command.kill()


def test_command_with_github_actions_and_a_projected_token(tmp_path: Path) -> None:
    token_file = tmp_path / "tokens" / "token"
    command = EmulatorCommand(
        "--github-actions",
        "--github-token-lifetime",
        "20",
        "--kubernetes-token-file",
        str(token_file),
    )
    try:
        exports = command.exports
        url = exports["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=" + AUDIENCE
        answer = requests.get(
            url,
            headers={"Authorization": "Bearer " + exports["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]},
            verify=exports["REQUESTS_CA_BUNDLE"],
            timeout=10,
        ).json()
        github = claims_of(answer["value"])
        assert github["exp"] - github["iat"] == 20
        comments = "".join(command.lines)
        assert f"issuer https://token.actions.githubusercontent.com, subject {github['sub']}," in (
            comments
        )
        projected = claims_of(token_file.read_text())
        assert f"issuer {projected['iss']}, subject {projected['sub']}," in comments
        assert command.stop() == 0
    finally:
        command.kill()


def test_configure_adds_the_documented_options() -> None:
    from azfed_helper.emulator.command import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--access-token-lifetime", "60", "--client-id", "c"])
    assert args.access_token_lifetime == 60 and args.client_id == "c"
    assert args.id_token_lifetime == 3600 and args.key_file is None and args.env_file is None
