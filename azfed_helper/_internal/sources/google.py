"""Fetching Google ID tokens: from the metadata server, a key file, or by impersonation.

google-auth is imported inside functions (here and in google_credentials, which says which
credentials a file holds): the no-op ``write`` path never loads it.

google-auth signs and refreshes the caller's credentials (key files' jwt-bearer grants, user
refresh tokens, STS, metadata access tokens). The two ID-token calls it cannot aim or bound, the
metadata server's ``identity`` and IAM Credentials' ``generateIdToken``, are made here; every
request of a fetch, google-auth's included, goes through one bounded :class:`_Transport`.
"""

from __future__ import annotations

import json
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
from .google_credentials import Source, caller_credentials, detect, metadata_host

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


DEFAULT_IAM_ENDPOINT = "https://iamcredentials.googleapis.com"


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
            f"not on Google Cloud? set {BY_DEST['credentials'].where()}; on Google Cloud, check "
            "GCE_METADATA_HOST and the network path to the metadata server"
        )
    return (
        "check network access to Google's token endpoints (oauth2/iamcredentials googleapis.com, "
        f"or the file's token_uri and {BY_DEST['iam_endpoint'].flag}); "
        f"{BY_DEST['source_timeout'].flag} bounds each wait"
    )


def _unreachable_error(exc: _Unreachable, source: Source) -> SourceError:
    """One line naming the endpoint and what went wrong; off Google Cloud, say that plainly."""
    if source.kind == "metadata" and _is_metadata(exc.url) and not exc.answered:
        credentials, impersonate = BY_DEST["credentials"], BY_DEST["impersonate"]
        return SourceError(
            f"cannot reach the Google token source: no metadata server answered at "
            f"{metadata_host()} ({exc.reason}) and {credentials.env} is not set",
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

        from ..dnsbound import bounded_session

        self.timeout = float(timeout)
        self.deadline = clock() + _REQUEST_BUDGET * self.timeout
        self._clock = clock
        self._sleep = sleep
        self._request = google.auth.transport.requests.Request()
        # Lookups bounded too. (google-auth mounts its mTLS adapter here, which we never ask for.)
        self.session = bounded_session(self._request.session)

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
                f"not tried: the fetch already took {_REQUEST_BUDGET} x "
                f"{BY_DEST['source_timeout'].flag} "
                f"({net.seconds(self.timeout)}) in all",
            )
        return left


def _failure(url: str, cause: BaseException, limit: float) -> tuple[_Unreachable, bool]:
    """The failure to report for a request that raised, and whether retrying is pointless."""
    import requests

    if isinstance(cause, requests.Timeout):
        # The server accepted and went silent: asking again would only double the wait.
        failure, final = _Unreachable(url, net.timeout_reason(cause, limit)), True
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
        response = transport(f"http://{metadata_host()}/", headers={"Metadata-Flavor": "Google"})
    except _Unreachable as exc:
        raise _unreachable_error(exc, Source("metadata", None, settings.impersonate)) from exc
    finally:
        transport.session.close()
    if response.headers.get("Metadata-Flavor") != "Google":
        raise SourceError(
            f"a server answered at {metadata_host()} (HTTP {response.status}) but it is not a "
            "metadata server: its answer lacks 'Metadata-Flavor: Google'",
            f"check GCE_METADATA_HOST, or set {BY_DEST['credentials'].where()} to a "
            "service-account key",
        )


def _is_metadata(url: str) -> bool:
    return url.startswith(f"http://{metadata_host()}/")


def _metadata_root() -> str:
    return f"http://{metadata_host()}/computeMetadata/v1/"


def _from_metadata(transport: _Transport, settings: Settings) -> str:
    """Ask the metadata server directly: google-auth's helper forces ``format=full``."""
    import urllib.parse

    query = urllib.parse.urlencode({"audience": settings.audience, "format": settings.token_format})
    url = f"{_metadata_root()}instance/service-accounts/default/identity?{query}"
    response = transport(url, headers={"Metadata-Flavor": "Google"})
    text = _text(response.data)
    if response.status != 200:
        raise SourceError(
            f"the metadata server at {metadata_host()} refused an ID token: HTTP "
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

    caller, delegates = caller_credentials(source, info)
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
            f"check {BY_DEST['iam_endpoint'].where()}: it must be an IAM Credentials API",
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
