"""The Entra side: OIDC discovery, keys, the v2.0 token endpoint, and a sliver of ARM.

Validation follows Entra's order and answers with its AADSTS codes and error shape, so
error handling in the product can be tested without a real tenant. Assertions may come from
any emulated issuer (Google, GitHub Actions, Kubernetes); each is verified with its own key.
"""

from __future__ import annotations

import datetime
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from .arm import ARM_PATHS, SUBSCRIPTION_PATH, ArmRoutes
from .keys import MalformedTokenError, jwks, parse_jwt, signature_is_valid
from .server import Reply, Request, json_reply
from .state import EmulatorState, stable_guid

CLIENT_CREDENTIALS = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 25 * 3600
NOT_BEFORE_SKEW = 300
TENANT_ALIASES = ("organizations", "common")
_OIDC_SCOPES = ("openid", "profile", "offline_access")
_DEFAULT_SUFFIX = "/.default"
_FIC_DOC = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation"
_TIME_DOC = "https://learn.microsoft.com/entra/identity-platform/certificate-credentials"
_TENANT_PATH = re.compile(
    r"^/([^/]+)/(v2\.0/\.well-known/openid-configuration|discovery/v2\.0/keys|oauth2/v2\.0/token)$"
)


class AadError(Exception):
    """An Entra error answer: AADSTS code, OAuth ``error`` string and message."""

    def __init__(self, code: int, error: str, message: str) -> None:
        super().__init__(f"AADSTS{code}: {message}")
        self.code, self.error, self.message = code, error, message


def _missing(name: str) -> AadError:
    return AadError(
        900144,
        "invalid_request",
        f"The request body must contain the following parameter: '{name}'.",
    )


def _timestamp(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%SZ"
    )


