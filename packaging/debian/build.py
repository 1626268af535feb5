"""Build the Debian package ``azfed-helper_<version>_all.deb`` from the wheel (called by
scripts/build-dist).

    python packaging/debian/build.py --wheel dist/azfed_helper-*.whl --dist dist

What it installs (packaging/README.md):
- /usr/lib/azfed-helper/lib: azfed_helper and every pure-Python distribution it needs, as
  sources (postinst byte-compiles them with the system's python3; prerm removes the bytecode);
- /usr/bin/azfed-helper, which runs them with /usr/bin/python3. The one compiled dependency,
  cryptography, is the distribution's (``python3-cryptography``), so the package holds no
  compiled code: architecture ``all``, for any ``python3 (>= 3.10)``;
- /usr/share/python3/runtime.d/azfed-helper.rtupdate, which compiles the libraries (postinst
  runs it, and python3's maintainer scripts when the default python3 changes version);
- the systemd units under /usr/lib/systemd/system (none enabled or started on install);
- /usr/lib/sysusers.d/azfed-helper.conf (the system user ``azfed-helper``, created by postinst);
- /etc/azfed-helper/azfed-helper.env, a conffile (dpkg keeps the admin's edits on upgrade);
- /usr/share/man/man1/azfed-helper.1.gz, made from the parser by argparse-manpage;
- /usr/share/doc/azfed-helper: README.md (the units' Documentation=), an example config.toml,
  copyright (with the bundled distributions and their licences), changelog.gz;
- lintian overrides, each with its reason.

The bundled distributions are those pip resolves for the wheel, plus what they need on the
oldest Python the package allows (tomli, typing_extensions on 3.10), pure wheels only.
Maintainer: ``$DEBFULLNAME <$DEBEMAIL>`` when set. Dates: ``$SOURCE_DATE_EPOCH`` when set.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYSTEMD = HERE.parent / "systemd"
PACKAGE = "azfed-helper"
LIB = f"usr/lib/{PACKAGE}/lib"
# Run by python3's maintainer scripts when the default python3 changes version.
RTUPDATE = f"usr/share/python3/runtime.d/{PACKAGE}.rtupdate"
DOC = f"usr/share/doc/{PACKAGE}"
MANUAL = f"usr/share/man/man1/{PACKAGE}.1.gz"
CONFFILES = ("etc/azfed-helper/azfed-helper.env",)
OLDEST_PYTHON = "3.10"  # what the package depends on, and the Python its libraries are for
OLDEST_MARKERS = {"python_version": OLDEST_PYTHON, "python_full_version": f"{OLDEST_PYTHON}.0"}
# Compiled: taken from the distribution (python3-cryptography depends on python3-cffi-backend;
# pycparser is cffi's). The program imports these, and only these, from there (the FROM_DISTRIBUTION
# of packaging/debian/azfed-helper, by module name).
FROM_DISTRIBUTION = ("cryptography", "cffi", "pycparser")
SUMMARY = "Google ID tokens for Azure workload identity federation"
DESCRIPTION = """\
azfed-helper reaches Azure from Google Cloud without any Azure secret: it
keeps a Google-issued OIDC ID token in the file named by
AZURE_FEDERATED_TOKEN_FILE, so the unmodified workload identity credential of
every Azure SDK, the Azure CLI and Terraform can use it through Entra ID
workload identity federation.
.
This package runs it from systemd on a VM: a 5-minute timer
(azfed-helper-write.timer) or a long-running service (azfed-helper.service),
and template units whose instance is a profile of
/etc/azfed-helper/config.toml, for several apps on one VM. Nothing is started
on install: edit /etc/azfed-helper/azfed-helper.env, then enable a unit."""


def pip(*args: str) -> None:
    """Run pip; its output is shown only when it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"pip {args[0]} failed:\n{done.stdout}{done.stderr}")


