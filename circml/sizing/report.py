"""The sizing report: the paper's Table II, measured with ngspice in the loop.

For each OTA testbench :func:`report` builds a dataset of simulated designs (a Latin-hypercube
sweep cached in an SQLite store, failed points dropped), picks performance targets that no
training design meets (:func:`choose_targets`), fits every method on the same data, draws
``n_samples`` designs per method and target, simulates **every** sample through the same
testbench, and tabulates per target and method the closest sample's metrics, the fraction of
samples meeting all four specs ("accuracy") and the times (training, sampling, simulation).

    >>> from circml.sizing.report import report                       # doctest: +SKIP
    >>> rep = report(["ota_5t"], n_designs=1000, n_targets=2)           # doctest: +SKIP
    >>> print(rep.to_markdown())                                        # doctest: +SKIP
    >>> rep.save("benchmarks/results/sizing_report.json")               # doctest: +SKIP

From the shell (the full four-testbench report)::

    python -m circml.sizing.report --out benchmarks/results/sizing_report.json

Methods are pluggable: a :class:`Method` is a name and a factory ``testbench -> sizer`` whose
result has ``fit(X, Y, ranges=, directions=, progress=)`` and ``sample(target, n=)``
(:func:`default_methods` gives the paper's four). Specs are the paper's: ``power <=``,
``irn <=``, ``gain_db >=``, ``bw >=``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..spice.pool import SimulationPool
from .baselines import DiffusionMLPSizer, EvolutionarySizer, InverseANNSizer, spec_violation
from .diffusion import DiffusionSizer, parse_directions

METRICS = ("power", "irn", "gain_db", "bw")
DIRECTIONS = ("<=", "<=", ">=", ">=")
#: The learned sizers condition on log(power), log(irn), log(bw) (they span decades) and gain in dB.
LOG_METRICS = [True, True, False, True]
#: The four OTAs of the full report (``ota_5t`` is the small one the default tests use).
DEFAULT_TESTBENCHES = ("ota_two_stage_miller", "ota_folded_cascode", "ota_telescopic", "ota_subthreshold_ecg")
#: Display units of the table: (column title, scale applied to the SI value, format).
DISPLAY = {"power": ("power [µW]", 1e6, "{:.3g}"), "irn": ("IRN [µV]", 1e6, "{:.3g}"),
           "gain_db": ("G_DC [dB]", 1.0, "{:.1f}"), "bw": ("BW [kHz]", 1e-3, "{:.3g}")}


# -- methods -----------------------------------------------------------------------------------
@dataclass
class Method:
    """One row kind of the table: ``factory(testbench)`` returns an unfitted sizer.

    ``learned=False`` marks a method that simulates while it searches (the evolutionary
    optimiser): it has no training time, and its time is the time to its first feasible design.
    """

    name: str
    factory: Callable[[Any], Any]
    learned: bool = True
    sample_kwargs: Dict[str, Any] = field(default_factory=dict)


def log_flags(testbench) -> List[bool]:
    """Which of the testbench's parameters are log-scaled (widths, lengths, currents, caps):
    the learned sizers normalise those on a log scale, as the sweep samples them."""
    return [bool(p.log) for p in testbench.params]


def default_methods(evolution_max_calls: Optional[int] = 512 * 10, workers: Optional[int] = None,
                    seed: int = 0) -> List[Method]:
    """The paper's four rows: the diffusion transformer (default :class:`SizerConfig`: DDIM 50,
    guidance ``w = 0.1``, overshoot 0.25 robust standard deviations), DM-MLP (the same sampler, so the same
    overshoot), the inverse ANN (its own spread of tightened targets), and differential evolution
    with population 512 and ngspice in the loop (at most ``evolution_max_calls`` simulations per
    target). The three learned sizers see the same data: sizes on the testbench's log/linear
    scales, the x10 relaxed-spec augmentation, and the log of power, noise and bandwidth
    (:data:`LOG_METRICS`)."""
    return [
        Method("DM-Transf.", lambda tb: DiffusionSizer(seed=seed, log_sizes=log_flags(tb), log_metrics=LOG_METRICS)),
        Method("DM-MLP", lambda tb: DiffusionMLPSizer(seed=seed, log_sizes=log_flags(tb), log_metrics=LOG_METRICS)),
        Method("ANN", lambda tb: InverseANNSizer(seed=seed, log_sizes=log_flags(tb), log_metrics=LOG_METRICS)),
        Method("Sim.-based", lambda tb: EvolutionarySizer(tb, population=512, max_calls=evolution_max_calls,
                                                          workers=workers, seed=seed, progress=False),
               learned=False),
    ]


# -- data ---------------------------------------------------------------------------------------
def dataset(testbench, n: int = 2000, seed: int = 0, cache_dir: Union[str, Path, None] = None,
            workers: Optional[int] = None, progress: bool = True) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """``n`` Latin-hypercube designs of ``testbench`` simulated in ngspice, as ``X [k, D]`` and
    ``Y [k, 4]`` (the :data:`METRICS` columns) over the ``k`` points that simulated and show all
    four metrics. With ``cache_dir`` the sweep is kept in ``<cache_dir>/<name>_<n>_s<seed>.sqlite``
    and a rerun simulates nothing. Also returns counts and the sweep's wall time."""
    from ..spice import sweep
    store = None
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        store = str(Path(cache_dir) / f"{testbench.name}_{n}_s{seed}.sqlite")
    t0 = time.perf_counter()
    ds = sweep(testbench, int(n), method="lhs", seed=seed, store=store, workers=workers, progress=progress)
    wall = time.perf_counter() - t0
    cols = [list(ds.metric_names).index(m) for m in METRICS]
    Y = np.asarray(ds.Y, np.float64)[:, cols]
    ok = (np.asarray(ds.status) == "ok") & np.isfinite(Y).all(axis=1)
    info = {"n_swept": int(len(ds.X)), "n_failed": int((np.asarray(ds.status) != "ok").sum()),
            "n_missing_metric": int(((np.asarray(ds.status) == "ok") & ~np.isfinite(Y).all(axis=1)).sum()),
            "n_designs": int(ok.sum()), "sweep_wall_s": wall,
            "simulation_s": float(np.nansum(np.asarray(ds.elapsed, np.float64)))}
    return np.asarray(ds.X, np.float64)[ok], Y[ok], info


