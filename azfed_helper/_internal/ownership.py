"""Is this local state ours? Owner and mode checks for the files and directories we trust.

Another user on the host can write shared places (``/tmp``, a group-writable checkout): a cache
file or directory they made, or can replace, would hand us their tokens or their discovery
answers. State we read back is trusted only when the effective user owns it and nobody else can
write it. Standard library only, and only ``os.stat`` results: this sits on the cache-hit path.
"""

from __future__ import annotations

import os
import stat

from .errors import UsageError

# Group or others may write: they could replace what we read.
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def is_private(info: os.stat_result) -> bool:
    """Owned by the effective user, and neither group nor others may write it."""
    return info.st_uid == os.geteuid() and not info.st_mode & OTHERS_WRITE


def user_name(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def describe(info: os.stat_result) -> str:
    """``owner alice (uid 1000), mode 0777``: what a person needs to judge and fix it."""
    return f"owner {user_name(info.st_uid)}, mode {stat.S_IMODE(info.st_mode):04o}"


def kind(info: os.stat_result) -> str:
    """What a non-regular file is, in words ("a directory", "a FIFO" ...)."""
    mode = info.st_mode
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def require_private_dir(path: str, info: os.stat_result, what: str, option: str) -> None:
    """Refuse a directory that is not ours alone (UsageError naming owner, mode and the fix)."""
    if is_private(info):
        return
    if info.st_uid == os.geteuid():
        fix = f"run `chmod 700 {path}`, or choose another {option}"
    else:
        fix = f"choose another {option}, one of your own (it belongs to someone else)"
    raise UsageError(
        f"{what} {path} is not private to this user ({user_name(os.geteuid())}): "
        f"{describe(info)}; refusing to trust what it holds",
        fix,
    )


def require_private_file(path: str, info: os.stat_result, what: str, option: str) -> None:
    """Refuse a file that is not a regular file of ours that nobody else can write."""
    if stat.S_ISREG(info.st_mode) and is_private(info):
        return
    if not stat.S_ISREG(info.st_mode):
        problem = f"is {kind(info)}, not a regular file"
    else:
        problem = f"is not private to this user ({user_name(os.geteuid())})"
    raise UsageError(
        f"{what} {path} {problem}: {describe(info)}; refusing to trust what it holds",
        f"remove it (`rm {path}`) and let azfed-helper recreate it; or choose another {option}",
    )
