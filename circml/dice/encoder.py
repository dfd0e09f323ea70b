"""The DICE encoder: contrastive pretraining on dual-augmented circuits, and embeddings.

Everything numeric runs in circml's C core (``csrc/nn``); this module holds the training loop,
the train/validation split, callbacks, saving, and the held-out quality measure.

    >>> from circml.dice import DiceEncoder
    >>> from circml.datasets import circuit_library
    >>> circuits = [e.circuit for e in circuit_library()]
    >>> enc = DiceEncoder(hidden=64, out=32)
    >>> history = enc.pretrain(circuits, epochs=2, progress=False)
    >>> enc.embed(circuits[:3]).shape
    (3, 32)

Held-out quality (the DICE issue's goal: a view's nearest neighbour is one of its own
positives) comes from :func:`quality_report`; :func:`held_out_split` makes the default split
(by circuit, stratified by family, with same-family distractors) and :func:`split_by_circuit`
the plain one.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._npz import read_npz, write_npz
from ..circuit import Circuit
from ..graph import EDGE_TYPES, NODE_TYPES, VALUE_FEATURES, Graph, graphs_from_circuits
from .augment import augment_batch

FORMAT_VERSION = 1

#: message-passing layers DiceConfig.conv accepts, in the C core's numbering
CONV_TYPES = ("dice", "gin", "gcn", "sage", "gat")

#: A callback gets ``(encoder, epoch, logs)`` after every epoch; ``logs`` holds that epoch's
#: ``train_loss`` (and ``val_loss``) and may be extended. Returning ``True`` stops training.
Callback = Callable[["DiceEncoder", int, Dict[str, float]], Optional[bool]]


@dataclass
class DiceConfig:
    """Model and training settings. The defaults train on the built-in library in minutes on
    2 cores; :meth:`paper` gives DICE's published size (hidden 512, output 256, batch 1024,
    200 epochs).

    Example:
        >>> DiceConfig().hidden, DiceConfig.paper().hidden, DiceConfig.paper(epochs=5).epochs
        (128, 512, 5)
    """

    hidden: int = 128
    out: int = 64
    layers: int = 2
    dropout: float = 0.2
    schema: str = "dice"
    device_values: bool = False
    # message passing: "dice" (GIN with edge-feature update, DICE's) or a plain layer that reads
    # node states and edge_index only: "gin", "gcn", "sage" (mean) or "gat" (heads, concatenated
    # or averaged); each plain layer is followed by GELU and dropout, and the readout sums nodes
    conv: str = "dice"
    heads: int = 4
    gat_concat: bool = True
    # contrastive loss: tau in the numerator, tau_p / tau_n for positives / negatives below
    tau: float = 0.05
    tau_p: float = 0.2
    tau_n: float = 0.05
    # views per circuit and devices replaced per view
    n_positive: int = 2
    n_negative: int = 1
    n_subs: int = 2               # two substitutions per training view: held-out views with four are then
                                  # recognised (0.95-0.99 over splits) where one left some at 0.92
    # optimisation (DICE: AdamW-style Adam, lr 3e-4)
    lr: float = 3e-4
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # or "cosine": lr -> min_lr_ratio * lr over each pretrain call's epochs
    min_lr_ratio: float = 0.05
    batch_size: int = 32          # circuits per step (each brings n_positive + n_negative views)
    epochs: int = 100
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    @classmethod
    def paper(cls, **overrides) -> "DiceConfig":
        """DICE's configuration (Lee et al. 2025)."""
        return replace(cls(hidden=512, out=256, batch_size=1024, epochs=200), **overrides)

    def __post_init__(self):
        for name in ("hidden", "out", "layers", "n_positive", "batch_size", "n_subs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DiceConfig.{name} must be at least 1, got {getattr(self, name)!r}")
        if self.n_positive < 2:
            raise ValueError(f"DiceConfig.n_positive must be at least 2 (views of a circuit are each other's "
                             f"positives), got {self.n_positive}")
        if self.n_negative < 0 or self.epochs < 0:
            raise ValueError("DiceConfig.n_negative and DiceConfig.epochs must not be negative")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DiceConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"DiceConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.conv not in CONV_TYPES:
            raise ValueError(f"DiceConfig.conv must be one of {', '.join(CONV_TYPES)}, got {self.conv!r}")
        if self.conv == "gat" and int(self.heads) < 1:
            raise ValueError(f"DiceConfig.heads must be at least 1, got {self.heads!r}")
        if self.conv == "gat" and self.gat_concat and self.hidden % self.heads:
            raise ValueError(f"DiceConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads}) when "
                             f"gat_concat is True")
        if self.schema not in NODE_TYPES:
            raise ValueError(f"DiceConfig.schema {self.schema!r} unknown; known: {', '.join(NODE_TYPES)}")

    @property
    def node_in(self) -> int:
        return len(NODE_TYPES[self.schema]) + (len(VALUE_FEATURES) if self.device_values else 0)

    @property
    def edge_in(self) -> int:
        return len(EDGE_TYPES[self.schema])


