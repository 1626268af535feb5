"""Google ID token → Azure access token, through MSAL's confidential client.

The only module that imports msal and requests (inside functions). One :class:`Exchange` per app
registration (tenant, client, authority host). With the persistent cache, each acquisition holds the
cache lock across load → acquire → write-if-changed and first re-checks the file, so N processes
racing on a cold cache make one request to Entra. MSAL's ``http_cache`` is persisted too, but only
its successful discovery GETs: MSAL also keeps 5xx/429 answers (5 s) and 400s (60 s) there, and
replaying another process's failure would be wrong. Every retry gets a fresh MSAL client whose
``http_cache`` holds only those discovery entries, so a retried 5xx really goes back to Entra.
Persisted entries are trusted only when they point at the configured authority host (see
:func:`_restore`). A failure to get the Google assertion, which MSAL calls mid-request, is the
source's failure: reported once, never retried as if Entra had failed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import net, sources
from ..errors import AzfedError, ExchangeError, SourceError, UsageError
from . import aadsts, cache
from .assertion import AssertionSource
from .cache import AccessToken

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import msal
    import requests

    from ..config import Settings

ATTEMPTS = 4
BACKOFF = 0.5  # seconds before the 2nd attempt, doubled after each further one
_INDEX = "_index_"  # where MSAL's ExpiringMapping keeps (heap, {key: [expires_at, created_at]})


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
        self._http_records = _records_from(http_text)
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
            http_cache = _restore(self._http_records, self.settings.authority_host)
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
            self._http_records = _persistable(http_cache, before)
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
        raise aadsts.explain(
            result,
            claims,
            settings.audience,
            settings.origins.get("audience"),
            sources.expected_issuer(settings),
        )


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
            "set AZURE_AUTHORITY_HOST / --authority-host, e.g. https://login.microsoftonline.com",
        )
    return ExchangeError(
        f"cannot use authority {host}/{tenant}: {text.splitlines()[0] if text else exc}",
        "check AZURE_AUTHORITY_HOST and AZURE_TENANT_ID",
    )


# -- MSAL's http_cache, persisted as JSON (never pickle: the file would run code on load) ------


def _records_from(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        records = json.loads(text)
    except ValueError:
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _persistable(http_cache: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """The live, successful GETs (discovery documents) in an MSAL ``http_cache``, as records."""
    try:
        _heap, timestamps = http_cache.get(_INDEX, ([], {}))
        records = []
        for key, (expires_at, created_at) in sorted(timestamps.items()):
            response = http_cache.get(key)
            status = getattr(response, "status_code", 0)
            if (
                response is not None
                and key.startswith("GET ")
                and 200 <= status < 300
                and expires_at > now
            ):
                records.append(
                    {
                        "key": key,
                        "expires_at": int(expires_at),
                        "created_at": int(created_at),
                        "status_code": status,
                        "text": response.text,
                        "headers": dict(response.headers),
                    }
                )
        return records
    except (AttributeError, TypeError, ValueError):
        return []  # MSAL changed its layout: lose the optimisation, not the exchange


def _restore(records: list[dict[str, Any]], authority_host: str) -> dict[str, Any]:
    """A fresh MSAL ``http_cache`` holding the given discovery records that are safe to trust.

    A record is used only if its URL and every endpoint in its answer are https on the configured
    authority host: the file may have been edited, and MSAL would send the client assertion (the
    Google ID token) to whatever token endpoint it names. Others are dropped, so MSAL fetches
    discovery afresh and the answer it gets replaces them in the file.
    """
    try:
        from msal.throttled_http_client import NormalizedResponse
    except ImportError:  # MSAL moved it: lose the optimisation, not the exchange
        return {}

    class _Raw:
        def __init__(self, record: dict[str, Any]) -> None:
            self.status_code = int(record["status_code"])
            self.text = str(record["text"])
            self.headers = dict(record.get("headers") or {})

    now = int(time.time())
    mapping: dict[str, Any] = {}
    heap: list[list[Any]] = []
    timestamps: dict[str, list[int]] = {}
    try:
        for record in records:
            key, expires_at, created_at = (
                str(record["key"]),
                int(record["expires_at"]),
                int(record["created_at"]),
            )
            if not created_at <= now < expires_at or not _trusted(key, record, authority_host):
                continue
            mapping[key] = NormalizedResponse(_Raw(record))
            heap.append([expires_at, created_at, key])
            timestamps[key] = [expires_at, created_at]
    except (KeyError, TypeError, ValueError):
        return {}
    heap.sort()  # a sorted list is a valid heap
    mapping[_INDEX] = (heap, timestamps)
    return mapping


# The fields of an OpenID configuration that MSAL requests, redirects or trusts.
_ENDPOINTS = (
    "token_endpoint",
    "authorization_endpoint",
    "device_authorization_endpoint",
    "end_session_endpoint",
    "jwks_uri",
    "issuer",
)


def _trusted(key: str, record: dict[str, Any], authority_host: str) -> bool:
    """True for a persisted discovery answer from the authority host that points only there."""
    parts = key.split()
    if len(parts) < 2 or parts[0] != "GET" or not _on_host(parts[1], authority_host):
        return False
    try:
        document = json.loads(str(record["text"]))
    except ValueError:
        return False
    if not isinstance(document, dict) or "token_endpoint" not in document:
        return False
    return all(_on_host(document[name], authority_host) for name in _ENDPOINTS if name in document)


def _on_host(url: object, authority_host: str) -> bool:
    """True if ``url`` is https on the same host and port as ``authority_host``."""
    import urllib.parse

    if not isinstance(url, str):
        return False
    try:
        parsed, authority = urllib.parse.urlsplit(url), urllib.parse.urlsplit(authority_host)
        return (
            parsed.scheme == "https"
            and authority.scheme == "https"
            and parsed.hostname is not None
            and parsed.hostname == authority.hostname
            and (parsed.port or 443) == (authority.port or 443)
            and not parsed.username
            and not parsed.password
        )
    except ValueError:  # an invalid port
        return False
