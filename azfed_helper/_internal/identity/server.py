"""A local managed-identity endpoint backed by the Google → Entra exchange.

Every Azure SDK and az find a managed identity through two variables (App Service convention):
``IDENTITY_ENDPOINT`` and ``IDENTITY_HEADER``. This server answers that protocol on loopback with
tokens from the token provider (``entra.provider``), so unmodified tools work on Google Cloud.
Optionally it also answers the VM metadata (IMDS) shape that Terraform's ``ARM_MSI_ENDPOINT``
speaks. Clients ignore the HTTP status and show an error body's message verbatim, so every
failure is a JSON body with a short actionable message; 5xx only for transient failures (MSAL
replays a 5xx for a few seconds).

Tokens are kept in memory per scope by the provider; a miss is one exchange however many requests
wait for it (single flight), and a cache hit for one resource never waits behind another's exchange.

Who may ask: a request must carry the secret (``X-IDENTITY-HEADER``, compared in constant time)
unless ``--imds`` opened the IMDS path to every local process; the IMDS path also refuses
requests relayed by a proxy, as the real IMDS does. The HTTP server underneath refuses a
``Host`` that does not name this machine (DNS rebinding) and bounds idle connections.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from urllib.parse import parse_qs, urlsplit

from .. import TYPE_CHECKING, httphandler, httpserve
from ..entra import aadsts
from ..errors import AzfedError, InvalidTokenError, UsageError
from ..logs import printable
from ..options import BY_DEST, DEFAULT_PORT
from . import envfile as mi_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from email.message import Message

    from ..config import Settings
    from ..entra.provider import TokenProvider

log = logging.getLogger("azfed_helper.identity")

APP_SERVICE_PATH = "/msi/token"
IMDS_PATH = "/metadata/identity/oauth2/token"
IMDS_HOST = "169.254.169.254"  # where IMDS clients send requests unless told otherwise
JSON = "application/json; charset=utf-8"
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded")
SECRET_HEADERS = ("X-IDENTITY-HEADER", "x-ms-identity")  # App Service; go-azure-sdk (Terraform)
# Ways clients name a user-assigned identity we cannot match against one app registration.
_OTHER_SELECTORS = ("object_id", "principal_id", "mi_res_id", "msi_res_id")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Entra codes that say "try again later" rather than "fix the configuration".
_TRANSIENT_CODES = frozenset({90061})
RESULTS = ("ok", "wrong_header", "bad_request", "forbidden", "failed")
PROVIDER_COUNTERS = ("cache_hits", "exchanges", "exchange_failures")
_ERRORS = {
    403: "forbidden",
    404: "not_found",
    405: "invalid_request",
    503: "temporarily_unavailable",
}


class RequestError(Exception):
    """A request we refuse: HTTP status, OAuth-style error code, message for the user."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def scope_for(resource: str) -> str:
    """The scope for a managed-identity ``resource``, as az and the SDKs derive it.

    ``/.default`` is appended verbatim: ``https://management.core.windows.net/`` becomes
    ``https://management.core.windows.net//.default``, the double slash keeping the trailing
    slash ARM expects in the token's audience. A scope sent as the resource is used as is.
    """
    if not resource:
        raise RequestError(400, "invalid_request", "missing resource= parameter")
    if resource.endswith("/.default") and _URI.fullmatch(resource):
        return resource
    if _URI.fullmatch(resource) or _GUID.fullmatch(resource):
        return resource + "/.default"
    raise RequestError(
        400,
        "invalid_resource",
        f"unknown resource form {resource!r}: give a resource URI such as "
        "https://management.azure.com/ or an application id GUID",
    )


def _status_for(exc: AzfedError) -> int:
    """5xx only when retrying can help; a refusal or misconfiguration is 400."""
    if isinstance(exc, aadsts.EntraError):
        return 503 if exc.code in _TRANSIENT_CODES else 400
    if isinstance(exc, (UsageError, InvalidTokenError)):
        return 400
    return 503  # the Google source, the token file, Entra unreachable after retries


