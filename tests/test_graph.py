"""Device-level graphs against hand-computed small cases, plus batching and collation."""
import math

import numpy as np
import pytest

import circml
from circml.graph import EDGE_TYPES, NODE_TYPES, collate, graphs_from_circuits

RC = """* rc low-pass
R1 in out 1k
C1 out 0 1p
V1 in 0 DC 1 AC 1
.end
"""

INVERTER = """* inverter
.model nch nmos level=54
.model pch pmos level=54
mp out in vdd vdd pch w=2u l=45n
mn out in 0 0 nch w=1u l=45n m=2 nf=3
.end
"""


def onehot(idx, width):
    out = np.zeros((len(idx), width), dtype=np.float32)
    out[np.arange(len(idx)), idx] = 1
    return out


def test_rc_graph_by_hand():
    g = circml.parse_netlist(RC).to_graph()
    # nets by first appearance: in, out, 0; then devices r1, c1 (the V source is not a DICE node)
    assert g.node_names == ["in", "out", "0", "r1", "c1"]
    assert g.node_type.tolist() == [2, 2, 0, 6, 7]
    assert g.edge_index.tolist() == [[0, 3, 1, 3, 1, 4, 2, 4], [3, 0, 3, 1, 4, 1, 4, 2]]
    assert g.edge_type.tolist() == [0] * 8
    np.testing.assert_array_equal(g.x, onehot([2, 2, 0, 6, 7], 9))
    np.testing.assert_array_equal(g.edge_attr, onehot([0] * 8, 5))
    assert g.x.dtype == np.float32 and g.edge_index.dtype == np.int64 and g.edge_attr.dtype == np.float32
    assert g.node_type.dtype == np.int64 and g.edge_type.dtype == np.int64
    assert g.dropped_devices == 1
    assert g.batch is None


def test_inverter_graph_by_hand():
    g = circml.parse_netlist(INVERTER).to_graph()
    assert g.node_names == ["out", "in", "vdd", "0", "mp", "mn"]
    assert g.node_type.tolist() == [2, 2, 1, 0, 5, 4]
    src, dst = g.edge_index.tolist()
    edges = list(zip(src, dst, g.edge_type.tolist()))
    assert edges == [
        (0, 4, 0), (4, 0, 0), (1, 4, 2), (2, 4, 0), (4, 2, 0), (2, 4, 4),   # pmos: d, gate, s, body
        (0, 5, 0), (5, 0, 0), (1, 5, 1), (3, 5, 0), (5, 3, 0), (3, 5, 3),   # nmos
    ]
    # gate and body edges go one way only, from the net into the transistor
    for s, d, t in edges:
        if t in (1, 2, 3, 4):
            assert g.node_type[s] in (0, 1, 2) and g.node_type[d] in (4, 5)


