"""The `pilotage` command, run as users run it: in another process, with its exit status and output."""

import os
import subprocess
import sys
from pathlib import Path


def pilotage(*args: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    """Runs ``python -m pilotage ARGS`` with its networks cached in ``cache_dir``; returns its exit
    status, stdout and stderr, whatever the status."""
    environment = os.environ | {"PILOTAGE_CACHE_DIR": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", "pilotage", *args], capture_output=True, text=True,
                          env=environment, timeout=300, check=False)
