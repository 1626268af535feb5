"""Run a command the way one of our systemd units runs it, without systemd (tests run as root in CI,
where no systemd is running).

The unit's ``[Service]`` section decides: ``User``/``Group``, ``RuntimeDirectory``/
``CacheDirectory`` (and their modes), ``Environment``, ``EnvironmentFile`` and ``ExecStart``, with
``%i``, ``%t`` and ``%C`` expanded. The command runs in a new mount namespace (``unshare --mount``)
in which every mount is remounted read-only except those two directories, bound writable, and
``/tmp`` is a fresh tmpfs: what ``ProtectSystem=strict``, ``ProtectHome`` and ``PrivateTmp`` give
a service. It then drops to the unit's user with ``setpriv`` (no capabilities, no new privileges),
``HOME=/nonexistent``, cwd ``/``.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# Runs as root inside the new mount namespace, then becomes the unit's user (argv[1] is JSON).
_INNER = r"""
import json, os, subprocess, sys
config = json.loads(sys.argv[1])
def mount(*args):
    subprocess.run(["mount", *args], check=True)
for path in config["writable"]:
    mount("--bind", path, path)
points = sorted({line.split()[4] for line in open("/proc/self/mountinfo")}, key=len)
for point in points:
    if point in config["writable"] or point.startswith(("/proc", "/sys", "/dev")):
        continue
    done = subprocess.run(["mount", "-o", "remount,bind,ro", point], capture_output=True)
    if done.returncode and point == "/":
        sys.exit("cannot make / read-only: " + done.stderr.decode())
for private in ("/tmp", "/var/tmp"):
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmpfs", private)
os.chdir("/")
os.execve(config["setpriv"], config["setpriv_argv"] + config["argv"], config["env"])
"""

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def unavailable() -> str | None:
    """Why units cannot be emulated here (a skip reason), or None."""
    if os.geteuid() != 0:
        return "needs root (setpriv to another user, unshare --mount); CI runs as root"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.strip()}"
    return None


def service_section(path: Path) -> dict[str, list[str]]:
    """``[Service]`` keys, each with every value it was given (Environment= repeats)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def environment_file(path: Path) -> dict[str, str]:
    variables = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            variables[name] = value
    return variables


class UnitSandbox:
    """One service unit's execution context. ``runtime_root``/``cache_root`` stand for /run and
    /var/cache (``%t``, ``%C``); ``uid``/``gid`` default to the unit's user; ``files`` maps a path
    the unit names (an EnvironmentFile) to the file to read in its place."""

    def __init__(
        self,
        unit: Path,
        instance: str = "",
        runtime_root: str = "/run",
        cache_root: str = "/var/cache",
        uid: int | None = None,
        gid: int | None = None,
        files: dict[str, Path] | None = None,
    ) -> None:
        self.service = service_section(unit)
        self.files = files or {}
        self.instance = instance
        self.runtime_root, self.cache_root = runtime_root, cache_root
        for root in (runtime_root, cache_root):
            # PrivateTmp hides /tmp, so a root there would vanish from the service's view.
            assert not root.startswith(("/tmp/", "/var/tmp/")), root
        user = self.one("User")
        if uid is None:
            entry = pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        self.uid, self.gid = uid, gid if gid is not None else uid
        self.named_user = _name_of(uid) == user

    def one(self, key: str) -> str:
        return self.expand(self.service[key][-1])

    def expand(self, text: str) -> str:
        for specifier, value in (
            ("%i", self.instance),
            ("%t", self.runtime_root),
            ("%C", self.cache_root),
        ):
            text = text.replace(specifier, value)
        return text

    @property
    def runtime_directory(self) -> Path:
        return Path(self.runtime_root, self.one("RuntimeDirectory"))

    @property
    def cache_directory(self) -> Path:
        return Path(self.cache_root, self.one("CacheDirectory"))

    def prepare(self) -> None:
        """Create the unit's directories as systemd does: parents root-owned 0755, the directory
        itself the user's, with the unit's mode."""
        for directory, mode_key in (
            (self.runtime_directory, "RuntimeDirectoryMode"),
            (self.cache_directory, "CacheDirectoryMode"),
        ):
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
            os.chown(directory, self.uid, self.gid)
            directory.chmod(int(self.one(mode_key), 8))

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """systemd's variables, then Environment=, then EnvironmentFile=, then ``extra``."""
        env = {
            "PATH": SYSTEMD_PATH,
            "HOME": "/nonexistent",
            "LANG": "C.UTF-8",
            "RUNTIME_DIRECTORY": str(self.runtime_directory),
            "CACHE_DIRECTORY": str(self.cache_directory),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        for assignment in self.service.get("Environment", []):
            name, _, value = self.expand(assignment).partition("=")
            env[name] = value
        for name in self.service.get("EnvironmentFile", []):
            named = self.expand(name).lstrip("-")
            path = self.files.get(named, Path(named))
            if path.exists() or not name.startswith("-"):
                env.update(environment_file(path))
        env.update(extra or {})
        return env

    def command(
        self,
        executable: str | None = None,
        args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> list[str]:
        """``ExecStart`` (its program replaced by ``executable``, its arguments by ``args`` when
        given), wrapped to run as the unit would."""
        argv = shlex.split(self.one("ExecStart"))
        if executable:
            argv[0] = executable
        if args is not None:
            argv[1:] = args
        groups = "--init-groups" if self.named_user else "--clear-groups"
        config: dict[str, Any] = {
            "writable": [str(self.runtime_directory), str(self.cache_directory)],
            "setpriv": shutil.which("setpriv"),
            "setpriv_argv": [
                "setpriv",
                f"--reuid={self.uid}",
                f"--regid={self.gid}",
                groups,
                "--no-new-privs",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
            ],
            "argv": argv,
            "env": self.environment(extra_env),
        }
        inner = [sys.executable, "-I", "-c", _INNER, json.dumps(config)]
        return ["unshare", "--mount", "--propagation", "private", "--", *inner]

    def run(
        self,
        executable: str | None = None,
        args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(executable, args, extra_env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def run_until_written(
        self,
        token_file: Path,
        executable: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> str:
        """Start the unit's long-running command, stop it (SIGTERM, as systemd does) once
        ``token_file`` exists, and return its stderr; it must have written and exited 0."""
        daemon = subprocess.Popen(
            self.command(executable, extra_env=extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not token_file.exists() and daemon.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=30)
        assert token_file.exists(), err
        assert daemon.returncode == 0, err
        return err


def _name_of(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
