"""Ready-made testbenches over the built-in circuit library.

Three kinds, each a :class:`LibraryTestbench` (a :class:`~circml.spice.Testbench`) whose netlist
is a library bench (``circml/data/circuits/<name>.sp``) with its sizes exposed as design
parameters:

* ``"ota"`` (5): the four metrics of the OTA sizing work the diffusion-sizing paper reports
  (Azevedo, Lourenco, Martins, Table II): ``power`` (W), input-referred noise ``irn`` (V rms),
  DC gain ``gain_db`` (dB) and -3 dB bandwidth ``bw`` (Hz), plus unity-gain bandwidth ``ugbw``
  (Hz) and phase margin ``pm`` (degrees). Each transistor group (devices that must match: a
  differential pair, a mirror, a bias diode and the source it feeds) gets a finger width
  ``w_*``, a length ``l_*`` and a finger count ``nf_*`` (total width ``w_* x nf_*``), plus the
  bias current and load / compensation capacitors.
* ``"opamp"`` (5): ``gain_db``, ``bw``, ``ugbw``, ``pm``, ``power`` of the library op-amps,
  sized through the files' own W/L/bias/compensation ``.param`` values (ranges x/÷ 2 around the
  library values, which are the range centres).
* ``"delay_line"`` (5): ``rise_delay`` and ``fall_delay`` (s) of ``out`` behind the input clock;
  parameters: each line's own sizes and knobs, the supply ``vsup``, the clock's edge time
  ``t_slew`` and the load ``cl``.

Definitions shared by every testbench of a kind, so metrics compare across circuits:

* power: the supply voltage times the current the ``Vdd`` source delivers at the operating
  point (the bias reference included).
* irn: the input-referred noise density (``inoise_spectrum`` of ngspice's
  ``noise v(out) vinp``) integrated over :data:`NOISE_BAND` = 1 Hz .. 1 MHz, in V rms.
* gain_db, bw, ugbw, pm: from the open-loop response ``v(out)/v(inp)`` (``v(outp)-v(outn)``
  for the fully differential op-amp) of an AC sweep from 0.01 Hz to 10 GHz. The benches' DC
  servo (1 GOhm into 1 F) closes the loop only below ~1e-10 Hz, so the sweep sees the open
  loop. ``gain_db`` is taken at 0.01 Hz; ``pm`` = 180 + phase at the unity-gain frequency.
* delays: from the input's 50 %-of-``vsup`` crossing to the output's matching (same-direction:
  the lines do not invert) crossing, for the first rising and the first falling clock edge.
  The clock has period :data:`CLOCK_PERIOD`, 50 % duty and its first edge at
  :data:`CLOCK_DELAY`; the transient covers one period.

A metric that the simulation does not show (no -3 dB or 0 dB crossing in the sweep, an output
edge that never comes) is NaN, never an exception; a design that does not simulate raises the
simulator's error (a sweep records it as a failed point).

Example:
    >>> from circml.spice import Simulator
    >>> from circml.spice.testbenches import get_testbench, list_testbenches
    >>> list_testbenches("ota")
    ['ota_5t', 'ota_folded_cascode', 'ota_subthreshold_ecg', 'ota_telescopic', 'ota_two_stage_miller']
    >>> tb = get_testbench("ota_5t")
    >>> with Simulator() as sim:                                  # doctest: +SKIP
    ...     m = tb.evaluate(tb.default_design(), sim)
    >>> round(m["gain_db"], 1)                                    # doctest: +SKIP
    43.0
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..datasets import CIRCUITS_DIR, DATA_DIR
from . import measures
from .testbench import DesignParam, Testbench

__all__ = ["TESTBENCHES", "KINDS", "LibraryTestbench", "AmplifierMeasure", "DelayMeasure", "get_testbench",
           "list_testbenches", "NOISE_BAND", "CLOCK_PERIOD", "CLOCK_DELAY"]

KINDS = ("ota", "opamp", "delay_line")

# Input-referred noise is integrated over this band (Hz) for every OTA testbench.
NOISE_BAND = (1.0, 1e6)
# The delay lines' input clock: period (s) and the time of its first rising edge (s).
CLOCK_PERIOD = 4e-9
CLOCK_DELAY = 200e-12

_AC = "ac dec 20 0.01 10g"
_NOISE = f"noise v(out) vinp dec 20 {NOISE_BAND[0]:g} {NOISE_BAND[1]:g}"

OTA_METRICS = ["power", "irn", "gain_db", "bw", "ugbw", "pm"]
OPAMP_METRICS = ["gain_db", "bw", "ugbw", "pm", "power"]
DELAY_METRICS = ["rise_delay", "fall_delay"]
UNITS = {"power": "W", "irn": "V", "gain_db": "dB", "bw": "Hz", "ugbw": "Hz", "pm": "deg",
         "rise_delay": "s", "fall_delay": "s"}


# ---------------------------------------------------------------------------------------
# Netlist edits: the testbench netlists are the library files with a few lines rewritten
# ---------------------------------------------------------------------------------------
def _library_file(name: str):
    path = CIRCUITS_DIR / f"{name}.sp"
    return path, path.read_text()


def _add_params(text: str, values: Mapping[str, float]) -> str:
    """Insert ``.param`` defaults for new design parameters right after the ``.include``."""
    lines = text.splitlines()
    at = next(i for i, s in enumerate(lines) if s.lower().startswith(".include")) + 1
    card = ".param " + " ".join(f"{k}={v:g}" for k, v in values.items())
    return "\n".join(lines[:at] + ["* ---- testbench design parameters (circml.spice.testbenches) ----", card]
                     + lines[at:]) + "\n"


def _size_devices(text: str, sizing: Mapping[str, Tuple[str, str, Optional[str]]]) -> str:
    """Give MOSFETs new size expressions: ``{device: (w, l, nf)}`` with parameter names.

    With a finger count ``nf`` the device gets ``w={w*nf} l={l} nf={nf}``: ``w`` is then the
    width of one finger, so every design keeps fingers of a sensible width (BSIM4 reads
    ``w`` as the total width and divides it among the ``nf`` fingers).
    """
    want = {k.lower(): v for k, v in sizing.items()}
    seen = set()
    out = []
    for line in text.splitlines():
        tok = line.split()
        if tok and tok[0].lower() in want:
            w, l, nf = want[tok[0].lower()]
            rest = [t for t in tok[6:] if not re.match(r"(w|l|nf)=", t, re.I)]
            size = [f"w={{{w}*{nf}}}", f"l={{{l}}}", f"nf={{{nf}}}"] if nf else [f"w={{{w}}}", f"l={{{l}}}"]
            line = " ".join(tok[:6] + size + rest)
            seen.add(tok[0].lower())
        out.append(line)
    missing = set(want) - seen
    if missing:  # a library file changed under us: fail at import, not in a sweep
        raise RuntimeError(f"testbench netlist edit: devices {sorted(missing)} not found")
    return "\n".join(out) + "\n"


def _replace_bench(text: str, marker: str, new_lines: Sequence[str]) -> str:
    """Replace everything from the comment line starting with ``marker`` up to ``.end``."""
    lines = text.splitlines()
    at = [i for i, s in enumerate(lines) if s.startswith(marker)]
    if len(at) != 1:
        raise RuntimeError(f"testbench netlist edit: expected one line starting {marker!r}, found {len(at)}")
    return "\n".join(lines[:at[0]] + list(new_lines) + [".end"]) + "\n"


def _replace_line(text: str, first_token: str, new: str) -> str:
    """Replace the element line whose first token is ``first_token`` (e.g. ``Vdd``)."""
    lines = text.splitlines()
    idx = [i for i, s in enumerate(lines) if s.split()[:1] and s.split()[0].lower() == first_token.lower()]
    if len(idx) != 1:
        raise RuntimeError(f"testbench netlist edit: expected one {first_token!r} line, found {len(idx)}")
    lines[idx[0]] = new
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# Measures (module-level classes, so testbenches pickle into sweep worker processes)
# ---------------------------------------------------------------------------------------
def _safe(fn, *args, **kwargs) -> float:
    """A measure's value, or NaN when the response does not show it (never an exception)."""
    try:
        v = float(fn(*args, **kwargs))
    except Exception:  # noqa: BLE001 - an unmeasurable metric is NaN by contract
        return math.nan
    return v if math.isfinite(v) else math.nan


