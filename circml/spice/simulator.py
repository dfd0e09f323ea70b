"""In-process ngspice: load a netlist from memory, run analyses, get NumPy arrays back.

libngspice is loaded at run time (``CIRCML_NGSPICE_LIBRARY`` or the system's
``libngspice.so.0``). It keeps global state, so one :class:`Simulator` lives in a process at a
time; parallel sweeps use processes (see :func:`circml.spice.sweep`).

Netlists are untrusted input: by default they are read by circml's own reader first, which
refuses ``.control`` blocks (they can run shell commands) and includes outside the allowed
folders, and the flat netlist it writes is what ngspice sees. ``allow_unsafe=True`` passes the
text to ngspice as it is.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np

from .. import _core
from ..circuit import Circuit, parse_netlist

SimulationError = _core.SimulationError
SimulationTimeout = _core.SimulationTimeout
SimulatorDied = _core.SimulatorDied
NgspiceNotFound = _core.NgspiceNotFound

_ANALYSES = ("op", "ac", "dc", "tran", "noise", "tf", "pz", "sens", "disto")


def _plot_kind(plot: str) -> str:
    return re.sub(r"\d+$", "", plot)


@dataclass
class SimResult:
    """Result plots of one simulation.

    ``plots`` maps ngspice's plot names (``op1``, ``ac1``, ``noise1``, ``noise2``, ...) to
    ``{vector name: array}``; AC vectors are complex. Shortcuts: ``result.op`` (floats),
    ``result.ac``, ``result.dc``, ``result.tran``, ``result.noise`` (the spectrum; integrated
    totals in ``result.noise_total``). ``output`` is what ngspice printed.
    """

    plots: Dict[str, Dict[str, np.ndarray]]
    output: str = ""

    def _first(self, kind: str, nth: int = 0) -> Dict[str, np.ndarray]:
        by_kind = self.__dict__.get("_by_kind")
        if by_kind is None:   # plot names by kind, in ngspice's numbering (measures ask often)
            by_kind = {}
            for p in sorted(self.plots, key=lambda p: int(re.sub(r"^\D*", "", p) or 0)):
                by_kind.setdefault(_plot_kind(p), []).append(p)
            self.__dict__["_by_kind"] = by_kind
        names = by_kind.get(kind, [])
        if len(names) <= nth:
            raise KeyError(f"no {kind!r} results (plots: {sorted(self.plots)})")
        return self.plots[names[nth]]

    @property
    def op(self) -> Dict[str, float]:
        return {k: float(v[0].real) for k, v in self._first("op").items()}

    @property
    def ac(self) -> Dict[str, np.ndarray]:
        return self._first("ac")

    @property
    def dc(self) -> Dict[str, np.ndarray]:
        return self._first("dc")

    @property
    def tran(self) -> Dict[str, np.ndarray]:
        return self._first("tran")

    @property
    def noise(self) -> Dict[str, np.ndarray]:
        return self._first("noise", 0)

    @property
    def noise_total(self) -> Dict[str, float]:
        return {k: float(v[0].real) for k, v in self._first("noise", 1).items()}

    def __getitem__(self, plot: str) -> Dict[str, np.ndarray]:
        return self.plots[plot]


def _analysis_cards(analyses: Iterable[str]) -> list:
    """The dot-cards for ``analyses``, in the order ngspice needs to run them as listed.

    ngspice runs analyses grouped by kind, the kinds in an order of its own whatever the card
    order, and within one kind in the reverse order of the cards (its parser prepends each job
    to the task's list). Writing the cards reversed makes two analyses of one kind
    run, and number their plots (``ac1``, ``ac2``), in the order they were listed, so
    ``result.ac`` is the first ``ac`` asked for.
    """
    return [_analysis_card(a) for a in analyses][::-1]


@functools.lru_cache(maxsize=64)
def _cards_bytes(analyses: tuple) -> bytes:
    return "".join(c + "\n" for c in _analysis_cards(analyses)).encode()


def _analysis_card(a: str) -> str:
    a = a.strip()
    if not a:
        raise ValueError("empty analysis")
    card = a if a.startswith(".") else "." + a
    word = card[1:].split()[0].lower()
    if word not in _ANALYSES:
        raise ValueError(f"unknown analysis {a!r}; expected one of {', '.join(_ANALYSES)}")
    return card


class Simulator:
    """ngspice in this process.

    Args:
        library: path of libngspice (default: ``$CIRCML_NGSPICE_LIBRARY`` or ``libngspice.so.0``).
        timeout: default per-simulation time limit in seconds (``None``: no limit).
        allow_unsafe: send netlists to ngspice unread (``.control``, shell commands, any include).
        include_dirs: folders that ``.include`` may read from in checked netlists.
        model_map: model types for MOSFET models without ``.model`` lines (see
            :func:`circml.parse_netlist`).

    Example:
        >>> with Simulator() as sim:
        ...     r = sim.run("* rc\\nR1 in out 1k\\nC1 out 0 1n\\nV1 in 0 DC 1 AC 1\\n.end", ["op", "ac dec 10 1 1g"])
        >>> r.op["out"]
        1.0
    """

    def __init__(self, library: Optional[str] = None, timeout: Optional[float] = 30.0, allow_unsafe: bool = False,
                 include_dirs: Optional[Sequence[str]] = None, model_map: Optional[Dict[str, str]] = None):
        self.library = library
        self.timeout = timeout
        self.allow_unsafe = allow_unsafe
        self.include_dirs = list(include_dirs) if include_dirs else None
        self.model_map = model_map
        self.reopened = 0
        self._handle = _core.spice_open(library)

    # -- life cycle -----------------------------------------------------------------
    def close(self) -> None:
        """Release ngspice (another Simulator may then be opened in this process)."""
        if self._handle is not None:
            _core.spice_close(self._handle)
            self._handle = None

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _ensure_open(self):
        if self._handle is None:
            raise RuntimeError("this Simulator is closed")
        if _core.spice_is_dead(self._handle):
            self._reopen()

    def _reopen(self):
        # A fatal error leaves ngspice unusable; the C layer loads a fresh private copy.
        _core.spice_close(self._handle)
        self._handle = None
        self._handle = _core.spice_open(self.library)
        self.reopened += 1

    # -- netlists -------------------------------------------------------------------
    def netlist_text(self, netlist: Union[str, Circuit], analyses: Iterable[str] = ()) -> str:
        """The exact text ngspice would receive for ``netlist`` and ``analyses``."""
        cards = _analysis_cards(analyses)
        if isinstance(netlist, Circuit):
            body = netlist.to_spice()
        elif self.allow_unsafe:
            body = netlist
        else:
            body = parse_netlist(netlist, model_map=self.model_map, include_dirs=self.include_dirs).to_spice()
        lines = body.rstrip().splitlines()
        if lines and lines[-1].strip().lower() == ".end":
            lines.pop()
        return "\n".join(lines + cards + [".end"]) + "\n"

    def run(self, netlist: Union[str, Circuit], analyses: Iterable[str] = ("op",),
            timeout: Optional[float] = -1.0) -> SimResult:
        """Simulate ``netlist`` with ``analyses`` (e.g. ``["op", "ac dec 20 1 1g",
        "noise v(out) vin dec 10 1 1g", "tran 1p 5n"]``; analysis cards already in the netlist
        run too).

        Raises:
            NetlistError / UnsafeNetlistError: the netlist was refused before simulation.
            SimulationError: ngspice reported an error (``err.output`` has its messages).
            SimulationTimeout: the run exceeded ``timeout`` seconds and was halted.
            SimulatorDied: ngspice exited fatally; the next call reopens it.
        """
        if isinstance(netlist, Circuit):
            text = self.render(netlist, analyses)   # written by circml's C writer: checked already
        else:
            text = self.netlist_text(netlist, analyses).encode()
        return self.run_rendered(text, timeout)

    # -- batches (sweep workers) ------------------------------------------------------
    def render(self, circuit: Circuit, analyses: Iterable[str]) -> bytes:
        """The netlist :meth:`run` sends to ngspice for ``circuit`` (written by circml, so
        already checked) and ``analyses``, for :meth:`run_rendered`."""
        return _core.spice_render(circuit._handle, _cards_bytes(tuple(analyses)))

    def run_rendered(self, netlist: bytes, timeout: Optional[float] = -1.0) -> SimResult:
        """Simulate a netlist made by :meth:`render` or :meth:`netlist_text` (not checked
        again). Sweeps render a
        chunk's netlists, simulate them back to back, then measure: each phase then runs
        with warm caches (interleaved, the interpreter's and ngspice's working sets evict
        each other: ~0.2 ms more per point of a 1.6 ms OTA simulation, measured)."""
        t = self.timeout if timeout == -1.0 else timeout
        self._ensure_open()
        try:
            plots, output = _core.spice_simulate(self._handle, netlist, float(t or 0.0))
        except SimulatorDied:
            self._reopen()
            raise
        return SimResult(plots, output)

    def command(self, command: str) -> str:
        """Run an ngspice interactive command (only with ``allow_unsafe=True``: commands such as
        ``shell`` reach the operating system)."""
        if not self.allow_unsafe:
            raise PermissionError("Simulator.command needs allow_unsafe=True (ngspice commands can run shell commands)")
        self._ensure_open()
        return _core.spice_command(self._handle, command)
