"""The three baselines of the diffusion-sizing paper (Azevedo, Lourenço & Martins, Table II), with
the API of :class:`~circml.sizing.DiffusionSizer` (``fit(X, Y, ranges=..., directions=...)``,
``sample(targets, n)`` in physical units clipped to the ranges, ``save``/``load`` as ``.npz`` with
a JSON header, a progress bar and a loss history) on the same preprocessing:

* :class:`DiffusionMLPSizer` -- DM-MLP (Eid et al., the paper's ref. [6]): the same diffusion
  (cosine schedule with zero terminal SNR, v-prediction, classifier-free guidance with a learned
  null condition, DDPM/DDIM, both guidance conventions) with an MLP backbone instead of the
  transformer: ``v = MLP(concat(x_t, temb(t), condition))``. It is :class:`DiffusionSizer` with
  ``backbone = MLP`` in the C model (``csrc/diffusion/model.c``), so training and sampling share
  every line of code with the transformer except the network itself.
* :class:`InverseANNSizer` -- the inverse ANN (Lourenço et al., ref. [4]): an MLP from the
  preprocessed performances to the normalised sizes, trained on MSE with AdamW in the C core
  (``csrc/nn/mlp.c``). It is deterministic; see :meth:`InverseANNSizer.sample` for how ``n``
  designs come out of it.
* :class:`EvolutionarySizer` -- simulation in the loop: SciPy's differential evolution over the
  testbench's design space (population 512 as in the paper), every candidate simulated with
  ngspice (a generation at a time over a process pool), fitness = spec violation; it stops at the
  first feasible design (or a budget) and reports wall time and simulator calls to it.

Preprocessing shared by the learned ones (the module docstring of :mod:`circml.sizing.diffusion`
says it exactly): x10 relaxed-spec augmentation (:class:`RelaxSpecs`), sizes to ``[-1, 1]`` by
their ranges, performances standardised, expanded to degree 2 and standardised again.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from ..spice.pool import SimulationPool
from .._npz import read_npz, write_npz
from .diffusion import FORMAT_VERSION, DiffusionSizer, SizerConfig, _LearnedSizer, _progress, parse_directions

__all__ = ["MLPSizerConfig", "DiffusionMLPSizer", "ANNConfig", "InverseANNSizer", "EvolutionarySizer",
           "EvolutionResult", "spec_violation"]

_ACTIVATIONS = {"gelu": 0, "relu": 1}


# -- shared helpers ----------------------------------------------------------------------------
def _targets(targets, m: int) -> Tuple[np.ndarray, bool]:
    T = np.asarray(targets, np.float64)
    single = T.ndim == 1
    T = T[None, :] if single else T
    if T.ndim != 2 or T.shape[1] != m:
        raise ValueError(f"targets must have {m} performance column(s), got shape {np.shape(targets)}")
    if not np.isfinite(T).all():
        raise ValueError("targets must be finite")
    return T, single


# -- DM-MLP ------------------------------------------------------------------------------------
@dataclass
class MLPSizerConfig(SizerConfig):
    """:class:`SizerConfig` plus the MLP backbone's size. ``channels`` is the width of the
    timestep embedding; ``heads``, ``ff``, ``blocks`` and ``cond_tokens`` are not used.

    Example:
        >>> MLPSizerConfig().mlp_layers, MLPSizerConfig(mlp_hidden=128).mlp_hidden
        (4, 128)
    """

    mlp_layers: int = 4                  # hidden layers
    mlp_hidden: int = 256                # their width

    def __post_init__(self):
        super().__post_init__()
        if int(self.mlp_layers) < 1 or int(self.mlp_layers) > 31:
            raise ValueError(f"MLPSizerConfig.mlp_layers must be in [1, 31], got {self.mlp_layers!r}")
        if int(self.mlp_hidden) < 1:
            raise ValueError(f"MLPSizerConfig.mlp_hidden must be at least 1, got {self.mlp_hidden!r}")


class DiffusionMLPSizer(DiffusionSizer):
    """DM-MLP (Eid et al.): :class:`DiffusionSizer`'s diffusion with an MLP backbone.

    ``v = MLP(concat(x_t, temb(t), c))``, with ``temb`` the sinusoid + 2-layer MLP timestep
    embedding of width ``channels``, ``c`` the condition features (or, where classifier-free
    guidance drops the condition, a learned null vector that starts at zero), and the MLP
    ``mlp_layers`` hidden layers of width ``mlp_hidden`` (Linear -> ReLU -> dropout) then a linear
    layer to the ``D`` sizes. Everything else (preprocessing, schedule, loss, guidance, samplers,
    options of :meth:`fit` and :meth:`sample`) is :class:`DiffusionSizer`'s.

    Example:
        >>> sizer = DiffusionMLPSizer(mlp_layers=4, mlp_hidden=256, epochs=20)
        >>> sizer.fit(X, Y, ranges=bounds, directions=["<=", "<=", ">=", ">="])   # doctest: +SKIP
        >>> sizer.sample([27e-9, 5.2e-6, 30, 1.55e3], n=100).shape                # doctest: +SKIP
        (100, 14)
    """

    FORMAT = "circml.sizing.diffusion_mlp"

    _config_class = MLPSizerConfig

    def __init__(self, config: Optional[SizerConfig] = None, seed: int = 0, **overrides):
        if config is not None and not isinstance(config, SizerConfig):
            raise TypeError(f"config must be a SizerConfig or MLPSizerConfig, got {type(config).__name__}")
        if config is not None and not isinstance(config, MLPSizerConfig):
            config = MLPSizerConfig(**asdict(config))   # a plain SizerConfig: the MLP's defaults added
        super().__init__(config, seed=seed, **overrides)

    def _build(self, D: int, M: int) -> None:
        c = self.config
        P = len(self._poly.terms(M))
        # cond_tokens, heads, ff and the block counts are unused by the MLP backbone (1 each)
        self._model = _core.diffusion_init(D, P, 1, c.channels, 1, 1, 1, 1, c.timesteps, c.zero_terminal_snr,
                                           _ACTIVATIONS[c.activation], c.dropout, self.seed & (2**64 - 1), 1,
                                           int(c.mlp_layers), int(c.mlp_hidden))
        self._arrays = _core.diffusion_arrays(self._model)

    def __repr__(self) -> str:
        c = self.config
        shape = f", sizes={self.n_sizes}, metrics={self.n_metrics}, params={self.num_parameters}" if self.fitted else ""
        return (f"DiffusionMLPSizer(mlp_layers={c.mlp_layers}, mlp_hidden={c.mlp_hidden}, timesteps={c.timesteps}"
                f"{shape}, epochs_trained={self.epochs_trained})")


# -- the inverse ANN -------------------------------------------------------------------------------
@dataclass
class ANNConfig:
    """Settings of :class:`InverseANNSizer`. The hidden widths are those of Lourenço et al.'s
    published model (``15_480_240_60_12``: 480, 240, 60); ReLU between layers, linear output.

    Example:
        >>> ANNConfig().hidden, ANNConfig(epochs=5).epochs
        ((480, 240, 60), 5)
    """

    hidden: Tuple[int, ...] = (480, 240, 60)
    dropout: float = 0.0
    # data (as SizerConfig)
    poly_degree: int = 2
    augment: int = 10
    relax: float = 0.2
    relax_units: str = "std"
    log_sizes: bool = False
    log_metrics: bool = False
    robust_metrics: bool = True
    metric_clip: Optional[float] = None
    # training: AdamW, linear warmup then cosine decay, MSE on sizes normalised to [-1, 1]
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 1e-5
    # sampling: designs 1..n-1 are the predictions for targets tightened by up to this fraction
    spread: float = 0.2

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) < 1 or len(self.hidden) > 31:
            raise ValueError(f"ANNConfig.hidden must be 1..31 positive widths, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ANNConfig.dropout must be in [0, 1), got {self.dropout}")
        for name in ("batch_size", "poly_degree"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ANNConfig.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.relax_units not in ("mean", "std"):
            raise ValueError(f"ANNConfig.relax_units must be 'mean' or 'std', got {self.relax_units!r}")
        if self.augment < 0 or self.relax < 0 or self.epochs < 0 or self.spread < 0:
            raise ValueError("ANNConfig.augment, relax, epochs and spread must not be negative")


class InverseANNSizer(_LearnedSizer):
    """The inverse ANN of Lourenço et al.: an MLP from performances to sizes.

    Inputs are the condition features of :class:`DiffusionSizer` (performances standardised,
    expanded to degree 2, standardised again), outputs the sizes normalised to ``[-1, 1]`` by
    their ranges; trained on the x10 relaxed-spec augmented set with MSE and AdamW in the C core.

    Args:
        config: an :class:`ANNConfig`; keyword arguments override its fields.
        seed: initialisation, augmentation, shuffling, dropout and sampling jitter.

    Example:
        >>> ann = InverseANNSizer(epochs=50)
        >>> ann.fit(X, Y, ranges=bounds, directions=["<=", "<=", ">=", ">="])   # doctest: +SKIP
        >>> ann.sample([27e-9, 5.2e-6, 30, 1.55e3], n=100).shape                  # doctest: +SKIP
        (100, 14)
    """

    FORMAT = "circml.sizing.inverse_ann"
    _adam_step = staticmethod(_core.mlp_adam_step)

    _config_class = ANNConfig

    def _build(self, D: int, M: int) -> None:
        P = len(self._poly.terms(M))
        self._model = _core.mlp_init([P, *self.config.hidden, D], self.config.dropout, self.seed & (2**64 - 1))
        self._arrays = _core.mlp_arrays(self._model)

    def fit(self, X, Y, ranges=None, directions: Optional[Sequence] = None, epochs: Optional[int] = None,
            val_fraction: float = 0.0, progress: bool = True) -> "InverseANNSizer":
        """Fit the preprocessing and train from scratch; the arguments are
        :meth:`DiffusionSizer.fit`'s. ``history`` gets ``train_loss`` (and ``val_loss``, ``lr``)
        per epoch: the MSE on normalised sizes."""
        c = self.config
        X, Y, Xa, Ya, val_idx, rng = self._fit_data(X, Y, ranges, directions, val_fraction)
        x_in = self.condition(Ya)
        target = self._x_scale.transform(Xa).astype(np.float32)
        self._build(X.shape[1], Y.shape[1])
        seed = self.seed & (2**64 - 1)

        def step(idx: np.ndarray, lr: float) -> float:
            return _core.mlp_train_step(self._model, x_in[idx], target[idx], lr, 0.9, 0.999, 1e-8, c.weight_decay,
                                        (seed + self.steps_trained) & (2**64 - 1))

        val_loss = None
        if val_idx.size:
            vx, vt = self.condition(Y[val_idx]), self._x_scale.transform(X[val_idx])
            val_loss = lambda: float(np.mean((_core.mlp_predict(self._model, vx) - vt) ** 2))   # noqa: E731
        self._train(len(x_in), epochs, step, rng, val_loss, progress=progress)
        return self

    def predict(self, targets, clip_to_ranges: bool = True) -> np.ndarray:
        """The network's design for each target row: ``[M] -> [D]``, ``[K, M] -> [K, D]``."""
        self._require_fitted()
        T, single = _targets(targets, self.n_metrics)
        X = self._x_scale.inverse(_core.mlp_predict(self._model, self.condition(T)))
        if clip_to_ranges:
            X = self._x_scale.clip(X)
        return X[0] if single else X

    def sample(self, targets, n: int = 100, spread: Optional[float] = None, seed: Optional[int] = None,
               clip_to_ranges: bool = True) -> np.ndarray:
        """``n`` designs per target, in physical units.

        The network is a deterministic function of its input, so the ``n`` designs come from ``n``
        inputs: design 0 is the prediction for the target itself, and designs ``1..n-1`` are the
        predictions for targets **tightened** within their spec directions, as Lourenço et al.
        explore around a specification: metric ``j`` becomes ``t_j - s_j * u * spread * |t_j|``
        with ``u ~ U(0, 1)`` per design and metric (``s_j = +1`` for ``"<="``, so a lower power
        is asked; ``-1`` for ``">="``, a higher gain; metrics without a direction are left as
        given). A design that meets a tighter spec meets the target too. ``spread = 0`` returns
        ``n`` copies of the same design.

        Args:
            targets: ``[M]`` or ``[K, M]`` in physical units.
            n: designs per target.
            spread: the largest tightening, a fraction of ``|t_j|`` (default ``config.spread``).
            seed: jitter seed (default: the sizer's seed).
            clip_to_ranges: clip to the ranges given to :meth:`fit`.

        Returns ``[n, D]`` for one target, ``[K, n, D]`` for ``K``.
        """
        self._require_fitted()
        T, single = _targets(targets, self.n_metrics)
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        spread = self.config.spread if spread is None else float(spread)
        if spread < 0:
            raise ValueError(f"spread must not be negative, got {spread}")
        rng = np.random.default_rng(self.seed if seed is None else int(seed))
        sign = np.asarray(self.directions, np.float64)
        rows = np.repeat(T, n, axis=0).reshape(len(T), n, -1)
        u = rng.random(rows.shape)
        u[:, 0, :] = 0.0
        rows = rows - sign * u * spread * np.abs(rows)
        X = self.predict(rows.reshape(len(T) * n, -1), clip_to_ranges=clip_to_ranges).reshape(len(T), n, -1)
        return X[0] if single else X

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Named copies of the layers' weights and biases (``mlp.<i>.weight``, ``mlp.<i>.bias``)."""
        self._require_fitted()
        out, off, p, w = {}, 0, self._arrays["params"], self._arrays["widths"]
        for i in range(len(w) - 1):
            out[f"mlp.{i}.weight"] = p[off:off + w[i + 1] * w[i]].reshape(w[i + 1], w[i]).copy()
            off += w[i + 1] * w[i]
            out[f"mlp.{i}.bias"] = p[off:off + w[i + 1]].copy()
            off += w[i + 1]
        return out

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        self._require_fitted()
        off, p = 0, self._arrays["params"]
        for name, a in self.state_dict().items():
            if name not in state or np.asarray(state[name]).shape != a.shape:
                raise ValueError(f"state lacks {name!r} of shape {a.shape}")
            p[off:off + a.size] = np.asarray(state[name], np.float32).ravel()
            off += a.size

    def __repr__(self) -> str:
        shape = f", sizes={self.n_sizes}, metrics={self.n_metrics}, params={self.num_parameters}" if self.fitted else ""
        return f"InverseANNSizer(hidden={self.config.hidden}{shape}, epochs_trained={self.epochs_trained})"


