"""Rounds for service fleets on the street network: bulky-waste pickups and street cleaning."""
