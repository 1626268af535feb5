from __future__ import annotations

import json
import time

import pytest

from azfed_helper._internal import idtoken
from azfed_helper._internal.errors import InvalidTokenError

from .conftest import b64url, make_jwt

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
        ({"iat": int(time.time()), "exp": int(time.time()) + 26 * 3600}, "exp"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "exp"),
    ],
)
def test_validate_names_the_failing_claim(claims: dict[str, object], claim: str) -> None:
    token = idtoken.decode(make_jwt(**claims))
    with pytest.raises(InvalidTokenError) as info:
        idtoken.validate(token, AUD, time.time(), issuer=idtoken.GOOGLE_ISSUER)
    assert info.value.claim == claim
    assert claim in str(info.value)


def test_validate_accepts_audience_list_and_margin() -> None:
    now = time.time()
    token = idtoken.decode(make_jwt(aud=[AUD, "x"]))
    assert idtoken.validate(token, AUD, now, issuer=idtoken.GOOGLE_ISSUER) is token
    with pytest.raises(InvalidTokenError, match="about to expire"):
        idtoken.validate(token, AUD, now, min_remaining=4000, issuer=idtoken.GOOGLE_ISSUER)


def jwt_with_claims_text(times: str) -> str:
    """A JWT whose iat/exp are written as raw JSON text (1e400 is not something json.dumps makes)."""
    fixed = json.dumps({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1"})
    body = fixed[:-1] + ", " + times + "}"
    return f"{b64url(b'{}')}.{b64url(body.encode())}.{b64url(b'sig')}"


NOW = int(time.time())
DAY = 86400


@pytest.mark.parametrize(
    ("times", "claim", "words"),
    [
        # 10**400 overflowed float(): write crashed, the daemon exited 1 at start.
        (f'"iat": {NOW}, "exp": 1{"0" * 400}', "exp", "far too large"),
        # 1e400 parses as infinity: inf - inf is NaN, so the lifetime check passed, for ever.
        ('"iat": 1e400, "exp": 1e400', "iat", "not a time between the years 2000 and 9999"),
        # status --json called this "ok"
        (f'"iat": {NOW}, "exp": 1e20', "exp", "1e+20"),
        ('"iat": 1e20, "exp": 1.0000000000036e20', "iat", "1e+20"),
        (f'"iat": {NOW}, "exp": -1e400', "exp", "-inf"),
        (f'"iat": 946684799, "exp": {NOW + DAY}', "iat", "946684799"),
        # a day ahead: NOW is taken at collection, and a long suite runs this minutes later
        (f'"iat": {NOW + DAY}, "exp": {NOW + DAY + 3600}', "iat", "in the future"),
        (f'"iat": "{NOW}", "exp": {NOW + 3600}', "iat", "missing or not a number"),
        (f'"iat": true, "exp": {NOW + 3600}', "iat", "missing or not a number"),
    ],
)
def test_times_outside_reason_make_the_token_invalid(times: str, claim: str, words: str) -> None:
    token = idtoken.decode(jwt_with_claims_text(times))
    with pytest.raises(InvalidTokenError) as info:
        idtoken.validate(token, AUD, time.time(), issuer=idtoken.GOOGLE_ISSUER)
    assert info.value.claim == claim
    assert words in info.value.message and info.value.hint
    assert len(info.value.message) < 200
    # What status shows stays printable, and valid JSON (which has no infinity).
    shown = json.dumps(token.summary(), allow_nan=False)
    assert json.loads(shown)["sub"] == "1"
    assert int(token.remaining(time.time())) <= 0 or claim == "iat"


def test_small_clock_skew_is_accepted() -> None:
    now = time.time()
    token = idtoken.decode(make_jwt(iat=int(now) + 200, exp=int(now) + 3800))
    assert idtoken.validate(token, AUD, now, issuer=idtoken.GOOGLE_ISSUER) is token
