"""``azfed-helper settings``: every setting in effect and where it came from. No network, no writes."""

from __future__ import annotations

import argparse
import json

from .. import settingsview
from ..config import resolve


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    if args.json:
        print(json.dumps(settingsview.as_json(settings), indent=2))
    else:
        print("\n".join(settingsview.lines(settings)))
    return 0
