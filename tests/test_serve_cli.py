"""``azfed-helper serve`` and ``env --for managed-identity`` as processes: the env file, signals,
refusals at start-up, and that the secret never reaches the log."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import cli_env, refusing_port, run_cli


class Serve:
    """A running ``serve`` child and its env file."""

    def __init__(self, env: dict[str, str], env_file: Path, *args: str) -> None:
        self.env_file = env_file
        argv = ["serve", "--port", "0", "--env-file", str(env_file), *args]
        self.child = subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", *argv],
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not env_file.exists():
            if self.child.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start: {self.child.communicate()[1]}")
            time.sleep(0.02)

    def stop(self) -> tuple[int, str, str]:
        if self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)
        out, err = self.child.communicate(timeout=30)
        return self.child.returncode, out, err


@pytest.fixture
def base_env(emulator: Any, tmp_path: Path) -> dict[str, str]:
    return {**emulator.env(), "AZFED_CACHE_DIR": str(tmp_path / "cache")}


@pytest.fixture
def serve(base_env: dict[str, str], tmp_path: Path) -> Iterator[Serve]:
    running = Serve(base_env, tmp_path / "mi.env")
    yield running
    running.stop()


def test_env_file_is_private_and_env_prints_it(serve: Serve, base_env: dict[str, str]) -> None:
    assert serve.env_file.stat().st_mode & 0o777 == 0o600
    shown = run_cli("env", "--for", "managed-identity", "--env-file", str(serve.env_file))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("export IDENTITY_ENDPOINT=http://127.0.0.1:")
    assert lines[0].endswith("/msi/token")
    assert lines[1].startswith("export IDENTITY_HEADER=")
    assert lines[2].startswith("export NO_PROXY=127.0.0.1,localhost")
    assert lines[3] == "unset IDENTITY_SERVER_THUMBPRINT"
    as_json = run_cli(
        "env", "--for", "managed-identity", "--env-file", str(serve.env_file), "--format", "json"
    )
    variables = json.loads(as_json.stdout)
    assert set(variables) == {"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "NO_PROXY"}
    request = urllib.request.Request(
        variables["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=https://vault.azure.net",
        headers={"X-IDENTITY-HEADER": variables["IDENTITY_HEADER"]},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["resource"] == "https://vault.azure.net"
    code, _out, err = serve.stop()
    assert code == 0
    assert variables["IDENTITY_HEADER"] not in err  # the secret is never logged
    assert "managed-identity endpoint on http://127.0.0.1:" in err
    assert not serve.env_file.exists()  # removed on a clean stop
    gone = run_cli("env", "--for", "managed-identity", "--env-file", str(serve.env_file))
    assert gone.returncode == 2 and "no managed-identity endpoint file" in gone.stderr


def test_default_env_file_lives_in_the_cache_dir(base_env: dict[str, str], tmp_path: Path) -> None:
    env_file = tmp_path / "cache" / "identity-endpoint.env"
    child = subprocess.Popen(
        [sys.executable, "-m", "azfed_helper", "serve", "--port", "0", "--print-env"],
        env=cli_env(base_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        printed = [child.stdout.readline() for _ in range(4)]
        assert printed[0].startswith("export IDENTITY_ENDPOINT=")
        shown = run_cli("env", "--for", "managed-identity", env=base_env)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.splitlines() == [line.rstrip("\n") for line in printed]
        assert env_file.exists()
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=30)
    assert child.returncode == 0
    assert not env_file.exists()


def test_env_refuses_a_file_whose_server_is_gone(tmp_path: Path) -> None:
    port = refusing_port()
    stale = tmp_path / "stale.env"
    stale.write_text(
        f"export IDENTITY_ENDPOINT=http://127.0.0.1:{port}/msi/token\nexport IDENTITY_HEADER=x\n"
    )
    shown = run_cli("env", "--for", "managed-identity", "--env-file", str(stale))
    assert shown.returncode == 1
    assert "no managed-identity endpoint is listening" in shown.stderr


def test_secret_file_is_used(base_env: dict[str, str], tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("my-fixed-secret-123\n")
    secret_file.chmod(0o600)
    running = Serve(base_env, tmp_path / "mi.env", "--secret-file", str(secret_file))
    try:
        assert "export IDENTITY_HEADER=my-fixed-secret-123" in running.env_file.read_text()
    finally:
        code, _out, err = running.stop()
    assert code == 0 and "my-fixed-secret-123" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bind", "0.0.0.0"), "refusing to serve managed-identity tokens on non-loopback"),
        (("--secret-file", "/nonexistent/secret"), "cannot read --secret-file"),
    ],
)
def test_refusals_at_start(base_env: dict[str, str], args: tuple[str, ...], message: str) -> None:
    done = run_cli("serve", "--port", "0", *args, env=base_env)
    assert done.returncode == 2
    assert message in done.stderr


def test_busy_port_is_a_usage_error(base_env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = run_cli("serve", "--port", port, env=base_env)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port 0" in done.stderr


def test_missing_app_configuration_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("serve", "--port", "0", env={"AZFED_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 2
    assert "AZURE_TENANT_ID is not set" in done.stderr
    assert not (tmp_path / "cache").exists()  # nothing written
