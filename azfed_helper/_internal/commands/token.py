"""``azfed-helper token``: print an Azure access token obtained with the Google ID token.

A cache hit is answered by fastpath.py without argparse or MSAL; this module is the full path
(argparse, then the token provider: the cache again, then one exchange per token across processes).
"""

from __future__ import annotations

import argparse
import os

from .. import formats
from ..config import Settings, resolve
from ..entra.cache import AccessToken


def access_token(settings: Settings) -> AccessToken:
    """From the on-disk cache when MSAL would use it, else through the exchange."""
    from ..entra.provider import TokenProvider

    provider = TokenProvider(settings)
    try:
        return provider.get(settings.require_scopes())
    finally:
        provider.close()


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    exec_info = os.environ.get("KUBERNETES_EXEC_INFO")
    if settings.output == "exec-credential":
        formats.exec_api_version(exec_info)  # refuse a bad request before any network call
    token = access_token(settings)
    tenant, _ = settings.require_app()
    print(formats.render(settings.output, token, tenant, exec_info))
    return 0
