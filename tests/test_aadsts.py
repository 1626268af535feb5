"""The AADSTS table and the message built from Entra's error document; the audience advice also
through `token` against the emulator's Entra."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal.entra import aadsts
from azfed_helper._internal.errors import ExchangeError
from azfed_helper._internal.options import BY_DEST, DEFAULT_AUDIENCE
from azfed_helper.emulator import FederatedCredential

from .conftest import run_cli

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


AUDIENCE = BY_DEST["audience"]
WRONG = {**CLAIMS, "aud": "api://wrong"}


@pytest.mark.parametrize("code", sorted(aadsts.AUDIENCE_MISMATCH))
@pytest.mark.parametrize(
    ("origin", "where", "drop"),
    [
        ("flag", AUDIENCE.flag, f"drop {AUDIENCE.flag} "),
        (f"env {AUDIENCE.env}", AUDIENCE.env, f"unset {AUDIENCE.env} "),
        ("config /etc/a.toml profile p", "'audience' in the config /etc/a.toml profile p",
         "remove 'audience' from the config file"),
        (None, AUDIENCE.where(), f"stop setting {AUDIENCE.where()}"),
    ],
)  # fmt: skip
def test_a_refused_non_default_audience_points_at_the_setting_first(
    code: int, origin: str | None, where: str, drop: str
) -> None:
    error = aadsts.explain(document(code), WRONG, "api://wrong", origin)
    assert error.code == code
    assert (
        f"the audience api://wrong is not the default {DEFAULT_AUDIENCE}; it was set by {where}"
        in (error.message)
    )
    assert "app registration needs" not in error.message  # not "register api://wrong"
    hint = error.hint or ""
    assert hint.startswith(drop)
    assert hint.index(drop) < hint.index("add api://wrong to its audiences")
    assert "subject 1234567890" in hint


@pytest.mark.parametrize("code", [700212, 70021, 7002137])
def test_the_default_audience_keeps_the_app_registration_advice(code: int) -> None:
    error = aadsts.explain(document(code), CLAIMS, DEFAULT_AUDIENCE, "default")
    assert error.hint == aadsts.CODES[code][1]
    assert f"audience {DEFAULT_AUDIENCE}" in error.message.splitlines()[-1]


def test_other_mismatches_and_codes_ignore_the_audience() -> None:
    for code in (700211, 700213, 7002138, 700024):
        error = aadsts.explain(document(code), WRONG, "api://wrong", "flag")
        assert error.hint == aadsts.CODES[code][1], code
        assert "not the default" not in error.message


def test_without_claims_the_configured_audience_decides() -> None:
    """doctor's exchange and the az hook may not know the presented claims."""
    error = aadsts.explain(document(700212), None, "api://wrong", "flag")
    assert (error.hint or "").startswith(f"drop {AUDIENCE.flag} ")
    assert "subject" not in (error.hint or "")
    assert aadsts.explain(document(700212), None, None).hint == aadsts.CODES[700212][1]


def token_refused(
    emulator: Any, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> list[str]:
    done = run_cli(
        "token", "--resource", "https://management.azure.com", *args,
        env={**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache"), **(env or {})},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "eyJ" not in done.stderr + done.stdout
    return done.stderr.splitlines()


def test_token_with_a_wrong_audience_flag_is_told_to_drop_it(emulator: Any, tmp_path: Path) -> None:
    """The emulator's federated credential has the default audience, as a real one usually does."""
    lines = token_refused(emulator, tmp_path, AUDIENCE.flag, "api://wrong")
    assert "(AADSTS700212)" in lines[0]
    assert f"it was set by {AUDIENCE.flag}" in lines[-2]
    assert lines[-1].startswith(
        f"  hint: drop {AUDIENCE.flag} (the token then carries {DEFAULT_AUDIENCE}"
    )
    emulator.federated_credentials.clear()  # the generic form, as Entra gives it for some apps
    lines = token_refused(emulator, tmp_path, AUDIENCE.flag, "api://wrong")
    assert "(AADSTS70021)" in lines[0]
    assert lines[-1].startswith(f"  hint: drop {AUDIENCE.flag} ")


def test_token_names_where_the_audience_came_from(emulator: Any, tmp_path: Path) -> None:
    lines = token_refused(emulator, tmp_path, env={AUDIENCE.env: "api://wrong"})
    assert f"it was set by {AUDIENCE.env}" in lines[-2]
    assert lines[-1].startswith(f"  hint: unset {AUDIENCE.env} ")
    config = tmp_path / "config.toml"
    config.write_text('audience = "api://wrong"\n')
    lines = token_refused(emulator, tmp_path, BY_DEST["config"].flag, str(config))
    assert f"it was set by 'audience' in the config {config}" in lines[-2]
    assert lines[-1].startswith("  hint: remove 'audience' from the config file ")


def test_default_audience_refused_still_means_the_app_registration(
    emulator: Any, tmp_path: Path
) -> None:
    emulator.federated_credentials[:] = [
        FederatedCredential(
            "https://accounts.google.com", emulator.service_account_id, ["api://other"]
        )
    ]
    lines = token_refused(emulator, tmp_path)
    assert "(AADSTS700212)" in lines[0]
    assert (
        f"needs: issuer https://accounts.google.com, subject {emulator.service_account_id}, audience {DEFAULT_AUDIENCE}"
        in lines[-2]
    )
    assert lines[-1] == f"  hint: {aadsts.CODES[700212][1]}"