@dataclass(frozen=True)
class AmplifierMeasure:
    """Power, open-loop AC metrics and (optionally) integrated input-referred noise.

    ``out`` is the output node, or ``"outp-outn"`` for a differential output; ``supply`` the
    voltage source feeding the circuit and ``vsup`` its voltage; ``noise`` adds ``irn`` from
    the noise analysis (input-referred density integrated over :data:`NOISE_BAND`).
    """

    out: str = "out"
    supply: str = "vdd"
    vsup: float = 1.0
    noise: bool = True

    def response(self, ac: Mapping[str, np.ndarray]) -> np.ndarray:
        if "-" in self.out:
            p, n = self.out.split("-")
            return ac[p] - ac[n]
        return ac[self.out]

    def __call__(self, result, design: Mapping[str, float]) -> Dict[str, float]:
        m: Dict[str, float] = {}
        op = result.op
        m["power"] = _safe(measures.supply_power, op[f"{self.supply}#branch"], self.vsup)
        ac = result.ac
        f, h = np.real(ac["frequency"]), self.response(ac)
        try:
            ac_metrics = measures.amplifier_metrics(f, h)
        except Exception:  # noqa: BLE001 - an unmeasurable response gives NaN metrics
            ac_metrics = {}
        for k in ("gain_db", "bw", "ugbw", "pm"):
            v = float(ac_metrics.get(k, math.nan))
            m[k] = v if math.isfinite(v) else math.nan
        if self.noise:
            nz = result.noise
            m["irn"] = _safe(measures.integrated_noise, np.real(nz["frequency"]), np.real(nz["inoise_spectrum"]),
                             NOISE_BAND[0], NOISE_BAND[1])
        return m


    def batch(self, results: Sequence, designs: Sequence[Mapping[str, float]]) -> List[Dict[str, float]]:
        """``[self(r, d) for r, d in zip(results, designs)]``, equal value for value, with the
        array work done once for the chunk when the results share their frequency axes (a
        sweep's do). Sweep workers call this."""
        axes = []
        try:
            for r in results:
                axes.append((np.real(r.ac["frequency"]),
                             np.real(r.noise["frequency"]) if self.noise else None))
        except Exception:  # noqa: BLE001 - a result without the plots: measure one by one
            return [self(r, d) for r, d in zip(results, designs)]
        f0, n0 = axes[0] if axes else (None, None)
        if not axes or any(not np.array_equal(f, f0) or (self.noise and not np.array_equal(n, n0))
                           for f, n in axes[1:]):
            return [self(r, d) for r, d in zip(results, designs)]
        out = [{"power": _safe(measures.supply_power, r._first("op")[f"{self.supply}#branch"][0].real, self.vsup)}
               for r in results]
        try:
            ac = measures.amplifier_metrics_batch(f0, np.stack([self.response(r.ac) for r in results]))
        except Exception:  # noqa: BLE001 - e.g. an invalid axis: NaN metrics, as one by one
            ac = [{} for _ in results]
        for m, a in zip(out, ac):
            for k in ("gain_db", "bw", "ugbw", "pm"):
                v = float(a.get(k, math.nan))
                m[k] = v if math.isfinite(v) else math.nan
        if self.noise:
            try:
                irn = measures.integrated_noise_batch(n0, np.stack([np.real(r.noise["inoise_spectrum"]) for r in results]),
                                                      NOISE_BAND[0], NOISE_BAND[1])
            except Exception:  # noqa: BLE001
                irn = np.full(len(results), math.nan)
            for m, v in zip(out, irn):
                m["irn"] = float(v) if math.isfinite(v) else math.nan
        return out


