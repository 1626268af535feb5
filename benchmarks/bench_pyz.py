"""No-op ``write`` from the single-file build (``.pyz``) against a bare ``python3 -c pass`` of the
interpreter in its ``#!`` line, with the virtual environment's console script for comparison.

Goal (README "Performance"): at most 2x; nothing is unpacked on this path.
Run: ``.venv/bin/python benchmarks/bench_pyz.py [PYZ]`` (default: the newest ``dist/*.pyz``,
built by ``./scripts/build-dist``).
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

from _timing import compile_package, console_script, fresh_token_file, interleaved_medians, report

REPO = Path(__file__).resolve().parent.parent


def newest_pyz() -> Path:
    built = sorted((REPO / "dist").glob("*.pyz"), key=lambda path: path.stat().st_mtime)
    if not built:
        raise SystemExit("no dist/*.pyz: run ./scripts/build-dist first")
    return built[-1]


def interpreter_of(pyz: Path) -> str:
    """The python the archive's shell header starts (``exec PYTHON -IS -c ...``)."""
    with pyz.open("rb") as handle:
        handle.readline()  # #!/bin/sh
        return shlex.split(handle.readline().decode())[1]


def main() -> None:
    pyz = Path(sys.argv[1]) if len(sys.argv) > 1 else newest_pyz()
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        path = fresh_token_file(tmp)
        # No directory to unpack into: the no-op path must not need one.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AZURE_", "AZFED_")) and k != "XDG_RUNTIME_DIR"
        }
        times = interleaved_medians(
            {
                "base": [interpreter_of(pyz), "-c", "pass"],
                "pyz": [str(pyz), "write", "--token-file", path],
                "venv base": [sys.executable, "-c", "pass"],
                "venv": [console_script(), "write", "--token-file", path],
            },
            env,
            runs=30,
        )
    report(f"no-op write from {pyz.name}", times["pyz"], times["base"])
    report("no-op write from the venv's console script", times["venv"], times["venv base"])
    print(f"pyz / venv: {times['pyz'] / times['venv']:.2f}x")


if __name__ == "__main__":
    main()
