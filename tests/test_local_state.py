"""State that is not ours is refused, not trusted (issue 10 §2, §3; issue 11 §5).

A local attacker is another user on the host who can write shared places. Each test plants what
they could (a token cache, a token file, a symbolic link, a FIFO, a lock link) and shows that the
command refuses it, replaces it, or ignores it, instead of handing out the attacker's token. The
tests that need a second user run as root (``nobody`` plays the attacker) and are skipped otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import grp
import json
import os
import pwd
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfed_helper._internal import idtoken, tokenfile, tokenwriter
from azfed_helper._internal.config import resolve
from azfed_helper._internal.doctor import Doctor
from azfed_helper._internal.entra import cache
from azfed_helper._internal.entra.provider import TokenProvider
from azfed_helper._internal.errors import UsageError

from .conftest import REPO, cli_env, make_jwt, run_cli
from .test_daemon_cli import Daemon

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root to play a second user")
NOBODY = pwd.getpwnam("nobody").pw_uid if ROOT else -1
SCOPE = "https://management.azure.com/.default"
STORAGE = "https://storage.azure.com/.default"
RESOURCE = ("--resource", "https://management.azure.com")
ATTACKER_TOKEN = "ATTACKER-CHOSEN-ACCESS-TOKEN"


def planted_cache(directory: Path, client: str, tenant: str, host: str) -> Path:
    """An MSAL token cache holding the attacker's access token for our app and scope."""
    now = int(time.time())
    entry = {
        "credential_type": "AccessToken",
        "secret": ATTACKER_TOKEN,
        "home_account_id": None,
        "environment": cache.environment_of(host),
        "client_id": client,
        "realm": tenant,
        "target": SCOPE,
        "token_type": "Bearer",
        "cached_at": str(now),
        "expires_on": str(now + 3600),
    }
    path = directory / cache.TOKEN_CACHE
    path.write_text(json.dumps({"AccessToken": {"planted": entry}}))
    return path


def chown(path: Path, uid: int) -> None:
    os.chown(path, uid, -1, follow_symlinks=False)


# How the attacker's cache gets there: (description, set-up of the cache dir; needs root)
PLANTS = {
    "directory others may write": (lambda d, f: d.chmod(0o777), False),
    "directory group may write": (lambda d, f: d.chmod(0o770), False),
    "file others may write": (lambda d, f: f.chmod(0o666), False),
    "directory of another user": (lambda d, f: chown(d, NOBODY), True),
    "file of another user": (lambda d, f: chown(f, NOBODY), True),
}


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    return directory


@pytest.mark.parametrize("how", sorted(PLANTS))
def test_planted_token_cache_is_refused_on_the_fast_and_locked_paths(
    emulator: Any, cache_dir: Path, how: str
) -> None:
    plant, root_only = PLANTS[how]
    if root_only and not ROOT:
        pytest.skip("needs root to play a second user")
    planted = planted_cache(
        cache_dir, emulator.client_id, emulator.tenant_id, emulator.authority_host
    )
    plant(cache_dir, planted)
    before = planted.read_bytes()
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(cache_dir)}
    # The lock-free fast path (simple arguments) and then the full path: both refuse.
    done = run_cli("token", *RESOURCE, env=env)
    assert ATTACKER_TOKEN not in done.stdout
    assert done.returncode == 2, done.stdout + done.stderr
    message, hint = done.stderr.splitlines()
    assert message.startswith("azfed-helper: error: cache ")
    bad = cache_dir if "directory" in how else planted
    info = bad.stat()
    assert f"{bad} " in message
    assert f"mode {stat.S_IMODE(info.st_mode):04o}" in message
    assert f"owner {pwd.getpwuid(info.st_uid).pw_name} (uid {info.st_uid})" in message
    assert hint.startswith("  hint: ") and "--cache-dir" in hint
    assert (f"chmod 700 {cache_dir}" in hint) == (how.startswith("directory") and not root_only)
    # The token provider (what the credential and serve use) refuses too.
    settings = resolve(argparse.Namespace(cache_dir=str(cache_dir)), env)
    provider = TokenProvider(settings)
    try:
        with pytest.raises(UsageError, match="refusing to trust what it holds"):
            provider.get([SCOPE])
    finally:
        provider.close()
    assert planted.read_bytes() == before
    assert emulator.counts["entra.token"] == 0


