"""Build azfed-helper's single-file executable from its wheel (called by scripts/build-dist).

Run it with an interpreter of the Python version the file is for (bytecode and compiled
extensions are version-specific), with ``packaging`` and ``pip`` installed; ``--interpreter`` is
the python the file starts.

    python packaging/pyz/build.py --wheel dist/azfed_helper-*.whl --dist dist \\
        --interpreter /usr/bin/python3

The archive (see _azfed_pyz.py for how it runs) holds:
- ``__main__``, ``_azfed_pyz``, ``sitecustomize``: the start-up code, as source and bytecode (an
  interpreter of another version falls back to the source and prints a clear error);
- azfed_helper and its *light* dependencies (those usable without unpacking anything, such as
  platformdirs and filelock) as bytecode only (unchecked-hash .pyc: zipimport neither compiles nor
  checks anything), with their data files and metadata;
- ``_azfed_heavy.zip``: every other dependency, as a normal tree with bytecode in ``__pycache__``,
  unpacked on first import. These are the distributions holding compiled code (cryptography, cffi,
  charset_normalizer), certifi (OpenSSL opens its CA bundle by path), and the dependencies that
  cannot run without one of those (google-auth, msal, requests ...). Keeping them out of the
  archive's own directory matters: zipimport reads that whole directory on every start, a few
  microseconds per entry, and these are most of the entries.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import py_compile
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from email.parser import BytesParser
from pathlib import Path
from typing import BinaryIO

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
OURS = "azfed-helper"
START_MODULES = ("__main__", "_azfed_pyz", "sitecustomize")
HEAVY_MEMBER = "_azfed_heavy.zip"
# Needs a real file although it holds no compiled code: requests hands its CA bundle's path to
# OpenSSL (from a zip, certifi would copy it to a temporary file on every run).
NEEDS_FILES = frozenset({"certifi"})
COMPILED_SUFFIXES = (".so", ".pyd")
# Installer bookkeeping (with absolute build paths), type stubs and markers, stray bytecode.
SKIPPED_NAMES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "py.typed"})
SKIPPED_SUFFIXES = (".pyc", ".pyi")
DATE = (1980, 1, 1, 0, 0, 0)  # zip's epoch: the same input gives the same archive


class Distribution:
    """One installed distribution in the staging directory."""

    def __init__(self, info: Path) -> None:
        self.info = info
        metadata = BytesParser().parsebytes((info / "METADATA").read_bytes())
        self.name: str = canonicalize_name(metadata["Name"])
        self.version = metadata["Version"]
        self.requires = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
        self.entries: set[str] = set()  # top-level files and directories, besides the dist-info
        for line in (info / "RECORD").read_text().splitlines():
            top = line.split(",")[0].split("/")[0]
            if top and not top.endswith(".dist-info") and top not in ("..", "bin", "__pycache__"):
                self.entries.add(top)

    def dependencies(self, extras: set[str]) -> list[tuple[str, set[str]]]:
        """Names (and extras) this distribution needs on this interpreter, given its ``extras``."""
        needed: list[tuple[str, set[str]]] = []
        for requirement in self.requires:
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
                needed.append((canonicalize_name(requirement.name), set(requirement.extras)))
        return needed

    def files(self, staging: Path) -> list[Path]:
        found = [path for entry in self.entries for path in _files(staging / entry)]
        return found + _files(self.info)

    def compiled(self, staging: Path) -> bool:
        return any(path.name.endswith(COMPILED_SUFFIXES) for path in self.files(staging))


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def install(wheel: Path, staging: Path) -> None:
    """The wheel and its dependencies, as this interpreter's pip resolves them."""
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-compile", "--target", str(staging), str(wheel)),
        ],
        check=True,
    )


def closure(dists: dict[str, Distribution], name: str, extras: set[str]) -> set[str]:
    """``name`` and every distribution it needs, transitively."""
    seen: set[str] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(dists[current].dependencies(wanted))
    return seen


def heavy_distributions(dists: dict[str, Distribution], staging: Path) -> set[str]:
    """What must be unpacked: everything but our direct dependencies that need no compiled code
    or real file anywhere in their closure (and that closure)."""
    unpacked = {name for name, dist in dists.items() if dist.compiled(staging)}
    unpacked |= NEEDS_FILES & set(dists)
    light = {OURS}
    for name, extras in dists[OURS].dependencies(set()):
        needed = closure(dists, name, extras)
        if not needed & unpacked:
            light |= needed
    if dists[OURS].compiled(staging):
        raise SystemExit("azfed_helper itself must be pure Python")
    return set(dists) - light


