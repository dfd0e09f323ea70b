"""DICE dual graph augmentation throughput: augmented views per second of the built-in library's
64 circuits, through circml (C, OpenMP over views) and through a straightforward pure-Python +
networkx implementation of the same rules written here (``Reference*`` below).

Work per run: ``--views`` views of every library circuit, half positive (circml.dice's
POSITIVE_RULES) and half negative (NEGATIVE_RULES), ``--subs`` substitutions each, seeded. Two
rows per tool:

* as circuits: the views themselves (circml: ``circml.dice.augment._views``, what
  ``augment_batch`` calls, giving ``Circuit`` objects; reference: dict circuits),
* as collated graphs: views + DICE graphs + one collated batch (circml: ``augment_batch``;
  reference: the dict views turned into networkx MultiDiGraphs, then into PyG-style arrays
  ``x``, ``edge_index``, ``edge_attr``, ``batch`` and concatenated).

The reference draws the same random numbers (splitmix64 over (seed, view index), as
csrc/augment/augment.c) and applies the same rules, so both produce the same views: the bench
checks that every view has the same devices (names, kinds, nets, values, parameters) and that the
collated graphs have the same nodes, node types and (sorted) edges before it reports a number.
The base circuits are converted to the reference's dicts once, outside the timing, as circml's
are parsed once.

circml runs with the machine's OpenMP threads and, in a subprocess with OMP_NUM_THREADS=1, with
one thread (the reference is single-threaded). Each time is the median of ``--repeats`` runs
(reference: ``--python-repeats``).
The machine's load average is recorded before and after: other processes on the same cores slow
the OpenMP row most (its threads wait for each other at the end of a batch).
Usage: python benchmarks/bench_augment.py [--views 16] [--subs 1] [--repeats 15]
Writes benchmarks/results/bench_augment.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# ---------------------------------------------------------------------------------------------
# The reference: DICE's rules on dict circuits, graphs with networkx
# ---------------------------------------------------------------------------------------------

M64 = (1 << 64) - 1

# rule name -> (negative, applies(ctx, device), emit(view, device)); order = circml's registry
RULE_NAMES = ["r_series", "r_parallel", "c_parallel", "c_series", "l_series", "l_parallel", "mos_parallel",
              "mos_series", "i_parallel", "neg_i_to_rcl", "neg_nmos_add_pmos", "neg_pmos_add_nmos", "neg_r_to_cl",
              "neg_c_add_l", "neg_l_add_c"]
NEG_R, NEG_C, NEG_L = 1e3, 1e-12, 1e-9
NODE_TYPE = {"isource": 3, "nmos": 4, "pmos": 5, "resistor": 6, "capacitor": 7, "inductor": 8}
GROUND = {"0", "gnd", "gnd!", "vss", "vss!", "agnd", "dgnd"}
SUPPLY = ("vdd", "vcc", "avdd", "dvdd", "vpwr")
EDGE_CURRENT, EDGE_GATE_N, EDGE_GATE_P, EDGE_BODY_N, EDGE_BODY_P = range(5)
SUFFIX = {"t": 1e12, "g": 1e9, "meg": 1e6, "k": 1e3, "mil": 25.4e-6, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12,
          "f": 1e-15}
NUMBER = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)(meg|mil|[tgkmunpf])?", re.I)


def mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


class Rng:
    """splitmix64 over a counter, as augment.c draws."""

    def __init__(self, seed, view):
        self.state = mix64(seed ^ mix64((view + 0x632BE59BD9B4E019) & M64))

    def below(self, n):
        v = mix64(self.state)
        self.state = (self.state + 1) & M64
        return (v >> 11) % n


def spice_number(s):
    m = NUMBER.fullmatch(s.strip())
    if not m:
        return None
    return float(m.group(1)) * SUFFIX.get((m.group(2) or "").lower(), 1.0)


def card_limits(text):
    """Shortest drawn L and W a MOSFET card simulates (lmin/wmin; L + xl - 2 lint > 0)."""
    v = {}
    for tok in text.split():
        k, eq, val = tok.partition("=")
        if eq and k in ("lmin", "wmin", "xl", "xw", "lint", "wint", "ld", "wd"):
            x = spice_number(val)
            if x is not None:
                v[k] = x
    g = v.get
    return (max(g("lmin", 0.0), 2 * max(g("lint", 0.0), g("ld", 0.0)) - g("xl", 0.0)),
            max(g("wmin", 0.0), 2 * max(g("wint", 0.0), g("wd", 0.0)) - g("xw", 0.0)))


def circuit_to_ref(c):
    """A circml Circuit as the reference's dict: nets, devices (dicts), models (name -> (type, text))."""
    devices = [{"name": d.name, "kind": d.kind, "nets": d.nets, "model": d.model, "value": d.value,
                "value_text": d.value_text, "params": dict(d.params)} for d in c.devices]
    return {"nets": list(c.nets), "devices": devices, "models": dict(c.models), "global_nets": list(c.global_nets)}


