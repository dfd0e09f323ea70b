"""DICE pretraining throughput: circml's C encoder vs the same model in PyTorch, same CPU.

One training step = forward of a batch of augmented views, DICE's contrastive loss, backward,
AdamW. Both sides run the same batch (dual-augmented views of every circuit in the built-in
library) with dropout 0.2, at DICE's size (hidden 512, out 256, 2 layers) and at a small
size (hidden 64, out 32). PyTorch runs the twin of tests/test_dice_torch.py (its scatter is
PyTorch Geometric's when that imports) with torch.set_num_threads(2); circml uses its OpenMP
threads (2 on the reference machine). Steps alternate between the two so that load from
other processes on a shared machine hits both alike; the median of the repeats is reported.

Also measured: the GFLOP/s of circml's GEMM (csrc/nn/gemm.c, built with setup.py's flags
from csrc/tests/test_gemm.c) on the products of a 512 -> 512 Linear layer with as many rows as
the batch has nodes and edges, PyTorch's matmul on the same shapes, and the machine's fp32
peak: theoretical (cores x FMA pipes x SIMD lanes x 2 x clock, from lscpu) and measured (a
register-only FMA loop on 1 and 2 threads).

Each thread count runs in its own process (OMP_NUM_THREADS is read once); 2 threads is the
headline, 1 thread is also reported with CPU-time ratios, which stay meaningful when other
processes share the machine (2 spinning threads do not).

Usage: python benchmarks/bench_gnn.py [--repeats 7] [--sizes dice,small] [--threads 2,1]
Writes benchmarks/results/bench_gnn.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = {"dice": dict(hidden=512, out=256, layers=2), "small": dict(hidden=64, out=32, layers=2)}
TAUS = (0.05, 0.2, 0.05)
LR, WD = 3e-4, 0.0


def load_twin():
    """DiceTwin and dice_loss from tests/test_dice_torch.py (one definition of the twin)."""
    spec = importlib.util.spec_from_file_location("dice_torch_twin", ROOT / "tests" / "test_dice_torch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_batch(seed: int = 0):
    from circml.datasets import circuit_library
    from circml.dice import augment_batch

    circuits = [e.circuit for e in circuit_library()]
    b = augment_batch(circuits, n_positive=2, n_negative=1, n_subs=1, seed=seed)
    return b, b.graph.batch[b.graph.edge_index[0]]


class CStep:
    """One pretraining step of circml's C encoder (what DiceEncoder._step_loss does)."""

    def __init__(self, b, edge_batch, hidden, out, layers, dropout=0.2, seed=0):
        from circml import _core

        self.core, self.b, self.eb = _core, b, edge_batch
        g = b.graph
        self.model = _core.dice_init(g.x.shape[1], g.edge_attr.shape[1], hidden, out, layers, dropout, 1e-5, 0.1, seed)
        self.neg = b.negative.astype(np.uint8)
        self.step_no = 0

    def __call__(self) -> float:
        c, g = self.core, self.b.graph
        self.step_no += 1
        y = c.dice_forward(self.model, g.x, g.edge_attr, g.edge_index, g.batch, self.eb, g.num_graphs, True, self.step_no)
        loss, dy, _ = c.contrastive_loss(y, self.b.base, self.neg, *TAUS)
        c.dice_zero_grad(self.model)
        c.dice_backward(self.model, dy)
        c.dice_adamw(self.model, LR, 0.9, 0.999, 1e-8, WD)
        return loss


