"""The exchange through the real MSAL against the emulator's Entra over https.

Each AADSTS case the emulator can produce is provoked the way users hit it (a federated credential
that does not match, a wrong tenant, a clock that is off) and must come back as our explanation.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.entra import cache
from azfed_helper._internal.entra.aadsts import EntraError
from azfed_helper._internal.entra.exchange import Exchange
from azfed_helper._internal.errors import ExchangeError
from azfed_helper.emulator import FederatedCredential

from .conftest import make_jwt, refusing_port

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
    first = Exchange(settings()).acquire(SCOPES)
    assert first.expires_on > time.time() + 3000
    assert token_file.exists()  # the assertion came through the token file
    counts = dict(emulator.counts)
    assert (counts["entra.token"], counts["entra.discovery"], counts["metadata.identity"]) == (
        1,
        1,
        1,
    )
    again = Exchange(settings()).acquire(SCOPES)
    assert again.token == first.token
    assert emulator.counts["entra.token"] == 1


def test_warm_run_reuses_persisted_discovery(emulator: Any, token_file: Path) -> None:
    emulator.access_token_lifetime = 120  # < 5 minutes: MSAL never reuses it
    Exchange(settings()).acquire(SCOPES)
    Exchange(settings()).acquire(SCOPES)
    assert emulator.counts["entra.token"] == 2
    assert emulator.counts["entra.discovery"] == 1
    records = json.loads((Path(cache.cache_dir(settings())) / cache.HTTP_CACHE).read_text())
    assert [r["key"].split()[0] for r in records] == ["GET"]


def test_in_memory_exchange_without_token_file(emulator: Any, emulator_env: dict[str, str]) -> None:
    exchange = Exchange(settings(), persistent=False)
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
    assert "ConnectionError" in str(info.value)


def test_corrupt_cache_is_set_aside_and_rebuilt(
    emulator: Any, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = Path(cache.cache_dir(settings()))
    directory.mkdir(mode=0o700)
    (directory / cache.TOKEN_CACHE).write_text('{"AccessToken": {')
    token = Exchange(settings()).acquire(SCOPES)
    assert token.token
    aside = list(directory.glob(cache.TOKEN_CACHE + ".corrupt-*"))
    assert len(aside) == 1
    assert "unreadable" in caplog.text
    assert (directory / cache.TOKEN_CACHE).stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    assert json.loads((directory / cache.TOKEN_CACHE).read_text())["AccessToken"]
