"""Google ID token → Azure access token, through MSAL's confidential client.

The only module that drives msal and requests (imported inside functions). One :class:`Exchange`
per app registration (tenant, client, authority host); it holds no lock across the network, so
acquisitions for different scopes run side by side. What MSAL reads and updates (its token cache
and the discovery answers it may reuse) is a :class:`MsalState`: the exchange keeps one in memory,
and ``provider`` hands it one loaded from the on-disk cache (``store``), with single flight per
token in front of it. Every retry gets a fresh MSAL client whose ``http_cache`` holds only the
persisted discovery answers (:mod:`httpcache`), so a retried 5xx really goes back to Entra. A
failure to get the Google assertion, which MSAL calls mid-request, is the source's failure:
reported once, never retried as if Entra had failed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import net, sources
from ..errors import AzfedError, ExchangeError, SourceError, UsageError
from ..options import BY_DEST
from . import aadsts, httpcache
from .assertion import AssertionSource
from .cache import AccessToken

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import msal
    import requests

    from ..config import Settings
    from ..idtoken import IdToken

ATTEMPTS = 4
BACKOFF = 0.5  # seconds before the 2nd attempt, doubled after each further one
_AUTHORITY = BY_DEST["authority_host"]


class MsalState:
    """What one acquisition lets MSAL read and update: its token cache (MSAL's serialized JSON)
    and the discovery answers it may reuse (:mod:`httpcache` records)."""

    def __init__(
        self, token_text: str | None = None, http_records: list[dict[str, Any]] | None = None
    ) -> None:
        import msal

        self.token_cache = msal.SerializableTokenCache()
        if token_text is not None:
            self.token_cache.deserialize(token_text)
        self.http_records = list(http_records or [])


class Exchange:
    """Acquire access tokens for one app registration; thread-safe, no lock across the network."""

    def __init__(
        self,
        settings: Settings,
        assertion: Callable[[], str] | None = None,
        *,
        verify: bool | str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = BACKOFF,
    ) -> None:
        self.settings = settings
        self.tenant_id, self.client_id = settings.require_app()
        self.assertion = assertion or AssertionSource(settings)
        self.verify = verify
        self.sleep = sleep
        self.backoff = backoff
        self._lock = threading.Lock()  # guards the two lazily made members below, nothing slow
        self._memory: MsalState | None = None
        self._session: requests.Session | None = None

    @property
    def authority(self) -> str:
        return f"{self.settings.authority_host.rstrip('/')}/{self.tenant_id}"

    def acquire(
        self,
        scopes: Sequence[str],
        claims_challenge: str | None = None,
        state: MsalState | None = None,
    ) -> AccessToken:
        """A token for ``scopes``: from ``state``'s token cache when MSAL would use it, else from
        Entra, updating ``state``. Without ``state``, the exchange's own, kept in memory."""
        if state is None:
            with self._lock:
                if self._memory is None:
                    self._memory = MsalState()
                state = self._memory
        return self._acquire(list(scopes), claims_challenge, state)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def _acquire(
        self, scopes: list[str], claims_challenge: str | None, state: MsalState
    ) -> AccessToken:
        """Bounded retries with backoff for network failures and 5xx; Entra's 4xx are final,
        and so is a failure to get the Google assertion (that is the source's error, not Entra's)."""
        import msal.exceptions
        import requests

        failure: Exception | None = None
        for attempt in range(ATTEMPTS):
            if attempt:
                delay = self.backoff * 2 ** (attempt - 1)
                problem = f"Entra at {self.settings.authority_host}: {self._reason(failure)}"
                net.announce_retry(problem, delay, attempt + 1, ATTEMPTS)
                self.sleep(delay)
            http_cache = httpcache.restore(state.http_records, self.settings.authority_host)
            before = time.time()
            presented = _Presenter(self.assertion)
            try:
                app = self._app(state.token_cache, http_cache, presented)
                result = app.acquire_token_for_client(scopes, claims_challenge=claims_challenge)
            except Exception as exc:
                if presented.failure is not None:
                    error = _source_failure(presented.failure)
                    raise error from error.__cause__  # not chained to MSAL's frames
                if not isinstance(
                    exc, (requests.RequestException, msal.exceptions.MsalServiceError)
                ):
                    raise
                if net.is_tls_failure(exc):
                    raise self._tls_error(exc) from exc
                failure = exc
                continue
            state.http_records = httpcache.persistable(http_cache, before)
            return self._result(result, before, presented)
        raise ExchangeError(
            f"cannot get a token from Entra at {self.settings.authority_host} after {ATTEMPTS} "
            f"attempts: {self._reason(failure)}",
            "check network access to the authority host (proxy, firewall, DNS) and "
            "https://azure.status.microsoft for outages",
        ) from failure

    def _reason(self, exc: BaseException | None) -> str:
        """Why an Entra request failed, in a few words."""
        import msal.exceptions
        import requests

        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return f"HTTP {exc.response.status_code}"
        if isinstance(exc, msal.exceptions.MsalServiceError) and str(exc).startswith("HTTP Error"):
            return "HTTP" + str(exc)[len("HTTP Error:") :]  # MSAL's words for a 5xx
        if isinstance(exc, requests.Timeout):
            return net.timeout_reason(exc, self.settings.entra_timeout)
        if isinstance(exc, requests.RequestException):
            return net.reason(exc)
        if exc is None:
            return "no attempt made"
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")

    def _tls_error(self, exc: BaseException) -> ExchangeError:
        return ExchangeError(
            f"cannot verify Entra's TLS certificate at {self.settings.authority_host}: "
            f"{net.reason(exc)}",
            "behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA bundle; "
            f"otherwise check the system clock and {_AUTHORITY.env}",
        )

    def _app(
        self,
        token_cache: msal.SerializableTokenCache,
        http_cache: dict[str, Any],
        presented: _Presenter,
    ) -> msal.ConfidentialClientApplication:
        import msal

        try:
            return msal.ConfidentialClientApplication(
                self.client_id,
                authority=self.authority,
                client_credential={"client_assertion": presented},
                token_cache=token_cache,
                http_cache=http_cache,
                http_client=self._http_client(),
                # Microsoft's own hosts need no instance discovery; for any other host (an
                # emulator, a proxy) it would call login.microsoftonline.com.
                instance_discovery=False,
            )
        except ValueError as exc:
            raise _discovery_error(exc, self.settings.authority_host, self.tenant_id) from exc

    def _http_client(self) -> requests.Session:
        """One session with timeouts; ``verify`` per request, where REQUESTS_CA_BUNDLE cannot
        override it (psf/requests#3829) and proxies from the environment still apply."""
        with self._lock:
            if self._session is None:
                self._session = self._new_session()
            return self._session

    def _new_session(self) -> requests.Session:
        import requests

        from ..dnsbound import bounded_session

        timeout = self.settings.entra_timeout
        verify = self.verify

        class Session(requests.Session):
            def request(  # type: ignore[override]
                self, method: str, url: str, **kwargs: Any
            ) -> requests.Response:
                kwargs.setdefault("timeout", (min(timeout, 10), timeout))
                if verify is not None:
                    kwargs.setdefault("verify", verify)
                else:
                    net.check_ca_bundle(url)
                return super().request(method, url, **kwargs)

        return bounded_session(Session())

    def _result(self, result: dict[str, Any], before: float, presented: _Presenter) -> AccessToken:
        if "access_token" in result:
            # expires_in is a duration; counting from before the request errs on the safe side.
            expires_on = int(before + int(result["expires_in"]))
            return AccessToken(
                str(result["access_token"]), expires_on, str(result.get("token_type", "Bearer"))
            )
        claims = presented.token.claims if presented.token is not None else None
        settings = self.settings
        raise aadsts.explain(
            result,
            claims,
            settings.audience,
            settings.origins.get("audience"),
            sources.expected_issuer(settings),
        )


class _Presenter:
    """What MSAL calls for the client assertion, once per attempt: remembers the token presented
    (to explain a refusal next to it) and a failure, which MSAL passes on as its own."""

    def __init__(self, source: Callable[[], str]) -> None:
        self.source = source
        self.token: IdToken | None = None
        self.failure: Exception | None = None

    def __call__(self) -> str:
        try:
            raw = self.source()
        except Exception as exc:
            self.failure = exc
            raise
        self.token = getattr(self.source, "last", None)
        return raw


def _source_failure(exc: Exception) -> AzfedError:
    """A failure to get the Google assertion, reported as the source's (never retried as Entra's).

    Ours (SourceError, InvalidTokenError ...) pass through unchanged; anything else is wrapped.
    """
    if isinstance(exc, AzfedError):
        return exc
    text = str(exc).strip().splitlines()
    error = SourceError(
        f"cannot get the ID token to present to Entra: {type(exc).__name__}"
        + (f": {text[0]}" if text else ""),
        "run `azfed-helper doctor` to see the token source's own error",
    )
    error.__cause__ = exc
    return error


def _discovery_error(exc: ValueError, host: str, tenant: str) -> AzfedError:
    """MSAL's constructor fetches the tenant's OpenID configuration; explain its refusal.

    MSAL re-raises a 4xx from discovery as a generic ValueError; Entra's answer (e.g. AADSTS90002,
    tenant not found) is in the exception it replaced.
    """
    original = exc.__context__ if isinstance(exc.__context__, ValueError) else exc
    text = str(original)
    start = text.find("{")
    error: dict[str, Any] = {"error_description": text}
    if start >= 0:
        try:
            parsed = json.loads(text[start:])
            if isinstance(parsed, dict):
                error = parsed
        except ValueError:
            pass
    if aadsts.code_of(error) is not None:
        return aadsts.explain(error)
    if not host.startswith("https://"):
        return UsageError(
            f"invalid authority host {host!r}: it must be an https URL",
            f"set {_AUTHORITY.where()}, e.g. https://login.microsoftonline.com",
        )
    return ExchangeError(
        f"cannot use authority {host}/{tenant}: {text.splitlines()[0] if text else exc}",
        f"check {_AUTHORITY.env} and {BY_DEST['tenant_id'].env}",
    )
