"""The exchange through the real MSAL against the emulator's Entra over https.

Each AADSTS case the emulator can produce is provoked the way users hit it (a federated credential
that does not match, a wrong tenant, a clock that is off) and must come back as our explanation.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.entra import cache, httpcache
from azfed_helper._internal.entra.aadsts import EntraError
from azfed_helper._internal.entra.exchange import Exchange
from azfed_helper._internal.entra.provider import TokenProvider
from azfed_helper._internal.errors import ExchangeError, SourceError, UsageError
from azfed_helper.emulator import FederatedCredential

from .conftest import cli_env, make_jwt, refusing_port, run_cli

SCOPES = ["https://management.azure.com/.default"]


@pytest.fixture
def token_file(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path, monkeypatch: Any
) -> Path:
    path = tmp_path / "token"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(path))
    monkeypatch.setenv("AZFED_CACHE_DIR", str(tmp_path / "cache"))
    return path


def settings(**flags: object) -> Settings:
    return resolve(argparse.Namespace(**flags))


def no_sleep(seconds: float) -> None:
    pass


def test_exchange_caches_on_disk_and_a_warm_run_makes_no_request(
    emulator: Any, token_file: Path
) -> None:
    first = TokenProvider(settings()).get(SCOPES)
    assert first.expires_on > time.time() + 3000
    assert token_file.exists()  # the assertion came through the token file
    counts = dict(emulator.counts)
    assert (counts["entra.token"], counts["entra.discovery"], counts["metadata.identity"]) == (
        1,
        1,
        1,
    )
    again = TokenProvider(settings()).get(SCOPES)  # another process: the file, no request
    assert again.token == first.token
    assert emulator.counts["entra.token"] == 1


def test_warm_run_reuses_persisted_discovery(emulator: Any, token_file: Path) -> None:
    emulator.access_token_lifetime = 120  # < 5 minutes: MSAL never reuses it
    TokenProvider(settings()).get(SCOPES)
    TokenProvider(settings()).get(SCOPES)
    assert emulator.counts["entra.token"] == 2
    assert emulator.counts["entra.discovery"] == 1
    records = json.loads((Path(cache.cache_dir(settings())) / cache.HTTP_CACHE).read_text())
    assert [r["key"].split()[0] for r in records] == ["GET"]


def test_in_memory_exchange_without_token_file(emulator: Any, emulator_env: dict[str, str]) -> None:
    exchange = Exchange(settings())
    first = exchange.acquire(SCOPES)
    assert exchange.acquire(SCOPES).token == first.token
    assert emulator.counts["entra.token"] == 1
    assert emulator.counts["metadata.identity"] == 1


def explained(exchange: Exchange) -> EntraError:
    with pytest.raises(EntraError) as info:
        exchange.acquire(SCOPES)
    return info.value


def test_subject_mismatch_shows_presented_and_required(emulator: Any, token_file: Path) -> None:
    sub = emulator.service_account_id
    emulator.federated_credentials[:] = [
        FederatedCredential("https://accounts.google.com", emulator.service_account_email)
    ]
    error = explained(Exchange(settings()))
    text = str(error)
    assert error.code == 700213
    assert f"sub {sub}" in text
    assert f"subject {sub}" in text
    assert "issuer https://accounts.google.com" in text
    assert "audience api://AzureADTokenExchange" in text
    assert "Correlation ID" in text


@pytest.mark.parametrize(
    ("credentials", "code"),
    [
        ([], 70021),
        ([FederatedCredential("https://accounts.google.com/", "SUB")], 700211),
        ([FederatedCredential("https://accounts.google.com", "SUB", ["api://other"])], 700212),
    ],
)
def test_federated_credential_mismatches(
    emulator: Any, token_file: Path, credentials: list[FederatedCredential], code: int
) -> None:
    for fic in credentials:
        fic.subject = emulator.service_account_id
    emulator.federated_credentials[:] = credentials
    error = explained(Exchange(settings()))
    assert error.code == code
    assert f"subject {emulator.service_account_id}" in str(error)


def test_custom_audience_mismatch_names_the_audience(emulator: Any, token_file: Path) -> None:
    error = explained(Exchange(settings(audience="api://custom")))
    assert error.code == 700212
    assert "audience api://custom" in str(error)


def test_expired_assertion_from_clock_skew(emulator: Any, token_file: Path) -> None:
    token_file.write_text(emulator.mint_google_id_token())
    emulator.clock = lambda: time.time() + 7200  # Entra's clock is two hours ahead
    error = explained(Exchange(settings()))
    assert error.code == 700024
    assert "clock" in error.hint
    assert "presented assertion: iss https://accounts.google.com" in str(error)


def test_bad_signature(emulator: Any, token_file: Path) -> None:
    token_file.write_text(make_jwt(sub=emulator.service_account_id))  # not signed by Google
    error = explained(Exchange(settings()))
    assert error.code == 700027


def test_unknown_client(emulator: Any, token_file: Path) -> None:
    error = explained(Exchange(settings(client_id="00000000-0000-0000-0000-000000000000")))
    assert error.code == 700016
    assert "AZURE_CLIENT_ID" in error.hint


def test_unknown_tenant(emulator: Any, token_file: Path) -> None:
    error = explained(Exchange(settings(tenant_id="contoso.example")))
    assert error.code == 90002
    assert "AZURE_TENANT_ID" in error.hint


def test_5xx_is_retried_past_msal_replay(emulator: Any, token_file: Path) -> None:
    delays: list[float] = []
    emulator.fail_next("entra.token", 503, count=2)
    token = Exchange(settings(), sleep=delays.append).acquire(SCOPES)
    assert token.token
    assert emulator.counts["entra.token"] == 3
    assert delays == [0.5, 1.0]


def test_persistent_5xx_gives_a_clear_error(emulator: Any, token_file: Path) -> None:
    emulator.fail_next("entra.token", 500, count=10)
    with pytest.raises(ExchangeError) as info:
        Exchange(settings(), sleep=no_sleep).acquire(SCOPES)
    assert "after 4 attempts" in str(info.value)
    assert emulator.counts["entra.token"] == 4
    assert isinstance(info.value.__cause__, Exception)


def test_unreachable_entra(emulator: Any, token_file: Path) -> None:
    host = f"https://127.0.0.1:{refusing_port()}"
    with pytest.raises(ExchangeError) as info:
        Exchange(settings(authority_host=host), sleep=no_sleep).acquire(SCOPES)
    assert host in str(info.value)
    assert "connection refused" in str(info.value)


def test_corrupt_cache_is_set_aside_and_rebuilt(
    emulator: Any, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Path(cache.cache_dir(settings()))
    directory.mkdir(mode=0o700)
    (directory / cache.TOKEN_CACHE).write_text('{"AccessToken": {')
    token = TokenProvider(settings()).get(SCOPES)
    assert token.token
    aside = list(directory.glob(cache.TOKEN_CACHE + ".corrupt-*"))
    assert len(aside) == 1
    assert "unreadable" in caplog.text
    assert (directory / cache.TOKEN_CACHE).stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    assert json.loads((directory / cache.TOKEN_CACHE).read_text())["AccessToken"]


# -- network edges: the assertion's failures, TLS, CA bundles, retry notices ---------------

TARGET = "other@emulated-project.iam.gserviceaccount.com"


def test_a_google_failure_is_the_sources_reported_once(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    """MSAL asks for the assertion mid-request: its failure is not Entra's and is not retried."""
    key = emulator.write_service_account_key(tmp_path / "key.json")
    closed = f"127.0.0.1:{refusing_port()}"
    delays: list[float] = []
    exchange = Exchange(
        settings(credentials=str(key), impersonate=TARGET, iam_endpoint=f"http://{closed}"),
        sleep=delays.append,
    )
    with pytest.raises(SourceError) as info:
        exchange.acquire(SCOPES)
    assert f"http://{closed}/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken" in str(
        info.value
    )
    assert "connection refused" in str(info.value)
    assert "attempts" not in str(info.value)
    assert delays == []
    assert emulator.counts["entra.token"] == 0


