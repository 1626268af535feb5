"""State shared by the Google and Entra fakes: identities, keys, issued tokens, counters.

Keeping it in one object lets a test change a lifetime or a federated credential on a
running emulator and see the next request honour it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .issuers import GitHubActions, KubernetesIssuer
from .keys import SigningKey
from .server import Reply, json_reply

GOOGLE_ISSUER = "https://accounts.google.com"
AZURE_AUDIENCE = "api://AzureADTokenExchange"
COUNTER_KEYS = (
    "metadata.ping",
    "metadata.identity",
    "metadata.token",
    "metadata.other",
    "google.token",
    "sts.token",
    "iam.generateIdToken",
    "iam.generateAccessToken",
    "jwks",
    "entra.discovery",
    "entra.token",
    "arm",
    "github.token",
    "github.discovery",
    "kubernetes.discovery",
)
_ID_NAMESPACE = uuid.UUID("6c1f3b0e-2f6a-4d8e-9a51-0d3c5a7e9b21")


def stable_guid(name: str) -> str:
    """A GUID derived from ``name``, so every run shows the same realistic ids."""
    return str(uuid.uuid5(_ID_NAMESPACE, name))


def numeric_id(email: str) -> str:
    """A stable 21-digit unique id for an account, like Google's service-account ``sub``."""
    digest = int.from_bytes(hashlib.sha256(email.lower().encode("utf-8")).digest()[:16], "big")
    return str(100000000000000000000 + digest % 900000000000000000000)


@dataclass
class FederatedCredential:
    """One federated identity credential on the emulated Entra app registration.

    Matching is exact and case-sensitive, as in Entra.
    """

    issuer: str
    subject: str
    audiences: list[str] = field(default_factory=lambda: [AZURE_AUDIENCE])
    name: str = "google-service-account"


@dataclass
class Subscription:
    """One Azure subscription ARM lists for the emulated tenant (``az login`` selects from these)."""

    subscription_id: str
    display_name: str


@dataclass(frozen=True)
class Fault:
    """A queued injected failure for one endpoint key."""

    status: int
    body: Mapping[str, Any] | str | None

    def reply(self, key: str) -> Reply:
        if isinstance(self.body, str):
            return Reply(self.status, self.body.encode("utf-8"))
        document = self.body or {
            "error": "emulator_injected_failure",
            "error_description": f"Injected HTTP {self.status} for {key}.",
        }
        return json_reply(self.status, document)


@dataclass(frozen=True)
class Grant:
    """Who a Google access token issued by the emulator stands for, and until when."""

    principal: str
    expires_at: int


