"""google_source: what it leaves behind (nothing), what it logs (no tokens), and how long it waits.

The waits are checked against servers that really misbehave on loopback: one that accepts and
never answers (tests/netservers.py), a port nobody listens on, the emulator answering 5xx.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken, sources
from azfed_helper._internal.config import Settings, resolve
from azfed_helper._internal.errors import SourceError
from azfed_helper._internal.options import BY_DEST
from azfed_helper._internal.sources import google as google_source

from .conftest import cli_env, refusing_port, run_cli
from .netservers import SilentServer

TARGET = "other@emulated-project.iam.gserviceaccount.com"
TIMEOUT = 2  # --source-timeout in the hang tests: the bound is 3 x 2 + 2 = 8 s


def settings(**flags: object) -> Settings:
    return resolve(argparse.Namespace(**flags))


def rewritten(path: Path, **fields: str) -> Path:
    """The credentials file at ``path`` with ``fields`` replaced (e.g. its token_uri)."""
    info = json.loads(path.read_text())
    info.update(fields)
    path.write_text(json.dumps(info))
    return path


def test_google_auth_module_state_is_never_touched(emulator: Any, tmp_path: Path) -> None:
    """An IAM endpoint override must not leak into the user's own google-auth calls, not even
    while a fetch is under way (google-auth keeps those URLs in module globals)."""
    from google.auth import iam

    before = (iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT)
    key = emulator.write_service_account_key(tmp_path / "key.json")
    with SilentServer() as silent:
        errors: list[Exception] = []

        def fetch() -> None:
            try:
                google_source.fetch(
                    settings(
                        credentials=str(key),
                        impersonate=TARGET,
                        iam_endpoint=silent.url,
                        source_timeout="2s",
                    )
                )
            except Exception as exc:
                errors.append(exc)

        thread = threading.Thread(target=fetch)
        thread.start()
        deadline = time.monotonic() + 30
        while not silent.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert silent.accepted == 1  # the fetch is waiting on the IAM endpoint right now
        assert before == (iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT)
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], SourceError)
    assert "generateIdToken: no answer within 2s" in errors[0].message
    token = idtoken.decode(
        google_source.fetch(
            settings(credentials=str(key), impersonate=TARGET, iam_endpoint=emulator.iam_endpoint)
        )
    )
    assert token.claims["email"] == TARGET
    assert emulator.counts["iam.generateIdToken"] == 1
    assert before == (iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT)


def test_delegates_and_email_reach_generate_id_token(emulator: Any, tmp_path: Path) -> None:
    """gcloud's impersonation file: its delegates and source credentials are honoured."""
    adc = emulator.write_impersonated_adc(tmp_path / "adc.json", TARGET, "service_account")
    token = idtoken.decode(
        google_source.fetch(settings(credentials=str(adc), iam_endpoint=emulator.iam_endpoint))
    )
    assert token.claims["email"] == TARGET
    assert (emulator.counts["google.token"], emulator.counts["iam.generateIdToken"]) == (1, 1)
    rewritten(adc, delegates="not-a-list")  # type: ignore[arg-type]
    done = run_cli("write", "--token-file", str(tmp_path / "t"), "--credentials", str(adc))
    assert done.returncode == 2
    assert "'delegates' that are not a list" in done.stderr


