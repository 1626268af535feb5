"""``azfed-helper status``: report on the token file; exit 1 when it is not good enough.

Usable as a Kubernetes exec probe or a monitoring check. Never prints the token; the claims it
prints are the token's text, escaped so that a crafted claim cannot forge lines or drive the
terminal. On a terminal the verdict is coloured (``colours``), the escaped text never.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .. import colours, idtoken, sources, tokenfile
from ..config import resolve
from ..durations import format_duration
from ..errors import EXIT_RUNTIME, AzfedError
from ..logs import printable


def _iso(epoch: float) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, OSError, ValueError):  # the token's number, not a real time
        return "out of range"


def inspect(
    path: str, audience: str, min_remaining: float, now: float, *, issuer: str | None
) -> dict[str, object]:
    """The status report as data: ``ok``, a ``reason`` when not ok, and the claims when readable."""
    report: dict[str, object] = {"path": path, "ok": False}
    try:
        token = tokenfile.read(path)
    except AzfedError as exc:
        report["reason"] = exc.message
        return report
    if token is None:
        report["reason"] = f"token file {path} does not exist"
        return report
    report["claims"] = token.summary()
    report["remaining_seconds"] = int(token.remaining(now))
    try:
        idtoken.validate(token, audience, now, issuer=issuer)
    except AzfedError as exc:
        report["reason"] = exc.message
        return report
    if token.remaining(now) < min_remaining:
        report["reason"] = (
            f"the token expires in {format_duration(token.remaining(now))}, less than the "
            f"required {format_duration(min_remaining)}"
        )
        return report
    report["ok"] = True
    return report


def _print_human(report: dict[str, object]) -> None:
    print(f"token file: {printable(report['path'])}")
    claims = report.get("claims")
    if isinstance(claims, dict):
        for key in ("iss", "sub", "aud", "email"):
            if key in claims:
                print(f"  {key}: {printable(claims[key])}")
        for key in ("iat", "exp"):
            value = claims.get(key)
            if isinstance(value, (int, float)):
                print(f"  {key}: {_iso(value)} ({int(value)})")
            elif value is not None:  # idtoken's summary: a time out of range, described
                print(f"  {key}: {printable(value)}")
        remaining = report.get("remaining_seconds")
        if isinstance(remaining, int):
            print(f"  remaining: {format_duration(remaining)}")
    on = colours.enabled(sys.stdout)
    if report["ok"]:
        print(f"status: {colours.paint('ok', colours.GREEN, on)}")
    else:
        print(f"status: {colours.paint('NOT OK', colours.RED, on)}: {printable(report['reason'])}")


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    path = sources.readers_file(settings)
    # A file another process keeps fresh is judged as the daemon's /readyz judges it: keeping it
    # fresh is its writer's job, so --min-remaining applies only when given.
    theirs = sources.select(settings).reads_file and not settings.given("min_remaining")
    report = inspect(
        path,
        settings.audience,
        0 if theirs else settings.min_remaining,
        time.time(),
        issuer=sources.expected_issuer(settings),
    )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_human(report)
    return 0 if report["ok"] else EXIT_RUNTIME
