"""``azfed-helper env``: print what unmodified Azure clients (or Terraform) read.

The output is meant for ``eval "$(azfed-helper env)"``, a systemd ``EnvironmentFile`` or a Cloud
Run/Kubernetes manifest, so values are shell-quoted and the token file path made absolute.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex

from .. import options
from ..config import Settings, resolve
from ..errors import UsageError

# Terraform's azurerm/azuread providers name sovereign clouds by environment, not by host.
_TERRAFORM_ENVIRONMENTS = {
    "login.microsoftonline.us": "usgovernment",
    "login.chinacloudapi.cn": "china",
}


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_token_file(parser)
    options.add_azure(parser)
    parser.add_argument(
        "--for",
        dest="consumer",
        choices=("azure", "terraform"),
        default="azure",
        help="azure: the four AZURE_* variables (default); terraform: the ARM_* variables",
    )
    parser.add_argument(
        "--format",
        choices=("sh", "json"),
        default="sh",
        help="sh: export lines (default); json: an object",
    )


def _require(value: str | None, flag: str, env: str) -> str:
    if not value:
        raise UsageError(f"{env} is not set", f"pass {flag} or set {env}")
    return value


def azure_variables(settings: Settings) -> dict[str, str]:
    """The four variables the Azure SDKs' workload identity credential reads."""
    return {
        "AZURE_CLIENT_ID": _require(settings.client_id, "--client-id", "AZURE_CLIENT_ID"),
        "AZURE_TENANT_ID": _require(settings.tenant_id, "--tenant-id", "AZURE_TENANT_ID"),
        "AZURE_FEDERATED_TOKEN_FILE": os.path.abspath(settings.require_token_file()),
        "AZURE_AUTHORITY_HOST": settings.authority_host,
    }


def terraform_variables(settings: Settings) -> dict[str, str]:
    """What the azurerm/azuread providers read to use the same token file (OIDC)."""
    azure = azure_variables(settings)
    variables = {
        "ARM_USE_OIDC": "true",
        "ARM_OIDC_TOKEN_FILE_PATH": azure["AZURE_FEDERATED_TOKEN_FILE"],
        "ARM_CLIENT_ID": azure["AZURE_CLIENT_ID"],
        "ARM_TENANT_ID": azure["AZURE_TENANT_ID"],
    }
    host = settings.authority_host.removeprefix("https://").rstrip("/")
    if host in _TERRAFORM_ENVIRONMENTS:
        variables["ARM_ENVIRONMENT"] = _TERRAFORM_ENVIRONMENTS[host]
    return variables


def render(variables: dict[str, str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(variables, indent=2)
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in variables.items())


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    if args.consumer == "terraform":
        variables = terraform_variables(settings)
    else:
        variables = azure_variables(settings)
    print(render(variables, args.format))
    return 0
