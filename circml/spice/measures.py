"""Measures: plain functions over NumPy arrays that turn simulation vectors into metrics.

Nothing here runs a simulator: pass the arrays of a :class:`~circml.spice.SimResult`
(``r.ac["frequency"]``, ``r.ac["out"]``, ``r.noise["inoise_spectrum"]``, ``r.tran["time"]``, ...).

Conventions shared by every function:

* Units are SI: frequencies in Hz, times in s, voltages in V, currents in A, power in W, gains
  as dimensionless ratios (``*_db`` in dB), phases in degrees.
* ``freq`` is a 1-D, strictly increasing array of positive frequencies. ngspice's AC
  ``frequency`` vector is complex with a zero imaginary part; it is accepted as it is.
* Malformed input (arrays of different lengths, not 1-D, a non-increasing axis, a band outside
  the data) raises :class:`ValueError` naming the argument at fault. A feature that the data
  simply does not have (the gain never falls 3 dB, a waveform never crosses a level) is not an
  error: the measure returns ``nan``, so a sweep records it as "not measurable".
* Crossings are found between samples and located by linear interpolation (in time, or in
  ``log10(f)`` with the magnitude in dB for frequency responses), so they are as accurate as the
  sampling is dense: 20 or more AC points per decade, and a transient step well below the edge.

The four metrics of the OTA sizing work map to: power -> :func:`supply_power`, input-referred
noise -> :func:`integrated_noise` of ``inoise_spectrum``, DC gain -> :func:`dc_gain_db`,
bandwidth -> :func:`bandwidth_3db`.

Example:
    >>> import numpy as np
    >>> f = np.logspace(0, 9, 901)
    >>> h = 1000 / (1 + 1j * f / 1e3)               # A0 = 60 dB, pole at 1 kHz
    >>> round(dc_gain_db(f, h), 3), round(bandwidth_3db(f, h))
    (60.0, 1000)
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Union

import numpy as np

ArrayLike = Union[np.ndarray, list, tuple]

__all__ = [
    "dc_gain_db", "bandwidth_3db", "unity_gain_bandwidth", "phase_margin", "gain_margin", "amplifier_metrics",
    "amplifier_metrics_batch", "integrated_noise_batch",
    "supply_power",
    "integrated_noise", "spot_noise", "crossing_times", "delay", "rise_delay", "fall_delay", "edge_delay",
    "slew_rate", "rise_time", "fall_time", "input_offset",
]

# 3 dB in the sense of half power: |h| = |h0| / sqrt(2), exactly the pole of a one-pole response.
HALF_POWER_DB = 10.0 * math.log10(2.0)

_EDGES = ("rise", "fall")


# ---------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------
def _vector(name: str, x, min_len: int = 2) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size < min_len:
        raise ValueError(f"{name} needs at least {min_len} points, got {a.size}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    return a


def _real(name: str, x, min_len: int = 2) -> np.ndarray:
    a = _vector(name, x, min_len)
    if np.iscomplexobj(a):
        # ngspice stores the axes of AC plots as complex vectors with zero imaginary parts
        if np.any(np.abs(a.imag) > 1e-9 * np.maximum(np.abs(a.real), 1e-300)):
            raise ValueError(f"{name} must be real; it has non-zero imaginary parts")
        a = a.real
    return a.astype(float, copy=False)


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("arrays must have the same length, got " + ", ".join(f"{k}: {n}" for k, n in lengths.items()))


def _freq_axis(freq) -> np.ndarray:
    f = _real("freq", freq)
    if not np.all(np.isfinite(f)):
        raise ValueError("freq has non-finite values")
    if f[0] <= 0:
        raise ValueError(f"freq must be positive (log-frequency interpolation), got freq[0] = {f[0]}")
    if np.any(np.diff(f) <= 0):
        raise ValueError("freq must be strictly increasing")
    return f


def _time_axis(name: str, t) -> np.ndarray:
    t = _real(name, t)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} has non-finite values")
    if np.any(np.diff(t) < 0):
        raise ValueError(f"{name} must be non-decreasing")
    return t


def _response(freq, h):
    f = _freq_axis(freq)
    h = _vector("h", h)
    _same_length(freq=f, h=h)
    return f, h


def _edge(name: str, edge: str) -> str:
    if edge not in _EDGES:
        raise ValueError(f"{name} must be 'rise' or 'fall', got {edge!r}")
    return edge


def _mag_db(h: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(np.abs(h))


def _first_fall_below(y: np.ndarray, level: float) -> int:
    """Index i of the first segment with y[i] > level >= y[i+1]; -1 if none."""
    idx = np.nonzero((y[:-1] > level) & (y[1:] <= level))[0]
    return int(idx[0]) if idx.size else -1


def _interp_logf(f: np.ndarray, y: np.ndarray, i: int, level: float) -> float:
    """Frequency between f[i] and f[i+1] where y (linear in log f on the segment) equals level."""
    lf0, lf1 = math.log10(f[i]), math.log10(f[i + 1])
    if not np.isfinite(y[i + 1]):   # e.g. |h| = 0 exactly: no slope to interpolate with
        return float(f[i + 1])
    w = (level - y[i]) / (y[i + 1] - y[i])
    return float(10.0 ** (lf0 + w * (lf1 - lf0)))


def _at_logf(f: np.ndarray, y: np.ndarray, f0: float) -> float:
    """y at frequency f0, linear in log f."""
    return float(np.interp(math.log10(f0), np.log10(f), y))


def _phase_deg(h: np.ndarray, inverting: Optional[bool]) -> np.ndarray:
    if not np.iscomplexobj(h):
        raise ValueError("h must be complex (a phase is needed); pass the AC vector itself, not its magnitude")
    if inverting is None:
        inverting = bool(h[0].real < 0)
    ph = np.degrees(np.unwrap(np.angle(-h if inverting else h)))
    # start in (-180, 180] whatever branch np.angle picked for the first point
    return ph - 360.0 * np.round(ph[0] / 360.0)


# ---------------------------------------------------------------------------------------
# Frequency response
# ---------------------------------------------------------------------------------------
def dc_gain_db(freq: ArrayLike, h: ArrayLike) -> float:
    """Low-frequency gain in dB: ``20 log10 |h|`` at the lowest frequency of the sweep.

    Args:
        freq: frequencies, Hz, increasing (``r.ac["frequency"]``).
        h: transfer function samples, V/V (complex, or magnitudes), same length.

    Returns:
        The gain in dB (``-inf`` when ``|h| = 0`` there). Start the AC sweep well below the
        first pole, since no extrapolation to 0 Hz is done.

    Example:
        >>> f = np.logspace(0, 6, 61)
        >>> round(dc_gain_db(f, 100 / (1 + 1j * f / 1e4)), 3)
        40.0
    """
    f, h = _response(freq, h)
    return float(_mag_db(h[:1])[0])


def bandwidth_3db(freq: ArrayLike, h: ArrayLike, drop_db: float = HALF_POWER_DB) -> float:
    """-3 dB bandwidth, Hz: the first frequency where ``|h|`` falls ``drop_db`` below its value at
    the lowest frequency of the sweep.

    The default drop is the half-power point, ``10 log10(2) = 3.0103`` dB, so a single pole
    ``A0 / (1 + j f/fp)`` gives exactly ``fp``. Between samples the magnitude in dB is
    interpolated linearly in ``log10(f)``.

    Args:
        freq: frequencies, Hz, increasing.
        h: transfer function samples (complex or magnitudes).
        drop_db: how far below the low-frequency gain, dB (> 0).

    Returns:
        The bandwidth in Hz, or ``nan`` when the gain does not fall that far within the sweep.

    Example:
        >>> f = np.logspace(0, 9, 181)
        >>> round(bandwidth_3db(f, 1000 / (1 + 1j * f / 2e5)) / 2e5, 3)
        1.0
    """
    f, h = _response(freq, h)
    if not drop_db > 0:
        raise ValueError(f"drop_db must be positive, got {drop_db}")
    m = _mag_db(h)
    i = _first_fall_below(m, m[0] - drop_db)
    return math.nan if i < 0 else _interp_logf(f, m, i, m[0] - drop_db)


def unity_gain_bandwidth(freq: ArrayLike, h: ArrayLike) -> float:
    """Unity-gain frequency, Hz: the first frequency where ``|h|`` falls through 1 (0 dB).

    For a single pole ``A0 / (1 + j f/fp)`` with ``A0 >> 1`` it is ``A0 * fp`` (exactly
    ``fp * sqrt(A0**2 - 1)``).

    Args:
        freq: frequencies, Hz, increasing.
        h: transfer function samples (complex or magnitudes).

    Returns:
        The frequency in Hz, or ``nan`` when ``|h|`` starts below 1 or stays above 1 over the sweep.

    Example:
        >>> f = np.logspace(0, 9, 181)
        >>> round(unity_gain_bandwidth(f, 1000 / (1 + 1j * f / 1e3)) / 1e6, 3)
        1.0
    """
    f, h = _response(freq, h)
    m = _mag_db(h)
    i = _first_fall_below(m, 0.0)
    return math.nan if i < 0 else _interp_logf(f, m, i, 0.0)


def phase_margin(freq: ArrayLike, h: ArrayLike, inverting: Optional[bool] = None) -> float:
    """Phase margin, degrees: ``180 + phase(h)`` at the unity-gain frequency.

    ``h`` is the loop gain, or the open-loop gain of an amplifier that a unity negative
    feedback would close. The phase is unwrapped over the sweep (so it must be sampled densely
    enough that it moves less than 180 degrees between points) and shifted so that it starts
    in (-180, 180]: a one-pole response has a phase falling from 0 to -90 and a margin of ~90.

    Inverting convention: an amplifier whose low-frequency gain is negative (a common-source
    stage, an OTA measured at its inverting input) already supplies the negative feedback's
    inversion, so its phase is measured on ``-h``, i.e. from the 180 degrees of a DC inversion.
    ``inverting=None`` (default) decides from the sign of ``Re h`` at the lowest frequency;
    pass ``True``/``False`` to force it.

    Args:
        freq: frequencies, Hz, increasing.
        h: complex transfer function samples.
        inverting: treat ``h`` as inverting (see above); ``None``: from the sign of ``h[0]``.

    Returns:
        The margin in degrees, or ``nan`` without a unity-gain crossing in the sweep.

    Example:
        >>> f = np.logspace(0, 10, 201)
        >>> h = 1e3 / ((1 + 1j * f / 1e3) * (1 + 1j * f / 1e6))   # second pole at the UGB
        >>> round(phase_margin(f, h))
        52
    """
    f, h = _response(freq, h)
    ph = _phase_deg(h, inverting)
    fu = unity_gain_bandwidth(f, h)
    if math.isnan(fu):
        return math.nan
    return 180.0 + _at_logf(f, ph, fu)


def amplifier_metrics(freq: ArrayLike, h: ArrayLike, inverting: Optional[bool] = None) -> Dict[str, float]:
    """The open-loop metrics of one AC response at once: ``{"gain_db", "bw", "ugbw", "pm"}``.

    Equal to :func:`dc_gain_db`, :func:`bandwidth_3db`, :func:`unity_gain_bandwidth` and
    :func:`phase_margin` called one by one (``nan`` where one is undefined), but the inputs are
    checked once, ``|h|`` in dB is computed once and the phase is unwrapped only up to the
    unity-gain crossing: a sweep measures ~thousands of points per second per core, so the
    measures should not cost a tenth of a simulation.

    Example:
        >>> f = np.logspace(0, 10, 201)
        >>> m = amplifier_metrics(f, 1e3 / ((1 + 1j * f / 1e3) * (1 + 1j * f / 1e6)))
        >>> round(m["gain_db"], 1), round(m["bw"] / 1e3, 2), round(m["pm"])
        (60.0, 1.0, 52)
    """
    f, h = _response(freq, h)
    m = _mag_db(h)
    out = {"gain_db": float(m[0]), "bw": math.nan, "ugbw": math.nan, "pm": math.nan}
    i = _first_fall_below(m, m[0] - HALF_POWER_DB)
    if i >= 0:
        out["bw"] = _interp_logf(f, m, i, m[0] - HALF_POWER_DB)
    i = _first_fall_below(m, 0.0)
    if i >= 0:
        fu = _interp_logf(f, m, i, 0.0)
        out["ugbw"] = fu
        if np.iscomplexobj(h):
            # unwrapping is causal: the phase up to the crossing needs only the points up to it
            ph = _phase_deg(h[:i + 2], inverting)
            out["pm"] = 180.0 + _at_logf(f[:i + 2], ph, fu)
    return out


def amplifier_metrics_batch(freq: ArrayLike, H: ArrayLike) -> List[Dict[str, float]]:
    """:func:`amplifier_metrics` of every row of ``H`` ([k, n] responses on one frequency axis),
    equal to calling it row by row (``inverting`` decided per row), with the array work done
    once for all rows: what a sweep's chunk of points costs to measure."""
    f = _freq_axis(freq)
    H = np.asarray(H)
    if H.ndim != 2 or H.shape[1] != f.size:
        raise ValueError(f"H must be [k, {f.size}] (one response per row on freq), got shape {H.shape}")
    M = _mag_db(H)
    out = [{"gain_db": float(M[r, 0]), "bw": math.nan, "ugbw": math.nan, "pm": math.nan} for r in range(len(H))]
    if not len(H):
        return out

    def first_fall(level: np.ndarray) -> np.ndarray:   # per row, as _first_fall_below (-1: none)
        cond = (M[:, :-1] > level[:, None]) & (M[:, 1:] <= level[:, None])
        i = np.argmax(cond, axis=1)
        return np.where(cond[np.arange(len(H)), i], i, -1)

    level = M[:, 0] - HALF_POWER_DB
    for r, i in enumerate(first_fall(level)):
        if i >= 0:
            out[r]["bw"] = _interp_logf(f, M[r], int(i), level[r])
    cross = first_fall(np.zeros(len(H)))
    rows = np.flatnonzero(cross >= 0)
    if rows.size and np.iscomplexobj(H):
        # phases of all crossing rows at once, as _phase_deg does per row (unwrapping is causal)
        Hc = H[rows]
        inv = Hc[:, 0].real < 0
        ph = np.degrees(np.unwrap(np.angle(np.where(inv[:, None], -Hc, Hc)), axis=1))
        ph -= 360.0 * np.round(ph[:, :1] / 360.0)
    for q, r in enumerate(rows):
        i = int(cross[r])
        fu = _interp_logf(f, M[r], i, 0.0)
        out[r]["ugbw"] = fu
        if np.iscomplexobj(H):
            out[r]["pm"] = 180.0 + _at_logf(f[:i + 2], ph[q, :i + 2], fu)
    return out


