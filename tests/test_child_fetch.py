"""The daemon's child-process fetch: same tokens and same errors as the in-process source."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken
from azfed_helper._internal.config import resolve
from azfed_helper._internal.errors import SourceError, UsageError
from azfed_helper._internal.sources import child_fetch

from .conftest import cli_env


def test_child_fetch_returns_a_token(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    key = emulator.write_service_account_key(tmp_path / "key.json")
    settings = resolve(argparse.Namespace(credentials=str(key)))
    token = idtoken.decode(child_fetch.fetch(settings))
    assert token.claims["aud"] == "api://AzureADTokenExchange"
    assert emulator.counts["google.token"] == 1


def test_parent_never_imports_google_auth(emulator: Any, tmp_path: Path) -> None:
    key = emulator.write_service_account_key(tmp_path / "key.json")
    script = (
        "import argparse, sys\n"
        "from azfed_helper._internal.sources import child_fetch\n"
        "from azfed_helper._internal.config import resolve\n"
        f"child_fetch.fetch(resolve(argparse.Namespace(credentials={str(key)!r})))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'requests', 'msal'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=cli_env(emulator.env()), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert emulator.counts["google.token"] == 1


def test_child_errors_keep_their_type_message_and_hint(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "authorized_user"}))
    with pytest.raises(UsageError) as usage:
        child_fetch.fetch(resolve(argparse.Namespace(credentials=str(broken))))
    assert f"authorized_user credentials in {broken}" in usage.value.message
    assert usage.value.hint is not None
    assert "--impersonate" in usage.value.hint
    emulator.set_google_available(False)
    with pytest.raises(SourceError, match="cannot reach the Google token source"):
        child_fetch.fetch(resolve(argparse.Namespace(source_timeout="1s")))
