"""Google credentials: which kind a file holds and whose identity it gives (no network, no
google-auth: :func:`detect`), and the google-auth credentials that call IAM for an impersonated
ID token (google-auth imported inside the functions that build them).

Unlike google-auth's ``fetch_id_token``, a credentials file of a type that cannot mint ID tokens
is an error that says so: a silent fall back to the metadata server would mint a token for the
wrong identity.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import UsageError
from ..options import BY_DEST

if TYPE_CHECKING:
    import google.auth.credentials

_IMPERSONATE = BY_DEST["impersonate"].where()
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_IMPERSONATION_URL = re.compile(r"serviceAccounts/([^/:]+):generateAccessToken")
_NEEDS_IMPERSONATION = ("authorized_user", "external_account", "external_account_authorized_user")
_SOURCE_TYPES = ("service_account", *_NEEDS_IMPERSONATION)
_KNOWN_TYPES = ("impersonated_service_account", *_SOURCE_TYPES)


def metadata_host() -> str:
    """The metadata server's ``host[:port]``, read now (google-auth reads it at import time)."""
    host = os.environ.get("GCE_METADATA_HOST") or os.environ.get("GCE_METADATA_ROOT")
    return host or "metadata.google.internal"


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
            text = f"the metadata server at {metadata_host()}"
        return f"{text}, impersonating {self.impersonate}" if self.impersonate else text


def load_credentials_info(path: str) -> dict[str, Any]:
    """Read a credentials JSON file; every way it can be wrong is a usage error naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            info = json.load(handle)
    except FileNotFoundError as exc:
        raise UsageError(
            f"credentials file {path} does not exist",
            f"fix {BY_DEST['credentials'].where()}, or unset it to use the metadata server",
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
            f"external_account credentials together with {_IMPERSONATE}",
        )
    target = settings.impersonate
    if kind in ("external_account", "impersonated_service_account") and not target:
        match = _IMPERSONATION_URL.search(str(info.get("service_account_impersonation_url", "")))
        target = match.group(1) if match else None
    if kind == "impersonated_service_account" and not target:
        raise UsageError(
            f"impersonation file {path} names no target service account",
            f"give {_IMPERSONATE}, or recreate the file with gcloud",
        )
    if kind in _NEEDS_IMPERSONATION and not target:
        raise UsageError(
            f"{kind} credentials in {path} cannot mint an ID token for an audience of your choosing",
            f"impersonate a service account: {_IMPERSONATE} (the caller needs "
            "roles/iam.serviceAccountOpenIdTokenCreator on it)",
        )
    return Source(kind, path, target), info


def caller_credentials(
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