def gain_margin(freq: ArrayLike, h: ArrayLike, inverting: Optional[bool] = None) -> float:
    """Gain margin, dB: ``-20 log10 |h|`` at the first frequency where the phase falls through
    -180 degrees (same phase convention as :func:`phase_margin`).

    Args:
        freq: frequencies, Hz, increasing.
        h: complex transfer function samples.
        inverting: treat ``h`` as inverting; ``None``: from the sign of ``h[0]``.

    Returns:
        The margin in dB (positive: stable with margin), or ``nan`` when the phase never reaches
        -180 degrees in the sweep (one or two poles: the margin is unbounded).

    Example:
        >>> f = np.logspace(0, 9, 901)
        >>> h = 5 / (1 + 1j * f / 1e4) ** 3   # -180 deg where |1 + j f/p| = 2: |h| = 5/8
        >>> round(gain_margin(f, h), 2)
        4.08
    """
    f, h = _response(freq, h)
    ph = _phase_deg(h, inverting)
    i = _first_fall_below(ph, -180.0)
    if i < 0:
        return math.nan
    f180 = _interp_logf(f, ph, i, -180.0)
    return -_at_logf(f, _mag_db(h), f180)


# ---------------------------------------------------------------------------------------
# Power
# ---------------------------------------------------------------------------------------
def supply_power(current: Union[float, ArrayLike], voltage: Union[float, ArrayLike]) -> Union[float, np.ndarray]:
    """Power drawn from a supply, W: ``|I * V|``.

    ngspice reports the current of a voltage source as ``<name>#branch``, positive when it flows
    into the source's ``+`` node from the circuit, so a supply delivering power has a negative
    branch current; the absolute value makes the sign convention irrelevant. Sum the calls for
    several supplies.

    Args:
        current: the supply's branch current, A (a number, or an array such as a transient vector).
        voltage: its voltage, V (a number or an array of the same length).

    Returns:
        A float for scalar inputs, else an array of instantaneous powers (average it yourself
        over time if you need mean power).

    Example:
        >>> supply_power(-0.6e-3, 1.8)        # r.op["vdd#branch"], r.op["vdd"]
        0.00108
    """
    i = np.asarray(current)
    v = np.asarray(voltage)
    for name, a in (("current", i), ("voltage", v)):
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
        if a.ndim > 1:
            raise ValueError(f"{name} must be a number or a 1-D array, got shape {a.shape}")
    if i.ndim == 1 and v.ndim == 1 and i.shape != v.shape:
        raise ValueError(f"current and voltage must have the same length, got {i.size} and {v.size}")
    p = np.abs(np.real(i) * np.real(v))
    return float(p) if p.ndim == 0 else p


