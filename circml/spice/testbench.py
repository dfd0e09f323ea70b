"""Testbenches: a circuit with design parameters, the analyses to run and the measures to take.

A :class:`Testbench` holds a SPICE netlist whose sizes are top-level ``.param`` values, the
ranges those values may take (:class:`DesignParam`), the analyses, and a ``measure`` function
that turns a :class:`~circml.spice.SimResult` into named metrics. ``evaluate(design, sim)``
is one simulated point; :func:`circml.spice.sweep` runs many.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..circuit import Circuit, parse_netlist


@dataclass(frozen=True)
class DesignParam:
    """A design parameter: a top-level ``.param`` of the netlist and the range it may take.

    ``log=True`` samples it uniformly in log space (widths, currents); ``integer=True`` rounds
    it (fingers, multipliers).
    """

    name: str
    low: float
    high: float
    log: bool = False
    unit: str = ""
    integer: bool = False

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"design parameter {self.name!r}: low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"design parameter {self.name!r}: a log-scaled range must be positive")

    def from_unit(self, u):
        """Map u in [0, 1] to the parameter's range."""
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        v = np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low))) if self.log \
            else self.low + u * (self.high - self.low)
        return np.round(v) if self.integer else v

    def to_unit(self, v):
        """Inverse of :meth:`from_unit`."""
        v = np.asarray(v, dtype=float)
        u = (np.log(v) - np.log(self.low)) / (np.log(self.high) - np.log(self.low)) if self.log \
            else (v - self.low) / (self.high - self.low)
        return u

    def clip(self, v):
        v = np.clip(np.asarray(v, dtype=float), self.low, self.high)
        return np.round(v) if self.integer else v


Measure = Callable[["object", Mapping[str, float]], Dict[str, float]]


@dataclass
class Testbench:
    """A simulatable circuit with design parameters, analyses and measures.

    Args:
        name: short identifier.
        netlist: SPICE text; every design parameter is a top-level ``.param`` in it.
        params: the design parameters.
        analyses: ngspice analyses, e.g. ``["op", "ac dec 20 1 10g", "noise v(out) vinp dec 20 1 10g"]``.
        measure: ``measure(result, design) -> {metric: value}``.
        metrics: names of the metrics ``measure`` returns, in table order.
        units: unit of each metric, for tables and plots.
        filename: where the netlist came from (anchors its ``.include`` lines).
        include_dirs: folders its includes may read.
        description: one line for catalogs and reports.
    """

    name: str
    netlist: str
    params: List[DesignParam]
    analyses: List[str]
    measure: Measure
    metrics: List[str]
    units: Dict[str, str] = field(default_factory=dict)
    filename: Optional[str] = None
    include_dirs: Optional[List[str]] = None
    description: str = ""
    timeout: float = 30.0

    def __post_init__(self):
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"testbench {self.name!r}: duplicate design parameter names")
        # Fail early, not at the first simulation: every parameter must be a .param of the netlist.
        self.circuit(self.default_design())

    @property
    def param_names(self) -> List[str]:
        return [p.name for p in self.params]

    def default_design(self) -> Dict[str, float]:
        """The centre of every range (geometric centre for log-scaled ones)."""
        return {p.name: float(p.from_unit(0.5)) for p in self.params}

    def design_from_unit(self, u: Sequence[float]) -> Dict[str, float]:
        """A design from a point of the unit hypercube, one coordinate per parameter."""
        return {p.name: float(p.from_unit(x)) for p, x in zip(self.params, u)}

    def circuit(self, design: Mapping[str, float]) -> Circuit:
        """The netlist with the design's values in place of its ``.param`` defaults."""
        missing = set(self.param_names) - set(design)
        if missing:
            raise ValueError(f"testbench {self.name!r}: design lacks {sorted(missing)}")
        unknown = set(design) - set(self.param_names)
        if unknown:
            # a typo ("ibais") must not silently simulate the default
            raise ValueError(f"testbench {self.name!r} has no design parameter(s) {sorted(unknown)}; "
                             f"it has {self.param_names}")
        return parse_netlist(self.netlist, self.filename, include_dirs=self.include_dirs,
                             params={k: float(design[k]) for k in self.param_names})

    def evaluate(self, design: Mapping[str, float], sim) -> Dict[str, float]:
        """Simulate one design and measure it. Metrics that cannot be measured are NaN."""
        result = sim.run(self.circuit(design), self.analyses, timeout=self.timeout)
        values = self.measure(result, design)
        return {m: float(values.get(m, math.nan)) for m in self.metrics}

    @classmethod
    def from_file(cls, path, **kwargs) -> "Testbench":
        """A testbench over a netlist file (its folder's parent is allowed for includes)."""
        path = Path(path)
        kwargs.setdefault("filename", str(path))
        kwargs.setdefault("include_dirs", [str(path.parent.parent)])
        return cls(netlist=path.read_text(), **kwargs)
