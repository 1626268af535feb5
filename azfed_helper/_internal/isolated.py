"""Command lines that run this package in a Python that imports nothing from the working directory.

``python -m PKG`` (and ``-c``) puts the current directory first on ``sys.path``: started from a
directory another user can write, such a child imports *their* ``azfed_helper`` with our
credentials. So children and printed hooks run the interpreter isolated (``-I``: no ``PYTHON*``
variables, no user site, neither the script's nor the current directory on the path) through a
one-line bootstrap that puts back exactly the directories named on its command line, and that is
how a virtualenv, an editable install or a zipapp unpacked by shiv keeps working.
"""

from __future__ import annotations

import os
import sys

# argv[1] holds the directories to import from (os.pathsep-separated); they go first, as
# PYTHONPATH entries would, unless the isolated interpreter has them already.
_BOOTSTRAP = (
    "import os,sys;p=sys.argv.pop(1).split(os.pathsep);"
    "sys.path[:0]=[e for e in p if e not in sys.path];"
    "{setup}from {module} import main;sys.exit(main())"
)
# The single-file build (packaging/pyz) imports its compiled dependencies through a finder of its
# own; a child of a process started from it installs that finder too.
_PYZ_MODULE = "_azfed_pyz"


def package_location() -> str:
    """The directory this very ``azfed_helper`` was imported from (a site-packages, a source
    checkout, a zip file)."""
    import azfed_helper

    return os.path.dirname(os.path.dirname(os.path.abspath(azfed_helper.__file__)))


def import_path() -> list[str]:
    """Where this process imports from: our package first, then ``sys.path`` without what
    Python derived from the script or the working directory, and without relative entries."""
    entries = sys.path
    if not (sys.flags.isolated or getattr(sys.flags, "safe_path", False)):
        entries = entries[1:]  # the script's directory, or the cwd for -m and -c
    paths = [package_location()]
    for entry in entries:
        if os.path.isabs(entry) and entry not in paths:
            paths.append(entry)
    return paths


def python_command(module: str, paths: list[str]) -> list[str]:
    """``python -I -c BOOTSTRAP PATHS``: runs ``module.main()`` importing only from ``paths``
    and the interpreter's own library; arguments for ``main`` follow."""
    setup = (
        f"import {_PYZ_MODULE};{_PYZ_MODULE}.install_finder();"
        if _PYZ_MODULE in sys.modules
        else ""
    )
    code = _BOOTSTRAP.format(module=module, setup=setup)
    return [sys.executable, "-I", "-c", code, os.pathsep.join(paths)]
