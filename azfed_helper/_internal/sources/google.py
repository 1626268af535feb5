"""Where Google ID tokens come from: key files, the metadata server, impersonation.

This is the only module that imports google-auth, and it does so inside functions: the no-op
``write`` path never loads it. Unlike google-auth's ``fetch_id_token``, we never fall through to the
metadata server when a credentials file of another type is configured: a silent fallback would mint
a token for the wrong identity.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import SourceError, UsageError

if TYPE_CHECKING:
    import google.auth.credentials
    import google.auth.transport.requests

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
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
            host = os.environ.get("GCE_METADATA_HOST") or "metadata.google.internal"
            text = f"the metadata server at {host}"
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


def fetch(settings: Settings) -> str:
    """Mint a Google ID token for ``settings.audience`` from the detected source; return the JWT."""
    source, info = detect(settings)
    request = _request(settings.source_timeout)
    from google.auth import exceptions

    try:
        if source.kind == "metadata" and not source.impersonate:
            return _from_metadata(request, settings)
        credentials = _id_token_credentials(source, info, settings)
        with _iam_endpoint(settings.iam_endpoint):
            credentials.refresh(request)
        return str(credentials.token)
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
    return "check network access to Google's token endpoints (oauth2/iamcredentials googleapis.com)"


def _request(timeout: float) -> google.auth.transport.requests.Request:
    """A google-auth transport whose calls never wait longer than ``timeout`` seconds."""
    import google.auth.transport.requests

    limit = timeout

    class BoundedRequest(google.auth.transport.requests.Request):
        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: Any = None,
            headers: Any = None,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            return super().__call__(
                url, method, body, headers, min(timeout or limit, limit), **kwargs
            )

    return BoundedRequest()


def _from_metadata(request: Any, settings: Settings) -> str:
    """Ask the metadata server directly: google-auth's helper forces ``format=full``."""
    from google.auth.compute_engine import _metadata

    # Read the host now, not at google-auth's import time, so a changed environment is honoured.
    host = os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_ROOT")
    params = {"audience": settings.audience, "format": settings.token_format}
    token = _metadata.get(
        request,
        "instance/service-accounts/default/identity",
        root=f"http://{host or 'metadata.google.internal'}/computeMetadata/v1/",
        params=params,
        retry_count=3,
        timeout=settings.source_timeout,
    )
    return str(token).strip()


_IAM_LOCK = threading.Lock()


@contextmanager
def _iam_endpoint(base: str | None) -> Iterator[None]:
    """Point google-auth's IAM Credentials calls at ``base`` (Private Service Connect, emulator)
    for one refresh. google-auth takes the generateIdToken URL from a module global only, so it
    is set under a lock and restored after: another Settings in this process is not affected."""
    if not base:
        yield
        return
    from google.auth import iam

    root = base.rstrip("/") + "/v1/projects/-/serviceAccounts/{}"
    with _IAM_LOCK:
        saved = iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT
        iam._IAM_ENDPOINT = root + ":generateAccessToken"
        iam._IAM_IDTOKEN_ENDPOINT = root + ":generateIdToken"
        try:
            yield
        finally:
            iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT = saved


def _id_token_credentials(
    source: Source, info: dict[str, Any] | None, settings: Settings
) -> google.auth.credentials.Credentials:
    """google-auth credentials whose ``refresh`` yields an ID token for the audience."""
    audience = settings.audience
    if source.kind == "service_account" and not source.impersonate:
        from google.oauth2 import service_account

        return service_account.IDTokenCredentials.from_service_account_info(
            info, target_audience=audience
        )
    from google.auth import impersonated_credentials

    delegates = None
    if source.kind == "impersonated_service_account":
        # gcloud's impersonation file: build its source ourselves so that a token_uri in it is
        # honoured exactly as for a plain key or user file.
        assert info is not None
        source_info = info.get("source_credentials")
        if not isinstance(source_info, dict) or source_info.get("type") not in _SOURCE_TYPES:
            raise UsageError(
                f"impersonation file {source.path} has no usable 'source_credentials'",
                "recreate it with `gcloud auth application-default login --impersonate-service-account`",
            )
        delegates = info.get("delegates") or None
        info = source_info
    target = impersonated_credentials.Credentials(
        source_credentials=_source_credentials(str(info["type"]) if info else "metadata", info),
        target_principal=source.impersonate,
        target_scopes=[CLOUD_PLATFORM],
        delegates=delegates,
    )
    return impersonated_credentials.IDTokenCredentials(
        target, target_audience=audience, include_email=True
    )


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
