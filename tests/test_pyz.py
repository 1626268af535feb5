"""The single-file build (packaging/pyz/), as the shipped units run it: a user with no home,
HOME=/nonexistent, a read-only root except the unit's directories, against the emulator.

The .pyz is built once by ./scripts/test (tests/dist_artefacts.py); the sandbox is
tests/unit_sandbox.py (root only: CI runs as root).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken

from . import dist_artefacts
from .conftest import REPO, make_jwt
from .unit_sandbox import UnitSandbox, unavailable

UNITS = REPO / "packaging" / "systemd"
# Heavy dependencies: unpacked on first use, never in the archive's own directory (build.py).
HEAVY = ("google/", "msal/", "requests/", "cryptography/", "certifi/", "jwt/", "urllib3/")


def free_id(start: int = 61000) -> int:
    """A uid (and gid) that no account or group uses: nobody's files, nobody's groups."""
    for candidate in range(start, start + 1000):
        try:
            pwd.getpwuid(candidate)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(candidate)
        except KeyError:
            return candidate
    raise AssertionError("no free uid")


def run_direct(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False, **kwargs)


def assert_one_error(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 2 with our one-line error and its hint: never a traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("azfed-helper: error: "), done.stderr
    assert lines[1].startswith("  hint: "), done.stderr
    for phrase in phrases:
        assert phrase in done.stderr


@pytest.fixture
def pyz() -> Path:
    return dist_artefacts.pyz()


@pytest.fixture
def sandbox_root() -> Iterator[Path]:
    """Stands for /run and /var/cache, and holds the installed program: a root-owned 0755
    directory outside /tmp (PrivateTmp hides /tmp from the service)."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="azfed-pyz-test-", dir="/run"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def installed(pyz: Path, root: Path) -> str:
    """The .pyz copied to where an admin would put it: root-owned, 0755, named azfed-helper."""
    target = root / "bin" / "azfed-helper"
    target.parent.mkdir(mode=0o755)
    shutil.copyfile(pyz, target)
    target.chmod(0o755)
    return str(target)


def write_unit(root: Path, unit: str = "azfed-helper-write.service") -> UnitSandbox:
    uid = free_id()
    sandbox = UnitSandbox(
        UNITS / unit,
        runtime_root=str(root / "run"),
        cache_root=str(root / "cache"),
        uid=uid,
        files={"/etc/azfed-helper/azfed-helper.env": UNITS / "azfed-helper.env"},
    )
    sandbox.prepare()
    return sandbox


def unit_env(sandbox: UnitSandbox, emulator: Any | None = None) -> dict[str, str]:
    """Over the shipped azfed-helper.env: the token file moved with the runtime root, and the
    emulator's metadata server (as an admin's edit of the file would)."""
    token_file = str(sandbox.runtime_directory / "token")
    env = {"AZURE_FEDERATED_TOKEN_FILE": token_file}
    if emulator is not None:
        env |= {k: v for k, v in emulator.env().items() if k.startswith("GCE_")}
    return env


def test_archive_layout(pyz: Path) -> None:
    """Named for its Python; started by a shell header with -IS; nothing heavy or compiled in the
    archive's own directory (zipimport reads all of it on every start)."""
    assert re.fullmatch(r"azfed-helper-[0-9.]+-py3\.\d+-[a-z0-9_]+\.pyz", pyz.name), pyz.name
    header = pyz.read_bytes()[:400].split(b"\n")
    assert header[0] == b"#!/bin/sh"
    assert header[1].startswith(b"exec /usr/bin/python3 -IS -c ")
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
        start = archive.read("_azfed_pyz.py").decode()
    assert "azfed_helper/__main__.pyc" in names
    assert not [n for n in names if n.endswith((".so", ".py")) and "/" in n]
    assert not [n for n in names if n.startswith(HEAVY)]
    assert len(names) < 250, len(names)
    heavy = re.search(r'_HEAVY_NAMES = "([^"]*)"', start)
    assert heavy is not None
    assert {"cryptography", "certifi", "google", "msal", "requests"} <= set(heavy.group(1).split())
    python = pyz.name.split("-")[3]
    assert f'BUILT_FOR = "cpython-{python.removeprefix("py").replace(".", "")}"' in start


