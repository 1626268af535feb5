"""`azfed-helper write` end to end: every Google source through the real google-auth, against
the emulator over HTTP on 127.0.0.1, in child processes as users run it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken

from .conftest import cli_env, run_cli

AUD = "api://AzureADTokenExchange"


def claims_of(path: Path) -> dict[str, Any]:
    return idtoken.decode(path.read_text()).claims


def write(
    emulator: Any, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("write", *args, env={**emulator.env(), **(env or {})})


def test_metadata_source_writes_standard_token(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    done = write(emulator, "--token-file", str(token_file))
    assert done.returncode == 0, done.stderr
    raw = token_file.read_text()
    claims = claims_of(token_file)
    assert (claims["iss"], claims["aud"]) == ("https://accounts.google.com", AUD)
    assert claims["sub"] == emulator.service_account_id
    assert "google" not in claims  # format=standard: no project/instance details for Microsoft
    assert not raw.endswith("\n")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert raw not in done.stderr + done.stdout
    assert emulator.counts["metadata.identity"] == 1


def test_full_format_and_env_var_target(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    done = write(
        emulator, "--token-format", "full", env={"AZURE_FEDERATED_TOKEN_FILE": str(token_file)}
    )
    assert done.returncode == 0, done.stderr
    assert "compute_engine" in claims_of(token_file)["google"]


def test_idempotent_run_makes_no_request(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    assert write(emulator, "--token-file", str(token_file)).returncode == 0
    before = token_file.read_text()
    again = write(emulator, "--token-file", str(token_file))
    assert again.returncode == 0
    assert (again.stderr, token_file.read_text()) == ("", before)
    assert emulator.counts["metadata.identity"] == 1
    forced = write(emulator, "--token-file", str(token_file), "--force")
    assert forced.returncode == 0
    assert emulator.counts["metadata.identity"] == 2


def test_service_account_key(emulator: Any, tmp_path: Path) -> None:
    key = emulator.write_service_account_key(tmp_path / "key.json")
    for how in (["--credentials", str(key)], []):
        token_file = tmp_path / f"token{len(how)}"
        env = {} if how else {"GOOGLE_APPLICATION_CREDENTIALS": str(key)}
        done = write(emulator, "--token-file", str(token_file), *how, env=env)
        assert done.returncode == 0, done.stderr
        assert claims_of(token_file)["aud"] == AUD
    assert emulator.counts["google.token"] == 2
    assert emulator.counts["metadata.identity"] == 0


@pytest.mark.parametrize("source", ["key", "metadata", "authorized_user", "adc", "external"])
def test_impersonation_sources(emulator: Any, tmp_path: Path, source: str) -> None:
    target = "azure-caller@emulated-project.iam.gserviceaccount.com"
    args = ["--impersonate", target]
    if source == "key":
        args += ["--credentials", str(emulator.write_service_account_key(tmp_path / "k.json"))]
    elif source == "authorized_user":
        args += ["--credentials", str(emulator.write_authorized_user(tmp_path / "u.json"))]
    elif source == "adc":
        args = ["--credentials", str(emulator.write_impersonated_adc(tmp_path / "a.json", target))]
    elif source == "external":
        subject = tmp_path / "subject.jwt"
        subject.write_text("external-subject-token")
        path = emulator.write_external_account(
            tmp_path / "x.json", subject, impersonate_email=target
        )
        args = ["--credentials", str(path)]  # the target comes from the file's impersonation URL
    token_file = tmp_path / "token"
    done = write(emulator, "--token-file", str(token_file), *args)
    assert done.returncode == 0, done.stderr
    claims = claims_of(token_file)
    assert claims["email"] == target
    assert claims["aud"] == AUD
    assert emulator.counts["iam.generateIdToken"] == 1


@pytest.mark.parametrize("kind", ["authorized_user", "external_account"])
def test_user_credentials_without_impersonation_fail_clearly(
    emulator: Any, tmp_path: Path, kind: str
) -> None:
    if kind == "authorized_user":
        creds = emulator.write_authorized_user(tmp_path / "c.json")
    else:
        subject = tmp_path / "subject.jwt"
        subject.write_text("external-subject-token")
        creds = emulator.write_external_account(tmp_path / "c.json", subject)
    token_file = tmp_path / "token"
    done = write(emulator, "--token-file", str(token_file), "--credentials", str(creds))
    assert done.returncode == 2
    assert f"{kind} credentials in {creds}" in done.stderr
    assert "--impersonate" in done.stderr
    assert "Traceback" not in done.stderr
    assert not token_file.exists()
    assert sum(emulator.counts.values()) == 0  # never falls through to the metadata server


def test_bad_inputs_exit_2_without_traceback(emulator: Any, tmp_path: Path) -> None:
    malformed = tmp_path / "malformed.json"
    malformed.write_text("{not json")
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({"type": "gdch_service_account"}))
    cases = [
        (["--token-file", str(tmp_path)], "is a directory"),
        (["--token-file", str(tmp_path / "no" / "dir" / "t")], "--create-dirs"),
        (["--token-file", str(tmp_path / "t"), "--credentials", str(malformed)], "not valid JSON"),
        (["--token-file", str(tmp_path / "t"), "--credentials", str(wrong_type)], "cannot mint"),
        (
            ["--token-file", str(tmp_path / "t"), "--credentials", str(tmp_path / "nope")],
            "does not exist",
        ),
        (["--token-file", str(tmp_path / "t"), "--mode", "0400"], "invalid --mode"),
        (
            ["--token-file", str(tmp_path / "t"), "--refresh-margin", "soon"],
            "invalid --refresh-margin",
        ),
        ([], "AZURE_FEDERATED_TOKEN_FILE"),
    ]
    for args, message in cases:
        done = write(emulator, *args)
        assert (done.returncode, message in done.stderr) == (2, True), (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert emulator.counts["metadata.identity"] == 0


def test_create_dirs(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "run" / "azfed" / "token"
    done = write(emulator, "--token-file", str(token_file), "--create-dirs", "--mode", "0640")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o640


def test_unwritable_directory(emulator: Any, tmp_path: Path) -> None:
    """A read-only file system (works even as root): exit 2, the directory named, nothing fetched."""
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    command = [sys.executable, "-m", "azfed_helper", "write", "--token-file", f"{readonly}/token"]
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            f'mount -t tmpfs -o ro tmpfs {readonly} && exec "$@"',
            "sh",
            *command,
        ],
        env=cli_env(emulator.env()),
        capture_output=True,
        text=True,
        check=False,
    )
    if "mount" in done.stderr or "unshare" in done.stderr:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 2, done.stderr
    assert f"directory {readonly} is not writable" in done.stderr


def test_source_failures_keep_the_old_file(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    old = emulator.mint_google_id_token(lifetime=3600, issued_at=time.time() - 3000)
    token_file.write_text(old)
    emulator.set_google_available(False)
    started = time.monotonic()
    done = write(emulator, "--token-file", str(token_file), "--source-timeout", "2s")
    assert done.returncode == 1
    assert time.monotonic() - started < 20  # bounded: refused connections are retried briefly
    assert "cannot reach the Google token source" in done.stderr
    assert "GOOGLE_APPLICATION_CREDENTIALS" in done.stderr
    assert token_file.read_text() == old
    emulator.set_google_available(True)
    emulator.fail_next("metadata.identity", 403, body={"error": "forbidden"})
    done = write(emulator, "--token-file", str(token_file))
    assert done.returncode == 1
    assert token_file.read_text() == old


def test_stale_token_from_source_is_refused(tmp_path: Path) -> None:
    from azfed_helper.emulator import Emulator

    # An emulator whose clock runs two hours behind mints tokens that expired an hour ago.
    with Emulator(clock=lambda: time.time() - 7200) as stale:
        token_file = tmp_path / "token"
        done = write(stale, "--token-file", str(token_file))
    assert done.returncode == 1
    assert "claim 'exp'" in done.stderr
    assert not token_file.exists()


def test_concurrent_writers_make_one_fetch(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    env = cli_env(emulator.env())
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", "write", "--token-file", str(token_file)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    codes = [child.wait(timeout=60) for child in children]
    for child in children:
        assert child.stderr is not None
        child.stderr.close()
    assert codes == [0] * 6
    assert emulator.counts["metadata.identity"] == 1
    assert claims_of(token_file)["aud"] == AUD


def test_sigkilled_writers_never_expose_a_partial_file(emulator: Any, tmp_path: Path) -> None:
    """Writers killed at random moments while a reader checks that every read is a whole token."""
    import random
    import signal
    import threading

    token_file = tmp_path / "token"
    assert write(emulator, "--token-file", str(token_file)).returncode == 0
    bad_reads: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                data = token_file.read_text()
                idtoken.validate(
                    idtoken.decode(data), AUD, time.time(), issuer=idtoken.GOOGLE_ISSUER
                )
            except Exception as exc:  # any failure is a missing, torn or invalid read
                bad_reads.append(repr(exc))
            reads += 1

    def wait_for_reads(count: int) -> None:
        """However busy the machine, each writer lives through some reads before it is killed."""
        deadline = time.monotonic() + 30
        while reads < count:
            assert thread.is_alive() and time.monotonic() < deadline, f"only {reads} reads"
            time.sleep(0.001)

    thread = threading.Thread(target=reader)
    thread.start()
    env = cli_env(emulator.env())
    rng = random.Random(7)
    try:
        for _ in range(12):
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "azfed_helper",
                    "write",
                    "--force",
                    "--token-file",
                    str(token_file),
                ],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            spawned = reads
            time.sleep(rng.uniform(0.05, 0.6))  # kill at a random point, often mid-refresh
            wait_for_reads(spawned + 10)
            child.send_signal(signal.SIGKILL)
            child.wait()
    finally:
        stop.set()
        thread.join()
    assert bad_reads == []
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) <= 12  # a killed writer may leave its own temp file, never a torn target


def test_mode_applied_on_rewrite(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    assert write(emulator, "--token-file", str(token_file), "--mode", "0644").returncode == 0
    os.chmod(token_file, 0o666)
    assert write(emulator, "--token-file", str(token_file), "--mode", "0644").returncode == 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o644
    assert write(emulator, "--token-file", str(token_file), "--force").returncode == 0
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_written_file_is_accepted_by_workload_identity_credential(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    """The unmodified azure-identity credential, pointed at the emulated Entra, takes our file."""
    from azure.identity import WorkloadIdentityCredential

    token_file = tmp_path / "token"
    assert write(emulator, "--token-file", str(token_file)).returncode == 0
    credential = WorkloadIdentityCredential(
        tenant_id=emulator.tenant_id,
        client_id=emulator.client_id,
        token_file_path=str(token_file),
        authority=emulator.authority_host,
    )
    access = credential.get_token("https://management.azure.com/.default")
    assert access.expires_on > time.time()
    assert idtoken.decode(access.token).claims["aud"] == "https://management.azure.com"
    assert emulator.counts["entra.token"] == 1
