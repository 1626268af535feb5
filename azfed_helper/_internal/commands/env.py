"""``azfed-helper env``: print what unmodified Azure clients (or Terraform) read.

The output is meant for ``eval "$(azfed-helper env)"``, a systemd ``EnvironmentFile`` or a Cloud
Run/Kubernetes manifest, so values are shell-quoted and the token file path made absolute.
"""

from __future__ import annotations

import argparse
import json
import os

from .. import options
from ..config import Settings, resolve
from ..identity import envfile as mi_env

# Terraform's azurerm/azuread providers name sovereign clouds by environment, not by host.
_TERRAFORM_ENVIRONMENTS = {
    "login.microsoftonline.us": "usgovernment",
    "login.chinacloudapi.cn": "china",
}


def configure(parser: argparse.ArgumentParser) -> None:
    options.add_token_file(parser)
    options.add_azure(parser)
    options.add_cache(parser)
    parser.add_argument(
        "--for",
        dest="consumer",
        choices=("azure", "terraform", "managed-identity"),
        default="azure",
        help="azure: the four AZURE_* variables (default); terraform: the ARM_* variables; "
        "managed-identity: IDENTITY_ENDPOINT/IDENTITY_HEADER of the running `azfed-helper serve`",
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        help="with --for managed-identity: the file `serve --env-file` wrote "
        f"(default <cache dir>/{mi_env.ENV_FILE_NAME})",
    )
    parser.add_argument(
        "--format",
        choices=("sh", "json"),
        default="sh",
        help="sh: export lines (default); json: an object",
    )


def azure_variables(settings: Settings) -> dict[str, str]:
    """The four variables the Azure SDKs' workload identity credential reads."""
    tenant_id, client_id = settings.require_app()
    return {
        "AZURE_CLIENT_ID": client_id,
        "AZURE_TENANT_ID": tenant_id,
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


def managed_identity_variables(settings: Settings, env_file: str | None) -> dict[str, str]:
    """The running endpoint's variables, read from its file (and checked to be listening)."""
    variables = mi_env.read_env_file(env_file or mi_env.default_env_file(settings))
    mi_env.require_listening(variables["IDENTITY_ENDPOINT"])
    return variables


def render(variables: dict[str, str], fmt: str, unset: tuple[str, ...] = ()) -> str:
    """JSON, or ``export`` lines followed by ``unset`` lines (sh)."""
    if fmt == "json":
        return json.dumps(variables, indent=2)
    return mi_env.shell_text(variables, unset)


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    unset: tuple[str, ...] = ()
    if args.consumer == "managed-identity":
        variables = managed_identity_variables(settings, args.env_file)
        # IDENTITY_SERVER_THUMBPRINT would switch clients to Service Fabric's protocol.
        unset = (mi_env.SERVICE_FABRIC_VARIABLE,)
    elif args.consumer == "terraform":
        variables = terraform_variables(settings)
    else:
        variables = azure_variables(settings)
    print(render(variables, args.format, unset))
    return 0
