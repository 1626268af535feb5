"""The az hook's cost when nothing needs refreshing, with the real Azure CLI and the emulator.

1. No-op ``azfed-helper az-login`` vs a bare ``python -c pass`` (goal: at most 1.35x).
2. ``azfed-helper az -- account get-access-token`` vs bare ``az account get-access-token``, both
   served from az's token cache (goal: under 15% overhead).

Builds (once) the azure-cli venv of the tests (tests/az_venv.py, ~1 minute). Run:
``.venv/bin/python benchmarks/bench_az_hook.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import compile_package, console_script, median_pair, report

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.az_venv import AZ_VERSION, ensure_az


def az_env(emulator: object, config: str, az_bin: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZFED_"))}
    env.update(emulator.env())  # type: ignore[attr-defined]
    env.update(
        AZURE_CONFIG_DIR=config,
        AZFED_CACHE_DIR=os.path.join(config, "cache"),
        AZURE_CORE_COLLECT_TELEMETRY="false",
        AZURE_CORE_INSTANCE_DISCOVERY="false",
        HTTPS_PROXY="http://127.0.0.1:9",
        HTTP_PROXY="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
        PATH=f"{az_bin}{os.pathsep}{os.environ['PATH']}",
    )
    return env


def main() -> None:
    from azfed_helper.emulator import Emulator

    az = str(ensure_az())
    compile_package()
    with Emulator() as emulator, tempfile.TemporaryDirectory() as config:
        env = az_env(emulator, config, os.path.dirname(az))
        versions = {n: {"local": AZ_VERSION} for n in ("azure-cli", "core", "telemetry")}
        check = {"versions": versions, "update_time": "2099-01-01 00:00:00.000000"}
        Path(config, "versionCheck.json").write_text(json.dumps(check))
        host = emulator.authority_host
        for args in (
            ["cloud", "register", "-n", "azfedemu", "--endpoint-active-directory", host,
             "--endpoint-resource-manager", host + "/", "--endpoint-active-directory-resource-id",
             "https://management.core.windows.net/", "--skip-endpoint-discovery"],
            ["cloud", "set", "-n", "azfedemu"],
        ):  # fmt: skip
            subprocess.run([az, *args], env=env, check=True, capture_output=True)
        helper = console_script()
        subprocess.run([helper, "az-login", "-q"], env=env, check=True)
        get = ["account", "get-access-token", "-o", "none"]
        subprocess.run([az, *get], env=env, check=True)  # warm az's token cache
        noop, base = median_pair([helper, "az-login"], [sys.executable, "-c", "pass"], env=env)
        report("no-op az-login", noop, base)
        wrapped, bare = median_pair([helper, "az", "--", *get], [az, *get], runs=15, env=env)
    print(
        f"az -- account get-access-token: {wrapped * 1000:.0f} ms vs bare az {bare * 1000:.0f} ms "
        f"= {100 * (wrapped - bare) / bare:+.1f}% overhead"
    )


if __name__ == "__main__":
    main()
