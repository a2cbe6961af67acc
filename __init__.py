"""pilotage: the real-time traffic and mobility optimisation core of a city's connected control centre.

Subpackages: :mod:`pilotage.core` (road network, shortest paths, errors),
:mod:`pilotage.signal_priority`, :mod:`pilotage.routing`, :mod:`pilotage.parking` and
:mod:`pilotage.adapters` (OSM, the command line).
"""

__version__ = "0.1.0"
