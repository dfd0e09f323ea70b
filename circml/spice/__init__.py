"""Simulation with ngspice's shared library, in process: :class:`Simulator`, testbenches,
measures and parallel sweeps with a resumable store."""
from .simulator import (NgspiceNotFound, SimResult, SimulationError, SimulationTimeout, Simulator,
                        SimulatorDied)
from .pool import SimulationPool
from .store import Dataset, StoreLockedError, StoreMismatchError, SweepStore, load_dataset
from .sweep import designs_from_table, sample_designs, sweep
from .testbench import DesignParam, Testbench

__all__ = ["Simulator", "SimResult", "SimulationError", "SimulationTimeout", "SimulatorDied", "NgspiceNotFound",
           "Testbench", "DesignParam", "sweep", "SimulationPool", "sample_designs", "designs_from_table", "Dataset", "load_dataset",
           "SweepStore", "StoreMismatchError", "StoreLockedError"]
