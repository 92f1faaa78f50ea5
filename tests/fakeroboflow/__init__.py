"""A local stand-in for Roboflow's model API and its signed storage URLs (see `server`)."""

from tests.fakeroboflow.server import FakeRoboflow, Faults, SeenRequest

__all__ = ["FakeRoboflow", "Faults", "SeenRequest"]
