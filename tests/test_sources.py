"""The sources other than Google (file, github-actions, command) and what every source shares:
the source setting and its default, the issuer check, short lifetimes. Against the emulator's
GitHub Actions endpoint and Kubernetes issuer over real HTTPS, with the real MSAL and
azure-core; commands run for real."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from azfed_helper import FederatedCredential, aio
from azfed_helper._internal import idtoken, options, sources
from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.entra.assertion import AssertionSource
from azfed_helper._internal.errors import InvalidTokenError, SourceError, UsageError
from azfed_helper._internal.idtoken import GOOGLE_ISSUER, IdToken
from azfed_helper._internal.options import BY_DEST
from azfed_helper.emulator import Emulator

from .conftest import cli_env, make_jwt, refusing_port, run_cli
from .netservers import SilentServer
from .test_daemon_cli import Daemon, http_status

AUDIENCE = options.DEFAULT_AUDIENCE
GITHUB = sources.GITHUB_ISSUER
SCOPE = "https://storage.azure.com/.default"


def settings(**flags: object) -> Settings:
    return resolve(argparse.Namespace(**flags))


@pytest.fixture
def github(emulator: Any, emulator_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """This process inside an emulated GitHub Actions job with id-token: write, trusted by the
    emulated app."""
    for name, value in emulator.github_actions_env().items():
        monkeypatch.setenv(name, value)
    emulator.add_github_actions_credential()
    return emulator


@pytest.fixture
def projected(emulator: Any, emulator_env: dict[str, str], tmp_path: Path) -> Any:
    """A kubelet-style projected token (a link into ..data/) that the emulated app trusts."""
    emulator.add_kubernetes_credential()
    return emulator.start_projected_token_file(tmp_path / "tokens" / "azure-identity-token")


# -- the setting and the issuer ---------------------------------------------------------------


def test_the_default_source_follows_the_runner_variables(tmp_path: Path) -> None:
    runner = {options.ACTIONS_URL: "https://runner/x?api-version=2.0", options.ACTIONS_TOKEN: "t"}
    assert resolve(argparse.Namespace(), environ=runner).source == "github-actions"
    assert resolve(argparse.Namespace(), environ=runner).origins["source"] == "default"
    one = {options.ACTIONS_URL: runner[options.ACTIONS_URL]}  # no id-token: write
    assert resolve(argparse.Namespace(), environ=one).source == "google"
    assert resolve(argparse.Namespace(), environ={}).source == "google"
    chosen = resolve(argparse.Namespace(source="file"), environ=runner)
    assert (chosen.source, chosen.origins["source"]) == ("file", "flag")
    config = tmp_path / "config.toml"
    config.write_text('source = "command"\n')
    from_file = resolve(argparse.Namespace(config=str(config)), environ=runner)
    assert from_file.source == "command" and from_file.origins["source"].startswith("config ")
    shown = run_cli("settings", env=runner)
    line = next(text for text in shown.stdout.splitlines() if text.startswith("source "))
    assert (
        "github-actions (ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are set)"
        in line
    )
    assert line.endswith("(default)")
    listed = json.loads(run_cli("settings", "--json", env=runner).stdout)["settings"]
    assert listed["source"] == {"value": "github-actions", "origin": "default"}
    wrong = run_cli("settings", "--source", "gitlab")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr


def test_the_issuer_follows_the_source_and_can_be_pinned() -> None:
    now = time.time()
    google, github = idtoken.decode(make_jwt()), idtoken.decode(make_jwt(iss=GITHUB))
    cluster = idtoken.decode(make_jwt(iss="https://oidc.example/cluster"))
    assert sources.expected_issuer(settings(source="google")) == GOOGLE_ISSUER
    assert sources.expected_issuer(settings(source="github-actions")) == GITHUB
    assert sources.expected_issuer(settings(source="file")) is None
    assert sources.expected_issuer(settings(source="command")) is None
    pinned = settings(source="file", issuer="https://oidc.example/cluster")
    assert sources.expected_issuer(pinned) == "https://oidc.example/cluster"
    assert idtoken.validate(github, AUDIENCE, now, issuer=GITHUB) is github
    with pytest.raises(InvalidTokenError, match=r"expected 'https://token\.actions") as wrong:
        idtoken.validate(google, AUDIENCE, now, issuer=GITHUB)
    assert wrong.value.claim == "iss"
    for token in (google, github, cluster):  # file and command: any https issuer
        assert idtoken.validate(token, AUDIENCE, now, issuer=None) is token
    for bad in ("http://oidc.example", "https://", None, 42, "oidc.example"):
        with pytest.raises(InvalidTokenError, match="claim 'iss'"):
            idtoken.validate(idtoken.decode(make_jwt(iss=bad)), AUDIENCE, now, issuer=None)
    with pytest.raises(UsageError, match="not an https URL"):
        settings(issuer="http://oidc.example")


def test_a_token_is_due_at_the_margin_or_half_its_life() -> None:
    def token(lifetime: int) -> IdToken:
        return idtoken.decode(make_jwt(iat=1_800_000_000, exp=1_800_000_000 + lifetime))

    assert token(3600).due_margin(1200) == 1200  # Google's hour keeps the 20-minute margin
    assert token(300).due_margin(1200) == 150  # GitHub's 5 minutes: replaced at 2.5 left
    assert token(20).due_margin(1200) == 10
    assert token(300).fresh(1_800_000_149, 1200)
    assert not token(300).fresh(1_800_000_150, 1200)


# -- github-actions ---------------------------------------------------------------------------


def test_github_tokens_are_fetched_once_per_half_life_and_never_presented_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one injected clock for the emulated runner and the assertion: 20-second tokens over
    three lifetimes, asked for every second, are fetched at 0, 10, 20 ... and each presented
    with more than 10 s left."""
    now = [1_800_000_000]
    with Emulator(clock=lambda: now[0]) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_file)
        for name, value in emu.github_actions_env().items():
            monkeypatch.setenv(name, value)
        emu.github.lifetime = 20
        source = AssertionSource(settings(), clock=lambda: now[0])
        assert source.settings.source == "github-actions"  # the default inside the job
        fetched_at, left = [], []
        for second in range(61):
            now[0] = 1_800_000_000 + second
            before = emu.counts["github.token"]
            raw = source()
            if emu.counts["github.token"] > before:
                fetched_at.append(second)
            left.append(idtoken.decode(raw).remaining(now[0]))
        assert fetched_at == [0, 10, 20, 30, 40, 50, 60]
        assert min(left) > 10


