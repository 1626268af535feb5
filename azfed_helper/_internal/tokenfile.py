"""The token file: read it, judge its freshness, replace it atomically.

Readers (azure-identity, the Go SDK, az, Terraform) open the file at any moment, so a write must
never expose a partial, empty or mixed file even if we are killed mid-write: we write a temporary
file in the same directory, apply the mode and group to it, fsync it, rename it over the target and
fsync the directory. Standard library only on the read path; ``filelock`` is imported only to write.
"""

from __future__ import annotations

import errno
import os

from . import idtoken
from .errors import InvalidTokenError, TokenFileError, UsageError
from .idtoken import IdToken
from .locks import ProcessLock

# Largest token file we read; Google ID tokens are ~1 KB, anything huge is not ours.
_MAX_BYTES = 64 * 1024


def read(path: str) -> IdToken | None:
    """Return the decoded token in ``path``, None when the file does not exist.

    Raises TokenFileError when the path is unreadable or a directory, InvalidTokenError when the
    content is not a JWT (an empty file included).
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise UsageError(
            f"token file {path} is a directory", "point --token-file at a file path"
        ) from exc
    except OSError as exc:
        raise TokenFileError(
            f"cannot read token file {path}: {exc.strerror}",
            "check the path and its permissions",
        ) from exc
    if not data.strip():
        raise InvalidTokenError(f"token file {path} is empty", claim="format")
    if len(data) > _MAX_BYTES:
        raise InvalidTokenError(f"token file {path} is too large to be a token", claim="format")
    return idtoken.decode(data)


def fresh_token(path: str, audience: str, now: float, margin: float) -> IdToken | None:
    """The token in ``path`` if it is valid for ``audience`` with more than ``margin`` seconds left.

    Any problem with the current file (missing, unreadable, not a JWT, expiring) means "not
    fresh": the caller will replace it. Target-path problems surface when writing.
    """
    try:
        token = read(path)
        if token is None:
            return None
        return idtoken.validate(token, audience, now, min_remaining=margin)
    except (InvalidTokenError, TokenFileError):
        return None


def make_private_dirs(path: str) -> None:
    """Create directory ``path`` and every missing parent with mode 0700; raises OSError.

    ``os.makedirs(mode=0o700)`` gives that mode to the last level only: the parents it creates
    get the umask's default (often 0755). Existing directories are left exactly as they are.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent != path:
        make_private_dirs(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        if not os.path.isdir(path):  # another process may have created it meanwhile: fine
            raise


def check_target(path: str, create_dirs: bool) -> None:
    """Fail early, with the fix, when the token file cannot be written where it was asked."""
    if os.path.isdir(path):
        raise UsageError(f"token file {path} is a directory", "point --token-file at a file path")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        if not create_dirs:
            raise UsageError(
                f"directory {directory} for the token file does not exist",
                "create it, or pass --create-dirs to create it (mode 0700)",
            )
        try:
            make_private_dirs(directory)
        except OSError as exc:
            raise UsageError(
                f"cannot create directory {directory}: {exc.strerror}",
                "create it yourself or choose another --token-file",
            ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(
            f"directory {directory} is not writable by this user (uid {os.getuid()})",
            "run as a user that can write there, or choose another --token-file",
        )


def resolve_group(group: str | None) -> int:
    """Map a group name or numeric id to a gid; -1 means "leave the group alone"."""
    if group is None or group == "":
        return -1
    if group.isdigit():
        return int(group)
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise UsageError(f"unknown group {group!r}", "give an existing group name or gid") from exc


def write_atomic(path: str, data: bytes, mode: int = 0o600, gid: int = -1) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        # Permission and read-only errors are set-up problems (exit 2); the rest are run-time.
        kind = (
            UsageError if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else TokenFileError
        )
        raise kind(
            f"directory {directory} is not writable: cannot create a temporary file there "
            f"({exc.strerror})",
            "make the directory writable by this user, or choose another --token-file",
        ) from exc
    try:
        try:
            os.fchmod(fd, mode)  # explicit: the umask must not weaken or widen the mode
            if gid != -1:
                os.fchown(fd, -1, gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        if exc.errno == errno.EPERM and gid != -1:  # a set-up problem: exit 2
            raise UsageError(
                f"cannot give token file {path} group {gid}: {exc.strerror}",
                "the writer must be a member of the --group it sets (or run as root)",
            ) from exc
        raise TokenFileError(
            f"cannot write token file {path}: {exc.strerror}",
            "check the directory's permissions and free space",
        ) from exc
    _fsync_directory(directory)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; some file systems refuse to fsync a directory, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def lock_path(path: str) -> str:
    """The lock file that serialises writers of ``path`` (a hidden neighbour of the file)."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.lock")


def writer_lock(path: str, timeout: float = 60) -> ProcessLock:
    """The cross-process writer lock for ``path`` (readers never take it)."""
    return ProcessLock(
        lock_path(path),
        timeout,
        "the token file lock",
        "check for a stuck writer; the lock is released when its process exits",
    )
