"""The JavaScript Azure SDK (@azure/identity from npm, pinned in tests/js/package-lock.json) run by
node against `azfed-helper serve` and the emulator: managed identity through the App Service
variables and through the IMDS route, and workload identity from a token file.

scripts/test installs the packages into build/js once (`npm ci`); without node/npm, or without
that install, these tests skip and say why. Node sees only the variables each test hands it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO, run_cli
from .test_demo import Recorder
from .test_serve_cli import Serve

JS_DIR = Path(os.environ.get("AZFED_TEST_JS_DIR") or REPO / "build" / "js")
LOCK = REPO / "tests" / "js" / "package-lock.json"
SCRIPT = REPO / "tests" / "js" / "get_token.cjs"
MIN_NODE = 20  # @azure/identity 4.13.1 and msal-node 5.6 declare node >= 20
ARM = "https://management.azure.com/.default"
VAULT = "https://vault.azure.net/.default"
# Anything not meant for loopback would hit this closed port instead of the internet.
PROXY_BACKSTOP = "http://127.0.0.1:9"


def _unavailable() -> str | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node and npm are not installed (CI installs them with apt-get when it can)"
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if not major.isdecimal() or int(major) < MIN_NODE:
        return f"node {version or '(unknown)'} is older than {MIN_NODE}, which @azure/identity 4.13 needs"
    marker = JS_DIR / ".azfed-complete"
    if not marker.is_file() or marker.read_bytes() != LOCK.read_bytes():
        return f"@azure/identity is not installed in {JS_DIR}: run ./scripts/test (it runs npm ci there)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _node_and_packages() -> None:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)


def run_node(credential: str, env: dict[str, str], *scopes: str) -> dict[str, Any]:
    """Run the script with exactly ``env`` (plus PATH, a home and NODE_PATH)."""
    base = {
        "PATH": os.environ["PATH"],
        "HOME": env.pop("HOME"),
        "NODE_PATH": str(JS_DIR / "node_modules"),
    }
    done = subprocess.run(
        ["node", str(SCRIPT), credential, *scopes],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd="/",
    )
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert (done.returncode == 0) == ("tokens" in answer), done.stderr
    return answer


def assert_app_token(token: dict[str, Any], emulator: Any, resource: str) -> None:
    claims = token["claims"]
    assert claims["aud"] == resource
    assert claims["tid"] == emulator.tenant_id and claims["appid"] == emulator.client_id
    assert claims["iss"] == f"https://sts.windows.net/{emulator.tenant_id}/"
    assert token["expiresOnTimestamp"] > (time.time() + 3000) * 1000


@pytest.fixture
def home(tmp_path: Path) -> str:
    directory = tmp_path / "node-home"
    directory.mkdir()
    return str(directory)


def start_serve(emulator: Any, tmp_path: Path, *args: str) -> Serve:
    return Serve(
        {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}, tmp_path / "mi.env", *args
    )


@pytest.fixture
def app_service(emulator: Any, tmp_path: Path, home: str) -> Iterator[dict[str, str]]:
    """``serve`` and the variables ``env --for managed-identity`` hands out, nothing else."""
    running = start_serve(emulator, tmp_path)
    shown = run_cli(
        "env", "--for", "managed-identity", "--env-file", str(running.env_file), "--format", "json"
    )
    assert shown.returncode == 0, shown.stderr
    yield {**json.loads(shown.stdout), "HTTP_PROXY": PROXY_BACKSTOP, "HOME": home}
    running.stop()


@pytest.fixture
def imds(emulator: Any, tmp_path: Path, home: str) -> Iterator[dict[str, str]]:
    """``serve --imds`` found through AZURE_POD_IDENTITY_AUTHORITY_HOST, with no secret at all."""
    running = start_serve(emulator, tmp_path, "--imds")
    endpoint = next(
        line.split("=", 1)[1]
        for line in running.env_file.read_text().splitlines()
        if line.startswith("export IDENTITY_ENDPOINT=")
    )
    host = urllib.parse.urlsplit(endpoint.strip("'\""))
    yield {
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{host.netloc}",
        "HTTP_PROXY": PROXY_BACKSTOP,
        "NO_PROXY": "127.0.0.1,localhost",
        "HOME": home,
    }
    running.stop()


@pytest.mark.parametrize("credential", ["managed-identity", "default"])
def test_managed_identity_through_the_app_service_variables(
    credential: str, app_service: dict[str, str], emulator: Any
) -> None:
    assert set(app_service) == {
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "NO_PROXY",
        "HTTP_PROXY",
        "HOME",
    }
    answer = run_node(credential, app_service, ARM, VAULT)
    arm, vault = answer["tokens"]
    assert_app_token(arm, emulator, "https://management.azure.com")
    assert_app_token(vault, emulator, "https://vault.azure.net")
    assert emulator.counts["entra.token"] == 2


def test_managed_identity_with_a_wrong_secret_shows_the_servers_message(
    app_service: dict[str, str],
) -> None:
    answer = run_node("managed-identity", {**app_service, "IDENTITY_HEADER": "wrong"}, ARM)
    assert "missing or wrong X-IDENTITY-HEADER" in answer["error"]["message"]


@pytest.mark.parametrize("credential", ["managed-identity", "default"])
def test_managed_identity_through_imds_and_the_pod_identity_host(
    credential: str, imds: dict[str, str], emulator: Any
) -> None:
    answer = run_node(credential, imds, ARM)
    assert_app_token(answer["tokens"][0], emulator, "https://management.azure.com")
    assert emulator.counts["entra.token"] == 1


@pytest.fixture
def workload_env(emulator: Any, home: str) -> dict[str, str]:
    """The four variables of the AKS webhook, the emulator's CA for node, and a proxy backstop."""
    env = emulator.env()
    return {
        "AZURE_AUTHORITY_HOST": env["AZURE_AUTHORITY_HOST"],
        "AZURE_TENANT_ID": env["AZURE_TENANT_ID"],
        "AZURE_CLIENT_ID": env["AZURE_CLIENT_ID"],
        "NODE_EXTRA_CA_CERTS": env["NODE_EXTRA_CA_CERTS"],
        "HTTPS_PROXY": PROXY_BACKSTOP,
        "NO_PROXY": "127.0.0.1,localhost",
        "HOME": home,
    }