def resolve(wheel: Path, work: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """The pure distributions to bundle (``name==version``, plus what they need only on
    OLDEST_PYTHON) and the metadata pip reports for everything it resolves for the wheel."""
    report = work / "report.json"
    # Resolved as for OLDEST_PYTHON (Requires-Python), whose compiled wheels stand in for the
    # distribution's; pip evaluates markers for the running Python, hence the pass below.
    abi = "cp" + OLDEST_PYTHON.replace(".", "")
    pip("install", "--dry-run", "--ignore-installed", "--only-binary=:all:",
        "--python-version", OLDEST_PYTHON, "--implementation", "cp", "--abi", abi,
        "--platform", f"manylinux2014_{platform.machine()}", "--target", str(work / "dry"),
        "--report", str(report), str(wheel))  # fmt: skip
    resolved = [item["metadata"] for item in json.loads(report.read_text())["install"]]
    names = {canonicalize_name(meta["name"]) for meta in resolved}
    pinned = [
        f"{meta['name']}=={meta['version']}"
        for meta in resolved
        if canonicalize_name(meta["name"]) not in (*FROM_DISTRIBUTION, PACKAGE)
    ]
    for requirement in requirements(resolved):
        name = canonicalize_name(requirement.name)
        if name in names or name in FROM_DISTRIBUTION or requirement.marker is None:
            continue  # resolved already, the distribution's, or needed everywhere (so resolved)
        if on_oldest(requirement):
            pinned.append(f"{requirement.name}{requirement.specifier}")
            names.add(name)
    return pinned, resolved


def requirements(resolved: list[dict[str, Any]]) -> list[Requirement]:
    return [Requirement(text) for meta in resolved for text in meta.get("requires_dist", [])]


def on_oldest(requirement: Requirement) -> bool:
    """Whether ``requirement`` applies on OLDEST_PYTHON (extras aside)."""
    marker = requirement.marker
    return marker is None or marker.evaluate({**OLDEST_MARKERS, "extra": ""})


def cryptography_range(resolved: list[dict[str, Any]]) -> str:
    """The python3-cryptography versions every bundled distribution (and ours) accepts on
    OLDEST_PYTHON: the highest ``>=`` and the lowest ``<`` among their requirements."""
    floors, caps = [Version("0")], []
    for requirement in requirements(resolved):
        if canonicalize_name(requirement.name) != "cryptography" or not on_oldest(requirement):
            continue
        floors += [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        caps += [Version(s.version) for s in requirement.specifier if s.operator == "<"]
    bounds = [f"python3-cryptography (>= {max(floors)})"]
    bounds += [f"python3-cryptography (<< {min(caps)})"] if caps else []
    return ", ".join(bounds)


def bundle(wheel: Path, pinned: list[str], lib: Path) -> list[Message]:
    """Install the wheel and ``pinned`` into ``lib`` (pure wheels only, no bytecode) and return
    the bundled distributions' metadata."""
    pip("install", "--no-deps", "--no-compile", "--only-binary=:all:", "--platform", "any",
        "--implementation", "py", "--abi", "none", "--python-version", OLDEST_PYTHON,
        "--target", str(lib), str(wheel), *pinned)  # fmt: skip
    shutil.rmtree(lib / "bin", ignore_errors=True)  # console scripts: /usr/bin/azfed-helper is ours
    for info in lib.glob("*.dist-info"):  # what would differ between builds, or is not there
        (info / "direct_url.json").unlink(missing_ok=True)
        record = info / "RECORD"
        lines = record.read_text().splitlines() if record.exists() else []
        kept = [line for line in lines if not line.startswith(("../", f"{info.name}/direct_url"))]
        if lines:
            record.write_text("".join(f"{line}\n" for line in kept))
    compiled = [p for p in lib.rglob("*") if p.suffix in (".so", ".pyc") or p.name == "__pycache__"]
    if compiled:
        raise SystemExit(f"compiled files in a package for every architecture: {compiled[:3]}")
    return [
        BytesParser().parsebytes(path.read_bytes())
        for path in sorted(lib.glob("*.dist-info/METADATA"))
    ]


def licence(metadata: Message) -> str:
    """A distribution's licence: its SPDX expression, else its classifiers, else its field."""
    expression = metadata["License-Expression"]
    if expression:
        return str(expression)
    classifiers = [
        c.split(" :: ")[-1]
        for c in metadata.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    field = str(metadata["License"] or "").splitlines()
    return " / ".join(classifiers) or (field[0] if field else "see its licence files")


def changelog(version: str, maintainer: str, when: float) -> bytes:
    """The Debian changelog of this native package (the project's own is CHANGELOG.md)."""
    date = email.utils.formatdate(when, usegmt=False).replace("-0000", "+0000")
    text = (
        f"{PACKAGE} ({version}) unstable; urgency=medium\n\n"
        f"  * Upstream release {version}; see README.md for what it does.\n\n"
        f" -- {maintainer}  {date}\n"
    )
    return gzip.compress(text.encode(), 9, mtime=0)


def copyright_text(bundled: str) -> str:
    licence_text = (REPO / "LICENSE").read_text()
    common = Path("/usr/share/common-licenses")
    shared = sorted(
        f"/usr/share/common-licenses/{path.name}"
        for path in (common.iterdir() if common.is_dir() else [])
        if path.name in bundled and path.name not in ("BSD", "GPL", "LGPL")  # deprecated
    )
    return (
        f"{PACKAGE}\n\n"
        f"{licence_text.splitlines()[2]}\n"
        "License: MIT (below)\n\n"
        f"/{LIB} also holds these Python distributions, each with its licence\n"
        "files in its .dist-info directory:\n"
        f"{bundled}\n"
        + "".join(f"On Debian systems, see also {path}.\n" for path in shared)
        + f"\n{licence_text}"
    )


def manual_page(lib: Path, version: str, when: float) -> bytes:
    """azfed-helper(1), gzipped: argparse-manpage's rendering of the whole parser (what
    ``--help`` of every command says), its preformatted blocks kept as they are."""
    page = lib.parent / "azfed-helper.1"
    argparse_manpage = Path(sys.executable).with_name("argparse-manpage")
    subprocess.run(
        [str(argparse_manpage), "--pyfile", str(HERE / "manparser.py"), "--function", "parser",
         "--prog", PACKAGE, "--project-name", PACKAGE, "--version", version,
         "--description", SUMMARY, "--manual-title", f"{PACKAGE} manual", "--output", str(page)],
        env={**os.environ, "PYTHONPATH": str(lib), "SOURCE_DATE_EPOCH": str(int(when))},
        check=True,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    text = no_fill(page.read_text())
    page.unlink()
    return gzip.compress(text.encode(), 9, mtime=0)


def no_fill(roff: str) -> str:
    """Indented lines (the "which mode" table, examples) as written: roff would fill them."""
    out: list[str] = []
    inside = False
    for line in roff.splitlines():
        indented = line.startswith("  ") and line.strip() != ""
        if indented != inside:
            out.append(".nf" if indented else ".fi")
            inside = indented
        out.append(line)
    if inside:
        out.append(".fi")
    return "\n".join(out) + "\n"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed (apt-get install dpkg)")
    return found


def place(root: Path, name: str, data: bytes, mode: int = 0o644) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)


def build(wheel: Path, dist: Path) -> Path:
    maintainer = (
        f"{os.environ.get('DEBFULLNAME', 'azfed-helper developers')} "
        f"<{os.environ.get('DEBEMAIL', 'azfed-helper@users.noreply.github.com')}>"
    )
    when = float(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        pinned, resolved = resolve(wheel, Path(work))
        bundled = bundle(wheel, pinned, root / LIB)
        version = next(str(meta["Version"]) for meta in bundled if meta["Name"] == PACKAGE)
        listing = "\n".join(
            f"  {meta['Name']} {meta['Version']}: {licence(meta)}"
            for meta in sorted(bundled, key=lambda meta: str(meta["Name"]).lower())
            if meta["Name"] != PACKAGE
        )
        place(root, f"usr/bin/{PACKAGE}", (HERE / PACKAGE).read_bytes(), 0o755)
        place(root, RTUPDATE, (HERE / "rtupdate").read_bytes(), 0o755)
        for unit in sorted(SYSTEMD.glob("*.service")) + sorted(SYSTEMD.glob("*.timer")):
            place(root, f"usr/lib/systemd/system/{unit.name}", unit.read_bytes())
        place(root, f"usr/lib/sysusers.d/{PACKAGE}.conf", (HERE / "sysusers.conf").read_bytes())
        place(root, CONFFILES[0], (SYSTEMD / "azfed-helper.env").read_bytes())
        place(root, f"{DOC}/README.md", (REPO / "README.md").read_bytes())
        place(root, MANUAL, manual_page(root / LIB, version, when))
        place(root, f"{DOC}/examples/config.toml", (SYSTEMD / "config.toml").read_bytes())
        place(root, f"{DOC}/copyright", copyright_text(listing).encode())
        place(root, f"{DOC}/changelog.gz", changelog(version, maintainer, when))
        place(
            root,
            f"usr/share/lintian/overrides/{PACKAGE}",
            (HERE / "lintian-overrides").read_bytes(),
        )
        files = sorted(p for p in root.rglob("*") if p.is_file())
        size = sum((p.stat().st_size + 1023) // 1024 for p in files)
        control = (
            f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\n"
            f"Maintainer: {maintainer}\nInstalled-Size: {size}\n"
            f"Depends: python3 (>= {OLDEST_PYTHON}), {cryptography_range(resolved)}, passwd\n"
            "Recommends: systemd\nSection: admin\nPriority: optional\n"
            f"Description: {SUMMARY}\n" + "".join(f" {line}\n" for line in DESCRIPTION.splitlines())
        )
        conffiles = {f"/{name}" for name in CONFFILES}
        md5sums = "".join(
            f"{hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()}  {p.relative_to(root).as_posix()}\n"
            for p in files
            if f"/{p.relative_to(root).as_posix()}" not in conffiles
        )
        place(root, "DEBIAN/control", control.encode())
        place(root, "DEBIAN/conffiles", "".join(f"{name}\n" for name in sorted(conffiles)).encode())
        place(root, "DEBIAN/md5sums", md5sums.encode())
        for script in ("postinst", "prerm", "postrm"):
            place(root, f"DEBIAN/{script}", (HERE / script).read_bytes(), 0o755)
        for path in root.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
            elif LIB in path.as_posix():
                path.chmod(0o644)  # libraries, not programs
        dist.mkdir(parents=True, exist_ok=True)
        output = dist / f"{PACKAGE}_{version}_all.deb"
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(int(when))}
        subprocess.run(
            [tool("dpkg-deb"), "--root-owner-group", "-Zgzip", "--build", str(root), str(output)],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--dist", required=True, type=Path, help="output directory")
    args = parser.parse_args()
    print(build(args.wheel, args.dist))


if __name__ == "__main__":
    main()
