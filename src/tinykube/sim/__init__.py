"""Simulated nodes (kwok-like fake kubelets) that run in the control-plane process; see :mod:`tinykube.sim.nodes`."""

from .lifecycle import Timing
from .nodes import SimulatedNodes

__all__ = ["SimulatedNodes", "Timing"]