def test_workload_identity_with_the_token_file_azfed_helper_writes(
    emulator: Any, workload_env: dict[str, str], tmp_path: Path
) -> None:
    token_file = tmp_path / "azure-federated-token"
    written = run_cli("write", "--token-file", str(token_file), env=emulator.env())
    assert written.returncode == 0, written.stderr
    workload_env["AZURE_FEDERATED_TOKEN_FILE"] = str(token_file)
    answer = run_node("workload-identity", workload_env, ARM)
    assert_app_token(answer["tokens"][0], emulator, "https://management.azure.com")
    assert emulator.counts["entra.token"] == 1


def test_workload_identity_with_a_kubelet_projected_token(
    emulator: Any, workload_env: dict[str, str], tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens" / "azure-identity-token"
    emulator.start_projected_token_file(token_file, lifetime=600)
    emulator.add_kubernetes_credential()
    workload_env["AZURE_FEDERATED_TOKEN_FILE"] = str(token_file)
    answer = run_node("workload-identity", workload_env, VAULT)
    assert_app_token(answer["tokens"][0], emulator, "https://vault.azure.net")


def test_workload_identity_needs_instance_discovery_disabled_against_an_emulator(
    emulator: Any, workload_env: dict[str, str], tmp_path: Path
) -> None:
    """Without ``disableInstanceDiscovery`` msal-node first asks login.microsoftonline.com about
    the unknown host: here that request reaches only a recording proxy, and no token comes."""
    token_file = tmp_path / "azure-federated-token"
    token_file.write_text(emulator.mint_google_id_token())
    proxy = Recorder()
    try:
        workload_env.update(
            AZURE_FEDERATED_TOKEN_FILE=str(token_file), HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}"
        )
        answer = run_node("workload-identity-with-discovery", workload_env, ARM)
    finally:
        proxy.close()
    assert "error" in answer and proxy.connections >= 1
    assert emulator.counts["entra.token"] == 0
