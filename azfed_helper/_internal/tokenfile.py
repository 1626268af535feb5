"""The token file: read it and judge its freshness (writing it is tokenwriter's job).

This is the no-op ``write``'s whole view of the file, so it stays small and standard-library only:
a token another user planted, a link, a FIFO or a device is never taken as fresh, and a reader
never hangs on what it opens.
"""

from __future__ import annotations

import os
import stat

from . import TYPE_CHECKING, idtoken
from .errors import AzfedError, InvalidTokenError, TokenFileError, UsageError
from .idtoken import IdToken
from .options import BY_DEST

if TYPE_CHECKING:
    pass

_FLAG = BY_DEST["token_file"].flag
# Largest token file we read; ID tokens are ~1 KB, anything huge is not ours.
MAX_BYTES = 64 * 1024
# Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
# gid_t is 32 bits and (gid_t)-1 means "unchanged".
_MAX_GID = 2**32 - 2


def read(path: str) -> IdToken | None:
    """Return the decoded token in ``path`` (symbolic links followed), None when it is missing.

    What a reader does (``status``, a consumer of a file another user keeps fresh): any owner is
    fine, but only a regular file is read, so a FIFO or a device never makes us hang. Raises
    UsageError when the path is not a regular file, TokenFileError when it is unreadable,
    InvalidTokenError when the content is not a JWT (an empty file included).
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TokenFileError(
            f"cannot read token file {path}: {exc.strerror}",
            "check the path and its permissions",
        ) from exc
    return _decode(path, read_regular(path, fd)[1])


def read_regular(
    path: str,
    fd: int,
    label: str = "token file",
    fix: str = f"point {_FLAG} at a file path in a directory the writer owns",
    error: type[AzfedError] = TokenFileError,
) -> tuple[os.stat_result, bytes]:
    """The status and content (at most MAX_BYTES + 1 bytes) of the file open at ``fd``, which
    must be a regular file (``fix`` says what to do otherwise); closes ``fd``. Shared with the
    ``file`` source, which reads another process's token file the same way."""
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            from . import ownership

            raise UsageError(f"{label} {path} is {ownership.kind(info)}, not a regular file", fix)
        with open(fd, "rb", closefd=False) as handle:
            return info, handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise error(
            f"cannot read {label} {path}: {exc.strerror}", "check the path and its permissions"
        ) from exc
    finally:
        os.close(fd)


def _decode(path: str, data: bytes) -> IdToken:
    if not data.strip():
        raise InvalidTokenError(
            f"token file {path} is empty", "run `azfed-helper write` to fill it", claim="format"
        )
    if len(data) > MAX_BYTES:
        raise InvalidTokenError(
            f"token file {path} is too large to be a token",
            f"point {_FLAG} at the file holding the ID token",
            claim="format",
        )
    return idtoken.decode(data)


def fresh_token(
    path: str, audience: str, now: float, margin: float, *, issuer: str | None, ours: bool = True
) -> IdToken | None:
    """The token in ``path`` if it is valid for ``audience`` and ``issuer`` (None: any https
    issuer) and not due: with more than ``margin`` seconds, or half its lifetime when that is
    less, left (``IdToken.due_margin``).

    Any problem with the current file (missing, unreadable, not a JWT, expiring) means "not
    fresh": the caller will replace it. With ``ours`` (a writer's view), so does a file that is
    not a regular file owned by the effective user: a symbolic link, a FIFO, or a token another
    user planted is replaced, never kept. Target-path problems surface when writing.
    """
    try:
        token = _read_ours(path) if ours else read(path)
        if token is None:
            return None
        return idtoken.validate(
            token, audience, now, min_remaining=token.due_margin(margin), issuer=issuer
        )
    except (InvalidTokenError, TokenFileError, UsageError):
        return None


def _read_ours(path: str) -> IdToken | None:
    """The token in ``path`` when it is a regular file of ours (no link followed), else None."""
    try:
        fd = os.open(path, READ_FLAGS | os.O_NOFOLLOW)
    except OSError:
        return None
    info, data = read_regular(path, fd)
    if info.st_uid != os.geteuid():
        return None
    return _decode(path, data)


def attributes(path: str) -> tuple[int, int] | None:
    """``(mode, gid)`` of an existing token file of ours whose mode we would write ourselves.

    A consumer that refreshes the file keeps these, so the readers an administrator granted
    (``0640 root:readers``) keep reading it. Another user's file, or a mode others may write,
    gives None: nothing is inherited from state that is not ours.
    """
    from . import ownership  # its checks' wording, off the no-op path

    try:
        info = os.lstat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(info.st_mode)
    if (
        not stat.S_ISREG(info.st_mode)
        or info.st_uid != os.geteuid()
        or mode & ~0o777
        or mode & ownership.OTHERS_WRITE
        or mode & 0o600 != 0o600
    ):
        return None
    return mode, info.st_gid


def resolve_group(group: str | None) -> int:
    """Map a group name or numeric id to a gid; -1 means "leave the group alone"."""
    if group is None or group == "":
        return -1
    if group.isascii() and group.isdigit():
        gid = int(group)
        if gid > _MAX_GID:
            raise UsageError(
                f"group id {group} is out of range (at most {_MAX_GID})",
                "give an existing group name or gid (`getent group NAME`)",
            )
        return gid
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise UsageError(f"unknown group {group!r}", "give an existing group name or gid") from exc


def directory_refusal(directory: str) -> UsageError | None:
    """The error for a token-file directory owned by another user (neither us nor root).

    Its owner can replace or remove the token at any moment, whatever we check first.
    """
    try:
        info = os.stat(directory)
    except OSError:
        return None  # reported when writing
    if info.st_uid in (os.geteuid(), 0):
        return None
    from . import ownership  # for the wording: the no-op path never gets here

    return UsageError(
        f"directory {directory} for the token file belongs to another user "
        f"({ownership.describe(info)}), who could replace the token at any moment",
        "keep the token file in a directory owned by this user or root (e.g. /run/azfed-helper)",
    )


def directory_warning(path: str) -> str | None:
    """A warning when other users may replace the token file: its directory is writable by
    group or others without the sticky bit (a Kubernetes emptyDir is 0777, and must work)."""
    from . import ownership  # its checks' wording, off the no-op path

    directory = os.path.dirname(os.path.abspath(path))
    try:
        info = os.stat(directory)
    except OSError:
        return None
    if not info.st_mode & ownership.OTHERS_WRITE or info.st_mode & stat.S_ISVTX:
        return None
    return (
        f"directory {directory} of the token file can be written by other users "
        f"({ownership.describe(info)}, no sticky bit): any of them can replace the token; "
        "fine for a pod's own volume, otherwise `chmod go-w` it or use a private directory"
    )
