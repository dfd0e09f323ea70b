"""``python -m circml``: the main job, end to end.

For now: parse the built-in circuit library, build the device-level graphs (each on its own
and all in one C batch), write every circuit back and re-read it, and print a summary table.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    from . import __version__, _core
    from .datasets import circuit_library
    from .graph import graphs_from_circuits

    ap = argparse.ArgumentParser(prog="circml", description=__doc__.splitlines()[0])
    ap.add_argument("--schema", default="dice", choices=["dice", "extended"], help="graph schema")
    ap.add_argument("--family", default=None, help="only this family of the library")
    args = ap.parse_args(argv)

    lib = circuit_library(family=args.family)
    if not lib:
        print(f"no library circuits of family {args.family!r}", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    circuits = [entry.load() for entry in lib]
    t_parse = time.perf_counter() - t0
    t0 = time.perf_counter()
    graphs = graphs_from_circuits(circuits, schema=args.schema, collated=False)
    batch = graphs_from_circuits(circuits, schema=args.schema)
    t_graph = time.perf_counter() - t0
    from .circuit import parse_netlist
    roundtrip_ok = sum(parse_netlist(c.to_spice()) == c for c in circuits)

    header = f"{'circuit':32s} {'family':15s} {'domain':8s} {'devices':>7s} {'nets':>5s} {'nodes':>6s} {'edges':>6s}  kinds"
    print(f"circml {__version__} (OpenMP threads: {_core.openmp_threads()}), schema {args.schema!r}")
    print(header)
    print("-" * len(header))
    for entry, c, g in zip(lib, circuits, graphs):
        kinds = " ".join(f"{k}:{v}" for k, v in c.kind_counts().items())
        print(f"{entry.name:32s} {entry.family:15s} {entry.domain:8s} {c.n_devices:7d} {c.n_nets:5d} "
              f"{g.num_nodes:6d} {g.num_edges:6d}  {kinds}")
    print("-" * len(header))
    n_dev = sum(c.n_devices for c in circuits)
    fams = sorted({e.family for e in lib})
    print(f"{len(circuits)} circuits in {len(fams)} families, {n_dev} devices; "
          f"batch graph: {batch.num_nodes} nodes, {batch.num_edges} edges, {batch.num_graphs} graphs "
          f"(node types present: {int(np.unique(batch.node_type).size)}/{batch.x.shape[1]})")
    print(f"parse {t_parse * 1e3:.1f} ms, graphs {t_graph * 1e3:.1f} ms; "
          f"write -> re-read gives the same circuit for {roundtrip_ok}/{len(circuits)}")
    return 0 if roundtrip_ok == len(circuits) else 1


if __name__ == "__main__":
    sys.exit(main())
