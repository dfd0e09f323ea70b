"""The DICE encoder: contrastive pretraining on dual-augmented circuits, and embeddings.

Everything numeric runs in circml's C core (``csrc/nn``); this module holds the training loop.

    >>> from circml.dice import DiceEncoder
    >>> from circml.datasets import circuit_library
    >>> circuits = [e.circuit for e in circuit_library()]
    >>> enc = DiceEncoder(hidden=64, out=32)
    >>> history = enc.pretrain(circuits, epochs=2, progress=False)
    >>> enc.embed(circuits[:3]).shape
    (3, 32)
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from .. import _core
from ..graph import EDGE_TYPES, NODE_TYPES, VALUE_FEATURES, Graph, graphs_from_circuits
from .augment import augment_batch

FORMAT_VERSION = 1


@dataclass
class DiceConfig:
    """Model and training settings. The defaults train on the built-in library in minutes on
    2 cores; :meth:`paper` gives DICE's published size (hidden 512, output 256, batch 1024,
    200 epochs)."""

    hidden: int = 128
    out: int = 64
    layers: int = 2
    dropout: float = 0.2
    schema: str = "dice"
    device_values: bool = False
    # contrastive loss: tau in the numerator, tau_p / tau_n for positives / negatives below
    tau: float = 0.05
    tau_p: float = 0.2
    tau_n: float = 0.05
    # views per circuit and devices replaced per view
    n_positive: int = 2
    n_negative: int = 1
    n_subs: int = 1
    # optimisation (DICE: AdamW-style Adam, lr 3e-4)
    lr: float = 3e-4
    weight_decay: float = 0.0
    batch_size: int = 32          # circuits per step (each brings n_positive + n_negative views)
    epochs: int = 100
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1

    @classmethod
    def paper(cls, **overrides) -> "DiceConfig":
        """DICE's configuration (Lee et al. 2025)."""
        return replace(cls(hidden=512, out=256, batch_size=1024, epochs=200), **overrides)

    @property
    def node_in(self) -> int:
        return len(NODE_TYPES[self.schema]) + (len(VALUE_FEATURES) if self.device_values else 0)

    @property
    def edge_in(self) -> int:
        return len(EDGE_TYPES[self.schema])


