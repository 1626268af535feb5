"""`azfed-helper doctor` against the emulator: passes when all is well, explains what is not."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from azfed_helper._internal.options import BY_DEST
from azfed_helper.emulator import FederatedCredential
from azfed_helper.emulator.entra import EntraApp
from azfed_helper.emulator.server import LoopbackServer, Reply, Request
from azfed_helper.emulator.tls import create_tls_files

from .conftest import cli_env, run_cli
from .ptyrun import run_in_pty


def doctor(
    emulator: Any, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    done = run_cli("doctor", "--json", *args, env={**emulator.env(), **(env or {})})
    assert "eyJ" not in done.stdout + done.stderr  # never a token
    return done.returncode, {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_healthy_setup_passes(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    code, checks = doctor(
        emulator, "--token-file", str(token_file), "--reader", "root", env={"PATH": "/usr/bin:/bin"}
    )
    assert code == 0, checks
    assert [c["status"] for c in checks.values()] == ["pass"] * 6 + ["skip"]  # no az on PATH
    shown = {line.split()[0]: line.split()[1:] for line in checks["configuration"]["details"]}
    assert shown["token-file"] == [str(token_file), "(flag)"]
    assert shown["client-id"] == [emulator.client_id, "(env", "AZURE_CLIENT_ID)"]
    assert checks["source"]["details"][0].startswith("google: the metadata server at 127.0.0.1:")
    command = checks["federated credential"]["details"][-1]
    argv = shlex.split(command)
    assert argv[:5] == ["az", "ad", "app", "federated-credential", "create"]
    assert argv[argv.index("--id") + 1] == emulator.client_id
    parameters = json.loads(argv[argv.index("--parameters") + 1])
    assert parameters["subject"] == emulator.service_account_id
    assert parameters["issuer"] == "https://accounts.google.com"
    assert parameters["audiences"] == ["api://AzureADTokenExchange"]
    assert "readable by root" in checks["token file"]["details"]
    assert "aud https://management.azure.com" in checks["entra exchange"]["details"][0]
    assert token_file.exists()
    assert emulator.counts["metadata.identity"] == 1  # one token minted, checked and written
    assert emulator.counts["metadata.ping"] == 1  # the source check: a metadata server answers
    assert checks["source"]["details"][1] == (
        "it answers as a metadata server (Metadata-Flavor: Google)"
    )


def test_problems_fail_with_their_fix(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    emulator.federated_credentials[:] = [FederatedCredential("https://accounts.google.com", "42")]
    code, checks = doctor(emulator, "--token-file", str(token_file), "--reader", "nobody")
    assert code == 1
    assert checks["token file"]["status"] == "fail"
    assert "NOT readable by nobody" in checks["token file"]["details"]
    assert "--group" in checks["token file"]["fix"]
    exchange = checks["entra exchange"]
    assert exchange["status"] == "fail"
    assert any("AADSTS700213" in line for line in exchange["details"])
    assert "federated credential" in exchange["fix"]


def test_missing_source_and_app(emulator: Any, tmp_path: Path) -> None:
    creds = emulator.write_authorized_user(tmp_path / "user.json")
    env = {"AZURE_CLIENT_ID": "", "GOOGLE_APPLICATION_CREDENTIALS": str(creds)}
    code, checks = doctor(emulator, env=env)
    assert code == 1
    assert checks["source"]["status"] == "fail"
    assert "--impersonate" in checks["source"]["fix"]
    assert checks["federated credential"]["status"] == "skip"
    assert checks["token file"]["status"] == "skip"
    assert checks["entra exchange"]["status"] == "skip"
    assert os.environ.get("AZURE_CLIENT_ID") is None


def test_off_google_cloud_the_source_check_fails_with_the_fix(emulator: Any) -> None:
    """No credentials and nothing answering at the metadata host: a failure, not a description."""
    credentials, impersonate = BY_DEST["credentials"], BY_DEST["impersonate"]
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        host = f"127.0.0.1:{held.getsockname()[1]}"
        code, checks = doctor(emulator, env={"GCE_METADATA_HOST": host})
    assert code == 1
    source = checks["source"]
    assert source["status"] == "fail"
    assert f"no metadata server answered at {host} (connection refused)" in source["details"][0]
    assert f"{credentials.env} is not set" in source["details"][0]
    assert credentials.where() in source["fix"]
    assert impersonate.where() in source["fix"]
    assert "run on Google Cloud" in source["fix"]
    assert checks["id token"]["status"] == "skip"  # not a second wait for the same answer
    assert checks["entra exchange"]["status"] == "skip"
    assert emulator.counts["metadata.identity"] == 0


def test_a_server_that_is_not_a_metadata_server_fails_the_source_check(emulator: Any) -> None:
    class NotMetadata(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotMetadata)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        code, checks = doctor(emulator, env={"GCE_METADATA_HOST": host})
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    source = checks["source"]
    assert source["status"] == "fail"
    assert (
        f"a server answered at {host} (HTTP 404) but it is not a metadata server"
        in (source["details"][0])
    )
    assert BY_DEST["credentials"].where() in source["fix"]


def test_each_check_is_printed_as_it_finishes(emulator: Any, tmp_path: Path) -> None:
    """A slow Entra (its answers held until the test releases them): the earlier checks are
    already on stdout, a pipe, while the exchange waits."""
    tls = create_tls_files(tmp_path)  # the gate's own CA, trusted beside the emulator's
    bundle = tmp_path / "cas.pem"
    bundle.write_text(Path(emulator.ca_file).read_text() + tls.ca_file.read_text())
    entra, waiting, release = EntraApp(emulator), threading.Event(), threading.Event()

    def held(request: Request) -> Reply:
        waiting.set()
        release.wait(60)
        return entra(request)

    gate = LoopbackServer(held, tls.server_context())
    gate.start()
    emulator.authority_host = f"https://127.0.0.1:{gate.port}"  # discovery names the gate too
    env = {**emulator.env(), "REQUESTS_CA_BUNDLE": str(bundle), "CURL_CA_BUNDLE": str(bundle)}
    seen: list[str] = []
    before_entra = threading.Event()

    def read(stream: IO[str]) -> None:
        for line in stream:
            seen.append(line.rstrip("\n"))
            if line.startswith("[PASS] token file"):
                before_entra.set()

    argv = [sys.executable, "-m", "azfed_helper", "doctor", "--token-file", str(tmp_path / "t"),
            "--entra-timeout", "100s"]  # fmt: skip
    with subprocess.Popen(
        argv, env=cli_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        reader = threading.Thread(target=read, args=(process.stdout,))
        reader.start()
        try:
            # Backstops only: Entra answers nothing before release, whatever the time.
            assert waiting.wait(60), seen
            assert before_entra.wait(60), seen
            assert not release.is_set() and process.poll() is None
            shown = [line[1:].split("] ")[1] for line in list(seen) if line.startswith("[")]
            assert shown == [
                "configuration", "source", "id token", "federated credential",
                "token file",
            ]  # fmt: skip
        finally:
            release.set()
            code = process.wait(60)
            reader.join(60)
            gate.stop()
    assert code == 0, seen
    statuses = [line for line in seen if line.startswith("[")]
    assert statuses[-2][:6] == "[PASS]" and statuses[-2].endswith("entra exchange")
    assert seen[-1] == "all checks passed"


def test_colour_on_a_terminal_only(emulator: Any, tmp_path: Path) -> None:
    """Green/red/yellow words on a terminal; none with NO_COLOR or through a pipe. Text from the
    token (a crafted email claim) is escaped, not coloured and not able to colour."""
    emulator.service_account_email = "evil\x1b]0;owned\x07\x1b[2J@p.iam.gserviceaccount.com"
    env = {**emulator.env(), "PATH": "/usr/bin:/bin"}  # no az: the last check is skipped
    args = ("doctor", "--token-file", str(tmp_path / "token"))
    code, text = run_in_pty(*args, env=dict(env))
    assert code == 1  # the crafted account's sub is not on the app registration
    assert "\x1b[32m[PASS]\x1b[0m configuration" in text
    assert "\x1b[31m[FAIL]\x1b[0m entra exchange" in text
    assert "\x1b[33m[SKIP]\x1b[0m azure cli" in text
    assert "\x1b[31m1 failed\x1b[0m: entra exchange" in text
    assert "email: evil\\x1b]0;owned\\x07\\x1b[2J@p.iam" in text
    assert "\x1b]0;" not in text and "\x1b[2J" not in text
    for no_colour in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        code, text = run_in_pty(*args, env={**env, **no_colour})
        assert code == 1
        assert "[PASS] configuration" in text and "\x1b[" not in text
    piped = run_cli(*args, env=env)
    assert piped.returncode == 1
    assert "[FAIL] entra exchange" in piped.stdout and "\x1b" not in piped.stdout


def _federated_credential(checks: dict[str, Any]) -> dict[str, Any]:
    """The parameters of the printed `az ad app federated-credential create` command."""
    argv = shlex.split(checks["federated credential"]["details"][-1])
    assert argv[:5] == ["az", "ad", "app", "federated-credential", "create"]
    parameters: dict[str, Any] = json.loads(argv[argv.index("--parameters") + 1])
    return parameters


def test_github_actions_source_is_explained(emulator: Any) -> None:
    """In a job with id-token: write: the endpoint (never the bearer), GitHub's claims, the
    credential the app needs; once it exists, the exchange passes."""
    runner = emulator.github_actions_env()
    code, checks = doctor(emulator, env=runner)
    assert code == 1  # the app does not trust the job yet
    source = checks["source"]["details"]
    assert source[0].startswith("github-actions: the GitHub Actions OIDC endpoint https://")
    assert source[-1] == "expected issuer: https://token.actions.githubusercontent.com"
    assert runner["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] not in json.dumps(checks)
    token = checks["id token"]["details"]
    assert "sub: repo:emulated-org/emulated-repo:ref:refs/heads/main" in token
    assert any("lifetime 5m00s; replaced with 2m30s left" in line for line in token)
    assert any("azfed-helper serve" in line for line in token)  # too short for file readers
    parameters = _federated_credential(checks)
    assert parameters["issuer"] == "https://token.actions.githubusercontent.com"
    assert parameters["subject"] == "repo:emulated-org/emulated-repo:ref:refs/heads/main"
    assert parameters["audiences"] == ["api://AzureADTokenExchange"]
    assert parameters["name"] == "github-repo-emulated-org-emulated-repo-ref-refs-heads-main"
    exchange = checks["entra exchange"]
    assert exchange["status"] == "fail" and "AADSTS700211" in exchange["details"][0]
    assert "issuer https://token.actions.githubusercontent.com" in " ".join(exchange["details"])
    emulator.add_github_actions_credential()
    code, checks = doctor(emulator, env=runner)
    assert code == 0, checks


def test_file_source_is_explained(emulator: Any, tmp_path: Path) -> None:
    emulator.add_kubernetes_credential(namespace="payments", service_account="api")
    path = tmp_path / "tokens" / "azure-identity-token"
    emulator.start_projected_token_file(path, namespace="payments", service_account="api")
    args = ("--source", "file", "--assertion-file", str(path), "--reader", "root")
    code, checks = doctor(emulator, *args)
    assert code == 0, checks
    source = checks["source"]["details"]
    assert source[0].startswith(f"file: the file {path} (a link to {path.parent}/..")
    assert source[1] == f"{path}: owner root (uid 0), mode 0600"
    assert source[-1] == "expected issuer: any https issuer"
    assert "sub: system:serviceaccount:payments:api" in checks["id token"]["details"]
    parameters = _federated_credential(checks)
    assert parameters["name"] == "kubernetes-payments-api"
    assert parameters["issuer"] == emulator.kubernetes.issuer
    assert parameters["subject"] == "system:serviceaccount:payments:api"
    token_file = checks["token file"]["details"]
    assert (
        token_file[0] == f"the source's file is the token file: AZURE_FEDERATED_TOKEN_FILE={path}"
    )
    assert "readable by root" in token_file
    code, checks = doctor(emulator, *args, "--token-file", str(tmp_path / "copy"))
    assert checks["token file"]["status"] == "fail"
    assert f"AZURE_FEDERATED_TOKEN_FILE={path}" in checks["token file"]["fix"]
    assert not (tmp_path / "copy").exists()  # nothing copied


def test_command_source_is_explained(emulator: Any, tmp_path: Path) -> None:
    emulator.add_kubernetes_credential()
    (tmp_path / "token.jwt").write_text(emulator.mint_kubernetes_token())
    code, checks = doctor(
        emulator, "--source", "command", "--assertion-command", f"cat {tmp_path / 'token.jwt'}"
    )
    assert code == 0, checks
    source = checks["source"]["details"][0]
    assert source.startswith("command: the command cat (") and "1 argument(s)" in source
    assert str(tmp_path) not in source  # arguments are not shown: they may hold secrets
    assert _federated_credential(checks)["subject"] == "system:serviceaccount:default:workload"
    code, checks = doctor(emulator, "--source", "command", "--assertion-command", "no-such-mint")
    assert checks["source"]["status"] == "fail"
    assert "no-such-mint is not an executable file on PATH" in checks["source"]["details"][0]
    assert checks["id token"]["status"] == "skip"
