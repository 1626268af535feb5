"""How ``azfed-helper token`` prints an access token, in the shapes other tools already parse.

- ``raw``: the token alone (``$(azfed-helper token ...)``).
- ``json``: the fields and names of ``az account get-access-token -o json``, so parsers written for
  az (azure-identity's ``AzureCliCredential`` among them) read it unchanged.
- ``exec-credential``: a Kubernetes ``ExecCredential`` for kubectl's exec plugin (AKS).
- ``env``: a shell ``export`` line.

On the cache-hit fast path: standard library only.
"""

from __future__ import annotations

import time

from . import TYPE_CHECKING, jsonfast
from .errors import UsageError

if TYPE_CHECKING:
    from .entra.cache import AccessToken

ENV_NAME = "AZURE_ACCESS_TOKEN"
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")


def az_json(token: AccessToken, tenant: str) -> dict[str, object]:
    """az's shape: ``expiresOn`` in local time, ``expires_on`` as epoch seconds."""
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(token.expires_on))
    return {
        "accessToken": token.token,
        "expiresOn": f"{local}.000000",
        "expires_on": token.expires_on,
        "tenant": tenant,
        "tokenType": token.token_type,
    }


def exec_api_version(exec_info: str | None) -> str:
    """The apiVersion kubectl asked for in ``KUBERNETES_EXEC_INFO`` (default v1)."""
    if not exec_info:
        return EXEC_API_VERSIONS[0]
    try:
        info = jsonfast.loads(exec_info)
        if not isinstance(info, dict):
            raise ValueError("not an object")
        version = info.get("apiVersion") or EXEC_API_VERSIONS[0]
    except ValueError as exc:
        raise UsageError(
            "KUBERNETES_EXEC_INFO is not a JSON object",
            "it is set by kubectl; unset it when running the command by hand",
        ) from exc
    if version not in EXEC_API_VERSIONS:
        raise UsageError(
            f"unsupported ExecCredential apiVersion {version!r}",
            f"set the kubeconfig exec apiVersion to one of: {', '.join(EXEC_API_VERSIONS)}",
        )
    return str(version)


def exec_credential(token: AccessToken, exec_info: str | None) -> dict[str, object]:
    """A Kubernetes ExecCredential; kubectl caches it until ``expirationTimestamp`` (UTC)."""
    return {
        "kind": "ExecCredential",
        "apiVersion": exec_api_version(exec_info),
        "spec": {"interactive": False},
        "status": {
            "token": token.token,
            "expirationTimestamp": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(token.expires_on)
            ),
        },
    }


def render(output: str, token: AccessToken, tenant: str, exec_info: str | None = None) -> str:
    """The text to print for ``output`` (one of config.OUTPUTS)."""
    if output in ("json", "exec-credential"):
        import json  # only here: the raw output, the common case, needs no json module
    if output == "json":
        return json.dumps(az_json(token, tenant), indent=2)
    if output == "exec-credential":
        return json.dumps(exec_credential(token, exec_info), indent=2)
    if output == "env":
        from .shell import exports

        return exports({ENV_NAME: token.token, f"{ENV_NAME}_EXPIRES_ON": str(token.expires_on)})
    return token.token
