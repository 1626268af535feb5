"""The ``file`` source: a JWT that another process keeps fresh, such as a Kubernetes projected
service-account token.

The file is read before each use and never written. The kubelet publishes a projected token as
a symbolic link into ``..data/`` (itself a link swapped on each rotation), so links are followed
here: we only read, and what we read must pass the claim checks (issuer, audience, lifetime)
before it is presented. Only a regular file is read, so a FIFO never makes us hang. Standard
library only.
"""

from __future__ import annotations

import os

from .. import TYPE_CHECKING
from ..errors import SourceError
from ..options import BY_DEST
from ..tokenfile import MAX_BYTES, READ_FLAGS, read_regular
from . import any_issuer_credential

if TYPE_CHECKING:
    from ..config import Settings

credential_name = any_issuer_credential


def path_of(settings: Settings) -> str:
    """The assertion file, or a usage error saying how to name it."""
    settings.require("assertion_file")
    assert settings.assertion_file is not None
    return settings.assertion_file


def describe(settings: Settings) -> str:
    path = path_of(settings)
    target = os.path.realpath(path)
    shown = f"the file {path}" + (
        f" (a link to {target})" if target != os.path.abspath(path) else ""
    )
    return f"{shown}, kept fresh by another process and read before each use"


def fetch(settings: Settings) -> str:
    """The JWT in the file now (surrounding whitespace removed)."""
    path = path_of(settings)
    option = BY_DEST["assertion_file"]
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError as exc:
        raise SourceError(
            f"assertion file {path} does not exist",
            f"check {option.where()}: in Kubernetes, the projected volume's mount path and "
            "token path; the process that keeps it fresh must have written it",
        ) from exc
    except OSError as exc:
        raise SourceError(
            f"cannot read assertion file {path}: {exc.strerror}",
            "check its permissions (a projected token is readable by the pod's fsGroup)",
        ) from exc
    fix = f"point {option.where()} at the token file itself"
    _info, data = read_regular(path, fd, "assertion file", fix, SourceError)
    if len(data) > MAX_BYTES:
        raise SourceError(
            f"assertion file {path} is too large to be a token",
            f"point {option.where()} at the file holding the JWT",
        )
    if not data.strip():
        raise SourceError(
            f"assertion file {path} is empty",
            "the process that keeps it fresh has not written it yet, or writes it in place",
        )
    return data.decode("ascii", "replace").strip()
