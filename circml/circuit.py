"""Circuits: flattened device-level netlists read by the C core.

A :class:`Circuit` owns a handle to the C structure; names and arrays are fetched from it on
demand and cached. Subcircuits are flattened at read time with ngspice-style hierarchical
names (device ``m1`` in instance ``x1`` becomes ``m.x1.m1``, net ``n1`` becomes ``x1.n1``).
SPICE is case-insensitive: names come back lowercased, and ``gnd`` is read as ``0``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core

KIND_NAMES: List[str] = _core.kind_names()
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Device:
    """One device of a flattened circuit.

    ``value`` is the primary value in SI units (ohms, farads, henries, a gain, or a source's DC
    value), NaN when absent; ``value_text`` holds what was written when it is not a plain
    number (a source's ``PULSE(...)`` spec, or an ``{expression}`` that could not be evaluated).
    ``params`` maps instance parameters (``w``, ``l``, ``m``, ``nf``, ...) to floats, or to their
    text when not evaluable.
    """

    name: str
    kind: str
    nets: Tuple[str, ...]
    model: Optional[str] = None
    value: float = math.nan
    value_text: Optional[str] = None
    params: Dict[str, Union[float, str]] = field(default_factory=dict)
    control: Optional[str] = None
    file: Optional[str] = None
    line: int = 0

    def _key(self):
        v = None if math.isnan(self.value) else self.value
        p = tuple(sorted((k, (None if isinstance(x, float) and math.isnan(x) else x)) for k, x in self.params.items()))
        return (self.name, self.kind, self.nets, self.model, v, self.value_text, p, self.control)


def _options(model_map, include_dirs, allow_control, allow_any_include, params=None):
    return dict(
        params=dict(params) if params else None,
        model_map=dict(model_map) if model_map else None,
        include_dirs=[os.fspath(d) for d in include_dirs] if include_dirs else None,
        allow_control=bool(allow_control),
        allow_any_include=bool(allow_any_include),
    )


def parse_netlist(
    text: Union[str, bytes],
    filename: Optional[PathLike] = None,
    *,
    model_map: Optional[Dict[str, str]] = None,
    include_dirs: Optional[Sequence[PathLike]] = None,
    allow_control: bool = False,
    allow_any_include: bool = False,
    params: Optional[Dict[str, float]] = None,
) -> "Circuit":
    """Read a SPICE netlist from a string.

    Args:
        text: the netlist. Its first line is the title, as in SPICE.
        filename: names the text in error messages and anchors relative ``.include`` paths.
        model_map: model name -> ``'nmos' | 'pmos' | 'npn' | 'pnp' | 'd'`` for models that have
            no ``.model`` line (PDK models defined elsewhere, or subcircuit-wrapped transistors).
        include_dirs: folders ``.include``/``.lib`` may read from, besides the netlist's own.
        allow_control: keep ``.control`` blocks instead of refusing them (they can run shell
            commands when simulated).
        allow_any_include: follow includes anywhere.
        params: values that replace top-level ``.param`` definitions of the same name (a
            testbench's design values); each must name a ``.param`` of the netlist.

    Raises:
        NetlistError: malformed input; ``err.file``, ``err.line`` and ``err.reason`` locate it.
        UnsafeNetlistError: refused by a safety rule.

    Example:
        >>> c = parse_netlist("* divider\\nR1 a 0 1k\\nR2 vdd a 1k\\n.end")
        >>> [d.name for d in c.devices]
        ['r1', 'r2']
    """
    if isinstance(text, str):
        text = text.encode("utf-8")
    fn = os.fspath(filename) if filename is not None else None
    handle = _core.parse(text, fn, **_options(model_map, include_dirs, allow_control, allow_any_include, params))
    return Circuit(handle, source=fn)


def read_netlist(
    path: PathLike,
    *,
    model_map: Optional[Dict[str, str]] = None,
    include_dirs: Optional[Sequence[PathLike]] = None,
    allow_control: bool = False,
    allow_any_include: bool = False,
    params: Optional[Dict[str, float]] = None,
) -> "Circuit":
    """Read a SPICE netlist file (see :func:`parse_netlist` for the options).

    Example:
        >>> from circml.datasets import circuit_library
        >>> lib = circuit_library()
        >>> c = read_netlist(lib[0].path, include_dirs=[lib[0].path.parent.parent])
    """
    path = os.fspath(path)
    handle = _core.read(path, **_options(model_map, include_dirs, allow_control, allow_any_include, params))
    return Circuit(handle, source=path)


class Circuit:
    """A flattened circuit: devices over nets, plus models, parameters and kept directives.

    Build one with :func:`parse_netlist`, :func:`read_netlist` or :meth:`from_file`. Write it
    back with :meth:`to_spice`; turn it into a graph with :meth:`to_graph`.
    """

    __slots__ = ("_handle", "source", "_names", "_info", "_devices")

    def __init__(self, handle, source: Optional[str] = None):
        self._handle = handle
        self.source = source
        self._names = None
        self._info = None
        self._devices = None

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_string(cls, text: Union[str, bytes], filename: Optional[PathLike] = None, **options) -> "Circuit":
        """Same as :func:`parse_netlist`."""
        return parse_netlist(text, filename, **options)

    @classmethod
    def from_file(cls, path: PathLike, **options) -> "Circuit":
        """Same as :func:`read_netlist`."""
        return read_netlist(path, **options)

    # -- cached views of the C structure ------------------------------------------------
    def _n(self):
        if self._names is None:
            self._names = _core.names(self._handle)
        return self._names

    def _i(self):
        if self._info is None:
            self._info = _core.info(self._handle)
        return self._info

    @property
    def n_devices(self) -> int:
        return _core.counts(self._handle)[0]

    @property
    def n_nets(self) -> int:
        return _core.counts(self._handle)[1]

    @property
    def title(self) -> str:
        return self._n()["title"] or ""

    @property
    def nets(self) -> List[str]:
        """Net names; a net's index is its id in :attr:`terminals`."""
        return self._n()["nets"]

    @property
    def device_names(self) -> List[str]:
        return self._n()["devices"]

    @property
    def device_kinds(self) -> np.ndarray:
        """int32 kind code per device; names in ``circml.circuit.KIND_NAMES``."""
        return self._i()["kind"]

    @property
    def terminals(self) -> Tuple[np.ndarray, np.ndarray]:
        """CSR layout of device terminals: ``(ptr [D+1], net [T])``; device i's nets are
        ``net[ptr[i]:ptr[i+1]]``."""
        i = self._i()
        return i["term_ptr"], i["term_net"]

    @property
    def models(self) -> Dict[str, Tuple[str, str]]:
        """Model name -> (type, parameters as ``k=v`` text)."""
        return {n: (t, p) for n, t, p in self._n()["models"]}

    @property
    def params(self) -> Dict[str, Union[float, str]]:
        """Top-level ``.param`` values (text when not evaluable)."""
        return dict(self._n()["params"])

    @property
    def directives(self) -> List[str]:
        """Dot-cards kept verbatim (``.option``, ``.temp``, analyses)."""
        return self._n()["directives"]

    @property
    def global_nets(self) -> List[str]:
        return self._n()["global_nets"]

    @property
    def devices(self) -> List[Device]:
        """All devices, in netlist order (built once, then cached)."""
        if self._devices is None:
            n, i = self._n(), self._i()
            nets, files = n["nets"], n["files"]
            ptr, tnet, pptr = i["term_ptr"], i["term_net"], i["param_ptr"]
            pval, pname, ptext = i["param_value"], n["param_name"], n["param_text"]
            out = []
            for d, name in enumerate(n["devices"]):
                params = {}
                for k in range(pptr[d], pptr[d + 1]):
                    params[pname[k]] = ptext[k] if ptext[k] is not None else float(pval[k])
                out.append(Device(
                    name=name,
                    kind=KIND_NAMES[i["kind"][d]],
                    nets=tuple(nets[t] for t in tnet[ptr[d]:ptr[d + 1]]),
                    model=n["device_model"][d],
                    value=float(i["value"][d]),
                    value_text=n["device_text"][d],
                    params=params,
                    control=n["device_control"][d],
                    file=files[n["device_file"][d]] if n["device_file"][d] >= 0 else None,
                    line=int(i["src_line"][d]),
                ))
            self._devices = out
        return self._devices

    def device(self, name: str) -> Device:
        """The device called ``name`` (case-insensitive)."""
        key = name.lower()
        for d in self.devices:
            if d.name == key:
                return d
        raise KeyError(f"no device named {name!r} in this circuit")

    def kind_counts(self) -> Dict[str, int]:
        """Number of devices of each kind present."""
        counts = np.bincount(self.device_kinds, minlength=len(KIND_NAMES))
        return {KIND_NAMES[k]: int(c) for k, c in enumerate(counts) if c}

    # -- output ------------------------------------------------------------------------
    def to_spice(self) -> str:
        """A flat SPICE netlist; reading it back gives an equal circuit."""
        return _core.write(self._handle)

    def write(self, path: PathLike) -> None:
        """Write :meth:`to_spice` to a file."""
        with open(path, "w") as f:
            f.write(self.to_spice())

    def to_graph(self, schema: str = "dice", device_values: bool = False,
                 supply_nets: Optional[Iterable[str]] = None, ground_nets: Optional[Iterable[str]] = None):
        """The device-level graph (see :mod:`circml.graph`).

        Args:
            schema: ``'dice'`` (DICE's 9 node and 5 edge types) or ``'extended'`` (adds diodes,
                BJTs, voltage and controlled sources).
            device_values: append log10 W, L, multiplicity and value columns to ``x``.
            supply_nets, ground_nets: net names to treat as supply / ground, on top of the
                defaults by name (``vdd*``, ``vcc*`` / ``0``, ``gnd``, ``vss``).
        """
        from .graph import graphs_from_circuits
        return graphs_from_circuits([self], schema=schema, device_values=device_values,
                                    supply_nets=supply_nets, ground_nets=ground_nets, collated=False)[0]

    # -- comparison and display ----------------------------------------------------------
    def _signature(self):
        return (
            tuple(d._key() for d in self.devices),
            tuple(sorted(self.models.items())),
            tuple((k, None if isinstance(v, float) and math.isnan(v) else v) for k, v in self._n()["params"]),
            tuple(self.directives),
            tuple(self.global_nets),
            sorted(self.nets),
        )

    def __eq__(self, other) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        return self._signature() == other._signature()

    __hash__ = None  # mutable-looking, compared by content

    def __len__(self) -> int:
        return self.n_devices

    def __repr__(self) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in self.kind_counts().items())
        src = f" from {os.path.basename(self.source)!r}" if self.source else ""
        return f"<Circuit{src}: {self.n_devices} devices ({kinds}), {self.n_nets} nets>"