def test_planted_cache_makes_the_credential_raise(
    emulator: Any, emulator_env: dict[str, str], cache_dir: Path
) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from azfed_helper import GoogleFederatedCredential

    planted_cache(cache_dir, emulator.client_id, emulator.tenant_id, emulator.authority_host)
    cache_dir.chmod(0o777)
    expected = f"cache directory {cache_dir} is not"
    with (
        GoogleFederatedCredential(cache_dir=str(cache_dir)) as credential,
        pytest.raises(ClientAuthenticationError, match=expected),
    ):
        credential.get_token(SCOPE)


def test_planted_discovery_answers_are_refused(emulator: Any, cache_dir: Path) -> None:
    """A discovery answer others could write would send our client assertion elsewhere."""
    planted = cache_dir / cache.HTTP_CACHE
    planted.write_text("[]")
    planted.chmod(0o622)
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(cache_dir)}
    done = run_cli("token", *RESOURCE, env=env)
    assert done.returncode == 2, done.stderr
    assert f"cache file {planted} is not private to this user" in done.stderr
    assert f"rm {planted}" in done.stderr
    assert emulator.counts["entra.token"] == 0


def test_cache_file_that_is_a_link_or_fifo_is_refused(emulator: Any, cache_dir: Path) -> None:
    elsewhere = cache_dir.parent / "elsewhere.json"
    planted_cache(cache_dir, emulator.client_id, emulator.tenant_id, emulator.authority_host)
    (cache_dir / cache.TOKEN_CACHE).rename(elsewhere)
    (cache_dir / cache.TOKEN_CACHE).symlink_to(elsewhere)
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(cache_dir)}
    done = run_cli("token", *RESOURCE, env=env)
    assert done.returncode == 2 and ATTACKER_TOKEN not in done.stdout
    assert "is a symbolic link, not a regular file" in done.stderr
    (cache_dir / cache.TOKEN_CACHE).unlink()
    os.mkfifo(cache_dir / cache.TOKEN_CACHE, 0o600)
    done = run_cli("token", *RESOURCE, env=env, timeout=30)  # never waits on the FIFO
    assert done.returncode == 2
    assert "is a FIFO, not a regular file" in done.stderr


def test_our_own_private_cache_still_hits(emulator: Any, cache_dir: Path) -> None:
    """The check does not cost the cache its purpose: a second run is a hit, no exchange."""
    env = {**emulator.env(), "AZFED_CACHE_DIR": str(cache_dir)}
    first = run_cli("token", *RESOURCE, env=env)
    assert first.returncode == 0, first.stderr
    assert run_cli("token", *RESOURCE, env=env).stdout == first.stdout
    assert emulator.counts["entra.token"] == 1
    assert stat.S_IMODE((cache_dir / cache.TOKEN_CACHE).stat().st_mode) == 0o600


# -- a cache directory that cannot be created or written: keep working in memory -------------


def read_only_prefix(directory: Path) -> list[str]:
    """A command prefix under which ``directory`` is read-only, even for root."""
    if not ROOT:
        for inner in sorted(directory.rglob("*"), reverse=True):  # the deepest first
            inner.chmod(0o500)
        directory.chmod(0o500)
        return []
    probe = subprocess.run(
        ["unshare", "-m", "true"], capture_output=True, text=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip("cannot make a read-only mount here (unshare -m failed)")
    script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(directory)]


def warnings_in(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("azfed-helper: warning:")]