# -- simulation in the loop ------------------------------------------------------------------------
def spec_violation(Y: np.ndarray, targets: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Per design, the sum over specs of the relative violation ``max(0, s_j (y_j - t_j)) / |t_j|``
    (``s_j = +1`` for ``"<="``, ``-1`` for ``">="``; metrics with direction 0 / ``None`` do not
    count; ``directions`` as :func:`parse_directions` reads them).
    0 exactly when every spec is met; ``inf`` where a metric is NaN (a failed simulation or a
    metric the simulation does not show).

    Example:
        >>> spec_violation(np.array([[1.0, 50.0], [2.0, 40.0]]), np.array([1.5, 45.0]), np.array([1.0, -1.0]))
        array([0.        , 0.44444444])
    """
    Y = np.atleast_2d(np.asarray(Y, np.float64))
    t = np.asarray(targets, np.float64)
    s = parse_directions(directions)
    if s.size != t.size or Y.shape[1] != t.size:
        raise ValueError(f"spec_violation: {Y.shape[1]} metric columns, {t.size} targets, {s.size} directions")
    scale = np.where(np.abs(t) > 0, np.abs(t), 1.0)
    v = np.maximum(0.0, s * (Y - t)) / scale
    v = np.where(s != 0, v, 0.0)
    bad = np.isnan(Y[:, s != 0]).any(axis=1)
    out = v.sum(axis=1)
    out[bad] = np.inf
    return out


def _margin(Y: np.ndarray, targets: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Sum of relative slack over the specs (larger: more room): ranks feasible designs."""
    t, s = np.asarray(targets, np.float64), np.asarray(directions, np.float64)
    scale = np.where(np.abs(t) > 0, np.abs(t), 1.0)
    m = np.where(s != 0, -s * (Y - t) / scale, 0.0)
    return np.nan_to_num(m.sum(axis=1), nan=-np.inf)


@dataclass
class EvolutionResult:
    """One run of :meth:`EvolutionarySizer.optimize`.

    Attributes:
        feasible: a design meeting every spec was found.
        calls: simulator calls made in all (one per simulated design, failed ones included).
        calls_to_feasible: simulator calls up to and including the first feasible design, counted
            in evaluation order (candidates of a generation are ordered as SciPy passes them);
            ``None`` when none was found.
        time_to_feasible: wall seconds from the start of the run to the end of the generation
            that held the first feasible design (its simulations run together); ``None`` if none.
        wall_time: seconds of the whole run.
        generations: populations simulated (the initial one counts as one).
        X, Y, violation: every simulated design (physical units), its metrics (the target
            columns) and its spec violation, in evaluation order.
        targets, directions, metrics: what was asked.
        stop_reason: ``"feasible"``, ``"max_calls"``, ``"max_generations"`` or ``"converged"``.
    """

    feasible: bool
    calls: int
    calls_to_feasible: Optional[int]
    time_to_feasible: Optional[float]
    wall_time: float
    generations: int
    X: np.ndarray
    Y: np.ndarray
    violation: np.ndarray
    targets: np.ndarray
    directions: np.ndarray
    metrics: List[str]
    stop_reason: str

    def best(self, n: int = 1) -> np.ndarray:
        """The ``n`` best designs: lowest violation first, then the largest total slack; each
        distinct design once."""
        order = np.lexsort((-_margin(self.Y, self.targets, self.directions), self.violation))
        _, first = np.unique(self.X[order], axis=0, return_index=True)
        keep = order[np.sort(first)]
        return self.X[keep[:n]]


class _Stop(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class EvolutionarySizer:
    """Differential evolution with the simulator in the loop (the paper's "Sim.-based" row).

    SciPy's :func:`scipy.optimize.differential_evolution` (``best1bin``, vectorised: a whole
    population per call) searches the testbench's design space in unit coordinates (log-scaled
    parameters in log space, integer ones rounded by the testbench); every candidate is simulated
    with ngspice through :func:`circml.spice.sweep` over a process pool kept for the whole run;
    the fitness is :func:`spec_violation` of its metrics against the targets. A run stops at the
    end of the first generation that holds a feasible design (every spec met), or when
    ``max_calls`` or ``max_generations`` is reached. Nothing is learned from data: :meth:`fit` only
    records which metrics the targets refer to, their spec directions and (optionally) ranges.

    Args:
        testbench: a :class:`circml.spice.Testbench` (e.g. ``get_testbench("ota_5t")``).
        population: designs per generation (the paper: 512).
        max_generations: generations after the initial population (the paper: 500).
        max_calls: simulator-call budget (``None``: population x (max_generations + 1)).
        metrics: the testbench metrics the targets give, in order (default: the paper's
            ``power, irn, gain_db, bw`` where the testbench has them, else all its metrics).
        directions: ``"<="``/``">="``/``None`` per metric (default: ``<=`` for power and noise,
            ``>=`` otherwise).
        mutation, recombination, strategy: SciPy's DE settings.
        workers: simulation processes (default ``os.cpu_count()``; ``0``: in this process).
        stop_at_feasible: stop at the first feasible design (the paper's timing); ``False`` runs
            on to the budget and keeps improving the slack of the best designs.
        seed: initial population (Latin hypercube) and DE's draws.
        progress: a progress bar over generations.

    Example:
        >>> from circml.spice.testbenches import get_testbench
        >>> evo = EvolutionarySizer(get_testbench("ota_5t"), population=512)
        >>> res = evo.optimize([100e-6, 50e-6, 30.0, 1e5])                          # doctest: +SKIP
        >>> res.feasible, res.calls_to_feasible, res.time_to_feasible               # doctest: +SKIP
        >>> evo.sample([100e-6, 50e-6, 30.0, 1e5], n=10).shape                      # doctest: +SKIP
        (10, 15)
    """

    FORMAT = "circml.sizing.evolutionary"
    _PAPER_METRICS = ("power", "irn", "gain_db", "bw")
    _UPPER = ("power", "irn", "noise", "offset", "area", "delay", "rise_delay", "fall_delay")

    def __init__(self, testbench, population: int = 512, max_generations: int = 500,
                 max_calls: Optional[int] = None, metrics: Optional[Sequence[str]] = None,
                 directions: Optional[Sequence] = None, mutation=(0.5, 1.0), recombination: float = 0.9,
                 strategy: str = "best1bin", workers: Optional[int] = None, stop_at_feasible: bool = True,
                 seed: int = 0, progress: bool = True):
        from ..spice import Testbench
        if not isinstance(testbench, Testbench):
            raise TypeError(f"testbench must be a circml.spice.Testbench, got {type(testbench).__name__}")
        if int(population) < 5:
            raise ValueError(f"population must be at least 5 (DE's best1bin draws 4 others), got {population}")
        if int(max_generations) < 0:
            raise ValueError(f"max_generations must not be negative, got {max_generations}")
        if max_calls is not None and int(max_calls) < 1:
            raise ValueError(f"max_calls must be positive, got {max_calls}")
        if workers is not None and int(workers) < 0:
            raise ValueError(f"workers must be a non-negative int or None, got {workers}")
        self.testbench = testbench
        self.population, self.max_generations = int(population), int(max_generations)
        self.max_calls = None if max_calls is None else int(max_calls)
        self.mutation, self.recombination, self.strategy = mutation, float(recombination), strategy
        self.workers, self.stop_at_feasible, self.seed, self.progress = workers, bool(stop_at_feasible), int(seed), \
            bool(progress)
        self.metrics: List[str] = []
        self.directions: List[float] = []
        self._set_metrics(metrics, directions)
        self._lo = np.array([p.low for p in testbench.params], np.float64)
        self._hi = np.array([p.high for p in testbench.params], np.float64)
        self.history: List[EvolutionResult] = []
        self.last_result: Optional[EvolutionResult] = None
        self.size_names = testbench.param_names

    def _set_metrics(self, metrics, directions) -> None:
        tbm = list(self.testbench.metrics)
        if metrics is None:
            metrics = [m for m in self._PAPER_METRICS if m in tbm]
            if len(metrics) < len(self._PAPER_METRICS):
                metrics = tbm
        metrics = [str(m) for m in metrics]
        unknown = [m for m in metrics if m not in tbm]
        if unknown:
            raise ValueError(f"metrics {unknown} are not metrics of testbench {self.testbench.name!r} ({tbm})")
        if directions is None:
            sign = np.array([1.0 if m in self._UPPER else -1.0 for m in metrics])
        else:
            sign = parse_directions(directions)
            if sign.size != len(metrics):
                raise ValueError(f"directions has {sign.size} entries for {len(metrics)} metrics")
        self.metrics, self.directions = metrics, sign.tolist()

    @property
    def n_sizes(self) -> int:
        return len(self.testbench.params)

    @property
    def n_metrics(self) -> int:
        return len(self.metrics)

    @property
    def ranges(self) -> np.ndarray:
        return np.stack([self._lo, self._hi], axis=1)

    def fit(self, X=None, Y=None, ranges=None, directions: Optional[Sequence] = None,
            metrics: Optional[Sequence[str]] = None, **ignored) -> "EvolutionarySizer":
        """Record what the targets mean; nothing is trained (the search simulates instead).

        Args:
            X, Y: accepted for the common API; only ``Y``'s column names are read (a DataFrame's
                names select the metrics) and its width checked.
            ranges: ``[D, 2]`` bounds of the search, within the testbench's (default: its ranges).
            directions: per metric, as :meth:`DiffusionSizer.fit`.
            metrics: the testbench metrics the target columns are.
        """
        if metrics is None and Y is not None and hasattr(Y, "columns"):
            metrics = [str(c) for c in Y.columns]
        if metrics is not None or directions is not None:
            self._set_metrics(metrics if metrics is not None else self.metrics, directions)
        if Y is not None and np.asarray(Y).ndim == 2 and np.asarray(Y).shape[1] != self.n_metrics:
            raise ValueError(f"Y has {np.asarray(Y).shape[1]} columns for the {self.n_metrics} metrics {self.metrics};"
                             " pass metrics=[...] to name them")
        if ranges is not None:
            r = np.asarray(ranges, np.float64)
            if r.shape != (self.n_sizes, 2):
                raise ValueError(f"ranges must have shape ({self.n_sizes}, 2), got {r.shape}")
            tb_lo = np.array([p.low for p in self.testbench.params])
            tb_hi = np.array([p.high for p in self.testbench.params])
            if (r[:, 0] < tb_lo).any() or (r[:, 1] > tb_hi).any() or (r[:, 0] >= r[:, 1]).any():
                raise ValueError("ranges must be increasing and within the testbench's parameter ranges")
            self._lo, self._hi = r[:, 0].copy(), r[:, 1].copy()
        return self

    # the search space: unit coordinates -> physical units through the testbench's parameters
    def _from_unit(self, U: np.ndarray) -> np.ndarray:
        cols = []
        for j, p in enumerate(self.testbench.params):
            u_lo, u_hi = float(p.to_unit(self._lo[j])), float(p.to_unit(self._hi[j]))
            cols.append(p.clip(p.from_unit(u_lo + np.clip(U[:, j], 0, 1) * (u_hi - u_lo))))
        return np.stack(cols, axis=1)

    def optimize(self, targets, seed: Optional[int] = None) -> EvolutionResult:
        """Search for designs meeting ``targets`` (``[M]``, physical units, the order of
        ``metrics``). Returns an :class:`EvolutionResult`; it is also ``last_result``."""
        from scipy.optimize import differential_evolution

        from ..spice import sweep
        from ..spice.sweep import sample_unit

        T, single = _targets(targets, self.n_metrics)
        if not single:
            raise ValueError("optimize takes one target row; call it once per target")
        t = T[0]
        sign = np.asarray(self.directions, np.float64)
        seed = self.seed if seed is None else int(seed)
        midx = [list(self.testbench.metrics).index(m) for m in self.metrics]
        D, S = self.n_sizes, self.population
        budget = self.max_calls if self.max_calls is not None else S * (self.max_generations + 1)
        xs, ys, vs = [], [], []
        state = {"calls": 0, "gens": 0, "first": None, "t_first": None}
        pool = None
        if self.workers != 0:
            n = self.workers or os.cpu_count() or 1
            pool = SimulationPool(n)   # warm workers for every generation
        bar = _progress(self.progress, self.max_generations + 1, f"DE {self.testbench.name}", "gen")
        t0 = time.perf_counter()

        def fitness(U: np.ndarray) -> np.ndarray:   # U [D, k] (SciPy's vectorised layout)
            if state["calls"] >= budget:
                raise _Stop("max_calls")
            U = np.asarray(U, np.float64).T
            truncated = len(U) > budget - state["calls"]
            X = self._from_unit(U[:budget - state["calls"]])
            ds = sweep(self.testbench, X, workers=(0 if pool is None else None), executor=pool, progress=False)
            Y = np.asarray(ds.Y, np.float64)[:, midx]
            Y[np.asarray(ds.status) != "ok"] = np.nan
            v = spec_violation(Y, t, sign)
            ok = np.flatnonzero(v == 0)
            if state["first"] is None and ok.size:
                state["first"] = state["calls"] + int(ok[0]) + 1
                state["t_first"] = time.perf_counter() - t0
            state["calls"] += len(X)
            state["gens"] += 1
            xs.append(X); ys.append(Y); vs.append(v)
            if bar is not None:
                bar.set_postfix({"best": f"{np.min(np.concatenate(vs)):.3g}", "calls": state["calls"]}, refresh=False)
                bar.update(1)
            if state["first"] is not None and self.stop_at_feasible:
                raise _Stop("feasible")
            if truncated:   # the budget ended inside this generation: SciPy needs all of it
                raise _Stop("max_calls")
            # DE minimises; a failed simulation gets a large finite value so SciPy's bookkeeping holds
            return np.where(np.isfinite(v), v, 1e6)

        reason = "max_generations"
        init = sample_unit(S, D, "lhs", seed)
        try:
            res = differential_evolution(fitness, [(0.0, 1.0)] * D, strategy=self.strategy,
                                         maxiter=self.max_generations, popsize=1, tol=0.0, atol=0.0,
                                         mutation=self.mutation, recombination=self.recombination, rng=seed,
                                         polish=False, init=init, updating="deferred", vectorized=True)
            if res.nit < self.max_generations:
                reason = "converged"
            if self.max_calls is not None and state["calls"] >= budget:
                reason = "max_calls"
        except _Stop as e:
            reason = e.reason
        finally:
            if bar is not None:
                bar.close()
            if pool is not None:
                pool.close()
        wall = time.perf_counter() - t0
        X = np.concatenate(xs) if xs else np.zeros((0, D))
        Y = np.concatenate(ys) if ys else np.zeros((0, self.n_metrics))
        v = np.concatenate(vs) if vs else np.zeros(0)
        out = EvolutionResult(state["first"] is not None, state["calls"], state["first"], state["t_first"], wall,
                              state["gens"], X, Y, v, t.copy(), sign.copy(), list(self.metrics), reason)
        self.last_result = out
        self.history.append(out)
        return out

    def sample(self, targets, n: int = 100, seed: Optional[int] = None) -> np.ndarray:
        """Run :meth:`optimize` for each target and return its ``n`` best designs (lowest
        violation, then most slack; fewer if fewer distinct designs were simulated):
        ``[n, D]`` for one target, ``[K, n, D]`` for ``K`` (each run is in ``history``)."""
        T, single = _targets(targets, self.n_metrics)
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        out = [self.optimize(row, seed=seed).best(n) for row in T]
        if single:
            return out[0]
        k = min(len(o) for o in out)
        return np.stack([o[:k] for o in out])

    def save(self, path: Union[str, Path]) -> Path:
        """The settings and the runs so far (every simulated design, its metrics and violation)
        as ``.npz`` + JSON header. The testbench is stored by name only."""
        header = {"format": self.FORMAT, "version": FORMAT_VERSION, "testbench": self.testbench.name,
                  "population": self.population, "max_generations": self.max_generations,
                  "max_calls": self.max_calls, "metrics": self.metrics, "directions": self.directions,
                  "mutation": list(np.atleast_1d(self.mutation).tolist()), "recombination": self.recombination,
                  "strategy": self.strategy, "workers": self.workers, "stop_at_feasible": self.stop_at_feasible,
                  "seed": self.seed, "ranges": self.ranges.tolist(),
                  "runs": [{k: getattr(r, k) for k in ("feasible", "calls", "calls_to_feasible", "time_to_feasible",
                                                      "wall_time", "generations", "metrics", "stop_reason")}
                           for r in self.history]}
        arrays = {}
        for i, r in enumerate(self.history):
            arrays[f"run{i}.X"], arrays[f"run{i}.Y"], arrays[f"run{i}.violation"] = r.X, r.Y, r.violation
            arrays[f"run{i}.targets"], arrays[f"run{i}.directions"] = r.targets, r.directions
        return write_npz(path, header, arrays)

    @classmethod
    def load(cls, path: Union[str, Path], testbench=None) -> "EvolutionarySizer":
        """Read :meth:`save`'s file; the testbench is looked up by name unless given."""
        h, z = read_npz(path, cls.FORMAT, FORMAT_VERSION, "circml sizer")
        if testbench is None:
            from ..spice.testbenches import get_testbench
            testbench = get_testbench(h["testbench"])
        mut = h["mutation"]
        s = cls(testbench, population=h["population"], max_generations=h["max_generations"],
                max_calls=h["max_calls"], metrics=h["metrics"], directions=h["directions"],
                mutation=tuple(mut) if len(mut) > 1 else mut[0], recombination=h["recombination"],
                strategy=h["strategy"], workers=h["workers"], stop_at_feasible=h["stop_at_feasible"], seed=h["seed"])
        s.fit(ranges=h["ranges"])
        for i, r in enumerate(h["runs"]):
            s.history.append(EvolutionResult(X=z[f"run{i}.X"], Y=z[f"run{i}.Y"], violation=z[f"run{i}.violation"],
                                             targets=z[f"run{i}.targets"], directions=z[f"run{i}.directions"], **r))
        s.last_result = s.history[-1] if s.history else None
        return s

    def __repr__(self) -> str:
        return (f"EvolutionarySizer({self.testbench.name!r}, population={self.population}, "
                f"max_generations={self.max_generations}, metrics={self.metrics}, runs={len(self.history)})")
