"""The Debian package (packaging/debian/): its metadata and files, lintian, and, as root where dpkg
runs (CI: root on Debian, no systemd running), install -> run as the package's system user under
its units against the emulator -> purge, which leaves nothing but the system user.

The package is built once by ./scripts/test (tests/dist_artefacts.py). Tests that install it hold
a machine-wide lock, so test runs of several checkouts on one machine take turns.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azfed_helper import __version__
from azfed_helper._internal import idtoken

from . import dist_artefacts
from .unit_sandbox import UnitSandbox, service_section, unavailable

PACKAGE = "azfed-helper"
USER = "azfed-helper"
UNIT_DIR = Path("/usr/lib/systemd/system")
LOCK = "/run/lock/azfed-helper-deb-test.lock"
CONFIG = Path("/etc/azfed-helper/config.toml")
EXPECTED_FILES = {
    "/etc/azfed-helper/azfed-helper.env",
    "/usr/bin/azfed-helper",
    "/usr/lib/systemd/system/azfed-helper-write.service",
    "/usr/lib/systemd/system/azfed-helper-write.timer",
    "/usr/lib/systemd/system/azfed-helper-write@.service",
    "/usr/lib/systemd/system/azfed-helper-write@.timer",
    "/usr/lib/systemd/system/azfed-helper.service",
    "/usr/lib/systemd/system/azfed-helper@.service",
    "/usr/lib/sysusers.d/azfed-helper.conf",
    "/usr/share/python3/runtime.d/azfed-helper.rtupdate",
    "/usr/share/doc/azfed-helper/README.md",
    "/usr/share/man/man1/azfed-helper.1.gz",
    "/usr/share/doc/azfed-helper/changelog.gz",
    "/usr/share/doc/azfed-helper/copyright",
    "/usr/share/doc/azfed-helper/examples/config.toml",
    "/usr/share/lintian/overrides/azfed-helper",
}
DEPENDENCIES = ("python3", "python3-cryptography", "passwd")
LIB = "/usr/lib/azfed-helper/lib/"  # the program and its pure-Python libraries, as sources
# What useradd/sysusers leave next to the user database: part of "the system user".
USER_DATABASE = {"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-", "/etc/.pwd.lock"}


@pytest.fixture(scope="module")
def deb() -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    return dist_artefacts.deb()


def dpkg_deb(*args: str) -> str:
    return subprocess.run(
        ["dpkg-deb", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def files_of(deb: Path) -> set[str]:
    """Regular files and symlinks in the package (directories left out)."""
    paths = set()
    for line in dpkg_deb("--contents", str(deb)).splitlines():
        mode, path = line.split()[0], line.split()[5]
        if not mode.startswith("d"):
            paths.add(path.removeprefix("."))
    return paths


def test_control_fields(deb: Path) -> None:
    fields = dict(
        line.split(": ", 1)
        for line in dpkg_deb("--field", str(deb)).splitlines()
        if not line.startswith(" ")
    )
    assert fields["Package"] == PACKAGE
    assert fields["Version"] == __version__
    assert fields["Architecture"] == "all"  # no compiled code: cryptography is Debian's
    depends = fields["Depends"].split(", ")
    assert "python3 (>= 3.10)" in depends
    assert f"python3-cryptography (>= {google_auths_cryptography()})" in depends
    assert [d for d in depends if d.startswith("python3-cryptography (<< ")]  # msal's cap
    assert deb.name == f"{PACKAGE}_{__version__}_all.deb"


def google_auths_cryptography() -> str:
    """The least cryptography google-auth asks for on this Python (ours asks no more)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    for text in requires("google-auth") or []:
        requirement = Requirement(text)
        if requirement.name == "cryptography" and (
            requirement.marker is None or requirement.marker.evaluate({"extra": ""})
        ):
            return next(s.version for s in requirement.specifier if s.operator == ">=")
    raise AssertionError("google-auth no longer asks for cryptography")


