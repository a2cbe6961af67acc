"""Bus priority and emergency corridors at the signalised intersections (numba kernels and engines)."""