@pytest.mark.parametrize("existing", [False, True], ids=["cannot-create", "read-only"])
def test_token_with_a_read_only_home_works_in_memory(
    emulator: Any, tmp_path: Path, existing: bool
) -> None:
    home = tmp_path / "ro-home"
    home.mkdir()
    if existing:
        (home / ".cache" / "azfed-helper").mkdir(parents=True, mode=0o700)
    prefix = read_only_prefix(home)
    command = [*prefix, sys.executable, "-m", "azfed_helper", "token", *RESOURCE]
    env = cli_env({**emulator.env(), "HOME": str(home)})
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(".") == 2  # a JWT access token
    (warning,) = warnings_in(done.stderr)
    assert str(home / ".cache" / "azfed-helper") in warning and "in memory" in warning
    assert "Traceback" not in done.stderr


CREDENTIAL_SCRIPT = """
import asyncio, sys
from azfed_helper import GoogleFederatedCredential
from azfed_helper.aio import GoogleFederatedCredential as AsyncCredential

management, storage = sys.argv[1:]
with GoogleFederatedCredential() as credential:
    first = credential.get_token(management).token
    assert credential.get_token(management).token == first  # from memory
    credential.get_token(storage)
with GoogleFederatedCredential() as another:  # a second credential in the same process
    another.get_token(management)

async def main():
    async with AsyncCredential() as credential:
        return (await credential.get_token(storage)).token

print(first.count("."), asyncio.run(main()).count("."))
"""