@dataclass(frozen=True)
class DelayMeasure:
    """Rise and fall delay of ``out`` behind ``in`` at half the supply (``vsup``, a design
    parameter name or a number)."""

    vin: str = "in"
    out: str = "out"
    vsup: Union[str, float] = "vsup"

    def __call__(self, result, design: Mapping[str, float]) -> Dict[str, float]:
        vdd = float(design[self.vsup]) if isinstance(self.vsup, str) else float(self.vsup)
        tr = result.tran
        t, vi, vo = np.real(tr["time"]), np.real(tr[self.vin]), np.real(tr[self.out])
        return {"rise_delay": _safe(measures.rise_delay, t, vi, vo, vdd),
                "fall_delay": _safe(measures.fall_delay, t, vi, vo, vdd)}


# ---------------------------------------------------------------------------------------
# Testbenches
# ---------------------------------------------------------------------------------------
@dataclass
class LibraryTestbench(Testbench):
    """A :class:`~circml.spice.Testbench` over a library circuit, with its ``kind`` (``"ota"``,
    ``"opamp"`` or ``"delay_line"``).

    Unlike the base class it refuses designs that name parameters it does not have (a typo such
    as ``ibais`` would otherwise be ignored and the default simulated).
    """

    kind: str = ""

    def circuit(self, design: Mapping[str, float]):
        unknown = sorted(set(design) - set(self.param_names))
        if unknown:
            raise ValueError(f"testbench {self.name!r}: {unknown} are not design parameters of its netlist; "
                             f"its parameters are {self.param_names}")
        return super().circuit(design)


