"""Entra's AADSTS error codes in words: what went wrong and what to change.

Shared by every path that talks to Entra (``token``, the credential classes, the az hook, the
managed-identity endpoint), so it knows nothing of MSAL: it reads the OAuth error document Entra
returns (``error``, ``error_description``, ``error_codes``) plus the claims of the assertion that was
presented and the issuer the source's tokens carry (Google's, GitHub's, a cluster's). Standard
library only.

An audience refusal for a token requested with a non-default ``--audience`` is nearly always that
setting's fault, not the app registration's: the advice then starts with the setting, naming where
it came from.
"""

from __future__ import annotations

from .. import TYPE_CHECKING
from ..errors import ExchangeError
from ..options import BY_DEST, DEFAULT_AUDIENCE

if TYPE_CHECKING:
    from collections.abc import Mapping

_FIC_FIX = (
    "add or fix a federated credential on the app registration with exactly the values above "
    "(case matters; for Google the subject is the service account's numeric unique ID, not its "
    "email); `azfed-helper doctor` prints the command"
)

# code -> (what it means, what to change)
CODES: dict[int, tuple[str, str]] = {
    700024: (
        "the ID token was outside its valid time range (expired, or the clock is off)",
        "keep the token file fresh (run `azfed-helper write` on a timer or the daemon) and check "
        "this machine's clock",
    ),
    70021: (
        "no federated credential on the app registration matches the assertion",
        _FIC_FIX + "; a credential added in the last few minutes may still be propagating",
    ),
    700211: ("no federated credential on the app registration has this issuer", _FIC_FIX),
    700212: ("no federated credential on the app registration has this audience", _FIC_FIX),
    700213: ("no federated credential on the app registration has this subject", _FIC_FIX),
    7002137: (
        "no federated credential on the app registration matches the assertion (case-sensitive)",
        _FIC_FIX,
    ),
    7002138: (
        "no federated credential on the app registration has this subject (case-sensitive)",
        _FIC_FIX,
    ),
    70023: (
        "the assertion's lifetime is invalid (longer than 25 hours, or 'iat' missing)",
        "use an ID token as its issuer issued it (with 'iat' and 'exp'); do not mint your own",
    ),
    700016: (
        "the application (client id) was not found in this tenant",
        f"check {BY_DEST['client_id'].where()} (the app registration's Application (client) ID) "
        f"and that {BY_DEST['tenant_id'].env} names the tenant that owns it",
    ),
    90002: (
        "the tenant was not found",
        f"check {BY_DEST['tenant_id'].where()}, and {BY_DEST['authority_host'].env} for sovereign "
        "clouds "
        "(https://login.microsoftonline.us, https://login.chinacloudapi.cn)",
    ),
    7000218: (
        "the request carried no client assertion (an empty token file?)",
        "make sure the token file holds an ID token: `azfed-helper write`, `azfed-helper status`",
    ),
    7000215: (
        "a client secret was presented instead of the federated assertion",
        "unset AZURE_CLIENT_SECRET (DefaultAzureCredential prefers it over the token file) or fix "
        "the secret",
    ),
    50027: (
        "the assertion is not a valid JWT",
        "make sure the token file holds exactly one ID token, nothing else",
    ),
    700027: (
        "the assertion's signature could not be validated",
        "present a genuine ID token of the issuer; one re-encoded, truncated or minted elsewhere "
        "fails",
    ),
    90061: (
        "Entra could not reach the issuer's OIDC discovery document or keys",
        "a transient problem on Entra's side reaching the issuer (accounts.google.com for Google): "
        "retry later; for your own issuer, its discovery document and keys must be public",
    ),
}
_DEFAULT = (
    "Entra refused the token request",
    "see the error above and https://learn.microsoft.com/entra/identity-platform/reference-error-codes",
)
FIC_MISMATCH = frozenset({70021, 700211, 700212, 700213, 7002137, 7002138})
# Refusals that the assertion's audience can cause: 700212 names it; the generic forms may.
AUDIENCE_MISMATCH = frozenset({700212, 70021, 7002137})
# Refusals about what was asked for (an unknown resource or scope), not about our credential.
SCOPE_ERRORS = frozenset({70011, 500011, 1002012})