class RefView:
    """A view under construction: the base, the new devices, names taken, nets."""

    def __init__(self, base):
        self.base = base
        self.devices = []
        self.names = set()
        self.base_names = {d["name"] for d in base["devices"]}
        self.nets = list(base["nets"])
        self.net_set = set(self.nets)
        self.models = dict(base["models"])

    def fresh_name(self, want):
        name, k = want, 2
        while name in self.names or name in self.base_names:
            name = f"{want}{k}"
            k += 1
        return name

    def fresh_net(self, devname):
        want = devname + "_mid"
        name, k = want, 2
        while name in self.net_set:
            name = f"{want}{k}"
            k += 1
        self.nets.append(name)
        self.net_set.add(name)
        return name

    def add(self, d):
        self.names.add(d["name"])
        self.devices.append(d)

    def copy(self, d, suffix, nets=None, vscale=1.0, param=None, pscale=1.0):
        params = d["params"]
        if param is not None and isinstance(params.get(param), float):
            params = dict(params)
            params[param] *= pscale
        self.add({"name": self.fresh_name(d["name"] + suffix) if suffix else d["name"], "kind": d["kind"],
                  "nets": d["nets"] if nets is None else nets, "model": d["model"], "value": d["value"] * vscale,
                  "value_text": d["value_text"], "params": params})

    def new2(self, kind, letter, d, suffix, a, b, value):
        self.add({"name": self.fresh_name(f"{letter}_{d['name']}{suffix}"), "kind": kind, "nets": (a, b),
                  "model": None, "value": value, "value_text": None, "params": {}})

    def other_polarity(self, d, suffix, nets):
        kind = "pmos" if d["kind"] == "nmos" else "nmos"
        model = next((n for n, (t, _) in self.base["models"].items() if t == kind), None)
        if model is None:
            model = "circml_" + kind
            self.models.setdefault(model, (kind, "level=1"))
        self.add({"name": self.fresh_name(d["name"] + suffix), "kind": kind, "nets": nets, "model": model,
                  "value": math.nan, "value_text": None, "params": dict(d["params"])})


def _numeric(d):
    v = d["value"]
    return not math.isnan(v) and d["value_text"] is None and v != 0.0 and d["model"] is None


def _even_m(d):
    m = d["params"].get("m")
    return isinstance(m, float) and m >= 2 and m == math.floor(m) and m % 2 == 0


class RefCtx:
    def __init__(self, base):
        self.base, self.limits = base, {}

    def limits_of(self, d):
        m = d["model"]
        if m not in self.base["models"]:
            return (0.0, 0.0)
        if m not in self.limits:
            self.limits[m] = card_limits(self.base["models"][m][1])
        return self.limits[m]


def _param(d, p):
    v = d["params"].get(p)
    return v if isinstance(v, float) else math.nan