# ---------------------------------------------------------------------------------------
# Parameter helpers
# ---------------------------------------------------------------------------------------
def _group(prefix: str, w: Tuple[float, float] = (0.5e-6, 8e-6), l: Optional[Tuple[float, float]] = (90e-9, 720e-9),
           nf: Optional[Tuple[int, int]] = (1, 8)) -> List[DesignParam]:
    """Finger width, length and finger count of one matched transistor group."""
    ps = [DesignParam(f"w_{prefix}", w[0], w[1], log=True, unit="m")]
    if l is not None:
        ps.append(DesignParam(f"l_{prefix}", l[0], l[1], log=True, unit="m"))
    if nf is not None:
        ps.append(DesignParam(f"nf_{prefix}", nf[0], nf[1], integer=True))
    return ps


def _around(name: str, value: float, factor: float = 2.0, unit: str = "") -> DesignParam:
    """A log-scaled range ``[value/factor, value*factor]`` centred on a library default."""
    return DesignParam(name, value / factor, value * factor, log=True, unit=unit)


def _new_param_defaults(params: Sequence[DesignParam], text: str) -> Dict[str, float]:
    """Defaults (range centres) for design parameters the library file does not define."""
    have = {m.group(1).lower() for m in re.finditer(r"(\w+)\s*=", " ".join(
        s for s in text.splitlines() if s.lower().startswith(".param")))}
    return {p.name: float(p.from_unit(0.5)) for p in params if p.name.lower() not in have}


def _make(name: str, kind: str, description: str, params: List[DesignParam], analyses: List[str], measure,
          metrics: List[str], sizing: Optional[Mapping[str, Tuple[str, str, Optional[str]]]] = None,
          lines: Optional[Mapping[str, str]] = None, bench: Optional[Tuple[str, Sequence[str]]] = None,
          timeout: float = 30.0) -> LibraryTestbench:
    """A testbench over the library circuit ``name``: resize its devices (``sizing``), replace
    whole lines (``lines``: first token -> new line) or its bench section (``bench``), and
    define the new design parameters."""
    path, text = _library_file(name)
    if sizing:
        text = _size_devices(text, sizing)
    for first, new in (lines or {}).items():
        text = _replace_line(text, first, new)
    if bench:
        text = _replace_bench(text, *bench)
    extra = _new_param_defaults(params, text)
    if extra:
        text = _add_params(text, extra)
    return LibraryTestbench(name=name, netlist=text, params=params, analyses=analyses, measure=measure,
                            metrics=list(metrics), units={m: UNITS[m] for m in metrics}, filename=str(path),
                            include_dirs=[str(DATA_DIR)], description=description, timeout=timeout, kind=kind)


