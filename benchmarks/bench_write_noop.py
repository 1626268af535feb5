"""No-op ``azfed-helper write`` (fresh token file) against a bare ``python -c pass``.

Goal (README "Performance"): at most 1.35x, the interpreter's own start being the floor.
Run: ``.venv/bin/python benchmarks/bench_write_noop.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile

from _timing import compile_package, console_script, fresh_token_file, median_pair, report


def main() -> None:
    compile_package()
    with tempfile.TemporaryDirectory() as tmp:
        path = fresh_token_file(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZFED_"))}
        argv = [console_script(), "write", "--token-file", path]
        ours, base = median_pair(argv, [sys.executable, "-c", "pass"], env=env)
    report("no-op write", ours, base)


if __name__ == "__main__":
    main()
