"""One cross-process lock type for the token file, the token cache and the az profile.

``filelock`` locks the OS way (flock), so a crashed holder never leaves a lock that blocks later
runs; the lock file itself may stay, harmlessly. filelock (3.20.1 or later) never follows a symbolic
link planted at the lock path (CVE-2025-68146). It is imported only when a lock is taken, which
happens on refresh paths, never on the no-op ones.
"""

from __future__ import annotations

import errno
import os

from . import TYPE_CHECKING
from .errors import AzfedError, TokenFileError, UsageError

if TYPE_CHECKING:
    from types import TracebackType

    import filelock


class ProcessLock:
    """``with ProcessLock(path, timeout, what):`` holds the lock; a timeout is a clear error.

    ``what`` names the lock in the error ("the token file lock"); ``hint`` says what to look for.
    """

    def __init__(
        self,
        path: str,
        timeout: float,
        what: str,
        hint: str = "check for a stuck azfed-helper process; the lock is released when it exits",
        error: type[AzfedError] = TokenFileError,
    ) -> None:
        self.path = path
        self.timeout = timeout
        self.what = what
        self.hint = hint
        self.error = error
        self._lock: filelock.FileLock | None = None

    def __enter__(self) -> None:
        import filelock

        self._lock = filelock.FileLock(self.path, timeout=self.timeout, mode=0o600)
        try:
            self._lock.acquire()
        except filelock.Timeout as exc:
            raise self.error(
                f"another azfed-helper process has held {self.what} {self.path} "
                f"for {self.timeout:.0f}s",
                self.hint,
            ) from exc
        except OSError as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: OSError) -> AzfedError:
        """Why the lock file could not be opened, with the fix (set-up problems exit 2)."""
        reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or exc
        message = f"cannot take {self.what} {self.path}: {reason}"
        directory = os.path.dirname(self.path)
        fixes = {
            errno.ELOOP: "the lock file is a symbolic link, which is never followed: remove it "
            "(another user may have planted it) and keep the file in a directory only you can write",
            errno.ENAMETOOLONG: "the lock file's name is too long for the file system: "
            "use a shorter file name",
            errno.EROFS: "the file system is read-only: choose a writable location",
            errno.EACCES: f"make {directory} writable by this user (uid {os.geteuid()}), or "
            "remove a lock file another user created there",
            errno.ENOENT: f"directory {directory} does not exist: create it",
        }
        fixes[errno.EPERM] = fixes[errno.EACCES]
        if exc.errno in fixes:
            return UsageError(message, fixes[exc.errno])
        return self.error(message, self.hint)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._lock is not None:
            self._lock.release()
