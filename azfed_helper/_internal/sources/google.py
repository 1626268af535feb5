"""Where Google ID tokens come from: key files, the metadata server, impersonation.

This is the only module that imports google-auth, and it does so inside functions: the no-op
``write`` path never loads it. Unlike google-auth's ``fetch_id_token``, we never fall through to the
metadata server when a credentials file of another type is configured: a silent fallback would mint
a token for the wrong identity.

google-auth signs and refreshes the caller's credentials (key files' jwt-bearer grants, user
refresh tokens, STS, metadata access tokens). The two ID-token calls it cannot aim or bound, the
metadata server's ``identity`` and IAM Credentials' ``generateIdToken``, are made here; every
request of a fetch, google-auth's included, goes through one bounded :class:`_Transport`.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

from .. import net
from ..config import Settings
from ..errors import SourceError, UsageError
from ..options import BY_DEST
from . import ATTEMPTS as _ATTEMPTS
from . import BACKOFF as _BACKOFF
from . import REQUEST_BUDGET as _REQUEST_BUDGET
from . import RETRY_STATUSES as _RETRY_STATUSES

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import google.auth.credentials
    import google.auth.transport.requests

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_IAM_ENDPOINT = "https://iamcredentials.googleapis.com"
_IMPERSONATION_URL = re.compile(r"serviceAccounts/([^/:]+):generateAccessToken")
_NEEDS_IMPERSONATION = ("authorized_user", "external_account", "external_account_authorized_user")
_SOURCE_TYPES = ("service_account", *_NEEDS_IMPERSONATION)
_KNOWN_TYPES = ("impersonated_service_account", *_SOURCE_TYPES)


class Source:
    """A described token source: what kind, from which file, impersonating whom."""

    __slots__ = ("impersonate", "kind", "path")

    def __init__(self, kind: str, path: str | None, impersonate: str | None) -> None:
        self.kind = kind
        self.path = path
        self.impersonate = impersonate

    def describe(self) -> str:
        if self.path:
            text = f"{self.kind} credentials in {self.path}"
        else:
            text = f"the metadata server at {_metadata_host()}"
        return f"{text}, impersonating {self.impersonate}" if self.impersonate else text


def load_credentials_info(path: str) -> dict[str, Any]:
    """Read a credentials JSON file; every way it can be wrong is a usage error naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except FileNotFoundError as exc:
        raise UsageError(
            f"credentials file {path} does not exist",
            "fix GOOGLE_APPLICATION_CREDENTIALS / --credentials, or unset it to use the metadata server",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read credentials file {path}: {exc}",
            "check the file's permissions and that it is the JSON file Google gave you",
        ) from exc
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise UsageError(
            f"credentials file {path} is not valid JSON ({reason})",
            "download the key again or run `gcloud auth application-default login` again",
        ) from exc
    if not isinstance(info, dict) or not isinstance(info.get("type"), str):
        raise UsageError(
            f"credentials file {path} has no 'type' field",
            "expected a Google credentials file (service_account, impersonated_service_account, ...)",
        )
    return info


def detect(settings: Settings) -> tuple[Source, dict[str, Any] | None]:
    """Pick the source from the settings alone (no network): a credentials file, else metadata."""
    path = settings.credentials
    if not path:
        return Source("metadata", None, settings.impersonate), None
    info = load_credentials_info(path)
    kind = info["type"]
    if kind not in _KNOWN_TYPES:
        raise UsageError(
            f"credentials file {path} has type {kind!r}, which cannot mint Google ID tokens",
            "use a service_account key, an impersonated_service_account file, or user/"
            "external_account credentials together with --impersonate SA_EMAIL",
        )
    target = settings.impersonate
    if kind in ("external_account", "impersonated_service_account") and not target:
        match = _IMPERSONATION_URL.search(str(info.get("service_account_impersonation_url", "")))
        target = match.group(1) if match else None
    if kind == "impersonated_service_account" and not target:
        raise UsageError(
            f"impersonation file {path} names no target service account",
            "pass --impersonate SA_EMAIL or recreate the file with gcloud",
        )
    if kind in _NEEDS_IMPERSONATION and not target:
        raise UsageError(
            f"{kind} credentials in {path} cannot mint an ID token for an audience of your choosing",
            "impersonate a service account: --impersonate SA_EMAIL (the caller needs "
            "roles/iam.serviceAccountOpenIdTokenCreator on it)",
        )
    return Source(kind, path, target), info


def describe(settings: Settings) -> str:
    """The Google source the settings select (read from the settings and the credentials file)."""
    return detect(settings)[0].describe()


