"""``azfed-helper emulator``: run the emulator in the foreground for demos and CI jobs.

Importing this module stays cheap (argparse only); the emulator and its crypto load
inside :func:`run`, so the CLI's start-up is unaffected when another command runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._internal.options import BY_DEST
from .._internal.shell import exports

if TYPE_CHECKING:
    from .core import Emulator


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument(
        "--id-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of Google ID tokens the emulator mints (default 3600)",
    )
    parser.add_argument(
        "--access-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of access tokens it issues (default 3600)",
    )
    parser.add_argument("--tenant-id", help="Entra tenant id to emulate (default: a fixed GUID)")
    parser.add_argument("--client-id", help="Entra application (client) id (default: a fixed GUID)")
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help=f"also write a service-account key there and export {BY_DEST['credentials'].env}",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="also write the export lines to this file (mode 0600; removed when the emulator stops)",
    )
    parser.add_argument(
        "--github-actions",
        action="store_true",
        help="also export ACTIONS_ID_TOKEN_REQUEST_URL/_TOKEN, as a job with id-token: write "
        "sees them, and trust that job's subject on the app",
    )
    parser.add_argument(
        "--github-token-lifetime",
        type=int,
        default=300,
        metavar="SECONDS",
        help="lifetime of GitHub Actions ID tokens (default 300, as on GitHub)",
    )
    parser.add_argument(
        "--kubernetes-token-file",
        type=Path,
        metavar="PATH",
        help="also keep a projected service-account token in PATH, rotated at 80%% of its "
        "lifetime as the kubelet does (PATH's directory should be its own), and trust it on the app",
    )
    parser.add_argument(
        "--kubernetes-token-lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of the projected tokens (default 3600)",
    )


def export_lines(
    emulator: Emulator, key_file: Path | None = None, github: bool = False
) -> list[str]:
    """Shell ``export`` lines for the emulator's environment, then comments naming the
    identities and the federated credentials the emulated app trusts."""
    env = emulator.env()
    if key_file is not None:
        env[str(BY_DEST["credentials"].env)] = os.fspath(key_file.resolve())
    if github:
        env.update(emulator.github_actions_env())
    lines = exports(env).splitlines()
    lines.append(
        f"# service account {emulator.service_account_email} (sub {emulator.service_account_id})"
    )
    lines += [
        f"# federated credential {fic.name}: issuer {fic.issuer}, subject {fic.subject},"
        f" audience {','.join(fic.audiences)}"
        for fic in emulator.federated_credentials
    ]
    return lines


def ready_line(emulator: Emulator) -> str:
    """The last line printed: a comment (so ``eval`` of the output stays valid) that scripts can
    wait for; everything above it, and the env file, is complete when it appears."""
    return (
        f"# ready: Google on {emulator.google_url}, Entra on {emulator.authority_host}, "
        f"GitHub/Kubernetes issuers on {emulator.issuers_url}; stop with Ctrl-C or SIGTERM"
    )


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_on_signals(stop: threading.Event) -> dict[signal.Signals, Any]:
    """Turn SIGINT/SIGTERM into ``stop``; returns the handlers to restore afterwards."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        signal.signal(signum, handler)
    return previous


def run(args: argparse.Namespace) -> int:
    """Start the emulator, print its environment, and serve until SIGINT/SIGTERM."""
    from .core import Emulator

    stop = threading.Event()
    previous = _stop_on_signals(stop)
    written: _WrittenFile | None = None
    try:
        with Emulator(
            id_token_lifetime=args.id_token_lifetime,
            access_token_lifetime=args.access_token_lifetime,
            tenant_id=args.tenant_id,
            client_id=args.client_id,
        ) as emulator:
            _add_issuers(emulator, args)
            text = "\n".join(export_lines(emulator, args.key_file, args.github_actions)) + "\n"
            if args.env_file is not None:
                written = _WrittenFile.write(args.env_file, text.encode("utf-8"))
            sys.stdout.write(text + ready_line(emulator) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        if written is not None:
            written.remove()
        for signum, old in previous.items():
            signal.signal(signum, old)
    return 0


def _add_issuers(emulator: Emulator, args: argparse.Namespace) -> None:
    """The optional key file, GitHub Actions job and projected token file, each trusted."""
    if args.key_file is not None:
        emulator.write_service_account_key(args.key_file)
    emulator.github.lifetime = args.github_token_lifetime
    if args.github_actions:
        emulator.add_github_actions_credential()
    emulator.kubernetes.lifetime = args.kubernetes_token_lifetime
    if args.kubernetes_token_file is not None:
        emulator.start_projected_token_file(args.kubernetes_token_file)
        emulator.add_kubernetes_credential()


class _WrittenFile:
    """A file this process wrote, removed at exit only if it is still that very file: a
    stale env file would leave shells pointing at a deleted CA, but another writer's file
    (or a symlink put in its place) is not ours to delete."""

    def __init__(self, path: Path, data: bytes, identity: tuple[int, int]) -> None:
        self.path, self.data, self.identity = path, data, identity

    @classmethod
    def write(cls, path: Path, data: bytes) -> _WrittenFile:
        from .._internal.tokenwriter import write_atomic

        write_atomic(os.fspath(path), data)
        info = os.lstat(path)
        return cls(path, data, (info.st_dev, info.st_ino))

    def remove(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return  # gone already, or replaced by a symlink
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            same = (info.st_dev, info.st_ino) == self.identity and handle.read() == self.data
        if same:
            try:
                os.unlink(self.path)
            except OSError:
                pass
