"""The emulator's GitHub Actions and Kubernetes issuers, over real HTTPS, and the emulated Entra
accepting their tokens through the real MSAL."""

from __future__ import annotations

import itertools
import json
import os
import ssl
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest

from azfed_helper.emulator import Emulator, FederatedCredential
from azfed_helper.emulator.keys import SigningKey

from .test_emulator import acquire, claims_of

AUDIENCE = "api://AzureADTokenExchange"
GITHUB = "https://token.actions.githubusercontent.com"
GKE = (
    "https://container.googleapis.com/v1/projects/emulated-project/locations/us-central1/"
    "clusters/emulated"
)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)  # MSAL must trust the emulator
    yield
    emu.federated_credentials[:] = [
        FederatedCredential("https://accounts.google.com", emu.service_account_id, [AUDIENCE])
    ]
    emu.github.lifetime, emu.github.environment = 300, None
    emu.kubernetes.lifetime = 3600
    emu.reset_counts()


def fetch(
    emu: Emulator, url: str, bearer: str | None = None, method: str = "GET"
) -> tuple[int, Any]:
    """One HTTPS request trusting only the emulator's CA: (status, parsed JSON body)."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    context = ssl.create_default_context(cafile=emu.ca_file)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def github_token(emu: Emulator, audience: str | None = AUDIENCE) -> str:
    """What a client in a job does: append ``&audience=`` to the URL, send the bearer."""
    env = emu.github_actions_env()
    url = env["ACTIONS_ID_TOKEN_REQUEST_URL"]
    if audience is not None:
        url += "&audience=" + urllib.request.quote(audience, safe="")
    status, body = fetch(emu, url, env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])
    assert status == 200, body
    assert body["count"] == len(body["value"])
    value: str = body["value"]
    return value


def verified(emu: Emulator, token: str, prefix: str, audience: str) -> dict[str, Any]:
    """Check the token against the JWKS named by the issuer's emulated discovery document."""
    status, discovery = fetch(emu, f"{emu.issuers_url}/{prefix}/.well-known/openid-configuration")
    assert status == 200
    status, keys = fetch(emu, discovery["jwks_uri"])
    assert status == 200 and discovery["jwks_uri"].startswith(emu.issuers_url)
    key = pyjwt.PyJWKSet.from_dict(keys)[pyjwt.get_unverified_header(token)["kid"]]
    claims: dict[str, Any] = pyjwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=discovery["issuer"]
    )
    return claims


def accepted(emu: Emulator, assertion: str | Callable[[], str]) -> dict[str, Any]:
    """MSAL's ConfidentialClientApplication with the assertion: the access token's claims."""
    result = acquire(emu, assertion)
    assert "access_token" in result, result
    return claims_of(result["access_token"])


# -- GitHub Actions -------------------------------------------------------------------------


def test_github_env_is_apart_from_env(emu: Emulator) -> None:
    actions = emu.github_actions_env()
    assert set(actions) == {"ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"}
    assert actions["ACTIONS_ID_TOKEN_REQUEST_URL"].endswith("/idtoken?api-version=2.0")
    assert actions["ACTIONS_ID_TOKEN_REQUEST_URL"].startswith(emu.issuers_url + "/github/")
    assert not set(actions) & set(emu.env())
    assert emu.env()["NODE_EXTRA_CA_CERTS"] == emu.ca_file == emu.env()["REQUESTS_CA_BUNDLE"]


