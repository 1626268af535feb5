"""google_source in-process: what it leaves behind (nothing) and what it logs (no tokens)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from azfed_helper._internal import idtoken
from azfed_helper._internal.config import resolve
from azfed_helper._internal.sources import google as google_source

from .conftest import cli_env


def test_iam_endpoint_override_is_scoped_to_one_fetch(emulator: Any, tmp_path: Path) -> None:
    from google.auth import iam

    before = (iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT)
    key = emulator.write_service_account_key(tmp_path / "key.json")
    target = "other@emulated-project.iam.gserviceaccount.com"
    flags = argparse.Namespace(
        credentials=str(key), impersonate=target, iam_endpoint=emulator.iam_endpoint
    )
    token = idtoken.decode(google_source.fetch(resolve(flags)))
    assert token.claims["email"] == target
    assert emulator.counts["iam.generateIdToken"] == 1
    # Another Settings in this process (no override) must not inherit the emulator's endpoint.
    assert before == (iam._IAM_ENDPOINT, iam._IAM_IDTOKEN_ENDPOINT)


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
