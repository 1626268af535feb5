from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from azfed_helper.emulator.keys import SigningKey

from .conftest import run_cli


def assert_demo_succeeded(out: str, err: str) -> None:
    assert "second write       no-op" in out
    assert "aud=https://management.azure.com" in out
    assert "first run" in out
    assert "from Entra" in out
    assert "from the on-disk cache" in out
    assert "(AADSTS700213)" in out
    assert "the app registration needs: issuer https://accounts.google.com" in out
    # No JWT (three base64url parts starting with the '{"' header) anywhere in the output.
    assert "eyJ" not in out + err


def test_demo_runs_offline_and_never_prints_a_token() -> None:
    done = run_cli("demo")
    assert done.returncode == 0, done.stderr
    assert_demo_succeeded(done.stdout, done.stderr)


class Recorder:
    """A loopback listener that every hostile variable points at: it counts connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    running = Recorder()
    yield running
    running.close()


def hostile(recorder: Recorder, tmp_path: Path) -> dict[str, dict[str, str]]:
    """For each kind of variable the demo must ignore, values that would break it or send it
    to the recorder if it did not."""
    http = f"http://127.0.0.1:{recorder.port}"
    https = f"https://127.0.0.1:{recorder.port}"
    key = SigningKey.generate()
    key_file = tmp_path / "real-looking-key.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "real-project",
                "private_key_id": key.kid,
                "private_key": key.private_pem.decode(),
                "client_email": "real@real-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": http + "/token",
            }
        )
    )
    config_home = tmp_path / "xdg"
    (config_home / "azfed-helper").mkdir(parents=True)
    (config_home / "azfed-helper" / "config.toml").write_text("this is [not toml\n")
    missing = str(tmp_path / "missing.pem")
    proxies = {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
    return {
        "google": {
            "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
            "GCE_METADATA_HOST": f"127.0.0.1:{recorder.port}",
            "GCE_METADATA_IP": f"127.0.0.1:{recorder.port}",
        },
        "azfed": {
            "AZFED_CONFIG": str(tmp_path / "missing.toml"),
            "AZFED_PROFILE": "nope",
            "AZFED_AUTHORITY_HOST": https,
            "AZFED_TENANT_ID": "11111111-2222-3333-4444-555555555555",
            "AZFED_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
            "AZFED_AUDIENCE": "api://wrong",
            "AZFED_IAM_ENDPOINT": http,
            "AZFED_IMPERSONATE": "other@real-project.iam.gserviceaccount.com",
            "AZFED_CACHE_DIR": "/proc/no-cache-here",
            "AZFED_SOURCE": "github-actions",
        },
        "config file": {"XDG_CONFIG_HOME": str(config_home)},
        "azure": {
            "AZURE_AUTHORITY_HOST": https,
            "AZURE_TENANT_ID": "11111111-2222-3333-4444-555555555555",
            "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
            "AZURE_CLIENT_SECRET": "s3cret",
            "AZURE_FEDERATED_TOKEN_FILE": "/proc/no-token-here",
        },
        "proxy": {
            **{name: http for name in proxies},
            **{name.lower(): http for name in proxies},
            "NO_PROXY": "",
            "no_proxy": "",
        },
        "ca": {
            name: missing
            for name in (
                "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE",
                "SSL_CERT_FILE",
                "SSL_CERT_DIR",
                "NODE_EXTRA_CA_CERTS",
            )
        },
        "managed identity and CI": {
            "IDENTITY_ENDPOINT": http + "/msi/token",
            "IDENTITY_HEADER": "x",
            "MSI_ENDPOINT": http + "/msi/token",
            "MSI_SECRET": "x",
            "ARM_USE_MSI": "true",
            "ARM_MSI_ENDPOINT": http + "/metadata/identity/oauth2/token",
            "KUBERNETES_EXEC_INFO": "{not json",
            "ACTIONS_ID_TOKEN_REQUEST_URL": https + "/idtoken?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x",
        },
    }


KINDS = ["google", "azfed", "config file", "azure", "proxy", "ca", "managed identity and CI"]


@pytest.mark.parametrize("kind", [*KINDS, "all at once"])
def test_demo_is_sealed_from_the_users_environment(
    kind: str, recorder: Recorder, tmp_path: Path
) -> None:
    variables = hostile(recorder, tmp_path)
    env = (
        {name: value for values in variables.values() for name, value in values.items()}
        if kind == "all at once"
        else variables[kind]
    )
    done = run_cli("demo", env=env)
    assert done.returncode == 0, done.stderr
    assert_demo_succeeded(done.stdout, done.stderr)
    assert recorder.connections == 0