def meets(Y: np.ndarray, target: Sequence[float], directions: Sequence = DIRECTIONS) -> np.ndarray:
    """``[n]`` bool: the rows of ``Y`` that meet every spec of ``target`` (NaN rows never do)."""
    return spec_violation(np.atleast_2d(Y), np.asarray(target, np.float64), directions) == 0


def pareto_mask(Y: np.ndarray, directions: Sequence = DIRECTIONS) -> np.ndarray:
    """``[n]`` bool: rows no other row dominates (at least as good in every metric, better in one)."""
    G = -parse_directions(directions) * np.asarray(Y, np.float64)   # larger is better in every column
    keep = np.ones(len(G), bool)
    for i in range(len(G)):
        ge = (G >= G[i]).all(axis=1)
        gt = (G > G[i]).any(axis=1)
        keep[i] = not (ge & gt).any()
    return keep


def tighten(y: Sequence[float], fraction: float, directions: Sequence = DIRECTIONS,
            metrics: Sequence[str] = METRICS) -> np.ndarray:
    """Every spec of ``y`` made ``fraction`` stricter: ``<=`` metrics times ``1 - fraction``,
    ``>=`` metrics times ``1 + fraction``; a metric in dB gets ``20 log10(1 + fraction)`` dB."""
    y = np.asarray(y, np.float64).copy()
    s = parse_directions(directions)
    for j, m in enumerate(metrics):
        if m.endswith("_db"):
            y[j] -= s[j] * 20 * np.log10(1 + fraction)
        else:
            y[j] *= 1 - s[j] * fraction
    return y


