from __future__ import annotations

import time

import pytest

from azfed_helper._internal import idtoken
from azfed_helper._internal.errors import InvalidTokenError

from .conftest import make_jwt

AUD = "api://AzureADTokenExchange"


def test_decode_reads_claims_and_hides_token_in_repr() -> None:
    raw = make_jwt(email="sa@example.iam.gserviceaccount.com")
    token = idtoken.decode(raw + "\n")
    assert token.raw == raw
    assert token.claims["email"] == "sa@example.iam.gserviceaccount.com"
    assert raw not in repr(token)
    assert token.summary()["aud"] == AUD


@pytest.mark.parametrize("raw", ["", "abc", "a.b", "!!!.???.x", "e30.bm90IGpzb24.x"])
def test_decode_rejects_non_jwt(raw: str) -> None:
    with pytest.raises(InvalidTokenError) as info:
        idtoken.decode(raw)
    assert info.value.claim == "format"


def test_token_is_immutable() -> None:
    token = idtoken.decode(make_jwt())
    with pytest.raises(AttributeError):
        token.raw = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("claims", "claim"),
    [
        ({"iss": "https://example.com"}, "iss"),
        ({"aud": "other"}, "aud"),
        ({"sub": None}, "sub"),
        ({"iat": None}, "iat"),
        ({"exp": None}, "exp"),
        ({"iat": 1000, "exp": 1000 + 26 * 3600}, "exp"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "exp"),
    ],
)
def test_validate_names_the_failing_claim(claims: dict[str, object], claim: str) -> None:
    token = idtoken.decode(make_jwt(**claims))
    with pytest.raises(InvalidTokenError) as info:
        idtoken.validate(token, AUD, time.time())
    assert info.value.claim == claim
    assert claim in str(info.value)


def test_validate_accepts_audience_list_and_margin() -> None:
    now = time.time()
    token = idtoken.decode(make_jwt(aud=[AUD, "x"]))
    assert idtoken.validate(token, AUD, now) is token
    with pytest.raises(InvalidTokenError, match="about to expire"):
        idtoken.validate(token, AUD, now, min_remaining=4000)
