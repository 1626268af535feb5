"""Loaded by ``site`` in a child process that has this archive on its path: the daemon's token
fetch runs ``python -m azfed_helper.child_fetch`` with ``PYTHONPATH`` set to the parent's
``sys.path``. The child sees the modules its parent sees (not the site-packages its own ``site``
just added) and finds the heavy dependencies the same way."""

import os
import sys

import _azfed_pyz

_parent = os.environ.get("PYTHONPATH", "").split(os.pathsep)
sys.path[:] = [path for path in sys.path if path in _parent]
_azfed_pyz.install_finder()