def test_github_failures_are_one_clear_error_without_the_bearer(
    github: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bearer = os.environ[options.ACTIONS_TOKEN]
    fetch = sources.KINDS["github-actions"].fetch
    github.fail_next("github.token", 503)  # retried once, after 0.5 s
    assert idtoken.decode(fetch(settings())).claims["iss"] == GITHUB
    assert github.counts["github.token"] == 2
    github.fail_next("github.token", 503, count=3)
    with pytest.raises(SourceError, match="HTTP 503") as unavailable:
        fetch(settings())
    github.fail_next("github.token", 401, body={"message": f"unknown bearer {bearer}"})
    with pytest.raises(SourceError, match=r"\(HTTP 401\): unknown bearer \*\*\*") as echoed:
        fetch(settings())
    monkeypatch.setenv(options.ACTIONS_TOKEN, "not-the-runner-token")
    with pytest.raises(SourceError, match=r"refused to mint an ID token \(HTTP 403\)") as refused:
        fetch(settings())
    assert "id-token: write" in str(refused.value.hint)
    for error in (unavailable.value, echoed.value, refused.value):
        assert bearer not in str(error) and "not-the-runner-token" not in str(error)
    monkeypatch.delenv(options.ACTIONS_TOKEN)
    with pytest.raises(UsageError, match="ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set") as missing:
        fetch(settings(source="github-actions"))
    assert "permissions: id-token: write" in str(missing.value.hint)


def test_a_silent_github_endpoint_is_given_the_source_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Accepted, never answered (not even the TLS handshake): one attempt, bounded."""
    with SilentServer() as silent:
        url = f"https://{silent.address}/idtoken?api-version=2.0"
        monkeypatch.setenv(options.ACTIONS_URL, url)
        monkeypatch.setenv(options.ACTIONS_TOKEN, "bearer")
        started = time.monotonic()
        with pytest.raises(SourceError, match="no answer within 1s"):
            sources.fetch(settings(source_timeout="1"))
        assert time.monotonic() - started < sources.REQUEST_BUDGET * 1 + sources.SLACK
        assert silent.accepted == 1  # not asked again: it would only wait twice as long


def test_token_and_credential_with_the_github_source(github: Any, tmp_path: Path) -> None:
    done = run_cli("token", "--scope", SCOPE, env={"AZFED_CACHE_DIR": str(tmp_path / "c")})
    assert done.returncode == 0, done.stderr
    assert idtoken.decode(done.stdout.strip()).claims["appid"] == github.client_id
    with FederatedCredential(cache_dir=str(tmp_path / "c2")) as credential:
        access = credential.get_token("https://vault.azure.net/.default")
    assert idtoken.decode(access.token).claims["aud"] == "https://vault.azure.net"
    assert github.counts["github.token"] == 2


# -- file -------------------------------------------------------------------------------------


def test_the_file_source_reads_the_kubelets_file_before_each_use_and_never_writes_it(
    projected: Any, emulator: Any
) -> None:
    path = projected.path
    config = settings(source="file", assertion_file=str(path), token_file=str(path))
    source = AssertionSource(config)
    first = source()
    assert first == path.read_text()
    assert source() == first  # the same file, read again
    projected.rotate()
    assert source() == path.read_text() != first  # the rotation is seen at once
    assert os.readlink(path) == f"..data/{path.name}"  # a link still: never replaced by us
    assert projected.writes == 2
    pinned = AssertionSource(config.replace(issuer="https://other.example"))
    with pytest.raises(InvalidTokenError, match="claim 'iss'"):
        pinned()
    with pytest.raises(SourceError, match="does not exist"):
        AssertionSource(config.replace(assertion_file=str(path) + ".missing"))()


def test_token_and_credential_with_the_file_source(
    projected: Any, emulator: Any, tmp_path: Path
) -> None:
    path = str(projected.path)
    done = run_cli(
        "token", "--scope", SCOPE, "--source", "file", "--assertion-file", path,
        env={"AZFED_CACHE_DIR": str(tmp_path / "c")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert idtoken.decode(done.stdout.strip()).claims["appid"] == emulator.client_id
    with FederatedCredential(
        source="file", assertion_file=path, persistent_cache=False
    ) as credential:
        assert credential.get_token(SCOPE).token.count(".") == 2
    written = run_cli("write", "--source", "file", "--assertion-file", path, "--token-file", path)
    assert written.returncode == 2
    assert "already is a token file" in written.stderr
    assert f"point {BY_DEST['token_file'].env} at it" in written.stderr
    assert os.path.islink(path)


def test_env_and_status_with_the_file_source_name_the_file_readers_use(
    projected: Any, emulator: Any, tmp_path: Path
) -> None:
    """Nothing writes a token file for this source: the SDKs and the probe use the projected
    file itself, whatever AZURE_FEDERATED_TOKEN_FILE says."""
    path = str(projected.path)
    elsewhere = {BY_DEST["token_file"].env: str(tmp_path / "never-written")}
    shown = run_cli("env", "--source", "file", "--assertion-file", path, "--format", "json",
                    env=elsewhere)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[str(BY_DEST["token_file"].env)] == path
    terraform = run_cli("env", "--for", "terraform", env={**elsewhere, "AZFED_SOURCE": "file",
                        "AZFED_ASSERTION_FILE": path})  # fmt: skip
    assert f"export ARM_OIDC_TOKEN_FILE_PATH={path}\n" in terraform.stdout
    probed = run_cli(
        "status", "--json", "--source", "file", "--assertion-file", path, env=elsewhere
    )
    report = json.loads(probed.stdout)
    assert (probed.returncode, report["ok"], report["path"]) == (0, True, path)
    assert report["claims"]["sub"] == "system:serviceaccount:default:workload"
    # Its writer keeps it fresh: --min-remaining (10m by default) applies only when given.
    lasting = emulator.mint_kubernetes_token(lifetime=300)
    short = tmp_path / "short.jwt"
    short.write_text(lasting)
    judged = run_cli("status", "--source", "file", "--assertion-file", str(short))
    assert judged.returncode == 0 and "status: ok" in judged.stdout, judged.stdout
    asked = run_cli("status", "--source", "file", "--assertion-file", str(short),
                    "--min-remaining", "6m")  # fmt: skip
    assert asked.returncode == 1 and "less than the required 6m00s" in asked.stdout
    pinned = run_cli("status", "--source", "file", "--assertion-file", path,
                     "--issuer", "https://other.example")  # fmt: skip
    assert pinned.returncode == 1 and "claim 'iss'" in pinned.stdout
    unnamed = run_cli("env", "--source", "file", env=elsewhere)
    assert unnamed.returncode == 2
    assert f"{BY_DEST['assertion_file'].env} is not set" in unnamed.stderr


def test_daemon_with_the_file_source_serves_it_or_says_why_not(
    projected: Any, emulator: Any, tmp_path: Path
) -> None:
    path = str(projected.path)
    refused = run_cli("daemon", "--source", "file", "--assertion-file", path)
    assert refused.returncode == 2 and "already is a token file" in refused.stderr
    removing = run_cli(
        "daemon", "--source", "file", "--assertion-file", path, "--identity-endpoint",
        "--remove-on-exit",
    )  # fmt: skip
    assert removing.returncode == 2 and "--remove-on-exit would delete" in removing.stderr
    daemon = Daemon(
        emulator,
        "--source", "file", "--assertion-file", path, "--identity-endpoint", "--port", "0",
        "--env-file", str(tmp_path / "mi.env"), "--health-addr", "127.0.0.1:0",
    )  # fmt: skip
    try:
        assert daemon.wait_event("refreshed")["sub"] == "system:serviceaccount:default:workload"
        events = {record["event"]: record for record in daemon.seen}
        assert events["started"]["assertion_file"] == path
        health = events["health_listening"]["address"]
        assert http_status(f"http://{health}/readyz") == 200  # the file holds a valid token
        from azfed_helper._internal.identity import envfile as mi_env

        variables = mi_env.read_env_file(str(tmp_path / "mi.env"))
        request = urllib.request.Request(
            variables["IDENTITY_ENDPOINT"]
            + "?api-version=2019-08-01&resource=https://vault.azure.net",
            headers={"X-IDENTITY-HEADER": variables["IDENTITY_HEADER"]},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["access_token"].count(".") == 2
        assert os.path.islink(path) and projected.writes == 1  # read, never written
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
    finally:
        daemon.close()
    assert os.path.exists(path)


# -- command ----------------------------------------------------------------------------------


def test_the_command_source_runs_without_a_shell_from_the_users_directory(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    token = emulator.mint_kubernetes_token()
    emulator.add_kubernetes_credential()
    (tmp_path / "token.jwt").write_text(token + "\n")
    script = tmp_path / "mint"
    script.write_text('#!/bin/sh\nread nothing || echo "stdin: empty" >&2\ncat "$1"\n')
    script.chmod(0o755)
    done = subprocess.run(
        [
            sys.executable, "-m", "azfed_helper", "token", "--scope", SCOPE, "--source",
            "command", "--assertion-command", "./mint 'token.jwt'",
        ],
        env=cli_env({"AZFED_CACHE_DIR": str(tmp_path / "c")}),
        cwd=tmp_path,  # a relative command means what it meant where the user typed it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert idtoken.decode(done.stdout.strip()).claims["appid"] == emulator.client_id
    # No shell: a metacharacter is an argument like any other.
    config = settings(source="command", assertion_command="echo $HOME; true")
    with pytest.raises(SourceError, match="not one JWT"):
        sources.fetch(config)
    with FederatedCredential(
        source="command", assertion_command=f"cat {tmp_path / 'token.jwt'}", persistent_cache=False
    ) as credential:
        assert credential.get_token(SCOPE).token.count(".") == 2


def test_the_command_source_takes_the_json_that_token_tools_already_print(
    emulator: Any, tmp_path: Path
) -> None:
    """google-auth's executable response (what an existing executable-sourced credential's
    program prints) and a Kubernetes ExecCredential (kubelogin's get-token)."""
    token = emulator.mint_kubernetes_token()
    answers = {
        "executable": {
            "version": 1,
            "success": True,
            "token_type": "urn:ietf:params:oauth:token-type:id_token",
            "id_token": token,
            "expiration_time": int(time.time()) + 600,
        },
        "exec-credential": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "kind": "ExecCredential",
            "status": {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"},
        },
        "refused": {
            "version": 1,
            "success": False,
            "code": "401",
            "message": "not \x1b[31mallowed",
        },
        "saml": {"version": 1, "success": True, "saml_response": "PHNhbWw+"},
        "empty-status": {"kind": "ExecCredential", "status": {}},
        "broken": '{"version": 1, "success": tru',
        "nested": '{"a":' * 5000 + "1" + "}" * 5000,
        "version-2": {"version": 2, "success": True, "id_token": token},
        "saml-typed": {
            "version": 1,
            "success": True,
            "token_type": "urn:ietf:params:oauth:token-type:saml2",
            "id_token": token,
        },
        "bare-failure": {"version": 1, "success": False},
    }
    for name, answer in answers.items():
        text = answer if isinstance(answer, str) else json.dumps(answer, indent=2)
        (tmp_path / name).write_text(text + "\n")

    def fetched(name: str) -> str:
        return sources.fetch(settings(source="command", assertion_command=f"cat {tmp_path / name}"))

    assert fetched("executable") == token
    assert fetched("exec-credential") == token
    with pytest.raises(SourceError) as refused:
        fetched("refused")
    assert str(refused.value).splitlines()[0].endswith("reported failure: 401 not \\x1b[31mallowed")
    with pytest.raises(SourceError, match="holds no ID token"):
        fetched("saml")
    with pytest.raises(SourceError, match=r"has no status\.token"):
        fetched("empty-status")
    for broken in ("broken", "nested"):
        with pytest.raises(SourceError, match="printed JSON that does not parse"):
            fetched(broken)
    with pytest.raises(SourceError, match="of version 2; only version 1 is known"):
        fetched("version-2")
    with pytest.raises(SourceError, match="holds no ID token"):
        fetched("saml-typed")
    with pytest.raises(SourceError, match=r"reported failure: \(no code or message\)\n"):
        fetched("bare-failure")
    # What google-auth tells such a program, for the audience in effect.
    told = (
        f'sh -c \'test "$GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE" = api://other && test '
        f'"$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE" = 0 && cat {tmp_path / "executable"}\''
    )
    config = settings(source="command", assertion_command=told, audience="api://other")
    assert sources.fetch(config) == token
    with pytest.raises(SourceError, match="exited with status 1"):
        sources.fetch(config.replace(audience=AUDIENCE))


def test_a_command_that_hangs_is_killed_with_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    hanging = f"sh -c 'sleep 60 & echo $! > {pid_file}; wait'"
    started = time.monotonic()
    with pytest.raises(SourceError, match="did not finish within 1s and was killed"):
        sources.fetch(settings(source="command", assertion_command=hanging, source_timeout="1"))
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid):  # SIGKILL is delivered at once; reaping by init may take a moment
        assert time.monotonic() < deadline, "the command's background process survived"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_command_output_is_capped_and_failures_show_stderrs_last_line() -> None:
    flood = settings(source="command", assertion_command="head -c 200000 /dev/zero")
    with pytest.raises(SourceError, match="printed more than 65536 bytes"):
        sources.fetch(flood)
    failing = "sh -c 'echo first >&2; printf \"last \\033[31mred\\n\" >&2; exit 3'"
    with pytest.raises(SourceError) as failed:
        sources.fetch(settings(source="command", assertion_command=failing))
    assert str(failed.value).splitlines()[0].endswith("exited with status 3: last \\x1b[31mred")
    with pytest.raises(SourceError, match="was killed by signal 9"):
        sources.fetch(settings(source="command", assertion_command="sh -c 'kill -9 $$'"))
    with pytest.raises(UsageError, match="cannot split --assertion-command"):
        sources.fetch(settings(source="command", assertion_command="echo 'unclosed"))
    with pytest.raises(UsageError, match=r"AZFED_ASSERTION_COMMAND is not set"):
        sources.fetch(settings(source="command"))