def test_github_endpoint_refuses_requests_without_the_runner_bearer(emu: Emulator) -> None:
    env = emu.github_actions_env()
    url = env["ACTIONS_ID_TOKEN_REQUEST_URL"] + "&audience=" + AUDIENCE
    missing, missing_body = fetch(emu, url)
    wrong, wrong_body = fetch(emu, url, "not-the-runner-token")
    other_job, _ = fetch(
        emu, url.replace("/jobs/", "/jobs/0"), env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    )
    post, _ = fetch(emu, url, env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"], method="POST")
    replaced_query, replaced_body = fetch(
        emu, url.replace("?api-version=2.0&", "?"), env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]
    )
    assert (missing, wrong, other_job, post, replaced_query) == (401, 403, 404, 405, 400)
    for body in (missing_body, wrong_body, replaced_body):
        assert body["message"] and "value" not in body
    assert "api-version" in replaced_body["message"]
    assert emu.counts["github.token"] == 4  # the unknown path is not the endpoint
    emu.fail_next("github.token", 503)
    assert fetch(emu, url, env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])[0] == 503
    assert fetch(emu, url, env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"])[0] == 200


def test_github_token_claims_audience_and_signature(emu: Emulator) -> None:
    token = github_token(emu)
    claims = verified(emu, token, "github", AUDIENCE)
    assert claims["iss"] == GITHUB
    assert claims["sub"] == "repo:emulated-org/emulated-repo:ref:refs/heads/main"
    assert (
        claims["repository"] == "emulated-org/emulated-repo" and claims["ref"] == "refs/heads/main"
    )
    assert claims["repository_owner"] == "emulated-org" and claims["run_id"].isdecimal()
    assert claims["event_name"] == "push" and claims["ref_type"] == "branch"
    assert claims["exp"] - claims["iat"] == 300 and claims["nbf"] <= claims["iat"]
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["jti"] != claims_of(github_token(emu))["jti"]
    default = claims_of(github_token(emu, audience=None))  # GitHub's default: the owner's URL
    assert default["aud"] == "https://github.com/emulated-org"
    other = claims_of(github_token(emu, audience="api://Other"))
    assert other["aud"] == "api://Other"
    assert emu.counts["github.token"] == 4 and emu.counts["github.discovery"] == 2
    # The GitHub key is GitHub's own, not Google's.
    assert pyjwt.get_unverified_header(token)["kid"] != emu.google_key.kid


def test_github_lifetime_and_subject_follow_the_job(emu: Emulator) -> None:
    emu.github.lifetime = 20
    emu.github.environment = "production"
    claims = claims_of(github_token(emu))
    assert claims["exp"] - claims["iat"] == 20
    assert claims["sub"] == "repo:emulated-org/emulated-repo:environment:production"
    assert claims["environment"] == "production"


def test_entra_accepts_a_github_token_only_with_a_matching_credential(emu: Emulator) -> None:
    token = github_token(emu)
    assert acquire(emu, token)["error_codes"] == [700211]  # only Google is trusted so far
    emu.federated_credentials.append(
        FederatedCredential(GITHUB, "repo:emulated-org/emulated-repo:ref:refs/heads/dev")
    )
    assert acquire(emu, token)["error_codes"] == [700213]
    fic = emu.add_github_actions_credential()
    assert (fic.issuer, fic.subject) == (GITHUB, claims_of(token)["sub"])
    access = accepted(emu, token)
    assert access["tid"] == emu.tenant_id and access["appid"] == emu.client_id
    assert access["aud"] == "https://management.azure.com"
    assert acquire(emu, github_token(emu, audience=None))["error_codes"] == [700212]
    assert "access_token" in acquire(emu, emu.mint_google_id_token())  # Google still trusted


BAD_GITHUB: list[tuple[str, Callable[[Emulator], str], int]] = [
    ("expired", lambda emu: emu.mint_github_id_token(issued_at=time.time() - 600), 700024),
    ("no iat", lambda emu: emu.mint_github_id_token(iat=None), 70023),
    ("26 hours", lambda emu: emu.mint_github_id_token(lifetime=26 * 3600), 70023),
    (
        "signed by Google",
        lambda emu: emu.google_key.sign(claims_of(emu.mint_github_id_token())),
        700027,
    ),
    (
        "unknown key",
        lambda emu: SigningKey.generate().sign(claims_of(emu.mint_github_id_token())),
        700027,
    ),
]


@pytest.mark.parametrize(
    ("make", "code"), [(m, c) for _, m, c in BAD_GITHUB], ids=[n for n, _, _ in BAD_GITHUB]
)
def test_bad_github_assertions_get_their_aadsts_code(
    emu: Emulator, make: Callable[[Emulator], str], code: int
) -> None:
    emu.add_github_actions_credential()
    assert acquire(emu, make(emu)).get("error_codes") == [code]


def test_an_issuer_the_emulator_cannot_reach(emu: Emulator) -> None:
    key = SigningKey.generate()
    claims = {**claims_of(emu.mint_github_id_token()), "iss": "https://issuer.example"}
    assert acquire(emu, key.sign(claims))["error_codes"] == [700211]
    emu.federated_credentials.append(FederatedCredential("https://issuer.example", claims["sub"]))
    assert acquire(emu, key.sign(claims))["error_codes"] == [90061]


# -- Kubernetes -----------------------------------------------------------------------------


def test_kubernetes_token_claims_and_keys(emu: Emulator) -> None:
    token = emu.mint_kubernetes_token(namespace="payments", service_account="api")
    claims = verified(emu, token, "kubernetes", AUDIENCE)
    assert claims["iss"] == GKE and claims["aud"] == [AUDIENCE]  # a list, as the API server writes
    assert claims["sub"] == "system:serviceaccount:payments:api"
    assert claims["kubernetes.io"]["namespace"] == "payments"
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "api"
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert emu.counts["kubernetes.discovery"] == 2
    emu.kubernetes.issuer = "https://oidc.example.com/cluster"
    try:
        assert claims_of(emu.mint_kubernetes_token())["iss"] == "https://oidc.example.com/cluster"
        status, discovery = fetch(
            emu, f"{emu.issuers_url}/kubernetes/.well-known/openid-configuration"
        )
        assert status == 200 and discovery["issuer"] == "https://oidc.example.com/cluster"
    finally:
        emu.kubernetes.issuer = GKE


def test_entra_accepts_a_kubernetes_token_only_for_the_trusted_account(emu: Emulator) -> None:
    token = emu.mint_kubernetes_token()
    assert acquire(emu, token)["error_codes"] == [700211]
    emu.add_kubernetes_credential(namespace="other")
    assert acquire(emu, token)["error_codes"] == [700213]
    emu.add_kubernetes_credential()
    assert accepted(emu, token)["tid"] == emu.tenant_id
    assert acquire(emu, emu.mint_kubernetes_token("api://Other"))["error_codes"] == [700212]


def read_whole_token(path: Path) -> str:
    """Read the file as a pod would, and insist it is a whole JWT (never a partial write)."""
    text = path.read_text()
    assert text.count(".") == 2 and not text.endswith("\n")
    claims_of(text)
    return text


def test_projected_token_file_rotates_like_the_kubelet(emu: Emulator, tmp_path: Path) -> None:
    emu.add_kubernetes_credential()
    path = tmp_path / "tokens" / "azure-identity-token"
    lifetime = 5
    projected = emu.start_projected_token_file(path, lifetime=lifetime)
    seen = [read_whole_token(path)]  # written before start returned
    assert os.readlink(path) == "..data/azure-identity-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "access_token" in acquire(emu, lambda: read_whole_token(path))
    deadline = time.monotonic() + 90
    while len(seen) < 3:  # the first token and two rotations, observed as changed contents
        assert time.monotonic() < deadline, f"saw {len(seen)} tokens"
        text = read_whole_token(path)
        if text != seen[-1]:
            seen.append(text)
            assert "access_token" in acquire(emu, text)  # each new token is valid at once
        time.sleep(0.05)
    times = [claims_of(text)["iat"] for text in seen]
    assert all(
        later - earlier >= int(lifetime * 0.8) for earlier, later in itertools.pairwise(times)
    )
    assert all(claims_of(text)["exp"] - claims_of(text)["iat"] == lifetime for text in seen)
    projected.stop()
    writes = projected.writes
    assert writes >= 3 and projected.last_error is None
    generations = [name for name in os.listdir(path.parent) if name.startswith("..2")]
    assert 1 <= len(generations) <= 2  # old generations are cleaned up
    projected.rotate()  # still usable by hand after stop, without a thread
    assert projected.writes == writes + 1 and read_whole_token(path) not in seen


def test_plain_file_layout_and_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an injected clock the file changes when rotate() is called (the thread waits for the
    clock's due time), and 20-second tokens of every issuer are accepted until their exp."""
    now = [1_800_000_000.0]
    with Emulator(clock=lambda: now[0]) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
        emu.add_github_actions_credential()
        emu.add_kubernetes_credential()
        path = tmp_path / "token"
        projected = emu.start_projected_token_file(path, lifetime=20, layout="file")
        first = read_whole_token(path)
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
        inode = path.stat().st_ino
        now[0] += 10
        projected.rotate()
        assert read_whole_token(path) != first and path.stat().st_ino != inode  # replaced by rename
        assert claims_of(read_whole_token(path))["iat"] == 1_800_000_010
        tokens = {
            "google": emu.mint_google_id_token(lifetime=20),
            "github": emu.mint_github_id_token(lifetime=20),
            "kubernetes": read_whole_token(path),
        }
        for name, token in tokens.items():
            assert "access_token" in acquire(emu, token), name
        assert projected.writes == 2  # nothing was due on the injected clock
        now[0] += 20
        expired = {name: acquire(emu, token).get("error_codes") for name, token in tokens.items()}
        assert expired == {"google": [700024], "github": [700024], "kubernetes": [700024]}
        ca_file = emu.ca_file
    assert not Path(ca_file).exists()


def test_short_lifetimes_from_the_endpoints(emu: Emulator) -> None:
    """20-second tokens from each issuer's own endpoint (metadata server, runner, file)."""
    emu.id_token_lifetime = emu.github.lifetime = emu.kubernetes.lifetime = 20
    try:
        identity = f"{emu.google_url}/computeMetadata/v1/instance/service-accounts/default/identity"
        request = urllib.request.Request(
            f"{identity}?audience={AUDIENCE}", headers={"Metadata-Flavor": "Google"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            google = response.read().decode()
        github = github_token(emu)
        kubernetes = emu.mint_kubernetes_token()  # the writer's default lifetime
        for token in (google, github, kubernetes):
            claims = claims_of(token)
            assert claims["exp"] - claims["iat"] == 20
        emu.add_github_actions_credential()
        emu.add_kubernetes_credential()
        for token in (google, github, kubernetes):
            assert "access_token" in acquire(emu, token)
    finally:
        emu.id_token_lifetime = 3600