def test_runs_as_a_zip_application_too(pyz: Path) -> None:
    done = run_direct(["/usr/bin/python3", str(pyz), "--version"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("azfed-helper ")


def other_pythons(version: str) -> list[str]:
    """Interpreters of another supported Python version (3.10+): on PATH, or from pyenv."""
    found = [shutil.which(f"python3.{minor}") for minor in range(10, 15)]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path(pwd.getpwuid(os.getuid()).pw_dir, ".pyenv"))
    found += [str(path) for path in sorted(pyenv.glob("versions/3.*/bin/python3"))]
    usable: dict[str, str] = {}
    for path in filter(None, found):
        done = run_direct([path, "-c", "import sys; print(sys.version_info[1])"])
        minor = done.stdout.strip()
        if done.returncode == 0 and int(minor) >= 10 and f"3.{minor}" != version:
            usable.setdefault(minor, path)
    return list(usable.values())


def test_another_python_gets_a_clear_error(pyz: Path) -> None:
    built = pyz.name.split("-")[3].removeprefix("py")
    usable = other_pythons(built)
    if not usable:
        pytest.skip(f"no Python 3 other than {built} on this machine")
    done = run_direct([usable[0], str(pyz), "write", "--token-file", "/nonexistent/token"])
    assert_one_error(done, f"built for cpython-{built.replace('.', '')}", "/usr/bin/python3")


def test_sandbox_root_is_read_only(sandbox_root: Path) -> None:
    """The harness really denies writes outside the unit's directories (else the tests below
    would prove nothing)."""
    sandbox = write_unit(sandbox_root)
    probe = (
        "touch /var/lib/azfed-probe 2>&1; touch /etc/azfed-probe 2>&1; "
        f"touch {REPO}/azfed-probe 2>&1; ls -d $HOME 2>&1; "
        'touch "$RUNTIME_DIRECTORY/ok" "$CACHE_DIRECTORY/ok" /tmp/ok && id -u'
    )
    done = sandbox.run("/bin/sh", ["-c", probe])
    lines = done.stdout.splitlines()
    for path in ("/var/lib", "/etc"):
        assert f"touch: cannot touch '{path}/azfed-probe': Read-only file system" in lines, lines
    # The checkout is read-only, or hidden by PrivateTmp when it lives under /tmp.
    denied = ("Read-only file system", "No such file or directory")
    repo = f"touch: cannot touch '{REPO}/azfed-probe': "
    assert any(line.startswith(repo) and line.endswith(denied) for line in lines), lines
    assert "/nonexistent" in done.stdout and "No such file" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == str(sandbox.uid)
    assert (sandbox.runtime_directory / "ok").stat().st_uid == sandbox.uid


def test_noop_write_as_a_homeless_user_unpacks_nothing(pyz: Path, sandbox_root: Path) -> None:
    program = installed(pyz, sandbox_root)
    sandbox = write_unit(sandbox_root)
    env = unit_env(sandbox)
    token_file = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
    token = make_jwt()
    token_file.write_text(token)
    os.chown(token_file, sandbox.uid, sandbox.gid)
    token_file.chmod(0o640)  # AZFED_MODE in azfed-helper.env
    done = sandbox.run(program, extra_env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert token_file.read_text() == token
    assert list(sandbox.cache_directory.iterdir()) == []


def test_write_fetches_as_a_homeless_user(pyz: Path, sandbox_root: Path, emulator: Any) -> None:
    program = installed(pyz, sandbox_root)
    sandbox = write_unit(sandbox_root)
    env = unit_env(sandbox, emulator)
    ours = sandbox.cache_directory / f"azfed-helper-pyz-{sandbox.uid}"
    # Unfinished extractions of processes that died (2 hours ago) and of one running now.
    dead, running = ours / ".old.x.tmp", ours / ".new.y.tmp"
    for path in (ours, dead, running):
        path.mkdir(mode=0o700)
        os.chown(path, sandbox.uid, sandbox.gid)
    os.utime(dead, (time.time() - 7200, time.time() - 7200))
    done = sandbox.run(program, extra_env=env)
    assert done.returncode == 0, done.stderr
    assert not dead.exists()
    running.rmdir()
    token_file = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
    status = token_file.stat()
    assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (sandbox.uid, 0o640)
    assert idtoken.decode(token_file.read_text()).claims["sub"] == emulator.service_account_id
    (unpacked,) = ours.iterdir()
    for path in (ours, unpacked):
        status = path.lstat()
        assert stat.S_ISDIR(status.st_mode)
        assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (sandbox.uid, 0o700)
    assert (unpacked / "cryptography").is_dir()
    inode = unpacked.stat().st_ino
    again = sandbox.run(program, args=["write", "--force", "--quiet"], extra_env=env)
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_ino for p in ours.iterdir()] == [inode]  # reused, not unpacked again
    assert emulator.counts["metadata.identity"] == 2


def test_daemon_fetches_in_its_child(pyz: Path, sandbox_root: Path, emulator: Any) -> None:
    """azfed-helper.service: the daemon's fetch runs in a child process, which must find the
    archive's heavy dependencies too (sitecustomize in the archive)."""
    program = installed(pyz, sandbox_root)
    sandbox = write_unit(sandbox_root, "azfed-helper.service")
    env = unit_env(sandbox, emulator)
    token_file = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
    err = sandbox.run_until_written(token_file, program, extra_env=env)
    assert "Traceback" not in err
    assert idtoken.decode(token_file.read_text()).claims["sub"] == emulator.service_account_id


def test_without_a_directory_to_unpack_into(pyz: Path, sandbox_root: Path, emulator: Any) -> None:
    program = installed(pyz, sandbox_root)
    sandbox = write_unit(sandbox_root)
    env = unit_env(sandbox, emulator) | {"CACHE_DIRECTORY": ""}
    done = sandbox.run(program, extra_env=env)
    assert_one_error(done, "no directory to unpack", "AZFED_PYZ_CACHE")
    assert not Path(env["AZURE_FEDERATED_TOKEN_FILE"]).exists()


@pytest.mark.parametrize(
    ("shared_mode", "planted", "phrase"),
    [
        (0o777, None, "other users may write to it"),
        (0o1777, "directory", "it must belong to uid"),
        (0o1777, "symlink", "refusing to use"),
        (0o1777, None, None),
    ],
    ids=["world-writable", "planted-directory", "planted-symlink", "sticky"],
)
def test_unpacking_in_a_shared_directory(
    pyz: Path,
    sandbox_root: Path,
    emulator: Any,
    shared_mode: int,
    planted: str | None,
    phrase: str | None,
) -> None:
    """AZFED_PYZ_CACHE in a directory other users can write to: another user must not be able
    to plant what we import."""
    program = installed(pyz, sandbox_root)
    sandbox = write_unit(sandbox_root)
    shared = sandbox.runtime_directory / "shared"
    shared.mkdir()
    shared.chmod(shared_mode)
    attacker = free_id(sandbox.uid + 1)
    ours = shared / f"azfed-helper-pyz-{sandbox.uid}"
    if planted == "directory":
        ours.mkdir(mode=0o777)
        os.chown(ours, attacker, attacker)
    elif planted == "symlink":
        decoy = shared / "decoy"
        decoy.mkdir(mode=0o777)
        os.chown(decoy, attacker, attacker)
        ours.symlink_to(decoy)
        os.lchown(ours, attacker, attacker)
    env = unit_env(sandbox, emulator) | {"AZFED_PYZ_CACHE": str(shared)}
    done = sandbox.run(program, extra_env=env)
    if phrase is None:
        assert done.returncode == 0, done.stderr
        status = ours.lstat()
        assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (sandbox.uid, 0o700)
    else:
        assert_one_error(done, phrase, str(shared))
        assert not [p for p in shared.rglob("*") if p.name not in (ours.name, "decoy")]
