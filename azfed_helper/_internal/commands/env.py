"""``azfed-helper env``: print what unmodified Azure clients (or Terraform) read.

The output is meant for ``eval "$(azfed-helper env)"``, a systemd ``EnvironmentFile`` or a Cloud
Run/Kubernetes manifest, so values are shell-quoted and the token file path made absolute.
"""

from __future__ import annotations

import argparse
import json
import os

from .. import sources
from ..config import Settings, resolve
from ..identity import envfile as mi_env
from ..options import BY_DEST
from ..shell import exports

# Terraform's azurerm/azuread providers name sovereign clouds by environment, not by host.
_TERRAFORM_ENVIRONMENTS = {
    "login.microsoftonline.us": "usgovernment",
    "login.chinacloudapi.cn": "china",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--for",
        dest="consumer",
        choices=("azure", "terraform", "managed-identity"),
        default="azure",
        help="azure: the four AZURE_* variables (default); terraform: the ARM_* variables; "
        "managed-identity: IDENTITY_ENDPOINT/IDENTITY_HEADER of the running `azfed-helper serve`",
    )
    parser.add_argument(
        "--format",
        choices=("sh", "json"),
        default="sh",
        help="sh: export lines (default); json: an object",
    )


# The settings an Azure SDK reads from the environment, in the order printed; their variable
# names are the options' own (options.OPTIONS).
_AZURE_SETTINGS = ("client_id", "tenant_id", "token_file", "authority_host")


def _azure_values(settings: Settings) -> dict[str, str]:
    """The SDK settings; the token file is the one readers use (the assertion file itself with
    ``--source file``: nothing else is written)."""
    file_setting = "assertion_file" if sources.select(settings).reads_file else "token_file"
    settings.require("client_id", "tenant_id", file_setting)  # every missing one in one error
    values = {name: str(getattr(settings, name)) for name in _AZURE_SETTINGS}
    values["token_file"] = os.path.abspath(sources.readers_file(settings))
    return values


def azure_variables(settings: Settings) -> dict[str, str]:
    """The four variables the Azure SDKs' workload identity credential reads."""
    return {str(BY_DEST[name].env): value for name, value in _azure_values(settings).items()}


def terraform_variables(settings: Settings) -> dict[str, str]:
    """What the azurerm/azuread providers read to use the same token file (OIDC)."""
    azure = _azure_values(settings)
    variables = {
        "ARM_USE_OIDC": "true",
        "ARM_OIDC_TOKEN_FILE_PATH": azure["token_file"],
        "ARM_CLIENT_ID": azure["client_id"],
        "ARM_TENANT_ID": azure["tenant_id"],
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
    return exports(variables, unset)


def run(args: argparse.Namespace) -> int:
    settings = resolve(args)
    unset: tuple[str, ...] = ()
    if args.consumer == "managed-identity":
        variables = managed_identity_variables(settings, settings.env_file)
        # IDENTITY_SERVER_THUMBPRINT would switch clients to Service Fabric's protocol.
        unset = (mi_env.SERVICE_FABRIC_VARIABLE,)
    elif args.consumer == "terraform":
        variables = terraform_variables(settings)
    else:
        variables = azure_variables(settings)
    print(render(variables, args.format, unset))
    return 0
