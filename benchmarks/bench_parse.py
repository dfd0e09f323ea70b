"""Netlist reading throughput: file on disk -> circml.read_netlist -> circml.graphs_from_circuits,
in devices per second, against a pure-Python SPICE netlist parser (spicelib's SpiceEditor).

The input is a generated flat netlist (default 10^6 devices: NMOS and PMOS with w/l/m, R and
C; a quarter as many nets as devices), written once into benchmarks/_data/. Rows:

* circml: the default reader (OpenMP threads) and graph builder, end to end;
* circml, reference: the plain serial reader and per-circuit graph builder the default ones
  are tested against (``reference=True`` in ``circml._core``), for the speed-up;
* spicelib: ``SpiceEditor(path)`` and, for every component, its nodes, value and parameters
  (what a graph builder needs), plus a net index. It parses only (no graph), so the ratio is
  conservative. It is too slow for 10^6 devices: it reads the first 10^5 devices of the same
  netlist (``--python-devices``) and the ratio compares devices per second.

Each time is the median of ``--repeats`` runs (spicelib: ``--python-repeats``). The circml rows
also give the CPU time (user + system, all threads) per run and the process's peak RSS, and
the JSON the load average at the start: wall times on a shared machine say little alone.
Usage: python benchmarks/bench_parse.py [--devices 1000000] [--python-devices 100000]
Writes benchmarks/results/bench_parse.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data"
RESULTS = HERE / "results"
GENERATOR_VERSION = 1


def netlist_lines(n_devices: int, seed: int = 0):
    """Lines of the benchmark netlist: title, two .model cards, n_devices devices, .end.

    40 % NMOS (bulk 0), 40 % PMOS (bulk vdd) with w, l and m; 10 % resistors, 10 % capacitors
    to ground; terminals drawn uniformly from n_devices // 4 nets. Device letters are upper
    case, as netlisters write them, so the reader's lowercasing is part of the work."""
    rng = np.random.default_rng(seed)
    n_nets = max(4, n_devices // 4)
    kind = rng.choice(4, size=n_devices, p=[0.4, 0.4, 0.1, 0.1])
    t = rng.integers(0, n_nets, size=(n_devices, 3))
    w = rng.integers(1, 200, size=n_devices) * 0.1
    ln = rng.integers(1, 40, size=n_devices) * 0.05
    m = rng.integers(1, 8, size=n_devices)
    val = rng.integers(1, 1000, size=n_devices)
    yield f"* circml bench_parse: {n_devices} devices, {n_nets} nets, seed {seed}"
    yield ".model nch nmos level=1 vto=0.5"
    yield ".model pch pmos level=1 vto=-0.5"
    for i in range(n_devices):
        k = kind[i]
        a, b, c = t[i]
        if k == 0:
            yield f"M{i} n{a} n{b} n{c} 0 nch w={w[i]:.1f}u l={ln[i]:.2f}u m={m[i]}"
        elif k == 1:
            yield f"M{i} n{a} n{b} n{c} vdd pch w={w[i]:.1f}u l={ln[i]:.2f}u m={m[i]}"
        elif k == 2:
            yield f"R{i} n{a} n{b} {val[i] / 10:g}k"
        else:
            yield f"C{i} n{a} 0 {val[i]}f"
    yield ".end"


def write_netlist(n_devices: int, seed: int = 0, prefix_of: int | None = None) -> Path:
    """The netlist file (cached). prefix_of=N: the first n_devices devices of the N-device netlist."""
    DATA.mkdir(parents=True, exist_ok=True)
    total = prefix_of or n_devices
    name = f"flat_{total}_s{seed}_v{GENERATOR_VERSION}" + (f"_first{n_devices}" if prefix_of else "") + ".sp"
    path = DATA / name
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        lines = netlist_lines(total, seed)
        for i, line in enumerate(lines):
            if prefix_of and i == 3 + n_devices:
                f.write(".end\n")
                break
            f.write(line + "\n")
    os.replace(tmp, path)
    return path


def _median_time(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        out = None
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def bench_circml(path: Path, repeats: int, reference: bool):
    import circml
    from circml import _core
    from circml.circuit import Circuit

    def run():
        if reference:
            c = Circuit(_core.read(os.fspath(path), reference=True), source=os.fspath(path))
            t1 = time.perf_counter()
            g = _core.graph_batch([c._handle], None, reference=True)
        else:
            c = circml.read_netlist(path)
            t1 = time.perf_counter()
            g = circml.graphs_from_circuits([c])
        return c.n_devices, c.n_nets, t1, g["x"].shape[0] if isinstance(g, dict) else g.num_nodes

    def cpu_seconds():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    parse_times, graph_times, totals, cpus = [], [], [], []
    info = None
    for _ in range(repeats):
        c0 = cpu_seconds()
        t0 = time.perf_counter()
        n_dev, n_nets, t1, n_nodes = run()
        t2 = time.perf_counter()
        cpus.append(cpu_seconds() - c0)
        parse_times.append(t1 - t0)
        graph_times.append(t2 - t1)
        totals.append(t2 - t0)
        info = (n_dev, n_nets, n_nodes)
    return {"devices": info[0], "nets": info[1], "nodes": info[2], "seconds": statistics.median(totals),
            "parse_seconds": statistics.median(parse_times), "graph_seconds": statistics.median(graph_times),
            "cpu_seconds": statistics.median(cpus), "all_seconds": totals,
            # ru_maxrss is in KiB on Linux (bytes on macOS); the peak of the process so far
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1 << 10)}


def bench_spicelib(path: Path, repeats: int):
    from spicelib import SpiceEditor
    from spicelib.editor.spice_components import SpiceComponent

    def run():
        ed = SpiceEditor(os.fspath(path))
        n, nets = 0, {}
        for comp in ed.netlist:
            if isinstance(comp, SpiceComponent):
                ports = comp.port_list()
                comp.params
                comp.value_str
                for p in ports:
                    nets.setdefault(p, len(nets))
                n += 1
        return n, len(nets)

    med, times, (n, n_nets) = _median_time(run, repeats)
    return {"devices": n, "nets": n_nets, "seconds": med, "all_seconds": times}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1_000_000)
    ap.add_argument("--python-devices", type=int, default=100_000,
                    help="devices the pure-Python parser reads (a prefix of the same netlist)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--python-repeats", type=int, default=3)
    ap.add_argument("--no-reference", action="store_true", help="skip the serial reference reader")
    ap.add_argument("--output", type=Path, default=RESULTS / "bench_parse.json")
    args = ap.parse_args(argv)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    path = write_netlist(args.devices)
    print(f"netlist: {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    rows = []
    r = bench_circml(path, args.repeats, reference=False)
    rows.append(("circml", r))
    if not args.no_reference:
        rows.append(("circml, reference reader", bench_circml(path, max(1, min(args.repeats, 3)), reference=True)))
    py = None
    try:
        import spicelib  # noqa: F401
    except ImportError:
        print("spicelib is not installed (pip install -e .[bench]): no Python comparison", file=sys.stderr)
    else:
        n_py = min(args.python_devices, args.devices)
        ppath = path if n_py == args.devices else write_netlist(n_py, prefix_of=args.devices)
        py = bench_spicelib(ppath, args.python_repeats)
        from importlib.metadata import version
        rows.append((f"spicelib {version('spicelib')} SpiceEditor", py))
    base = py["devices"] / py["seconds"] if py else None

    print(f"\n{'tool':32s} {'devices':>9s} {'seconds':>8s} {'(parse':>7s} {'graph)':>7s} {'cpu s':>7s} {'devices/s':>11s} {'ratio':>7s}")
    table = []
    for name, r in rows:
        rate = r["devices"] / r["seconds"]
        ratio = rate / base if base else None
        parse = f"{r['parse_seconds']:7.3f}" if "parse_seconds" in r else f"{'-':>7s}"
        graph = f"{r['graph_seconds']:7.3f}" if "graph_seconds" in r else f"{'-':>7s}"
        cpu = f"{r['cpu_seconds']:7.3f}" if "cpu_seconds" in r else f"{'-':>7s}"
        print(f"{name:32s} {r['devices']:9d} {r['seconds']:8.3f} {parse} {graph} {cpu} {rate:11.4g} "
              f"{ratio if ratio else float('nan'):7.1f}")
        table.append({"tool": name, **r, "devices_per_s": rate, "ratio_vs_python": ratio})
    out = {
        "netlist": path.name, "devices": args.devices, "python_devices": py["devices"] if py else None,
        "cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "machine": platform.machine(), "python": platform.python_version(),
        "load_average_1min_at_start": load[0] if load else None,
        "note": "end to end: file -> read_netlist -> graphs_from_circuits; spicelib parses only (no graph), "
                "on a prefix of the same netlist; ratio = devices/s over spicelib's devices/s",
        "rows": table,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