def test_value_features():
    g = circml.parse_netlist(INVERTER).to_graph(device_values=True)
    assert g.x.shape == (6, 13)
    mp, mn = g.x[4, 9:], g.x[5, 9:]
    np.testing.assert_allclose(mp, [math.log10(2e-6), math.log10(45e-9), 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(mn, [-6.0, math.log10(45e-9), math.log10(6.0), 0.0], rtol=1e-6)
    r = circml.parse_netlist(RC).to_graph(device_values=True)
    np.testing.assert_allclose(r.x[3, 9:], [0, 0, 0, 3.0])        # 1k
    np.testing.assert_allclose(r.x[4, 9:], [0, 0, 0, -12.0])      # 1p
    assert not r.x[:3, 9:].any()                                   # nets carry no values


def test_extended_schema_types():
    c = circml.parse_netlist("""* extended
.model dd d is=1e-14
.model qn npn bf=100
.model qp pnp bf=50
d1 a 0 dd
q1 c b e qn
q2 c2 b2 e2 sub qp
v1 a 0 dc 1
e1 o1 0 a 0 2
f1 o2 0 v1 3
.end
""")
    d = c.to_graph()
    assert d.dropped_devices == 6 and set(d.node_type.tolist()) <= {0, 2}
    g = c.to_graph(schema="extended")
    names = g.node_names
    types = dict(zip(names, g.node_type.tolist()))
    T = NODE_TYPES["extended"]
    assert [T[types[n]] for n in ("d1", "q1", "q2", "v1", "e1", "f1")] == \
        ["diode", "npn", "pnp", "voltage_source", "vcvs", "cccs"]
    et = [EDGE_TYPES["extended"][t] for t in g.edge_type]
    idx = {n: i for i, n in enumerate(names)}
    edges = set(zip(g.edge_index[0].tolist(), g.edge_index[1].tolist(), et))
    assert (idx["b"], idx["q1"], "base_npn") in edges
    assert (idx["b2"], idx["q2"], "base_pnp") in edges
    assert (idx["sub"], idx["q2"], "substrate") in edges
    assert (idx["a"], idx["e1"], "control") in edges
    assert (idx["v1"], idx["f1"], "sense") in edges
    assert g.x.shape[1] == 17 and g.edge_attr.shape[1] == 10


def test_supply_and_ground_overrides():
    c = circml.parse_netlist("* x\nR1 avcc n1 1k\nR2 n1 vneg 1k\n.end")
    g = c.to_graph()
    assert g.node_type.tolist()[:3] == [2, 2, 2]
    g = c.to_graph(supply_nets=["AVCC"], ground_nets=["vneg"])
    assert g.node_type.tolist()[:3] == [1, 2, 0]
    with pytest.raises(ValueError, match="not in the circuit"):
        c.to_graph(supply_nets=["nope"])
    with pytest.raises(ValueError, match="schema"):
        c.to_graph(schema="bogus")


def test_batch_equals_collate_of_singles():
    from circml.datasets import circuit_library
    circuits = [e.load() for e in circuit_library()[:12]]
    singles = graphs_from_circuits(circuits, collated=False)
    batch = graphs_from_circuits(circuits)
    col = collate(singles)
    for name in ("x", "edge_index", "edge_attr", "node_type", "edge_type", "batch", "ptr"):
        np.testing.assert_array_equal(getattr(batch, name), getattr(col, name), err_msg=name)
    assert batch.num_graphs == 12
    sizes = np.bincount(batch.batch)
    assert sizes.tolist() == [s.num_nodes for s in singles]
    # edges never cross graphs
    assert (batch.batch[batch.edge_index[0]] == batch.batch[batch.edge_index[1]]).all()
    for g, s in enumerate(singles):
        assert s.num_nodes == batch.ptr[g + 1] - batch.ptr[g]


def test_collate_offsets_by_hand():
    a = circml.parse_netlist(RC).to_graph()
    b = circml.parse_netlist(INVERTER).to_graph()
    col = collate([a, b])
    assert col.batch.tolist() == [0] * 5 + [1] * 6
    assert col.ptr.tolist() == [0, 5, 11]
    np.testing.assert_array_equal(col.edge_index[:, :8], a.edge_index)
    np.testing.assert_array_equal(col.edge_index[:, 8:], b.edge_index + 5)
    with pytest.raises(ValueError):
        collate([])
    with pytest.raises(ValueError, match="schemas"):
        collate([a, circml.parse_netlist(RC).to_graph(schema="extended")])


def test_collate_rejects_bad_arrays():
    a = circml.parse_netlist(RC).to_graph()
    bad = circml.graph.Graph(x=a.x, edge_index=a.edge_index + 100, edge_attr=a.edge_attr,
                             node_type=a.node_type, edge_type=a.edge_type)
    with pytest.raises(ValueError, match="outside"):
        collate([a, bad])


def test_batch_is_deterministic():
    from circml.datasets import circuit_library
    circuits = [e.load() for e in circuit_library()]
    g1 = graphs_from_circuits(circuits)
    g2 = graphs_from_circuits(list(reversed(circuits)))
    g3 = graphs_from_circuits(circuits)
    np.testing.assert_array_equal(g1.edge_index, g3.edge_index)
    n_last = g1.ptr[-1] - g1.ptr[-2]
    np.testing.assert_array_equal(g1.x[-n_last:], g2.x[:n_last])


def test_to_pyg_when_available():
    pyg = pytest.importorskip("torch_geometric")
    g = circml.parse_netlist(INVERTER).to_graph()
    d = g.to_pyg()
    assert d.num_nodes == 6 and d.edge_index.shape == (2, 12)
    del pyg
