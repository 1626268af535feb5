"""The Google side: GCE metadata server, OAuth token endpoint, STS, IAM credentials, JWKS.

All of it is served by one plain-http server, as google-auth can be pointed at http
endpoints (``GCE_METADATA_HOST``, a key file's ``token_uri``, patched IAM URLs).
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from google.auth import exceptions

from .keys import MalformedTokenError, jwks, parse_jwt, pem_by_kid, verify_jwt
from .server import Reply, Request, json_reply, text_reply
from .state import GOOGLE_ISSUER, EmulatorState

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a URN)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a URN)
# google-auth always puts Google's real endpoint in the assertion's aud, whatever token_uri is.
_GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL)
_CLOCK_SKEW = 300
_METADATA_PREFIX = "/computeMetadata/v1/"
_FLAVOR = {"Metadata-Flavor": "Google"}
_IAM_PATH = re.compile(r"^/v1/projects/[^/]+/serviceAccounts/([^/:]+):(generate\w+)$")
_SA_PATH = re.compile(r"^instance/service-accounts/([^/]+)/?(.*)$")
_SCOPES = "https://www.googleapis.com/auth/cloud-platform"

Handler = Callable[[Request], Reply]


def _oauth_error(error: str, description: str, status: int = 400) -> Reply:
    return json_reply(status, {"error": error, "error_description": description})


def _api_error(status: int, code: str, message: str) -> Reply:
    """The error envelope of Google's JSON APIs (IAM credentials)."""
    return json_reply(status, {"error": {"code": status, "message": message, "status": code}})


