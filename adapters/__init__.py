"""The outside world: OpenStreetMap extracts and the ``pilotage`` command line."""