def ap_r(x, d): return d["kind"] == "resistor" and _numeric(d)
def ap_c(x, d): return d["kind"] == "capacitor" and _numeric(d)
def ap_l(x, d): return d["kind"] == "inductor" and _numeric(d)


def ap_mos_w(x, d):
    if d["kind"] not in ("nmos", "pmos"):
        return False
    if _even_m(d):
        return True
    w = _param(d, "w")
    return w > 0 and 0.5 * w > x.limits_of(d)[1] * (1 - 1e-9)


def ap_mos_l(x, d):
    if d["kind"] not in ("nmos", "pmos"):
        return False
    ln = _param(d, "l")
    return ln > 0 and 0.5 * ln > x.limits_of(d)[0] * (1 - 1e-9)


def ap_dc_isrc(x, d):
    if d["kind"] != "isource" or math.isnan(d["value"]) or d["value"] == 0.0:
        return False
    t = d["value_text"]
    if t is None:
        return True
    w = t.split()
    return len(w) == 1 or (len(w) == 2 and w[0] == "dc")


def ap_kind(kind):
    return lambda x, d: d["kind"] == kind


def em_series(v, d, scale):
    a, b = d["nets"]
    m = v.fresh_net(d["name"])
    v.copy(d, "_a", (a, m), scale)
    v.copy(d, "_b", (m, b), scale)


def em_parallel(v, d, scale):
    v.copy(d, "_a", None, scale)
    v.copy(d, "_b", None, scale)


def em_mos_parallel(v, d):
    p = "m" if _even_m(d) else "w"
    v.copy(d, "_a", None, 1.0, p, 0.5)
    v.copy(d, "_b", None, 1.0, p, 0.5)


def em_mos_series(v, d):
    dn, g, s, b = d["nets"]
    m = v.fresh_net(d["name"])
    v.copy(d, "_a", (dn, g, m, b), 1.0, "l", 0.5)
    v.copy(d, "_b", (m, g, s, b), 1.0, "l", 0.5)


def em_i_parallel(v, d):
    half = d["value"] * 0.5
    for suffix in ("_a", "_b"):
        v.add({"name": v.fresh_name(d["name"] + suffix), "kind": "isource", "nets": d["nets"], "model": None,
               "value": half, "value_text": f"dc {half!r}", "params": {}})


def em_neg_i(v, d):
    a, b = d["nets"]
    v.new2("resistor", "r", d, "", a, b, NEG_R)
    v.new2("capacitor", "c", d, "", a, b, NEG_C)
    v.new2("inductor", "l", d, "", a, b, NEG_L)


def em_neg_mos(v, d):
    dn, g, s, b = d["nets"]
    m = v.fresh_net(d["name"])
    v.copy(d, "", (dn, g, m, b))
    v.other_polarity(d, "_s", (m, g, s, b))
    v.other_polarity(d, "_p", (dn, g, s, b))


def em_neg_r(v, d):
    a, b = d["nets"]
    m = v.fresh_net(d["name"])
    v.new2("capacitor", "c", d, "", a, m, NEG_C)
    v.new2("inductor", "l", d, "", m, b, NEG_L)


def em_neg_sp(kind, letter, value):
    def emit(v, d):
        a, b = d["nets"]
        m = v.fresh_net(d["name"])
        v.copy(d, "", (a, m))
        v.new2(kind, letter, d, "_s", m, b, value)
        v.new2(kind, letter, d, "_p", a, b, value)
    return emit


REF_RULES = [
    (False, ap_r, lambda v, d: em_series(v, d, 0.5)), (False, ap_r, lambda v, d: em_parallel(v, d, 2.0)),
    (False, ap_c, lambda v, d: em_parallel(v, d, 0.5)), (False, ap_c, lambda v, d: em_series(v, d, 2.0)),
    (False, ap_l, lambda v, d: em_series(v, d, 0.5)), (False, ap_l, lambda v, d: em_parallel(v, d, 2.0)),
    (False, ap_mos_w, em_mos_parallel), (False, ap_mos_l, em_mos_series), (False, ap_dc_isrc, em_i_parallel),
    (True, ap_kind("isource"), em_neg_i), (True, ap_kind("nmos"), em_neg_mos), (True, ap_kind("pmos"), em_neg_mos),
    (True, ap_kind("resistor"), em_neg_r), (True, ap_kind("capacitor"), em_neg_sp("inductor", "l", NEG_L)),
    (True, ap_kind("inductor"), em_neg_sp("capacitor", "c", NEG_C)),
]


