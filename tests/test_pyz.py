"""The single-file executable: built by scripts/build-pyz, run by a clean interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from azfed_helper._internal import idtoken

from .conftest import REPO


def test_pyz_writes_a_token_from_a_clean_interpreter(emulator: Any, tmp_path: Path) -> None:
    pyz = tmp_path / "azfed-helper.pyz"
    built = subprocess.run(
        [str(REPO / "scripts" / "build-pyz"), sys.executable, str(pyz)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    # The base interpreter, isolated and without site-packages: nothing but what the .pyz carries.
    python = os.path.join(sys.base_prefix, "bin", "python3")
    token_file = tmp_path / "token"
    env = {**emulator.env(), "HOME": str(tmp_path), "PATH": os.environ["PATH"]}
    done = subprocess.run(
        [python, "-I", "-S", str(pyz), "write", "--token-file", str(token_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert idtoken.decode(token_file.read_text()).claims["sub"] == emulator.service_account_id
    assert (tmp_path / ".shiv").is_dir()  # unpacked under the user's home, not the repo
