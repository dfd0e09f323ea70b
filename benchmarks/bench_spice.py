"""Simulations per second for an OTA testbench (op + ac + noise), measured in one run:

* circml: Testbench.evaluate in process, and circml.spice.sweep on a warmed SimulationPool of
  1 and 2 worker processes over the same design the C loop runs (netlist checking and writing,
  in-memory simulation, measures), plus end-to-end Latin-hypercube sweeps with pool start-up,
* a plain C loop over libngspice on the same netlist (benchmarks/ngspice_loop.c), with
  ngspice's default threads and with one thread (what circml uses),
* memory: RSS over 10,000 consecutive in-process simulations of new designs,
* ngspice run as a subprocess per point, netlist file in and binary raw file read back into
  NumPy arrays (what subprocess-based Python wrappers do), in one stream and in two
  concurrent streams (against the 2-worker sweep).

Usage: python benchmarks/bench_spice.py [--points 600] [--subprocess-points 40] [--memory-points 10000]
Writes benchmarks/results/bench_spice.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ANALYSES = ["op", "ac dec 20 1 10g", "noise v(out) vinp dec 20 1 10g"]


def _measure(r, design):
    """Fallback measures (module level: worker processes unpickle them)."""
    h = r.ac["out"]
    return {"gain_db": 20 * np.log10(abs(h[0])), "power": abs(r.op["vdd#branch"]) * 1.0,
            "noise": float(np.real(r.noise["inoise_spectrum"][0]))}


def ota_testbench():
    """The 5T OTA testbench of the registry, or a small one made here when that is absent."""
    try:
        from circml.spice.testbenches import get_testbench
        return get_testbench("ota_5t")
    except Exception:
        pass
    from circml.datasets import CIRCUITS_DIR
    from circml.spice import DesignParam, Testbench
    return Testbench.from_file(
        CIRCUITS_DIR / "ota_5t.sp", name="ota_5t_bench",
        params=[DesignParam("w_in", 2e-6, 20e-6, log=True), DesignParam("ibias", 5e-6, 50e-6, log=True),
                DesignParam("cl", 50e-15, 1e-12, log=True)],
        analyses=ANALYSES, measure=_measure, metrics=["gain_db", "power", "noise"])


def bench_circml_steady(tb, design, points, workers):
    """Steady state: a warmed :class:`circml.spice.SimulationPool` of ``workers`` processes (the
    default pool of ``sweep``, kept open as a sweep loop would), every point the same design
    as the C loop simulates (so the comparison is like for like)."""
    from circml.spice import SimulationPool, sweep
    table = [design] * points
    with SimulationPool(workers) as pool:
        sweep(tb, [design] * (8 * workers), executor=pool, progress=False)          # warm-up: imports, ngspice
        t0 = time.perf_counter()
        ds = sweep(tb, table, executor=pool, progress=False)
        dt = time.perf_counter() - t0
    return points / dt, int((ds.status == "ok").sum())


def bench_circml_lhs(tb, points, workers):
    """End to end: a Latin-hypercube sweep including the pool's start-up."""
    from circml.spice import sweep
    t0 = time.perf_counter()
    ds = sweep(tb, points, seed=1, workers=workers, progress=False)
    return points / (time.perf_counter() - t0), int((ds.status == "ok").sum())


def bench_in_process(tb, design, points):
    from circml.spice import Simulator
    with Simulator() as sim:
        tb.evaluate(design, sim)
        t0 = time.perf_counter()
        for _ in range(points):
            tb.evaluate(design, sim)
        return points / (time.perf_counter() - t0)


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def bench_memory(tb, n, every=1000):
    """RSS of this process over ``n`` consecutive simulations of new designs (Latin hypercube),
    in process, both ways ngspice runs: in its background thread (a time limit) and in the
    calling thread (as sweep workers do), alternating."""
    if not os.path.exists("/proc/self/statm"):
        return None
    from circml.spice import Simulator
    from circml.spice.sweep import sample_designs
    X = sample_designs(tb, n, seed=7)
    rss, ok = [], 0
    with Simulator() as sim:
        for i, x in enumerate(X):
            design = dict(zip(tb.param_names, map(float, x)))
            try:
                r = sim.run(tb.circuit(design), tb.analyses, timeout=30.0 if i % 2 else None)
                ok += bool(tb.measure(r, design))
            except Exception:  # noqa: BLE001 - a failed point still exercises the simulator
                pass
            if i % every == 0 or i == n - 1:
                rss.append((i + 1, round(_rss_mb(), 2)))
    base = rss[1][1] if len(rss) > 2 else rss[0][1]   # after the first 1000: caches warmed
    return {"simulations": n, "ok": ok, "rss_mb": rss, "growth_after_first_1000_mb": round(rss[-1][1] - base, 2)}


