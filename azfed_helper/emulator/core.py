"""The :class:`Emulator`: Google, Entra and other issuers' fakes on loopback, with their lifecycle."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from .._internal.options import BY_DEST
from . import files
from .entra import EntraApp
from .google import GoogleApp
from .issuer_app import GITHUB_PREFIX, IssuerApp
from .projected import Layout, ProjectedTokenFile
from .server import LOOPBACK, LoopbackServer
from .state import AZURE_AUDIENCE, EmulatorState
from .tls import create_tls_files


def _variable(setting: str) -> str:
    """The environment variable azfed-helper reads ``setting`` from (its option table)."""
    return str(BY_DEST[setting].env)


class Emulator(EmulatorState):
    """Offline stand-ins for Google (plain http), Entra ID (https), GitHub Actions' token
    endpoint and a Kubernetes issuer (https) on 127.0.0.1.

    Ports are ephemeral; everything a client needs to find them is in :meth:`env` (and
    :meth:`github_actions_env` for a GitHub Actions job).
    """

    def __init__(
        self,
        id_token_lifetime: int = 3600,
        access_token_lifetime: int = 3600,
        tenant_id: str | None = None,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(id_token_lifetime, access_token_lifetime, tenant_id, client_id, clock)
        self._google = LoopbackServer(GoogleApp(self))
        self._entra: LoopbackServer | None = None
        self._issuers: LoopbackServer | None = None
        self._projected: list[ProjectedTokenFile] = []
        self._workdir: Path | None = None
        self._ca_file: Path | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Generate TLS material and start the servers; returns ``self`` for chaining."""
        if self._entra is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="azfed-emulator-"))
        try:
            tls = create_tls_files(self._workdir)
            self._ca_file = tls.ca_file
            context = tls.server_context()
            self._entra = LoopbackServer(EntraApp(self), context)
            self._issuers = LoopbackServer(IssuerApp(self), context)
            self._google.start()
            self._entra.start()
            self._issuers.start()
        except BaseException:
            self.stop()
            raise
        self.google_url = f"http://{LOOPBACK}:{self._google.port}"
        self.authority_host = f"https://{LOOPBACK}:{self._entra.port}"
        self.issuers_url = f"https://{LOOPBACK}:{self._issuers.port}"
        return self

    def stop(self) -> None:
        """Stop rotating token files, close the listening sockets, delete the CA and keys."""
        for projected in self._projected:
            projected.stop()
        self._projected.clear()
        self._google.stop()
        if self._issuers is not None:
            self._issuers.stop()
            self._issuers = None
        if self._entra is not None:
            self._entra.stop()
            self._entra = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def set_google_available(self, available: bool) -> None:
        """Simulate a Google outage: close the socket (connection refused) or re-open it.

        The port stays the same, so clients configured earlier keep working afterwards.
        """
        self._require_started()
        if available:
            self._google.start()
        else:
            self._google.stop()

    def _require_started(self) -> None:
        if self._entra is None:
            raise RuntimeError("the emulator is not running; call start() first")

    # -- where things are ----------------------------------------------------------------

    @property
    def metadata_host(self) -> str:
        """``host:port`` for ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``."""
        self._require_started()
        return f"{LOOPBACK}:{self._google.port}"

    @property
    def sts_uri(self) -> str:
        return self.google_url + "/sts/v1/token"

    @property
    def iam_endpoint(self) -> str:
        """Base URL under which ``/v1/projects/-/serviceAccounts/...`` IAM calls live."""
        return self.google_url

    @property
    def ca_file(self) -> str:
        """PEM file of the CA that signed the Entra server's certificate."""
        self._require_started()
        assert self._ca_file is not None
        return os.fspath(self._ca_file)

    def env(self) -> dict[str, str]:
        """Environment a client process needs to use this emulator instead of the cloud.

        The CA is named for Python (requests, azure-core), curl and Node
        (``NODE_EXTRA_CA_CERTS``); the GitHub variables are apart, in :meth:`github_actions_env`.
        """
        return {
            "GCE_METADATA_HOST": self.metadata_host,
            "GCE_METADATA_IP": self.metadata_host,
            _variable("authority_host"): self.authority_host,
            _variable("tenant_id"): self.tenant_id,
            _variable("client_id"): self.client_id,
            "REQUESTS_CA_BUNDLE": self.ca_file,
            "CURL_CA_BUNDLE": self.ca_file,
            "NODE_EXTRA_CA_CERTS": self.ca_file,
            _variable("iam_endpoint"): self.iam_endpoint,
        }

    def github_actions_env(self) -> dict[str, str]:
        """The two variables a GitHub Actions runner sets for a job with ``id-token: write``.

        Not part of :meth:`env`: their presence alone tells clients they run in a job. The URL
        already carries ``?api-version=2.0``; clients append ``&audience=...``.
        """
        self._require_started()
        url = f"{self.issuers_url}{GITHUB_PREFIX}{self.github.request_path}"
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{url}?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.github.request_token,
        }

    # -- tokens and credential files -----------------------------------------------------

    def mint_google_id_token(
        self,
        audience: str = AZURE_AUDIENCE,
        *,
        lifetime: int | None = None,
        issued_at: float | None = None,
        email: str | None = None,
        full: bool = False,
        **extra_claims: Any,
    ) -> str:
        """An ID token signed by the emulated Google key, for tests.

        ``extra_claims`` override the standard claims; a value of ``None`` removes one
        (e.g. ``iat=None`` to provoke AADSTS70023).
        """
        return self.google_id_token(
            audience,
            email=email,
            lifetime=lifetime,
            issued_at=issued_at,
            full=full,
            extra_claims=extra_claims,
        )

    def mint_github_id_token(
        self,
        audience: str = AZURE_AUDIENCE,
        *,
        lifetime: int | None = None,
        issued_at: float | None = None,
        **extra_claims: Any,
    ) -> str:
        """A GitHub Actions ID token for the job described by :attr:`github` (default lifetime
        ``github.lifetime``, 5 minutes). ``extra_claims`` as for :meth:`mint_google_id_token`."""
        return self.github.mint(
            audience, lifetime=lifetime, issued_at=issued_at, extra_claims=extra_claims
        )

    def mint_kubernetes_token(
        self,
        audience: str = AZURE_AUDIENCE,
        *,
        namespace: str | None = None,
        service_account: str | None = None,
        lifetime: int | None = None,
        issued_at: float | None = None,
        **extra_claims: Any,
    ) -> str:
        """A projected service-account token of the emulated cluster (:attr:`kubernetes`)."""
        return self.kubernetes.mint(
            [audience],
            namespace=namespace,
            service_account=service_account,
            lifetime=lifetime,
            issued_at=issued_at,
            extra_claims=extra_claims,
        )

    def start_projected_token_file(
        self,
        path: str | os.PathLike[str],
        *,
        audience: str = AZURE_AUDIENCE,
        namespace: str | None = None,
        service_account: str | None = None,
        lifetime: int | None = None,
        layout: Layout = "kubelet",
    ) -> ProjectedTokenFile:
        """Write a projected token to ``path`` now and replace it at 80% of its lifetime, as
        the kubelet does, until the handle's ``stop()`` or the emulator's :meth:`stop`."""
        self._require_started()
        projected = ProjectedTokenFile(
            self.kubernetes,
            path,
            now=self.now,
            audiences=[audience],
            namespace=namespace,
            service_account=service_account,
            lifetime=lifetime,
            layout=layout,
        )
        self._projected.append(projected.start())
        return projected

    def write_service_account_key(
        self, path: str | os.PathLike[str], email: str | None = None
    ) -> Path:
        """Write a real ``service_account`` JSON key (mode 0600) the emulator will accept."""
        self._require_started()
        return files.write_private_json(path, files.service_account_info(self, email))

    def write_authorized_user(self, path: str | os.PathLike[str]) -> Path:
        """Write gcloud user credentials whose refresh token the emulator honours."""
        self._require_started()
        return files.write_private_json(path, files.authorized_user_info(self))

    def write_external_account(
        self,
        path: str | os.PathLike[str],
        subject_token_file: str | os.PathLike[str],
        impersonate_email: str | None = None,
    ) -> Path:
        """Write an ``external_account`` (workload identity federation) config."""
        self._require_started()
        info = files.external_account_info(self, subject_token_file, impersonate_email)
        return files.write_private_json(path, info)

    def write_impersonated_adc(
        self, path: str | os.PathLike[str], target_email: str, source: str = "authorized_user"
    ) -> Path:
        """Write an ``impersonated_service_account`` ADC file as gcloud does."""
        self._require_started()
        return files.write_private_json(path, files.impersonated_info(self, target_email, source))
