"""OIDC issuers other than Google: GitHub Actions and a Kubernetes cluster.

Entra trusts any OIDC issuer, so the emulator mints their tokens too, each with its own key,
JWKS and discovery document, with the claims the real issuers put in them. The tokens name the
real issuer (``https://token.actions.githubusercontent.com``), exactly as federated credentials
must; the documents that describe them are served by the emulator.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .keys import SigningKey

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GKE_ISSUER = (
    "https://container.googleapis.com/v1/projects/emulated-project/locations/us-central1/"
    "clusters/emulated"
)
GITHUB_API_VERSION = "2.0"
# GitHub's ID tokens say they are valid from 5 minutes before they were issued.
_GITHUB_NOT_BEFORE = 300
# The kubelet replaces a projected token at 80% of its lifetime, or after 24 hours.
ROTATE_FRACTION = 0.8
ROTATE_MAX_AGE = 24 * 3600

Clock = Callable[[], int]


def _apply(claims: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Override claims; ``None`` removes one (e.g. ``iat=None`` to provoke AADSTS70023)."""
    for name, value in extra.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class OidcIssuer:
    """An issuer URL with a signing key, made on first use (RSA generation is the slow part)."""

    def __init__(self, issuer: str, lifetime: int, now: Clock) -> None:
        self.issuer = issuer
        self.lifetime = lifetime
        self._now = now
        self._key: SigningKey | None = None
        self._lock = threading.Lock()

    @property
    def key(self) -> SigningKey:
        with self._lock:
            if self._key is None:
                self._key = SigningKey.generate()
            return self._key

    def _times(self, lifetime: int | None, issued_at: float | None) -> tuple[int, int]:
        iat = int(issued_at if issued_at is not None else self._now())
        return iat, iat + int(self.lifetime if lifetime is None else lifetime)

    def discovery(self, jwks_uri: str) -> dict[str, Any]:
        """The ``/.well-known/openid-configuration`` document, pointing at the emulated JWKS."""
        return {
            "issuer": self.issuer,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }


class GitHubActions(OidcIssuer):
    """The OIDC provider of a GitHub Actions job, and the runner's token request endpoint.

    Every attribute may be changed on a running emulator; the next token follows it. The
    subject is derived as GitHub derives its default: ``repo:OWNER/REPO:environment:ENV`` in
    a job with an environment, ``repo:OWNER/REPO:pull_request`` for pull requests, else
    ``repo:OWNER/REPO:ref:REF``.
    """

    def __init__(self, now: Clock, lifetime: int = 300) -> None:
        super().__init__(GITHUB_ISSUER, lifetime, now)
        self.repository = "emulated-org/emulated-repo"
        self.ref = "refs/heads/main"
        self.environment: str | None = None
        self.event_name = "push"
        self.actor = "emulated-user"
        self.workflow = "ci"
        self.run_id = "4242424242"
        self.run_number = "7"
        self.run_attempt = "1"
        self.sha = "0123456789abcdef0123456789abcdef01234567"
        plan, job = uuid.uuid4(), uuid.uuid4()
        # Where the runner's ACTIONS_ID_TOKEN_REQUEST_URL points (below the emulator's prefix).
        self.request_path = f"/_apis/distributedtask/hubs/Actions/plans/{plan}/jobs/{job}/idtoken"
        # ACTIONS_ID_TOKEN_REQUEST_TOKEN: the runner's bearer for the request endpoint.
        self.request_token = secrets.token_urlsafe(32)

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def subject(self) -> str:
        if self.environment:
            return f"repo:{self.repository}:environment:{self.environment}"
        if self.event_name == "pull_request":
            return f"repo:{self.repository}:pull_request"
        return f"repo:{self.repository}:ref:{self.ref}"

    @property
    def default_audience(self) -> str:
        """What GitHub puts in ``aud`` when the request names no audience: the owner's URL."""
        return f"https://github.com/{self.owner}"

    def mint(
        self,
        audience: str | None = None,
        *,
        lifetime: int | None = None,
        issued_at: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """An ID token as the runner's endpoint hands it out."""
        iat, exp = self._times(lifetime, issued_at)
        workflow_ref = f"{self.repository}/.github/workflows/{self.workflow}.yml@{self.ref}"
        claims: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "sub": self.subject,
            "aud": audience or self.default_audience,
            "ref": self.ref,
            "sha": self.sha,
            "repository": self.repository,
            "repository_owner": self.owner,
            "repository_visibility": "private",
            "run_id": self.run_id,
            "run_number": self.run_number,
            "run_attempt": self.run_attempt,
            "runner_environment": "github-hosted",
            "actor": self.actor,
            "workflow": self.workflow,
            "head_ref": "",
            "base_ref": "",
            "event_name": self.event_name,
            "ref_type": "tag" if self.ref.startswith("refs/tags/") else "branch",
            "workflow_ref": workflow_ref,
            "job_workflow_ref": workflow_ref,
            "iss": self.issuer,
            "nbf": iat - _GITHUB_NOT_BEFORE,
            "exp": exp,
            "iat": iat,
        }
        if self.environment:
            claims["environment"] = self.environment
        return self.key.sign(_apply(claims, extra_claims or {}), header={"typ": "JWT"})

    def discovery(self, jwks_uri: str) -> dict[str, Any]:
        document = super().discovery(jwks_uri)
        document["subject_types_supported"] = ["public", "pairwise"]
        document["scopes_supported"] = ["openid"]
        document["claims_supported"] = [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "sha", "repository",
            "repository_owner", "run_id", "run_number", "run_attempt", "actor", "workflow",
            "workflow_ref", "head_ref", "base_ref", "event_name", "ref_type", "environment",
            "job_workflow_ref", "repository_visibility", "runner_environment",
        ]  # fmt: skip
        return document


class KubernetesIssuer(OidcIssuer):
    """A cluster's service-account token issuer, as the kubelet's projected tokens show it."""

    def __init__(self, now: Clock, lifetime: int = 3600) -> None:
        super().__init__(GKE_ISSUER, lifetime, now)
        self.namespace = "default"
        self.service_account = "workload"
        self.pod = "workload-7d4b9c6f5-x2x9k"
        self.node = "gke-emulated-default-pool-1a2b3c4d-wxyz"

    def subject_for(self, namespace: str | None = None, service_account: str | None = None) -> str:
        namespace = namespace or self.namespace
        return f"system:serviceaccount:{namespace}:{service_account or self.service_account}"

    def mint(
        self,
        audiences: list[str],
        *,
        namespace: str | None = None,
        service_account: str | None = None,
        lifetime: int | None = None,
        issued_at: float | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A projected service-account token: ``aud`` is a list, as the API server writes it."""
        namespace = namespace or self.namespace
        account = service_account or self.service_account
        iat, exp = self._times(lifetime, issued_at)

        def named(kind: str, name: str) -> dict[str, str]:
            seed = f"{self.issuer}/{namespace}/{kind}/{name}"
            return {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, seed))}

        claims: dict[str, Any] = {
            "aud": list(audiences),
            "exp": exp,
            "iat": iat,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "node": named("node", self.node),
                "pod": named("pod", self.pod),
                "serviceaccount": named("serviceaccount", account),
            },
            "nbf": iat,
            "sub": self.subject_for(namespace, account),
        }
        return self.key.sign(_apply(claims, extra_claims or {}))
