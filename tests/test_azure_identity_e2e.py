"""Unmodified azure-identity reads the file `write` produced, across rotations.

azure-identity re-reads the token file only every 600 s per credential instance; instead of
waiting, the tests build new instances (what a new process does) and move the emulator's clock.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, WorkloadIdentityCredential

import azfed_helper
from azfed_helper._internal.cli import main

from .conftest import run_cli

ARM = "https://management.azure.com/.default"
STORAGE = "https://storage.azure.com/.default"


@pytest.fixture
def consumer_env(
    emulator_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """Write the token file, then export exactly what `azfed-helper env` prints."""
    path = tmp_path / "run" / "token"
    assert main(["write", "--token-file", str(path), "--create-dirs", "-q"]) == 0
    capsys.readouterr()
    assert main(["env", "--token-file", str(path)]) == 0
    exported = capsys.readouterr().out
    variables = dict(line.split(" ", 1)[1].split("=", 1) for line in exported.splitlines())
    assert sorted(variables) == [
        "AZURE_AUTHORITY_HOST",
        "AZURE_CLIENT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_TENANT_ID",
    ]
    for name, value in variables.items():
        monkeypatch.setenv(name, shlex.split(value)[0])
    monkeypatch.setenv("AZFED_CACHE_DIR", str(tmp_path / "cache"))
    return path


def test_workload_identity_and_default_credential(emulator: Any, consumer_env: Path) -> None:
    token = WorkloadIdentityCredential().get_token(ARM)
    assert token.token.count(".") == 2
    assert DefaultAzureCredential().get_token(STORAGE).token != token.token
    assert emulator.counts["entra.token"] == 2
    assert emulator.counts["metadata.identity"] == 1  # only `write` asked Google


def advance_entra_clock(emulator: Any, seconds: int) -> None:
    emulator.clock = lambda: time.time() + seconds


# Tokens are due once less than min(refresh margin, half their life) is left. The emulated Google
# mints on the emulator's clock: minted 120 s in the past, a 180-second token has 60 s left for
# us, less than half its life, so the next `write` (or reader) replaces it.
LIFETIME, MINTED_AGO = 180, 120


def test_rotation_with_short_lifetimes(emulator: Any, consumer_env: Path) -> None:
    emulator.id_token_lifetime = LIFETIME
    advance_entra_clock(emulator, -MINTED_AGO)
    assert main(["write", "--token-file", str(consumer_env), "--force", "-q"]) == 0
    old = consumer_env.read_text()
    reader = WorkloadIdentityCredential()
    assert reader.get_token(ARM).token

    # The file's token has now expired for Entra. (The emulated Google shares this clock: less
    # than 5 minutes ahead of ours, or its new tokens would be refused as issued in the future.)
    advance_entra_clock(emulator, MINTED_AGO)
    with pytest.raises(ClientAuthenticationError, match="AADSTS700024"):
        reader.get_token(STORAGE)  # azure-identity still presents what it read (600 s reuse)

    assert main(["write", "--token-file", str(consumer_env), "-q"]) == 0  # the timer's next run
    assert consumer_env.read_text() != old
    assert WorkloadIdentityCredential().get_token(STORAGE).token
    assert DefaultAzureCredential().get_token("https://vault.azure.net/.default").token


def test_our_readers_refresh_the_file_themselves(emulator: Any, consumer_env: Path) -> None:
    emulator.id_token_lifetime = LIFETIME
    advance_entra_clock(emulator, -MINTED_AGO)
    assert main(["write", "--token-file", str(consumer_env), "--force", "-q"]) == 0
    old = consumer_env.read_text()
    advance_entra_clock(emulator, MINTED_AGO)  # the file's token has expired for Entra
    token = azfed_helper.GoogleFederatedCredential().get_token(STORAGE)
    assert token.token
    assert consumer_env.read_text() != old  # the file was refreshed on the way
    done = run_cli("token", "--scope", ARM)
    assert done.returncode == 0, done.stderr
    assert WorkloadIdentityCredential().get_token(ARM).token
