"""``azfed-helper doctor``: diagnose a deployment; exit 0 only when every check passes."""

from __future__ import annotations

import argparse
import json
import sys

from .. import TYPE_CHECKING
from ..config import resolve
from ..errors import EXIT_OK, EXIT_RUNTIME

if TYPE_CHECKING:
    from ..doctor import Check


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader",
        action="append",
        default=[],
        metavar="USER",
        help="check that this user can read the token file (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Print each check as it finishes (``--json``: one document at the end)."""
    from .. import colours
    from ..doctor import DEFAULT_SCOPE, FAIL, Doctor, report

    settings = resolve(args)
    on = colours.enabled(sys.stdout)
    checks: list[Check] = []
    for check in Doctor(settings, args.reader, settings.scopes or [DEFAULT_SCOPE]).run():
        checks.append(check)
        if not args.json:
            _print_check(check, on)
    result = report(checks)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        failed = [c.name for c in checks if c.status == FAIL]
        verdict = f"{len(failed)} failed" if failed else "all checks passed"
        colour = colours.RED if failed else colours.GREEN
        print(
            f"\n{colours.paint(verdict, colour, on)}" + (f": {', '.join(failed)}" if failed else "")
        )
    return EXIT_OK if result["ok"] else EXIT_RUNTIME


def _print_check(check: Check, on: bool) -> None:
    """One check's lines, flushed at once: stdout is block-buffered when piped.

    What a check saw can hold text from a token, a file or a server: escaped, never coloured.
    """
    from .. import colours
    from ..doctor import PASS, SKIP
    from ..logs import printable

    colour = {PASS: colours.GREEN, SKIP: colours.YELLOW}.get(check.status, colours.RED)
    lines = [f"{colours.paint(f'[{check.status.upper()}]', colour, on)} {check.name}"]
    lines += [f"       {printable(line)}" for line in check.details]
    if check.fix and check.status != PASS:
        lines.append(f"       fix: {printable(check.fix)}")
    print("\n".join(lines), flush=True)
