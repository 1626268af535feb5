"""The ID token (the assertion) as a value: unverified decode and the checks Entra will make.

We never verify the signature here (Entra does, against the issuer's JWKS); we check the claims
that decide whether Entra will accept the token, so a bad token is refused before it reaches the
file or Entra. Which issuer to expect depends on the source (``sources.expected_issuer``).
Standard library only: this module sits on the no-op ``write`` path.
"""

from __future__ import annotations

import binascii

from .errors import InvalidTokenError
from .jsonfast import loads

GOOGLE_ISSUER = "https://accounts.google.com"
# Entra refuses assertions whose lifetime (exp - iat) exceeds 25 hours (AADSTS70023).
MAX_LIFETIME = 25 * 3600
# iat and exp must be times a real token can carry: 2000-01-01 to 9999-12-31 (UTC). Anything else
# (1e400 parses as infinity, 10**400 overflows a float) is a forged or broken token, refused.
EARLIEST = 946_684_800
LATEST = 253_402_300_799
# How far in the future iat may be: clocks differ a little, never by more.
MAX_CLOCK_SKEW = 300
# Entra has no documented clock-skew allowance: a token we could not refresh is still presented
# only while it has this much life left (or half its lifetime, for shorter-lived tokens).
MIN_PRESENTED_LIFETIME = 300
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_NOT_A_JWT_HINT = "an ID token is a JWT (header.claims.signature); check the token source"


class IdToken:
    """An immutable decoded JWT: the raw compact form plus its claims."""

    __slots__ = ("claims", "raw")

    raw: str
    claims: dict[str, object]

    def __init__(self, raw: str, claims: dict[str, object]) -> None:
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "claims", claims)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("IdToken is immutable")

    def __repr__(self) -> str:  # never show the token itself
        return f"IdToken(sub={self.claims.get('sub')!r}, exp={self.claims.get('exp')!r})"

    @property
    def expires_at(self) -> float:
        return _number(self.claims.get("exp"))

    @property
    def issued_at(self) -> float:
        return _number(self.claims.get("iat"))

    def remaining(self, now: float) -> float:
        """Seconds of life left at ``now`` (negative once expired)."""
        return self.expires_at - now

    def due_margin(self, margin: float) -> float:
        """The life left at which this token is due for replacement: ``margin``, or half the
        token's lifetime when that is less. A 1-hour Google token keeps a 20-minute margin; a
        5-minute GitHub token is replaced with 2.5 minutes left, neither presented stale nor
        fetched again on every call."""
        lifetime = self.expires_at - self.issued_at
        return min(margin, lifetime / 2) if lifetime > 0 else margin

    def fresh(self, now: float, margin: float) -> bool:
        """More life left than :meth:`due_margin` of ``margin``."""
        return self.remaining(now) > self.due_margin(margin)

    def summary(self) -> dict[str, object]:
        """The claims worth showing a person (never the token); times out of range as text, so
        the summary stays printable and valid JSON (which has no infinity)."""
        keys = ("iss", "sub", "aud", "email", "iat", "exp")
        shown = {key: self.claims[key] for key in keys if key in self.claims}
        for key in ("iat", "exp"):
            if key in shown and not _number(shown[key]):
                shown[key] = _describe(shown[key])
        return shown


def _number(value: object) -> float:
    """A time claim as a float; 0.0 when it is missing, not a number, or not a sane time."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    if isinstance(value, int) and not EARLIEST <= value <= LATEST:
        return 0.0  # also keeps float() from overflowing on 10**400
    number = float(value)
    return number if EARLIEST <= number <= LATEST else 0.0  # NaN and infinities fail too


def _describe(value: object) -> str:
    """A claim value for a message, short even for 10**400."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "a number far too large for a time"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _b64decode(segment: str) -> bytes:
    padded = segment.encode("ascii") + b"=" * (-len(segment) % 4)
    return binascii.a2b_base64(padded.translate(_URLSAFE))


