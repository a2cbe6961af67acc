"""The kernels as plain Python: with numba's JIT off, every kernel of every ``_kernels.py`` module is
called once through the layer above it (plain_python_kernels.py), so the lines the JIT compiles run
as written in every test run. The JIT is chosen when numba is imported, hence another process.

The kernels' whole tests run the same way, with their coverage, by the longer command in
CONTRIBUTING.md (not part of this suite).
"""

import os
import subprocess
import sys
from pathlib import Path

#: The repository's root, from which ``tests.plain_python_kernels`` runs.
REPOSITORY = Path(__file__).resolve().parents[1]


def test_every_kernel_runs_as_plain_python() -> None:
    run = subprocess.run([sys.executable, "-m", "tests.plain_python_kernels"], cwd=REPOSITORY, capture_output=True,
                         text=True, timeout=120, check=False, env=os.environ | {"NUMBA_DISABLE_JIT": "1"})
    assert run.returncode == 0, run.stderr
