"""Loaded by ``site`` in a child process that has this archive on its ``PYTHONPATH`` (the demo's
``python -m azfed_helper`` children; the daemon's isolated fetch child installs the finder through
its bootstrap instead, ``_internal/isolated.py``). The child finds the heavy dependencies the way its parent does, and not in the
site-packages its own ``site`` just added (unless the parent had them too)."""

import os
import site
import sys

import _azfed_pyz

_parent = os.environ.get("PYTHONPATH", "").split(os.pathsep)
_added = {*site.getsitepackages(), site.getusersitepackages()}
sys.path[:] = [path for path in sys.path if path in _parent or path not in _added]
_azfed_pyz.install_finder()
