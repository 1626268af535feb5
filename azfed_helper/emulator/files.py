"""Credential files in the exact shapes Google's tools write, pointed at the emulator.

The product reads these files through google-auth, so tests exercise the real parsing
code paths rather than hand-built credential objects.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from .keys import SigningKey
from .state import EmulatorState, numeric_id

USER_EMAIL = "emulated-user@example.com"
USER_CLIENT_ID = "000000000000-emulated.apps.googleusercontent.com"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 (a URN)


def write_private_json(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write JSON readable by the owner only (mode 0600), as real key files should be."""
    from .._internal.tokenwriter import write_atomic

    target = Path(path)
    write_atomic(os.fspath(target), (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    return target


def service_account_info(state: EmulatorState, email: str | None = None) -> dict[str, Any]:
    """A fresh ``service_account`` key whose public half the emulator will accept.

    ``universe_domain`` is left out on purpose: with it google-auth may switch to
    self-signed JWTs and skip the token endpoint.
    """
    email = email or state.service_account_email
    key = SigningKey.generate()
    state.register_service_account_key(key.kid, email, key.public_pem)
    return {
        "type": "service_account",
        "project_id": state.project_id,
        "private_key_id": key.kid,
        "private_key": key.private_pem.decode("ascii"),
        "client_email": email,
        "client_id": numeric_id(email),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": state.token_uri,
        "auth_provider_x509_cert_url": state.google_url + "/oauth2/v1/certs",
        "client_x509_cert_url": f"{state.google_url}/robot/v1/metadata/x509/{email}",
    }


def authorized_user_info(state: EmulatorState) -> dict[str, Any]:
    """gcloud's ``authorized_user`` ADC, with a refresh token the emulator will honour."""
    refresh_token = "1//emulated-" + secrets.token_urlsafe(24)
    state.register_refresh_token(refresh_token, USER_EMAIL)
    return {
        "type": "authorized_user",
        "account": "",
        "client_id": USER_CLIENT_ID,
        "client_secret": "emulated-" + secrets.token_urlsafe(12),
        "refresh_token": refresh_token,
        "token_uri": state.token_uri,
    }


def impersonation_url(state: EmulatorState, email: str) -> str:
    """The IAM ``generateAccessToken`` URL for ``email`` on the emulator."""
    return f"{state.google_url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"


def external_account_info(
    state: EmulatorState, subject_token_file: str | os.PathLike[str], impersonate_email: str | None
) -> dict[str, Any]:
    """A workload identity federation config reading its subject token from a file."""
    info: dict[str, Any] = {
        "type": "external_account",
        "audience": (
            f"//iam.googleapis.com/projects/{state.project_number}/locations/global/"
            "workloadIdentityPools/emulated-pool/providers/emulated-provider"
        ),
        "subject_token_type": JWT_TOKEN_TYPE,
        "token_url": state.google_url + "/sts/v1/token",
        "credential_source": {"file": os.fspath(subject_token_file)},
    }
    if impersonate_email:
        info["service_account_impersonation_url"] = impersonation_url(state, impersonate_email)
    return info


def impersonated_info(state: EmulatorState, target_email: str, source: str) -> dict[str, Any]:
    """``gcloud auth application-default login --impersonate-service-account`` output."""
    if source == "authorized_user":
        source_info = authorized_user_info(state)
    elif source == "service_account":
        source_info = service_account_info(state)
    else:
        raise ValueError("source must be 'authorized_user' or 'service_account'")
    return {
        "type": "impersonated_service_account",
        "delegates": [],
        "service_account_impersonation_url": impersonation_url(state, target_email),
        "source_credentials": source_info,
    }