def test_async_credential_with_a_source(projected: Any, emulator: Any) -> None:
    async def main() -> str:
        async with aio.FederatedCredential(
            source="file", assertion_file=str(projected.path), persistent_cache=False
        ) as credential:
            return (await credential.get_token(SCOPE)).token

    assert asyncio.run(main()).count(".") == 2
    with pytest.raises(ValueError, match=r"invalid --source 'gitlab'"):
        FederatedCredential(source="gitlab")


# -- the light paths --------------------------------------------------------------------------

LIGHT = ("json", "re", "argparse", "requests", "msal", "google", "azure", "filelock", "shlex")


def light_run(args: list[str], env: dict[str, str]) -> tuple[int, list[str], str]:
    """main(args) in a fresh interpreter: its exit status and which heavy modules it loaded."""
    code = (
        "import sys\n"
        "from azfed_helper._internal.cli import main\n"
        f"code = main({args!r})\n"
        f"print('LOADED=' + ','.join(sorted(m for m in {LIGHT!r} if m in sys.modules)))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(env), capture_output=True, text=True, timeout=60
    )
    loaded = done.stdout.rpartition("LOADED=")[2].strip()
    return done.returncode, [name for name in loaded.split(",") if name], done.stderr


def test_the_no_op_paths_stay_light_with_any_source(tmp_path: Path) -> None:
    """Inside a GitHub Actions job (github-actions by default), a fresh GitHub token in the
    file: `write` does nothing, importing nothing heavy. With the file source, az holding the
    file's token: `az-login` does nothing either."""
    now = int(time.time())
    token_file = tmp_path / "token"
    token_file.write_text(make_jwt(iss=GITHUB, iat=now, exp=now + 300))
    token_file.chmod(0o600)
    runner = {
        options.ACTIONS_URL: f"https://127.0.0.1:{refusing_port()}/x?api-version=2.0",
        options.ACTIONS_TOKEN: "bearer",
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
    }
    assert light_run(["write"], runner)[:2] == (0, [])
    token_file.write_text(make_jwt(iat=now, exp=now + 300))  # Google's issuer: not this source's
    code, loaded, stderr = light_run(["write"], runner)
    assert code == 1 and "requests" in loaded, stderr  # it asked the runner (nobody listens)
    assert "cannot reach the GitHub Actions token endpoint" in stderr
    from .test_azcli import CLIENT, TENANT, write_az_state

    az_dir = tmp_path / "azure"
    projected = tmp_path / "projected"
    due = make_jwt(iat=now - 2500, exp=now + 1100, iss="https://oidc.example/cluster")
    projected.write_text(due)
    write_az_state(az_dir, due)
    file_source = ["--source", "file", "--assertion-file", str(projected)]
    env = {"AZURE_CONFIG_DIR": str(az_dir), "AZURE_CLIENT_ID": CLIENT, "AZURE_TENANT_ID": TENANT}
    assert light_run(["az-login", *file_source], env)[:2] == (0, [])
