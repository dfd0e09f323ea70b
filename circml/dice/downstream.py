"""Downstream uses of DICE embeddings: circuit similarity and performance probes.

DICE's paper feeds its embeddings to three kinds of task: which of two circuits is nearer a base
circuit, the rise/fall delays of delay lines, and op-amp performance from simulation. This
module gives the hooks for them:

* :func:`nearer` / :func:`cosine_similarity`: similarity of circuits by their embeddings;
* :class:`PerformanceProbe`: a scikit-learn regressor (ridge or MLP) from a testbench circuit's
  embedding and its design parameters to simulated metrics, one model over several testbenches
  of a kind (the 5 delay lines, the 5 op-amps of :mod:`circml.spice.testbenches`).

    >>> from circml.spice import sweep
    >>> from circml.spice.testbenches import get_testbench, list_testbenches
    >>> data = {n: sweep(get_testbench(n), 64, seed=0) for n in list_testbenches("delay_line")}  # doctest: +SKIP
    >>> probe = PerformanceProbe(encoder).fit(data)                                            # doctest: +SKIP
    >>> probe.predict("delay_line_nand", data["delay_line_nand"].X[:3])                         # doctest: +SKIP

scikit-learn is needed only for the probe (``pip install circml[plot]`` brings it).
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .encoder import DiceEncoder, _as_circuits, _unit

FEATURES = ("embedding", "onehot", "none")


def cosine_similarity(encoder: DiceEncoder, a: Sequence, b: Sequence) -> np.ndarray:
    """Cosine similarity of the embeddings of ``a[i]`` and ``b[i]``, row by row, ``[n]``.

    Example:
        >>> cosine_similarity(enc, [lib[0]], [lib[1]])  # doctest: +SKIP
        array([0.83])
    """
    a, b = _as_circuits(a, "a"), _as_circuits(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} circuits and b {len(b)}; they are compared row by row")
    if not a:
        return np.zeros(0)
    return np.einsum("ij,ij->i", _unit(encoder.embed(a)), _unit(encoder.embed(b)))


def nearer(encoder: DiceEncoder, base: Sequence, a: Sequence, b: Sequence) -> np.ndarray:
    """DICE's first downstream task: for each ``i``, is ``a[i]`` (0) or ``b[i]`` (1) nearer
    ``base[i]`` by cosine similarity of the embeddings? Returns ``[n]`` int.

    Example:
        >>> from circml.dice import PositiveView, NegativeView
        >>> nearer(enc, [c], [PositiveView()(c, seed=1)], [NegativeView()(c, seed=1)])  # doctest: +SKIP
        array([0])
    """
    base = _as_circuits(base, "base")
    sa, sb = cosine_similarity(encoder, base, a), cosine_similarity(encoder, base, b)
    return (sb > sa).astype(np.int64)


def _log_columns(Y: np.ndarray) -> np.ndarray:
    """Metrics that are positive everywhere (delays, bandwidths, power) are regressed in log10."""
    return np.all(np.isfinite(Y) & (Y > 0), axis=0)


class PerformanceProbe:
    """Predict testbench metrics from ``[circuit features | design parameters]``.

    One model covers several testbenches of one kind (their metrics must have the same names).
    A design enters as its parameters in the unit cube (log-scaled where the parameter is),
    zero-padded to the widest testbench; the circuit enters as:

    * ``features="embedding"``: the encoder's embedding of the testbench circuit at its
      default design (the topology; DICE's use);
    * ``"onehot"``: which testbench it is (a baseline that cannot transfer to a new circuit);
    * ``"none"``: nothing (design parameters only).

    ``model`` is ``"ridge"`` (``alpha``) or ``"mlp"`` (scikit-learn's MLPRegressor with
    ``hidden`` layers). Inputs and targets are standardised; metrics positive everywhere in
    the training data are regressed in log10. Failed simulation points are left out.

    Example:
        >>> probe = PerformanceProbe(enc, model="ridge").fit(datasets)          # doctest: +SKIP
        >>> probe.score(test_datasets)          # R^2 per metric                 # doctest: +SKIP
        {'rise_delay': 0.97, 'fall_delay': 0.96}
    """

    def __init__(self, encoder: Optional[DiceEncoder] = None, features: str = "embedding", model: str = "ridge",
                 alpha: float = 1.0, hidden: Tuple[int, ...] = (128, 128), max_iter: int = 2000, seed: int = 0):
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if features == "embedding" and encoder is None:
            raise ValueError("features='embedding' needs an encoder")
        if model not in ("ridge", "mlp"):
            raise ValueError(f"model must be 'ridge' or 'mlp', got {model!r}")
        self.encoder, self.features, self.model = encoder, features, model
        self.alpha, self.hidden, self.max_iter, self.seed = float(alpha), tuple(hidden), int(max_iter), int(seed)
        self.testbenches: List[str] = []
        self.metric_names: List[str] = []
        self._width = 0
        self._circuit_rows: Dict[str, np.ndarray] = {}

    # -- features ----------------------------------------------------------------------
    @staticmethod
    def _testbench(name_or_tb):
        from ..spice.testbenches import get_testbench
        return get_testbench(name_or_tb) if isinstance(name_or_tb, str) else name_or_tb

    def _circuit_row(self, tb) -> np.ndarray:
        if tb.name not in self._circuit_rows:
            if self.features == "embedding":
                self._circuit_rows[tb.name] = _unit(self.encoder.embed([tb.circuit(tb.default_design())]))[0]
            elif self.features == "onehot":
                if tb.name not in self.testbenches:
                    raise ValueError(f"features='onehot' knows only the fitted testbenches {self.testbenches}, "
                                     f"not {tb.name!r}")
                row = np.zeros(len(self.testbenches))
                row[self.testbenches.index(tb.name)] = 1.0
                self._circuit_rows[tb.name] = row
            else:
                self._circuit_rows[tb.name] = np.zeros(0)
        return self._circuit_rows[tb.name]

    def features_of(self, testbench, X: np.ndarray) -> np.ndarray:
        """The probe's input rows for designs ``X`` [n, params] (columns in the testbench's
        ``param_names`` order) of ``testbench`` (a name or a Testbench)."""
        tb = self._testbench(testbench)
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != len(tb.params):
            raise ValueError(f"testbench {tb.name!r} has {len(tb.params)} design parameters, X has {X.shape[1]} columns")
        if len(tb.params) > self._width:
            raise ValueError(f"testbench {tb.name!r} has {len(tb.params)} design parameters, more than the "
                             f"{self._width} the probe was fitted with")
        U = np.zeros((len(X), self._width))
        for j, p in enumerate(tb.params):
            U[:, j] = [p.to_unit(v) for v in X[:, j]]
        return np.hstack([np.tile(self._circuit_row(tb), (len(X), 1)), U])

    def _rows(self, datasets) -> Tuple[np.ndarray, np.ndarray]:
        Xs, Ys = [], []
        for name, ds in self._items(datasets):
            tb = self._testbench(name)
            if list(ds.metric_names) != self.metric_names:
                raise ValueError(f"{tb.name!r} measures {list(ds.metric_names)}, the probe {self.metric_names}")
            X, Y = self._design_columns(tb, ds)
            ok = (np.asarray(ds.status) == "ok") & np.isfinite(Y).all(axis=1)
            Xs.append(self.features_of(tb, X[ok]))
            Ys.append(Y[ok])
        return np.vstack(Xs), np.vstack(Ys)

    @staticmethod
    def _design_columns(tb, ds) -> Tuple[np.ndarray, np.ndarray]:
        names = list(ds.param_names)
        missing = [p.name for p in tb.params if p.name not in names]
        if missing:
            raise ValueError(f"dataset of {tb.name!r} lacks design columns {missing}")
        X = np.asarray(ds.X, dtype=np.float64)[:, [names.index(p.name) for p in tb.params]]
        return X, np.asarray(ds.Y, dtype=np.float64)

    @staticmethod
    def _items(datasets):
        items = list(datasets.items()) if isinstance(datasets, Mapping) else list(datasets)
        if not items:
            raise ValueError("no datasets given: pass {testbench name: Dataset}")
        return items

    # -- fit / predict -------------------------------------------------------------------
    def fit(self, datasets) -> "PerformanceProbe":
        """Fit on ``{testbench name: Dataset}`` (or ``(testbench, Dataset)`` pairs), e.g. the
        results of :func:`circml.spice.sweep`. Returns ``self``."""
        from sklearn.neural_network import MLPRegressor
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        items = self._items(datasets)
        tbs = [self._testbench(n) for n, _ in items]
        self.testbenches = [tb.name for tb in tbs]
        self.metric_names = list(items[0][1].metric_names)
        self._width = max(len(tb.params) for tb in tbs)
        self._circuit_rows = {}
        X, Y = self._rows([(tb, ds) for tb, (_, ds) in zip(tbs, items)])
        if len(X) < 2:
            raise ValueError(f"only {len(X)} successful simulation point(s) to fit on")
        self._log = _log_columns(Y)
        T = np.where(self._log, np.log10(np.where(self._log, Y, 1.0)), Y)
        self._t_mean, self._t_std = T.mean(axis=0), np.maximum(T.std(axis=0), 1e-12)
        reg = (Ridge(alpha=self.alpha) if self.model == "ridge" else
               MLPRegressor(hidden_layer_sizes=self.hidden, max_iter=self.max_iter, random_state=self.seed, early_stopping=False))
        self._pipe = make_pipeline(StandardScaler(), reg).fit(X, (T - self._t_mean) / self._t_std)
        return self

    def predict(self, testbench, X: np.ndarray) -> np.ndarray:
        """Predicted metrics ``[n, metrics]`` (in their units) for designs ``X`` of ``testbench``."""
        if not hasattr(self, "_pipe"):
            raise RuntimeError("PerformanceProbe.predict before fit")
        T = self._pipe.predict(self.features_of(testbench, X)).reshape(-1, len(self.metric_names))
        T = T * self._t_std + self._t_mean
        return np.where(self._log, 10.0 ** np.where(self._log, T, 0.0), T)

    def score(self, datasets) -> Dict[str, float]:
        """R^2 per metric on ``datasets`` (in the probe's target space: log10 for log metrics)."""
        X, Y = self._rows(datasets)
        T = np.where(self._log, np.log10(np.where(self._log & (Y > 0), Y, 1.0)), Y)
        P = self._pipe.predict(X).reshape(-1, len(self.metric_names)) * self._t_std + self._t_mean
        ss_res = ((T - P) ** 2).sum(axis=0)
        ss_tot = ((T - T.mean(axis=0)) ** 2).sum(axis=0)
        return {m: float(1.0 - r / max(t, 1e-300)) for m, r, t in zip(self.metric_names, ss_res, ss_tot)}

    def __repr__(self) -> str:
        return (f"PerformanceProbe(features={self.features!r}, model={self.model!r}, "
                f"testbenches={len(self.testbenches)}, metrics={self.metric_names})")