class TorchStep:
    """The same step in PyTorch."""

    def __init__(self, twin_mod, b, edge_batch, hidden, out, layers, dropout=0.2):
        import torch

        self.torch = torch
        g = b.graph
        self.twin_mod = twin_mod
        self.model = twin_mod.DiceTwin(g.x.shape[1], g.edge_attr.shape[1], hidden, out, layers, dropout).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=WD)
        self.inputs = (torch.from_numpy(g.x), torch.from_numpy(g.edge_attr), torch.from_numpy(g.edge_index),
                       torch.from_numpy(g.batch), torch.from_numpy(edge_batch))
        self.G = g.num_graphs
        self.group, self.negative = torch.from_numpy(b.base), torch.from_numpy(b.negative)

    def __call__(self) -> float:
        self.opt.zero_grad(set_to_none=True)
        y = self.model(*self.inputs, self.G)
        loss = self.twin_mod.dice_loss(y, self.group, self.negative, *TAUS)
        loss.backward()
        self.opt.step()
        return loss.item()


def time_alternating(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Wall and CPU seconds of each step, the steps of the contenders alternating."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: {"wall": [], "cpu": []} for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t, c = time.perf_counter(), time.process_time()
            f()
            times[k]["cpu"].append(time.process_time() - c)
            times[k]["wall"].append(time.perf_counter() - t)
    return times


def worker(sizes, repeats: int, threads: int) -> dict:
    """Time both implementations in this process (OMP_NUM_THREADS was set by the parent)."""
    try:
        import torch

        torch.set_num_threads(threads)
        twin_mod = load_twin()
    except ImportError:
        twin_mod = None
    b, edge_batch = make_batch()
    g = b.graph
    out = {"batch": {"graphs": int(g.num_graphs), "nodes": int(g.num_nodes), "edges": int(g.num_edges),
                     "circuits": int(len(set(b.base.tolist()))), "views_per_circuit": 3},
           "torch_geometric_scatter": bool(twin_mod and twin_mod.HAVE_PYG), "sizes": {}}
    for size in sizes:
        cfg = SIZES[size]
        fns = {"circml": CStep(b, edge_batch, **cfg)}
        if twin_mod is not None:
            fns["pytorch"] = TorchStep(twin_mod, b, edge_batch, **cfg)
        times = time_alternating(fns, repeats)
        row = {"config": cfg}
        for k, ts in times.items():
            med = statistics.median(ts["wall"])
            row[k] = {"step_s_median": med, "step_s_min": min(ts["wall"]), "graphs_per_s": g.num_graphs / med,
                      "cpu_s_median": statistics.median(ts["cpu"]), "step_s_all": ts["wall"]}
        if "pytorch" in row:
            row["speedup"] = row["pytorch"]["step_s_median"] / row["circml"]["step_s_median"]
            row["speedup_cpu_time"] = row["pytorch"]["cpu_s_median"] / row["circml"]["cpu_s_median"]
        out["sizes"][size] = row
    return out


def run_worker(sizes, repeats: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads), "--sizes",
           ",".join(sizes), "--repeats", str(repeats)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        raise RuntimeError(f"benchmark worker failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- GEMM and peak -------------------------------------------------------------------------
def build_gemm_bench(tmp: Path) -> Path | None:
    """csrc/tests/test_gemm.c + gemm.c + ops.c with setup.py's flags (-O3, OpenMP)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = tmp / "test_gemm"
    cmd = cc.split() + ["-std=c11", "-O3", "-fopenmp", "-D_GNU_SOURCE", "-I", str(ROOT / "csrc"),
                        str(ROOT / "csrc/tests/test_gemm.c"), str(ROOT / "csrc/nn/gemm.c"), str(ROOT / "csrc/nn/ops.c"),
                        "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        print("could not build the GEMM benchmark:", r.stderr[-2000:], file=sys.stderr)
        return None
    return exe


def run_gemm_bench(exe: Path, rows: int, reps: int = 15, hidden: int = 512, threads: int = 2) -> list:
    r = subprocess.run([str(exe), "bench", str(rows), str(reps), str(hidden)], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def torch_matmul_gflops(rows: int, hidden: int = 512, reps: int = 15) -> dict:
    import torch

    a, w, dout = torch.randn(rows, hidden), torch.randn(hidden, hidden), torch.randn(rows, hidden)
    out = {}
    for name, f, fl in (("out = inp @ W^T", lambda: a @ w.T, 2.0 * rows * hidden * hidden),
                        ("dinp += dout @ W", lambda: dout @ w, 2.0 * rows * hidden * hidden),
                        ("dW += dout^T @ inp", lambda: dout.T @ a, 2.0 * rows * hidden * hidden)):
        f()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        out[name] = {"gflops_best": fl / min(ts) / 1e9, "gflops_median": fl / statistics.median(ts) / 1e9}
    return out


def cpu_info() -> dict:
    """What lscpu says, and the theoretical fp32 peak it implies."""
    info = {"machine": platform.machine()}
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        txt = ""
    fields = dict(re.findall(r"^([^:\n]+):\s*(.*)$", txt, re.M))
    flags = set(fields.get("Flags", "").split())
    cores = int(fields.get("CPU(s)", os.cpu_count() or 1))
    info.update(model=fields.get("Model name", "?"), vendor=fields.get("Vendor ID", "?"),
                family=fields.get("CPU family", "?"), cores=cores)
    mhz = None
    try:
        mhz = float(re.findall(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text())[0])
    except (OSError, IndexError, ValueError):
        pass
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    # two FMA pipes per core on the cores this targets (Zen 4/5, Skylake-SP and later server
    # parts, Haswell and later for AVX2); Zen 4 runs 512-bit FMAs as two 256-bit halves
    fma_pipes = 2
    if "avx512f" in flags and info["vendor"] == "AuthenticAMD" and info["family"] == "25":
        lanes, fma_pipes = 16, 1
    info.update(simd_lanes_fp32=lanes, fma_pipes=fma_pipes, clock_mhz=mhz, avx512f="avx512f" in flags,
                fma="fma" in flags)
    if mhz:
        info["theoretical_peak_gflops"] = cores * fma_pipes * lanes * 2 * mhz / 1e3
        info["theoretical_peak_formula"] = (f"{cores} cores x {fma_pipes} FMA pipes x {lanes} fp32 lanes x 2 flop x "
                                            f"{mhz / 1e3:.2f} GHz")
    return info


# -- main ----------------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", default="dice,small")
    ap.add_argument("--threads", default="2,1",
                    help="thread counts to run (torch.set_num_threads and OMP_NUM_THREADS); the first is the headline")
    ap.add_argument("--no-gemm", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_gnn.json"))
    args = ap.parse_args(argv)
    sizes = args.sizes.split(",")
    if args.worker:
        print(json.dumps(worker(sizes, args.repeats, int(args.threads))))
        return {}

    threads = [int(t) for t in args.threads.split(",")]
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch, torch_version = None, None
        print("PyTorch is not installed: timing circml only", file=sys.stderr)
    result = {"threads": threads[0], "cpu": cpu_info(), "torch": torch_version, "load_average_before": os.getloadavg(),
              "runs": {}}
    for t in threads:
        run = run_worker(sizes, args.repeats, t)
        result["batch"] = run.pop("batch")
        result["torch_geometric_scatter"] = run.pop("torch_geometric_scatter")
        result["runs"][str(t)] = run
    result["sizes"] = result["runs"][str(threads[0])]["sizes"]
    result["load_average_after_steps"] = os.getloadavg()

    if not args.no_gemm:
        g = result["batch"]
        with tempfile.TemporaryDirectory() as tmp:
            exe = build_gemm_bench(Path(tmp))
            if exe is not None:
                gemm = {}
                for t in threads:
                    for label, rows in (("nodes", g["nodes"]), ("edges", g["edges"])):
                        lines = run_gemm_bench(exe, rows, threads=t)
                        entry = {"threads": t, "rows": int(rows), "products": [x for x in lines if x["what"] == "gemm"]}
                        result["gemm_isa"] = next((x["isa"] for x in lines if x["what"] == "config"), None)
                        for x in lines:
                            if x["what"] == "fma_peak":
                                key = f"measured_peak_gflops_{x['threads']}thread"
                                result["cpu"][key] = max(x["gflops"], result["cpu"].get(key, 0.0))
                        if torch is not None:
                            torch.set_num_threads(t)
                            entry["pytorch_matmul"] = torch_matmul_gflops(rows)
                        gemm[f"{label}_{t}thread"] = entry
                result["gemm"] = gemm
    cpu = result["cpu"]
    if cpu.get("measured_peak_gflops_1thread"):
        # the clock a core really runs FMAs at (boost, not the nominal one lscpu gives)
        ghz = cpu["measured_peak_gflops_1thread"] / (cpu["fma_pipes"] * cpu["simd_lanes_fp32"] * 2)
        cpu["clock_ghz_implied_by_fma_loop"] = ghz
        cpu["theoretical_peak_gflops_at_that_clock"] = cpu["cores"] * cpu["fma_pipes"] * cpu["simd_lanes_fp32"] * 2 * ghz
    for entry in result.get("gemm", {}).values():
        peak = cpu.get(f"measured_peak_gflops_{entry['threads']}thread")
        for p in entry["products"]:
            if peak:
                p["fraction_of_measured_peak"] = p["gflops_median"] / peak
            if cpu.get("theoretical_peak_gflops_at_that_clock"):
                p["fraction_of_theoretical_peak"] = p["gflops_median"] / (
                    cpu["theoretical_peak_gflops_at_that_clock"] * entry["threads"] / cpu["cores"])
    result["load_average_after"] = os.getloadavg()

    report(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def report(r: dict) -> None:
    bt = r["batch"]
    print(f"batch: {bt['graphs']} graphs ({bt['circuits']} circuits x {bt['views_per_circuit']} views), "
          f"{bt['nodes']} nodes, {bt['edges']} edges; load average before {r['load_average_before'][0]:.1f}")
    print(f"{'threads':<8}{'size':<7}{'hidden':>7}{'out':>5}{'circml g/s':>12}{'pytorch g/s':>13}{'speedup':>9}"
          f"{'cpu-time ratio':>16}")
    for t, run in r["runs"].items():
        for size, row in run["sizes"].items():
            c = row["circml"]["graphs_per_s"]
            p = row.get("pytorch", {}).get("graphs_per_s", float("nan"))
            print(f"{t:<8}{size:<7}{row['config']['hidden']:>7}{row['config']['out']:>5}{c:>12.1f}{p:>13.1f}"
                  f"{row.get('speedup', float('nan')):>8.2f}x{row.get('speedup_cpu_time', float('nan')):>15.2f}x")
    cpu = r["cpu"]
    print(f"cpu: {cpu.get('model')}, theoretical fp32 peak {cpu.get('theoretical_peak_gflops', float('nan')):.0f} GFLOP/s "
          f"({cpu.get('theoretical_peak_formula', '?')}); measured FMA-loop peak "
          f"{cpu.get('measured_peak_gflops_1thread', float('nan')):.0f} (1 thread), "
          f"{cpu.get('measured_peak_gflops_2thread', float('nan')):.0f} (2 threads) GFLOP/s; at the "
          f"{cpu.get('clock_ghz_implied_by_fma_loop', float('nan')):.2f} GHz that implies, the theoretical peak is "
          f"{cpu.get('theoretical_peak_gflops_at_that_clock', float('nan')):.0f} GFLOP/s")
    for label, gm in r.get("gemm", {}).items():
        for p in gm["products"]:
            tm = gm.get("pytorch_matmul", {}).get(p["product"], {}).get("gflops_median", float("nan"))
            frac = p.get("fraction_of_measured_peak", float("nan"))
            print(f"gemm {gm['threads']} thr [{p['M']}x{p['K']}]x[{p['K']}x{p['N']}] {p['product']:<20} "
                  f"{p['gflops_median']:6.1f} GFLOP/s ({100 * frac:3.0f}% of measured peak; torch matmul {tm:6.1f})")


if __name__ == "__main__":
    main()
