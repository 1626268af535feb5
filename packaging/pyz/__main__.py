"""``python3 azfed-helper.pyz ARGS``: the archive's entry point (see _azfed_pyz.py)."""

import _azfed_pyz

_azfed_pyz.main()
