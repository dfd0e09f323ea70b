"""Device-level circuit graphs, laid out the way PyTorch Geometric lays them out.

Nodes are a circuit's nets followed by its devices. DICE's schema (the default) has 9 node
types and 5 edge types (see :data:`NODE_TYPES` and :data:`EDGE_TYPES`); the ``'extended'``
schema adds diodes, BJTs, voltage sources and controlled sources. Arrays:

* ``x``           float32 [N, F]: one-hot node type (+ 4 optional log10 value columns)
* ``edge_index``  int64 [2, E]: row 0 sources, row 1 targets
* ``edge_attr``   float32 [E, K]: one-hot edge type
* ``node_type``   int64 [N], ``edge_type`` int64 [E]
* ``batch``       int64 [N]: graph of each node, when several graphs are collated

``graph.to_pyg()`` hands them to PyTorch Geometric when it is installed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

import numpy as np

from . import _core

NODE_TYPES = {
    "dice": ["ground", "supply", "net", "current_source", "nmos", "pmos", "resistor", "capacitor", "inductor"],
}
NODE_TYPES["extended"] = NODE_TYPES["dice"] + ["diode", "npn", "pnp", "voltage_source", "vcvs", "vccs", "cccs", "ccvs"]
EDGE_TYPES = {"dice": ["current", "gate_nmos", "gate_pmos", "body_nmos", "body_pmos"]}
EDGE_TYPES["extended"] = EDGE_TYPES["dice"] + ["base_npn", "base_pnp", "substrate", "control", "sense"]
VALUE_FEATURES = ["log10_w", "log10_l", "log10_mult", "log10_value"]

_ROLE = {"signal": 0, "ground": 1, "supply": 2}


@dataclass
class Graph:
    """A device-level graph, or a batch of them (``batch`` is set, ``ptr`` has G + 1 offsets)."""

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    node_type: np.ndarray
    edge_type: np.ndarray
    batch: Optional[np.ndarray] = None
    ptr: Optional[np.ndarray] = None
    schema: str = "dice"
    node_names: Optional[List[str]] = None
    dropped_devices: int = 0

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_graphs(self) -> int:
        return 1 if self.ptr is None else len(self.ptr) - 1

    @property
    def node_type_names(self) -> List[str]:
        return NODE_TYPES[self.schema]

    @property
    def edge_type_names(self) -> List[str]:
        return EDGE_TYPES[self.schema]

    def to_tuple(self):
        """(x, node_type, edge_index, edge_type, edge_attr), the form :func:`collate` reads."""
        return (self.x, self.node_type, self.edge_index, self.edge_type, self.edge_attr)

    def to_pyg(self):
        """A ``torch_geometric.data.Data`` (or ``Batch``-like ``Data`` with ``batch``)."""
        import torch
        from torch_geometric.data import Data

        d = Data(x=torch.from_numpy(self.x), edge_index=torch.from_numpy(self.edge_index),
                 edge_attr=torch.from_numpy(self.edge_attr), node_type=torch.from_numpy(self.node_type),
                 edge_type=torch.from_numpy(self.edge_type))
        if self.batch is not None:
            d.batch = torch.from_numpy(self.batch)
            d.ptr = torch.from_numpy(self.ptr)
        return d

    def __repr__(self) -> str:
        g = f", graphs={self.num_graphs}" if self.batch is not None else ""
        return (f"Graph(schema={self.schema!r}, x={list(self.x.shape)}, edge_index={list(self.edge_index.shape)}, "
                f"edge_attr={list(self.edge_attr.shape)}{g})")


def _roles(circuit, supply_nets, ground_nets):
    if supply_nets is None and ground_nets is None:
        return None
    roles = _core.net_roles(circuit._handle)
    index = {n: i for i, n in enumerate(circuit.nets)}
    for names, role in ((supply_nets, "supply"), (ground_nets, "ground")):
        for name in names or ():
            key = name.lower()
            if key not in index:
                raise ValueError(f"net {name!r} is not in the circuit (nets: {', '.join(circuit.nets[:12])}...)")
            roles[index[key]] = _ROLE[role]
    return roles


def graphs_from_circuits(circuits: Sequence, schema: str = "dice", device_values: bool = False,
                         supply_nets: Optional[Iterable[str]] = None, ground_nets: Optional[Iterable[str]] = None,
                         collated: bool = True):
    """Build the graphs of many circuits in one C call (OpenMP over circuits).

    Returns one collated :class:`Graph` with ``batch`` set (``collated=True``), or a list of
    single graphs.

    Example:
        >>> import circml
        >>> cs = [circml.parse_netlist("* a\\nR1 a 0 1k\\n.end"), circml.parse_netlist("* b\\nC1 b 0 1p\\n.end")]
        >>> graphs_from_circuits(cs).num_graphs
        2
    """
    circuits = list(circuits)
    roles = None
    if supply_nets is not None or ground_nets is not None:
        roles = [_roles(c, supply_nets, ground_nets) for c in circuits]
    out = _core.graph_batch([c._handle for c in circuits], roles, schema=schema, value_features=device_values)
    if collated:
        return Graph(x=out["x"], edge_index=out["edge_index"], edge_attr=out["edge_attr"], node_type=out["node_type"],
                     edge_type=out["edge_type"], batch=out["batch"], ptr=out["node_offset"], schema=schema,
                     dropped_devices=int(out["dropped"].sum()))
    graphs = []
    no, eo, ref = out["node_offset"], out["edge_offset"], out["node_ref"]
    for g, c in enumerate(circuits):
        n0, n1, e0, e1 = no[g], no[g + 1], eo[g], eo[g + 1]
        nets, devs = c.nets, c.device_names
        n_nets = len(nets)
        names = [nets[r] if k < n_nets else devs[r] for k, r in enumerate(ref[n0:n1])]
        graphs.append(Graph(x=out["x"][n0:n1], edge_index=out["edge_index"][:, e0:e1] - n0,
                            edge_attr=out["edge_attr"][e0:e1], node_type=out["node_type"][n0:n1],
                            edge_type=out["edge_type"][e0:e1], schema=schema, node_names=names,
                            dropped_devices=int(out["dropped"][g])))
    return graphs


def collate(graphs: Sequence[Graph]) -> Graph:
    """Concatenate graphs into one batch (node ids shifted, ``batch`` and ``ptr`` set), in C.

    Example:
        >>> import circml
        >>> g = circml.parse_netlist("* a\\nR1 a 0 1k\\n.end").to_graph()
        >>> collate([g, g]).batch.tolist()
        [0, 0, 0, 1, 1, 1]
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("collate needs at least one graph")
    schemas = {g.schema for g in graphs}
    if len(schemas) > 1:
        raise ValueError(f"cannot collate graphs of different schemas: {sorted(schemas)}")
    out = _core.collate([g.to_tuple() for g in graphs])
    ptr = np.zeros(len(graphs) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([g.num_nodes for g in graphs])
    return Graph(x=out["x"], edge_index=out["edge_index"], edge_attr=out["edge_attr"], node_type=out["node_type"],
                 edge_type=out["edge_type"], batch=out["batch"], ptr=ptr, schema=graphs[0].schema,
                 dropped_devices=sum(g.dropped_devices for g in graphs))
