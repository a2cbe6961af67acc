"""SUMO, behind one package: its traffic-light programs as signal plans, the embedded city as a SUMO
scenario, and the closed loop that drives a simulation's traffic lights from the engines."""

from pilotage.adapters.sumo.programs import read_signal_plans

__all__ = ["read_signal_plans"]