def ref_view(base, mask, n_subs, seed, view):
    """One view, as augment.c's cm_augment_view makes it."""
    rules = [r for r in range(len(REF_RULES)) if mask >> r & 1]
    x = RefCtx(base)
    devs = base["devices"]
    cand = [i for i, d in enumerate(devs) if any(REF_RULES[r][1](x, d) for r in rules)]
    g = Rng(seed, view)
    chosen = {}
    for j in range(min(n_subs, len(cand))):
        t = j + g.below(len(cand) - j)
        cand[j], cand[t] = cand[t], cand[j]
        i = cand[j]
        opts = [r for r in rules if REF_RULES[r][1](x, devs[i])]
        chosen[i] = opts[g.below(len(opts))]
    v = RefView(base)
    for i, d in enumerate(devs):
        r = chosen.get(i)
        if r is None:
            v.add(d)
        else:
            REF_RULES[r][2](v, d)
    return {"nets": v.nets, "devices": v.devices, "models": v.models, "global_nets": base["global_nets"]}, len(chosen)


def ref_views(bases, base_of, masks, n_subs, seed):
    return [ref_view(bases[b], int(m), n_subs, seed, v)[0] for v, (b, m) in enumerate(zip(base_of, masks))]


def ref_graph(view):
    """The DICE graph of a dict circuit as a networkx MultiDiGraph: nets then devices."""
    import networkx as nx
    G = nx.MultiDiGraph()
    for n in view["nets"]:
        G.add_node(("net", n), type=0 if n in GROUND else 1 if n.startswith(SUPPLY) else 2)
    for d in view["devices"]:
        t = NODE_TYPE.get(d["kind"])
        if t is None:
            continue  # DICE's schema has no node for V sources, diodes, BJTs, controlled sources
        node = ("dev", d["name"])
        G.add_node(node, type=t)
        nets = [("net", n) for n in d["nets"]]
        if t in (4, 5):
            dn, gt, s, b = nets
            nm = t == 4
            G.add_edge(dn, node, type=EDGE_CURRENT)
            G.add_edge(node, dn, type=EDGE_CURRENT)
            G.add_edge(gt, node, type=EDGE_GATE_N if nm else EDGE_GATE_P)
            G.add_edge(s, node, type=EDGE_CURRENT)
            G.add_edge(node, s, type=EDGE_CURRENT)
            G.add_edge(b, node, type=EDGE_BODY_N if nm else EDGE_BODY_P)
        else:
            for n in nets:
                G.add_edge(n, node, type=EDGE_CURRENT)
                G.add_edge(node, n, type=EDGE_CURRENT)
    return G


def ref_collate(graphs):
    """networkx graphs -> one PyG-style batch of arrays (x, node_type, edge_index, edge_attr, batch)."""
    xs, nts, eis, eas, bs = [], [], [], [], []
    eye_n, eye_e = np.eye(9, dtype=np.float32), np.eye(5, dtype=np.float32)
    off = 0
    for k, G in enumerate(graphs):
        index = {n: i for i, n in enumerate(G.nodes)}
        nt = np.fromiter((t for _, t in G.nodes(data="type")), dtype=np.int64, count=len(index))
        edges = list(G.edges(data="type"))
        ei = np.array([[index[u] + off for u, _, _ in edges], [index[v] + off for _, v, _ in edges]], dtype=np.int64)
        et = np.fromiter((t for _, _, t in edges), dtype=np.int64, count=len(edges))
        xs.append(eye_n[nt]); nts.append(nt); eis.append(ei); eas.append(eye_e[et])
        bs.append(np.full(len(index), k, dtype=np.int64))
        off += len(index)
    return {"x": np.concatenate(xs), "node_type": np.concatenate(nts), "edge_index": np.concatenate(eis, axis=1),
            "edge_attr": np.concatenate(eas), "batch": np.concatenate(bs)}


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

