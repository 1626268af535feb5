"""Google ID token → Azure access token, through MSAL's confidential client.

The only module that imports msal and requests (inside functions). One :class:`Exchange` per app
registration (tenant, client, authority host). With the persistent cache, each acquisition holds the
cache lock across load → acquire → write-if-changed and first re-checks the file, so N processes
racing on a cold cache make one request to Entra. MSAL's ``http_cache`` is persisted too, but only
its successful discovery GETs: MSAL also keeps 5xx/429 answers (5 s) and 400s (60 s) there, and
replaying another process's failure would be wrong. Every retry gets a fresh MSAL client whose
``http_cache`` holds only those discovery entries, so a retried 5xx really goes back to Entra.
Persisted entries are trusted only when they point at the configured authority host (see
:func:`httpcache.restore`). A failure to get the Google assertion, which MSAL calls mid-request, is the
source's failure: reported once, never retried as if Entra had failed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import net
from ..errors import AzfedError, ExchangeError, SourceError, UsageError
from . import aadsts, cache, httpcache
from .assertion import AssertionSource
from .cache import AccessToken

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import msal
    import requests

    from ..config import Settings

ATTEMPTS = 4
BACKOFF = 0.5  # seconds before the 2nd attempt, doubled after each further one


class Exchange:
    """Acquire access tokens for one app registration; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        assertion: Callable[[], str] | None = None,
        *,
        persistent: bool = True,
        verify: bool | str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff: float = BACKOFF,
    ) -> None:
        self.settings = settings
        self.tenant_id, self.client_id = settings.require_app()
        self.assertion = assertion or AssertionSource(settings)
        self.persistent = persistent
        self.directory = cache.cache_dir(settings) if persistent else ""
        self.verify = verify
        self.sleep = sleep
        self.backoff = backoff
        self._lock = threading.Lock()
        self._memory_cache: msal.SerializableTokenCache | None = None
        self._http_records: list[dict[str, Any]] = []
        self._session: requests.Session | None = None
        self._assertion_failure: Exception | None = None

    @property
    def authority(self) -> str:
        return f"{self.settings.authority_host.rstrip('/')}/{self.tenant_id}"

    def acquire(self, scopes: Sequence[str], claims_challenge: str | None = None) -> AccessToken:
        """A token for ``scopes``: from the cache when MSAL would use it, else from Entra."""
        with self._lock:
            if self.persistent and not cache.usable_dir(self.directory):
                self.persistent = False  # warned once; this exchange keeps tokens in memory
            if not self.persistent:
                return self._acquire(list(scopes), claims_challenge, self._memory())
            with cache.locked(self.directory):
                if claims_challenge is None:
                    hit = cache.find_access_token(
                        self.directory,
                        self.client_id,
                        self.tenant_id,
                        self.settings.authority_host,
                        scopes,
                        now=time.time(),
                    )
                    if hit is not None:  # another process did the work while we waited
                        return hit
                return self._acquire_persistent(list(scopes), claims_challenge)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # -- cache plumbing --------------------------------------------------------------------

    def _memory(self) -> msal.SerializableTokenCache:
        if self._memory_cache is None:
            import msal

            self._memory_cache = msal.SerializableTokenCache()
        return self._memory_cache

    def _acquire_persistent(self, scopes: list[str], claims_challenge: str | None) -> AccessToken:
        import msal

        token_path = f"{self.directory}/{cache.TOKEN_CACHE}"
        http_path = f"{self.directory}/{cache.HTTP_CACHE}"
        token_cache = msal.SerializableTokenCache()
        text = cache.read_document(token_path, cache.msal_shaped)
        if text is not None:
            token_cache.deserialize(text)
        http_text = cache.read_document(http_path, cache.list_shaped)
        self._http_records = httpcache.records_from(http_text)
        try:
            return self._acquire(scopes, claims_challenge, token_cache)
        finally:
            if token_cache.has_state_changed:
                cache.write_document(token_path, token_cache.serialize())
            new_http_text = json.dumps(self._http_records, sort_keys=True)
            if self._http_records and new_http_text != http_text:
                cache.write_document(http_path, new_http_text)

    # -- the exchange itself ---------------------------------------------------------------

    def _acquire(
        self,
        scopes: list[str],
        claims_challenge: str | None,
        token_cache: msal.SerializableTokenCache,
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
            http_cache = httpcache.restore(self._http_records, self.settings.authority_host)
            before = time.time()
            self._assertion_failure = None
            try:
                app = self._app(token_cache, http_cache)
                result = app.acquire_token_for_client(scopes, claims_challenge=claims_challenge)
            except Exception as exc:
                if self._assertion_failure is not None:
                    error = _source_failure(self._assertion_failure)
                    raise error from error.__cause__  # not chained to MSAL's frames
                if not isinstance(
                    exc, (requests.RequestException, msal.exceptions.MsalServiceError)
                ):
                    raise
                if net.is_tls_failure(exc):
                    raise self._tls_error(exc) from exc
                failure = exc
                continue
            self._http_records = httpcache.persistable(http_cache, before)
            return self._result(result, before)
        raise ExchangeError(
            f"cannot get a token from Entra at {self.settings.authority_host} after {ATTEMPTS} "
            f"attempts: {self._reason(failure)}",
            "check network access to the authority host (proxy, firewall, DNS) and "
            "https://azure.status.microsoft for outages",
        ) from failure

    def _present_assertion(self) -> str:
        """What MSAL calls for the client assertion; remembers a failure, which MSAL passes on."""
        try:
            return self.assertion()
        except Exception as exc:
            self._assertion_failure = exc
            raise

    def _reason(self, exc: BaseException | None) -> str:
        """Why an Entra request failed, in a few words."""
        import msal.exceptions
        import requests

        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return f"HTTP {exc.response.status_code}"
        if isinstance(exc, msal.exceptions.MsalServiceError) and str(exc).startswith("HTTP Error"):
            return "HTTP" + str(exc)[len("HTTP Error:") :]  # MSAL's words for a 5xx
        if isinstance(exc, requests.Timeout):
            return f"no answer within {net.seconds(self.settings.entra_timeout)}"
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
            "otherwise check the system clock and AZURE_AUTHORITY_HOST",
        )

    def _app(
        self, token_cache: msal.SerializableTokenCache, http_cache: dict[str, Any]
    ) -> msal.ConfidentialClientApplication:
        import msal

        try:
            return msal.ConfidentialClientApplication(
                self.client_id,
                authority=self.authority,
                client_credential={"client_assertion": self._present_assertion},
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
        if self._session is None:
            import requests

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

            self._session = Session()
        return self._session

    def _result(self, result: dict[str, Any], before: float) -> AccessToken:
        if "access_token" in result:
            # expires_in is a duration; counting from before the request errs on the safe side.
            expires_on = int(before + int(result["expires_in"]))
            return AccessToken(
                str(result["access_token"]), expires_on, str(result.get("token_type", "Bearer"))
            )
        presented = getattr(self.assertion, "last", None)
        claims = presented.claims if presented is not None else None
        settings = self.settings
        raise aadsts.explain(result, claims, settings.audience, settings.origins.get("audience"))


def _source_failure(exc: Exception) -> AzfedError:
    """A failure to get the Google assertion, reported as the source's (never retried as Entra's).

    Ours (SourceError, InvalidTokenError ...) pass through unchanged; anything else is wrapped.
    """
    if isinstance(exc, AzfedError):
        return exc
    text = str(exc).strip().splitlines()
    error = SourceError(
        f"cannot get the Google ID token to present to Entra: {type(exc).__name__}"
        + (f": {text[0]}" if text else ""),
        "run `azfed-helper write` (or `doctor`) to see the Google token source's own error",
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
            "set AZURE_AUTHORITY_HOST / --authority-host, e.g. https://login.microsoftonline.com",
        )
    return ExchangeError(
        f"cannot use authority {host}/{tenant}: {text.splitlines()[0] if text else exc}",
        "check AZURE_AUTHORITY_HOST and AZURE_TENANT_ID",
    )