class DiceEncoder:
    """A DICE graph encoder with a C core.

    Args:
        config: a :class:`DiceConfig`; keyword arguments override its fields.
        seed: initialisation, augmentation and dropout seed.
    """

    def __init__(self, config: Optional[DiceConfig] = None, seed: int = 0, **overrides):
        self.config = replace(config or DiceConfig(), **overrides)
        self.seed = int(seed)
        c = self.config
        self._model = _core.dice_init(c.node_in, c.edge_in, c.hidden, c.out, c.layers, c.dropout, c.bn_eps,
                                      c.bn_momentum, self.seed)
        self._arrays = _core.dice_arrays(self._model)
        self.history: Dict[str, List[float]] = {"train_loss": [], "val_loss": []}
        self.epochs_trained = 0

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
        off, p = 0, self._arrays["params"]
        for name, size in self._arrays["tensors"]:
            if name not in state or state[name].size != size:
                raise ValueError(f"state lacks {name!r} of size {size}")
            p[off:off + size] = state[name].ravel()
            off += size
        self._arrays["buffers"][:] = state["_bn_running"]

    # -- forward ----------------------------------------------------------------------
    def _forward(self, g: Graph, training: bool, seed: int = 0) -> np.ndarray:
        edge_graph = g.batch[g.edge_index[0]] if g.batch is not None else np.zeros(g.num_edges, np.int64)
        batch = g.batch if g.batch is not None else np.zeros(g.num_nodes, np.int64)
        return _core.dice_forward(self._model, g.x, g.edge_attr, g.edge_index, batch, edge_graph, g.num_graphs,
                                  training, seed & (2**64 - 1))

    def embed(self, circuits_or_graph: Union[Sequence, Graph], batch_size: int = 256) -> np.ndarray:
        """Graph embeddings [G, out] in evaluation mode (running statistics, no dropout)."""
        if isinstance(circuits_or_graph, Graph):
            return self._forward(circuits_or_graph, False)
        circuits = list(circuits_or_graph)
        c = self.config
        parts = [self._forward(graphs_from_circuits(circuits[i:i + batch_size], schema=c.schema,
                                                    device_values=c.device_values), False)
                 for i in range(0, len(circuits), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, c.out), np.float32)

    # -- training ---------------------------------------------------------------------
    def _step_loss(self, circuits, seed: int, training: bool) -> float:
        c = self.config
        b = augment_batch(circuits, c.n_positive, c.n_negative, c.n_subs, seed=seed, schema=c.schema,
                          device_values=c.device_values)
        y = self._forward(b.graph, training, seed)
        loss, dy, pairs = _core.contrastive_loss(y, b.base, b.negative.astype(np.uint8), c.tau, c.tau_p, c.tau_n)
        if training and pairs:
            _core.dice_zero_grad(self._model)
            _core.dice_backward(self._model, dy)
            _core.dice_adamw(self._model, c.lr, 0.9, 0.999, 1e-8, c.weight_decay)
        return float(loss)

    def pretrain(self, circuits: Sequence, epochs: Optional[int] = None, batch_size: Optional[int] = None,
                 val_fraction: float = 0.0, val_circuits: Optional[Sequence] = None,
                 callbacks: Sequence[Callable[["DiceEncoder", int, Dict[str, float]], None]] = (),
                 progress: bool = True) -> Dict[str, List[float]]:
        """Contrastive pretraining on dual-augmented views of ``circuits``.

        A ``val_fraction`` of the circuits (or ``val_circuits``) is held out, split by circuit,
        and its loss reported each epoch. Each callback gets ``(encoder, epoch, logs)``; one
        that returns ``True`` stops training. Returns the loss history.
        """
        c = self.config
        epochs = c.epochs if epochs is None else epochs
        bs = c.batch_size if batch_size is None else batch_size
        circuits = list(circuits)
        rng = np.random.default_rng(self.seed + 7919 * self.epochs_trained)
        if val_circuits is None and val_fraction > 0:
            order = rng.permutation(len(circuits))
            k = max(1, int(round(val_fraction * len(circuits))))
            val_circuits = [circuits[i] for i in order[:k]]
            circuits = [circuits[i] for i in order[k:]]
        if len(circuits) < 2:
            raise ValueError("pretraining needs at least 2 training circuits (negatives come from other circuits)")
        bar = _progress(range(epochs), progress, desc="DICE pretraining")
        for _ in bar:
            epoch = self.epochs_trained
            order = rng.permutation(len(circuits))
            losses, weights = [], []
            for s in range(0, len(order), bs):
                idx = order[s:s + bs]
                if len(idx) < 2:
                    continue
                seed = (self.seed * 1_000_003 + epoch * 10_007 + s) & (2**63 - 1)
                losses.append(self._step_loss([circuits[i] for i in idx], seed, True))
                weights.append(len(idx))
            logs = {"train_loss": float(np.average(losses, weights=weights)) if losses else math.nan}
            if val_circuits is not None and len(val_circuits) >= 2:
                logs["val_loss"] = self._step_loss(list(val_circuits), 12345 + epoch, False)
            for k, v in logs.items():
                self.history.setdefault(k, []).append(v)
            self.epochs_trained += 1
            if hasattr(bar, "set_postfix"):
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
            if any(cb(self, epoch, logs) for cb in callbacks):
                break
        return self.history

    # -- saving -----------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> None:
        """``.npz`` of named float32 arrays plus a JSON header (config, version, history); no pickle."""
        header = {"format": "circml.dice", "version": FORMAT_VERSION, "config": asdict(self.config),
                  "seed": self.seed, "epochs_trained": self.epochs_trained, "history": self.history}
        arrays = self.state_dict()
        np.savez(path, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "DiceEncoder":
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["__header__"]).decode())
            if header.get("format") != "circml.dice" or header.get("version", 0) > FORMAT_VERSION:
                raise ValueError(f"{path}: not a circml DICE model of a version this circml reads")
            enc = cls(DiceConfig(**header["config"]), seed=header["seed"])
            enc.load_state_dict({k: z[k] for k in z.files if k != "__header__"})
        enc.epochs_trained = header["epochs_trained"]
        enc.history = header["history"]
        return enc

    def __repr__(self) -> str:
        c = self.config
        return (f"DiceEncoder(hidden={c.hidden}, out={c.out}, layers={c.layers}, params={self.num_parameters}, "
                f"epochs_trained={self.epochs_trained})")


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    try:
        from tqdm.auto import tqdm
        return tqdm(it, desc=desc)
    except ImportError:
        return it


def retrieval_metrics(embeddings: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """How well views of a circuit cluster: the fraction of rows whose nearest other row (by
    cosine) has the same label, plus alignment (mean squared distance between normalised
    same-label pairs; lower is better) and uniformity (log mean exp(-2 d^2) over all pairs;
    lower is better), as Wang & Isola define them."""
    u = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    nn = sim.argmax(axis=1)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    d2 = np.maximum(2 - 2 * (u @ u.T), 0)
    iu = np.triu_indices(len(u), 1)
    return {"nn_accuracy": float((labels[nn] == labels).mean()),
            "alignment": float(d2[same].mean()) if same.any() else math.nan,
            "uniformity": float(np.log(np.exp(-2 * d2[iu]).mean()))}
