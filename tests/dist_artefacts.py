"""The release artefacts under test: built once by ``./scripts/test`` (``scripts/build-dist --dist
build/test-dist --if-changed``) before pytest starts, never inside a test's timeout.

A test that needs one skips, saying how to build it, when build/test-dist is missing or older than
the sources (running pytest directly after a change); ``./scripts/test`` and CI always rebuild
first, so there it never skips for this reason.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import pytest

from azfed_helper import __version__

REPO = Path(__file__).resolve().parent.parent
TEST_DIST = REPO / "build" / "test-dist"
BUILD = "./scripts/build-dist --dist build/test-dist --if-changed"


@functools.cache
def _stale() -> str | None:
    done = subprocess.run(
        [str(REPO / "scripts" / "build-dist"), "--dist", str(TEST_DIST), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return None if done.returncode == 0 else done.stdout.strip() or done.stderr.strip()


def artefact(pattern: str) -> Path:
    """The artefact of this version matching ``pattern`` (``{version}`` is filled in)."""
    stale = _stale()
    if stale:
        pytest.skip(f"{stale}; run ./scripts/test, or {BUILD}")
    found = sorted(TEST_DIST.glob(pattern.format(version=__version__)))
    if not found:
        pytest.skip(f"no {pattern} in build/test-dist (not built on this machine: see {BUILD})")
    return found[-1]


def pyz() -> Path:
    return artefact("azfed-helper-{version}-py*.pyz")


def deb() -> Path:
    return artefact("azfed-helper_{version}_all.deb")
