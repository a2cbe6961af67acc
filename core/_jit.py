"""The one decorator every numba kernel of pilotage uses.

``cache=True`` so a kernel compiles once per machine and later processes load it from numba's
cache; ``nogil=True`` so Python threads can run kernels on several cores at once. Compilation is
lazy: it happens at a kernel's first call, never at import.
"""

from numba import njit

kernel = njit(cache=True, nogil=True)