def decode(raw: str | bytes) -> IdToken:
    """Decode a compact JWT without verifying it; raise InvalidTokenError if it is not one."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    parts = text.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise InvalidTokenError(
            "the token is not a JWT (expected three dot-separated parts)",
            _NOT_A_JWT_HINT,
            claim="format",
        )
    try:
        header = loads(_b64decode(parts[0]))
        claims = loads(_b64decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidTokenError(
            f"the token is not a valid JWT: {exc}", _NOT_A_JWT_HINT, claim="format"
        ) from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidTokenError(
            "the token's header or claims are not JSON objects", _NOT_A_JWT_HINT, claim="format"
        )
    return IdToken(text, claims)


def audiences(token: IdToken) -> list[str]:
    aud = token.claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list):
        return [item for item in aud if isinstance(item, str)]
    return []


def validate(
    token: IdToken,
    audience: str,
    now: float,
    min_remaining: float = 0,
    *,
    issuer: str | None,
) -> IdToken:
    """Check the claims Entra checks; raise InvalidTokenError naming the first claim that fails.

    ``issuer`` is the exact ``iss`` to expect; None accepts any https issuer (Entra trusts no
    other kind).
    """
    claims = token.claims
    _check_issuer(claims.get("iss"), issuer)
    if audience not in audiences(token):
        raise InvalidTokenError(
            f"claim 'aud' is {claims.get('aud')!r}, expected {audience!r}",
            f"request the token for the audience the Azure federated credential names ({_where('audience')})",
            claim="aud",
        )
    if not isinstance(claims.get("sub"), str) or not claims.get("sub"):
        raise InvalidTokenError(
            "claim 'sub' is missing", "Entra matches the federated credential on sub", claim="sub"
        )
    for name in ("iat", "exp"):
        _check_time(claims, name)
    if token.issued_at > now + MAX_CLOCK_SKEW:
        raise InvalidTokenError(
            f"claim 'iat' is {int(token.issued_at - now)}s in the future (iat "
            f"{int(token.issued_at)}, now {int(now)})",
            "check this machine's clock (NTP); a token from the future is forged or broken",
            claim="iat",
        )
    if token.expires_at - token.issued_at > MAX_LIFETIME:
        raise InvalidTokenError(
            "the token's lifetime (exp - iat) exceeds 25 hours; Entra refuses it (AADSTS70023)",
            "check the token source: ID tokens live an hour or less (Google's one hour)",
            claim="exp",
        )
    if token.remaining(now) <= min_remaining:
        state = "expired" if token.remaining(now) <= 0 else "about to expire"
        raise InvalidTokenError(
            f"the token is {state} (claim 'exp' is {int(token.expires_at)}, now is {int(now)})",
            "check the machine's clock; a source that hands out stale tokens is retried later",
            claim="exp",
        )
    return token


def _check_issuer(iss: object, issuer: str | None) -> None:
    if issuer is not None and iss != issuer:
        raise InvalidTokenError(
            f"claim 'iss' is {_describe(iss)}, expected {issuer!r}",
            f"the token must come from the issuer the source names ({_where('source')}) or the one "
            f"{_where('issuer')} pins; check both",
            claim="iss",
        )
    if issuer is None and not (isinstance(iss, str) and iss.startswith("https://") and iss[8:]):
        raise InvalidTokenError(
            f"claim 'iss' is {_describe(iss)}, not an https URL",
            "Entra trusts only https issuers; check the token source",
            claim="iss",
        )


def _check_time(claims: dict[str, object], name: str) -> None:
    value = claims.get(name)
    if _number(value):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        message = f"claim '{name}' is missing or not a number"
    else:
        message = (
            f"claim '{name}' is {_describe(value)}, not a time between the years 2000 and 9999"
        )
    raise InvalidTokenError(
        message, "Entra needs both iat and exp as epoch seconds (AADSTS70023)", claim=name
    )


def _where(setting: str) -> str:
    """How a user gives ``setting``, for a hint (the option table imports this module, so it is
    imported here, on the error path only)."""
    from .options import BY_DEST

    return BY_DEST[setting].where()