class EmulatorState:
    """Identities, keys and bookkeeping; :class:`Emulator` adds the servers around it."""

    google_url = ""
    authority_host = ""
    issuers_url = ""

    def __init__(
        self,
        id_token_lifetime: int = 3600,
        access_token_lifetime: int = 3600,
        tenant_id: str | None = None,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.id_token_lifetime = id_token_lifetime
        self.access_token_lifetime = access_token_lifetime
        self.tenant_id = tenant_id or stable_guid("tenant")
        self.client_id = client_id or stable_guid("client")
        self.clock = clock
        self.project_id = "emulated-project"
        self.project_number = "123456789012"
        self.service_account_email = f"azfed-test@{self.project_id}.iam.gserviceaccount.com"
        self.service_account_id = numeric_id(self.service_account_email)
        self.federated_credentials = [
            FederatedCredential(GOOGLE_ISSUER, self.service_account_id, [AZURE_AUDIENCE])
        ]
        self.subscriptions: list[Subscription] = []
        self.counts: Counter[str] = Counter()
        self.google_key = SigningKey.generate()
        self.entra_key = SigningKey.generate()
        self.github = GitHubActions(self.now)
        self.kubernetes = KubernetesIssuer(self.now)
        self._lock = threading.Lock()
        self._faults: dict[str, list[Fault]] = {}
        self._sa_keys: dict[str, tuple[str, bytes]] = {}
        self._refresh_tokens: dict[str, str] = {}
        self._access_tokens: dict[str, Grant] = {}

    @property
    def token_uri(self) -> str:
        return self.google_url + "/token"

    def now(self) -> int:
        """Current time in whole seconds from the injectable clock."""
        return int(self.clock())

    # -- counters and fault injection -------------------------------------------------

    def record(self, key: str) -> Fault | None:
        """Count a request to ``key`` and pop the fault queued for it, if any."""
        with self._lock:
            self.counts[key] += 1
            queue = self._faults.get(key)
            return queue.pop(0) if queue else None

    def reset_counts(self) -> None:
        """Zero every counter (the Counter object itself stays the same)."""
        with self._lock:
            self.counts.clear()

    def fail_next(
        self, key: str, status: int, count: int = 1, body: Mapping[str, Any] | str | None = None
    ) -> None:
        """Answer the next ``count`` requests to ``key`` with ``status`` and a JSON error body."""
        if key not in COUNTER_KEYS:
            raise ValueError(f"unknown endpoint key {key!r}; expected one of {COUNTER_KEYS}")
        with self._lock:
            self._faults.setdefault(key, []).extend([Fault(status, body)] * count)

    # -- federated credentials for each issuer ----------------------------------------

    def signing_key_for(self, issuer: object) -> SigningKey | None:
        """The key that signs tokens of ``issuer``, as Entra would find it from its discovery."""
        if issuer == GOOGLE_ISSUER:
            return self.google_key
        for known in (self.github, self.kubernetes):
            if issuer == known.issuer:
                return known.key
        return None

    def add_github_actions_credential(self, subject: str | None = None) -> FederatedCredential:
        """Trust the emulated GitHub Actions job (default: its current ``sub``) on the app."""
        credential = FederatedCredential(
            self.github.issuer, subject or self.github.subject, name="github-actions"
        )
        self.federated_credentials.append(credential)
        return credential

    def add_kubernetes_credential(
        self, namespace: str | None = None, service_account: str | None = None
    ) -> FederatedCredential:
        """Trust one service account of the emulated cluster (default: its default one)."""
        subject = self.kubernetes.subject_for(namespace, service_account)
        credential = FederatedCredential(self.kubernetes.issuer, subject, name="kubernetes")
        self.federated_credentials.append(credential)
        return credential

    # -- Google identities --------------------------------------------------------------

    def google_id_token(
        self,
        audience: str,
        *,
        email: str | None = None,
        lifetime: int | None = None,
        issued_at: float | None = None,
        full: bool = False,
        include_email: bool = True,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """Mint an ID token as Google would for ``email`` (default: the emulated SA)."""
        email = email or self.service_account_email
        iat = int(issued_at if issued_at is not None else self.now())
        sub = numeric_id(email)
        claims: dict[str, Any] = {
            "aud": audience,
            "azp": sub,
            "exp": iat + int(self.id_token_lifetime if lifetime is None else lifetime),
            "iat": iat,
            "iss": GOOGLE_ISSUER,
            "sub": sub,
        }
        if include_email:
            claims.update(email=email, email_verified=True)
        if full:
            claims["google"] = {"compute_engine": self.instance_claims(iat)}
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return self.google_key.sign(claims)

    def instance_claims(self, now: int) -> dict[str, Any]:
        """The ``google.compute_engine`` block that ``format=full`` adds (and leaks)."""
        return {
            "instance_creation_timestamp": now - 86400,
            "instance_id": "4242424242424242424",
            "instance_name": "azfed-emulated-vm",
            "project_id": self.project_id,
            "project_number": int(self.project_number),
            "zone": "us-central1-a",
        }

    def issue_access_token(self, principal: str, lifetime: int | None = None) -> tuple[str, int]:
        """Issue an opaque Google access token; returns ``(token, expires_in)``."""
        expires_in = int(self.access_token_lifetime if lifetime is None else lifetime)
        token = "ya29.emulated." + secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[token] = Grant(principal, self.now() + expires_in)
        return token, expires_in

    def access_token_grant(self, token: str | None) -> Grant | None:
        """The grant behind a live access token this emulator issued, else ``None``."""
        with self._lock:
            grant = self._access_tokens.get(token or "")
        return grant if grant is not None and grant.expires_at > self.now() else None

    def register_service_account_key(self, kid: str, email: str, public_pem: bytes) -> None:
        with self._lock:
            self._sa_keys[kid] = (email, public_pem)

    def service_account_key(self, kid: str) -> tuple[str, bytes] | None:
        """``(email, public PEM)`` for a key written by ``write_service_account_key``."""
        with self._lock:
            return self._sa_keys.get(kid)

    def register_refresh_token(self, refresh_token: str, principal: str) -> None:
        with self._lock:
            self._refresh_tokens[refresh_token] = principal

    def refresh_token_principal(self, refresh_token: str) -> str | None:
        with self._lock:
            return self._refresh_tokens.get(refresh_token)
