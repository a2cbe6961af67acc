"""``python -m pilotage``: the same command line as the ``pilotage`` script."""

import sys

from pilotage.adapters.cli import main

sys.exit(main())
