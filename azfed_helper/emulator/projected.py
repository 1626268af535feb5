"""A kubelet stand-in: keeps a projected service-account token fresh in a file.

The kubelet replaces a projected token once it is older than 80% of its lifetime (or a day),
and swaps it in atomically: the visible file is a symlink ``NAME -> ..data/NAME``, and
``..data`` is itself a symlink to a timestamped directory that is replaced with one rename.
Writing the same way lets tests see exactly what a pod sees, including the symlinks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Literal

from .._internal.tokenwriter import write_fully
from .issuers import ROTATE_FRACTION, ROTATE_MAX_AGE, Clock, KubernetesIssuer

Layout = Literal["kubelet", "file"]
_DATA = "..data"
_RETRY_AFTER_ERROR = 1.0


class ProjectedTokenFile:
    """One rotating token file. :meth:`start` writes the first token before it returns.

    ``layout="kubelet"`` (the default) writes the kubelet's symlinked layout and needs a
    directory of its own; ``layout="file"`` replaces a plain file by rename.
    """

    def __init__(
        self,
        issuer: KubernetesIssuer,
        path: str | os.PathLike[str],
        *,
        now: Clock,
        audiences: list[str],
        namespace: str | None = None,
        service_account: str | None = None,
        lifetime: int | None = None,
        layout: Layout = "kubelet",
    ) -> None:
        if layout not in ("kubelet", "file"):
            raise ValueError("layout must be 'kubelet' or 'file'")
        self.path = Path(path).absolute()
        self.layout = layout
        self.audiences = list(audiences)
        self.namespace = namespace
        self.service_account = service_account
        self.lifetime = lifetime
        self.writes = 0
        self.last_error: OSError | None = None
        self._issuer = issuer
        self._now = now
        self._due = 0.0
        self._generations: list[Path] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> ProjectedTokenFile:
        """Write the first token, then keep replacing it in a background thread."""
        if self._thread is not None:
            return self
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.layout == "kubelet" and self.path.exists() and not self.path.is_symlink():
            raise ValueError(f"{self.path} exists and is not a kubelet-style symlink")
        self.rotate()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name=f"azfed-emulator-kubelet-{self.path.name}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop rotating; the last token stays in place, as it does when a kubelet stops."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ProjectedTokenFile:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- writing ----------------------------------------------------------------------------

    def rotate(self) -> str:
        """Mint and write a new token now (tests with an injected clock call this directly)."""
        with self._lock:
            lifetime = int(self._issuer.lifetime if self.lifetime is None else self.lifetime)
            token = self._issuer.mint(
                self.audiences,
                namespace=self.namespace,
                service_account=self.service_account,
                lifetime=lifetime,
            )
            data = token.encode("ascii")
            if self.layout == "kubelet":
                self._write_kubelet(data)
            else:
                _write_replacing(self.path, data)
            self._due = self._now() + min(lifetime * ROTATE_FRACTION, ROTATE_MAX_AGE)
            self.writes += 1
            return token

    def _run(self) -> None:
        while True:
            delay = self._due - self._now()
            if delay > 0:
                if self._stop.wait(delay):
                    return
                continue
            try:
                self.rotate()
                self.last_error = None
            except OSError as exc:  # a full or vanished disk: keep the last token, try again
                self.last_error = exc
                if self._stop.wait(_RETRY_AFTER_ERROR):
                    return

    def _write_kubelet(self, data: bytes) -> None:
        """A new timestamped directory, then one rename of the ``..data`` link onto it."""
        directory, name = self.path.parent, self.path.name
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        generation = Path(tempfile.mkdtemp(prefix=stamp, dir=directory))
        _write_new(generation / name, data)
        staged = directory / (_DATA + "_tmp")
        if os.path.lexists(staged):
            staged.unlink()
        os.symlink(generation.name, staged)
        os.replace(staged, directory / _DATA)
        if not os.path.lexists(self.path):
            os.symlink(f"{_DATA}/{name}", self.path)
        # Keep the previous generation until the next rotation: a reader that has just
        # resolved the old link still finds its file.
        self._generations.append(generation)
        while len(self._generations) > 2:
            shutil.rmtree(self._generations.pop(0), ignore_errors=True)


def _write_new(path: Path, data: bytes) -> None:
    write_fully(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), data)


def _write_replacing(path: Path, data: bytes) -> None:
    """Write a temporary file beside ``path``, then rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        write_fully(fd, data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
