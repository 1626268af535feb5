"""Build the Debian package ``azfed-helper_<version>_<arch>.deb`` around the single-file program
(called by scripts/build-dist, after packaging/pyz/build.py).

    python3 packaging/debian/build.py --pyz dist/azfed-helper-*.pyz --dist dist

What it installs (packaging/README.md):
- /usr/bin/azfed-helper, which runs /usr/lib/azfed-helper/azfed-helper.pyz with /usr/bin/python3;
  the archive holds bytecode and compiled extensions for one Python minor version, so the package
  depends on exactly that ``python3`` and its architecture is the build machine's;
- the systemd units under /usr/lib/systemd/system (none enabled or started on install);
- /usr/lib/sysusers.d/azfed-helper.conf (the system user ``azfed-helper``, created by postinst);
- /etc/azfed-helper/azfed-helper.env, a conffile (dpkg keeps the admin's edits on upgrade);
- /usr/share/doc/azfed-helper: README.md (the units' Documentation=), an example config.toml,
  copyright (with the bundled distributions and their licences), changelog.gz;
- lintian overrides, each with its reason.

Maintainer: ``$DEBFULLNAME <$DEBEMAIL>`` when set. Dates: ``$SOURCE_DATE_EPOCH`` when set.
"""

from __future__ import annotations

import argparse
import email.utils
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import time
import zipfile
from email.message import Message
from email.parser import BytesParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SYSTEMD = HERE.parent / "systemd"
PACKAGE = "azfed-helper"
PYTHON = "/usr/bin/python3"  # what /usr/bin/azfed-helper runs; the .pyz must be built for it
DOC = f"usr/share/doc/{PACKAGE}"
CONFFILES = ("etc/azfed-helper/azfed-helper.env",)
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


def pyz_facts(pyz: Path) -> dict[str, str]:
    """Version, interpreter and the bundled distributions' licences, read from the archive."""
    with zipfile.ZipFile(pyz) as archive:
        start = archive.read("_azfed_pyz.py").decode()
        facts = dict(re.findall(r'^(BUILT_FOR|PYTHON) = "([^"]*)"', start, re.MULTILINE))
        heavy = zipfile.ZipFile(io.BytesIO(archive.read("_azfed_heavy.zip")))
        bundled = []
        for source in (archive, heavy):
            for name in source.namelist():
                if name.endswith(".dist-info/METADATA"):
                    bundled.append(BytesParser().parsebytes(source.read(name)))
    ours = next(meta for meta in bundled if meta["Name"] == PACKAGE)
    facts["VERSION"] = ours["Version"]
    facts["BUNDLED"] = "\n".join(
        f"  {meta['Name']} {meta['Version']}: {licence(meta)}"
        for meta in sorted(bundled, key=lambda meta: meta["Name"].lower())
        if meta["Name"] != PACKAGE
    )
    return facts


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


def python_dependency(built_for: str) -> str:
    """``cpython-311`` -> ``python3 (>= 3.11~), python3 (<< 3.12)``."""
    match = re.fullmatch(r"cpython-3(\d+)", built_for)
    if not match:
        raise SystemExit(f"the .pyz is for {built_for}; a Debian package needs CPython 3")
    minor = int(match.group(1))
    return f"python3 (>= 3.{minor}~), python3 (<< 3.{minor + 1})"


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
        f"/usr/lib/{PACKAGE}/{PACKAGE}.pyz also holds these Python distributions, each with\n"
        "its licence files in its .dist-info directory inside the archive:\n"
        f"{bundled}\n"
        + "".join(f"On Debian systems, see also {path}.\n" for path in shared)
        + f"\n{licence_text}"
    )


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


def build(pyz: Path, dist: Path) -> Path:
    facts = pyz_facts(pyz)
    if facts["PYTHON"] != PYTHON:
        raise SystemExit(f"{pyz} starts {facts['PYTHON']}; the package needs one for {PYTHON}")
    version = facts["VERSION"]
    maintainer = (
        f"{os.environ.get('DEBFULLNAME', 'azfed-helper developers')} "
        f"<{os.environ.get('DEBEMAIL', 'azfed-helper@users.noreply.github.com')}>"
    )
    when = float(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    arch = subprocess.run(
        [tool("dpkg"), "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work) / "root"
        place(root, f"usr/lib/{PACKAGE}/{PACKAGE}.pyz", pyz.read_bytes())
        place(root, f"usr/bin/{PACKAGE}", (HERE / PACKAGE).read_bytes(), 0o755)
        for unit in sorted(SYSTEMD.glob("*.service")) + sorted(SYSTEMD.glob("*.timer")):
            place(root, f"usr/lib/systemd/system/{unit.name}", unit.read_bytes())
        place(root, f"usr/lib/sysusers.d/{PACKAGE}.conf", (HERE / "sysusers.conf").read_bytes())
        place(root, CONFFILES[0], (SYSTEMD / "azfed-helper.env").read_bytes())
        place(root, f"{DOC}/README.md", (REPO / "README.md").read_bytes())
        place(root, f"{DOC}/examples/config.toml", (SYSTEMD / "config.toml").read_bytes())
        place(root, f"{DOC}/copyright", copyright_text(facts["BUNDLED"]).encode())
        place(root, f"{DOC}/changelog.gz", changelog(version, maintainer, when))
        place(
            root,
            f"usr/share/lintian/overrides/{PACKAGE}",
            (HERE / "lintian-overrides").read_bytes(),
        )
        files = sorted(p for p in root.rglob("*") if p.is_file())
        size = sum((p.stat().st_size + 1023) // 1024 for p in files)
        control = (
            f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\n"
            f"Maintainer: {maintainer}\nInstalled-Size: {size}\n"
            f"Depends: {python_dependency(facts['BUILT_FOR'])}, passwd\n"
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
        for directory in (p for p in root.rglob("*") if p.is_dir()):
            directory.chmod(0o755)
        dist.mkdir(parents=True, exist_ok=True)
        output = dist / f"{PACKAGE}_{version}_{arch}.deb"
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
    parser.add_argument("--pyz", required=True, type=Path)
    parser.add_argument("--dist", required=True, type=Path, help="output directory")
    args = parser.parse_args()
    print(build(args.pyz, args.dist))


if __name__ == "__main__":
    main()
