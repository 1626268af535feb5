"""Cache-hit ``azfed-helper token`` against a bare ``python -c pass`` (and ``az`` when installed).

Goals (README "Performance"): at most 1.35x ``python -c pass``, and at least 10x faster than
``az account get-access-token``. The cache is warmed once through the embedded emulator, so the
timed runs read the on-disk cache only (no network).
Run: ``.venv/bin/python benchmarks/bench_token_cache_hit.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from _timing import compile_package, console_script, median_pair, median_seconds, report

from azfed_helper.emulator import Emulator

RESOURCE = "https://management.azure.com"


def main() -> None:
    compile_package()
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZFED_"))}
        env.update(emulator.env())
        env["AZFED_CACHE_DIR"] = os.path.join(tmp, "cache")
        argv = [console_script(), "token", "--resource", RESOURCE]
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)  # warm the cache
        ours, base = median_pair(argv, [sys.executable, "-c", "pass"], env=env)
    report("cache-hit token", ours, base)
    az = shutil.which("az")
    if az is None:
        print("az not installed: az account get-access-token not measured")
        return
    # Assumes a logged-in az with a cached token for the resource (az's own cache hit).
    theirs = median_seconds([az, "account", "get-access-token", "--resource", RESOURCE], runs=5)
    print(f"az account get-access-token: {theirs * 1000:.1f} ms = {theirs / ours:.1f}x ours")


if __name__ == "__main__":
    main()
