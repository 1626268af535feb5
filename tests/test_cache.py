"""The lock-free cache-hit reader against MSAL's own rules, and the cache location."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msal
import pytest

from azfed_helper._internal.entra import cache

CLIENT, TENANT = "client-1", "tenant-1"
HOST = "https://Login.Example.test:8443"
SCOPE = "https://management.azure.com/.default"


def msal_cache(directory: Path, expires_in: int, scopes: list[str], **response: object) -> None:
    """Let MSAL itself write an entry, as acquire_token_for_client would."""
    token_cache = msal.SerializableTokenCache()
    token_cache.add(
        {
            "client_id": CLIENT,
            "scope": scopes,
            "token_endpoint": f"{HOST}/{TENANT}/oauth2/v2.0/token",
            "environment": "login.example.test",
            "response": {
                "access_token": "AT",
                "expires_in": expires_in,
                "token_type": "Bearer",
                **response,
            },
            "data": {},
            "grant_type": "client_credentials",
        }
    )
    directory.mkdir(exist_ok=True)
    (directory / cache.TOKEN_CACHE).write_text(token_cache.serialize())


def find(directory: Path, scopes: list[str], **overrides: str) -> cache.AccessToken | None:
    args = {"client_id": CLIENT, "tenant": TENANT, "authority_host": HOST, **overrides}
    return cache.find_access_token(str(directory), scopes=scopes, now=time.time(), **args)


def test_hit_follows_msal_rules(tmp_path: Path) -> None:
    written = time.time()
    msal_cache(tmp_path, 3600, [SCOPE])
    hit = find(tmp_path, [SCOPE])
    assert hit is not None
    assert hit.token == "AT"
    assert written + 3600 - 1 <= hit.expires_on <= time.time() + 3600
    assert "AT" not in repr(hit)
    assert find(tmp_path, ["https://storage.azure.com/.default"]) is None
    assert find(tmp_path, [SCOPE], client_id="other") is None
    assert find(tmp_path, [SCOPE], tenant="other") is None
    assert find(tmp_path, [SCOPE], authority_host="https://login.microsoftonline.com") is None
    # MSAL keys by host name only (no port, any case)
    assert find(tmp_path, [SCOPE], authority_host="https://login.example.test/") is not None


def test_less_than_five_minutes_left_is_a_miss(tmp_path: Path) -> None:
    msal_cache(tmp_path, 299, [SCOPE])
    assert find(tmp_path, [SCOPE]) is None
    msal_cache(tmp_path, 310, [SCOPE])
    assert find(tmp_path, [SCOPE]) is not None


def test_refresh_on_passed_is_a_miss(tmp_path: Path) -> None:
    msal_cache(tmp_path, 3600, [SCOPE], refresh_in=-10)
    assert find(tmp_path, [SCOPE]) is None


def test_missing_or_garbage_file_is_a_miss(tmp_path: Path) -> None:
    assert find(tmp_path, [SCOPE]) is None
    (tmp_path / cache.TOKEN_CACHE).write_text("[1, 2")
    assert find(tmp_path, [SCOPE]) is None
    (tmp_path / cache.TOKEN_CACHE).write_text(
        json.dumps({"AccessToken": {"k": {"expires_on": "x"}}})
    )
    assert find(tmp_path, [SCOPE]) is None


def test_read_document_sets_aside_corrupt_files(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    assert cache.read_document(str(path), cache.msal_shaped) is None
    path.write_bytes(b"\xff\xfe not json")
    assert cache.read_document(str(path), cache.msal_shaped) is None
    assert not path.exists()
    assert len(list(tmp_path.glob("c.json.corrupt-*"))) == 1
    path.write_text("{}")
    assert cache.read_document(str(path), cache.msal_shaped) == "{}"


@pytest.mark.parametrize(
    "text",
    ['{"AccessToken": [', "[]", '{"AccessToken": []}', '{"AccessToken": {"k": 5}}', "[" * 50000],
)
def test_json_msal_would_choke_on_is_set_aside_once(tmp_path: Path, text: str) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    path = directory / cache.TOKEN_CACHE
    path.write_text(text)
    assert cache.read_document(str(path), cache.msal_shaped) is None
    assert [p.name.split("-")[0] for p in directory.iterdir()] == [f"{cache.TOKEN_CACHE}.corrupt"]
    assert cache.read_document(str(path), cache.msal_shaped) is None  # nothing left to set aside
    assert len(list(directory.iterdir())) == 1


def test_environment_of() -> None:
    assert cache.environment_of("https://LOGIN.microsoftonline.us") == "login.microsoftonline.us"
    assert cache.environment_of("https://127.0.0.1:4443/") == "127.0.0.1"