class GoogleApp:
    """Routes Google-side requests, counting each and applying injected faults."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Reply:
        key, handler = self._route(request)
        if key is None:
            return handler(request)
        fault = self.state.record(key)
        reply = fault.reply(key) if fault else handler(request)
        if key.startswith("metadata."):
            reply = Reply(
                reply.status, reply.body, reply.content_type, {**reply.headers, **_FLAVOR}
            )
        return reply

    def _route(self, request: Request) -> tuple[str | None, Handler]:
        path = request.path
        if path == "/":
            return "metadata.ping", lambda _: text_reply(200, "ok")
        if path.startswith(_METADATA_PREFIX):
            return self._metadata_key(path), self._metadata
        fixed: dict[str, tuple[str, Handler]] = {
            "/token": ("google.token", self._token),
            "/sts/v1/token": ("sts.token", self._sts),
            "/oauth2/v3/certs": ("jwks", lambda _: json_reply(200, jwks([self.state.google_key]))),
            "/oauth2/v1/certs": (
                "jwks",
                lambda _: json_reply(200, pem_by_kid([self.state.google_key])),
            ),
            "/.well-known/openid-configuration": ("jwks", self._discovery),
        }
        if path in fixed:
            return fixed[path]
        match = _IAM_PATH.match(path)
        if match and match.group(2) in ("generateIdToken", "generateAccessToken"):
            return f"iam.{match.group(2)}", self._iam
        return None, _not_found

    # -- metadata server -----------------------------------------------------------------

    @staticmethod
    def _metadata_key(path: str) -> str:
        leaf = path.rstrip("/").rsplit("/", 1)[-1]
        if "/service-accounts/" in path and leaf in ("identity", "token"):
            return f"metadata.{leaf}"
        return "metadata.other"

    def _metadata(self, request: Request) -> Reply:
        if request.headers.get("Metadata-Flavor") != "Google":
            return Reply(
                403,
                b"Missing required header: Metadata-Flavor: Google\n",
                "text/html; charset=utf-8",
            )
        path = request.path[len(_METADATA_PREFIX) :]
        match = _SA_PATH.match(path)
        if match:
            return self._service_account(
                request, urllib.parse.unquote(match.group(1)), match.group(2)
            )
        values = {
            "project/project-id": self.state.project_id,
            "project/numeric-project-id": self.state.project_number,
            "instance/id": "4242424242424242424",
            "instance/name": "azfed-emulated-vm",
            "instance/hostname": "azfed-emulated-vm.us-central1-a.c.emulated-project.internal",
            "instance/zone": f"projects/{self.state.project_number}/zones/us-central1-a",
            "universe/universe-domain": "googleapis.com",
            "instance/service-accounts/": f"default/\n{self.state.service_account_email}/\n",
        }
        if path in values:
            return text_reply(200, values[path])
        return text_reply(404, "Not Found\n")

    def _service_account(self, request: Request, account: str, leaf: str) -> Reply:
        email = self.state.service_account_email
        if account not in ("default", email):
            return text_reply(404, "Not Found\n")
        leaf = leaf.rstrip("/")
        if leaf == "identity":
            return self._identity(request)
        if leaf == "token":
            token, expires_in = self.state.issue_access_token(email)
            return json_reply(
                200, {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
            )
        if leaf == "" and request.query.get("recursive", "").lower() == "true":
            return json_reply(200, {"aliases": ["default"], "email": email, "scopes": [_SCOPES]})
        values = {
            "": "aliases\nemail\nidentity\nscopes\ntoken\n",
            "email": email,
            "aliases": "default\n",
            "scopes": _SCOPES + "\n",
        }
        if leaf in values:
            return text_reply(200, values[leaf])
        return text_reply(404, "Not Found\n")

    def _identity(self, request: Request) -> Reply:
        audience = request.query.get("audience", "")
        if not audience:
            return text_reply(400, "non-empty audience parameter required\n")
        token_format = request.query.get("format", "standard")
        if token_format not in ("standard", "full"):
            return text_reply(400, f"invalid format {token_format!r}\n")
        full = token_format == "full"  # noqa: S105 (not a password)
        return text_reply(200, self.state.google_id_token(audience, full=full))

    # -- OAuth token endpoint --------------------------------------------------------------

    def _token(self, request: Request) -> Reply:
        form = request.form()
        grant_type = form.get("grant_type", "")
        if grant_type == JWT_BEARER:
            return self._jwt_grant(form.get("assertion", ""))
        if grant_type == "refresh_token":
            principal = self.state.refresh_token_principal(form.get("refresh_token", ""))
            if principal is None:
                return _oauth_error("invalid_grant", "Token has been expired or revoked.")
            return self._access_token_reply(principal, form.get("scope"))
        return _oauth_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _jwt_grant(self, assertion: str) -> Reply:
        try:
            header, _ = parse_jwt(assertion)
        except MalformedTokenError:
            return _oauth_error("invalid_grant", "Invalid JWT: malformed assertion.")
        kid = str(header.get("kid", ""))
        known = self.state.service_account_key(kid)
        if known is None:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        email, public_pem = known
        try:
            claims = verify_jwt(assertion, {kid: public_pem}, _CLOCK_SKEW)
        except (ValueError, exceptions.GoogleAuthError) as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if claims.get("iss") != email or claims.get("aud") not in (
            self.state.token_uri,
            _GOOGLE_TOKEN_AUDIENCE,
        ):
            return _oauth_error("invalid_grant", "Invalid JWT: issuer or audience mismatch.")
        target_audience = claims.get("target_audience")
        if target_audience:
            return json_reply(
                200, {"id_token": self.state.google_id_token(str(target_audience), email=email)}
            )
        return self._access_token_reply(email, claims.get("scope"))

    def _access_token_reply(self, principal: str, scope: Any) -> Reply:
        token, expires_in = self.state.issue_access_token(principal)
        document = {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
        if scope:
            document["scope"] = str(scope)
        return json_reply(200, document)

    # -- STS and IAM credentials -----------------------------------------------------------

    def _sts(self, request: Request) -> Reply:
        form = request.form()
        if form.get("grant_type") != TOKEN_EXCHANGE:
            return _oauth_error("unsupported_grant_type", "Unsupported grant_type.")
        if not form.get("subject_token") or not form.get("audience"):
            return _oauth_error("invalid_request", "subject_token and audience are required.")
        token, expires_in = self.state.issue_access_token(form["audience"])
        return json_reply(
            200,
            {
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": expires_in,
            },
        )

    def _iam(self, request: Request) -> Reply:
        match = _IAM_PATH.match(request.path)
        assert match is not None  # guaranteed by _route
        email, method = urllib.parse.unquote(match.group(1)), match.group(2)
        if self.state.access_token_grant(request.bearer()) is None:
            return _api_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )
        body = request.json()
        if not isinstance(body, dict):
            return _api_error(400, "INVALID_ARGUMENT", "Request body must be a JSON object.")
        if method == "generateIdToken":
            return self._generate_id_token(email, body)
        return self._generate_access_token(email, body)

    def _generate_id_token(self, email: str, body: dict[str, Any]) -> Reply:
        audience = body.get("audience")
        if not audience:
            return _api_error(400, "INVALID_ARGUMENT", "audience is required.")
        token = self.state.google_id_token(
            str(audience), email=email, include_email=bool(body.get("includeEmail"))
        )
        return json_reply(200, {"token": token})

    def _generate_access_token(self, email: str, body: dict[str, Any]) -> Reply:
        lifetime = str(body.get("lifetime") or "")
        seconds = int(lifetime[:-1]) if re.fullmatch(r"\d+s", lifetime) else None
        token, expires_in = self.state.issue_access_token(email, seconds)
        expire = datetime.datetime.fromtimestamp(
            self.state.now() + expires_in, datetime.timezone.utc
        )
        return json_reply(
            200, {"accessToken": token, "expireTime": expire.strftime("%Y-%m-%dT%H:%M:%SZ")}
        )

    def _discovery(self, _: Request) -> Reply:
        base = self.state.google_url
        return json_reply(
            200,
            {
                "issuer": GOOGLE_ISSUER,
                "authorization_endpoint": base + "/o/oauth2/v2/auth",
                "token_endpoint": self.state.token_uri,
                "jwks_uri": base + "/oauth2/v3/certs",
                "response_types_supported": ["code", "token", "id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "sub"],
            },
        )


def _not_found(request: Request) -> Reply:
    return _api_error(404, "NOT_FOUND", f"{request.path} is not emulated")