def test_credentials_with_a_read_only_home_work_in_memory(emulator: Any, tmp_path: Path) -> None:
    home = tmp_path / "ro-home"
    home.mkdir()
    prefix = read_only_prefix(home)
    env = cli_env({**emulator.env(), "HOME": str(home)})
    done = subprocess.run(
        [*prefix, sys.executable, "-c", CREDENTIAL_SCRIPT, SCOPE, STORAGE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "2"]  # two JWT access tokens
    assert emulator.counts["entra.token"] == 4  # in memory: nothing shared between credentials
    (warning,) = warnings_in(done.stderr)  # one for the whole process, sync and async
    assert "keeping tokens in memory only" in warning


def test_cache_dir_others_may_write_is_refused_not_degraded(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o707)
    with pytest.raises(UsageError, match="is not private to this user"):
        cache.prepare_dir(str(shared))
    (tmp_path / "a-file").write_text("")
    reason = cache.prepare_dir(str(tmp_path / "a-file" / "cache"))
    assert reason is not None and reason.startswith("cannot create the cache directory")


# -- the token file ----------------------------------------------------------------------------


def write(emulator: Any, token_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("write", "--token-file", str(token_file), *args, env=emulator.env())


def attacker_token() -> str:
    """A fresh, well-formed Google ID token for someone else's identity."""
    return make_jwt(sub="999999999999999999999", email="attacker@evil.example")


def sub_of(path: Path) -> object:
    return idtoken.decode(path.read_text()).claims["sub"]


@needs_root
def test_token_file_of_another_user_is_replaced_not_kept(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(attacker_token())
    chown(token_file, NOBODY)
    done = write(emulator, token_file)
    assert done.returncode == 0, done.stderr
    assert sub_of(token_file) == emulator.service_account_id
    assert token_file.stat().st_uid == os.geteuid()


def test_token_file_that_is_a_link_is_replaced_never_followed(
    emulator: Any, tmp_path: Path
) -> None:
    target = tmp_path / "attackers-file"
    target.write_text(attacker_token())
    token_file = tmp_path / "token"
    token_file.symlink_to(target)
    done = write(emulator, token_file)
    assert done.returncode == 0, done.stderr
    assert not token_file.is_symlink()
    assert sub_of(token_file) == emulator.service_account_id
    assert sub_of(target) == "999999999999999999999"  # never written through


def test_token_file_that_is_a_fifo_never_hangs(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    os.mkfifo(token_file, 0o600)
    status = run_cli("status", "--token-file", str(token_file), timeout=30)
    assert status.returncode == 1
    assert f"token file {token_file} is a FIFO, not a regular file" in status.stdout
    done = run_cli("write", "--token-file", str(token_file), env=emulator.env(), timeout=30)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISREG(token_file.lstat().st_mode)
    assert tokenfile.read(str(token_file)) is not None


@needs_root
def test_token_directory_of_another_user_is_refused(emulator: Any, tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o755)
    chown(directory, NOBODY)
    done = write(emulator, directory / "token")
    assert done.returncode == 2
    message, hint = done.stderr.splitlines()
    assert f"directory {directory} for the token file belongs to another user" in message
    assert "owner nobody" in message and "mode 0755" in message
    assert "hint: keep the token file in a directory owned by this user or root" in hint
    assert emulator.counts["metadata.identity"] == 0
    assert not (directory / "token").exists()


def test_shared_writable_directory_works_with_one_warning(emulator: Any, tmp_path: Path) -> None:
    """A Kubernetes emptyDir is 0777, root-owned and not sticky: it must keep working."""
    directory = tmp_path / "emptydir"
    directory.mkdir()
    directory.chmod(0o777)
    token_file = directory / "token"
    assert write(emulator, token_file).returncode == 0
    warning = tokenfile.directory_warning(str(token_file))
    assert warning is not None and "can be written by other users" in warning
    assert "mode 0777" in warning
    directory.chmod(0o1777)  # sticky: others cannot replace our file
    assert tokenfile.directory_warning(str(token_file)) is None
    directory.chmod(0o777)
    # doctor says it once, as a detail of the token-file check, which passes
    doctor = Doctor(resolve(argparse.Namespace(token_file=str(token_file))), [], [SCOPE])
    doctor.token = idtoken.decode(token_file.read_text())
    check = doctor.token_file()
    assert check.status == "pass"
    assert [d for d in check.details if d.startswith("warning:")] == [f"warning: {warning}"]


def test_daemon_warns_once_at_start_about_a_shared_directory(emulator: Any, tmp_path: Path) -> None:
    directory = tmp_path / "emptydir"
    directory.mkdir()
    directory.chmod(0o777)
    done = run_cli("daemon", "--once", "--token-file", str(directory / "token"), env=emulator.env())
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # --once is `write`, which timers run: it stays quiet
    daemon = Daemon(emulator, "--token-file", str(directory / "token"))
    try:
        daemon.wait_event("kept", "refreshed")
    finally:
        daemon.close()
    warnings = [r for r in daemon.seen if r["event"] == "shared_directory"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert "can be written by other users" in warnings[0]["message"]


@pytest.fixture
def sticky_dir() -> Iterator[Path]:
    """A /tmp-like directory (1777) outside pytest's private tree, so `nobody` can reach it
    (and its sibling ``<name>-pyz``, when a test makes one)."""
    directory = Path(tempfile.mkdtemp(prefix="azfed-sticky-"))
    directory.chmod(0o1777)
    yield directory
    for path in (directory, directory.with_name(directory.name + "-pyz")):
        subprocess.run(["rm", "-rf", str(path)], check=False)


def pyz_for_nobody(directory: Path) -> Path:
    """A copy of the test .pyz that any user can run (its header starts the interpreter it was
    built for), in ``directory`` (made 1777, like /tmp)."""
    from . import dist_artefacts

    built = dist_artefacts.pyz()
    directory.mkdir(mode=0o755)
    directory.chmod(0o1777)
    copy = directory / built.name
    copy.write_bytes(built.read_bytes())
    copy.chmod(0o755)
    return copy


@needs_root
def test_another_users_file_in_a_sticky_directory_is_a_clear_error(
    emulator: Any, sticky_dir: Path
) -> None:
    """As a non-root writer, a planted file it may not replace is an error, not trusted."""
    token_file = sticky_dir / "token"
    token_file.write_text(attacker_token())  # planted by root, here "another user"
    token_file.chmod(0o644)
    before = token_file.read_bytes()
    env = {**cli_env(emulator.env()), "HOME": str(sticky_dir)}
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    program = [sys.executable, "-m", "azfed_helper"]
    reach = [*as_nobody, sys.executable, "-c", "import azfed_helper._internal.cli, filelock"]
    if subprocess.run(reach, env=env, capture_output=True, timeout=60, check=False).returncode:
        # The checkout is private (CI clones under a 0700 directory): nobody runs a copy of
        # the single-file build instead, which unpacks its heavy part into a place of its own.
        copy = pyz_for_nobody(sticky_dir.with_name(sticky_dir.name + "-pyz"))
        program = [str(copy)]
        env["AZFED_PYZ_CACHE"] = str(copy.parent)
    done = subprocess.run(
        [*as_nobody, *program, "write", "--token-file", str(token_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    message, hint = done.stderr.splitlines()
    assert f"cannot replace {token_file}" in message and "sticky" in message
    assert hint.startswith("  hint: remove that file as its owner or root")
    assert token_file.read_bytes() == before
    assert sorted(p.name for p in sticky_dir.iterdir()) == [".token.lock", "token"]  # no temp


# -- lock files and temporary files ---------------------------------------------------------


def test_lock_file_link_is_never_followed(emulator: Any, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    token_file = tmp_path / "token"
    (tmp_path / ".token.lock").symlink_to(victim)
    done = write(emulator, token_file)
    assert done.returncode == 2
    message, hint = done.stderr.splitlines()
    assert f"cannot take the token file lock {tmp_path / '.token.lock'}" in message
    assert "symbolic link, which is never followed" in hint
    assert victim.read_text() == "precious"
    assert not token_file.exists()


def test_stale_temp_files_of_a_killed_writer_are_removed(emulator: Any, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    old = time.time() - 120
    stale = tmp_path / ".token.4242.0123abcd.tmp"  # a SIGKILLed writer's whole token
    young = tmp_path / ".token.4243.0123abce.tmp"  # a writer still at work
    other = tmp_path / ".cache.json.4244.deadbeef.tmp"  # another of our files: same rule
    unlike = tmp_path / ".token.tmp"  # not our pattern
    link = tmp_path / ".token.4245.0123abcf.tmp"
    for path in (stale, young, other, unlike):
        path.write_text(make_jwt())
    link.symlink_to(unlike)
    for path in (stale, other, unlike):
        os.utime(path, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    assert write(emulator, token_file).returncode == 0
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == sorted([young.name, unlike.name, link.name, ".token.lock"])


@needs_root
def test_stale_temp_files_of_another_user_are_left_alone(emulator: Any, tmp_path: Path) -> None:
    theirs = tmp_path / ".token.4242.0123abcd.tmp"
    theirs.write_text("x")
    chown(theirs, NOBODY)
    os.utime(theirs, (time.time() - 120,) * 2)
    assert write(emulator, tmp_path / "token").returncode == 0
    assert theirs.exists()


# -- consumers that refresh a shared file keep its readers (§3) ----------------------------


def readers_group() -> int:
    """A group other than ours that this process may give files (any, as root)."""
    if ROOT:
        return grp.getgrnam("nogroup").gr_gid if _has_group("nogroup") else 65534
    others = [g for g in os.getgroups() if g != os.getegid()]
    if not others:
        pytest.skip("needs a second group")
    return others[0]


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def stale_shared_file(tmp_path: Path, gid: int) -> Path:
    """A 0640 file for a group of readers, holding a token that is due for refresh."""
    token_file = tmp_path / "token"
    tokenwriter.write_atomic(str(token_file), b"x")
    token_file.write_text(make_jwt(iat=int(time.time()) - 3500, exp=int(time.time()) + 100))
    token_file.chmod(0o640)
    os.chown(token_file, -1, gid)
    return token_file


def test_token_refreshing_a_shared_file_keeps_its_mode_and_group(
    emulator: Any, tmp_path: Path
) -> None:
    gid = readers_group()
    token_file = stale_shared_file(tmp_path, gid)
    env = {
        **emulator.env(),
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZFED_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = run_cli("token", *RESOURCE, env=env)
    assert done.returncode == 0, done.stderr
    assert sub_of(token_file) == emulator.service_account_id  # refreshed
    info = token_file.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o640, gid)
    # --mode given explicitly (here by its variable) is applied instead.
    token_file = stale_shared_file(tmp_path, gid)
    done = run_cli("token", "--scope", STORAGE, env={**env, "AZFED_MODE": "0600"})
    assert done.returncode == 0, done.stderr
    info = token_file.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o600, gid)


def test_credential_refreshing_a_shared_file_keeps_its_mode_and_group(
    emulator: Any, emulator_env: dict[str, str], tmp_path: Path
) -> None:
    from azfed_helper import GoogleFederatedCredential

    gid = readers_group()
    token_file = stale_shared_file(tmp_path, gid)
    with GoogleFederatedCredential(
        token_file=str(token_file), cache_dir=str(tmp_path / "cache")
    ) as credential:
        credential.get_token(SCOPE)

    async def with_async() -> None:
        from azfed_helper.aio import GoogleFederatedCredential as AsyncCredential

        async with AsyncCredential(token_file=str(token_file), persistent_cache=False) as cred:
            await cred.get_token(SCOPE)

    asyncio.run(with_async())
    assert sub_of(token_file) == emulator.service_account_id
    info = token_file.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o640, gid)


def test_the_package_requires_a_filelock_that_refuses_links() -> None:
    """filelock before 3.20.1 truncated the target of a link planted at the lock path."""
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with open(REPO / "pyproject.toml", "rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    (required,) = [Requirement(d) for d in dependencies if d.startswith("filelock")]
    assert not required.specifier.contains("3.20.0")
    assert required.specifier.contains("3.20.1")
    assert Version(version("filelock")) >= Version("3.20.1")


def test_group_past_the_platform_limit_leaves_no_temp_file(emulator: Any, tmp_path: Path) -> None:
    """fchown raised OverflowError, which the writer did not clean up after: a token stayed."""
    token_file = tmp_path / "run" / "token"
    token_file.parent.mkdir()
    done = write(emulator, token_file, "--group", str(2**40))
    assert done.returncode == 2, done.stderr
    assert "group id 1099511627776 is out of range" in done.stderr
    assert emulator.counts["metadata.identity"] == 0  # refused before any work
    with pytest.raises(OverflowError):  # and the writer itself never leaves its temp file
        tokenwriter.write_atomic(str(token_file), make_jwt().encode(), 0o600, 2**40)
    assert list(token_file.parent.iterdir()) == []


@needs_root
def test_a_consumer_reads_a_fresh_file_another_user_keeps_without_rewriting_it(
    emulator: Any, tmp_path: Path
) -> None:
    """A sidecar (here `nobody`) keeps a 0640 file fresh for a group of readers in a shared
    volume; our credential in the app container uses it and leaves it exactly as it is."""
    volume = tmp_path / "emptydir"
    volume.mkdir()
    volume.chmod(0o777)
    token_file = volume / "token"
    token_file.write_text(emulator.mint_google_id_token())
    token_file.chmod(0o640)
    os.chown(token_file, NOBODY, 0)
    before = (token_file.read_bytes(), token_file.stat().st_ino)
    env = {
        **emulator.env(),
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZFED_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = run_cli("token", *RESOURCE, env=env)
    assert done.returncode == 0, done.stderr
    assert (token_file.read_bytes(), token_file.stat().st_ino) == before
    assert emulator.counts["metadata.identity"] == 0  # the sidecar's token was presented
    assert emulator.counts["entra.token"] == 1
