"""``azfed-helper token``: print an Azure access token obtained with the Google ID token.

A cache hit is answered by fastpath.py without argparse or MSAL; this module is the full path
(argparse, then the cache again, then the exchange under the cache lock).
"""

from __future__ import annotations

import argparse
import os
import time

from .. import formats
from ..config import Settings, resolve
from ..entra import cache


def access_token(settings: Settings) -> cache.AccessToken:
    """From the on-disk cache when MSAL would use it, else through the exchange."""
    hit = cache.lookup(settings, time.time())
    if hit is not None:
        return hit
    from ..entra.exchange import Exchange

    exchange = Exchange(settings)
    try:
        return exchange.acquire(settings.require_scopes())
    finally:
        exchange.close()


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    exec_info = os.environ.get("KUBERNETES_EXEC_INFO")
    if settings.output == "exec-credential":
        formats.exec_api_version(exec_info)  # refuse a bad request before any network call
    token = access_token(settings)
    tenant, _ = settings.require_app()
    print(formats.render(settings.output, token, tenant, exec_info))
    return 0