# ---------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------
def _noise(freq, density):
    f = _freq_axis(freq)
    d = _real("density", density)
    _same_length(freq=f, density=d)
    if np.any(d < 0):
        raise ValueError("density must be non-negative (an amplitude spectral density, V/sqrt(Hz))")
    return f, d


def integrated_noise(freq: ArrayLike, density: ArrayLike, f_low: Optional[float] = None,
                     f_high: Optional[float] = None) -> float:
    """RMS noise over a band: ``sqrt( integral of density(f)**2 df )`` from ``f_low`` to ``f_high``.

    ngspice's noise analysis gives amplitude spectral densities (``onoise_spectrum`` in
    V/sqrt(Hz) at the output, ``inoise_spectrum`` referred to the input source, V/sqrt(Hz) or
    A/sqrt(Hz)). The power density ``density**2`` is integrated with the trapezoid rule in
    linear frequency; band edges that fall between samples are interpolated (linearly in f).
    With a log-spaced sweep, use enough points per decade (20+) where the spectrum bends.

    Args:
        freq: frequencies, Hz, increasing.
        density: amplitude spectral density, V/sqrt(Hz) (or A/sqrt(Hz)), same length, >= 0.
        f_low, f_high: the band, Hz; default: the whole sweep. Must lie within the sweep.

    Returns:
        The RMS value, V (or A).

    Example:
        >>> f = np.linspace(1, 1001, 11)
        >>> round(integrated_noise(f, np.full(11, 1e-8)) * 1e9, 3)   # white: density * sqrt(bandwidth), nV
        316.228
    """
    f, d = _noise(freq, density)
    lo, hi, j0, j1, ff = _band(f, f_low, f_high)
    s = d * d
    ss = np.empty(j1 - j0 + 2)
    ss[0], ss[1:-1], ss[-1] = np.interp(lo, f, s), s[j0:j1], np.interp(hi, f, s)
    return float(math.sqrt(np.sum(0.5 * (ss[1:] + ss[:-1]) * np.diff(ff))))