# ---------------------------------------------------------------------------------------
# OTAs: per-group finger width / length / fingers, bias current, load (and compensation)
# ---------------------------------------------------------------------------------------
def _ota_5t() -> LibraryTestbench:
    params = (_group("in") + _group("ld") + _group("tail")
              + [DesignParam("ibias", 2e-6, 200e-6, log=True, unit="A"),
                 DesignParam("cl", 50e-15, 2e-12, log=True, unit="F"),
                 DesignParam("vcm", 0.5, 0.7, unit="V")])
    sizing = {"M1": ("w_in", "l_in", "nf_in"), "M2": ("w_in", "l_in", "nf_in"),
              "M3": ("w_ld", "l_ld", "nf_ld"), "M4": ("w_ld", "l_ld", "nf_ld"),
              # the bias diode matches the tail device: the tail current is ibias
              "M5": ("w_tail", "l_tail", "nf_tail"), "M6": ("w_tail", "l_tail", "nf_tail")}
    return _make("ota_5t", "ota", "Five-transistor OTA (NMOS pair, PMOS mirror load); tail current = ibias.",
                 params, ["op", _AC, _NOISE], AmplifierMeasure(), OTA_METRICS, sizing=sizing)


def _ota_two_stage_miller() -> LibraryTestbench:
    params = (_group("in") + _group("ld") + _group("tail")
              + _group("cs", w=(2e-6, 32e-6)) + _group("sink", w=(1e-6, 8e-6), l=None)
              + [DesignParam("ibias", 2e-6, 100e-6, log=True, unit="A"),
                 DesignParam("cc", 200e-15, 5e-12, log=True, unit="F"),
                 DesignParam("cl", 100e-15, 2e-12, log=True, unit="F")])
    sizing = {"M1": ("w_in", "l_in", "nf_in"), "M2": ("w_in", "l_in", "nf_in"),
              "M3": ("w_ld", "l_ld", "nf_ld"), "M4": ("w_ld", "l_ld", "nf_ld"),
              "M5": ("w_tail", "l_tail", "nf_tail"), "Mb": ("w_tail", "l_tail", "nf_tail"),
              "M6": ("w_cs", "l_cs", "nf_cs"),
              # the second-stage sink mirrors the bias diode, so it shares its length
              "M7": ("w_sink", "l_tail", "nf_sink")}
    return _make("ota_two_stage_miller", "ota",
                 "Two-stage Miller OTA (5T first stage, PMOS common-source second stage, Miller cap cc).",
                 params, ["op", _AC, _NOISE], AmplifierMeasure(), OTA_METRICS, sizing=sizing)


def _ota_folded_cascode() -> LibraryTestbench:
    # 20 parameters: the cascodes share one length and the tail group has no finger count
    # (its fingers only change the tail node's junction capacitance).
    params = (_group("in") + _group("tail", nf=None) + _group("ps") + _group("pc", l=None)
              + _group("nc", l=None) + _group("nm")
              + [DesignParam("l_cas", 90e-9, 360e-9, log=True, unit="m"),
                 DesignParam("ibias", 2e-6, 100e-6, log=True, unit="A"),
                 DesignParam("vb_pc", 0.2, 0.4, unit="V"),
                 DesignParam("vb_nc", 0.5, 0.65, unit="V"),
                 DesignParam("cl", 50e-15, 2e-12, log=True, unit="F")])
    sizing = {"M1": ("w_in", "l_in", "nf_in"), "M2": ("w_in", "l_in", "nf_in"),
              "M0": ("w_tail", "l_tail", None), "Mb1": ("w_tail", "l_tail", None), "Mb2": ("w_tail", "l_tail", None),
              "M3": ("w_ps", "l_ps", "nf_ps"), "M4": ("w_ps", "l_ps", "nf_ps"), "Mb3": ("w_ps", "l_ps", "nf_ps"),
              "M5": ("w_pc", "l_cas", "nf_pc"), "M6": ("w_pc", "l_cas", "nf_pc"),
              "M7": ("w_nc", "l_cas", "nf_nc"), "M8": ("w_nc", "l_cas", "nf_nc"),
              "M9": ("w_nm", "l_nm", "nf_nm"), "M10": ("w_nm", "l_nm", "nf_nm")}
    return _make("ota_folded_cascode", "ota",
                 "Folded-cascode OTA (NMOS pair, PMOS folding sources and cascodes, NMOS cascode mirror).",
                 params, ["op", _AC, _NOISE], AmplifierMeasure(), OTA_METRICS, sizing=sizing)