class EntraError(ExchangeError):
    """Entra answered with an error; ``code`` is its AADSTS number (None when it gave none)."""

    def __init__(self, message: str, hint: str | None = None, code: int | None = None) -> None:
        super().__init__(message, hint)
        self.code = code


def code_of(error: Mapping[str, object]) -> int | None:
    """The AADSTS code of an error document: ``error_codes[0]``, else parsed from the text."""
    codes = error.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    description = str(error.get("error_description") or "")
    start = description.find("AADSTS")
    digits = ""
    for char in description[start + 6 :] if start >= 0 else "":
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


def _entra_said(error: Mapping[str, object]) -> str:
    """Entra's own first line plus its correlation id (what Microsoft support asks for)."""
    lines = str(error.get("error_description") or error.get("error") or "").splitlines()
    said = lines[0].strip() if lines else "no description"
    for line in lines[1:]:
        if line.strip().startswith("Correlation ID:"):
            said += f" ({line.strip()})"
    return said


def _claim(claims: Mapping[str, object] | None, name: str) -> str:
    value = (claims or {}).get(name)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return "?" if value is None else str(value)


def _audience_setting(origin: str | None) -> tuple[str, str]:
    """Where the audience came from (from ``Settings.origins``) and how to stop setting it."""
    option = BY_DEST["audience"]
    if origin == "flag":
        return option.flag, f"drop {option.flag}"
    if origin and origin.startswith("env "):
        name = origin[4:]
        return name, f"unset {name}"
    if origin and origin.startswith("config "):
        return f"'{option.name}' in the {origin}", f"remove '{option.name}' from the config file"
    return option.where(), f"stop setting {option.where()}"


def _audience_advice(
    code: int | None, aud: str, origin: str | None, issuer: str, subject: str
) -> tuple[str, str] | None:
    """For a non-default audience that Entra refused: a line for the message and the hint."""
    if code not in AUDIENCE_MISMATCH or aud in ("?", DEFAULT_AUDIENCE):
        return None
    where, drop = _audience_setting(origin)
    line = f"the audience {aud} is not the default {DEFAULT_AUDIENCE}; it was set by {where}"
    hint = (
        f"{drop} (the token then carries {DEFAULT_AUDIENCE}, the audience federated credentials "
        f"use by default) or set it to the audience the app's federated credential lists; only "
        f"if that credential is meant to accept {aud}, add {aud} to its audiences"
    )
    if subject != "?":
        hint += f" (issuer {issuer}, subject {subject})"
    return line, hint


def explain(
    error: Mapping[str, object],
    claims: Mapping[str, object] | None = None,
    audience: str | None = None,
    audience_origin: str | None = None,
    issuer: str | None = None,
) -> EntraError:
    """Turn Entra's error document into an :class:`EntraError` with the meaning and the fix.

    ``claims`` are the decoded claims of the assertion that was presented (never the token);
    for federated-credential mismatches they are shown next to what the app registration needs.
    ``audience`` is the configured audience and ``audience_origin`` where it came from (an entry
    of ``Settings.origins``): a refused non-default audience is blamed on that setting first.
    ``issuer`` is the one the source's tokens carry (``sources.expected_issuer``); None: the
    presented token's.
    """
    code = code_of(error)
    meaning, fix = CODES.get(code, _DEFAULT) if code is not None else _DEFAULT
    label = f"AADSTS{code}" if code is not None else str(error.get("error") or "error")
    message = (
        f"Entra refused the token request ({label}): {meaning}\n  Entra said: {_entra_said(error)}"
    )
    if code in FIC_MISMATCH or code == 700024:
        message += (
            f"\n  presented assertion: iss {_claim(claims, 'iss')}, sub {_claim(claims, 'sub')}, "
            f"aud {_claim(claims, 'aud')}, exp {_claim(claims, 'exp')}"
        )
    presented = _claim(claims, "aud")
    aud = presented if presented != "?" else (audience or "?")
    needed_issuer = issuer or _claim(claims, "iss")
    advice = _audience_advice(code, aud, audience_origin, needed_issuer, _claim(claims, "sub"))
    if advice is not None:
        line, fix = advice
        message += f"\n  {line}"
    elif code in FIC_MISMATCH:
        message += (
            f"\n  the app registration needs: issuer {needed_issuer}, subject "
            f"{_claim(claims, 'sub')}, audience {audience or presented}"
        )
    return EntraError(message, fix, code)