def choose_targets(Y: np.ndarray, k: int = 2, fraction: float = 0.05, directions: Sequence = DIRECTIONS,
                   metrics: Sequence[str] = METRICS, neighbourhood: float = 0.2,
                   min_separation: float = 0.2) -> Tuple[np.ndarray, np.ndarray]:
    """``k`` targets no row of ``Y`` meets, each a good training design made ``fraction`` stricter.

    The source designs are Pareto-optimal, so no training design meets even their own metrics
    tightened (any ``fraction > 0`` gives a target outside the data). Among them the ones in the
    most populated part of the front come first, so that a target is plausibly reachable: ranked
    by how many training designs meet the source's metrics *relaxed* by ``neighbourhood``
    (``tighten(y, -neighbourhood)``). The next one chosen differs from those already taken by at
    least ``min_separation`` in some metric's percentile. Returns ``(targets [k, M], rows [k])``:
    the targets and the indices of the designs they came from.
    """
    Y = np.asarray(Y, np.float64)
    s = parse_directions(directions)
    # percentile of every metric in its good direction (1: best in the data)
    ranks = np.argsort(np.argsort(-s * Y, axis=0), axis=0) / max(1, len(Y) - 1)
    front = np.flatnonzero(pareto_mask(Y, directions))
    near = np.array([meets(Y, tighten(Y[i], -neighbourhood, directions, metrics), directions).sum() for i in front])
    order = front[np.argsort(-near, kind="stable")]
    chosen: List[int] = []
    for i in order:
        if all(np.abs(ranks[i] - ranks[j]).max() >= min_separation for j in chosen):
            chosen.append(int(i))
        if len(chosen) == k:
            break
    if len(chosen) < k:
        raise ValueError(f"only {len(chosen)} Pareto designs are {min_separation} apart; lower min_separation or k")
    T = np.stack([tighten(Y[i], fraction, directions, metrics) for i in chosen])
    for t in T:
        if meets(Y, t, directions).any():   # cannot happen for a Pareto design and fraction > 0
            raise AssertionError("a training design meets a chosen target")
    return T, np.asarray(chosen)


# -- simulation ----------------------------------------------------------------------------------
def simulate(testbench, X: np.ndarray, executor=None, workers: Optional[int] = None) -> Tuple[np.ndarray, float]:
    """Simulate designs ``X [n, D]``: ``(Y [n, 4] with NaN rows for failed points, wall seconds)``."""
    from ..spice import sweep
    t0 = time.perf_counter()
    ds = sweep(testbench, np.asarray(X, np.float64), workers=workers, executor=executor, progress=False)
    wall = time.perf_counter() - t0
    cols = [list(ds.metric_names).index(m) for m in METRICS]
    Y = np.asarray(ds.Y, np.float64)[:, cols]
    Y[np.asarray(ds.status) != "ok"] = np.nan
    return Y, wall


