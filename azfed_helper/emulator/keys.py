"""RSA signing keys and JWT helpers built on google-auth's own crypto.

Using google-auth's signer and verifier (rather than a second JWT library) means the
emulator signs and checks tokens exactly the way the clients under test do.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

Claims = dict[str, Any]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _uint_b64(value: int) -> str:
    """Encode an RSA integer the way JWKS wants it: big-endian, unpadded base64url."""
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


@dataclass(frozen=True)
class SigningKey:
    """One RSA key pair with its key id, ready to sign JWTs and publish as a JWK."""

    kid: str
    private_pem: bytes
    public_pem: bytes
    jwk: Mapping[str, str]

    @classmethod
    def generate(cls, kid: str | None = None) -> SigningKey:
        """Create a fresh 2048-bit key; keys never leave the emulator's process or files."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = kid or secrets.token_hex(20)
        numbers = key.public_key().public_numbers()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        jwk = {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": _uint_b64(numbers.n),
            "e": _uint_b64(numbers.e),
        }
        return cls(kid=kid, private_pem=private_pem, public_pem=public_pem, jwk=jwk)

    def sign(self, claims: Mapping[str, Any], header: Mapping[str, str] | None = None) -> str:
        """Sign ``claims`` as an RS256 JWT whose header names this key's ``kid``."""
        signer = crypt.RSASigner.from_string(self.private_pem, key_id=self.kid)  # type: ignore[no-untyped-call]
        token: bytes = jwt.encode(signer, dict(claims), header=dict(header or {}))  # type: ignore[no-untyped-call]
        return token.decode("ascii")


def jwks(keys: Iterable[SigningKey]) -> dict[str, list[dict[str, str]]]:
    """A JWK Set document, as served by Google's and Entra's key endpoints."""
    return {"keys": [dict(key.jwk) for key in keys]}


class MalformedTokenError(ValueError):
    """The text is not a decodable compact JWS (three base64url JSON segments)."""


def parse_jwt(token: str) -> tuple[Claims, Claims]:
    """Return ``(header, claims)`` without verifying anything.

    google-auth's decoder is used, so "decodable" means what it means to the clients.
    """
    if token.count(".") != 2:
        raise MalformedTokenError("a JWT has three segments")
    try:
        header = jwt.decode_header(token)  # type: ignore[no-untyped-call]
        claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise MalformedTokenError(str(exc)) from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise MalformedTokenError("header and payload must be JSON objects")
    return header, claims


def signature_is_valid(token: str, public_pem: bytes) -> bool:
    """Check an RS256 signature only, so callers can apply their own clock to the claims."""
    signed, _, signature = token.rpartition(".")
    try:
        valid = crypt.verify_signature(  # type: ignore[no-untyped-call]
            signed.encode("ascii"), _b64url_decode(signature), public_pem
        )
    except (ValueError, binascii.Error):
        return False
    return bool(valid)


def verify_jwt(token: str, certs: Mapping[str, bytes], clock_skew: int) -> Claims:
    """google-auth's full check (signature by kid, iat/exp on the real clock).

    Raises ``ValueError`` (google-auth's errors subclass it) when the token is not valid.
    """
    claims = jwt.decode(token, certs=dict(certs), clock_skew_in_seconds=clock_skew)  # type: ignore[no-untyped-call]
    if not isinstance(claims, dict):
        raise MalformedTokenError("payload must be a JSON object")
    return claims


def pem_by_kid(keys: Iterable[SigningKey]) -> dict[str, str]:
    """Google's legacy ``/oauth2/v1/certs`` shape: key id to PEM public key."""
    return {key.kid: key.public_pem.decode("ascii") for key in keys}