def _band(f: np.ndarray, f_low: Optional[float], f_high: Optional[float]):
    """The band checked against the data: (lo, hi, j0, j1, ff) with f[j0:j1] the samples
    strictly inside (lo, hi) and ff those with the edges added (the trapezoid's abscissae)."""
    lo = f[0] if f_low is None else float(f_low)
    hi = f[-1] if f_high is None else float(f_high)
    tol = 1e-9 * f[-1]
    if not lo < hi:
        raise ValueError(f"f_low ({lo}) must be below f_high ({hi})")
    if lo < f[0] - tol or hi > f[-1] + tol:
        raise ValueError(f"band [{lo:g}, {hi:g}] Hz is outside the data [{f[0]:g}, {f[-1]:g}] Hz")
    lo, hi = max(lo, f[0]), min(hi, f[-1])
    j0, j1 = int(np.searchsorted(f, lo, "right")), int(np.searchsorted(f, hi, "left"))
    ff = np.empty(j1 - j0 + 2)
    ff[0], ff[1:-1], ff[-1] = lo, f[j0:j1], hi
    return lo, hi, j0, j1, ff


def integrated_noise_batch(freq: ArrayLike, densities: ArrayLike, f_low: Optional[float] = None,
                           f_high: Optional[float] = None) -> np.ndarray:
    """:func:`integrated_noise` of every row of ``densities`` ([k, n] on one frequency axis),
    equal to calling it row by row; NaN for a row with a negative or non-finite density."""
    f = _freq_axis(freq)
    D = np.asarray(densities)
    if D.ndim != 2 or D.shape[1] != f.size:
        raise ValueError(f"densities must be [k, {f.size}], got shape {D.shape}")
    if np.iscomplexobj(D):
        D = np.stack([_real("density", d) for d in D]) if len(D) else D.real
    D = D.astype(float, copy=False)
    lo, hi, j0, j1, ff = _band(f, f_low, f_high)
    S = D * D
    SS = np.empty((len(D), j1 - j0 + 2))
    SS[:, 1:-1] = S[:, j0:j1]
    for r in range(len(D)):
        SS[r, 0], SS[r, -1] = np.interp(lo, f, S[r]), np.interp(hi, f, S[r])
    w = np.diff(ff)
    out = np.array([math.sqrt(np.sum(0.5 * (ss[1:] + ss[:-1]) * w)) for ss in SS]) if len(D) else np.zeros(0)
    out[~(np.all(D >= 0, axis=1) & np.all(np.isfinite(D), axis=1))] = math.nan
    return out


