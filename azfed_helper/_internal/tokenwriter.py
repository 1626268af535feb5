"""Writing the token file (and our other private files) so that readers never see a mix.

Readers (azure-identity, the Go SDK, az, Terraform) open the file at any moment, so a write must
never expose a partial, empty or mixed file even if we are killed mid-write: we write a temporary
file in the same directory, apply the mode and group to it, fsync it, rename it over the target and
fsync the directory. Writers of one file serialise on a lock next to it (``filelock``, imported
only when a lock is taken); a directory another user controls is refused before anything is
written, and temporary files a killed writer left behind are removed.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from . import TYPE_CHECKING, ownership
from .errors import AzfedError, TokenFileError, UsageError
from .options import BY_DEST
from .tokenfile import directory_refusal

if TYPE_CHECKING:
    from .locks import ProcessLock

_FLAG = BY_DEST["token_file"].flag
# A temporary file untouched this long belongs to a writer that was killed.
STALE_TEMP_AGE = 60.0
# Room for ".", ".<pid>.<8 hex>.tmp" within NAME_MAX (255).
_TEMP_BASE_CHARS = 200


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
    try:
        existing = os.lstat(path)
    except OSError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise UsageError(f"token file {path} is a directory", f"point {_FLAG} at a file path")
    if existing is not None and (stat.S_ISCHR(existing.st_mode) or stat.S_ISBLK(existing.st_mode)):
        raise UsageError(
            f"token file {path} is {ownership.kind(existing)}; refusing to replace it",
            f"point {_FLAG} at a file path",
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        if not create_dirs:
            raise UsageError(
                f"directory {directory} for the token file does not exist",
                f"create it, or pass {BY_DEST['create_dirs'].flag} to create it (mode 0700)",
            )
        try:
            make_private_dirs(directory)
        except OSError as exc:
            raise UsageError(
                f"cannot create directory {directory}: {exc.strerror}",
                f"create it yourself or choose another {_FLAG}",
            ) from exc
    refusal = directory_refusal(directory)
    if refusal is not None:
        raise refusal
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UsageError(
            f"directory {directory} is not writable by this user (uid {os.getuid()})",
            f"run as a user that can write there, or choose another {_FLAG}",
        )


def write_atomic(path: str, data: bytes, mode: int = 0o600, gid: int = -1) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    A rename replaces whatever was at ``path`` (another user's file, a link, a FIFO), never
    writing through it; in a sticky directory where that is not ours to replace, it is an error.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, temp_name(os.path.basename(path)))
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except OSError as exc:
        # Permission and read-only errors are set-up problems (exit 2); the rest are run-time.
        kind = (
            UsageError if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else TokenFileError
        )
        raise kind(
            f"directory {directory} is not writable: cannot create a temporary file there "
            f"({exc.strerror})",
            f"make the directory writable by this user, or choose another {_FLAG}",
        ) from exc
    try:
        try:
            os.fchmod(fd, mode)  # explicit: the umask must not weaken or widen the mode
            if gid != -1:
                _give_group(fd, path, gid)
        except BaseException:
            os.close(fd)
            raise
        write_fully(fd, data)
        os.replace(tmp, path)
    except BaseException as exc:  # even Ctrl-C: no temporary copy of a token stays behind
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise _write_error(path, exc) from exc
        raise
    _fsync_directory(directory)
    remove_stale_temps(directory)


def _give_group(fd: int, path: str, gid: int) -> None:
    try:
        os.fchown(fd, -1, gid)
    except OSError as exc:
        if exc.errno != errno.EPERM:
            raise
        raise UsageError(  # a set-up problem: exit 2
            f"cannot give token file {path} group {gid}: {exc.strerror}",
            f"the writer must be a member of the {BY_DEST['group'].flag} it sets (or run as root)",
        ) from exc


def _write_error(path: str, exc: OSError) -> AzfedError:
    if exc.errno == errno.EPERM:  # rename refused: a sticky directory keeps another's file
        return UsageError(
            f"cannot replace {path}: {exc.strerror} (in a sticky directory, a file of another "
            "user cannot be replaced)",
            "remove that file as its owner or root, or choose another path",
        )
    return TokenFileError(
        f"cannot write {path}: {exc.strerror}",
        "check the directory's permissions and free space",
    )


def temp_name(base: str) -> str:
    """``.<base>.<pid>.<random>.tmp``, within the file system's 255-byte name limit."""
    return f".{base[:_TEMP_BASE_CHARS]}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


def _is_temp_name(name: str) -> bool:
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    parts = name[1:-4].rsplit(".", 2)
    return (
        len(parts) == 3
        and bool(parts[0])
        and parts[1].isascii()
        and parts[1].isdigit()
        and len(parts[2]) == 8
        and all(char in "0123456789abcdef" for char in parts[2])
    )


def remove_stale_temps(directory: str) -> None:
    """Delete temporary files a killed writer left in ``directory`` (each holds a whole token).

    Only ours: our naming pattern, a regular file owned by the effective user, untouched for
    over a minute (a live writer needs milliseconds). Best effort: failures are ignored.
    """
    limit = time.time() - STALE_TEMP_AGE
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if not _is_temp_name(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mtime < limit:
                os.unlink(entry.path)
        except OSError:
            continue


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


def write_fully(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the new file ``fd``, flush it to disk, and close ``fd``."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_path(path: str) -> str:
    """The lock file that serialises writers of ``path`` (a hidden neighbour of the file)."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.lock")


def writer_lock(path: str, timeout: float = 60) -> ProcessLock:
    """The cross-process writer lock for ``path`` (readers never take it)."""
    from .locks import ProcessLock  # writers only: the no-op path never locks

    return ProcessLock(
        lock_path(path),
        timeout,
        "the token file lock",
        "check for a stuck writer; the lock is released when its process exits",
    )
