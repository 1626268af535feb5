"""Command-line options shared by several commands, declared once.

Every option defaults to None so that :func:`config.resolve` can tell "not given" from a value and
fall back to the environment. Help texts name the environment variable each option overrides.
"""

from __future__ import annotations

import argparse


def add_token_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token-file",
        metavar="PATH",
        help="the federated token file (env AZURE_FEDERATED_TOKEN_FILE)",
    )


def add_source(parser: argparse.ArgumentParser) -> None:
    """Where the Google ID token comes from and what it must say."""
    group = parser.add_argument_group("Google token source")
    group.add_argument(
        "--audience",
        metavar="AUD",
        help="token audience (env AZFED_AUDIENCE; default api://AzureADTokenExchange)",
    )
    group.add_argument(
        "--credentials",
        metavar="FILE",
        help="Google credentials file (env GOOGLE_APPLICATION_CREDENTIALS; default: metadata server)",
    )
    group.add_argument(
        "--impersonate",
        metavar="EMAIL",
        help="service account to impersonate for the ID token (env AZFED_IMPERSONATE)",
    )
    group.add_argument(
        "--token-format",
        choices=("standard", "full"),
        help="metadata server token format; 'full' adds project and instance claims "
        "(env AZFED_TOKEN_FORMAT; default standard)",
    )
    group.add_argument(
        "--refresh-margin",
        metavar="DURATION",
        help="refresh once less than this lifetime remains (env AZFED_REFRESH_MARGIN; default 20m)",
    )
    group.add_argument(
        "--source-timeout",
        metavar="DURATION",
        help="longest wait for one Google request (env AZFED_SOURCE_TIMEOUT; default 10s)",
    )
    group.add_argument(
        "--iam-endpoint",
        metavar="URL",
        help="IAM Credentials API base URL for impersonation, e.g. a Private Service Connect "
        "endpoint (env AZFED_IAM_ENDPOINT)",
    )


def add_file_writing(parser: argparse.ArgumentParser) -> None:
    """How the token file is written."""
    group = parser.add_argument_group("token file")
    group.add_argument(
        "--mode", metavar="OCTAL", help="file mode, applied on every write (env AZFED_MODE; 0600)"
    )
    group.add_argument(
        "--group", metavar="GROUP", help="group owner, name or gid (env AZFED_GROUP)"
    )
    group.add_argument(
        "--create-dirs",
        action="store_true",
        default=None,
        help="create missing parent directories (mode 0700)",
    )


def add_azure(parser: argparse.ArgumentParser) -> None:
    """The Azure app registration the token is for."""
    group = parser.add_argument_group("Azure")
    group.add_argument("--client-id", metavar="ID", help="app (client) id (env AZURE_CLIENT_ID)")
    group.add_argument("--tenant-id", metavar="ID", help="tenant id (env AZURE_TENANT_ID)")
    group.add_argument(
        "--authority-host",
        metavar="URL",
        help="Entra authority host (env AZURE_AUTHORITY_HOST; default https://login.microsoftonline.com)",
    )


def add_cache(parser: argparse.ArgumentParser) -> None:
    """Where access tokens are cached between runs."""
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="token cache directory (env AZFED_CACHE_DIR; default the user cache directory, "
        "e.g. ~/.cache/azfed-helper)",
    )


def add_logging(group: argparse._ActionsContainer) -> None:
    """Log format and verbosity of the long-running commands (see logs.setup)."""
    group.add_argument(
        "--log-format",
        choices=("human", "json"),
        help="log lines as text or one JSON object each (env AZFED_LOG_FORMAT; default human)",
    )
    group.add_argument("-v", "--verbose", action="count", default=0, help="more log (repeatable)")
    group.add_argument("-q", "--quiet", action="count", default=0, help="less log (repeatable)")