def test_debug_json_logs_carry_no_credentials(emulator: Any, tmp_path: Path) -> None:
    """At -vv google-auth logs each request with its body; none of it may reach our log."""
    key = emulator.write_service_account_key(tmp_path / "key.json")
    script = (
        "import argparse, sys\n"
        "from azfed_helper._internal import logs\n"
        "from azfed_helper._internal.sources import google as google_source\n"
        "from azfed_helper._internal.config import resolve\n"
        "logs.setup('json', 2)\n"
        f"google_source.fetch(resolve(argparse.Namespace(credentials={str(key)!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=cli_env(emulator.env()), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Making request" in done.stderr  # the library's debug records are there ...
    assert "eyJ" not in done.stderr  # ... without the signed assertion or any token
    assert emulator.counts["google.token"] == 1


# -- every wait bounded: 3 x --source-timeout in all, whatever the source ------------------


def _hang_case(
    case: str, emulator: Any, tmp_path: Path, silent: str
) -> tuple[list[str], dict[str, str]]:
    """Arguments and environment for ``write`` with one hop of ``case`` going to ``silent``."""
    key = emulator.write_service_account_key(tmp_path / "key.json")
    impersonate = ["--impersonate", TARGET]
    iam = ["--iam-endpoint", emulator.iam_endpoint]
    metadata = {"GCE_METADATA_HOST": emulator.metadata_host}
    if case == "metadata":
        return [], {"GCE_METADATA_HOST": silent}
    if case == "metadata, impersonating":
        return [*impersonate, *iam], {"GCE_METADATA_HOST": silent}
    if case == "metadata, impersonating: IAM":
        return [*impersonate, "--iam-endpoint", f"http://{silent}"], metadata
    if case == "key":
        rewritten(key, token_uri=f"http://{silent}/token")
        return ["--credentials", str(key)], metadata
    if case == "key, impersonating: token_uri":
        rewritten(key, token_uri=f"http://{silent}/token")
        return ["--credentials", str(key), *impersonate, *iam], metadata
    if case == "key, impersonating: IAM":
        return ["--credentials", str(key), *impersonate, "--iam-endpoint", f"http://{silent}"], {}
    if case == "gcloud user":
        user = rewritten(
            emulator.write_authorized_user(tmp_path / "user.json"),
            token_uri=f"http://{silent}/token",
        )
        return ["--credentials", str(user), *impersonate, *iam], metadata
    assert case == "workload identity federation: STS"
    subject = tmp_path / "subject.jwt"
    subject.write_text(emulator.mint_google_id_token("//iam.googleapis.com/pool"))
    external = rewritten(
        emulator.write_external_account(tmp_path / "wif.json", subject, TARGET),
        token_url=f"http://{silent}/sts/v1/token",
    )
    return ["--credentials", str(external), *iam], metadata


@pytest.mark.parametrize(
    "case",
    [
        "metadata",
        "metadata, impersonating",
        "metadata, impersonating: IAM",
        "key",
        "key, impersonating: token_uri",
        "key, impersonating: IAM",
        "gcloud user",
        "workload identity federation: STS",
    ],
)
def test_a_silent_hop_ends_the_write_within_its_budget(
    emulator: Any, tmp_path: Path, case: str
) -> None:
    token_file = tmp_path / "token"
    with SilentServer() as silent:
        args, env = _hang_case(case, emulator, tmp_path, silent.address)
        started = time.monotonic()
        done = run_cli(
            "write",
            "--token-file",
            str(token_file),
            "--source-timeout",
            f"{TIMEOUT}s",
            *args,
            env=env,
        )
        took = time.monotonic() - started
        accepted = silent.accepted
    assert done.returncode == 1, done.stderr
    assert took < 3 * TIMEOUT + 2, done.stderr  # the bound README promises, start-up included
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[1].lstrip().startswith("hint:"), done.stderr
    assert f"no answer within {TIMEOUT}s" in lines[0]
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert accepted == 1  # a server that went silent is not asked again
    assert not token_file.exists()


def test_the_budget_counts_every_hop(emulator: Any) -> None:
    """Each request gets what is left of 3 x the timeout; once it is spent, none is made."""
    now = [0.0]
    transport = google_source._Transport(2, clock=lambda: now[0])
    url = f"http://{emulator.metadata_host}/computeMetadata/v1/project/project-id"
    headers = {"Metadata-Flavor": "Google"}
    assert transport(url, headers=headers).status == 200
    now[0] = 5.0  # 1 s left: the next request may wait that long, no more
    assert transport(url, headers=headers).status == 200
    now[0] = 6.0
    with pytest.raises(SourceError, match=r"not tried: the fetch already took 3 x"):
        transport(url, headers=headers)
    assert emulator.counts["metadata.other"] == 2
    transport.session.close()


def test_5xx_is_retried_briefly_then_named(emulator: Any, emulator_env: dict[str, str]) -> None:
    emulator.fail_next("metadata.identity", 503, count=2)
    assert google_source.fetch(settings())
    assert emulator.counts["metadata.identity"] == 3
    emulator.fail_next("metadata.identity", 503, count=3)
    with pytest.raises(SourceError) as info:
        google_source.fetch(settings())
    assert emulator.counts["metadata.identity"] == 6
    assert "/computeMetadata/v1/instance/service-accounts/default/identity: HTTP 503" in str(
        info.value
    )


def test_refused_iam_endpoint_is_named(emulator: Any, tmp_path: Path) -> None:
    key = emulator.write_service_account_key(tmp_path / "key.json")
    closed = f"127.0.0.1:{refusing_port()}"
    with pytest.raises(SourceError) as info:
        google_source.fetch(
            settings(credentials=str(key), impersonate=TARGET, iam_endpoint=f"http://{closed}")
        )
    assert f"http://{closed}/v1/projects/-/serviceAccounts/{TARGET}:generateIdToken" in str(
        info.value
    )
    assert "connection refused" in str(info.value)
    assert info.value.hint is not None and "--iam-endpoint" in info.value.hint


def test_off_google_cloud_says_so_in_two_lines(tmp_path: Path) -> None:
    """No credentials and no metadata server: the name does not resolve (as off Google Cloud)."""
    started = time.monotonic()
    done = run_cli(
        "write",
        "--token-file",
        str(tmp_path / "token"),
        env={"GCE_METADATA_HOST": "metadata.invalid"},
    )
    assert time.monotonic() - started < 5
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert (
        "no metadata server answered at metadata.invalid (the host name does not resolve)"
        in lines[0]
    )
    assert "GOOGLE_APPLICATION_CREDENTIALS is not set" in lines[0]
    assert f"set {BY_DEST['credentials'].where()} to a service-account key" in lines[1]


def test_refused_metadata_says_no_server_answered(tmp_path: Path) -> None:
    closed = f"127.0.0.1:{refusing_port()}"
    done = run_cli(
        "write", "--token-file", str(tmp_path / "token"), env={"GCE_METADATA_HOST": closed}
    )
    assert done.returncode == 1
    assert f"no metadata server answered at {closed} (connection refused)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 2


def test_missing_ca_bundle_for_an_https_token_uri_is_named(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = rewritten(
        emulator.write_service_account_key(tmp_path / "key.json"),
        token_uri=f"https://{f'127.0.0.1:{refusing_port()}'}/token",
    )
    gone = tmp_path / "stopped-emulator-ca.pem"
    monkeypatch.setenv("CURL_CA_BUNDLE", str(gone))
    done = run_cli("write", "--token-file", str(tmp_path / "token"), "--credentials", str(key))
    assert done.returncode == 2
    assert f"CURL_CA_BUNDLE names the CA bundle {gone}, which does not exist" in done.stderr
    assert "internal error" not in done.stderr


def test_the_daemons_fetch_child_ends_within_the_same_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon fetches in a child process and kills it past total_source_budget; a silent
    source makes the child itself give up first, with its own message."""
    from azfed_helper._internal.sources import child_fetch

    with SilentServer() as silent:
        monkeypatch.setenv("GCE_METADATA_HOST", silent.address)
        config = settings(source_timeout="1s")
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            child_fetch.fetch(config)
        took = time.monotonic() - started
    assert sources.total_source_budget(config) == 3 * 1 + 2
    assert took < sources.total_source_budget(config)
    assert f"no metadata server answered at {silent.address} (no answer within 1s)" in str(
        info.value
    )