def test_file_list_and_conffiles(deb: Path) -> None:
    files = files_of(deb)
    assert {path for path in files if not path.startswith(LIB)} == EXPECTED_FILES
    library = {path.removeprefix(LIB) for path in files if path.startswith(LIB)}
    for module in (
        "azfed_helper/__init__.py",
        "google/auth/__init__.py",
        "msal/__init__.py",
        "requests/__init__.py",
        "filelock/__init__.py",
        "tomli/__init__.py",
    ):
        assert module in library, module  # tomli: for Python 3.10, which has no tomllib
    assert not [path for path in library if path.endswith((".so", ".pyc"))]
    assert not [path for path in library if path.startswith(("cryptography", "cffi"))]
    with tempfile.TemporaryDirectory() as control:
        dpkg_deb("--control", str(deb), control)
        conffiles = Path(control, "conffiles").read_text().split()
        assert conffiles == ["/etc/azfed-helper/azfed-helper.env"]
        for script in ("postinst", "prerm", "postrm"):
            path = Path(control, script)
            assert path.stat().st_mode & 0o111
            checked = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
            assert checked.returncode == 0, checked.stderr


def test_units_point_at_what_the_package_ships(deb: Path) -> None:
    """Documentation= and the programs of every unit exist in the package."""
    files = files_of(deb)
    with tempfile.TemporaryDirectory() as root:
        dpkg_deb("--extract", str(deb), root)
        for unit in sorted(Path(root, "usr/lib/systemd/system").iterdir()):
            text = unit.read_text()
            documentation = next(
                line.split("=", 1)[1] for line in text.splitlines() if line.startswith("Doc")
            )
            for uri in documentation.split():
                if uri.startswith("man:"):  # man:NAME(SECTION)
                    name, section = uri.removeprefix("man:").rstrip(")").split("(")
                    assert f"/usr/share/man/man{section}/{name}.{section}.gz" in files, uri
                else:
                    assert uri.startswith("file:") and uri.removeprefix("file:") in files, uri
            if unit.suffix == ".service":
                program = service_section(unit)["ExecStart"][0].split()[0]
                assert program in files, program


def test_manual_page_covers_every_command(deb: Path) -> None:
    """azfed-helper(1) is argparse-manpage's rendering of the parser: every command and option
    of --help, and it renders without a groff warning."""
    import gzip

    from azfed_helper._internal.commands import COMMANDS
    from azfed_helper._internal.options import OPTIONS

    with tempfile.TemporaryDirectory() as root:
        dpkg_deb("--extract", str(deb), root)
        page = Path(root, "usr/share/man/man1/azfed-helper.1.gz")
        roff = gzip.decompress(page.read_bytes()).decode()
        assert roff.startswith('.TH AZFED\\-HELPER "1"')

        def roffed(text: str) -> str:
            return text.replace("-", "\\-")

        for name in COMMANDS:
            assert "\\fBazfed\\-helper\\fR \\fI\\," + roffed(name) in roff, name
        for option in OPTIONS:
            assert roffed(option.flag) in roff, option.flag
        if shutil.which("man"):
            shown = subprocess.run(
                ["man", "--warnings", "-l", str(page)],
                capture_output=True, text=True, env={**os.environ, "MANWIDTH": "100"},
                check=False,
            )  # fmt: skip
            assert shown.returncode == 0 and shown.stderr == "", shown.stderr
            assert "azfed-helper - Google ID tokens" in shown.stdout