def credential_name(claims: Mapping[str, object]) -> tuple[str, str]:
    """Name and description of the federated credential for a Google service account."""
    return (
        f"google-{claims.get('sub')}",
        f"Google service account {claims.get('email') or claims.get('sub')}",
    )


def fetch(settings: Settings) -> str:
    """Mint a Google ID token for ``settings.audience`` from the detected source; return the JWT."""
    source, info = detect(settings)
    from google.auth import exceptions

    transport = _Transport(settings.source_timeout)
    try:
        if source.kind == "metadata" and not source.impersonate:
            return _from_metadata(transport, settings)
        if source.kind == "service_account" and not source.impersonate:
            return _from_key(transport, info, settings)
        return _impersonated(transport, source, info, settings)
    except _Unreachable as exc:
        raise _unreachable_error(exc, source) from exc
    except exceptions.RefreshError as exc:
        raise SourceError(
            f"Google refused to mint an ID token from {source.describe()}: {_first_line(exc)}",
            _refusal_hint(source),
        ) from exc
    except exceptions.TransportError as exc:
        raise SourceError(
            f"cannot reach the Google token source ({source.describe()}): {_first_line(exc)}",
            _unreachable_hint(source),
        ) from exc
    except (exceptions.GoogleAuthError, ValueError) as exc:
        raise UsageError(
            f"unusable Google credentials ({source.describe()}): {_first_line(exc)}",
            "check the credentials file's contents",
        ) from exc
    finally:
        transport.session.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _refusal_hint(source: Source) -> str:
    if source.impersonate:
        return (
            f"grant the caller roles/iam.serviceAccountOpenIdTokenCreator on {source.impersonate} "
            "and enable the IAM Service Account Credentials API"
        )
    return "check that the key is current (not deleted or disabled) in the Google Cloud console"


def _unreachable_hint(source: Source) -> str:
    if source.kind == "metadata":
        return (
            "not on Google Cloud? set GOOGLE_APPLICATION_CREDENTIALS or --credentials; on Google "
            "Cloud, check GCE_METADATA_HOST and the network path to the metadata server"
        )
    return (
        "check network access to Google's token endpoints (oauth2/iamcredentials googleapis.com, "
        "or the file's token_uri and --iam-endpoint); --source-timeout bounds each wait"
    )


def _unreachable_error(exc: _Unreachable, source: Source) -> SourceError:
    """One line naming the endpoint and what went wrong; off Google Cloud, say that plainly."""
    if source.kind == "metadata" and _is_metadata(exc.url) and not exc.answered:
        credentials, impersonate = BY_DEST["credentials"], BY_DEST["impersonate"]
        return SourceError(
            f"cannot reach the Google token source: no metadata server answered at "
            f"{_metadata_host()} ({exc.reason}) and {credentials.env} is not set",
            f"set {credentials.where()} to a service-account key (or to a gcloud ADC file "
            f"together with {impersonate.where()}), or run on Google Cloud (if this is Google "
            "Cloud, check GCE_METADATA_HOST and the route to the metadata server)",
        )
    return SourceError(
        f"cannot reach the Google token source ({source.describe()}): {exc}",
        _unreachable_hint(source),
    )


class _Unreachable(SourceError):
    """A request to ``url`` failed for good: no answer, refused, or 5xx after the retries.

    A SourceError, so google-auth (which retries only its own TransportError) lets it through
    at once and the fetch ends; :func:`fetch` rewords it with the source's description.
    """

    def __init__(self, url: str, reason: str, answered: bool = False) -> None:
        super().__init__(f"{net.endpoint(url)}: {reason}")
        self.url = url
        self.reason = reason
        self.answered = answered