def spot_noise(freq: ArrayLike, density: ArrayLike, f: Union[float, ArrayLike]) -> Union[float, np.ndarray]:
    """Noise density at frequency ``f``, in the unit of ``density`` (V/sqrt(Hz)).

    Interpolated linearly in log-log between samples (noise spectra are piecewise power laws:
    1/f, white, roll-off); linearly where a neighbouring sample is zero.

    Args:
        freq: frequencies, Hz, increasing.
        density: amplitude spectral density, same length.
        f: the frequency (or frequencies), Hz, within the sweep.

    Returns:
        A float for a scalar ``f``, else an array.

    Example:
        >>> fr = np.logspace(0, 6, 7)
        >>> spot_noise(fr, 1e-8 / np.sqrt(fr), 100.0)      # 1/f noise power: density ~ f**-0.5
        1e-09
    """
    fr, d = _noise(freq, density)
    x = np.asarray(f, dtype=float)
    if np.any(~np.isfinite(x)) or np.any(x < fr[0] * (1 - 1e-12)) or np.any(x > fr[-1] * (1 + 1e-12)):
        raise ValueError(f"f must lie within the sweep [{fr[0]:g}, {fr[-1]:g}] Hz, got {f}")
    x = np.clip(x, fr[0], fr[-1])
    j = np.clip(np.searchsorted(fr, x, side="right") - 1, 0, len(fr) - 2)   # segment of each f
    f0, f1, d0, d1 = fr[j], fr[j + 1], d[j], d[j + 1]
    w_log = np.log(x / f0) / np.log(f1 / f0)
    w_lin = (x - f0) / (f1 - f0)
    with np.errstate(divide="ignore", invalid="ignore"):
        loglog = d0 * (d1 / d0) ** w_log
    out = np.where((d0 > 0) & (d1 > 0), loglog, d0 + w_lin * (d1 - d0))
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------
# Waveforms
# ---------------------------------------------------------------------------------------
def _waveform(t, v, vname: str = "v"):
    t = _time_axis("t", t)
    v = _real(vname, v)
    _same_length(t=t, **{vname: v})
    return t, v