def test_an_unexpected_assertion_failure_is_wrapped_once(
    emulator: Any, emulator_env: dict[str, str]
) -> None:
    calls: list[int] = []

    def broken() -> str:
        calls.append(1)
        raise RuntimeError("disk on fire")

    delays: list[float] = []
    exchange = Exchange(settings(), broken, sleep=delays.append)
    with pytest.raises(SourceError) as info:
        exchange.acquire(SCOPES)
    assert "cannot get the ID token to present to Entra: RuntimeError: disk on fire" in str(
        info.value
    )
    assert isinstance(info.value.__cause__, RuntimeError)
    assert (calls, delays, emulator.counts["entra.token"]) == ([1], [], 0)


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_missing_ca_bundle_is_named(
    emulator: Any, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    gone = tmp_path / "stopped-emulator-ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv(variable, str(gone))
    with pytest.raises(UsageError) as info:
        TokenProvider(settings(), sleep=no_sleep).get(SCOPES)
    assert str(info.value).startswith(
        f"{variable} names the CA bundle {gone}, which does not exist"
    )
    assert emulator.counts["entra.discovery"] == 0
    assert not (Path(cache.cache_dir(settings())) / cache.TOKEN_CACHE).exists()


def test_an_untrusted_certificate_is_not_retried(
    emulator: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.delenv("CURL_CA_BUNDLE")
    delays: list[float] = []
    with pytest.raises(ExchangeError) as info:
        Exchange(settings(), sleep=delays.append).acquire(SCOPES)
    assert f"cannot verify Entra's TLS certificate at {emulator.authority_host}" in str(info.value)
    assert "REQUESTS_CA_BUNDLE" in str(info.value.hint)
    assert delays == []


def test_foreground_commands_announce_long_retry_waits(emulator: Any, tmp_path: Path) -> None:
    emulator.fail_next("entra.token", 503, count=3)
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}
    done = run_cli("token", "--scope", SCOPES[0], env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().count(".") == 2
    # Waits of 0.5 s and 1 s pass quietly; the 2 s one is announced.
    assert done.stderr == (
        f"azfed-helper: Entra at {emulator.authority_host}: HTTP 503; retrying in 2s "
        "(attempt 4 of 4)\n"
    )
    assert emulator.counts["entra.token"] == 4


def test_library_use_prints_nothing_on_retries(emulator: Any, tmp_path: Path) -> None:
    """GoogleFederatedCredential's users get retry records only through their own logging."""
    emulator.fail_next("entra.token", 503, count=3)
    script = (
        "import logging, sys\n"
        "from azfed_helper import GoogleFederatedCredential\n"
        f"GoogleFederatedCredential(persistent_cache=False).get_token({SCOPES[0]!r})\n"
        "sys.stdin.readline()\n"  # the test queues three more failures meanwhile
        "logging.basicConfig(format='%(name)s %(levelname)s %(message)s')\n"
        f"GoogleFederatedCredential(persistent_cache=False).get_token({SCOPES[0]!r})\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        env=cli_env(emulator.env()),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None and child.stderr is not None
        deadline = time.monotonic() + 60
        while emulator.counts["entra.token"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        emulator.fail_next("entra.token", 503, count=3)
        child.stdin.write("go\n")
        child.stdin.close()
        stderr = child.stderr.read()
        assert child.wait(60) == 0, stderr
    # Only the second credential's retry, once the "user" configured logging.
    assert stderr.splitlines() == [
        f"azfed_helper.retry WARNING Entra at {emulator.authority_host}: HTTP 503; retrying in "
        "2s (attempt 4 of 4)"
    ]


# -- persisted discovery answers are trusted only when they point at the authority host ----


def test_a_planted_discovery_answer_never_receives_the_assertion(
    emulator: Any, token_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azfed_helper.emulator import Emulator

    with Emulator() as attacker:
        bundle = tmp_path / "both-cas.pem"
        bundle.write_text(Path(emulator.ca_file).read_text() + Path(attacker.ca_file).read_text())
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
        emulator.access_token_lifetime = 120  # never reused: the next run goes to the network
        TokenProvider(settings()).get(SCOPES)
        http_cache = Path(cache.cache_dir(settings())) / cache.HTTP_CACHE
        genuine = http_cache.read_text()
        planted = genuine.replace(
            emulator.authority_host.replace("/", "\\/"), attacker.authority_host
        ).replace(emulator.authority_host, attacker.authority_host)
        records = json.loads(planted)
        assert records[0]["key"].startswith(f"GET {attacker.authority_host}/")
        records[0]["key"] = json.loads(genuine)[0]["key"]  # the genuine URL, the attacker's answer
        http_cache.write_text(json.dumps(records))
        token = TokenProvider(settings()).get(SCOPES)
        assert token.token
        assert attacker.counts["entra.token"] == 0
    assert emulator.counts["entra.discovery"] == 2  # fetched afresh
    assert attacker.authority_host not in http_cache.read_text()  # and the answer replaced


def _discovery_record(host: str, **document: object) -> dict[str, object]:
    base = f"{host}/tenant"
    answer = {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "issuer": f"{base}/v2.0",
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",  # as real Entra says
        **document,
    }
    now = int(time.time())
    return {
        "key": f"GET {base}/v2.0/.well-known/openid-configuration hash=0 2xx",
        "expires_at": now + 3600,
        "created_at": now - 1,
        "status_code": 200,
        "text": json.dumps({k: v for k, v in answer.items() if v is not None}),
        "headers": {},
    }


HOST = "https://login.example.com"


@pytest.mark.parametrize(
    ("record", "trusted"),
    [
        (_discovery_record(HOST), True),
        (_discovery_record("https://LOGIN.example.com:443"), True),
        (_discovery_record("https://evil.example.net"), False),
        (_discovery_record("http://login.example.com"), False),
        (_discovery_record("https://login.example.com:8443"), False),
        (_discovery_record(HOST, token_endpoint="https://evil.example.net/t"), False),
        (_discovery_record(HOST, token_endpoint="http://login.example.com/t"), False),
        (_discovery_record(HOST, token_endpoint="https://x@login.example.com/t"), False),
        (_discovery_record(HOST, token_endpoint=None), False),
        (_discovery_record(HOST, authorization_endpoint="https://evil.example.net/a"), False),
        (_discovery_record(HOST, device_authorization_endpoint="https://evil.net/d"), False),
        (_discovery_record(HOST, issuer="https://evil.example.net/v2.0"), False),
        (_discovery_record(HOST, token_endpoint=["https://login.example.com/t"]), False),
        ({**_discovery_record(HOST), "text": "not json"}, False),
        ({**_discovery_record(HOST), "key": "POST https://login.example.com/t"}, False),
    ],
)
def test_persisted_discovery_is_used_only_when_it_points_at_the_authority(
    record: dict[str, object], trusted: bool
) -> None:
    restored = httpcache.restore([record], HOST)
    assert (record["key"] in restored) is trusted


def test_a_moved_msal_class_costs_the_optimisation_not_the_exchange(
    emulator: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If MSAL moves NormalizedResponse, persisted discovery is simply not used."""
    import msal  # noqa: F401 (loaded as it is, before its private module "moves")

    monkeypatch.setitem(
        sys.modules, "msal.throttled_http_client", types.ModuleType("msal.throttled_http_client")
    )
    emulator.access_token_lifetime = 120
    TokenProvider(settings()).get(SCOPES)
    assert TokenProvider(settings()).get(SCOPES).token
    assert (emulator.counts["entra.discovery"], emulator.counts["entra.token"]) == (2, 2)
