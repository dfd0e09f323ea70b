"""Push-button analog sizing with a conditional diffusion transformer (Azevedo, Lourenço & Martins,
"Encoder-Decoder Generative Diffusion Transformer Towards Push-Button Analog IC Sizing").

The inverse problem: given performance targets ``y`` (power, noise, gain, bandwidth, ...), draw
sizing vectors ``x`` (widths, lengths, fingers, bias voltages, ...) of designs that meet them.
A DDPM learns p(x | y); every number runs in circml's C core (``csrc/diffusion/model.c``), this
module holds the preprocessing, the training loop, sampling and saving.

    >>> import numpy as np
    >>> from circml.sizing import DiffusionSizer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(1e-6, 1e-5, (500, 3))                     # sizes, metres
    >>> Y = np.c_[X.sum(1) * 1e6, X[:, 0] / X[:, 1]]              # two performances
    >>> sizer = DiffusionSizer(channels=32, blocks=1, epochs=2)
    >>> _ = sizer.fit(X, Y, progress=False)
    >>> sizer.sample(Y[0], n=10, steps=10).shape
    (10, 3)

Preprocessing (the paper: "normalization, 2nd order polynomial feature expansion, and
augmentation by a factor of 10"), in this order:

1. augmentation (:class:`RelaxSpecs`): a design that achieves ``y`` also meets every looser
   specification, so each design is kept and repeated ``copies`` (10) more times with its
   performances relaxed: ``y' = y + s * u * relax * scale`` per metric, with ``u ~ U(0, 1)`` drawn
   per copy and metric, ``relax = 0.2``, and ``s = +1`` for a metric specified as an upper bound
   (``"<="``, e.g. power, noise: any larger bound is also met), ``-1`` for a lower bound (``">="``,
   gain, bandwidth), ``0`` for a metric without a direction (left unchanged). By default
   (``relax_units="std"``) the relaxation happens in the space the model is conditioned in (the
   log of the metrics ``log_metrics`` selects) and ``scale`` is each (log-)metric's robust standard
   deviation (IQR / 1.349), so a log metric is relaxed by a factor. ``relax_units="mean"`` is the
   augmentation of the public code of Eid et al. (``augment_data(..., repetition_factor=10,
   scale=0.2)``, the DM-MLP the paper compares with): physical units, ``scale = |mean(y)|``; it is
   badly scaled for metrics that span decades (docs/sizing.md). The sizes are never changed. The
   set grows 11-fold (N originals + 10 N relaxed copies). With no direction given for any metric
   the copies would equal the originals, so none are made.
2. normalisation: sizes to ``[-1, 1]`` by their ranges (optionally on a log scale), the diffusion's
   data space; performances centred and scaled over the augmented set (by default robustly:
   median and IQR / 1.349, ``robust_metrics``; else mean and standard deviation).
3. polynomial expansion of degree 2 of the standardised performances (PyTorch-free and
   sklearn-free, in scikit-learn's ``PolynomialFeatures(2, include_bias=False)`` column order:
   ``y_i``, then ``y_i * y_j`` for ``i <= j``), then scaled again the same way: the condition fed
   to the model. Targets at sampling time go through the same fitted transforms.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from itertools import combinations_with_replacement
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._npz import read_npz, write_npz

FORMAT_VERSION = 1

#: A callback gets ``(sizer, epoch, logs)`` after every epoch; ``logs`` holds that epoch's
#: ``train_loss`` (and ``val_loss``, ``lr``) and may be extended. Returning ``True`` stops.
Callback = Callable[["DiffusionSizer", int, Dict[str, float]], Optional[bool]]

_ACTIVATIONS = {"gelu": 0, "relu": 1}
_SAMPLERS = {"ddim": 0, "ddpm": 1}
_SPACINGS = {"trailing": 0, "leading": 1, "linspace": 2}
#: The two classifier-free guidance conventions (see :meth:`DiffusionSizer.sample`).
GUIDANCE_MODES = {"uncond_weight": 0, "scale": 1}
_DIRECTIONS = {"<=": 1.0, "le": 1.0, "max": 1.0, "upper": 1.0, ">=": -1.0, "ge": -1.0, "min": -1.0, "lower": -1.0,
               None: 0.0, "": 0.0, "=": 0.0, "none": 0.0}


# -- configuration -------------------------------------------------------------------------
@dataclass
class SizerConfig:
    """Model, data, training and sampling settings.

    The defaults train on ~2,000 designs (x10 augmented) in about five minutes on 2 cores and draw
    100 designs with DDIM 50 and guidance in well under a second; :meth:`paper` gives the
    paper's settings (N = 8 encoder and decoder blocks, T = 1000, 100 epochs, w = 0.1).

    Example:
        >>> SizerConfig().blocks, SizerConfig.paper().blocks, SizerConfig.paper(epochs=5).epochs
        (2, 8, 5)
    """

    # model: nn.Transformer(channels, heads, blocks, blocks, ff, norm_first=True) with embeddings
    channels: int = 64
    heads: int = 4
    ff: int = 128
    blocks: int = 2                      # N: encoder blocks and decoder blocks each
    cond_tokens: Optional[int] = None    # condition tokens; None: one per performance metric
    activation: str = "relu"             # the paper's; or "gelu"
    dropout: float = 0.1
    timesteps: int = 1000                # T
    zero_terminal_snr: bool = True       # cosine schedule rescaled to zero terminal SNR
    # data
    poly_degree: int = 2
    augment: int = 10                    # relaxed copies per design (0: none)
    relax: float = 0.2                   # largest relaxation, in relax_units
    relax_units: str = "std"             # "std": up to relax std of the condition; "mean": relax * |mean(y)| (Eid et al.)
    robust_metrics: bool = True          # centre/scale the (log-)metrics by median and IQR, not mean and std
    metric_clip: Optional[float] = None  # clip the standardised metrics to +-this before the expansion
    log_sizes: bool = False              # normalise sizes on a log scale (positive ranges only)
    log_metrics: bool = False            # condition on log(metric) (positive metrics only; bool or one per metric)
    # training
    epochs: int = 60                     # with the overshoot, 60 beat 20 clearly (docs/sizing.md)
    batch_size: int = 256
    lr: float = 1e-3
    min_lr_ratio: float = 0.05           # cosine decay to lr * min_lr_ratio, after warmup
    warmup_steps: int = 100
    weight_decay: float = 0.0
    p_uncond: float = 0.1                # condition dropout probability (learned null embedding)
    max_grad_norm: float = 1.0
    # sampling
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    guidance: float = 0.1                # w in guidance_mode's convention (the paper: 0.1)
    guidance_mode: str = "uncond_weight"  # eps = w eps(x) + (1 - w) eps(x|y), the paper's eq. (3)
    spacing: str = "trailing"
    clip: float = 1.0                    # x0 estimates clipped to the normalised range each step
    overshoot: float = 0.25              # condition on specs this much beyond the target (inequalities only)
    overshoot_spread: float = 0.0        # plus U(0, spread) more, drawn per sample and metric
    overshoot_units: str = "std"         # "std": standard deviations of the condition; "relative": fractions of |t|

    @classmethod
    def paper(cls, **overrides) -> "SizerConfig":
        """The paper's settings: T = 1000, cosine schedule, N = 8 blocks, w = 0.1, 100 epochs, no
        overshoot (the targets are the condition as given), and the augmentation and scaling of
        the paper's public reference (Eid et al.): relaxation by ``relax * |mean(y)|``, mean and
        standard deviation."""
        return replace(cls(blocks=8, timesteps=1000, epochs=100, guidance=0.1, guidance_mode="uncond_weight",
                           overshoot=0.0, relax_units="mean", robust_metrics=False), **overrides)

    def __post_init__(self):
        for name in ("channels", "heads", "ff", "blocks", "timesteps", "batch_size", "steps", "poly_degree"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"SizerConfig.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.channels % self.heads:
            raise ValueError(f"SizerConfig.channels ({self.channels}) must be a multiple of heads ({self.heads})")
        if self.cond_tokens is not None and int(self.cond_tokens) < 1:
            raise ValueError(f"SizerConfig.cond_tokens must be at least 1 or None, got {self.cond_tokens!r}")
        if self.timesteps < 2:
            raise ValueError(f"SizerConfig.timesteps must be at least 2, got {self.timesteps}")
        if self.steps > self.timesteps:
            raise ValueError(f"SizerConfig.steps ({self.steps}) cannot exceed timesteps ({self.timesteps})")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"SizerConfig.activation must be one of {sorted(_ACTIVATIONS)}, got {self.activation!r}")
        if self.sampler not in _SAMPLERS:
            raise ValueError(f"SizerConfig.sampler must be one of {sorted(_SAMPLERS)}, got {self.sampler!r}")
        if self.spacing not in _SPACINGS:
            raise ValueError(f"SizerConfig.spacing must be one of {sorted(_SPACINGS)}, got {self.spacing!r}")
        if self.guidance_mode not in GUIDANCE_MODES:
            raise ValueError(f"SizerConfig.guidance_mode must be one of {sorted(GUIDANCE_MODES)}, "
                             f"got {self.guidance_mode!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SizerConfig.dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"SizerConfig.p_uncond must be in [0, 1], got {self.p_uncond}")
        if self.augment < 0 or self.relax < 0 or self.epochs < 0:
            raise ValueError("SizerConfig.augment, relax and epochs must not be negative")
        if self.metric_clip is not None and not self.metric_clip > 0:
            raise ValueError(f"SizerConfig.metric_clip must be positive or None, got {self.metric_clip!r}")
        if self.relax_units not in ("mean", "std"):
            raise ValueError(f"SizerConfig.relax_units must be 'mean' or 'std', got {self.relax_units!r}")
        if self.eta < 0 or self.clip < 0:
            raise ValueError("SizerConfig.eta and clip must not be negative")
        if self.overshoot_units not in ("std", "relative"):
            raise ValueError(f"SizerConfig.overshoot_units must be 'std' or 'relative', got {self.overshoot_units!r}")
        if self.overshoot < 0 or self.overshoot_spread < 0:
            raise ValueError("SizerConfig.overshoot and overshoot_spread must not be negative")


# -- preprocessing ---------------------------------------------------------------------------
class MinMaxScale:
    """Sizes to ``[-1, 1]`` by per-column ranges ``lo, hi`` (on ``log`` where ``log`` is set).

    Example:
        >>> s = MinMaxScale([0.0, 1e-6], [2.0, 1e-4], log=[False, True])
        >>> np.allclose(s.transform(np.array([[1.0, 1e-5]])), 0.0)   # the middle of each range
        True
    """

    def __init__(self, lo, hi, log=None):
        self.lo, self.hi = np.asarray(lo, np.float64).ravel(), np.asarray(hi, np.float64).ravel()
        self.log = np.zeros(self.lo.size, bool) if log is None else np.broadcast_to(np.asarray(log, bool),
                                                                                      self.lo.shape).copy()
        if self.lo.shape != self.hi.shape:
            raise ValueError(f"ranges: {self.lo.size} lower and {self.hi.size} upper bounds")
        bad = np.flatnonzero(~(self.hi > self.lo))
        if bad.size:
            raise ValueError(f"ranges: column(s) {bad.tolist()} have hi <= lo (a constant column cannot be scaled)")
        badlog = np.flatnonzero(self.log & (self.lo <= 0))
        if badlog.size:
            raise ValueError(f"log_sizes: column(s) {badlog.tolist()} have non-positive lower bounds")

    def _fwd(self, a):
        a = np.array(a, np.float64, copy=True)
        a[..., self.log] = np.log(a[..., self.log])
        return a

    def transform(self, X: np.ndarray) -> np.ndarray:
        lo, hi = self._fwd(self.lo), self._fwd(self.hi)
        return 2 * (self._fwd(X) - lo) / (hi - lo) - 1

    def inverse(self, Z: np.ndarray) -> np.ndarray:
        lo, hi = self._fwd(self.lo), self._fwd(self.hi)
        X = (np.asarray(Z, np.float64) + 1) / 2 * (hi - lo) + lo
        X[..., self.log] = np.exp(X[..., self.log])
        return X

    def clip(self, X: np.ndarray) -> np.ndarray:
        return np.clip(X, self.lo, self.hi)

    def state(self) -> dict:
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist(), "log": self.log.tolist()}


class Standardize:
    """Zero mean, unit variance per column (biased variance, as scikit-learn's StandardScaler;
    constant columns are centred only)."""

    def __init__(self, mean=None, std=None):
        self.mean = None if mean is None else np.asarray(mean, np.float64)
        self.std = None if std is None else np.asarray(std, np.float64)

    def fit(self, Y: np.ndarray, robust: bool = False) -> "Standardize":
        """Fit the centre and scale per column; ``robust=True`` uses the median and the
        interquartile range / 1.349 (the standard deviation for normal data), as scikit-learn's
        ``RobustScaler(unit_variance=True)``, so that a few outlying rows (a broken design with a
        huge noise) do not squeeze the rest into a sliver."""
        Y = np.asarray(Y, np.float64)
        if robust:
            q1, self.mean, q3 = np.percentile(Y, [25, 50, 75], axis=0)
            std = (q3 - q1) / 1.3489795003921634
            std = np.where(std > 0, std, Y.std(axis=0))
        else:
            self.mean = Y.mean(axis=0)
            std = Y.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def transform(self, Y: np.ndarray) -> np.ndarray:
        return (np.asarray(Y, np.float64) - self.mean) / self.std

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}


class PolynomialExpansion:
    """All monomials of degree 1..``degree`` of the columns, in scikit-learn's
    ``PolynomialFeatures(degree, include_bias=False)`` order.

    Example:
        >>> PolynomialExpansion(2).transform(np.array([[2.0, 3.0]]))
        array([[2., 3., 4., 6., 9.]])
    """

    def __init__(self, degree: int = 2):
        if int(degree) < 1:
            raise ValueError(f"degree must be at least 1, got {degree}")
        self.degree = int(degree)

    def terms(self, m: int) -> List[Tuple[int, ...]]:
        return [c for d in range(1, self.degree + 1) for c in combinations_with_replacement(range(m), d)]

    def transform(self, Y: np.ndarray) -> np.ndarray:
        Y = np.asarray(Y, np.float64)
        cols = [np.prod(Y[:, list(c)], axis=1) for c in self.terms(Y.shape[1])]
        return np.stack(cols, axis=1)


class RelaxSpecs:
    """The x``copies`` augmentation: keep every design and add ``copies`` copies of it whose
    performances are relaxed towards looser specifications (see the module docstring):
    ``y' = y + s * u * relax * |mean(y)|``, ``u ~ U(0, 1)``, ``s = +1 / -1 / 0`` for metrics
    specified as ``"<="`` / ``">="`` / neither. Sizes are repeated unchanged. A callable
    ``(X, Y, rng) -> (X', Y')``: transforms of this shape compose.

    Example:
        >>> aug = RelaxSpecs(copies=2, relax=0.2, directions=["<=", ">="])
        >>> X2, Y2 = aug(np.ones((3, 4)), np.array([[1.0, 10.0]] * 3), np.random.default_rng(0))
        >>> X2.shape, bool((Y2[3:, 0] >= 1).all() and (Y2[3:, 1] <= 10).all())
        ((9, 4), True)
    """

    def __init__(self, copies: int = 10, relax: float = 0.2, directions: Optional[Sequence] = None,
                 scale: Optional[np.ndarray] = None):
        self.copies, self.relax = int(copies), float(relax)
        self.sign = None if directions is None else parse_directions(directions)
        self.scale = None if scale is None else np.asarray(scale, np.float64)

    def __call__(self, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
        sign = np.zeros(Y.shape[1]) if self.sign is None else self.sign
        if sign.size != Y.shape[1]:
            raise ValueError(f"directions has {sign.size} entries for {Y.shape[1]} performance columns")
        if self.copies == 0 or not sign.any():
            return X, Y
        scale = np.abs(Y.mean(axis=0)) if self.scale is None else self.scale
        Xr, Yr = np.repeat(X, self.copies, axis=0), np.repeat(Y, self.copies, axis=0)
        Yr = Yr + sign * rng.random(Yr.shape) * self.relax * scale
        return np.concatenate([X, Xr]), np.concatenate([Y, Yr])


def parse_directions(directions: Sequence) -> np.ndarray:
    """``"<="`` (upper bound, e.g. power) -> +1, ``">="`` (lower bound, gain) -> -1, ``None`` -> 0."""
    out = []
    for i, d in enumerate(directions):
        key = d.strip().lower() if isinstance(d, str) else d
        if isinstance(key, (int, float)) and not isinstance(key, bool) and key in (-1, 0, 1):
            out.append(float(key))
        elif key in _DIRECTIONS:
            out.append(_DIRECTIONS[key])
        else:
            raise ValueError(f"directions[{i}] = {d!r}: use '<=' (an upper bound, e.g. power or noise), "
                             "'>=' (a lower bound, e.g. gain or bandwidth) or None")
    return np.asarray(out, np.float64)


def _as_matrix(a, what: str) -> Tuple[np.ndarray, Optional[List[str]]]:
    names = [str(c) for c in a.columns] if hasattr(a, "columns") else None
    m = np.asarray(a, dtype=np.float64)
    if m.ndim == 1:
        m = m[:, None]
    if m.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (designs x columns), got shape {m.shape}")
    bad = np.argwhere(~np.isfinite(m))
    if bad.size:
        raise ValueError(f"{what} has a non-finite value at row {bad[0][0]}, column {bad[0][1]}")
    return m, names


def _log_metrics(Y: np.ndarray, log_metrics) -> np.ndarray:
    """``Y`` with ``log`` taken of the metrics ``log_metrics`` selects (a bool for all, or one per
    metric): metrics spanning decades (power, noise, bandwidth) then get a condition that resolves
    small values as finely as large ones. Applied after the augmentation, which relaxes specs in
    physical units."""
    flags = np.broadcast_to(np.asarray(log_metrics, bool), (Y.shape[1],))
    if not flags.any():
        return Y
    bad = np.flatnonzero(flags & (Y <= 0).any(axis=0))
    if bad.size:
        raise ValueError(f"log_metrics: metric column(s) {bad.tolist()} have values <= 0 (cannot take the log)")
    Y = np.array(Y, np.float64, copy=True)
    Y[:, flags] = np.log(Y[:, flags])
    return Y


# -- what the learned sizers share ------------------------------------------------------------
def _progress(enabled: bool, total: int, desc: str, unit: str):
    """A tqdm bar of ``total`` steps, or None (disabled, nothing to do, or tqdm missing)."""
    if not enabled or not total:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit)


class _LearnedSizer:
    """What :class:`DiffusionSizer` (and DM-MLP) and the inverse ANN share: the config with keyword
    overrides, the fitted state's properties, the data checks, hold-out and preprocessing of
    ``fit`` (so every learned sizer sees the same data), the learning-rate schedule and the epoch
    loop, ``save`` and ``load``. Subclasses set ``_config_class``, ``FORMAT`` and ``_adam_step``
    (the C model's AdamW step counter: ``(model[, step]) -> step``) and define ``_build``."""

    _config_class: type = type(None)
    FORMAT = ""   # the saved file's format name

    def __init__(self, config=None, seed: int = 0, **overrides):
        cls = self._config_class
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
        self.config = replace(config or cls(), **overrides)
        self.seed = int(seed)
        self.history: Dict[str, List[float]] = {"train_loss": []}
        self.epochs_trained = 0
        self.steps_trained = 0
        self.size_names: Optional[List[str]] = None
        self.metric_names: Optional[List[str]] = None
        self.directions: Optional[List[float]] = None
        self.fit_time = 0.0
        self._model = None
        self._arrays: Dict = {}
        self._x_scale: Optional[MinMaxScale] = None
        self._y_std: Optional[Standardize] = None
        self._f_std: Optional[Standardize] = None
        self._poly = PolynomialExpansion(self.config.poly_degree)

    # -- shapes and arrays ---------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self._model is not None

    @property
    def n_sizes(self) -> int:
        return 0 if self._x_scale is None else int(self._x_scale.lo.size)

    @property
    def n_metrics(self) -> int:
        return 0 if self._y_std is None else int(self._y_std.mean.size)

    @property
    def num_parameters(self) -> int:
        return int(self._arrays["params"].size) if self.fitted else 0

    @property
    def ranges(self) -> np.ndarray:
        """``[D, 2]``: the lower and upper bound of each size (what samples are clipped to)."""
        self._require_fitted()
        return np.stack([self._x_scale.lo, self._x_scale.hi], axis=1)

    def _require_fitted(self):
        if not self.fitted:
            name = type(self).__name__
            raise RuntimeError(f"this {name} is not fitted: call fit(X, Y) or {name}.load(path)")

    # -- saving ----------------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> Path:
        """Write an ``.npz`` of named float32 arrays (parameters, AdamW moments) with a JSON
        header (format, version, config, seed, preprocessing, history); no pickle, so
        ``np.load(path, allow_pickle=False)`` reads it. Returns the path written (``.npz`` is
        appended when missing).

        Example:
            >>> sizer.save("ota1_sizer.npz"); DiffusionSizer.load("ota1_sizer.npz")  # doctest: +SKIP
        """
        self._require_fitted()
        header = {"format": self.FORMAT, "version": FORMAT_VERSION, "config": asdict(self.config),
                  "seed": self.seed, "n_sizes": self.n_sizes, "n_metrics": self.n_metrics,
                  "x_scale": self._x_scale.state(), "y_std": self._y_std.state(), "f_std": self._f_std.state(),
                  "directions": self.directions, "size_names": self.size_names, "metric_names": self.metric_names,
                  "history": self.history, "epochs_trained": self.epochs_trained,
                  "steps_trained": self.steps_trained, "adam_step": self._adam_step(self._model),
                  "fit_time": self.fit_time}
        arrays = self.state_dict()
        mom, P = self._arrays["moments"], self._arrays["params"].size
        arrays["__adam_m__"], arrays["__adam_v__"] = mom[:P].copy(), mom[P:].copy()
        return write_npz(path, header, arrays)

    @classmethod
    def load(cls, path: Union[str, Path]):
        """Read a sizer written by :meth:`save` (of this class). Refuses other files and newer
        format versions."""
        h, z = read_npz(path, cls.FORMAT, FORMAT_VERSION, "circml sizer")
        s = cls(cls._config_class(**h["config"]), seed=h["seed"])
        xs = h["x_scale"]
        s._x_scale = MinMaxScale(xs["lo"], xs["hi"], xs["log"])
        s._y_std = Standardize(h["y_std"]["mean"], h["y_std"]["std"])
        s._f_std = Standardize(h["f_std"]["mean"], h["f_std"]["std"])
        s._build(h["n_sizes"], h["n_metrics"])
        s.load_state_dict(z)
        P = s._arrays["params"].size
        mom = s._arrays["moments"]
        mom[:P], mom[P:] = z["__adam_m__"], z["__adam_v__"]
        cls._adam_step(s._model, int(h["adam_step"]))
        s.directions, s.size_names, s.metric_names = h["directions"], h["size_names"], h["metric_names"]
        s.history, s.epochs_trained, s.steps_trained = h["history"], h["epochs_trained"], h["steps_trained"]
        s.fit_time = float(h.get("fit_time", 0.0))
        return s

    # -- preprocessing -----------------------------------------------------------------
    def condition(self, targets: np.ndarray, shift: Optional[np.ndarray] = None) -> np.ndarray:
        """The model's condition features of performance rows (physical units): standardised,
        expanded to degree ``poly_degree``, standardised again. ``[K, M] -> [K, P]`` float32.
        ``shift`` (``[M]`` or ``[K, M]``) is added to the standardised performances before the
        expansion, i.e. in units of each metric's standard deviation over the training set (on
        the log scale where ``log_metrics`` selects it); :meth:`DiffusionSizer.sample` uses it
        for the overshoot."""
        if self._f_std is None:
            self._require_fitted()
        T = np.asarray(targets, np.float64)
        if T.ndim == 1:
            T = T[None, :]
        if T.ndim != 2 or T.shape[1] != self.n_metrics:
            raise ValueError(f"targets must have {self.n_metrics} performance column(s), got shape {T.shape}")
        if not np.isfinite(T).all():
            raise ValueError("targets must be finite")
        logs = _log_metrics(T, getattr(self.config, "log_metrics", False))
        Z = self._y_std.transform(logs)
        if shift is not None:
            Z = Z + np.asarray(shift, np.float64)
        return self._f_std.transform(self._poly.transform(self._clip_metrics(Z))).astype(np.float32)

    def _clip_metrics(self, Z: np.ndarray) -> np.ndarray:
        c = getattr(self.config, "metric_clip", None)
        return Z if c is None else np.clip(Z, -float(c), float(c))

    def _log_metrics(self, Y: np.ndarray) -> np.ndarray:
        return _log_metrics(Y, getattr(self.config, "log_metrics", False))

    def _prepare(self, X: np.ndarray, Y: np.ndarray, sign: np.ndarray,
                 rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """Augment the training designs (:class:`RelaxSpecs`, in the units ``relax_units``
        says) and fit the condition's transforms on the augmented set; returns ``(Xa, Ya)``,
        ``Ya`` in physical units. Shared by the learned sizers (the inverse ANN too), so they all
        see the same data."""
        c = self.config
        M = Y.shape[1]
        flags = np.broadcast_to(np.asarray(getattr(c, "log_metrics", False), bool), (M,))
        if flags.any() and (Y[:, flags] <= 0).any():
            raise ValueError("log_metrics: a selected metric has values <= 0 in Y (cannot take the log)")
        units = getattr(c, "relax_units", "mean")
        if units == "std":
            # relax in the space the model is conditioned in: by up to `relax` standard deviations
            # (robust ones with robust_metrics) of each (log-)metric, i.e. by a factor for a log metric
            L = _log_metrics(Y, flags)
            scale = Standardize().fit(L, robust=bool(getattr(c, "robust_metrics", False))).std
            Xa, La = RelaxSpecs(c.augment, c.relax, sign, scale=scale)(X, L, rng)
            Ya = La.copy()
            Ya[:, flags] = np.exp(La[:, flags])
        else:
            Xa, Ya = RelaxSpecs(c.augment, c.relax, sign)(X, Y, rng)
            if flags.any():
                # a ">=" spec relaxed below zero means "any value"; for a log condition it becomes
                # the smallest positive bound in the set, which the design still meets
                Ya = Ya.copy()
                for j in np.flatnonzero(flags):
                    col = Ya[:, j]
                    col[col <= 0] = col[col > 0].min()
        robust = bool(getattr(c, "robust_metrics", False))
        self._y_std = Standardize().fit(self._log_metrics(Ya), robust=robust)
        self._poly = PolynomialExpansion(c.poly_degree)
        Z = self._clip_metrics(self._y_std.transform(self._log_metrics(Ya)))
        self._f_std = Standardize().fit(self._poly.transform(Z), robust=robust)
        return Xa, Ya

    # -- training ------------------------------------------------------------------------
    def _lr(self, step: int, total: int) -> float:
        c = self.config
        warm = min(c.warmup_steps, max(1, total // 10))
        if step < warm:
            return c.lr * (step + 1) / warm
        if total <= warm + 1:
            return c.lr
        f = (step - warm) / (total - warm - 1)
        return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(f, 1.0))))

    def _fit_data(self, X, Y, ranges, directions, val_fraction: float):
        """``fit``'s common part: checks ``X``, ``Y``, ``ranges`` and ``directions``, fits the size
        scaling, holds out ``val_fraction`` of the designs (before augmenting, so no copy of a
        validation design is trained on) and prepares the rest (:meth:`_prepare`). Returns
        ``(X, Y, Xa, Ya, val_idx, rng)``: the checked data, the augmented training set in
        physical units, the held-out rows and the generator that goes on to shuffle the epochs."""
        c = self.config
        X, xnames = _as_matrix(X, "X")
        Y, ynames = _as_matrix(Y, "Y")
        if len(X) != len(Y):
            raise ValueError(f"X has {len(X)} designs but Y has {len(Y)} rows")
        if len(X) < 2:
            raise ValueError(f"fit needs at least 2 designs, got {len(X)}")
        D, M = X.shape[1], Y.shape[1]
        if ranges is None:
            lo, hi = X.min(axis=0), X.max(axis=0)
        else:
            r = np.asarray(ranges, np.float64)
            if r.shape != (D, 2):
                raise ValueError(f"ranges must have shape ({D}, 2) (a lower and an upper bound per size), got {r.shape}")
            lo, hi = r[:, 0], r[:, 1]
        self._x_scale = MinMaxScale(lo, hi, log=c.log_sizes)
        outside = np.flatnonzero(((X < lo) | (X > hi)).any(axis=0))
        if outside.size:
            raise ValueError(f"X has values outside ranges in column(s) {outside.tolist()}")
        sign = parse_directions(directions) if directions is not None else np.zeros(M)
        if sign.size != M:
            raise ValueError(f"directions has {sign.size} entries for {M} performance columns")
        self.directions = sign.tolist()
        self.size_names, self.metric_names = xnames, ynames
        rng = np.random.default_rng(self.seed)
        val_idx, train_idx = np.zeros(0, np.int64), np.arange(len(X))
        if val_fraction:
            if not 0.0 < val_fraction < 1.0:
                raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
            perm = rng.permutation(len(X))
            k = max(1, int(round(val_fraction * len(X))))
            val_idx, train_idx = np.sort(perm[:k]), np.sort(perm[k:])
        Xa, Ya = self._prepare(X[train_idx], Y[train_idx], sign, rng)
        return X, Y, Xa, Ya, val_idx, rng

    def _train(self, n: int, epochs: Optional[int], step: Callable[[np.ndarray, float], float],
               rng: np.random.Generator, val_loss: Optional[Callable[[], float]] = None,
               callbacks: Sequence["Callback"] = (), progress: bool = True) -> None:
        """The epoch loop over ``n`` training rows: each epoch shuffles them (``rng``) into
        batches of ``config.batch_size`` and calls ``step(rows, lr) -> loss`` per batch; logs the
        batch-size-weighted mean loss, the last ``lr`` and ``val_loss()`` into ``history``; stops
        early when a callback ``(sizer, epoch, logs)`` returns true."""
        c = self.config
        self.history = {"train_loss": []}
        self.epochs_trained = self.steps_trained = 0
        if val_loss is not None:
            self.history["val_loss"] = []
        epochs = c.epochs if epochs is None else int(epochs)
        if epochs < 0:
            raise ValueError(f"epochs must not be negative, got {epochs}")
        bs = c.batch_size
        total = epochs * ((n + bs - 1) // bs)
        bar = _progress(progress, epochs, type(self).__name__, "epoch")
        t0 = time.perf_counter()
        try:
            for epoch in range(epochs):
                order = rng.permutation(n)
                losses, weights = [], []
                for s in range(0, n, bs):
                    idx = order[s:s + bs]
                    lr = self._lr(self.steps_trained, total)
                    losses.append(step(idx, lr))
                    weights.append(len(idx))
                    self.steps_trained += 1
                logs = {"train_loss": float(np.average(losses, weights=weights)), "lr": lr}
                if val_loss is not None:
                    logs["val_loss"] = val_loss()
                stop = False
                for cb in callbacks:
                    stop = bool(cb(self, epoch, logs)) or stop
                for k, v in logs.items():
                    self.history.setdefault(k, []).append(float(v))
                self.epochs_trained += 1
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items()}, refresh=False)
                    bar.update(1)
                if stop:
                    break
        finally:
            if bar is not None:
                bar.close()
        self.fit_time = time.perf_counter() - t0


