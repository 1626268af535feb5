"""Fetch a Google ID token in a short-lived child process (the one source that needs one).

The daemon runs for days but needs google-auth (with requests and cryptography) for a moment every
half hour; importing them in the daemon would keep ~30 MB resident for its whole life. A child
process does the fetch and hands the token back over a pipe (never argv); its errors come back as
the same AzfedError types, with their messages and hints, so the daemon's handling is unchanged.

Protocol: the parent writes the source settings as JSON to the child's stdin; the child answers
one JSON object on stdout: ``{"token": ...}`` or ``{"error": CLASS, "message": ..., "hint": ...}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from .. import errors, isolated
from ..config import Settings
from ..errors import AzfedError, SourceError
from . import total_source_budget

CHILD_MODULE = "azfed_helper._internal.sources.child_fetch"

# The settings google_source.fetch reads; the child gets nothing else.
FIELDS = (
    "audience",
    "credentials",
    "impersonate",
    "token_format",
    "source_timeout",
    "iam_endpoint",
)
_ERRORS: dict[str, type[AzfedError]] = {
    cls.__name__: cls
    for cls in (
        errors.UsageError,
        errors.SourceError,
        errors.InvalidTokenError,
        errors.TokenFileError,
        errors.AzfedError,
    )
}


# Fetch processes in flight, so a stopping daemon can end them instead of leaving orphans.
_RUNNING: set[subprocess.Popen[str]] = set()
_RUNNING_LOCK = threading.Lock()


def fetch(settings: Settings) -> str:
    """google_source.fetch, run in a child process; raises the child's error in this one."""
    values = {name: getattr(settings, name) for name in FIELDS}
    if values["credentials"]:  # the child runs in "/": a relative path must not move
        values["credentials"] = os.path.abspath(values["credentials"])
    request = json.dumps(values)
    # The fetch bounds itself, every hop and retry counted; past that the child is stuck.
    limit = total_source_budget(settings)
    try:
        # Isolated and from "/": never the daemon's working directory on the child's path. It
        # imports this very package and its dependencies from where this process does.
        child = subprocess.Popen(
            isolated.python_command(CHILD_MODULE, isolated.import_path()),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd="/",
        )
    except OSError as exc:
        raise SourceError(f"cannot start the token fetch process: {exc}") from exc
    with _RUNNING_LOCK:
        _RUNNING.add(child)
    try:
        stdout, stderr = child.communicate(request, timeout=limit)
    except subprocess.TimeoutExpired as exc:
        child.kill()
        child.communicate()
        raise SourceError(f"the Google token source did not answer within {limit}s") from exc
    finally:
        with _RUNNING_LOCK:
            _RUNNING.discard(child)
    return _token_from(subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr))


def stop_all() -> None:
    """End fetches still running (the daemon is stopping and abandons them): no orphan stays."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for child in running:
        if child.poll() is None:
            child.kill()


def _token_from(done: subprocess.CompletedProcess[str]) -> str:
    try:
        reply = json.loads(done.stdout)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise SourceError(f"the token fetch process failed: {detail[0]}")
    if isinstance(reply.get("token"), str):
        return str(reply["token"])
    kind = _ERRORS.get(str(reply.get("error")), SourceError)
    hint = reply.get("hint")
    raise kind(str(reply.get("message")), hint if isinstance(hint, str) else None)


def main() -> int:
    """The child: read the settings, fetch, answer on stdout. Never prints the token elsewhere."""
    from . import google as google_source

    try:
        values = json.loads(sys.stdin.read())
        settings = Settings({name: values[name] for name in FIELDS})
        reply: dict[str, object] = {"token": google_source.fetch(settings)}
    except AzfedError as exc:
        reply = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    except Exception as exc:  # report, never leak a traceback with request details upward
        reply = {"error": "SourceError", "message": f"{type(exc).__name__}: {exc}", "hint": None}
    sys.stdout.write(json.dumps(reply))
    return 0