def _ota_telescopic() -> LibraryTestbench:
    params = (_group("in") + _group("nc") + _group("pc") + _group("ld") + _group("tail")
              + [DesignParam("ibias", 2e-6, 100e-6, log=True, unit="A"),
                 DesignParam("vb_nc", 0.75, 0.85, unit="V"),
                 DesignParam("vb_pc", 0.2, 0.4, unit="V"),
                 DesignParam("cl", 50e-15, 2e-12, log=True, unit="F")])
    sizing = {"M1": ("w_in", "l_in", "nf_in"), "M2": ("w_in", "l_in", "nf_in"),
              "M3": ("w_nc", "l_nc", "nf_nc"), "M4": ("w_nc", "l_nc", "nf_nc"),
              "M5": ("w_pc", "l_pc", "nf_pc"), "M6": ("w_pc", "l_pc", "nf_pc"),
              "M7": ("w_ld", "l_ld", "nf_ld"), "M8": ("w_ld", "l_ld", "nf_ld"),
              "M0": ("w_tail", "l_tail", "nf_tail"), "Mb": ("w_tail", "l_tail", "nf_tail")}
    return _make("ota_telescopic", "ota",
                 "Telescopic-cascode OTA (NMOS pair and cascodes, low-voltage PMOS cascode mirror load).",
                 params, ["op", _AC, _NOISE], AmplifierMeasure(), OTA_METRICS, sizing=sizing)


def _ota_subthreshold_ecg() -> LibraryTestbench:
    # The library file is a closed-loop ECG front end (capacitive feedback, pseudo-resistors),
    # whose response is a band-pass; the OTA's own gain, bandwidth and noise need the open-loop
    # bench of the other OTAs, which replaces it here (output held at vcm by a DC-only servo).
    params = (_group("in", w=(1e-6, 16e-6), l=(250e-9, 2e-6)) + _group("nl", w=(0.25e-6, 4e-6), l=(0.5e-6, 4e-6))
              + _group("pm", w=(0.5e-6, 8e-6), l=(0.5e-6, 4e-6)) + _group("tail", w=(1e-6, 16e-6), l=(0.5e-6, 4e-6))
              + [DesignParam("ibias", 50e-9, 1e-6, log=True, unit="A"),
                 DesignParam("cl", 0.5e-12, 5e-12, log=True, unit="F"),
                 DesignParam("vcm", 0.35, 0.6, unit="V")])
    sizing = {"M1": ("w_in", "l_in", "nf_in"), "M2": ("w_in", "l_in", "nf_in"),
              "M3": ("w_nl", "l_nl", "nf_nl"), "M4": ("w_nl", "l_nl", "nf_nl"),
              "M5": ("w_nl", "l_nl", "nf_nl"), "M6": ("w_nl", "l_nl", "nf_nl"),
              "M7": ("w_pm", "l_pm", "nf_pm"), "M8": ("w_pm", "l_pm", "nf_pm"),
              "M0": ("w_tail", "l_tail", "nf_tail"), "Mb": ("w_tail", "l_tail", "nf_tail")}
    bench = ["* ---- open-loop bench (circml.spice.testbenches): inputs at vcm, AC 1 on inp; DC-only servo",
             "* (rfb, cfb; corner ~1e-10 Hz) holds the output at vcm ----",
             "Vinp inp 0 DC {vcm} AC 1", "Rfb out inn 1g", "Cfb inn 0 1"]
    return _make("ota_subthreshold_ecg", "ota",
                 "Subthreshold PMOS-input symmetrical OTA of the ECG front end, in an open-loop bench; tail "
                 "current = ibias.", params, ["op", _AC, _NOISE], AmplifierMeasure(), OTA_METRICS, sizing=sizing,
                 bench=("* ---- ECG front-end bench", bench))


