"""DICE's dual graph augmentation, done in C on circuits with values.

Positive views keep a circuit electrically equivalent (R -> R/2 + R/2 or 2R || 2R, a MOSFET
-> two with W/2 in parallel, ...); negative views change what it is (DICE's rules). The rules
live in a registry in ``csrc/augment/augment.c``; :data:`RULES` lists them here.

Two ways in:

* transforms, PyTorch Geometric style, that compose::

      t = Compose([PositiveView(n_subs=2), ToGraph()])
      g = t(circuit, seed=3)

* :func:`augment_batch`, which builds many views of many circuits in one OpenMP call and
  returns them collated with labels (DICE labels negatives of circuit i as -i; here
  ``base`` and ``negative`` arrays say the same)::

      batch = augment_batch(circuits, n_positive=2, n_negative=1, seed=0)
      batch.graph.x, batch.base, batch.negative
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .. import _core
from ..circuit import Circuit
from ..graph import Graph, graphs_from_circuits


@dataclass(frozen=True)
class Rule:
    """One augmentation rule of the registry."""

    index: int
    name: str
    negative: bool
    description: str

    @property
    def bit(self) -> int:
        return 1 << self.index


RULES: Dict[str, Rule] = {name: Rule(i, name, neg, desc) for i, (name, neg, desc) in enumerate(_core.augment_rules())}
POSITIVE_RULES = [r.name for r in RULES.values() if not r.negative]
NEGATIVE_RULES = [r.name for r in RULES.values() if r.negative]


def rule_mask(rules: Iterable[str]) -> int:
    """Bit mask of the named rules (raises on an unknown name)."""
    mask = 0
    for name in rules:
        if name not in RULES:
            raise ValueError(f"unknown augmentation rule {name!r}; known: {', '.join(RULES)}")
        mask |= RULES[name].bit
    return mask


def _views(circuits: Sequence[Circuit], base_of, masks, n_subs: int, seed: int):
    handles, applied = _core.augment([c._handle for c in circuits], np.asarray(base_of, dtype=np.int64),
                                     np.asarray(masks, dtype=np.uint64), int(n_subs), int(seed) & (2**64 - 1))
    return [Circuit(h) for h in handles], applied


class _View:
    rules: Sequence[str]

    def __init__(self, n_subs: int = 1, rules: Optional[Sequence[str]] = None, seed: int = 0):
        if n_subs < 1:
            raise ValueError("n_subs must be at least 1")
        self.n_subs = n_subs
        self.rules = list(rules) if rules is not None else self.default_rules
        self.mask = rule_mask(self.rules)
        self.seed = seed
        self._count = 0

    def __call__(self, circuit: Circuit, seed: Optional[int] = None) -> Circuit:
        """A view of ``circuit``. Without ``seed`` each call draws the next view of this
        transform's stream (deterministic given the transform's own seed)."""
        view = self._count if seed is None else 0
        if seed is None:
            self._count += 1
        s = self.seed if seed is None else seed
        circuits, applied = _views([circuit], [0], [self.mask], self.n_subs, (s * 1_000_003 + view))
        return circuits[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_subs={self.n_subs}, rules={self.rules})"


class PositiveView(_View):
    """An electrically equivalent view: ``n_subs`` devices replaced by series/parallel pairs."""

    default_rules = POSITIVE_RULES


class NegativeView(_View):
    """A view that changes the circuit (DICE's negative rules)."""

    default_rules = NEGATIVE_RULES


class ToGraph:
    """Circuit -> :class:`~circml.graph.Graph` (the last step of a :class:`Compose`)."""

    def __init__(self, schema: str = "dice", device_values: bool = False):
        self.schema, self.device_values = schema, device_values

    def __call__(self, circuit: Circuit, seed: Optional[int] = None) -> Graph:
        return circuit.to_graph(schema=self.schema, device_values=self.device_values)

    def __repr__(self) -> str:
        return f"ToGraph(schema={self.schema!r}, device_values={self.device_values})"


def _takes_seed(t: Callable) -> bool:
    try:
        params = inspect.signature(t).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
    return "seed" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class Compose:
    """Apply transforms in order, as ``torch_geometric.transforms.Compose`` does."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)
        # Which transforms take a seed, decided once: calling with seed= and retrying without it
        # on TypeError would hide a TypeError raised inside a transform (and run it twice).
        self._seeded = [_takes_seed(t) for t in self.transforms]

    def __call__(self, x, seed: Optional[int] = None):
        for i, (t, seeded) in enumerate(zip(self.transforms, self._seeded)):
            x = t(x, seed=None if seed is None else seed * 7919 + i) if seeded else t(x)
        return x

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


@dataclass
class AugmentedBatch:
    """Views of many circuits, collated.

    ``graph`` holds all views (``graph.batch`` numbers them); ``base[v]`` is the circuit a view
    came from, ``negative[v]`` whether it is a negative view, ``applied[v]`` how many devices
    were replaced (0: no device was eligible, the view equals its base). ``views`` are the
    circuits themselves (write them with ``to_spice()`` to simulate them). DICE's labels:
    :attr:`dice_labels` (``i`` for positives of circuit i, ``-i - 1`` for its negatives).
    """

    graph: Graph
    base: np.ndarray
    negative: np.ndarray
    applied: np.ndarray
    views: List[Circuit]

    @property
    def dice_labels(self) -> np.ndarray:
        return np.where(self.negative, -self.base - 1, self.base)


def augment_batch(circuits: Sequence[Circuit], n_positive: int = 2, n_negative: int = 1, n_subs: int = 1,
                  seed: int = 0, positive_rules: Optional[Sequence[str]] = None,
                  negative_rules: Optional[Sequence[str]] = None, schema: str = "dice",
                  device_values: bool = False) -> AugmentedBatch:
    """``n_positive`` positive and ``n_negative`` negative views of every circuit, built in C
    with OpenMP over views and collated into one graph batch. Deterministic for ``seed``.

    Example:
        >>> from circml.datasets import circuit_library
        >>> cs = [e.circuit for e in circuit_library()[:4]]
        >>> b = augment_batch(cs, n_positive=2, n_negative=1)
        >>> b.graph.num_graphs, b.base.tolist()[:3]
        (12, [0, 0, 0])
    """
    circuits = list(circuits)
    pos = rule_mask(positive_rules if positive_rules is not None else POSITIVE_RULES)
    neg = rule_mask(negative_rules if negative_rules is not None else NEGATIVE_RULES)
    per = n_positive + n_negative
    base = np.repeat(np.arange(len(circuits), dtype=np.int64), per)
    negative = np.tile(np.r_[np.zeros(n_positive, bool), np.ones(n_negative, bool)], len(circuits))
    masks = np.where(negative, neg, pos).astype(np.uint64)
    views, applied = _views(circuits, base, masks, n_subs, seed)
    graph = graphs_from_circuits(views, schema=schema, device_values=device_values)
    return AugmentedBatch(graph=graph, base=base, negative=negative, applied=applied, views=views)