def compiled(source: Path, name: str, work: Path) -> bytes:
    """Bytecode for ``source``; ``name`` is the path shown in tracebacks."""
    target = work / "pyc" / (name + "c")
    py_compile.compile(
        str(source),
        cfile=str(target),
        dfile=name,
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    return target.read_bytes()


def light_members(dist: Distribution, staging: Path, work: Path) -> dict[str, bytes]:
    """For zipimport: bytecode in place of each module (no source), data files, metadata."""
    members = {}
    for path in dist.files(staging):
        name = path.relative_to(staging).as_posix()
        if path.suffix == ".py":
            members[name + "c"] = compiled(path, name, work)
        elif path.suffix not in SKIPPED_SUFFIXES and path.name not in SKIPPED_NAMES:
            members[name] = path.read_bytes()
    return members


def heavy_members(dist: Distribution, staging: Path, work: Path) -> dict[str, bytes]:
    """For a directory on disk: sources, bytecode in ``__pycache__``, the rest, metadata."""
    members = {}
    for path in dist.files(staging):
        name = path.relative_to(staging).as_posix()
        if path.suffix not in SKIPPED_SUFFIXES and path.name not in SKIPPED_NAMES:
            members[name] = path.read_bytes()
        if path.suffix == ".py":
            pyc = f"__pycache__/{path.stem}.{sys.implementation.cache_tag}.pyc"
            members[(Path(name).parent / pyc).as_posix()] = compiled(path, name, work)
    return members


def write_zip(handle: BinaryIO, members: dict[str, bytes], stored: frozenset[str]) -> None:
    """A zip of ``members`` (name -> bytes) in name order, with fixed dates.

    Directory entries are written only for directories without ``__init__``: zipimport needs
    them to find a namespace package (``google``), and every entry costs start-up time."""
    namespaces = set()
    for name in (member for member in members if member.endswith(".pyc")):
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if not any(f"{directory}/__init__.{suffix}" in members for suffix in ("py", "pyc")):
                namespaces.add(directory + "/")
    with zipfile.ZipFile(handle, "w") as archive:
        for directory in sorted(namespaces):
            entry = zipfile.ZipInfo(directory, DATE)
            entry.external_attr = 0o40755 << 16
            archive.writestr(entry, b"")
        for name in sorted(members):
            info = zipfile.ZipInfo(name, DATE)
            info.compress_type = zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name])


def start_module(name: str, values: dict[str, str]) -> str:
    text = (HERE / f"{name}.py").read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    leftover = re.findall(r"@[A-Z0-9_]+@", text)
    if leftover:
        raise SystemExit(f"{name}.py: unfilled placeholders {leftover}")
    return text


def header(interpreter: str) -> bytes:
    """A shell line that starts the interpreter on this file. Executed directly by Python, the
    file would run as a zip application, which imports runpy (~5 ms, a third of a no-op
    ``write``). ``-I``: no PYTHON* variables, no user site-packages; ``-S``: no site-packages."""
    code = (
        "import os, sys; sys.path.insert(0, os.path.abspath(sys.argv[1])); del sys.argv[0]; "
        "import _azfed_pyz; _azfed_pyz.main()"
    )
    line = f'exec {shlex.quote(interpreter)} -IS -c {shlex.quote(code)} "$0" "$@"'
    return f"#!/bin/sh\n{line}\n".encode()


def build(staging: Path, work: Path, dist_dir: Path, interpreter: str) -> Path:
    dists = {dist.name: dist for dist in map(Distribution, staging.glob("*.dist-info"))}
    heavy = heavy_distributions(dists, staging)
    heavy_names = {entry.split(".")[0] for name in heavy for entry in dists[name].entries}
    light_names = {
        entry.split(".")[0] for name in dists.keys() - heavy for entry in dists[name].entries
    }
    if heavy_names & light_names:
        raise SystemExit(
            f"shared between light and heavy distributions: {heavy_names & light_names}"
        )
    buffer = io.BytesIO()
    inner: dict[str, bytes] = {}
    for name in heavy:
        inner |= heavy_members(dists[name], staging, work)
    write_zip(buffer, inner, stored=frozenset())
    nested = buffer.getvalue()
    digest = hashlib.sha256(nested).hexdigest()
    tag = sys.implementation.cache_tag
    version = dists[OURS].version
    values = {
        "BUILT_FOR": tag,
        "PLATFORM": f"{sys.platform}-{os.uname().machine}",
        "PYTHON": interpreter,
        "HEAVY_NAMES": " ".join(sorted(heavy_names)),
        "HEAVY_KEY": f"{version}-{tag}-{digest[:16]}",
        "HEAVY_SHA256": digest,
    }
    members = {HEAVY_MEMBER: nested}
    # The heavy distributions' metadata stays readable without unpacking (``--version``).
    for name in heavy:
        info = dists[name].info
        members[f"{info.name}/METADATA"] = (info / "METADATA").read_bytes()
    for name in dists.keys() - heavy:
        members |= light_members(dists[name], staging, work)
    for module in START_MODULES:
        source = work / "start" / f"{module}.py"
        source.parent.mkdir(exist_ok=True)
        source.write_text(start_module(module, values))
        members[f"{module}.py"] = source.read_bytes()
        members[f"{module}.pyc"] = compiled(source, f"{module}.py", work)
    python = f"py{sys.version_info.major}.{sys.version_info.minor}"
    output = dist_dir / f"azfed-helper-{version}-{python}-{os.uname().machine}.pyz"
    dist_dir.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".partial")
    with partial.open("wb") as handle:
        handle.write(header(interpreter))
        write_zip(handle, members, stored=frozenset({HEAVY_MEMBER}))
    partial.chmod(0o755)
    partial.replace(output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", required=True, type=Path)
    parser.add_argument("--dist", required=True, type=Path, help="output directory")
    parser.add_argument("--interpreter", required=True, help="the python the file starts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        staging = Path(work) / "staging"
        install(args.wheel, staging)
        print(build(staging, Path(work), args.dist, args.interpreter))


if __name__ == "__main__":
    main()