def _crossings(t: np.ndarray, v: np.ndarray, level: float, direction: str) -> np.ndarray:
    v0, v1 = v[:-1], v[1:]
    rise = (v0 < level) & (v1 >= level)
    fall = (v0 > level) & (v1 <= level)
    sel = rise if direction == "rise" else fall if direction == "fall" else rise | fall
    i = np.nonzero(sel)[0]
    w = (level - v[i]) / (v[i + 1] - v[i])
    return t[i] + w * (t[i + 1] - t[i])


def crossing_times(t: ArrayLike, v: ArrayLike, level: float, direction: str = "both") -> np.ndarray:
    """Times at which waveform ``v`` crosses ``level``, s, in order, linearly interpolated.

    A rising crossing is a segment with ``v[i] < level <= v[i+1]``; a falling one has
    ``v[i] > level >= v[i+1]`` (a sample exactly at the level counts once, where it is reached).

    Args:
        t: times, s, non-decreasing (``r.tran["time"]``).
        v: the waveform, same length.
        level: the level, in the unit of ``v``.
        direction: ``"rise"``, ``"fall"`` or ``"both"``.

    Returns:
        An array of times (empty when ``v`` never crosses ``level``).

    Example:
        >>> crossing_times([0, 1, 2, 3], [0, 1, 0, 1], 0.5, "rise")
        array([0.5, 2.5])
    """
    t, v = _waveform(t, v)
    if direction not in ("rise", "fall", "both"):
        raise ValueError(f"direction must be 'rise', 'fall' or 'both', got {direction!r}")
    return _crossings(t, v, float(level), direction)


def _first_after(times: np.ndarray, t0: float) -> float:
    later = times[times >= t0]
    return float(later[0]) if later.size else math.nan


def edge_delay(t: ArrayLike, v_in: ArrayLike, v_out: ArrayLike, vdd: float, in_edge: str, out_edge: str,
               frac: float = 0.5, vss: float = 0.0, after: Optional[float] = None) -> float:
    """Propagation delay, s, between a chosen input edge and a chosen output edge.

    The input's first ``in_edge`` crossing of ``vss + frac*(vdd - vss)`` at or after ``after``,
    then the output's first ``out_edge`` crossing of the same level at or after that: the delay
    is the difference. Pair the edges as the path does: a buffer ``rise``->``rise``, an
    inverter ``fall``->``rise`` (its rise delay, tpLH) and ``rise``->``fall`` (tpHL).

    Args:
        t: times, s. v_in, v_out: input and output waveforms, V, same length.
        vdd: the logic high level, V. vss: the logic low level, V (default 0).
        in_edge, out_edge: ``"rise"`` or ``"fall"``.
        frac: the threshold as a fraction of the swing (default 50 %).
        after: ignore input crossings before this time, s (default: the start).

    Returns:
        The delay in s, or ``nan`` if either crossing is missing.

    Example:
        >>> t = np.linspace(0, 10, 1001)
        >>> round(edge_delay(t, (t > 1) * 1.0, np.clip(t - 3, 0, 1), 1.0, "rise", "rise"), 3)  # 1.005 -> 3.5
        2.495
    """
    t = _time_axis("t", t)
    vi = _real("v_in", v_in)
    vo = _real("v_out", v_out)
    _same_length(t=t, v_in=vi, v_out=vo)
    _edge("in_edge", in_edge)
    _edge("out_edge", out_edge)
    if not 0.0 < frac < 1.0:
        raise ValueError(f"frac must be between 0 and 1, got {frac}")
    if not vdd > vss:
        raise ValueError(f"vdd ({vdd}) must be above vss ({vss})")
    level = vss + frac * (vdd - vss)
    t_in = _first_after(_crossings(t, vi, level, in_edge), t[0] if after is None else float(after))
    if math.isnan(t_in):
        return math.nan
    t_out = _first_after(_crossings(t, vo, level, out_edge), t_in)
    return t_out - t_in


