"""The environment a managed-identity client needs, and the file that hands it over.

``serve`` (and the daemon's ``--identity-endpoint``) write the variables to a file a shell can
source, 0600 because it holds the endpoint's secret; ``env --for managed-identity`` reads it back.
Kept apart from the server so that ``env`` loads neither ``http.server`` nor the exchange.
Standard library only.
"""

from __future__ import annotations

import os

from .. import TYPE_CHECKING, tokenwriter
from ..entra import cache
from ..errors import AzfedError, UsageError
from ..options import BY_DEST
from ..shell import exports

if TYPE_CHECKING:
    from ..config import Settings

ENV_FILE_NAME = "identity-endpoint.env"
# requests (az, azure-identity) matches "::1"; urllib and Go's httpproxy also match "[::1]".
LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost", "::1", "[::1]")
# Its presence switches MSAL, azure-identity and the Go/.NET SDKs to Service Fabric's protocol.
SERVICE_FABRIC_VARIABLE = "IDENTITY_SERVER_THUMBPRINT"
_ENV_FILE = BY_DEST["env_file"].flag


def default_env_file(settings: Settings) -> str:
    """Where the running server's variables live unless ``--env-file`` says otherwise."""
    return os.path.join(cache.cache_dir(settings), ENV_FILE_NAME)


def no_proxy(current: str | None) -> str:
    """``NO_PROXY`` covering loopback, keeping what the environment already excludes.

    Both az and azure-identity send the loopback request through ``HTTP_PROXY`` otherwise.
    """
    entries = [item.strip() for item in (current or "").split(",") if item.strip()]
    missing = [host for host in LOOPBACK_NO_PROXY if host not in entries]
    return ",".join([*missing, *entries])


def variables(endpoint: str, secret: str) -> dict[str, str]:
    """The App Service convention: what every Azure SDK and az look for."""
    current = os.environ.get("NO_PROXY") or os.environ.get("no_proxy")
    return {
        "IDENTITY_ENDPOINT": endpoint,
        "IDENTITY_HEADER": secret,
        "NO_PROXY": no_proxy(current),
    }


def shell_text(values: dict[str, str], unset: tuple[str, ...] = (SERVICE_FABRIC_VARIABLE,)) -> str:
    """Shell-quoted ``export`` lines, then ``unset`` lines; by default the one that keeps
    managed-identity clients off the Service Fabric path."""
    return exports(values, unset)


def write_env_file(path: str, values: dict[str, str]) -> str:
    """Write the file (0600, atomically); returns its text so the writer can recognise it later."""
    text = (
        "# Written by azfed-helper serve: the managed-identity endpoint for Azure clients.\n"
        '# Source it (. FILE) or run: eval "$(azfed-helper env --for managed-identity)"\n'
        + shell_text(values)
        + "\n"
    )
    directory = os.path.dirname(os.path.abspath(path))
    try:
        tokenwriter.make_private_dirs(directory)
    except OSError as exc:
        raise UsageError(
            f"cannot create directory {directory} for {path}: {exc.strerror}",
            f"choose another {_ENV_FILE}",
        ) from exc
    tokenwriter.write_atomic(path, text.encode("utf-8"), 0o600)
    return text


def remove_env_file(path: str, written: str) -> None:
    """Remove the file on a clean stop, unless another server has replaced it since."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() != written:
                return
        os.unlink(path)
    except OSError:
        pass


def read_env_file(path: str) -> dict[str, str]:
    """The variables in a file written by :func:`write_env_file`."""
    import shlex

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(64 * 1024)
    except FileNotFoundError as exc:
        raise UsageError(
            f"no managed-identity endpoint file at {path}",
            "start `azfed-helper serve` (or `daemon --identity-endpoint`) first, or pass the "
            f"{_ENV_FILE} it was given",
        ) from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", "check its permissions") from exc
    values: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("export "):
            continue
        try:
            words = shlex.split(line[len("export ") :])
        except ValueError:
            continue
        for word in words:
            name, sep, value = word.partition("=")
            if sep:
                values[name] = value
    if not values.get("IDENTITY_ENDPOINT") or not values.get("IDENTITY_HEADER"):
        raise UsageError(
            f"{path} does not hold IDENTITY_ENDPOINT and IDENTITY_HEADER",
            "restart `azfed-helper serve`; it rewrites the file",
        )
    return values


def require_listening(endpoint: str, timeout: float = 1.0) -> None:
    """Fail when nothing listens at the endpoint: the file outlived its server."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise AzfedError(
            f"no managed-identity endpoint is listening at {endpoint} ({exc.strerror or exc})",
            "start `azfed-helper serve` again; the file is left from a server that stopped",
        ) from exc