def closest(Y: np.ndarray, target: Sequence[float], directions: Sequence = DIRECTIONS) -> int:
    """Index of the sample closest to meeting ``target``: the lowest :func:`spec_violation`;
    among feasible ones (violation 0) the one nearest the target (smallest sum of
    ``|log(y / t)|``, or ``|y - t| / 20`` for dB metrics), as the paper's table shows one
    design that just meets the specs. ``-1`` when every sample failed to simulate."""
    Y = np.atleast_2d(np.asarray(Y, np.float64))
    v = spec_violation(Y, target, directions)
    if not np.isfinite(v).any():
        return -1
    t = np.asarray(target, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where([m.endswith("_db") for m in METRICS], np.abs(Y - t) / 20, np.abs(np.log(np.abs(Y / t))))
    d = np.nan_to_num(d.sum(axis=1), nan=np.inf)
    return int(np.lexsort((d, v))[0])


# -- the report ----------------------------------------------------------------------------------
@dataclass
class SizingReport:
    """What :func:`report` measured: ``rows`` (one per testbench, target and method),
    ``testbenches`` (dataset sizes, targets, training times), ``tradeoff`` and ``meta``.
    ``samples`` keeps the simulated metrics of every sample (and the training metrics) for
    plotting; it is saved to the JSON too."""

    rows: List[Dict[str, Any]] = field(default_factory=list)
    testbenches: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    tradeoff: List[Dict[str, Any]] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)
    samples: Dict[str, Any] = field(default_factory=dict)

    # -- views ----------------------------------------------------------------------------------
    def methods(self) -> List[str]:
        seen: List[str] = []
        for r in self.rows:
            if r["method"] not in seen:
                seen.append(r["method"])
        return seen

    def goals(self, method: str = "DM-Transf.", learned_baselines: Sequence[str] = ("DM-MLP", "ANN")) -> Dict[str, Any]:
        """The issue's goals, checked on the measured rows: every target has a feasible
        ``method`` sample; its feasible fraction beats each learned baseline's (per target and
        on average); its sampling time for 100 designs."""
        mine = {(r["testbench"], r["target_index"]): r for r in self.rows if r["method"] == method}
        out: Dict[str, Any] = {"method": method, "targets": len(mine),
                               "targets_with_feasible": sum(r["n_feasible"] > 0 for r in mine.values()),
                               "mean_accuracy": float(np.mean([r["accuracy"] for r in mine.values()])) if mine else None,
                               "max_sample_time_s": max((r["sample_time_s"] for r in mine.values()), default=None)}
        for b in learned_baselines:
            theirs = {(r["testbench"], r["target_index"]): r for r in self.rows if r["method"] == b}
            if not theirs:
                continue
            keys = [k for k in mine if k in theirs]
            out[f"beats_{b}_targets"] = sum(mine[k]["accuracy"] > theirs[k]["accuracy"] for k in keys)
            out[f"ties_{b}_targets"] = sum(mine[k]["accuracy"] == theirs[k]["accuracy"] for k in keys)
            out[f"{b}_mean_accuracy"] = float(np.mean([theirs[k]["accuracy"] for k in keys])) if keys else None
        return out

    def to_markdown(self) -> str:
        """The table in the paper's layout: per target a spec row, then one row per method with
        the closest sample's metrics, the accuracy and the times."""
        head = ["", *[DISPLAY[m][0] for m in METRICS], "accuracy", "train", "sample 100", "simulate 100", "note"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for tb, info in self.testbenches.items():
            for ti, t in enumerate(info["targets"]):
                if not any(r["testbench"] == tb and r["target_index"] == ti for r in self.rows):
                    continue   # a target a partial run (target_indices) did not measure
                specs = [f"{'≤' if d == '<=' else '≥'} {DISPLAY[m][2].format(t[j] * DISPLAY[m][1])}"
                         for j, (m, d) in enumerate(zip(METRICS, DIRECTIONS))]
                lines.append(f"| **{tb}** #{ti + 1} | " + " | ".join(specs) + " | | | | | |")
                for r in self.rows:
                    if r["testbench"] != tb or r["target_index"] != ti:
                        continue
                    c = r["closest"]
                    vals = ["—" if c is None or c.get(m) is None else DISPLAY[m][2].format(c[m] * DISPLAY[m][1])
                            for m in METRICS]
                    if r["learned"]:
                        times = [_fmt_s(r.get("train_time_s")), _fmt_s(r["sample_time_s"]), _fmt_s(r["sim_time_s"])]
                        note = ""
                    else:
                        times = ["—", _fmt_s(r.get("time_to_feasible_s") or r["sample_time_s"]), _fmt_s(r["sim_time_s"])]
                        note = (f"{r['calls_to_feasible']} sims to 1st feasible" if r.get("calls_to_feasible")
                                else f"none feasible in {r.get('calls')} sims")
                    acc = f"{100 * r['accuracy']:.0f} %" if r["learned"] else f"({100 * r['accuracy']:.0f} %)"
                    lines.append(f"| {r['method']} | " + " | ".join(vals) + f" | {acc} | " + " | ".join(times)
                                 + f" | {note} |")
        return "\n".join(lines)

    def tradeoff_markdown(self) -> str:
        """The model-size / sampling-steps trade-off as a table of mean feasible fractions."""
        if not self.tradeoff:
            return ""
        steps = sorted({r["steps"] for r in self.tradeoff})
        sizes = []
        for r in self.tradeoff:
            key = (r["channels"], r["blocks"])
            if key not in sizes:
                sizes.append(key)
        lines = ["| channels × blocks | params | train | " + " | ".join(f"DDIM {s}" for s in steps) + " |",
                 "|" + "---|" * (3 + len(steps))]
        for ch, bl in sizes:
            rs = [r for r in self.tradeoff if (r["channels"], r["blocks"]) == (ch, bl)]
            cells = []
            for s in steps:
                acc = [r["accuracy"] for r in rs if r["steps"] == s]
                tms = [r["sample_time_s"] for r in rs if r["steps"] == s]
                cells.append(f"{100 * np.mean(acc):.1f} % ({_fmt_s(float(np.median(tms)))})" if acc else "")
            lines.append(f"| {ch} × {bl} | {rs[0]['params']:,} | {_fmt_s(float(np.mean([r['train_time_s'] for r in rs])))}"
                         f" | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def save(self, path: Union[str, Path]) -> Path:
        """Write the report as JSON (NaN as ``null``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"meta": self.meta, "goals": self.goals() if self.rows else {}, "testbenches": self.testbenches,
               "rows": self.rows, "tradeoff": self.tradeoff, "samples": self.samples}
        path.write_text(json.dumps(_jsonable(doc), allow_nan=False, separators=(",", ":")))
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "SizingReport":
        doc = json.loads(Path(path).read_text())
        return cls(rows=doc["rows"], testbenches=doc["testbenches"], tradeoff=doc.get("tradeoff", []),
                   meta=doc.get("meta", {}), samples=doc.get("samples", {}))

    # -- plots ----------------------------------------------------------------------------------
    def plot_samples(self, testbench: Optional[str] = None, path: Union[str, Path, None] = None,
                     pairs: Sequence[Tuple[str, str]] = (("power", "irn"), ("gain_db", "bw"), ("power", "bw"))):
        """Sampled designs' simulated metrics against the targets: one row of panels per target,
        one panel per metric pair, the training designs in grey, each method's samples in its
        colour (filled: meets all four specs; hollow: not), the feasible box of the pair's two
        specs shaded. Returns the matplotlib figure (saved to ``path`` when given)."""
        import matplotlib
        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        tbs = [testbench] if testbench else list(self.testbenches)
        nrows = sum(len(self.testbenches[t]["targets"]) for t in tbs)
        fig, axes = plt.subplots(nrows, len(pairs), figsize=(4.2 * len(pairs), 3.6 * nrows), squeeze=False)
        colors = dict(zip(self.methods(), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
        row = 0
        for tb in tbs:
            info, S = self.testbenches[tb], self.samples.get(tb, {})
            train = np.asarray(S.get("train", []), np.float64).reshape(-1, len(METRICS))
            for ti, t in enumerate(info["targets"]):
                for col, (a, b) in enumerate(pairs):
                    ax = axes[row, col]
                    ia, ib = METRICS.index(a), METRICS.index(b)
                    sa, sb = DISPLAY[a][1], DISPLAY[b][1]
                    if len(train):
                        ax.scatter(train[:, ia] * sa, train[:, ib] * sb, s=3, c="0.8", label="training", zorder=1)
                    for m in self.methods():
                        Ys = np.asarray(S.get(f"{m}#{ti}", []), np.float64).reshape(-1, len(METRICS))
                        if not len(Ys):
                            continue
                        ok = meets(Ys, t)
                        ax.scatter(Ys[~ok, ia] * sa, Ys[~ok, ib] * sb, s=14, facecolors="none",
                                   edgecolors=colors[m], linewidths=0.7, zorder=2)
                        ax.scatter(Ys[ok, ia] * sa, Ys[ok, ib] * sb, s=16, color=colors[m], zorder=3,
                                   label=f"{m} ({ok.mean():.0%})")
                    _shade_box(ax, t[ia] * sa, DIRECTIONS[ia], t[ib] * sb, DIRECTIONS[ib])
                    for name, axis in ((a, "x"), (b, "y")):
                        if name != "gain_db":
                            getattr(ax, f"set_{axis}scale")("log")
                    ax.set_xlabel(DISPLAY[a][0])
                    ax.set_ylabel(DISPLAY[b][0])
                    if col == 0:
                        ax.set_title(f"{tb} target #{ti + 1}", fontsize=9, loc="left")
                        ax.legend(fontsize=6, loc="best")
                row += 1
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def plot_tradeoff(self, path: Union[str, Path, None] = None):
        """Feasible fraction (mean over the trade-off's targets) against DDIM steps, one line per
        model size, and against sampling time. Returns the figure."""
        import matplotlib
        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        import matplotlib.ticker
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
        sizes = []
        for r in self.tradeoff:
            if (r["channels"], r["blocks"]) not in sizes:
                sizes.append((r["channels"], r["blocks"]))
        for ch, bl in sizes:
            rs = [r for r in self.tradeoff if (r["channels"], r["blocks"]) == (ch, bl)]
            steps = sorted({r["steps"] for r in rs})
            acc = [100 * np.mean([r["accuracy"] for r in rs if r["steps"] == s]) for s in steps]
            tms = [np.median([r["sample_time_s"] for r in rs if r["steps"] == s]) for s in steps]
            lab = f"C={ch}, N={bl} ({rs[0]['params'] / 1e3:.0f}k params)"
            a1.plot(steps, acc, "o-", label=lab)
            a2.plot(tms, acc, "o-", label=lab)
        a1.set_xscale("log")
        a1.set_xlabel("DDIM steps")
        a1.set_ylabel("feasible samples [%]")
        a2.set_xscale("log")
        a2.set_xlabel("time for 100 designs [s]")
        # the times span less than a decade: minor-tick labels would overlap
        a2.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        a1.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig


def _shade_box(ax, xa: float, da: str, yb: float, db: str) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    xs = (min(x0, xa), xa) if da == "<=" else (xa, max(x1, xa))
    ys = (min(y0, yb), yb) if db == "<=" else (yb, max(y1, yb))
    ax.fill_between(xs, ys[0], ys[1], color="tab:green", alpha=0.12, zorder=0, lw=0)
    ax.axvline(xa, color="tab:green", lw=0.8, ls="--")
    ax.axhline(yb, color="tab:green", lw=0.8, ls="--")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def _fmt_s(t: Optional[float]) -> str:
    if t is None or not np.isfinite(t):
        return "—"
    if t < 1:
        return f"{t * 1e3:.0f} ms"
    if t < 120:
        return f"{t:.1f} s"
    return f"{t / 60:.1f} min"


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, (np.floating, float)):
        return float(f"{float(o):.7g}") if np.isfinite(o) else None
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, np.bool_):
        return bool(o)
    return o


def _metrics_dict(y: Optional[np.ndarray]) -> Optional[Dict[str, Optional[float]]]:
    if y is None:
        return None
    return {m: (float(v) if np.isfinite(v) else None) for m, v in zip(METRICS, y)}


def _timed_sample(sizer, target, n: int, repeats: int, kwargs) -> Tuple[np.ndarray, float]:
    times, X = [], None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        X = sizer.sample(target, n=n, **kwargs)
        times.append(time.perf_counter() - t0)
    return np.asarray(X, np.float64), float(np.median(times))


def _pool(workers: Optional[int]):
    n = workers or os.cpu_count() or 1
    return SimulationPool(n)


def report(testbenches: Sequence[str] = DEFAULT_TESTBENCHES, methods: Optional[Sequence[Method]] = None,
           n_designs: int = 2000, n_targets: int = 2, n_samples: int = 100, tighten_fraction: float = 0.02,
           seed: int = 0, cache_dir: Union[str, Path, None] = "benchmarks/_data/sizing", workers: Optional[int] = None,
           sample_repeats: int = 3, tradeoff: Optional[Dict[str, Any]] = None, progress: bool = True,
           log: Optional[Callable[[str], None]] = print, out: Union[str, Path, None] = None,
           target_indices: Optional[Sequence[int]] = None) -> SizingReport:
    """Measure the paper's Table II on our testbenches (see the module docstring).

    Args:
        testbenches: names from :func:`circml.spice.testbenches.list_testbenches` ("ota" kind).
        methods: :class:`Method` rows (default :func:`default_methods`).
        n_designs: Latin-hypercube designs simulated per testbench (failed ones are dropped).
        n_targets: targets per testbench (:func:`choose_targets`).
        n_samples: designs each method draws per target; every one is simulated.
        tighten_fraction: how much stricter than its source design each target is.
        seed: sweep, target choice and the methods' seeds.
        cache_dir: where the sweeps' SQLite stores live (``None``: no cache).
        workers: simulation processes (default: all cores).
        sample_repeats: a learned method's sampling time is the median of this many calls.
        tradeoff: ``{"testbenches": [...], "sizes": [(channels, blocks), ...], "steps": [...]}``:
            also train a :class:`DiffusionSizer` per size on those testbenches and measure the
            feasible fraction of every target at every DDIM step count (``None``: skip).
        progress: progress bars.
        log: where one-line progress messages go (``None``: nowhere).
        out: save the report (JSON) here after every testbench, so a long run keeps what it measured.
        target_indices: measure only these of the ``n_targets`` targets (e.g. ``[1]`` for the
            second); the targets themselves are chosen as in a full run (default: all).

    Returns a :class:`SizingReport`.
    """
    from ..spice.testbenches import get_testbench
    methods = list(methods) if methods is not None else default_methods(workers=workers, seed=seed)
    say = log or (lambda s: None)
    rep = SizingReport(meta={
        "created": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "n_designs": n_designs, "n_targets": n_targets, "n_samples": n_samples,
        "tighten_fraction": tighten_fraction, "seed": seed, "metrics": list(METRICS), "directions": list(DIRECTIONS),
        "methods": [m.name for m in methods], "sample_repeats": sample_repeats,
        "target_indices": None if target_indices is None else [int(i) for i in target_indices],
        "argv": sys.argv if __name__ == "__main__" else None})
    pool = _pool(workers)
    try:
        for name in testbenches:
            tb = get_testbench(name)
            X, Y, info = dataset(tb, n_designs, seed, cache_dir, workers, progress)
            T, src = choose_targets(Y, n_targets, tighten_fraction)
            info.update(targets=T.tolist(), target_sources=src.tolist(), params=tb.param_names,
                        n_train_meeting=[int(meets(Y, t).sum()) for t in T], methods={})
            rep.testbenches[name] = info
            rep.samples[name] = {"train": Y}
            say(f"{name}: {info['n_designs']} designs ({info['n_failed']} failed, {info['n_missing_metric']} "
                f"without a metric); targets {np.array2string(T, precision=3)}")
            ranges = np.array([[p.low, p.high] for p in tb.params])
            for meth in methods:
                sizer = meth.factory(tb)
                t0 = time.perf_counter()
                sizer.fit(X, Y, ranges=ranges, directions=list(DIRECTIONS), progress=progress)
                train_time = time.perf_counter() - t0 if meth.learned else None
                info["methods"][meth.name] = {"train_time_s": train_time,
                                              "params": int(getattr(sizer, "num_parameters", 0) or 0)}
                for ti, t in enumerate(T):
                    if target_indices is not None and ti not in target_indices:
                        continue
                    Xs, st = _timed_sample(sizer, t, n_samples, sample_repeats if meth.learned else 1,
                                           meth.sample_kwargs)
                    Xs = Xs.reshape(-1, X.shape[1])
                    Ys, sim_wall = simulate(tb, Xs, executor=pool, workers=workers)
                    ok = meets(Ys, t)
                    ci = closest(Ys, t)
                    row = {"testbench": name, "target_index": ti, "target": _metrics_dict(t), "method": meth.name,
                           "learned": meth.learned, "n_samples": int(len(Xs)),
                           "n_simulated": int(len(Ys)), "n_sim_failed": int((~np.isfinite(Ys).all(axis=1)).sum()),
                           "n_feasible": int(ok.sum()), "accuracy": float(ok.mean()) if len(ok) else 0.0,
                           "closest": _metrics_dict(Ys[ci]) if ci >= 0 else None,
                           "closest_violation": float(spec_violation(Ys[ci:ci + 1], t, DIRECTIONS)[0]) if ci >= 0
                           else None,
                           "train_time_s": train_time, "sample_time_s": st, "sim_time_s": sim_wall}
                    res = getattr(sizer, "last_result", None)
                    if not meth.learned and res is not None:
                        row.update(calls=int(res.calls), calls_to_feasible=res.calls_to_feasible,
                                   time_to_feasible_s=res.time_to_feasible, search_wall_s=res.wall_time,
                                   generations=int(res.generations), search_feasible=bool(res.feasible))
                    rep.rows.append(row)
                    rep.samples[name][f"{meth.name}#{ti}"] = Ys
                    rep.samples[name][f"{meth.name}#{ti}:X"] = Xs
                    say(f"  {meth.name:<11} target {ti + 1}: {ok.sum():3d}/{len(ok)} feasible, sample {st:.3f} s, "
                        f"simulate {sim_wall:.1f} s" + (f", train {train_time:.0f} s" if train_time else "")
                        + (f", DE {row.get('calls_to_feasible')} sims / {row.get('time_to_feasible_s')} s to "
                           f"feasible" if not meth.learned else ""))
            if out is not None:
                rep.save(out)
        if tradeoff:
            rep.tradeoff = _tradeoff(rep, pool, tradeoff, n_samples, seed, workers, progress, say, cache_dir,
                                     n_designs)
    finally:
        pool.close()
    return rep


def _tradeoff(rep: SizingReport, pool, spec: Dict[str, Any], n_samples: int, seed: int, workers, progress, say,
              cache_dir, n_designs) -> List[Dict[str, Any]]:
    from ..spice.testbenches import get_testbench
    out = []
    steps_list = list(spec.get("steps", (10, 25, 50, 100)))
    for name in spec.get("testbenches", list(rep.testbenches)[:1]):
        tb = get_testbench(name)
        X, Y, _ = dataset(tb, n_designs, seed, cache_dir, workers, False)
        T = np.asarray(rep.testbenches[name]["targets"], np.float64)
        ranges = np.array([[p.low, p.high] for p in tb.params])
        for ch, bl in spec.get("sizes", ((32, 1), (64, 2), (128, 4))):
            sizer = DiffusionSizer(seed=seed, channels=int(ch), blocks=int(bl), ff=2 * int(ch), log_sizes=log_flags(tb),
                                   log_metrics=LOG_METRICS)
            t0 = time.perf_counter()
            sizer.fit(X, Y, ranges=ranges, directions=list(DIRECTIONS), progress=progress)
            train = time.perf_counter() - t0
            for steps in steps_list:
                for ti, t in enumerate(T):
                    Xs, st = _timed_sample(sizer, t, n_samples, 3, {"steps": int(steps)})
                    Ys, _ = simulate(tb, Xs, executor=pool, workers=workers)
                    ok = meets(Ys, t)
                    out.append({"testbench": name, "target_index": ti, "channels": int(ch), "blocks": int(bl),
                                "params": sizer.num_parameters, "steps": int(steps), "train_time_s": train,
                                "sample_time_s": st, "n_feasible": int(ok.sum()), "accuracy": float(ok.mean())})
                    say(f"  tradeoff {name} C={ch} N={bl} DDIM {steps} target {ti + 1}: {ok.sum()}/{len(ok)} "
                        f"feasible, {st:.3f} s")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m circml.sizing.report", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/sizing_report.json", help="JSON written here")
    p.add_argument("--testbenches", nargs="+", default=list(DEFAULT_TESTBENCHES))
    p.add_argument("--methods", nargs="+", default=None, help="a subset of the default methods' names")
    p.add_argument("--designs", type=int, default=2000)
    p.add_argument("--targets", type=int, default=2)
    p.add_argument("--target-indices", type=int, nargs="+", default=None, metavar="I",
                   help="measure only these targets of each testbench (0-based; chosen as in a full run)")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--tighten", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default="benchmarks/_data/sizing")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--evolution-max-calls", type=int, default=512 * 10)
    p.add_argument("--tradeoff", nargs="*", default=None, metavar="TESTBENCH",
                   help="also measure feasible fraction against model size and DDIM steps on these testbenches")
    p.add_argument("--tradeoff-sizes", nargs="+", default=["32x1", "64x2", "64x4"], metavar="CxN",
                   help="model sizes (channels x blocks) of the trade-off")
    p.add_argument("--plots", default=None, help="directory for the sample and trade-off plots (PNG)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    methods = default_methods(a.evolution_max_calls, a.workers, a.seed)
    if a.methods:
        unknown = sorted(set(a.methods) - {m.name for m in methods})
        if unknown:
            p.error(f"unknown methods {unknown}; known: {[m.name for m in methods]}")
        methods = [m for m in methods if m.name in a.methods]
    trade = None
    if a.tradeoff is not None:
        trade = {"testbenches": a.tradeoff or list(a.testbenches)[:1],
                 "sizes": [tuple(int(v) for v in s.split("x")) for s in a.tradeoff_sizes]}
    rep = report(a.testbenches, methods, a.designs, a.targets, a.samples, a.tighten, a.seed, a.cache_dir, a.workers,
                 tradeoff=trade, progress=not a.no_progress, out=a.out, target_indices=a.target_indices)
    path = rep.save(a.out)
    print(rep.to_markdown())
    if rep.tradeoff:
        print()
        print(rep.tradeoff_markdown())
    print(json.dumps(_jsonable(rep.goals()), indent=1))
    if a.plots:
        Path(a.plots).mkdir(parents=True, exist_ok=True)
        rep.plot_samples(path=Path(a.plots) / "sizing_samples.png")
        if rep.tradeoff:
            rep.plot_tradeoff(path=Path(a.plots) / "sizing_tradeoff.png")
    print(f"wrote {path}")
    return 0


class _CallableModule(type(sys)):
    """``circml.sizing.report(...)`` calls :func:`report`; the module stays a module (its
    functions, ``python -m circml.sizing.report``)."""

    def __call__(self, *args, **kwargs) -> SizingReport:
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule


if __name__ == "__main__":
    raise SystemExit(main())
