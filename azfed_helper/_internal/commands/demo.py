"""``azfed-helper demo``: the whole flow against the embedded emulator, offline, in one run.

It is the README's first command: a new user sees what the tool does before configuring anything.
Every step uses the same code paths as the real commands; only the endpoints are emulated.
Tokens are never printed, only their claims.

The demo is sealed: it runs in and hands its child processes an environment built from scratch
(see :func:`sealed_env`), so a user's credentials, proxies, CA bundles, config file or managed
identity variables can neither break it nor send it to a real service.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..config import resolve
from ..durations import format_duration
from ..idtoken import decode
from ..options import BY_DEST

if TYPE_CHECKING:
    from ...emulator import Emulator

ARM_SCOPE = "https://management.azure.com/.default"
# The only variables kept from the user's environment: a list of what is harmless (locale,
# terminal, PATH), so credentials, proxies, CA bundles, AZFED_*/AZURE_*/GOOGLE_* settings and
# managed-identity or CI variables stay out, including any the tool learns to read later.
# Also where the single-file build may unpack its compiled parts: not a setting, nothing to reach.
_KEPT = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "NO_COLOR")
_KEPT_PYZ = ("AZFED_PYZ_CACHE", "CACHE_DIRECTORY", "XDG_RUNTIME_DIR")
_KEPT_PREFIX = "LC_"
_LOOPBACK = "127.0.0.1,localhost"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="write the demo's token file under DIR and leave it there (default: a temp dir)",
    )


def _step(number: int, title: str) -> None:
    print(f"\n[{number}] {title}")


def _show(label: str, value: object) -> None:
    print(f"    {label:<18} {value}")


def _claims(raw: str, keys: tuple[str, ...]) -> str:
    claims = decode(raw).claims
    return ", ".join(f"{key}={claims[key]}" for key in keys if key in claims)


def sealed_env(emulator: Emulator, scratch: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The demo's whole environment: harmless user variables, the emulator's endpoints, and a
    home, an empty config file and a cache of its own under ``scratch``."""
    env = {
        name: value
        for name, value in environ.items()
        if name in (*_KEPT, *_KEPT_PYZ) or name.startswith(_KEPT_PREFIX)
    }
    home, config = os.path.join(scratch, "home"), os.path.join(scratch, "config.toml")
    os.makedirs(home, mode=0o700, exist_ok=True)
    with open(config, "x", encoding="utf-8"):
        pass  # an explicit, empty config file: no user or system profile applies
    env.update(emulator.env())
    env.update(
        HOME=home,
        AZFED_CONFIG=config,
        AZFED_CACHE_DIR=os.path.join(scratch, "cache"),
        NO_PROXY=_LOOPBACK,
        no_proxy=_LOOPBACK,
    )
    return env


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run the in-process steps (google-auth, MSAL, azure-identity read os.environ) in ``env``."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _write_token_file(directory: str) -> str:
    from ..sync import sync_once

    path = os.path.join(directory, "azure-federated-token")
    settings = resolve(argparse.Namespace(token_file=path))
    result = sync_once(settings)
    token = result.token
    _show("source", "metadata server (emulated), format=standard")
    _show("claims", _claims(token.raw, ("iss", "sub", "aud", "email")))
    _show("expires in", format_duration(token.remaining(time.time())))
    _show("written to", path)
    _show("mode", oct(stat.S_IMODE(os.stat(path).st_mode)))
    again = sync_once(settings)
    _show("second write", "no-op (still fresh: no request made)" if not again.wrote else "rewrote")
    return path


def _entra_accepts(emulator: Emulator, path: str) -> None:
    """The unmodified Azure SDK credential (or MSAL when azure-identity is absent) uses the file."""
    try:
        from azure.identity import WorkloadIdentityCredential
    except ImportError:
        access = _msal_exchange(emulator, path)
        _show("client", "msal.ConfidentialClientApplication (azure-identity not installed)")
    else:
        credential = WorkloadIdentityCredential(
            tenant_id=emulator.tenant_id,
            client_id=emulator.client_id,
            token_file_path=path,
            authority=emulator.authority_host,
        )
        access = credential.get_token(ARM_SCOPE).token
        _show("client", "azure.identity.WorkloadIdentityCredential (unmodified)")
    _show("access token", _claims(access, ("aud", "tid", "appid")))


