"""Simulation with ngspice's shared library, in process: :class:`Simulator`, testbenches,
measures and parallel sweeps with a resumable store."""
from .simulator import (NgspiceNotFound, SimResult, SimulationError, SimulationTimeout, Simulator,
                        SimulatorDied)

__all__ = ["Simulator", "SimResult", "SimulationError", "SimulationTimeout", "SimulatorDied", "NgspiceNotFound"]
