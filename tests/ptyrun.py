"""Run the CLI with a pseudo-terminal as its stdout and stderr, as a user's shell would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

from .conftest import cli_env

# Colour on unless a test says otherwise, whatever the machine running the tests exports.
TERMINAL = {"TERM": "xterm-256color", "NO_COLOR": None}


def run_in_pty(
    *args: str, env: dict[str, str | None] | None = None, timeout: float = 60
) -> tuple[int, str]:
    """Exit code and everything written to the terminal (``\\r\\n`` read back as ``\\n``).

    ``env`` entries of None remove that variable. ``timeout`` is a backstop against a hung
    child, not a measurement.
    """
    changes = {**TERMINAL, **(env or {})}
    environment = cli_env({k: v for k, v in changes.items() if v is not None})
    for name in (k for k, v in changes.items() if v is None):
        environment.pop(name, None)
    main, child = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "azfed_helper", *args],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=child,
            stderr=child,
        )
    finally:
        os.close(child)
    output = bytearray()
    try:
        while select.select([main], [], [], timeout)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal's last writer
                break
            if not chunk:
                break
            output += chunk
        code = process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    return code, output.decode("utf-8", "replace").replace("\r\n", "\n")
