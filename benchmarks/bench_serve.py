"""``azfed-helper serve`` against the emulator: az through it, and raw requests per second.

1. ``az account get-access-token`` (median of RUNS) after ``az login --identity`` through
   ``serve``, against az's own service-principal mode with a cached token (``az login
   --service-principal --federated-token``), in one run on this machine.
2. Requests per second one ``serve`` process answers from its cache, with CLIENTS client threads
   (one connection per request, as the SDKs' fresh processes make) for SECONDS.

Needs the az venv (tests/az_venv.py builds it once under build/).
Run: ``.venv/bin/python benchmarks/bench_serve.py``.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from _timing import compile_package, median_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from azfed_helper.emulator import Emulator
from tests.az_venv import ensure_az
from tests.test_az_e2e import AzWorld

RUNS = 9
CLIENTS = 4
SECONDS = 5.0


def start_serve(env: dict[str, str], env_file: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "azfed_helper", "serve", "--port", "0", "-q"]
    child = subprocess.Popen([*argv, "--env-file", str(env_file)], env=env)
    deadline = time.monotonic() + 30
    while not env_file.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("serve did not start")
        time.sleep(0.02)
    return child


def read_variables(env_file: Path) -> dict[str, str]:
    values = {}
    for line in env_file.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            values[name] = value.strip("'")
    return values


def az_timings(emulator: Emulator, tmp: Path) -> None:
    world = AzWorld(emulator, tmp, ensure_az())
    base = {**os.environ, **world.env}
    az = str(ensure_az())
    # az's own service-principal mode, token cached by az's MSAL.
    token_file = tmp / "google-token"
    token_file.write_text(emulator.mint_google_id_token())
    login = world.az(
        "login", "--service-principal", "-u", emulator.client_id, "--tenant", emulator.tenant_id,
        "--federated-token", f"@{token_file}", "--allow-no-subscriptions", "-o", "none",
    )  # fmt: skip
    if login.returncode:
        raise SystemExit(login.stderr)
    get = [az, "account", "get-access-token", "-o", "none"]
    sp = median_seconds(get, RUNS, {**base, "AZURE_CONFIG_DIR": str(world.config)})
    # The same command through serve, in a second az profile.
    mi_config = tmp / "azure-mi"
    mi_config.mkdir()
    for name in ("versionCheck.json", "clouds.config", "config"):
        (mi_config / name).write_bytes((world.config / name).read_bytes())
    server = start_serve({**base, "AZFED_CACHE_DIR": str(tmp / "cache")}, tmp / "mi.env")
    try:
        env = {**base, **read_variables(tmp / "mi.env"), "AZURE_CONFIG_DIR": str(mi_config)}
        login_mi = [az, "login", "--identity", "--allow-no-subscriptions", "-o", "none"]
        if subprocess.run(login_mi, env=env, check=False).returncode:
            raise SystemExit("az login --identity failed")
        mi = median_seconds(get, RUNS, env)
    finally:
        server.terminate()
        server.wait()
    print(f"az account get-access-token, median of {RUNS}:")
    print(f"  service-principal mode (az's cache): {sp * 1000:.0f} ms")
    print(f"  managed identity through serve:      {mi * 1000:.0f} ms ({mi / sp:.2f}x)")


def requests_per_second(emulator: Emulator, tmp: Path) -> None:
    env = {**os.environ, **emulator.env(), "AZFED_CACHE_DIR": str(tmp / "rps-cache")}
    server = start_serve(env, tmp / "rps.env")
    try:
        variables = read_variables(tmp / "rps.env")
        url = urlsplit(variables["IDENTITY_ENDPOINT"])
        path = f"{url.path}?api-version=2019-08-01&resource=https://vault.azure.net"
        headers = {"X-IDENTITY-HEADER": variables["IDENTITY_HEADER"], "Metadata": "true"}

        def one() -> None:
            connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                raise SystemExit(f"HTTP {response.status}")

        one()  # the exchange; everything after is a cache hit
        counts = [0] * CLIENTS
        stop_at = time.monotonic() + SECONDS

        def client(index: int) -> None:
            while time.monotonic() < stop_at:
                one()
                counts[index] += 1

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.terminate()
        server.wait()
    print(
        f"serve from cache: {sum(counts) / SECONDS:.0f} requests/s "
        f"({CLIENTS} client threads in one process, {SECONDS:.0f} s, 2 cores shared with them)"
    )


def main() -> None:
    compile_package()
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        requests_per_second(emulator, Path(tmp))
        az_timings(emulator, Path(tmp))


if __name__ == "__main__":
    main()
