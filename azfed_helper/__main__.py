"""``python -m azfed_helper`` runs the command line."""

import sys

from ._internal.cli import main

sys.exit(main())