class _Handler(httphandler.Handler):
    log = log

    def do_GET(self) -> None:
        owner: IdentityServer = self.server.context
        parts = urlsplit(self.path)
        try:
            document = owner.answer(parts.path, parse_qs(parts.query), self.headers)
            status, result = 200, "ok"
        except RequestError as exc:
            status, document = exc.status, _error_document(exc.status, exc.error, exc.message)
            result = "wrong_header" if exc.status == 401 else "bad_request"
        except AzfedError as exc:
            status = _status_for(exc)
            document = _error_document(status, "token_exchange_failed", f"azfed-helper: {exc}")
            result = "failed"
        except Exception:
            log.error("internal error answering %s", printable(parts.path), exc_info=True)
            status, result = 500, "failed"
            message = "azfed-helper internal error; the endpoint's log has the details"
            document = _error_document(500, "internal_error", message)
        owner.count(result)
        self.reply(status, _json(document), JSON)

    def do_POST(self) -> None:
        self.refuse(405, "use GET (App Service or IMDS protocol)")

    def extra_hosts(self) -> tuple[str, ...]:
        """A client routed to us as the VM metadata address (169.254.169.254) names it."""
        return (IMDS_HOST,) if urlsplit(self.path).path.rstrip("/") == IMDS_PATH else ()

    def refuse(self, status: int, message: str) -> None:
        owner: IdentityServer = self.server.context
        owner.count("forbidden" if status == 403 else "bad_request")
        super().refuse(status, message)

    @classmethod
    def error_body(cls, status: int, message: str) -> tuple[bytes, str]:
        error = _ERRORS.get(status, "invalid_request")
        return _json(_error_document(status, error, message)), JSON


def _encoded(secret: str) -> bytes:
    if not secret:
        raise UsageError(
            "the endpoint secret is empty", f"give a non-empty {BY_DEST['secret_file'].flag}"
        )
    return secret.encode("utf-8")


def _json(document: dict[str, object]) -> bytes:
    return json.dumps(document).encode("utf-8")


def _error_document(status: int, error: str, message: str) -> dict[str, object]:
    """Readable by every client: MSAL's App Service path shows ``statusCode, message``;
    its IMDS path and the Go SDK read ``error``/``error_description``."""
    return {"error": error, "error_description": message, "statusCode": status, "message": message}