# -- the estimator ---------------------------------------------------------------------------
class DiffusionSizer(_LearnedSizer):
    """Conditional diffusion transformer that maps performance targets to sizing vectors.

    Args:
        config: a :class:`SizerConfig`; keyword arguments override its fields.
        seed: initialisation, augmentation, shuffling and training draws. Two sizers with the same
            config and seed fitted on the same data give the same losses and samples, with any
            number of OpenMP threads.

    Example:
        >>> sizer = DiffusionSizer()                          # the default (small) model
        >>> sizer = DiffusionSizer(SizerConfig.paper())       # the paper's N = 8, T = 1000
        >>> sizer = DiffusionSizer(blocks=8)                  # the paper's model size, default training
    """

    _config_class = SizerConfig
    FORMAT = "circml.sizing.diffusion"
    _adam_step = staticmethod(_core.diffusion_adam_step)

    def _build(self, D: int, M: int) -> None:
        c = self.config
        P = len(self._poly.terms(M))
        S = int(c.cond_tokens) if c.cond_tokens is not None else M
        self._model = _core.diffusion_init(D, P, S, c.channels, c.heads, c.ff, c.blocks, c.blocks, c.timesteps,
                                           c.zero_terminal_snr, _ACTIVATIONS[c.activation], c.dropout,
                                           self.seed & (2**64 - 1))
        self._arrays = _core.diffusion_arrays(self._model)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Named copies of every parameter tensor, shaped as the PyTorch twin's."""
        self._require_fitted()
        out, off, p = {}, 0, self._arrays["params"]
        for name, shape in self._arrays["tensors"]:
            k = int(np.prod(shape))
            out[name] = p[off:off + k].reshape(shape).copy()
            off += k
        return out

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Copy parameters in (names and shapes must match)."""
        self._require_fitted()
        off, p = 0, self._arrays["params"]
        for name, shape in self._arrays["tensors"]:
            k = int(np.prod(shape))
            if name not in state or np.asarray(state[name]).size != k:
                raise ValueError(f"state lacks {name!r} of shape {tuple(shape)}")
            p[off:off + k] = np.asarray(state[name], np.float32).ravel()
            off += k

    def _val_loss(self, x0: np.ndarray, cond: np.ndarray) -> float:
        """The v-loss on held-out rows with fixed draws (t, noise), evaluation mode."""
        rng = np.random.default_rng(self.seed + 99991)
        T = self.config.timesteps
        t = rng.integers(0, T, len(x0))
        eps = rng.standard_normal(x0.shape)
        acp = self._arrays["alphas_cumprod"][t][:, None]
        a, s = np.sqrt(acp), np.sqrt(1 - acp)
        xt, v = a * x0 + s * eps, a * eps - s * x0
        pred = _core.diffusion_forward(self._model, xt.astype(np.float32), t.astype(np.int64), cond, None, False, 0)
        return float(np.mean((pred - v) ** 2))

    def fit(self, X, Y, ranges=None, directions: Optional[Sequence] = None, epochs: Optional[int] = None,
            val_fraction: float = 0.0, callbacks: Sequence[Callback] = (), progress: bool = True) -> "DiffusionSizer":
        """Fit the preprocessing and train the model from scratch on designs ``X`` and their
        performances ``Y``.

        Args:
            X: ``[N, D]`` sizes in physical units (an array or a DataFrame, whose column names
                are kept).
            Y: ``[N, M]`` performances in physical units.
            ranges: ``[D, 2]`` lower and upper bound of each size (the testbench's ranges): the
                normalisation maps them to ``[-1, 1]`` and samples are clipped to them. Default:
                the columns' min and max in ``X``.
            directions: per metric, ``"<="`` (the spec is an upper bound: power, noise), ``">="``
                (a lower bound: gain, bandwidth) or ``None``: which way a specification may be
                relaxed by the augmentation. Without it no copies are made.
            epochs: passes over the augmented set (default ``config.epochs``).
            val_fraction: hold out this fraction of the designs (before augmentation) and log
                their v-loss as ``val_loss`` each epoch.
            callbacks: ``(sizer, epoch, logs) -> stop?`` after every epoch.
            progress: show a progress bar (tqdm) with the loss.

        Returns ``self``; ``self.history`` holds ``train_loss`` (and ``val_loss``, ``lr``) per epoch.

        Example:
            >>> sizer.fit(X, Y, ranges=testbench_ranges, directions=["<=", "<=", ">=", ">="])  # doctest: +SKIP
        """
        c = self.config
        X, Y, Xa, Ya, val_idx, rng = self._fit_data(X, Y, ranges, directions, val_fraction)
        x0 = self._x_scale.transform(Xa).astype(np.float32)
        cond = self.condition(Ya)
        self._build(X.shape[1], Y.shape[1])
        seed = self.seed & (2**64 - 1)

        def step(idx: np.ndarray, lr: float) -> float:
            return _core.diffusion_train_step(self._model, x0[idx], cond[idx], lr, 0.9, 0.999, 1e-8, c.weight_decay,
                                              c.p_uncond, c.max_grad_norm, seed, self.steps_trained)

        val_loss = None
        if val_idx.size:
            vx0, vcond = self._x_scale.transform(X[val_idx]), self.condition(Y[val_idx])
            val_loss = lambda: self._val_loss(vx0, vcond)   # noqa: E731
        self._train(len(x0), epochs, step, rng, val_loss, callbacks, progress)
        return self

    # -- sampling ------------------------------------------------------------------------
    def sample(self, targets, n: int = 100, guidance: Optional[float] = None, steps: Optional[int] = None,
               sampler: Optional[str] = None, guidance_mode: Optional[str] = None, eta: Optional[float] = None,
               seed: Optional[int] = None, clip_to_ranges: bool = True, precision: str = "fp32",
               overshoot: Optional[float] = None, overshoot_spread: Optional[float] = None) -> np.ndarray:
        """Draw ``n`` sizing vectors per performance target, in physical units.

        Args:
            targets: ``[M]`` one target, or ``[K, M]`` several (physical units, the columns of
                ``Y``); for inequality specs pass the bounds themselves.
            n: designs per target.
            guidance: the guidance weight ``w`` (default ``config.guidance``) in ``guidance_mode``'s
                convention:

                * ``"uncond_weight"`` (the paper's eq. 3): ``eps = w * eps(x) + (1 - w) * eps(x|y)``.
                  ``w = 0``: purely conditional; the paper's ``w = 0.1`` mixes in 10 % of the
                  unconditional prediction; ``w < 0`` extrapolates past the conditional one.
                * ``"scale"`` (Ho & Salimans): ``eps = eps(x) + (1 + w) * (eps(x|y) - eps(x))``;
                  ``w = 0`` purely conditional, ``w > 0`` stronger guidance (diffusers'
                  ``guidance_scale`` is ``1 + w``). Weight ``w`` here is weight ``-w`` there.
            steps: sampling steps (default ``config.steps``), at most ``timesteps``.
            sampler: ``"ddim"`` (deterministic for ``eta = 0``) or ``"ddpm"`` (ancestral).
            eta: DDIM's noise (default ``config.eta``).
            seed: the noise seed (default: the sizer's seed, so repeated calls agree). Sample
                ``i`` depends only on (seed, i), not on ``n`` or the thread count.
            clip_to_ranges: clip to the ranges given to :meth:`fit`.
            precision: ``"fp32"``, or ``"bf16"``: the transformer blocks' Linear layers in
                bfloat16 with fp32 sums (AVX-512 BF16 dot products, ~1.2x faster; samples
                differ from fp32 ones by bf16 rounding, see docs/sizing.md "Speed"). Where the
                CPU lacks avx512_bf16 it runs, and returns, the fp32 path.
            overshoot: condition on specifications stricter than ``targets`` (default
                ``config.overshoot``). With ``config.overshoot_units = "std"`` metric ``j``'s
                standardised value (see :meth:`condition`) moves by ``-s_j * overshoot``
                standard deviations; with ``"relative"`` the target itself becomes
                ``t_j - s_j * overshoot * |t_j|`` (as the report's ``tighten``, but a dB metric
                is treated as any other number); ``s_j = +1`` for a ``"<="``
                spec (a lower power is asked), ``-1`` for ``">="`` (a higher gain), ``0`` for
                metrics without a direction (unchanged). A conditional model regresses towards
                the data it was trained on, and a target beyond the data's Pareto front sits
                where its nearest training conditions are slightly worse than the target, so the
                samples land short of it; asking for a little more puts them past it. A design
                meeting the stricter spec meets the target too.
            overshoot_spread: each sample's condition moves a further ``u * overshoot_spread``
                (in the same units) in the same directions, ``u ~ U(0, 1)`` drawn per sample
                and metric from ``seed`` (default ``config.overshoot_spread``): a spread of
                conditions instead of one point, for diversity.

        Returns ``[n, D]`` for one target, ``[K, n, D]`` for ``K``.

        Example:
            >>> designs = sizer.sample([27e-9, 5.2e-6, 30, 1.55e3], n=100, steps=50)  # doctest: +SKIP
        """
        self._require_fitted()
        c = self.config
        T = np.asarray(targets, np.float64)
        single = T.ndim == 1
        cond = self.condition(T)
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        steps = c.steps if steps is None else int(steps)
        if not 1 <= steps <= c.timesteps:
            raise ValueError(f"steps must be in [1, {c.timesteps}], got {steps}")
        sampler = c.sampler if sampler is None else sampler
        if sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(_SAMPLERS)}, got {sampler!r}")
        mode = c.guidance_mode if guidance_mode is None else guidance_mode
        if mode not in GUIDANCE_MODES:
            raise ValueError(f"guidance_mode must be one of {sorted(GUIDANCE_MODES)}, got {mode!r}")
        w = c.guidance if guidance is None else float(guidance)
        eta = c.eta if eta is None else float(eta)
        seed = self.seed if seed is None else int(seed)
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        over = c.overshoot if overshoot is None else float(overshoot)
        spread = c.overshoot_spread if overshoot_spread is None else float(overshoot_spread)
        if over < 0 or spread < 0:
            raise ValueError(f"overshoot and overshoot_spread must not be negative, got {over}, {spread}")
        if c.overshoot_units == "relative" and over + spread >= 1:
            raise ValueError(f"relative overshoot + overshoot_spread must be below 1 (a fraction of |t|), "
                             f"got {over} + {spread}")
        sign = np.asarray(self.directions if self.directions is not None else np.zeros(self.n_metrics), np.float64)
        if (over or spread) and sign.any():
            Tr = np.repeat(np.atleast_2d(T), n, axis=0)
            # sample i's draw depends on (seed, i) only, as the sampler's noise does
            u = np.tile(np.random.default_rng([seed & (2**64 - 1), 0x0E5]).random((n, len(sign))),
                        (len(Tr) // n, 1)) if spread else 0.0
            if c.overshoot_units == "relative":
                rows = self.condition(Tr - sign * (over + spread * u) * np.abs(Tr))
            else:
                rows = self.condition(Tr, shift=-sign * (over + spread * u))
        else:
            rows = np.repeat(cond, n, axis=0)
        z = _core.diffusion_sample(self._model, rows, steps, _SAMPLERS[sampler], _SPACINGS[c.spacing], eta,
                                   GUIDANCE_MODES[mode], w, c.clip, seed & (2**64 - 1), 0, precision)
        X = self._x_scale.inverse(z)
        if clip_to_ranges:
            X = self._x_scale.clip(X)
        X = X.reshape(len(cond), n, -1)
        return X[0] if single else X

    # -- saving --------------------------------------------------------------------------
    def __repr__(self) -> str:
        c = self.config
        shape = f", sizes={self.n_sizes}, metrics={self.n_metrics}, params={self.num_parameters}" if self.fitted else ""
        return (f"DiffusionSizer(channels={c.channels}, blocks={c.blocks}, timesteps={c.timesteps}{shape}, "
                f"epochs_trained={self.epochs_trained})")
