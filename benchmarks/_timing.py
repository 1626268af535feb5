"""Timing helpers for the benchmarks: median wall time of a child process, blocking wait.

``subprocess.run(timeout=...)`` polls with growing sleeps and rounds short children up, so we
time ``Popen.wait()`` and rely on a watchdog thread for runaway children instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence


def _once(argv: Sequence[str], env: dict[str, str] | None) -> float:
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    code = child.wait()
    watchdog.cancel()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{argv} exited {code}")
    return elapsed


def median_seconds(argv: Sequence[str], runs: int = 30, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``argv`` over ``runs`` runs (after two warm-up runs)."""
    samples = [_once(argv, env) for _ in range(runs + 2)]
    return statistics.median(samples[2:])


def interleaved_medians(
    commands: dict[str, Sequence[str]], env: dict[str, str] | None = None, runs: int = 60
) -> dict[str, float]:
    """Median wall time of each command, the commands taking turns (after two warm-up rounds):
    on a machine whose speed drifts (a shared VM), all see the same drift and their ratios stay
    meaningful."""
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for index in range(runs + 2):
        for label, argv in commands.items():
            elapsed = _once(argv, env)
            if index >= 2:
                samples[label].append(elapsed)
    return {label: statistics.median(values) for label, values in samples.items()}


def median_pair(
    ours: Sequence[str], base: Sequence[str], runs: int = 60, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median wall times of ``ours`` and ``base``, interleaved."""
    times = interleaved_medians({"ours": ours, "base": base}, env, runs)
    return times["ours"], times["base"]


def console_script(name: str = "azfed-helper") -> str:
    """The console script next to this interpreter (what users run), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    found = beside if os.path.exists(beside) else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed for {sys.executable}")
    return found


def fake_google_token(lifetime: int = 3600) -> str:
    """A token with the claims our checks read (signatures are Entra's business, not ours)."""
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": "api://AzureADTokenExchange",
        "sub": "112233445566778899001",
        "iat": now,
        "exp": now + lifetime,
    }

    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def fresh_token_file(directory: str) -> str:
    """A 0600 token file holding a fresh token (what a no-op ``write`` finds), in ``directory``."""
    path = os.path.join(directory, "token")
    with open(path, "w") as handle:
        handle.write(fake_google_token())
    os.chmod(path, 0o600)
    return path


def compile_package() -> None:
    """Write our bytecode first, where the console script imports it from: pip does at install,
    but an editable tree under PYTHONDONTWRITEBYTECODE (set on our machines) would recompile
    every module on every run. An isolated child finds the installed package, not a checkout on
    ``sys.path`` (a strict editable install imports from its own link tree)."""
    code = "import compileall, os, azfed_helper as p; compileall.compile_dir(os.path.dirname(p.__file__), quiet=1)"
    subprocess.run([sys.executable, "-I", "-c", code], cwd="/", check=True)


def report(label: str, ours: float, base: float) -> None:
    print(
        f"{label}: {ours * 1000:.1f} ms vs python -c pass {base * 1000:.1f} ms = {ours / base:.2f}x"
    )