def _msal_exchange(emulator: Emulator, path: str) -> str:
    import msal

    def assertion() -> str:
        with open(path, encoding="ascii") as handle:
            return handle.read()

    app = msal.ConfidentialClientApplication(
        emulator.client_id,
        authority=f"{emulator.authority_host}/{emulator.tenant_id}",
        client_credential={"client_assertion": assertion},
        instance_discovery=False,
    )
    result: dict[str, Any] = app.acquire_token_for_client([ARM_SCOPE])
    return str(result["access_token"])


def _token_command(path: str, resource: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real `azfed-helper token` in a child process, as a script would, with the sealed
    environment given explicitly (plus this very package on its path) and "/" as its cwd."""
    argv = [
        sys.executable,
        "-m",
        "azfed_helper",
        "token",
        BY_DEST["resource"].flag,
        resource,
        "-o",
        "json",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    started = time.perf_counter()
    done = subprocess.run(
        [*argv, BY_DEST["token_file"].flag, path],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd="/",
    )
    return done, time.perf_counter() - started


def _token_twice(emulator: Emulator, path: str) -> None:
    for attempt in ("first", "second"):
        before = emulator.counts["entra.token"]
        done, seconds = _token_command(path, "https://management.azure.com")
        if done.returncode != 0:
            raise SystemExit(f"azfed-helper token failed: {done.stderr.strip()}")
        answer = json.loads(done.stdout)
        served = "Entra" if emulator.counts["entra.token"] > before else "the on-disk cache"
        _show(
            f"{attempt} run",
            f"{seconds * 1000:.0f} ms, from {served}; expiresOn {answer['expiresOn']}, "
            f"{_claims(answer['accessToken'], ('aud', 'tid'))}",
        )


def _mismatch_explained(emulator: Emulator, path: str) -> None:
    """A federated credential whose subject has a typo: what the user sees, and the fix."""
    from ...emulator import FederatedCredential

    saved = list(emulator.federated_credentials)
    wrong = emulator.service_account_id[:-1] + (
        "0" if emulator.service_account_id[-1] != "0" else "1"
    )
    emulator.federated_credentials[:] = [FederatedCredential("https://accounts.google.com", wrong)]
    try:
        _show("registered subject", f"{wrong} (one digit off)")
        done, _ = _token_command(path, "https://vault.azure.net")
        _show("exit code", done.returncode)
        for line in done.stderr.strip().splitlines():
            print(f"    | {line}")
    finally:
        emulator.federated_credentials[:] = saved


def run(args: argparse.Namespace) -> int:
    from ...emulator import Emulator

    print("azfed-helper demo: Google ID token -> token file -> Azure access, all offline.")
    with (
        Emulator() as emulator,
        tempfile.TemporaryDirectory(prefix="azfed-demo-") as scratch,
        _environment(sealed_env(emulator, scratch, os.environ)),
    ):
        directory = os.path.abspath(args.keep) if args.keep else scratch
        os.makedirs(directory, exist_ok=True)
        _step(1, "Emulator started (Google metadata + OAuth on http, Entra tenant on https)")
        _show("metadata host", emulator.metadata_host)
        _show("authority host", emulator.authority_host)
        _show("tenant / client", f"{emulator.tenant_id} / {emulator.client_id}")
        _step(2, f"azfed-helper write: Google ID token into {BY_DEST['token_file'].env}")
        path = _write_token_file(directory)
        _step(3, "Entra accepts the file as a client assertion (workload identity federation)")
        _entra_accepts(emulator, path)
        _step(4, "azfed-helper token: an Azure access token for scripts (MSAL, cached on disk)")
        _token_twice(emulator, path)
        _step(5, "When the Azure federated credential does not match, the error says why")
        _mismatch_explained(emulator, path)
    print("\nDone. Next: `azfed-helper env` prints the variables for your app; see README.")
    return 0
