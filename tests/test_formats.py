"""Output shapes of `azfed-helper token` (what az, kubectl and shells expect)."""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess

import pytest

from azfed_helper._internal import formats
from azfed_helper._internal.entra.cache import AccessToken
from azfed_helper._internal.errors import UsageError

TOKEN = AccessToken("eyJ.abc'def.sig", 1_900_000_000)


def test_json_has_az_fields_and_az_time_formats() -> None:
    data = json.loads(formats.render("json", TOKEN, "tenant-1"))
    assert sorted(data) == ["accessToken", "expiresOn", "expires_on", "tenant", "tokenType"]
    assert data["expires_on"] == 1_900_000_000
    local = datetime.datetime.strptime(data["expiresOn"], "%Y-%m-%d %H:%M:%S.%f")
    assert local.timestamp() == 1_900_000_000  # naive = local time, as az prints it
    assert (data["accessToken"], data["tenant"], data["tokenType"]) == (
        TOKEN.token,
        "tenant-1",
        "Bearer",
    )


def test_exec_credential_default_and_requested_versions() -> None:
    data = json.loads(formats.render("exec-credential", TOKEN, "t"))
    assert data["apiVersion"] == "client.authentication.k8s.io/v1"
    assert data["kind"] == "ExecCredential"
    assert data["status"] == {"token": TOKEN.token, "expirationTimestamp": "2030-03-17T17:46:40Z"}
    info = json.dumps(
        {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
    )
    assert json.loads(formats.render("exec-credential", TOKEN, "t", info))["apiVersion"].endswith(
        "v1beta1"
    )


@pytest.mark.parametrize(
    "info", ["not json", '{"apiVersion": "client.authentication.k8s.io/v1alpha1"}']
)
def test_exec_credential_refuses_what_it_cannot_honour(info: str) -> None:
    with pytest.raises(UsageError):
        formats.render("exec-credential", TOKEN, "t", info)


def test_env_is_shell_safe() -> None:
    text = formats.render("env", TOKEN, "t")
    out = subprocess.run(
        ["sh", "-c", f'{text}\nprintf %s "$AZURE_ACCESS_TOKEN"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == TOKEN.token
    assert shlex.split(text.splitlines()[1]) == [
        "export",
        "AZURE_ACCESS_TOKEN_EXPIRES_ON=1900000000",
    ]


def test_raw_is_the_token() -> None:
    assert formats.render("raw", TOKEN, "t") == TOKEN.token


@pytest.mark.parametrize(
    "word", ["", "plain", "a b", "it's", "$HOME", "x=y,z", "ümlaut", "a\nb", "--x"]
)
def test_shell_quote_is_shlex_quote(word: str) -> None:
    import shlex

    from azfed_helper._internal.shell import quote

    assert quote(word) == shlex.quote(word)