# ---------------------------------------------------------------------------------------
# Op-amps: the library files' own W/L/bias/compensation .params, around their defaults
# ---------------------------------------------------------------------------------------
def _opamp(name: str, description: str, params: List[DesignParam], out: str = "out") -> LibraryTestbench:
    return _make(name, "opamp", description, params, ["op", _AC], AmplifierMeasure(out=out, noise=False),
                 OPAMP_METRICS)


def _opamps() -> List[LibraryTestbench]:
    u, p = 1e-6, 1e-12
    return [
        _opamp("opamp_three_stage_nmc", "Three-stage nested-Miller op-amp (open loop).", [
            _around("w_in", 32 * u, unit="m"), _around("l_in", 180e-9, unit="m"),
            _around("w_g2", 4 * u, unit="m"), _around("w_cs3", 64 * u, unit="m"),
            _around("ibias", 20 * u, unit="A"), _around("cm1", 3 * p, unit="F"),
            _around("cm2", 1 * p, unit="F"), _around("cl", 2 * p, unit="F")]),
        _opamp("opamp_folded_cascode_class_a", "Folded-cascode first stage + Miller class-A output stage "
               "(open loop).", [
            _around("w_in", 32 * u, unit="m"), _around("l_in", 180e-9, unit="m"),
            _around("w_cs", 64 * u, unit="m"), _around("ibias", 20 * u, unit="A"),
            _around("cc", 1 * p, unit="F"), _around("rz", 2e3, unit="Ohm"), _around("cl", 1 * p, unit="F")]),
        _opamp("opamp_fully_differential_cmfb", "Fully differential two-stage Miller op-amp with CMFB (open loop, "
               "differential output outp-outn).", [
            _around("w_in", 32 * u, unit="m"), _around("l_in", 180e-9, unit="m"),
            _around("w_cs", 32 * u, unit="m"), _around("ibias", 20 * u, unit="A"),
            _around("cc", 1 * p, unit="F"), _around("rz", 2e3, unit="Ohm"), _around("cl", 1 * p, unit="F")],
            out="outp-outn"),
        _opamp("opamp_rail_to_rail_input", "Rail-to-rail-input op-amp, complementary pairs into a folded cascode "
               "(open loop).", [
            _around("w_inn", 32 * u, unit="m"), _around("w_inp", 96 * u, unit="m"),
            _around("w_pc", 16 * u, unit="m"), _around("w_nc", 16 * u, unit="m"),
            _around("ibias", 20 * u, unit="A"), _around("cl", 1 * p, unit="F")]),
        _opamp("opamp_gain_boosted_telescopic", "Gain-boosted telescopic-cascode op-amp (open loop).", [
            _around("w_in", 32 * u, unit="m"), _around("l_in", 180e-9, unit="m"),
            _around("w_nc", 16 * u, unit="m"), _around("w_pc", 32 * u, unit="m"),
            _around("ibias", 20 * u, unit="A"), _around("iboost", 1 * u, unit="A"),
            _around("cl", 1 * p, unit="F")]),
    ]


# ---------------------------------------------------------------------------------------
# Delay lines: supply, input slew and load, plus each line's own knobs
# ---------------------------------------------------------------------------------------
_TRAN = f"tran 2p {CLOCK_PERIOD + CLOCK_DELAY:g}"