def build_c_loop(tmp):
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    exe = Path(tmp) / "ngspice_loop"
    subprocess.run([cc, "-O2", str(HERE / "ngspice_loop.c"), "-ldl", "-o", str(exe)], check=True)
    return exe


def bench_c_loop(exe, netlist_path, n, threads):
    out = subprocess.run([str(exe), str(netlist_path), str(n), str(threads)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["per_second"]


def read_raw(data: bytes):
    """ngspice's binary raw file -> [{vector: array}] per plot, as subprocess wrappers read it."""
    plots, pos = [], 0
    while pos < len(data):
        header = {}
        names = []
        while True:
            end = data.index(b"\n", pos)
            line = data[pos:end].decode("latin-1")
            pos = end + 1
            if line.startswith("Binary:"):
                break
            if line.startswith("Variables:"):
                continue
            if line.startswith("\t") and header.get("No. Variables") and len(names) < int(header["No. Variables"]):
                names.append(line.split()[1])
                continue
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
        nvar, npts = int(header["No. Variables"]), int(header["No. Points"])
        cplx = "complex" in header.get("Flags", "")
        width = 16 if cplx else 8
        arr = np.frombuffer(data, dtype=np.complex128 if cplx else np.float64, count=nvar * npts, offset=pos)
        arr = arr.reshape(npts, nvar)
        plots.append({name: arr[:, i].copy() for i, name in enumerate(names)})
        pos += nvar * npts * width
    return plots


def bench_subprocess(netlist_text, n, streams=1, tuned=False):
    """``streams`` concurrent loops, each running one ngspice process per point. ``tuned``:
    with OMP_WAIT_POLICY=passive. ngspice starts 2 OpenMP threads whatever OMP_NUM_THREADS
    says (its own num_threads variable), and libgomp's default spin-waiting costs each short
    run ~15 ms here (and two concurrent streams ~1 s each); wrappers run ngspice in the
    default environment, so both are measured."""
    exe = shutil.which("ngspice")
    if exe is None:
        return None
    env = dict(os.environ, OMP_WAIT_POLICY="passive") if tuned else None

    def loop(k, tmp):
        path, raw = Path(tmp) / f"point{k}.sp", Path(tmp) / f"point{k}.raw"
        for i in range(n):
            # one netlist file and one process per point, results read back from a raw file,
            # as subprocess-based wrappers do
            path.write_text(netlist_text)
            r = subprocess.run([exe, "-b", "-r", str(raw), str(path)], capture_output=True, text=True, env=env)
            if r.returncode != 0 or raw.stat().st_size == 0:
                raise RuntimeError("ngspice subprocess failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
            plots = read_raw(raw.read_bytes())
            assert len(plots) >= 3 and all(len(p) for p in plots)

    from concurrent.futures import ThreadPoolExecutor
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(streams) as ex:
        t0 = time.perf_counter()
        list(ex.map(lambda k: loop(k, tmp), range(streams)))
        return streams * n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=600)
    ap.add_argument("--subprocess-points", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory-points", type=int, default=10000,
                    help="consecutive simulations for the memory check (0: skip)")
    args = ap.parse_args()

    from circml.spice import Simulator
    tb = ota_testbench()
    design = tb.default_design()
    with Simulator() as sim:
        netlist = sim.netlist_text(tb.circuit(design), tb.analyses)
    results = {"testbench": tb.name, "analyses": tb.analyses, "points": args.points, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        net_path = Path(tmp) / "ota.sp"
        net_path.write_text(netlist)
        exe = build_c_loop(tmp)
        c_default = statistics.median(bench_c_loop(exe, net_path, args.points, 0) for _ in range(args.repeats))
        c_one = statistics.median(bench_c_loop(exe, net_path, args.points, 1) for _ in range(args.repeats))
    inproc = statistics.median(bench_in_process(tb, design, args.points) for _ in range(args.repeats))
    w1 = [bench_circml_steady(tb, design, args.points, 1) for _ in range(args.repeats)]
    w2 = [bench_circml_steady(tb, design, 2 * args.points, 2) for _ in range(args.repeats)]
    lhs1 = bench_circml_lhs(tb, args.points, 1)
    lhs2 = bench_circml_lhs(tb, 2 * args.points, 2)
    memory = bench_memory(tb, args.memory_points) if args.memory_points else None
    sub = bench_subprocess(netlist, args.subprocess_points)                      # as wrappers run it
    sub2 = bench_subprocess(netlist, args.subprocess_points, streams=2)
    sub_t = bench_subprocess(netlist, 4 * args.subprocess_points, tuned=True)     # no OpenMP spinning
    sub2_t = bench_subprocess(netlist, 4 * args.subprocess_points, streams=2, tuned=True)
    r1, r2 = statistics.median(r for r, _ in w1), statistics.median(r for r, _ in w2)
    c_best = max(c_default, c_one)
    results.update({
        "plain_c_loop_default_threads_per_s": c_default,
        "plain_c_loop_one_thread_per_s": c_one,
        "circml_in_process_per_s": inproc,
        "circml_1_worker_per_s": r1,
        "circml_2_workers_per_s": r2,
        "circml_lhs_1_worker_end_to_end_per_s": lhs1[0],
        "circml_lhs_2_workers_end_to_end_per_s": lhs2[0],
        "subprocess_per_s": sub,
        "subprocess_2_streams_per_s": sub2,
        "subprocess_tuned_per_s": sub_t,
        "subprocess_tuned_2_streams_per_s": sub2_t,
        "circml_1_worker_vs_best_c_loop": r1 / c_best,
        "circml_1_worker_vs_default_c_loop": r1 / c_default,
        "speedup_2_workers": r2 / r1,
        "circml_1_worker_vs_subprocess": (r1 / sub) if sub else None,
        "circml_2_workers_vs_2_subprocess_streams": (r2 / sub2) if sub2 else None,
        "circml_1_worker_vs_tuned_subprocess": (r1 / sub_t) if sub_t else None,
        "circml_2_workers_vs_2_tuned_subprocess_streams": (r2 / sub2_t) if sub2_t else None,
        "ok_points": [ok for _, ok in w1 + w2] + [lhs1[1], lhs2[1]],
        "memory": memory,
    })
    rows = [("plain C loop, ngspice default threads", c_default), ("plain C loop, 1 ngspice thread", c_one),
            ("circml Testbench.evaluate, in process", inproc),
            ("circml.spice.sweep, 1 worker (steady)", r1), ("circml.spice.sweep, 2 workers (steady)", r2),
            ("circml.spice.sweep LHS, 1 worker, end to end", lhs1[0]),
            ("circml.spice.sweep LHS, 2 workers, end to end", lhs2[0]),
            ("ngspice subprocess per point", sub), ("ngspice subprocess per point, 2 streams", sub2),
            ("  same, OMP_WAIT_POLICY=passive", sub_t), ("  same, 2 streams, OMP_WAIT_POLICY=passive", sub2_t)]
    print(f"{tb.name}: {' + '.join(a.split()[0] for a in tb.analyses)}, {args.points} points, {os.cpu_count()} CPUs")
    for name, rate in rows:
        print(f"  {name:48s} {rate:8.1f} sim/s" if rate else f"  {name:48s}      n/a")
    print(f"  1 worker / best plain C loop: {r1 / c_best:.2f} (/ default-threads C loop: {r1 / c_default:.2f})   "
          f"2 workers / 1 worker: {r2 / r1:.2f}   1 worker / subprocess: {(r1 / sub) if sub else float('nan'):.1f}x   "
          f"2 workers / 2 subprocess streams: {(r2 / sub2) if sub2 else float('nan'):.1f}x")
    if sub_t:
        print(f"  against the tuned subprocess (OMP_WAIT_POLICY=passive): 1 worker {r1 / sub_t:.1f}x, "
              f"2 workers / 2 streams {r2 / sub2_t:.1f}x")
    if memory:
        print(f"  memory over {memory['simulations']} consecutive simulations ({memory['ok']} measured): "
              f"RSS {memory['rss_mb'][0][1]:.1f} -> {memory['rss_mb'][-1][1]:.1f} MB, "
              f"{memory['growth_after_first_1000_mb']:+.2f} MB after the first 1000")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_spice.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