class IdentityServer:
    """The endpoint in a background thread: ``start()``, ``url``, ``ready()``, ``stop()``.

    ``provider`` defaults to a token provider for the settings' app (persistent cache shared with
    ``azfed-helper token``). ``imds`` answers IMDS-shaped requests that carry no secret.
    """

    def __init__(
        self,
        settings: Settings,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        imds: bool = False,
        provider: TokenProvider | None = None,
        clock: Callable[[], float] = time.time,
        limits: httpserve.Limits | None = None,
    ) -> None:
        self.settings = settings
        self.tenant_id, self.client_id = settings.require_app()
        self.imds = imds
        self.clock = clock
        self._secret = _encoded(secret)
        if provider is None:
            from ..entra.provider import TokenProvider

            provider = TokenProvider(settings, clock=clock)
        self.provider = provider
        self._requests = dict.fromkeys(RESULTS, 0)
        self._count_lock = threading.Lock()
        self._http = httpserve.BackgroundServer(
            (host, port),
            _Handler,
            self,
            name="azfed-identity",
            purpose="the managed-identity endpoint",
            hint=f"choose another {BY_DEST['port'].flag}, or {BY_DEST['port'].flag} 0 for any free one",
            limits=limits,
        )
        self._env_file: tuple[str, str] | None = None  # (path, text written)

    # -- where it is -----------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self._http.address

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """``IDENTITY_ENDPOINT``."""
        return self.base_url + APP_SERVICE_PATH

    @property
    def imds_url(self) -> str:
        """Terraform's ``ARM_MSI_ENDPOINT``."""
        return self.base_url + IMDS_PATH

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> IdentityServer:
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop listening; requests already being answered finish in their own threads."""
        if not self._http.stop():
            return
        self.provider.close()
        if self._env_file is not None:
            mi_env.remove_env_file(*self._env_file)
            self._env_file = None

    def variables(self) -> dict[str, str]:
        """What a client needs: ``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER``, ``NO_PROXY``."""
        return mi_env.variables(self.url, self._secret.decode("utf-8"))

    def replace_secret(self, secret: str) -> None:
        """Require ``secret`` from now on (SIGHUP re-read ``--secret-file``). A published
        environment file is rewritten first: if that fails, the old secret stays in force."""
        encoded = _encoded(secret)
        if self._env_file is not None:
            path = self._env_file[0]
            self._env_file = (path, mi_env.write_env_file(path, mi_env.variables(self.url, secret)))
        self._secret = encoded

    def publish(self, path: str) -> None:
        """Write :meth:`variables` to ``path`` (0600) for shells and ``env --for
        managed-identity``; :meth:`stop` removes it again."""
        self._env_file = (path, mi_env.write_env_file(path, self.variables()))

    def __enter__(self) -> IdentityServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- health ----------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """Ready while listening and the latest exchange (if any) succeeded."""
        if not self._http.running:
            return False, "the managed-identity endpoint is not running"
        failure = self.provider.last_failure
        if failure is not None:
            return False, f"the managed-identity endpoint's last token request failed: {failure}"
        return True, f"ok: managed-identity endpoint on {self.url}"

    def count(self, result: str) -> None:
        with self._count_lock:
            self._requests[result] += 1

    def counters(self) -> dict[str, int]:
        """Requests by result (``ok``, ``wrong_header``, ``bad_request``, ``failed``) plus
        ``cache_hits``, ``exchanges`` and ``exchange_failures``."""
        with self._count_lock:
            counts = dict(self._requests)
        counts.update({name: self.provider.counts[name] for name in PROVIDER_COUNTERS})
        return counts

    def metrics_text(self) -> str:
        """Prometheus text-format lines, to append to the daemon's ``/metrics``."""
        counts = self.counters()
        lines = [
            "# HELP azfed_identity_requests_total Managed-identity token requests by result "
            "(wrong_header: missing or wrong secret; forbidden: Host not naming this machine).",
            "# TYPE azfed_identity_requests_total counter",
            *(f'azfed_identity_requests_total{{result="{r}"}} {counts[r]}' for r in RESULTS),
        ]
        for name, help_text in (
            ("cache_hits", "Requests answered from the endpoint's memory cache."),
            ("exchanges", "Token acquisitions through the exchange (disk cache or Entra)."),
            ("exchange_failures", "Failed token acquisitions."),
        ):
            lines += [
                f"# HELP azfed_identity_{name}_total {help_text}",
                f"# TYPE azfed_identity_{name}_total counter",
                f"azfed_identity_{name}_total {counts[name]}",
            ]
        lines += [
            "# HELP azfed_identity_ready 1 while the managed-identity endpoint is ready.",
            "# TYPE azfed_identity_ready gauge",
            f"azfed_identity_ready {int(self.ready()[0])}",
        ]
        return "\n".join(lines) + "\n"

    # -- the protocol ----------------------------------------------------------------------

    def answer(self, path: str, query: dict[str, list[str]], headers: Message) -> dict[str, object]:
        """The token document for one request, or a RequestError / AzfedError."""
        get = headers.get
        path = path.rstrip("/") or "/"
        if path == APP_SERVICE_PATH:
            self._check_secret(get("X-IDENTITY-HEADER"), required=True)
        elif path == IMDS_PATH:
            if str(get("Metadata") or "").lower() != "true":
                raise RequestError(400, "invalid_request", "required metadata header not specified")
            if any(get(name) is not None for name in FORWARDING_HEADERS):
                raise RequestError(
                    400,
                    "invalid_request",
                    "requests relayed by a proxy (X-Forwarded-For or Forwarded header) are "
                    "refused on the IMDS path, as the real IMDS refuses them",
                )
            supplied = next((get(name) for name in SECRET_HEADERS if get(name) is not None), None)
            self._check_secret(supplied, required=not self.imds)
        else:
            raise RequestError(
                404,
                "not_found",
                f"no such endpoint {printable(path)}: use {APP_SERVICE_PATH} (IDENTITY_ENDPOINT) or "
                f"{IMDS_PATH} (ARM_MSI_ENDPOINT)",
            )
        params = {name: values[0] for name, values in query.items() if values}
        self._check_identity(params)
        resource = params.get("resource", "")
        token = self.provider.get([scope_for(resource)])
        now = int(self.clock())
        return {
            "access_token": token.token,
            "expires_on": str(token.expires_on),
            "expires_in": str(max(token.expires_on - now, 0)),  # Terraform and the Go SDK
            "resource": resource,
            "token_type": token.token_type,
            "client_id": self.client_id,
        }

    def _check_secret(self, supplied: str | None, required: bool) -> None:
        if supplied is None and not required:
            return
        if supplied is None or not hmac.compare_digest(supplied.encode("utf-8"), self._secret):
            raise RequestError(
                401,
                "unauthorized",
                "missing or wrong X-IDENTITY-HEADER: set IDENTITY_HEADER to the secret of the "
                'running `azfed-helper serve` (eval "$(azfed-helper env --for managed-identity)")',
            )

    def _check_identity(self, params: dict[str, str]) -> None:
        """System-assigned, or user-assigned naming our app's client id; refuse anything else."""
        client_id = params.get("client_id")
        if client_id is not None and client_id.lower() != self.client_id.lower():
            raise RequestError(
                400,
                "invalid_request",
                f"unknown client_id {printable(client_id)}: this endpoint serves only app "
                f"{self.client_id}; "
                "drop the client id or use that one",
            )
        for name in _OTHER_SELECTORS:
            if name in params:
                raise RequestError(
                    400,
                    "invalid_request",
                    f"selecting the identity by {name} is not supported: this endpoint serves "
                    f"only app {self.client_id}; drop {name} or pass client_id={self.client_id}",
                )
