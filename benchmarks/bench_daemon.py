"""An idle ``azfed-helper daemon`` against the emulator: memory, CPU, requests per token lifetime.

Goals (README "Performance"): under 40 MB RSS; effectively zero CPU while idle (the loop sleeps
until its next deadline); exactly one request to the token source per token lifetime.
Run: ``.venv/bin/python benchmarks/bench_daemon.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from _timing import compile_package

from azfed_helper.emulator import Emulator

IDLE_SECONDS = 20
SHORT_LIFETIME = 4  # seconds; refresh margin 2 s: one refresh every ~2 s
STEADY_SECONDS = 20


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def start(emulator: Emulator, token_file: str, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZFED_", "GCE_"))}
    env.update(emulator.env())
    argv = [sys.executable, "-m", "azfed_helper", "daemon", "--token-file", token_file, *args]
    return subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL)


def wait_for_file(path: str) -> None:
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit("the daemon wrote no token file")
        time.sleep(0.05)


def idle(emulator: Emulator, tmp: str) -> None:
    path = os.path.join(tmp, "idle-token")
    daemon = start(emulator, path, "--health-addr", "127.0.0.1:0")
    try:
        wait_for_file(path)
        time.sleep(1)  # let start-up finish
        cpu_before = cpu_seconds(daemon.pid)
        time.sleep(IDLE_SECONDS)
        cpu_idle = cpu_seconds(daemon.pid) - cpu_before
        print(f"idle daemon (1 h tokens, health server on): RSS {rss_mb(daemon.pid):.1f} MB")
        print(f"CPU while idle: {cpu_idle * 1000:.0f} ms over {IDLE_SECONDS} s")
        print(
            f"requests to the metadata server: {emulator.counts['metadata.identity']} (the first write)"
        )
    finally:
        daemon.terminate()
        daemon.wait()


def steady(emulator: Emulator, tmp: str) -> None:
    emulator.id_token_lifetime = SHORT_LIFETIME
    path = os.path.join(tmp, "steady-token")
    daemon = start(emulator, path, "--refresh-margin", "2s", "--min-remaining", "1s")
    seen: set[bytes] = set()
    try:
        wait_for_file(path)
        time.sleep(0.5)
        emulator.reset_counts()
        with open(path, "rb") as handle:
            first = handle.read()
        deadline = time.monotonic() + STEADY_SECONDS
        while time.monotonic() < deadline:  # a reader: every token that ever reached the file
            with open(path, "rb") as handle:
                seen.add(handle.read())
            time.sleep(0.05)
        requests = emulator.counts["metadata.identity"]
    finally:
        daemon.terminate()
        daemon.wait()
    tokens = len(seen - {first})
    print(
        f"steady state, {SHORT_LIFETIME} s tokens, margin 2 s, {STEADY_SECONDS} s: "
        f"{requests} requests to the metadata server for {tokens} new tokens "
        f"({requests / max(tokens, 1):.2f} per token; one refresh every "
        f"{STEADY_SECONDS / max(requests, 1):.2f} s)"
    )


def main() -> None:
    compile_package()
    with Emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        idle(emulator, tmp)
        steady(emulator, tmp)


if __name__ == "__main__":
    main()