# -- inputs and the split ---------------------------------------------------------------
def _as_circuits(circuits, what: str = "circuits") -> List[Circuit]:
    """Circuits, or library entries (anything with a ``.circuit``), as a list of Circuits."""
    out = []
    for i, c in enumerate(circuits):
        if not isinstance(c, Circuit) and isinstance(getattr(c, "circuit", None), Circuit):
            c = c.circuit
        if not isinstance(c, Circuit):
            raise TypeError(f"{what}[{i}] is a {type(c).__name__}, not a circml.Circuit or a library entry")
        out.append(c)
    return out


def split_by_circuit(circuits: Sequence, val_fraction: float = 0.25, seed: int = 0,
                     groups: Optional[Sequence] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Split circuits into training and validation indices so that no circuit is in both.

    The unit of the split is a circuit, never a view: every augmented view of a validation
    circuit stays out of training. Circuits with the same netlist (duplicates in the list) are
    one unit, so a duplicate cannot leak across. With ``groups`` (e.g. families) the split is
    stratified: each group gives about ``val_fraction`` of its members. Deterministic for
    ``seed``.

    Returns ``(train_idx, val_idx)``, sorted index arrays into ``circuits``.

    Example:
        >>> from circml.datasets import circuit_library
        >>> lib = circuit_library()
        >>> tr, va = split_by_circuit(lib, 0.25, seed=0, groups=[e.family for e in lib])
        >>> len(tr), len(va), set(tr) & set(va)
        (48, 16, set())
    """
    circuits = _as_circuits(circuits)
    n = len(circuits)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if groups is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} circuits")
    # one unit per distinct netlist
    unit_of, units = {}, []
    for i, c in enumerate(circuits):
        key = c.to_spice()
        if key not in unit_of:
            unit_of[key] = len(units)
            units.append([])
        units[unit_of[key]].append(i)
    u = len(units)
    if u < 2:
        raise ValueError(f"cannot split {n} circuit(s) with {u} distinct netlist(s): need at least 2")
    k = min(u - 1, max(1, int(round(val_fraction * u))))
    rng = np.random.default_rng(seed)
    if groups is None:
        key = rng.random(u)
    else:
        # systematic sampling inside each group: member j of a group of size m gets (j + r) / m with
        # one random offset r per group, so the k smallest keys take ~val_fraction of every group
        key = np.empty(u)
        by_group: Dict[Any, List[int]] = {}
        for j, members in enumerate(units):
            by_group.setdefault(groups[members[0]], []).append(j)
        for members in by_group.values():
            m = len(members)
            key[rng.permutation(members)] = (np.arange(m) + rng.random()) / m
        key += 1e-9 * rng.random(u)      # break ties between groups at random
    val_units = set(np.argsort(key, kind="stable")[:k].tolist())
    val = sorted(i for j in val_units for i in units[j])
    train = sorted(i for j in range(u) if j not in val_units for i in units[j])
    return np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)


# -- callbacks -------------------------------------------------------------------------
class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best=True`` the encoder's weights (and batch-norm statistics) at the best
    epoch are put back when training stops.

    Example:
        >>> stop = EarlyStopping("val_loss", patience=10, restore_best=True)
        >>> enc.pretrain(circuits, epochs=300, val_fraction=0.2, callbacks=[stop])  # doctest: +SKIP
        >>> stop.best_epoch  # doctest: +SKIP
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0, mode: str = "min",
                 restore_best: bool = False):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, int(patience), float(min_delta), mode
        self.restore_best = restore_best
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.stopped_epoch: Optional[int] = None
        self._best_state: Optional[Dict[str, np.ndarray]] = None

    def __call__(self, encoder: "DiceEncoder", epoch: int, logs: Dict[str, float]) -> bool:
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r} but the logs hold {sorted(logs)}; "
                           "val_loss needs val_fraction or val_circuits")
        v = float(logs[self.monitor])
        better = v < self.best - self.min_delta if self.mode == "min" else v > self.best + self.min_delta
        if better:
            self.best, self.best_epoch = v, epoch
            if self.restore_best:
                self._best_state = encoder.state_dict()
        elif epoch - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch
            if self.restore_best and self._best_state is not None:
                encoder.load_state_dict(self._best_state)
            return True
        return False


class QualityMonitor:
    """Adds :func:`quality_report` numbers on held-out circuits to the logs every ``every``
    epochs (``held_out_nn_accuracy``, ``held_out_alignment``, ``held_out_uniformity``); other
    epochs get NaN so every history list stays one entry per epoch.

    Example:
        >>> mon = QualityMonitor(held_out, every=5, distractors=distractors)  # doctest: +SKIP
        >>> enc.pretrain(train, epochs=40, callbacks=[mon])  # doctest: +SKIP
        >>> enc.history["held_out_nn_accuracy"]  # doctest: +SKIP
    """

    def __init__(self, held_out_circuits: Sequence, every: int = 5, **quality_kwargs):
        self.circuits = _as_circuits(held_out_circuits, "held_out_circuits")
        self.every, self.kwargs = max(1, int(every)), quality_kwargs

    def __call__(self, encoder: "DiceEncoder", epoch: int, logs: Dict[str, float]) -> bool:
        keys = ("nn_accuracy", "alignment", "uniformity")
        if (epoch + 1) % self.every == 0:
            r = quality_report(encoder, self.circuits, **self.kwargs)
            logs.update({f"held_out_{k}": r[k] for k in keys})
        else:
            logs.update({f"held_out_{k}": math.nan for k in keys})
        return False


class _Progress:
    """A progress bar over epochs: tqdm when installed, else a line on stderr every ~10 %."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.total, self.enabled, self.desc, self.bar = total, enabled and total > 0, desc, None
        self.t0, self.n = time.perf_counter(), 0
        if self.enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="epoch")
            except ImportError:
                pass

    def update(self, logs: Dict[str, float]) -> None:
        self.n += 1
        if not self.enabled:
            return
        shown = {k: f"{v:.3f}" for k, v in logs.items() if not (isinstance(v, float) and math.isnan(v))}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif self.n == self.total or self.n % max(1, self.total // 10) == 0:
            items = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"{self.desc}: epoch {self.n}/{self.total} {items} ({time.perf_counter() - self.t0:.0f} s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class DiceEncoder:
    """A DICE graph encoder with a C core.

    Args:
        config: a :class:`DiceConfig`; keyword arguments override its fields.
        seed: initialisation, augmentation and dropout seed. Two encoders with the same config
            and seed, trained on the same circuits, give identical losses and embeddings (with
            the same number of OpenMP threads).

    Example:
        >>> enc = DiceEncoder(DiceConfig.paper(), seed=1)    # DICE's size
        >>> enc = DiceEncoder(hidden=64, out=32)              # a small one
        >>> enc = DiceEncoder(conv="gat", heads=4)            # plain GAT layers instead of DICE's
    """

    def __init__(self, config: Optional[DiceConfig] = None, seed: int = 0, **overrides):
        if config is not None and not isinstance(config, DiceConfig):
            raise TypeError(f"config must be a DiceConfig, got {type(config).__name__}")
        known = {f.name for f in fields(DiceConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown DiceConfig field(s) {unknown}; known: {sorted(known)}")
        self.config = replace(config or DiceConfig(), **overrides)
        self.seed = int(seed)
        c = self.config
        self._model = _core.dice_init(c.node_in, c.edge_in, c.hidden, c.out, c.layers, c.dropout, c.bn_eps,
                                      c.bn_momentum, self.seed, CONV_TYPES.index(c.conv), int(c.heads),
                                      int(bool(c.gat_concat)))
        self._arrays = _core.dice_arrays(self._model)
        self.history: Dict[str, List[float]] = {"train_loss": [], "val_loss": []}
        self.epochs_trained = 0
        #: indices of the last :meth:`pretrain` call's training and validation circuits
        self.split: Dict[str, List[int]] = {"train": [], "val": []}

    # -- arrays -----------------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        return int(self._arrays["params"].size)

    def state_dict(self) -> Dict[str, np.ndarray]:
        """Named copies of every parameter and the batch-norm running statistics."""
        out, off = {}, 0
        p = self._arrays["params"]
        for name, size in self._arrays["tensors"]:
            out[name] = p[off:off + size].copy()
            off += size
        out["_bn_running"] = self._arrays["buffers"].copy()
        return out

    def load_state_dict(self, state: Dict[str, np.ndarray]) -> None:
        """Copy parameters and running statistics in (names and sizes must match)."""
        off, p = 0, self._arrays["params"]
        for name, size in self._arrays["tensors"]:
            if name not in state or np.asarray(state[name]).size != size:
                raise ValueError(f"state lacks {name!r} of size {size}")
            p[off:off + size] = np.asarray(state[name]).ravel()
            off += size
        buf = self._arrays["buffers"]
        if "_bn_running" not in state or np.asarray(state["_bn_running"]).size != buf.size:
            raise ValueError(f"state lacks '_bn_running' of size {buf.size}")
        buf[:] = np.asarray(state["_bn_running"]).ravel()

    # -- forward ----------------------------------------------------------------------
    def _forward(self, g: Graph, training: bool, seed: int = 0) -> np.ndarray:
        edge_graph = g.batch[g.edge_index[0]] if g.batch is not None else np.zeros(g.num_edges, np.int64)
        batch = g.batch if g.batch is not None else np.zeros(g.num_nodes, np.int64)
        return _core.dice_forward(self._model, g.x, g.edge_attr, g.edge_index, batch, edge_graph, g.num_graphs,
                                  training, seed & (2**64 - 1))

    def embed(self, circuits_or_graph: Union[Sequence, Graph], batch_size: int = 256) -> np.ndarray:
        """Graph embeddings [G, out] in evaluation mode (running statistics, no dropout), so
        the same input always gives the same rows.

        Example:
            >>> enc.embed(circuits).shape          # doctest: +SKIP
            (64, 64)
        """
        if isinstance(circuits_or_graph, Graph):
            return self._forward(circuits_or_graph, False)
        circuits = _as_circuits(circuits_or_graph)
        c = self.config
        parts = [self._forward(graphs_from_circuits(circuits[i:i + batch_size], schema=c.schema,
                                                    device_values=c.device_values), False)
                 for i in range(0, len(circuits), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, c.out), np.float32)

    # -- training ---------------------------------------------------------------------
    def _step_loss(self, circuits, seed: int, training: bool, lr: Optional[float] = None) -> float:
        c = self.config
        b = augment_batch(circuits, c.n_positive, c.n_negative, c.n_subs, seed=seed, schema=c.schema,
                          device_values=c.device_values)
        y = self._forward(b.graph, training, seed)
        loss, dy, pairs = _core.contrastive_loss(y, b.base, b.negative.astype(np.uint8), c.tau, c.tau_p, c.tau_n)
        if training and pairs:
            _core.dice_zero_grad(self._model)
            _core.dice_backward(self._model, dy)
            _core.dice_adamw(self._model, c.lr if lr is None else lr, 0.9, 0.999, 1e-8, c.weight_decay)
        return float(loss)

    def _record(self, logs: Dict[str, float]) -> None:
        # one entry per epoch in every list that has entries: a key that first appears late is
        # padded with NaN in front, a key missing this epoch gets NaN; never-logged keys stay []
        n = self.epochs_trained
        for k, v in logs.items():
            lst = self.history.setdefault(k, [])
            lst.extend([math.nan] * (n - len(lst)))
            lst.append(float(v))
        for k, lst in self.history.items():
            if k not in logs and lst:
                lst.extend([math.nan] * (n + 1 - len(lst)))

    def _lr(self, i: int, epochs: int) -> float:
        c = self.config
        if c.lr_schedule == "cosine" and epochs > 1:
            return c.lr * (c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * i / (epochs - 1))))
        return c.lr

    def pretrain(self, circuits: Sequence, epochs: Optional[int] = None, batch_size: Optional[int] = None,
                 val_fraction: float = 0.0, val_circuits: Optional[Sequence] = None,
                 callbacks: Sequence[Callback] = (), progress: bool = True) -> Dict[str, List[float]]:
        """Contrastive pretraining on dual-augmented views of ``circuits``.

        Every step draws ``n_positive`` positive and ``n_negative`` negative views of each of
        ``batch_size`` circuits (fresh views every epoch) and takes one AdamW step on DICE's
        contrastive loss.

        Validation is split by circuit, never by view: with ``val_fraction`` a fraction of the
        circuits is held out by :func:`split_by_circuit` (seeded by the encoder's seed, so
        repeated calls hold out the same circuits); or pass ``val_circuits`` (they must not
        also be in ``circuits``). Its loss, on a fixed set of views in evaluation mode, is
        logged each epoch as ``val_loss``. ``encoder.split`` records the indices.

        Each callback gets ``(encoder, epoch, logs)`` after every epoch and may add entries to
        ``logs`` (they go into the history); one that returns ``True`` stops training (see
        :class:`EarlyStopping`). ``progress`` shows a bar (tqdm). Returns the loss history,
        ``{"train_loss": [...], "val_loss": [...], ...}``, accumulated over calls.

        Example:
            >>> hist = enc.pretrain(lib, epochs=40, val_fraction=0.25,
            ...                     callbacks=[EarlyStopping(patience=10)])  # doctest: +SKIP
        """
        c = self.config
        epochs = c.epochs if epochs is None else int(epochs)
        bs = c.batch_size if batch_size is None else int(batch_size)
        if epochs < 0:
            raise ValueError(f"epochs must not be negative, got {epochs}")
        if bs < 2:
            raise ValueError(f"batch_size must be at least 2 circuits (negatives come from other circuits), got {bs}")
        circuits = _as_circuits(circuits)
        train_idx = np.arange(len(circuits))
        val_idx: List[int] = []
        if val_circuits is not None:
            if val_fraction:
                raise ValueError("give val_fraction or val_circuits, not both")
            val_circuits = _as_circuits(val_circuits, "val_circuits")
            train_text = {x.to_spice() for x in circuits}
            both = [i for i, v in enumerate(val_circuits) if v.to_spice() in train_text]
            if both:
                raise ValueError(f"val_circuits{both} are also training circuits; the split must be by circuit")
        elif val_fraction:
            if len(circuits) < 2:
                raise ValueError(f"pretraining needs at least 2 circuits, got {len(circuits)}")
            train_idx, va = split_by_circuit(circuits, val_fraction, seed=self.seed)
            val_idx = va.tolist()
            val_circuits = [circuits[i] for i in val_idx]
        train = [circuits[i] for i in train_idx]
        if len(train) < 2:
            raise ValueError(f"pretraining needs at least 2 training circuits (negatives come from other "
                             f"circuits), got {len(train)}")
        if val_circuits is not None and len(val_circuits) < 2:
            raise ValueError(f"the validation split has {len(val_circuits)} circuit(s); it needs at least 2 "
                             "(raise val_fraction or pass more val_circuits)")
        self.split = {"train": train_idx.tolist(), "val": val_idx}
        rng = np.random.default_rng(self.seed + 7919 * self.epochs_trained)
        val_seed = (self.seed * 1_000_003 + 424_242) & (2**63 - 1)   # the same validation views every epoch
        bar = _Progress(epochs, progress, "DICE pretraining")
        try:
            for i in range(epochs):
                epoch = self.epochs_trained
                lr = self._lr(i, epochs)
                order = rng.permutation(len(train))
                losses, weights = [], []
                for s in range(0, len(order), bs):
                    idx = order[s:s + bs]
                    if len(idx) < 2:      # a lone circuit has no other circuit to contrast with
                        continue
                    seed = (self.seed * 1_000_003 + epoch * 10_007 + s) & (2**63 - 1)
                    losses.append(self._step_loss([train[j] for j in idx], seed, True, lr))
                    weights.append(len(idx))
                logs = {"train_loss": float(np.average(losses, weights=weights)) if losses else math.nan}
                if c.lr_schedule != "constant":
                    logs["lr"] = lr
                if val_circuits is not None:
                    logs["val_loss"] = self._step_loss(list(val_circuits), val_seed, False)
                stop = False
                for cb in callbacks:
                    stop = bool(cb(self, epoch, logs)) or stop
                self._record(logs)
                self.epochs_trained += 1
                bar.update(logs)
                if stop:
                    break
        finally:
            bar.close()
        return self.history

    # -- saving -----------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> Path:
        """Write an ``.npz`` of named float32 arrays plus a JSON header (format, version,
        config, seed, history); no pickle anywhere, so ``np.load(path, allow_pickle=False)``
        reads it. Returns the path written (``.npz`` is appended when missing).

        Example:
            >>> enc.save("dice.npz"); DiceEncoder.load("dice.npz")  # doctest: +SKIP
        """
        header = {"format": "circml.dice", "version": FORMAT_VERSION, "config": asdict(self.config),
                  "seed": self.seed, "epochs_trained": self.epochs_trained, "history": self.history,
                  "split": self.split}
        return write_npz(path, header, self.state_dict())

    @classmethod
    def load(cls, path: Union[str, Path]) -> "DiceEncoder":
        """Read a model written by :meth:`save`. Refuses other files and newer format versions."""
        header, arrays = read_npz(path, "circml.dice", FORMAT_VERSION, "circml DICE model", "circml DICE model")
        enc = cls(DiceConfig(**header["config"]), seed=header["seed"])
        enc.load_state_dict(arrays)
        enc.epochs_trained = header["epochs_trained"]
        enc.history = header["history"]
        enc.split = header.get("split", {"train": [], "val": []})
        return enc

    def __repr__(self) -> str:
        c = self.config
        return (f"DiceEncoder(hidden={c.hidden}, out={c.out}, layers={c.layers}, params={self.num_parameters}, "
                f"epochs_trained={self.epochs_trained})")


def _unit(embeddings: np.ndarray) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _alignment_uniformity(u: np.ndarray, labels: np.ndarray) -> Tuple[float, float]:
    d2 = np.maximum(2 - 2 * (u @ u.T), 0)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    iu = np.triu_indices(len(u), 1)
    return (float(d2[same].mean()) if same.any() else math.nan,
            float(np.log(np.exp(-2 * d2[iu]).mean())) if len(iu[0]) else math.nan)


def retrieval_metrics(embeddings: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """How well views of a circuit cluster: the fraction of rows whose nearest other row (by
    cosine) has the same label, plus alignment (mean squared distance between normalised
    same-label pairs; lower is better) and uniformity (log mean exp(-2 d^2) over all pairs;
    lower is better), as Wang & Isola define them."""
    labels = np.asarray(labels)
    if len(embeddings) != len(labels):
        raise ValueError(f"{len(embeddings)} embeddings but {len(labels)} labels")
    u = _unit(embeddings)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(axis=1)
    alignment, uniformity = _alignment_uniformity(u, labels)
    return {"nn_accuracy": float((labels[nn] == labels).mean()), "alignment": alignment, "uniformity": uniformity}


def held_out_split(library: Sequence, val_fraction: float = 0.25, seed: int = 0,
                   groups: Optional[Sequence] = None) -> Tuple[List[Circuit], List[Circuit], List[Circuit]]:
    """The default held-out evaluation's three sets: ``(train, held_out, distractors)``.

    ``held_out`` is a split by circuit stratified by family (:func:`split_by_circuit`);
    ``distractors`` are the training circuits of the held-out circuits' families, whose views
    join the candidates of :func:`quality_report` (a view must find its own circuit's views
    among those of its siblings, not just among unrelated circuits). ``groups`` defaults to the
    library entries' ``family``; pass it when ``library`` holds plain circuits.

    Example:
        >>> from circml.datasets import circuit_library
        >>> train, held, distractors = held_out_split(circuit_library(), 0.25, seed=0)
        >>> len(train), len(held), len(distractors)
        (48, 16, 36)
    """
    if groups is None:
        groups = [getattr(e, "family", None) for e in library]
        if any(g is None for g in groups):
            raise ValueError("held_out_split needs groups= (e.g. families) when library holds plain circuits")
    circuits = _as_circuits(library, "library")
    groups = list(groups)
    if len(groups) != len(circuits):
        raise ValueError(f"groups has {len(groups)} entries for {len(circuits)} circuits")
    tr, va = split_by_circuit(circuits, val_fraction, seed=seed, groups=groups)
    held_groups = {groups[i] for i in va}
    return ([circuits[i] for i in tr], [circuits[i] for i in va],
            [circuits[i] for i in tr if groups[i] in held_groups])


def _view_embeddings(encoder: DiceEncoder, circuits: List[Circuit], n_positive: int, n_negative: int, n_subs: int,
                     seed: int):
    c = encoder.config
    b = augment_batch(circuits, n_positive, n_negative, n_subs, seed=seed, schema=c.schema,
                      device_values=c.device_values)
    return encoder.embed(b.graph), b


def quality_report(encoder: DiceEncoder, held_out_circuits: Sequence, distractors: Sequence = (), n_views: int = 8,
                   n_negative: int = 8, n_subs: int = 4, negative_subs: int = 1, n_distractor_views: int = 4,
                   seed: int = 2024) -> Dict[str, float]:
    """Retrieval quality on circuits the encoder did not train on (the DICE issue's measure).

    The default evaluation is made hard on purpose, because easy views flatter an encoder
    that learnt nothing (an untrained one finds a one-substitution view's sibling ~98 % of the
    time): every held-out circuit gets ``n_views`` positive views with ``n_subs`` devices
    replaced by equivalent series/parallel pairs each, and ``n_negative`` negative views with
    ``negative_subs`` device changed by DICE's negative rules (one change: the wrong answer
    nearest to the circuit). ``distractors`` (e.g. the other circuits of the same families;
    :func:`held_out_split` gives them) add ``n_distractor_views`` positive views each to the
    candidates. All views are embedded in evaluation mode. For each positive view of a
    held-out circuit, its nearest neighbour by cosine among *all other views* (its own
    positives, every circuit's negatives, other held-out circuits and distractors) must be a
    positive view of the same circuit:

    * ``nn_accuracy``: that fraction (the goal is >= 0.95);
    * ``nn_accuracy_positives``: the same among the held-out circuits' positive views only
      (no negatives, no distractors; easier);
    * ``miss_to_negative``: of the misses, the fraction whose neighbour was a negative view;
    * ``alignment``: mean squared distance between unit embeddings of positive views of one
      circuit (lower: views of a circuit agree);
    * ``uniformity``: log mean exp(-2 d^2) over all pairs of held-out positive views (lower:
      embeddings spread over the sphere), as Wang & Isola (2020) define both;
    * ``mean_subs``: devices actually replaced per positive view (a small circuit may have
      fewer eligible devices than ``n_subs``), and the sizes used.

    Compare with an untrained encoder of the same config and seed,
    ``DiceEncoder(enc.config, seed=enc.seed)``, for a baseline.

    Example:
        >>> from circml.datasets import circuit_library
        >>> train, held, distractors = held_out_split(circuit_library(), 0.25, seed=0)
        >>> enc = DiceEncoder()
        >>> _ = enc.pretrain(train, progress=False)  # doctest: +SKIP
        >>> quality_report(enc, held, distractors)["nn_accuracy"]  # doctest: +SKIP
        0.99...
    """
    circuits = _as_circuits(held_out_circuits, "held_out_circuits")
    distractors = _as_circuits(distractors, "distractors")
    if len(circuits) < 2:
        raise ValueError(f"quality_report needs at least 2 held-out circuits, got {len(circuits)}")
    if n_views < 2:
        raise ValueError(f"n_views must be at least 2 (a view needs another positive to find), got {n_views}")
    if n_negative < 0 or n_subs < 1 or negative_subs < 1 or n_distractor_views < 1:
        raise ValueError(f"n_negative must be >= 0 and n_subs, negative_subs, n_distractor_views >= 1, got "
                         f"{n_negative}, {n_subs}, {negative_subs}, {n_distractor_views}")
    n = len(circuits)
    e_pos, bp = _view_embeddings(encoder, circuits, n_views, 0, n_subs, seed)
    embs, base, neg = [e_pos], [bp.base], [np.zeros(len(bp.base), bool)]
    if n_negative:
        e_neg, bn = _view_embeddings(encoder, circuits, 0, n_negative, negative_subs, seed + 1)
        embs.append(e_neg), base.append(bn.base), neg.append(np.ones(len(bn.base), bool))
    if distractors:
        e_d, bd = _view_embeddings(encoder, distractors, n_distractor_views, 0, n_subs, seed + 2)
        embs.append(e_d), base.append(bd.base + n), neg.append(np.zeros(len(bd.base), bool))
    u = _unit(np.concatenate(embs))
    base, negative = np.concatenate(base), np.concatenate(neg)
    q = len(bp.base)                        # the queries: the held-out circuits' positive views, first rows
    sim = u[:q] @ u.T
    sim[np.arange(q), np.arange(q)] = -np.inf
    nn_all = sim.argmax(axis=1)
    hit = (base[nn_all] == base[:q]) & ~negative[nn_all]
    nn_pos = sim[:, :q].argmax(axis=1)
    bq = base[:q]
    alignment, uniformity = _alignment_uniformity(u[:q], bq)
    return {"nn_accuracy": float(hit.mean()), "nn_accuracy_positives": float((bq[nn_pos] == bq).mean()),
            "miss_to_negative": float(negative[nn_all][~hit].mean()) if (~hit).any() else 0.0,
            "alignment": alignment, "uniformity": uniformity, "mean_subs": float(bp.applied.mean()),
            "n_circuits": n, "n_distractors": len(distractors), "n_views": int(n_views),
            "n_negative": int(n_negative), "n_subs": int(n_subs), "negative_subs": int(negative_subs)}
