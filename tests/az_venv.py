"""The real Azure CLI for tests and benchmarks, in its own virtual environment, built once.

azure-cli pins its own msal, so it never shares our environment. The venv is built under the
repository's git-ignored ``build/`` (or ``$AZFED_TEST_AZ_VENV``), before the first test runs
(``pytest_collection_finish`` in conftest.py, and only when az tests are selected), so its minute
of pip never counts against a test's timeout. It is marked complete only at the end, under a lock:
concurrent runs build it once, and a killed build (no marker) is deleted and built again, never
used. Later runs reuse it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

AZ_VERSION = "2.91.0"
_REPO = Path(__file__).resolve().parent.parent
_MARKER = ".azfed-complete"


def venv_dir() -> Path:
    configured = os.environ.get("AZFED_TEST_AZ_VENV")
    return Path(configured) if configured else _REPO / "build" / f"az-venv-{AZ_VERSION}"


def is_built(target: Path | None = None) -> bool:
    """True when the venv was built to the end, for this AZ_VERSION."""
    marker = (target or venv_dir()) / _MARKER
    try:
        return marker.read_text().startswith(f"{AZ_VERSION} ")
    except OSError:
        return False


def ensure_az() -> Path:
    """Path of the ``az`` executable of azure-cli AZ_VERSION, building its venv if needed."""
    import filelock

    target = venv_dir()
    az = target / "bin" / "az"
    if is_built(target):
        return az
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock", timeout=1800):
        if is_built(target):
            return az  # another run built it while we waited
        shutil.rmtree(target, ignore_errors=True)  # an unfinished build: start over
        started = time.monotonic()
        # Built in place under its final name: a venv's scripts hard-code their own path.
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
        done = subprocess.run(
            [
                str(target / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                f"azure-cli=={AZ_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"cannot install azure-cli=={AZ_VERSION} into {target}:\n{done.stderr[-3000:]}"
            )
        (target / _MARKER).write_text(f"{AZ_VERSION} built in {time.monotonic() - started:.0f}s\n")
    return az