def _plan(n_circuits, views, pos_mask, neg_mask):
    per_pos = views // 2
    base_of = np.repeat(np.arange(n_circuits, dtype=np.int64), views)
    negative = np.tile(np.r_[np.zeros(per_pos, bool), np.ones(views - per_pos, bool)], n_circuits)
    return base_of, np.where(negative, neg_mask, pos_mask).astype(np.uint64)


def _median(fn, repeats):
    """Median wall time and median CPU time of this process (all its threads) over repeats."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        out = None
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), walls, out


def time_circml(views, subs, repeats, seed):
    from circml.datasets import circuit_library
    from circml.dice import NEGATIVE_RULES, POSITIVE_RULES, augment_batch, rule_mask
    from circml.dice.augment import _views
    cs = [e.circuit for e in circuit_library()]
    base_of, masks = _plan(len(cs), views, rule_mask(POSITIVE_RULES), rule_mask(NEGATIVE_RULES))
    _views(cs, base_of, masks, subs, seed)  # warm-up
    t_c, cpu_c, all_c, _ = _median(lambda: _views(cs, base_of, masks, subs, seed), repeats)
    per_pos = views // 2
    t_g, cpu_g, all_g, b = _median(lambda: augment_batch(cs, n_positive=per_pos, n_negative=views - per_pos,
                                                         n_subs=subs, seed=seed), repeats)
    return {"n_views": len(base_of), "circuits_seconds": t_c, "circuits_cpu_seconds": cpu_c, "circuits_all": all_c,
            "graphs_seconds": t_g, "graphs_cpu_seconds": cpu_g, "graphs_all": all_g,
            "nodes": int(b.graph.num_nodes), "edges": int(b.graph.num_edges)}


def time_circml_subprocess(views, subs, repeats, seed, threads):
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import bench_augment as b; "
            f"print(json.dumps(b.time_circml({views}, {subs}, {repeats}, {seed})))")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_reference(views, subs, repeats, seed):
    from circml.datasets import circuit_library
    from circml.dice import NEGATIVE_RULES, POSITIVE_RULES, rule_mask
    bases = [circuit_to_ref(e.circuit) for e in circuit_library()]
    base_of, masks = _plan(len(bases), views, rule_mask(POSITIVE_RULES), rule_mask(NEGATIVE_RULES))
    t_c, cpu_c, all_c, vs = _median(lambda: ref_views(bases, base_of, masks, subs, seed), repeats)
    t_g, cpu_g, all_g, batch = _median(
        lambda: ref_collate([ref_graph(v) for v in ref_views(bases, base_of, masks, subs, seed)]), repeats)
    return {"n_views": len(base_of), "circuits_seconds": t_c, "circuits_cpu_seconds": cpu_c, "circuits_all": all_c,
            "graphs_seconds": t_g, "graphs_cpu_seconds": cpu_g, "graphs_all": all_g}, vs, batch


def check_same(views, subs, seed, ref_vs, ref_batch):
    """The reference and circml made the same views and the same collated graphs."""
    from circml.datasets import circuit_library
    from circml.dice import augment_batch
    cs = [e.circuit for e in circuit_library()]
    per_pos = views // 2
    b = augment_batch(cs, n_positive=per_pos, n_negative=views - per_pos, n_subs=subs, seed=seed)
    assert len(b.views) == len(ref_vs)

    def key(d):
        p = tuple(sorted(d["params"].items()))
        return (d["name"], d["kind"], tuple(d["nets"]), d["model"], None if math.isnan(d["value"]) else d["value"],
                d["value_text"], p)
    for k, (v, r) in enumerate(zip(b.views, ref_vs)):
        mine = [key({"name": d.name, "kind": d.kind, "nets": d.nets, "model": d.model, "value": d.value,
                     "value_text": d.value_text, "params": d.params}) for d in v.devices]
        theirs = [key(d) for d in r["devices"]]
        assert mine == theirs, f"view {k}: devices differ"
        assert v.nets == r["nets"], f"view {k}: nets differ"
    g = b.graph
    assert np.array_equal(g.node_type, ref_batch["node_type"]) and np.array_equal(g.x, ref_batch["x"])
    assert np.array_equal(g.batch, ref_batch["batch"])

    def edges(ei, ea):
        return sorted(zip(ei[0].tolist(), ei[1].tolist(), ea.argmax(1).tolist()))
    assert edges(g.edge_index, g.edge_attr) == edges(ref_batch["edge_index"], ref_batch["edge_attr"])
    return len(b.views)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--views", type=int, default=16, help="views per circuit (half positive, half negative)")
    ap.add_argument("--subs", type=int, default=1, help="substitutions per view")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--python-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", type=Path, default=RESULTS / "bench_augment.json")
    args = ap.parse_args(argv)
    import networkx

    load_before = os.getloadavg()
    ref, ref_vs, ref_batch = time_reference(args.views, args.subs, args.python_repeats, args.seed)
    checked = check_same(args.views, args.subs, args.seed, ref_vs, ref_batch)
    rows = []
    for label, res in [("circml", time_circml(args.views, args.subs, args.repeats, args.seed)),
                       ("circml, OMP_NUM_THREADS=1",
                        time_circml_subprocess(args.views, args.subs, args.repeats, args.seed, 1))]:
        rows.append({"tool": label, **res})
    rows.append({"tool": f"python + networkx {networkx.__version__} (reference)", **ref})
    for r in rows:
        for what in ("circuits", "graphs"):
            r[f"{what}_views_per_s"] = r["n_views"] / r[f"{what}_seconds"]
            r[f"{what}_ratio_vs_python"] = ref[f"{what}_seconds"] / r[f"{what}_seconds"]
            # CPU time of all threads: the like-for-like measure of work for the single-threaded
            # rows, and what the ratio is when other processes share the cores (wall times then
            # depend on how much of a core each run happened to get)
            r[f"{what}_cpu_ratio_vs_python"] = ref[f"{what}_cpu_seconds"] / r[f"{what}_cpu_seconds"]
    out = {
        "views_per_circuit": args.views, "subs": args.subs, "circuits": 64, "views": rows[0]["n_views"],
        "seed": args.seed, "checked_identical_views": checked, "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "machine": platform.machine(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "python": platform.python_version(),
        "note": "views/s of the 64 library circuits, half positive, half negative views; 'circuits' = views as "
                "circuits, 'graphs' = views + DICE graphs collated into one batch; reference = pure Python rules "
                "on dict circuits + networkx graphs, verified to produce the same views and graphs; medians of "
                "wall time; *_cpu_ratio = ratio of CPU seconds (all threads)",
        "rows": rows,
    }
    print(f"{out['views']} views ({args.views} per circuit x 64, {args.subs} substitution(s)), same views checked; "
          f"load average {load_before[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'tool':40s} {'circuits/s':>11s} {'ratio':>6s} {'(cpu)':>6s} {'graphs/s':>10s} {'ratio':>6s} {'(cpu)':>6s}")
    for r in rows:
        print(f"{r['tool']:40s} {r['circuits_views_per_s']:11.0f} {r['circuits_ratio_vs_python']:6.1f} "
              f"{r['circuits_cpu_ratio_vs_python']:6.1f} {r['graphs_views_per_s']:10.0f} "
              f"{r['graphs_ratio_vs_python']:6.1f} {r['graphs_cpu_ratio_vs_python']:6.1f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
