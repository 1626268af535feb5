"""``azfed-helper doctor``: diagnose a deployment; exit 0 only when every check passes."""

from __future__ import annotations

import argparse
import json

from ..config import resolve
from ..errors import EXIT_OK, EXIT_RUNTIME


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader",
        action="append",
        default=[],
        metavar="USER",
        help="check that this user can read the token file (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    from ..doctor import DEFAULT_SCOPE, FAIL, Doctor, report

    settings = resolve(args)
    checks = Doctor(settings, args.reader, settings.scopes or [DEFAULT_SCOPE]).run()
    result = report(checks)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for check in checks:
            print(f"[{check.status.upper()}] {check.name}")
            for line in check.details:
                print(f"       {line}")
            if check.fix and check.status != "pass":
                print(f"       fix: {check.fix}")
        failed = [c.name for c in checks if c.status == FAIL]
        print(
            "\nall checks passed" if not failed else f"\n{len(failed)} failed: {', '.join(failed)}"
        )
    return EXIT_OK if result["ok"] else EXIT_RUNTIME
