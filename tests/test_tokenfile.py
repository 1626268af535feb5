from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from azfed_helper._internal import tokenfile, tokenwriter
from azfed_helper._internal.errors import InvalidTokenError, UsageError
from azfed_helper._internal.idtoken import GOOGLE_ISSUER as GOOGLE

from .conftest import cli_env, make_jwt

AUD = "api://AzureADTokenExchange"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_writes_exact_bytes_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "dir" / "token"
    target.parent.mkdir()
    raw = make_jwt()
    old_umask = os.umask(0o077)
    try:
        tokenwriter.write_atomic(str(target), raw.encode(), 0o644)
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == raw.encode()  # no trailing newline
    assert mode_of(target) == 0o644  # the umask does not narrow an explicit mode
    tokenwriter.write_atomic(str(target), raw.encode(), 0o600)
    assert mode_of(target) == 0o600  # applied on rewrite too
    assert sorted(p.name for p in target.parent.iterdir()) == ["token"]  # no temp files left


def test_write_atomic_replaces_inode(tmp_path: Path) -> None:
    target = tmp_path / "token"
    tokenwriter.write_atomic(str(target), b"a.b.c")
    before = target.stat().st_ino
    tokenwriter.write_atomic(str(target), b"d.e.f")
    assert target.stat().st_ino != before


def test_write_atomic_group(tmp_path: Path) -> None:
    target = tmp_path / "token"
    gid = os.getgid()
    tokenwriter.write_atomic(str(target), b"a.b.c", 0o640, gid)
    assert target.stat().st_gid == gid
    assert tokenfile.resolve_group(str(gid)) == gid
    with pytest.raises(UsageError, match="unknown group"):
        tokenfile.resolve_group("no-such-group-azfed")


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    """A write that fails midway (file size limit: works even as root) leaves the old file whole."""
    target = tmp_path / "token"
    target.write_bytes(b"old.token.here")
    script = (
        "import resource, signal, sys\n"
        "from azfed_helper._internal import tokenwriter\n"
        "from azfed_helper._internal.errors import TokenFileError\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))\n"
        "try:\n"
        "    tokenwriter.write_atomic(sys.argv[1], b'x' * 4096)\n"
        "except TokenFileError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(target)], env=cli_env(), capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert f"cannot write {target}: File too large" in done.stdout
    assert target.read_bytes() == b"old.token.here"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["token"]


def test_read_and_fresh_token(tmp_path: Path) -> None:
    target = tmp_path / "token"
    assert tokenfile.read(str(target)) is None
    now = time.time()
    target.write_text(make_jwt())
    assert tokenfile.fresh_token(str(target), AUD, now, 600, issuer=GOOGLE) is not None
    assert tokenfile.fresh_token(str(target), "other", now, 0, issuer=GOOGLE) is None
    assert tokenfile.fresh_token(str(target), AUD, now, 0, issuer="https://other") is None
    assert tokenfile.fresh_token(str(target), AUD, now, 0, issuer=None) is not None  # any https
    # Due with less than the margin or half the token's lifetime left, whichever is less: an
    # hour's token with 50 minutes left is fresh even for a 4000-second margin...
    target.write_text(make_jwt(iat=int(now) - 600, exp=int(now) + 3000))
    assert tokenfile.fresh_token(str(target), AUD, now, 4000, issuer=GOOGLE) is not None
    # ...and due, with 25 minutes left, for a 30-minute margin; 5 minutes of life are due at 2.5.
    target.write_text(make_jwt(iat=int(now) - 2100, exp=int(now) + 1500))
    assert tokenfile.fresh_token(str(target), AUD, now, 1800, issuer=GOOGLE) is None
    target.write_text(make_jwt(iat=int(now) - 160, exp=int(now) + 140))
    assert tokenfile.fresh_token(str(target), AUD, now, 1200, issuer=GOOGLE) is None
    assert tokenfile.fresh_token(str(target), AUD, now + 20, 1200, issuer=GOOGLE) is None
    target.write_text(make_jwt(iat=int(now) - 140, exp=int(now) + 160))
    assert tokenfile.fresh_token(str(target), AUD, now, 1200, issuer=GOOGLE) is not None
    target.write_text("")
    with pytest.raises(InvalidTokenError, match="empty"):
        tokenfile.read(str(target))
    assert tokenfile.fresh_token(str(target), AUD, now, 0, issuer=GOOGLE) is None


def test_read_directory_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        tokenfile.read(str(tmp_path))


def test_check_target(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        tokenwriter.check_target(str(tmp_path), create_dirs=False)
    nested = tmp_path / "a" / "b" / "token"
    with pytest.raises(UsageError, match="--create-dirs"):
        tokenwriter.check_target(str(nested), create_dirs=False)
    tokenwriter.check_target(str(nested), create_dirs=True)
    assert mode_of(nested.parent) == 0o700 and mode_of(nested.parent.parent) == 0o700


def test_make_private_dirs_creates_every_level_0700_and_leaves_existing_alone(
    tmp_path: Path,
) -> None:
    existing = tmp_path / "shared"
    existing.mkdir()
    existing.chmod(0o755)
    old = os.umask(0o022)  # the common default, under which makedirs' parents end up 0755
    try:
        tokenwriter.make_private_dirs(str(existing / "a" / "b" / "c"))
        tokenwriter.make_private_dirs(str(existing / "a" / "b" / "c"))  # already there: no error
    finally:
        os.umask(old)
    assert mode_of(existing) == 0o755
    for level in ("a", "a/b", "a/b/c"):
        assert mode_of(existing / level) == 0o700, level
    (existing / "file").write_text("x")
    with pytest.raises(FileExistsError):
        tokenwriter.make_private_dirs(str(existing / "file"))
