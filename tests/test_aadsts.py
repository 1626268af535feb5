"""The AADSTS table and the message built from Entra's error document (no network)."""

from __future__ import annotations

import pytest

from azfed_helper._internal.entra import aadsts
from azfed_helper._internal.errors import ExchangeError

# Every code FACTS.md lists, the codes users actually hit.
FACTS_CODES = [700024, 70021, 700211, 700212, 700213, 7002137, 7002138, 70023, 700016, 90002,
               7000218, 7000215, 50027, 700027, 90061]  # fmt: skip
CLAIMS = {
    "iss": "https://accounts.google.com",
    "sub": "1234567890",
    "aud": "api://AzureADTokenExchange",
    "exp": 1,
}


def document(code: int) -> dict[str, object]:
    return {
        "error": "invalid_client",
        "error_description": f"AADSTS{code}: Something.\r\nTrace ID: t\r\nCorrelation ID: c-1\r\nTimestamp: x",
        "error_codes": [code],
    }


def test_every_listed_code_has_a_meaning_and_a_fix() -> None:
    assert set(FACTS_CODES) <= set(aadsts.CODES)
    for code in FACTS_CODES:
        error = aadsts.explain(document(code), CLAIMS)
        assert isinstance(error, ExchangeError)
        assert error.code == code
        meaning, fix = aadsts.CODES[code]
        assert f"(AADSTS{code}): {meaning}" in error.message
        assert error.hint == fix
        assert "Correlation ID: c-1" in error.message


@pytest.mark.parametrize("code", sorted(aadsts.FIC_MISMATCH))
def test_mismatch_shows_the_presented_claims_and_the_required_credential(code: int) -> None:
    text = str(aadsts.explain(document(code), CLAIMS, audience="api://AzureADTokenExchange"))
    assert (
        "presented assertion: iss https://accounts.google.com, sub 1234567890, aud api://AzureADTokenExchange"
        in text
    )
    assert (
        "needs: issuer https://accounts.google.com, subject 1234567890, audience api://AzureADTokenExchange"
        in text
    )


def test_code_from_description_and_default() -> None:
    assert (
        aadsts.code_of(
            {"error_description": "AADSTS90061: Request to External OIDC endpoint failed."}
        )
        == 90061
    )
    assert aadsts.code_of({"error": "server_error"}) is None
    unknown = aadsts.explain({"error": "temporarily_unavailable", "error_description": "try later"})
    assert unknown.code is None
    assert "(temporarily_unavailable)" in unknown.message
    assert "reference-error-codes" in (unknown.hint or "")
    other = aadsts.explain(document(12345))
    assert "(AADSTS12345): Entra refused the token request" in other.message


def test_no_claims_is_not_an_error() -> None:
    text = str(aadsts.explain(document(700213)))
    assert "sub ?" in text