def test_lintian_finds_no_errors(deb: Path) -> None:
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (.ci/run installs it)")
    done = subprocess.run(
        ["lintian", "--fail-on", "error", str(deb)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "E: " not in done.stdout


def footprint() -> set[str]:
    """Everything under /etc, and every path naming azfed under /usr, /var, /run, /opt, /srv
    (but the other tests' sandboxes and this test's lock)."""
    paths = set()
    for top in ("/etc", "/usr", "/var", "/run", "/opt", "/srv"):
        for directory, subdirectories, names in os.walk(top):
            if directory == "/run":
                subdirectories[:] = [d for d in subdirectories if "azfed-pyz-test-" not in d]
            for name in subdirectories + names:
                path = os.path.join(directory, name)
                if (top == "/etc" or "azfed" in path) and path != LOCK:
                    paths.add(path)
    return paths


def installed_status() -> str:
    return subprocess.run(
        ["dpkg-query", "--show", "--showformat=${Status}", PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


class Installation:
    """The package installed by this module, and the machine's state before."""

    def __init__(self, deb: Path) -> None:
        self.before = footprint()
        done = subprocess.run(
            ["dpkg", "--install", str(deb)], capture_output=True, text=True, timeout=100
        )
        assert done.returncode == 0, done.stdout + done.stderr
        self.output = done.stdout + done.stderr
        self.files = set(
            subprocess.run(
                ["dpkg-query", "--listfiles", PACKAGE], capture_output=True, text=True, check=True
            ).stdout.split()
        )

    def purge(self) -> subprocess.CompletedProcess[str]:
        CONFIG.unlink(missing_ok=True)  # the admin's file (the test's), not the package's
        return subprocess.run(
            ["dpkg", "--purge", PACKAGE], capture_output=True, text=True, timeout=100
        )


@pytest.fixture(scope="module")
def installation(deb: Path) -> Iterator[Installation]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg is not installed")
    for dependency in DEPENDENCIES:
        found = subprocess.run(["dpkg", "-s", dependency], capture_output=True, check=False)
        if found.returncode != 0:
            pytest.skip(f"the package's dependency {dependency} is not installed (.ci/run does it)")
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    with open(LOCK, "w") as lock:
        deadline = time.monotonic() + 90
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.skip(f"another test run holds {LOCK} (it is installing the package)")
                time.sleep(1)
        if "installed" in installed_status():
            pytest.skip(f"{PACKAGE} is installed on this machine; remove it (dpkg -P {PACKAGE})")
        installation = Installation(deb)
        try:
            yield installation
        finally:
            if installed_status():
                installation.purge()


def test_install_creates_the_user_and_starts_nothing(installation: Installation) -> None:
    assert installation.files >= EXPECTED_FILES
    user = pwd.getpwnam(USER)
    assert (user.pw_dir, user.pw_shell) == ("/nonexistent", "/usr/sbin/nologin")
    assert user.pw_uid < 1000  # a system user
    assert grp.getgrgid(user.pw_gid).gr_name == USER
    assert not Path("/nonexistent").exists()
    enabled = [p for p in Path("/etc/systemd/system").rglob("*azfed*")]
    assert enabled == []
    assert not Path("/run/azfed-helper").exists()
    assert not Path("/var/cache/azfed-helper").exists()
    done = subprocess.run(
        ["/usr/bin/azfed-helper", "--version"], capture_output=True, text=True, check=False
    )
    assert done.stdout.startswith(f"azfed-helper {__version__} from {LIB}"), done.stderr
    assert "missing" not in done.stdout  # google-auth's and msal's versions
    # postinst byte-compiled the sources for /usr/bin/python3, and the rtupdate hook does it
    # afresh when python3 changes version.
    bytecode = Path(LIB, "azfed_helper", "_internal", "__pycache__", f"cli.{cache_tag()}.pyc")
    assert bytecode.exists(), "no bytecode for /usr/bin/python3: postinst did not compile"
    stale = bytecode.with_name("cli.cpython-30.pyc")  # an older python3's
    stale.write_bytes(b"")
    hook = "/usr/share/python3/runtime.d/azfed-helper.rtupdate"
    updated = subprocess.run([hook, "rtupdate", "python3.0", "python3.1"], capture_output=True)
    assert updated.returncode == 0 and updated.stderr == b"", updated.stderr
    assert bytecode.exists() and not stale.exists()  # removed and written afresh


def cache_tag() -> str:
    return subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_only_cryptography_comes_from_the_distribution(installation: Installation) -> None:
    """/usr/bin/azfed-helper takes cryptography from dist-packages and nothing else there: a
    package the distribution happens to have (PyYAML, apt ...) is not importable by it."""
    program = Path("/usr/bin/azfed-helper").read_text().rstrip()
    assert program.endswith("sys.exit(main())")
    others = sorted(
        path.name
        for path in Path("/usr/lib/python3/dist-packages").iterdir()
        if path.is_dir() and (path / "__init__.py").exists()
        and path.name not in ("cryptography", "cffi")
        and not Path(LIB, path.name).exists()  # what we bundle is found in our copy
    )  # fmt: skip
    assert others, "nothing else in dist-packages to try"
    probe = (
        "import cryptography, google.oauth2.service_account, msal\n"
        "print(cryptography.__file__)\n"
        "import importlib.util\n"
        f"print([name for name in {others!r} if importlib.util.find_spec(name)])\n"
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-S", "-c", program.removesuffix("sys.exit(main())") + probe],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found, leaked = done.stdout.splitlines()
    assert found.startswith("/usr/lib/python3/dist-packages/cryptography/")
    assert leaked == "[]"


def metadata_server(emulator: Any) -> dict[str, str]:
    """The emulator as the metadata server, as a drop-in (systemctl edit) would set it."""
    return {k: v for k, v in emulator.env().items() if k.startswith("GCE_")}


def check_token(path: Path, emulator: Any, uid: int, mode: int) -> None:
    status = path.stat()
    assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (uid, mode)
    assert idtoken.decode(path.read_text()).claims["sub"] == emulator.service_account_id


def test_write_under_the_units_as_the_package_user(
    installation: Installation, emulator: Any
) -> None:
    """azfed-helper-write.service with the shipped env file, then azfed-helper-write@ci.service
    with a profile: /usr/bin/azfed-helper as `azfed-helper`, with a read-only root."""
    uid = pwd.getpwnam(USER).pw_uid
    sandbox = UnitSandbox(UNIT_DIR / "azfed-helper-write.service")
    sandbox.prepare()
    done = sandbox.run(extra_env=metadata_server(emulator))
    assert done.returncode == 0, done.stderr
    check_token(Path("/run/azfed-helper/token"), emulator, uid, 0o640)

    CONFIG.write_text('[profiles.ci]\nmode = "0640"\n')
    template = UnitSandbox(UNIT_DIR / "azfed-helper-write@.service", instance="ci")
    template.prepare()
    done = template.run(extra_env=metadata_server(emulator))
    assert done.returncode == 0, done.stderr
    token_file = Path("/run/azfed-helper/ci/token")
    check_token(token_file, emulator, uid, 0o640)
    written = token_file.stat().st_mtime_ns
    again = template.run(extra_env=metadata_server(emulator))
    assert again.returncode == 0, again.stderr
    assert token_file.stat().st_mtime_ns == written  # the timer's next run: a no-op
    assert emulator.counts["metadata.identity"] == 2


def test_daemon_template_as_the_package_user(installation: Installation, emulator: Any) -> None:
    CONFIG.write_text('[profiles.daemon]\nmode = "0600"\n')
    sandbox = UnitSandbox(UNIT_DIR / "azfed-helper@.service", instance="daemon")
    sandbox.prepare()
    token_file = Path("/run/azfed-helper/daemon/token")
    sandbox.run_until_written(token_file, extra_env=metadata_server(emulator))
    check_token(token_file, emulator, pwd.getpwnam(USER).pw_uid, 0o600)


def test_postinst_without_systemd_creates_the_same_user(installation: Installation) -> None:
    """Where systemd-sysusers is missing (a minimal container), useradd makes the same user.
    Run on a copy of /etc in a private mount namespace, with systemd-sysusers hidden."""
    sysusers = shutil.which("systemd-sysusers")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        etc = Path(work, "etc")
        shutil.copytree("/etc", etc, symlinks=True)
        for database in ("passwd", "group", "shadow", "gshadow"):
            path = etc / database
            if path.exists():
                kept = [line for line in path.read_text().splitlines() if not line.startswith(USER)]
                path.write_text("\n".join(kept) + "\n")
        hide = f"mount --bind /dev/null {sysusers}; " if sysusers else ""
        script = (
            f"mount --bind {etc} /etc; {hide}"
            f"sh /var/lib/dpkg/info/{PACKAGE}.postinst configure && grep '^{USER}:' /etc/passwd"
        )
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        fields = done.stdout.strip().split(":")
        assert fields[5:] == ["/nonexistent", "/usr/sbin/nologin"], done.stdout
        assert int(fields[2]) < 1000
        assert (etc / "group").read_text().count(f"\n{USER}:") == 1


def test_purge_leaves_only_the_system_user(installation: Installation) -> None:
    if shutil.which("systemctl"):
        # The admin enabled the timers (systemctl works on the links without a running systemd).
        for unit in ("azfed-helper-write.timer", "azfed-helper-write@ci.timer"):
            subprocess.run(["systemctl", "enable", unit], capture_output=True, check=True)
        assert list(Path("/etc/systemd/system").rglob("azfed-helper-write*.timer"))
    done = installation.purge()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower()
    assert installed_status() == ""
    left = footprint() - installation.before - USER_DATABASE
    assert left == set()
    assert not [path for path in installation.files if "azfed" in path and os.path.lexists(path)]
    assert pwd.getpwnam(USER).pw_dir == "/nonexistent"  # kept, as Debian policy does