def rise_delay(t: ArrayLike, v_in: ArrayLike, v_out: ArrayLike, vdd: float, in_edge: str = "rise",
               frac: float = 0.5, vss: float = 0.0, after: Optional[float] = None) -> float:
    """Delay to the output's rising edge, s: from the input's ``in_edge`` crossing of the
    ``frac`` level to the output's next rising crossing of it (see :func:`edge_delay`).

    ``in_edge="rise"`` for a non-inverting path; ``in_edge="fall"`` for an inverting one (an
    inverter's tpLH: the output rises after the input falls).

    Example:
        >>> t = np.linspace(0, 10, 1001)
        >>> round(rise_delay(t, 1.0 - (t > 1), np.clip(t - 3, 0, 1), 1.0, in_edge="fall"), 3)
        2.495
    """
    return edge_delay(t, v_in, v_out, vdd, in_edge, "rise", frac, vss, after)


def fall_delay(t: ArrayLike, v_in: ArrayLike, v_out: ArrayLike, vdd: float, in_edge: str = "fall",
               frac: float = 0.5, vss: float = 0.0, after: Optional[float] = None) -> float:
    """Delay to the output's falling edge, s: from the input's ``in_edge`` crossing of the
    ``frac`` level to the output's next falling crossing of it (see :func:`edge_delay`).

    ``in_edge="fall"`` for a non-inverting path; ``in_edge="rise"`` for an inverting one (an
    inverter's tpHL).

    Example:
        >>> t = np.linspace(0, 10, 1001)
        >>> round(fall_delay(t, 1.0 * (t > 1), np.clip(4 - t, 0, 1), 1.0, in_edge="rise"), 3)
        2.495
    """
    return edge_delay(t, v_in, v_out, vdd, in_edge, "fall", frac, vss, after)


def delay(t: ArrayLike, v_in: ArrayLike, v_out: ArrayLike, vdd: float, edge: str = "rise", frac: float = 0.5,
          inverting: bool = False, vss: float = 0.0, after: Optional[float] = None) -> float:
    """Propagation delay, s, named by the output's edge.

    ``edge="rise"``: from the input's 50 % crossing to the output's 50 % rising crossing;
    ``edge="fall"``: to its falling crossing. The input edge paired with it is the same edge
    for a non-inverting path and the opposite one for ``inverting=True`` (rise delay of an
    inverter = input falling -> output rising). :func:`rise_delay`, :func:`fall_delay` and
    :func:`edge_delay` take the edges explicitly.

    Args:
        t: times, s. v_in, v_out: waveforms, V. vdd: logic high, V.
        edge: the output edge, ``"rise"`` or ``"fall"``.
        frac: the threshold as a fraction of ``vdd - vss``.
        inverting: whether the path inverts.

    Returns:
        The delay in s, or ``nan`` if an edge is missing.

    Example:
        >>> t = np.linspace(0, 10, 1001)
        >>> round(delay(t, 1.0 * (t > 1), np.clip(4 - t, 0, 1), 1.0, edge="fall", inverting=True), 3)
        2.495
    """
    _edge("edge", edge)
    other = "fall" if edge == "rise" else "rise"
    return edge_delay(t, v_in, v_out, vdd, other if inverting else edge, edge, frac, vss, after)


def _levels(v: np.ndarray, lo: float, hi: float, v_low: Optional[float], v_high: Optional[float]):
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")
    vl = float(np.min(v)) if v_low is None else float(v_low)
    vh = float(np.max(v)) if v_high is None else float(v_high)
    if not vh > vl:
        raise ValueError(f"the waveform has no swing (low {vl}, high {vh})")
    return vl + lo * (vh - vl), vl + hi * (vh - vl)


def _transition(t, v, lo, hi, v_low, v_high, edge, after):
    t, v = _waveform(t, v)
    a, b = _levels(v, lo, hi, v_low, v_high)
    t0 = t[0] if after is None else float(after)
    if edge == "rise":
        t_a = _first_after(_crossings(t, v, a, "rise"), t0)
        t_b = _first_after(_crossings(t, v, b, "rise"), t_a) if not math.isnan(t_a) else math.nan
    else:
        t_a = _first_after(_crossings(t, v, b, "fall"), t0)
        t_b = _first_after(_crossings(t, v, a, "fall"), t_a) if not math.isnan(t_a) else math.nan
    return t_b - t_a, b - a


