"""The https server of the non-Google issuers: GitHub's token request endpoint, and discovery
and JWKS documents for GitHub Actions and the Kubernetes issuer."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from .issuers import GITHUB_API_VERSION, OidcIssuer
from .keys import jwks
from .server import Reply, Request, json_reply
from .state import EmulatorState

GITHUB_PREFIX = "/github"
KUBERNETES_PREFIX = "/kubernetes"
# Where each issuer publishes its keys: GitHub and the Kubernetes API server use these paths.
_GITHUB_JWKS = "/.well-known/jwks"
_KUBERNETES_JWKS = "/openid/v1/jwks"
_DISCOVERY = "/.well-known/openid-configuration"

Handler = Callable[[Request], Reply]


def _pipelines_error(status: int, message: str, type_name: str) -> Reply:
    """The error envelope of the Actions service behind ``ACTIONS_ID_TOKEN_REQUEST_URL``."""
    body = {
        "$id": "1",
        "innerException": None,
        "message": message,
        "typeName": f"Microsoft.TeamFoundation.Framework.Server.{type_name}",
        "typeKey": type_name,
        "errorCode": 0,
        "eventId": 3000,
    }
    return json_reply(status, body)


class IssuerApp:
    """Routes requests for the GitHub and Kubernetes issuers, counting each and applying faults."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Reply:
        route = self._route(request.path)
        if route is None:
            return json_reply(404, {"message": f"{request.path} is not emulated"})
        key, handler = route
        fault = self.state.record(key)
        return fault.reply(key) if fault else handler(request)

    def _route(self, path: str) -> tuple[str, Handler] | None:
        github, kubernetes = self.state.github, self.state.kubernetes
        routes: dict[str, tuple[str, Handler]] = {
            GITHUB_PREFIX + github.request_path: ("github.token", self._github_token),
            GITHUB_PREFIX + _DISCOVERY: (
                "github.discovery",
                self._discovery(github, GITHUB_PREFIX + _GITHUB_JWKS),
            ),
            GITHUB_PREFIX + _GITHUB_JWKS: ("github.discovery", self._keys(github)),
            KUBERNETES_PREFIX + _DISCOVERY: (
                "kubernetes.discovery",
                self._discovery(kubernetes, KUBERNETES_PREFIX + _KUBERNETES_JWKS),
            ),
            KUBERNETES_PREFIX + _KUBERNETES_JWKS: ("kubernetes.discovery", self._keys(kubernetes)),
        }
        return routes.get(path)

    def _discovery(self, issuer: OidcIssuer, jwks_path: str) -> Handler:
        return lambda _: json_reply(200, issuer.discovery(self.state.issuers_url + jwks_path))

    @staticmethod
    def _keys(issuer: OidcIssuer) -> Handler:
        return lambda _: json_reply(200, jwks([issuer.key]))

    def _github_token(self, request: Request) -> Reply:
        """``GET ACTIONS_ID_TOKEN_REQUEST_URL&audience=A`` with the runner's bearer token."""
        github = self.state.github
        if request.method != "GET":
            return _pipelines_error(
                405,
                "The requested resource does not support this method.",
                "MethodNotAllowedException",
            )
        bearer = request.bearer()
        if bearer is None:
            return _pipelines_error(
                401,
                "TF400813: The user is not authorized to access this resource.",
                "UnauthorizedRequestException",
            )
        if not hmac.compare_digest(bearer.encode("utf-8"), github.request_token.encode("utf-8")):
            return _pipelines_error(
                403,
                "The token presented is not valid for this job; it may belong to another job or have expired.",
                "InvalidTaskAgentJobTokenException",
            )
        version = request.query.get("api-version", "")
        if version != GITHUB_API_VERSION:
            return _pipelines_error(
                400,
                f"The requested REST API version of {version or '(none)'} is not supported; use api-version={GITHUB_API_VERSION}.",
                "VssVersionNotSupportedException",
            )
        token = github.mint(request.query.get("audience") or None)
        return json_reply(200, {"count": len(token), "value": token})
