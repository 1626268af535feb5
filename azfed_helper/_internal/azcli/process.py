"""Running the Azure CLI: become az, find it, run it quietly, explain its failures, read its cloud."""

from __future__ import annotations

import os
import sys

from .. import TYPE_CHECKING, jsonfast
from ..errors import AzfedError, UsageError
from ..options import BY_DEST
from .state import AzCliError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

    from ..idtoken import IdToken

AZ_TIMEOUT = 120  # seconds for one az command
_INSTALL_HINT = (
    "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli) "
    f"or pass {BY_DEST['az'].where()}"
)


def exec_az(az: str | None, args: Sequence[str]) -> NoReturn:
    """Replace this process with az: its exit status, stdio and signals are az's own."""
    program = az or "az"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp(program, [program, *args])  # noqa: S606 (becoming az is the point)
    except OSError as exc:
        raise UsageError(f"cannot run {program}: {exc.strerror}", _INSTALL_HINT) from exc


def find_az(az: str | None) -> str:
    """The az executable to run (``--az`` or PATH), or a usage error saying how to get one."""
    import shutil

    found = shutil.which(az or "az")
    if found is None:
        where = f"{az} is not an executable file" if az else "az was not found on PATH"
        raise UsageError(f"the Azure CLI is missing: {where}", _INSTALL_HINT)
    return found


def _az_json(az: str, args: Sequence[str]) -> object:
    output = run_az(az, [*args, "--output", "json", "--only-show-errors"])
    try:
        return jsonfast.loads(output)
    except ValueError as exc:
        raise AzCliError(f"`az {' '.join(args)}` printed something that is not JSON") from exc


def run_az(az: str, args: Sequence[str], token: IdToken | None = None) -> str:
    """Run az quietly; on failure raise its error, explained (AADSTS codes) and never the token."""
    import subprocess

    try:
        done = subprocess.run(
            [az, *args],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=AZ_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AzCliError(
            f"`az {args[0]}` did not finish within {AZ_TIMEOUT}s",
            "check network access to Entra (proxy settings) and run the command by hand with --debug",
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot run {az}: {exc.strerror}", _INSTALL_HINT) from exc
    if done.returncode != 0:
        raise _az_error(args, done.returncode, done.stderr, token)
    return done.stdout


def _az_error(args: Sequence[str], code: int, stderr: str, token: IdToken | None) -> AzfedError:
    from ..entra import aadsts

    text = stderr.replace(token.raw, "<assertion>") if token is not None else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "AADSTS" in line:
            said = line.removeprefix("ERROR:").strip()
            return aadsts.explain(
                {"error_description": said}, token.claims if token is not None else None
            )
    said = lines[-1].removeprefix("ERROR:").strip() if lines else "no error output"
    hint = f"run `az {' '.join(args[:1])} --debug` by hand for details"
    if "--subscription" in args and ("not found" in said or "could not be retrieved" in said):
        client = args[args.index("--username") + 1] if "--username" in args else "the app"
        hint = (
            f"check the subscription id or name and that app {client} has a role on it; "
            "`az account list --refresh -o table` lists the subscriptions it can see"
        )
    return AzCliError(f"`az {' '.join(args[:1])}` failed with exit status {code}: {said}", hint)


class Cloud:
    """az's active cloud: its name, Entra authority and ARM's token audience."""

    __slots__ = ("authority", "name", "resource")

    def __init__(self, name: str, authority: str, resource: str) -> None:
        self.name, self.authority, self.resource = name, authority, resource


def az_cloud(az: str) -> Cloud:
    shown = _az_json(az, ["cloud", "show"])
    endpoints = shown.get("endpoints") if isinstance(shown, dict) else None
    if not isinstance(shown, dict) or not isinstance(endpoints, dict):
        raise AzCliError("`az cloud show` did not describe a cloud")
    authority = str(endpoints.get("activeDirectory") or "")
    resource = str(endpoints.get("activeDirectoryResourceId") or "")
    if not authority.startswith("https://") or not resource:
        raise UsageError(
            f"az's cloud {shown.get('name')} has no usable Entra endpoint ({authority or 'none'})",
            "select a cloud with `az cloud set --name NAME` (see `az cloud list -o table`)",
        )
    return Cloud(str(shown.get("name")), authority.rstrip("/"), resource)