def rise_time(t: ArrayLike, v: ArrayLike, lo: float = 0.1, hi: float = 0.9, v_low: Optional[float] = None,
              v_high: Optional[float] = None, after: Optional[float] = None) -> float:
    """Rise time, s: from the first rising crossing of the ``lo`` level to the next rising
    crossing of the ``hi`` level.

    Levels are fractions of the swing from ``v_low`` to ``v_high`` (default: the waveform's
    minimum and maximum; pass the rails when the waveform does not settle within the run).
    A first-order step response ``1 - exp(-t/tau)`` has a 10-90 % rise time ``tau * ln 9``.

    Returns:
        The time in s, or ``nan`` without such an edge (at or after ``after``).

    Example:
        >>> t = np.linspace(0, 10, 1001)
        >>> round(rise_time(t, np.clip(t - 2, 0, 5)), 3)       # a 1 V/s ramp over 5 V: 4 s
        4.0
    """
    return _transition(t, v, lo, hi, v_low, v_high, "rise", after)[0]


def fall_time(t: ArrayLike, v: ArrayLike, lo: float = 0.1, hi: float = 0.9, v_low: Optional[float] = None,
              v_high: Optional[float] = None, after: Optional[float] = None) -> float:
    """Fall time, s: from the first falling crossing of the ``hi`` level to the next falling
    crossing of the ``lo`` level (levels as in :func:`rise_time`).

    Example:
        >>> t = np.linspace(0, 10, 1001)
        >>> round(fall_time(t, np.clip(7 - t, 0, 5)), 3)
        4.0
    """
    return _transition(t, v, lo, hi, v_low, v_high, "fall", after)[0]


def slew_rate(t: ArrayLike, v: ArrayLike, lo: float = 0.1, hi: float = 0.9, edge: str = "rise",
              v_low: Optional[float] = None, v_high: Optional[float] = None, after: Optional[float] = None) -> float:
    """Average slew rate over an edge, V/s: ``(V_hi - V_lo) / (t_hi - t_lo)`` between the ``lo``
    and ``hi`` levels of the swing (levels as in :func:`rise_time`).

    Args:
        t: times, s. v: waveform, V.
        lo, hi: the levels, fractions of the swing.
        edge: ``"rise"`` or ``"fall"``; the result is positive for both (a magnitude).

    Returns:
        The slew rate in V/s, or ``nan`` without such an edge.

    Example:
        >>> t = np.linspace(0, 1e-6, 1001)
        >>> round(slew_rate(t, np.clip(t * 1e7, 0, 1.0)) / 1e6, 3)     # 10 V/us
        10.0
    """
    _edge("edge", edge)
    dt, dv = _transition(t, v, lo, hi, v_low, v_high, edge, after)
    return math.nan if math.isnan(dt) else (math.inf if dt == 0 else dv / dt)


# ---------------------------------------------------------------------------------------
# DC transfer
# ---------------------------------------------------------------------------------------
def input_offset(vin_sweep: ArrayLike, vout: ArrayLike, v_target: float) -> float:
    """Input at which the output reaches ``v_target``, V, from a DC sweep of the input.

    Sweep an amplifier's differential input (``dc Vid -10m 10m 10u``) and pass the output's
    ideal value (e.g. the common-mode or mid-supply level): the result is the input offset
    voltage, whatever the sign of the gain. The first crossing is linearly interpolated.

    Args:
        vin_sweep: the swept input, V, strictly monotonic (``r.dc["v-sweep"]``).
        vout: the output at each point, V, same length.
        v_target: the output level, V.

    Returns:
        The input in V, or ``nan`` when the output never crosses ``v_target``.

    Example:
        >>> x = np.linspace(-0.01, 0.01, 201)
        >>> round(input_offset(x, np.tanh(1000 * (x - 0.002)) + 0.5, 0.5), 6)
        0.002
    """
    x = _real("vin_sweep", vin_sweep)
    y = _real("vout", vout)
    _same_length(vin_sweep=x, vout=y)
    d = np.diff(x)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError("vin_sweep must be strictly monotonic")
    level = float(v_target)
    hit = np.nonzero(y[1:] == level)[0] + 1   # a sample exactly at the level
    cross = np.nonzero(((y[:-1] < level) & (y[1:] > level)) | ((y[:-1] > level) & (y[1:] < level)))[0]
    if y[0] == level:
        return float(x[0])
    if cross.size and (not hit.size or cross[0] < hit[0]):
        k = int(cross[0])
        return float(x[k] + (level - y[k]) / (y[k + 1] - y[k]) * (x[k + 1] - x[k]))
    return float(x[hit[0]]) if hit.size else math.nan