def resource_of(scope: str) -> str:
    """The single resource the client-credentials ``scope`` names (``/.default`` stripped)."""
    scopes = [s for s in scope.split() if s not in _OIDC_SCOPES]
    if not scopes:
        raise _missing("scope")
    resources = set()
    for item in scopes:
        if not item.endswith(_DEFAULT_SUFFIX) or item == _DEFAULT_SUFFIX:
            raise AadError(
                1002012,
                "invalid_scope",
                f"The provided value for scope {item} is not valid. Client credential flows must "
                "have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resources.add(item[: -len(_DEFAULT_SUFFIX)])
    if len(resources) > 1:
        raise AadError(
            70011,
            "invalid_scope",
            "The provided request must include a 'scope' input parameter. The provided value for "
            f"the input parameter 'scope' is not valid. The scope {scope} is not valid. Scopes "
            "for more than one resource were requested.",
        )
    return resources.pop()


class EntraApp(ArmRoutes):
    """Routes Entra and ARM requests, counting each and applying injected faults."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def __call__(self, request: Request) -> Reply:
        key, tenant, action = self._route(request)
        if key is None:
            return json_reply(
                404, {"error": "not_found", "error_description": f"{request.path} is not emulated"}
            )
        fault = self.state.record(key)
        if fault:
            return fault.reply(key)
        try:
            return self._dispatch(request, tenant, action)
        except AadError as error:
            return self._error_reply(error, request)

    def _route(self, request: Request) -> tuple[str | None, str, str]:
        match = _TENANT_PATH.match(request.path)
        if match:
            action = match.group(2)
            key = "entra.token" if action.endswith("token") else "entra.discovery"
            return key, match.group(1), action
        path = request.path
        if path == "/metadata/endpoints" or path in ARM_PATHS or SUBSCRIPTION_PATH.match(path):
            return "arm", "", path
        return None, "", ""

    def _dispatch(self, request: Request, tenant: str, action: str) -> Reply:
        if action == "/metadata/endpoints":
            return json_reply(200, self._cloud_metadata(request.query.get("api-version", "")))
        if action in ARM_PATHS or SUBSCRIPTION_PATH.match(action):
            return self._arm(request, action)
        self._check_tenant(tenant)
        if action.endswith("openid-configuration"):
            return json_reply(200, self._openid_configuration(tenant))
        if action.endswith("keys"):
            return json_reply(200, jwks([self.state.entra_key]))
        if request.method != "POST":
            raise AadError(900561, "invalid_request", "The endpoint only accepts POST requests.")
        return self._token(request.form())

    def _check_tenant(self, tenant: str) -> None:
        if tenant.lower() != self.state.tenant_id.lower() and tenant not in TENANT_ALIASES:
            raise AadError(
                90002,
                "invalid_tenant",
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud. Check with your subscription "
                "administrator, this may happen if there are no active subscriptions for the tenant.",
            )

    def _error_reply(self, error: AadError, request: Request) -> Reply:
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = _timestamp(self.state.now())
        description = (
            f"AADSTS{error.code}: {error.message}\r\nTrace ID: {trace_id}\r\n"
            f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
        )
        body = {
            "error": error.error,
            "error_description": description,
            "error_codes": [error.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{self.state.authority_host}/error?code={error.code}",
        }
        return json_reply(400, body)

    # -- token endpoint ----------------------------------------------------------------

    def _token(self, form: Mapping[str, str]) -> Reply:
        grant_type = form.get("grant_type", "")
        if not grant_type:
            raise _missing("grant_type")
        if grant_type != CLIENT_CREDENTIALS:
            raise AadError(
                70003,
                "unsupported_grant_type",
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        self._check_client(form.get("client_id", ""))
        resource = resource_of(form.get("scope", ""))
        claims = self._check_assertion(form)
        self._match_federated_credential(claims)
        if self.state.signing_key_for(claims.get("iss")) is None:
            raise AadError(
                90061,
                "invalid_request",
                f"Request to External OIDC endpoint failed. The emulator has no discovery "
                f"document or keys for issuer '{claims.get('iss')}'.",
            )
        return self._issue(resource)

    def _check_client(self, client_id: str) -> None:
        if not client_id:
            raise _missing("client_id")
        if client_id.lower() != self.state.client_id.lower():
            raise AadError(
                700016,
                "unauthorized_client",
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.state.tenant_id}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )

    def _check_assertion(self, form: Mapping[str, str]) -> dict[str, Any]:
        if form.get("client_secret"):
            raise AadError(
                7000215,
                "invalid_client",
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{self.state.client_id}'.",
            )
        assertion = form.get("client_assertion", "")
        if not assertion:
            raise AadError(
                7000218,
                "invalid_client",
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise _missing("client_assertion_type")
        try:
            header, claims = parse_jwt(assertion)
        except MalformedTokenError:
            raise AadError(50027, "invalid_request", "JWT token is invalid or malformed.") from None
        self._check_signature(assertion, header, claims.get("iss"))
        self._check_times(claims)
        return claims

    def _check_signature(self, assertion: str, header: Mapping[str, Any], issuer: object) -> None:
        """Verify with the key of the issuer the token names. An issuer the emulator does not
        know is left to federated-credential matching (700211), then refused (90061)."""
        key = self.state.signing_key_for(issuer)
        if key is None:
            return
        if header.get("kid") != key.kid:
            raise AadError(
                700027,
                "invalid_client",
                "The certificate with identifier used to sign the client assertion is not "
                f"registered on application. [Reason - The key was not found., Key identifier "
                f"used by client: '{header.get('kid')}']",
            )
        if header.get("alg") != "RS256" or not signature_is_valid(assertion, key.public_pem):
            raise AadError(
                700027, "invalid_client", "Client assertion failed signature validation."
            )

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(iat, (int, float))
            or not isinstance(exp, (int, float))
            or exp - iat > MAX_ASSERTION_LIFETIME
        ):
            raise AadError(
                70023,
                "invalid_request",
                "The client assertion's lifetime is invalid: 'iat' and 'exp' are required and "
                "'exp' must be at most 25 hours after 'iat'.",
            )
        now = self.state.now()
        start = claims.get("nbf", iat)
        if now >= exp or (isinstance(start, (int, float)) and now + NOT_BEFORE_SKEW < start):
            begin = int(start) if isinstance(start, (int, float)) else int(iat)
            raise AadError(
                700024,
                "invalid_client",
                f"Client assertion is not within its valid time range. Current time: "
                f"{_iso(now)}, assertion valid from {_iso(begin)}, expiry time of assertion "
                f"{_iso(int(exp))}. Review the documentation at {_TIME_DOC} .",
            )

    def _match_federated_credential(self, claims: Mapping[str, Any]) -> None:
        issuer, subject = claims.get("iss"), claims.get("sub")
        raw_aud = claims.get("aud")
        audiences = raw_aud if isinstance(raw_aud, list) else [raw_aud]
        shown = f"Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{','.join(map(str, audiences))}'."
        fics = list(self.state.federated_credentials)
        if not fics:
            raise AadError(
                70021,
                "invalid_request",
                f"No matching federated identity record found for presented assertion. {shown} {_FIC_DOC}",
            )
        by_issuer = [f for f in fics if f.issuer == issuer]
        by_audience = [f for f in by_issuer if any(a in f.audiences for a in audiences)]
        by_subject = [f for f in by_audience if f.subject == subject]
        for found, code, what, value in (
            (by_issuer, 700211, "issuer", issuer),
            (by_audience, 700212, "audience", ",".join(map(str, audiences))),
            (by_subject, 700213, "subject", subject),
        ):
            if not found:
                raise AadError(
                    code,
                    "invalid_request",
                    f"No matching federated identity record found for presented assertion {what} "
                    f"'{value}'. Please check your federated identity credential Subject, Audience "
                    f"and Issuer against the presented assertion. {_FIC_DOC}",
                )

    def _issue(self, resource: str) -> Reply:
        now, lifetime = self.state.now(), int(self.state.access_token_lifetime)
        tenant = self.state.tenant_id
        object_id = stable_guid("service-principal:" + self.state.client_id)
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": self.state.client_id,
            "appidacr": "2",
            "azp": self.state.client_id,
            "azpacr": "2",
            "idp": f"https://sts.windows.net/{tenant}/",
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "tid": tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        token = self.state.entra_key.sign(claims)
        return json_reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
        )

    # -- discovery and ARM ---------------------------------------------------------------

    def _openid_configuration(self, tenant: str) -> dict[str, Any]:
        base = f"{self.state.authority_host}/{tenant}"
        issuer_tenant = "{tenantid}" if tenant in TENANT_ALIASES else self.state.tenant_id
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.state.authority_host}/{issuer_tenant}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid"],
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }


def _iso(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.0000000Z"
    )