class _Transport:
    """google-auth's requests transport, bounded: every request waits at most ``timeout``
    seconds and all of one fetch's requests together at most ``_REQUEST_BUDGET`` times that.

    5xx/429 answers, and failed connections to the metadata server, are retried here (a few
    times, shortly); a request that got no answer in time is not. Failures leave as
    :class:`_Unreachable`, never as google-auth's TransportError, so google-auth's own retry
    loops (five metadata attempts with up to 8 s pauses) never run: the bound holds whatever
    the source.
    """

    def __init__(
        self,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import google.auth.transport.requests

        self.timeout = float(timeout)
        self.deadline = clock() + _REQUEST_BUDGET * self.timeout
        self._clock = clock
        self._sleep = sleep
        self._request = google.auth.transport.requests.Request()
        self.session = self._request.session  # google-auth mounts its mTLS adapter here

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """The ``google.auth.transport.Request`` interface."""
        from google.auth import exceptions

        net.check_ca_bundle(url)
        for attempt in range(1, _ATTEMPTS + 1):
            limit = min(timeout or self.timeout, self.timeout, self._remaining(url))
            try:
                response = self._request(url, method, body, headers, limit, **kwargs)
            except exceptions.TransportError as exc:
                failure, final = _failure(url, exc.__cause__ or exc, limit)
            else:
                if response.status not in _RETRY_STATUSES:
                    return response
                failure, final = _Unreachable(url, f"HTTP {response.status}", answered=True), False
            delay = _BACKOFF * 2 ** (attempt - 1)
            if final or attempt == _ATTEMPTS or self._remaining(url) <= delay:
                raise failure
            net.announce_retry(f"Google: {failure}", delay, attempt + 1, _ATTEMPTS)
            self._sleep(delay)
        raise AssertionError("not reached: the last attempt returns or raises")

    def _remaining(self, url: str) -> float:
        left = self.deadline - self._clock()
        if left <= 0:
            raise _Unreachable(
                url,
                f"not tried: the fetch already took {_REQUEST_BUDGET} x --source-timeout "
                f"({net.seconds(self.timeout)}) in all",
            )
        return left


def _failure(url: str, cause: BaseException, limit: float) -> tuple[_Unreachable, bool]:
    """The failure to report for a request that raised, and whether retrying is pointless."""
    import requests

    if isinstance(cause, requests.Timeout):
        # The server accepted and went silent: asking again would only double the wait.
        failure, final = _Unreachable(url, f"no answer within {net.seconds(limit)}"), True
    else:
        problem = net.reason(cause)
        # As google-auth does: only the metadata server, which restarts now and then, gets
        # another try after a failed connection; and never for a name that does not resolve.
        final = problem == net.UNRESOLVED or not _is_metadata(url) or net.is_tls_failure(cause)
        failure = _Unreachable(url, problem)
    failure.__cause__ = cause
    return failure, final


def probe_metadata(settings: Settings) -> None:
    """Check that a metadata server answers (its root, as google-auth's availability ping, in
    one bounded fetch's time): off Google Cloud nothing does, which ``doctor`` must report as a
    failure rather than describe the source as if it worked."""
    transport = _Transport(settings.source_timeout)
    try:
        response = transport(f"http://{_metadata_host()}/", headers={"Metadata-Flavor": "Google"})
    except _Unreachable as exc:
        raise _unreachable_error(exc, Source("metadata", None, settings.impersonate)) from exc
    finally:
        transport.session.close()
    if response.headers.get("Metadata-Flavor") != "Google":
        raise SourceError(
            f"a server answered at {_metadata_host()} (HTTP {response.status}) but it is not a "
            "metadata server: its answer lacks 'Metadata-Flavor: Google'",
            f"check GCE_METADATA_HOST, or set {BY_DEST['credentials'].where()} to a "
            "service-account key",
        )


def _metadata_host() -> str:
    """The metadata server's ``host[:port]``, read now (google-auth reads it at import time)."""
    host = os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_ROOT")
    return host or "metadata.google.internal"


def _is_metadata(url: str) -> bool:
    return url.startswith(f"http://{_metadata_host()}/")


def _metadata_root() -> str:
    return f"http://{_metadata_host()}/computeMetadata/v1/"


def _from_metadata(transport: _Transport, settings: Settings) -> str:
    """Ask the metadata server directly: google-auth's helper forces ``format=full``."""
    import urllib.parse

    query = urllib.parse.urlencode({"audience": settings.audience, "format": settings.token_format})
    url = f"{_metadata_root()}instance/service-accounts/default/identity?{query}"
    response = transport(url, headers={"Metadata-Flavor": "Google"})
    text = _text(response.data)
    if response.status != 200:
        raise SourceError(
            f"the metadata server at {_metadata_host()} refused an ID token: HTTP "
            f"{response.status} {_first_text_line(text)}",
            "check that this workload runs as a service account (GKE: workload identity for "
            "its Kubernetes service account) and that the audience is valid",
        )
    return text.strip()


def _from_key(transport: _Transport, info: dict[str, Any] | None, settings: Settings) -> str:
    """A service-account key: google-auth signs the jwt-bearer grant to the key's token_uri."""
    from google.oauth2 import service_account

    credentials = service_account.IDTokenCredentials.from_service_account_info(
        info, target_audience=settings.audience
    )
    credentials.refresh(transport)
    return str(credentials.token)


def _impersonated(
    transport: _Transport, source: Source, info: dict[str, Any] | None, settings: Settings
) -> str:
    """IAM Credentials ``generateIdToken`` for the target account, called with the caller's
    access token (google-auth refreshes that through ``transport``)."""
    import urllib.parse

    caller, delegates = _caller_credentials(source, info)
    target = urllib.parse.quote(str(source.impersonate), safe="@")
    base = (settings.iam_endpoint or DEFAULT_IAM_ENDPOINT).rstrip("/")
    url = f"{base}/v1/projects/-/serviceAccounts/{target}:generateIdToken"
    headers = {"Content-Type": "application/json"}
    caller.before_request(transport, "POST", url, headers)  # refresh + Authorization header
    body = {"audience": settings.audience, "includeEmail": True, "delegates": delegates}
    response = transport(url, "POST", json.dumps(body).encode("utf-8"), headers)
    text = _text(response.data)
    if response.status != 200:
        raise SourceError(
            f"Google refused to mint an ID token from {source.describe()}: HTTP "
            f"{response.status} {_api_message(text)}",
            _refusal_hint(source),
        )
    try:
        document = json.loads(text)
        return str(document["token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceError(
            f"the IAM Credentials API at {base} answered without a token: {_first_text_line(text)}",
            "check --iam-endpoint / AZFED_IAM_ENDPOINT: it must be an IAM Credentials API",
        ) from exc


def _text(data: Any) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)


def _first_text_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else "(empty answer)"


def _api_message(text: str) -> str:
    """The ``error.message`` of a Google JSON API error, else the answer's first line."""
    try:
        document = json.loads(text)
        return str(document["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return _first_text_line(text)


def _caller_credentials(
    source: Source, info: dict[str, Any] | None
) -> tuple[google.auth.credentials.Credentials, list[str]]:
    """The credentials that call generateIdToken on the target account, and the delegates."""
    if source.kind != "impersonated_service_account":
        return _source_credentials(source.kind, info), []
    # gcloud's impersonation file: build its source ourselves so that a token_uri in it is
    # honoured exactly as for a plain key or user file.
    assert info is not None
    source_info = info.get("source_credentials")
    if not isinstance(source_info, dict) or source_info.get("type") not in _SOURCE_TYPES:
        raise UsageError(
            f"impersonation file {source.path} has no usable 'source_credentials'",
            "recreate it with `gcloud auth application-default login --impersonate-service-account`",
        )
    delegates = info.get("delegates") or []
    if not isinstance(delegates, list) or not all(isinstance(d, str) for d in delegates):
        raise UsageError(
            f"impersonation file {source.path} has 'delegates' that are not a list of accounts",
            "recreate it with `gcloud auth application-default login --impersonate-service-account`",
        )
    return _source_credentials(str(source_info["type"]), source_info), delegates


def _source_credentials(
    kind: str, info: dict[str, Any] | None
) -> google.auth.credentials.Credentials:
    """The credentials (of type ``kind``) that call IAM to impersonate the target account."""
    if kind == "metadata":
        from google.auth import compute_engine

        return compute_engine.Credentials()
    assert info is not None
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=[CLOUD_PLATFORM])
    if kind == "authorized_user":
        from google.oauth2 import credentials as user_credentials

        user = user_credentials.Credentials.from_authorized_user_info(info)
        # google-auth ignores a file's token_uri here (it does honour it for service-account keys);
        # honour it too, so emulators and private endpoints work the same for both kinds.
        return user.with_token_uri(info["token_uri"]) if info.get("token_uri") else user
    if kind == "external_account_authorized_user":
        from google.auth import external_account_authorized_user

        return external_account_authorized_user.Credentials.from_info(info)
    return _external_account(info)


def _external_account(info: dict[str, Any]) -> google.auth.credentials.Credentials:
    """Workload identity federation credentials, used directly (not through their own impersonation):
    the federated principal calls generateIdToken on the target service account."""
    info = {k: v for k, v in info.items() if k != "service_account_impersonation_url"}
    source = info.get("credential_source") or {}
    if str(source.get("environment_id", "")).startswith("aws"):
        from google.auth import aws

        return aws.Credentials.from_info(info, scopes=[CLOUD_PLATFORM])
    if "executable" in source:
        from google.auth import pluggable

        return pluggable.Credentials.from_info(info, scopes=[CLOUD_PLATFORM])
    from google.auth import identity_pool

    return identity_pool.Credentials.from_info(info, scopes=[CLOUD_PLATFORM])
