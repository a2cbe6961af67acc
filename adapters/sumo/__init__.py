"""SUMO, behind one package: its traffic-light programs as signal plans, the embedded city as a SUMO
scenario, and the closed loop that drives a simulation's traffic lights from the engines."""

from pilotage.adapters.sumo.programs import read_signal_plans
from pilotage.adapters.sumo.scenario import Scenario, city_scenario

__all__ = ["Scenario", "city_scenario", "read_signal_plans"]