def _delay_line(name: str, description: str, own: List[DesignParam]) -> LibraryTestbench:
    params = own + [DesignParam("vsup", 0.9, 1.1, unit="V"),
                    DesignParam("t_slew", 10e-12, 80e-12, log=True, unit="s"),
                    DesignParam("cl", 1e-15, 20e-15, log=True, unit="F")]
    half = CLOCK_PERIOD / 2
    lines = {"Vdd": "Vdd vdd 0 DC {vsup}",
             # 50 % duty clock whose edges take t_slew; 'en' of the NAND line follows the supply
             "Vin": f"Vin in 0 PULSE(0 {{vsup}} {CLOCK_DELAY:g} {{t_slew}} {{t_slew}} {{{half:g}-t_slew}} "
                    f"{CLOCK_PERIOD:g})"}
    if name == "delay_line_nand":
        lines["Ven"] = "Ven en 0 DC {vsup}"
    return _make(name, "delay_line", description, params, [_TRAN], DelayMeasure(), DELAY_METRICS, lines=lines)


def _delay_lines() -> List[LibraryTestbench]:
    n = 1e-9
    return [
        _delay_line("delay_line_inv_rc", "Four inverter + series-R shunt-C stages and an output buffer.", [
            _around("wn", 200 * n, unit="m"), _around("wp", 400 * n, unit="m"),
            _around("rser", 2e3, unit="Ohm"), _around("cshunt", 10e-15, unit="F")]),
        _delay_line("delay_line_current_starved", "Four current-starved inverters biased from vctrl.", [
            _around("wn", 200 * n, unit="m"), _around("wp", 400 * n, unit="m"),
            _around("wsn", 400 * n, unit="m"), _around("wsp", 800 * n, unit="m"),
            DesignParam("vctl", 0.5, 0.9, unit="V"), _around("cstage", 2e-15, unit="F")]),
        _delay_line("delay_line_shunt_cap", "Inverter line with vctrl-switched shunt capacitors.", [
            _around("wn", 200 * n, unit="m"), _around("wp", 400 * n, unit="m"),
            _around("wsw", 400 * n, unit="m"), _around("csh", 20e-15, unit="F"),
            DesignParam("vctl", 0.5, 1.0, unit="V")]),
        _delay_line("delay_line_stacked_inv", "Four three-high stacked inverters and an output buffer.", [
            _around("wn", 200 * n, unit="m"), _around("wp", 400 * n, unit="m"),
            DesignParam("lst", 45e-9, 180e-9, log=True, unit="m")]),
        _delay_line("delay_line_nand", "Four NAND2 stages with a shared enable (held at the supply).", [
            _around("wn", 400 * n, unit="m"), _around("wp", 400 * n, unit="m"),
            _around("cstage", 2e-15, unit="F")]),
    ]


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------
def _build() -> Dict[str, "LibraryTestbench"]:
    tbs = [_ota_5t(), _ota_two_stage_miller(), _ota_folded_cascode(), _ota_telescopic(), _ota_subthreshold_ecg()]
    tbs += _opamps() + _delay_lines()
    return {tb.name: tb for tb in tbs}


TESTBENCHES: Dict[str, LibraryTestbench] = _build()


def list_testbenches(kind: Optional[str] = None) -> List[str]:
    """Names of the registered testbenches, sorted; ``kind`` is one of ``"ota"``, ``"opamp"``,
    ``"delay_line"`` or ``None`` for all.

    Example:
        >>> list_testbenches("delay_line")[:2]
        ['delay_line_current_starved', 'delay_line_inv_rc']
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    return sorted(n for n, tb in TESTBENCHES.items() if kind is None or tb.kind == kind)


def get_testbench(name: str) -> LibraryTestbench:
    """A registered testbench by name (a copy: changing it leaves the registry alone).

    Example:
        >>> tb = get_testbench("ota_two_stage_miller")
        >>> len(tb.params), tb.metrics[:4]
        (17, ['power', 'irn', 'gain_db', 'bw'])
    """
    try:
        tb = TESTBENCHES[name]
    except KeyError:
        raise KeyError(f"no testbench named {name!r}; see list_testbenches()") from None
    return dataclasses.replace(tb, params=list(tb.params), analyses=list(tb.analyses), metrics=list(tb.metrics),
                               units=dict(tb.units), include_dirs=list(tb.include_dirs or []))
