"""DICE pretraining throughput: circml's C encoder vs the same model in PyTorch, same CPU.

One training step = forward of a batch of augmented views, DICE's contrastive loss, backward,
AdamW. Both sides run the same batch with dropout 0.2:
  dice:  hidden 512, out 256, 2 layers (DICE's size); 1024 graphs = the 64 library circuits
         x 16 views (12 positive, 4 negative), ~27k nodes and ~85k edges
  small: hidden 64, out 32, 2 layers; 64 graphs = 16 library circuits (every 4th) x 4 views
         (3 positive, 1 negative)
PyTorch runs the twin of tests/test_dice_torch.py (nn.Linear, nn.BatchNorm1d, exact GELU;
its scatter is PyTorch Geometric's ``torch_geometric.utils.scatter(reduce="sum")``, which for
sums is torch's native ``scatter_add_``; torch_scatter has no wheel for this torch, and PyG's
sum path would not use it) with torch.set_num_threads(threads); circml uses its OpenMP
threads. Steps of the contenders alternate so that load from other processes on a shared
machine hits both alike; the median of the repeats is reported.

circml takes two exact shortcuts: the node and edge encoders run on the distinct input rows
(one-hot types repeat: 9 and 5 distinct rows instead of ~10^5), and the readout is folded into
the last layer (sum pooling is linear, so the last layer's second Linears run on the pooled
graph rows instead of every node and edge row). Together they remove ~40% of the dense work.
``circml`` is the library as it ships; ``circml_same_work`` turns both off
(cm_dice_set_grouping through ctypes), so it does exactly the arithmetic PyTorch does. At
hidden <= 64 (the small size) each layer runs in row blocks with a few OpenMP regions
(csrc/nn/dice.c, "blocked layers"); both contenders do.

Also measured: the GFLOP/s of circml's GEMM (csrc/nn/gemm.c, built with setup.py's flags
from csrc/tests/test_gemm.c) on the three products of a 512 -> 512 Linear layer with as many
rows as the DICE batch has nodes and edges, PyTorch's matmul on the same shapes, on 1 and 2
threads, as a fraction of the machine's fp32 peak. The peak is
    cores x FMA units x 16 fp32 lanes x 2 flop x clock
with the clock measured by a chain of dependent register adds (one cycle each), FMA units =
the measured FMA throughput per cycle (independent 512-bit FMA chains / clock / 32 flop),
checked against the measured latency of one dependent FMA in cycles.

Each thread count runs in its own process (OMP_NUM_THREADS is read once); 2 threads is the
headline, 1 thread is also reported with CPU-time ratios, which stay meaningful when other
processes share the machine (2 spinning threads do not).

Usage: python benchmarks/bench_gnn.py [--repeats 5] [--sizes dice,small] [--threads 2,1]
(the small size runs at least 40 repeats)
Writes benchmarks/results/bench_gnn.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import time_alternating

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SIZES = {"dice": dict(hidden=512, out=256, layers=2), "small": dict(hidden=64, out=32, layers=2)}
# which library circuits, and how many positive / negative views of each (graphs = circuits x views)
BATCHES = {"dice": dict(every=1, n_positive=12, n_negative=4), "small": dict(every=4, n_positive=3, n_negative=1)}
TAUS = (0.05, 0.2, 0.05)
LR, WD = 3e-4, 0.0


def load_twin():
    """DiceTwin and dice_loss from tests/test_dice_torch.py (one definition of the twin)."""
    spec = importlib.util.spec_from_file_location("dice_torch_twin", ROOT / "tests" / "test_dice_torch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_batch(size: str, seed: int = 0):
    """The batch of ``size`` (see BATCHES) and each edge's graph."""
    from circml.datasets import circuit_library
    from circml.dice import augment_batch

    spec = BATCHES[size]
    circuits = [e.circuit for e in circuit_library()][::spec["every"]]
    b = augment_batch(circuits, n_positive=spec["n_positive"], n_negative=spec["n_negative"], n_subs=1, seed=seed)
    return b, b.graph.batch[b.graph.edge_index[0]]


def set_grouping(model, on: bool) -> None:
    """cm_dice_set_grouping on the C model inside a dice capsule (not bound in Python: it only
    exists so tests and this benchmark can make the encoders do the work row by row)."""
    import ctypes

    from circml import _core

    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    lib = ctypes.CDLL(_core.__file__)
    lib.cm_dice_set_grouping.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.cm_dice_set_grouping(get(model, b"circml.dice"), int(on))


def dense_flops(b, edge_batch, hidden: int, out: int, layers: int, grouped: bool) -> float:
    """Multiply-add flops of the step's Linear layers (forward + both backward products)."""
    g = b.graph
    N, E, G = g.num_nodes, g.num_edges, g.num_graphs
    Fn, Fe = g.x.shape[1], g.edge_attr.shape[1]
    rows_n = len(np.unique(g.x, axis=0)) if grouped else N
    rows_e = len(np.unique(g.edge_attr, axis=0)) if grouped else E
    macs = rows_n * (Fn * hidden + hidden * hidden) + rows_e * (Fe * hidden + hidden * hidden)
    macs += layers * 2 * (N + E) * hidden * hidden + G * (hidden * hidden + hidden * out)
    if grouped and layers:   # folded readout: the last layer's second Linears on G pooled rows
        macs -= (N + E) * hidden * hidden - 2 * G * hidden * hidden
    return 2.0 * 3.0 * macs   # forward, dinput, dweight (the first layers skip dinput: close enough)


class CStep:
    """One pretraining step of circml's C encoder (what DiceEncoder._step_loss does)."""

    def __init__(self, b, edge_batch, hidden, out, layers, dropout=0.2, seed=0, grouping=True):
        from circml import _core

        self.core, self.b, self.eb = _core, b, edge_batch
        g = b.graph
        self.model = _core.dice_init(g.x.shape[1], g.edge_attr.shape[1], hidden, out, layers, dropout, 1e-5, 0.1, seed)
        if not grouping:
            set_grouping(self.model, False)
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


def _plain_gine_forward(layer, scatter_sum):
    """GINELayer.forward of the twin, as a PyTorch user writes it (no retain_grad)."""
    def forward(h, e, src, dst, keep_n=None, keep_e=None):
        z = scatter_sum(h[src] * e, dst, h.shape[0])
        return (layer.node_mlp((1 + layer.eps_n) * h + z, keep_n),
                layer.edge_mlp((1 + layer.eps_e) * e + (z[src] - z[dst]), keep_e))
    return forward


class TorchStep:
    """The same step in PyTorch."""

    def __init__(self, twin_mod, b, edge_batch, hidden, out, layers, dropout=0.2):
        import torch

        self.torch = torch
        g = b.graph
        self.twin_mod = twin_mod
        self.model = twin_mod.DiceTwin(g.x.shape[1], g.edge_attr.shape[1], hidden, out, layers, dropout).train()
        for layer in self.model.layers:   # without the test-only hook that keeps intermediate grads
            layer.forward = _plain_gine_forward(layer, twin_mod.scatter_sum)
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


def batch_info(b) -> dict:
    g = b.graph
    n_circ = len(set(b.base.tolist()))
    return {"graphs": int(g.num_graphs), "nodes": int(g.num_nodes), "edges": int(g.num_edges), "circuits": n_circ,
            "views_per_circuit": int(g.num_graphs // n_circ), "negative_views": int(b.negative.sum())}


def worker(sizes, repeats: int, threads: int) -> dict:
    """Time the contenders in this process (OMP_NUM_THREADS was set by the parent)."""
    try:
        import torch

        torch.set_num_threads(threads)
        twin_mod = load_twin()
    except ImportError:
        twin_mod = None
    out = {"torch_geometric_scatter": bool(twin_mod and twin_mod.HAVE_PYG), "sizes": {}}
    for size in sizes:
        cfg = SIZES[size]
        b, edge_batch = make_batch(size)
        G = b.graph.num_graphs
        fns = {"circml": CStep(b, edge_batch, **cfg), "circml_same_work": CStep(b, edge_batch, **cfg, grouping=False)}
        if twin_mod is not None:
            fns["pytorch"] = TorchStep(twin_mod, b, edge_batch, **cfg)
        # a small step takes milliseconds: many more repeats cost nothing and steady the median
        times = time_alternating(fns, repeats if size == "dice" else max(repeats, 40), warmup=2)
        row = {"config": cfg, "batch": batch_info(b),
               "dense_gflop_per_step": {"circml": dense_flops(b, edge_batch, **cfg, grouped=True) / 1e9,
                                        "same_work": dense_flops(b, edge_batch, **cfg, grouped=False) / 1e9}}
        for k, ts in times.items():
            med = statistics.median(ts["wall"])
            fl = row["dense_gflop_per_step"]["circml" if k == "circml" else "same_work"]
            row[k] = {"step_s_median": med, "step_s_min": min(ts["wall"]), "graphs_per_s": G / med,
                      "cpu_s_median": statistics.median(ts["cpu"]), "step_s_all": ts["wall"],
                      "dense_gflops_over_whole_step": fl / med,
                      # per CPU-second: on 1 thread, what the step sustains while it runs
                      "dense_gflops_per_cpu_s": fl / statistics.median(ts["cpu"])}
        if "pytorch" in row:
            for k in ("circml", "circml_same_work"):
                sfx = "" if k == "circml" else "_same_work"
                row["speedup" + sfx] = row["pytorch"]["step_s_median"] / row[k]["step_s_median"]
                row["speedup_cpu_time" + sfx] = row["pytorch"]["cpu_s_median"] / row[k]["cpu_s_median"]
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


def run_gemm_bench(exe: Path, rows: int, reps: int = 15, hidden: int = 512, threads: int = 2,
                   cpu_time: bool = False) -> list:
    """The C bench's JSON lines. With cpu_time its clock is the process's CPU time, so a
    rate is per busy core-second: time slices lost to other processes do not count (time
    spent spinning at the end of a parallel region does)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env.pop("CPU_TIME", None)
    if cpu_time:
        env["CPU_TIME"] = "1"
    r = subprocess.run([str(exe), "bench", str(rows), str(reps), str(hidden)], capture_output=True, text=True, env=env)
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
    """What lscpu says (the clock it gives is the nominal one; the peak uses the measured one)."""
    info = {"machine": platform.machine()}
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        txt = ""
    fields = dict(re.findall(r"^([^:\n]+):\s*(.*)$", txt, re.M))
    flags = set(fields.get("Flags", "").split())
    info.update(model=fields.get("Model name", "?"), vendor=fields.get("Vendor ID", "?"),
                family=fields.get("CPU family", "?"), cores=int(fields.get("CPU(s)", os.cpu_count() or 1)),
                threads_per_core=int(fields.get("Thread(s) per core", 1)), hypervisor=fields.get("Hypervisor vendor"),
                avx512f="avx512f" in flags, avx512_bf16="avx512_bf16" in flags, fma="fma" in flags,
                simd_lanes_fp32=16 if "avx512f" in flags else 8 if "avx2" in flags else 4)
    try:
        info["nominal_mhz"] = float(re.findall(r"cpu MHz\s*:\s*([\d.]+)", Path("/proc/cpuinfo").read_text())[0])
    except (OSError, IndexError, ValueError):
        pass
    return info


def derive_peak(cpu: dict, lines: list, cpu_time: bool = False) -> None:
    """Clock, FMA units and the fp32 peak from the C bench's measurements (best of all runs:
    load from other processes only ever makes a measurement lower). Of a CPU-time run only
    the single-thread measurements count (with 2 threads each one sees both threads' time)."""
    for x in lines:
        if cpu_time and x.get("threads", 1) != 1:
            continue
        if x["what"] == "fma_peak":
            key = f"fma_loop_gflops_{x['threads']}thread"
            cpu[key] = max(x["gflops"], cpu.get(key, 0.0))
        elif x["what"] == "clock":
            key = f"clock_ghz_{x['threads']}thread"
            cpu[key] = max(x["ghz_add_chain"], cpu.get(key, 0.0))
        elif x["what"] == "fma_latency":
            cpu["fma_latency_ns"] = min(x["ns"], cpu.get("fma_latency_ns", 1e9))
    ghz, lanes = cpu.get("clock_ghz_1thread"), cpu["simd_lanes_fp32"]
    if not ghz or not cpu.get("fma_loop_gflops_1thread"):
        return
    per_cycle = cpu["fma_loop_gflops_1thread"] / (ghz * lanes * 2)
    cpu["fma_per_cycle_measured"] = per_cycle
    cpu["fma_units"] = max(1, round(per_cycle))
    if cpu.get("fma_latency_ns"):
        cpu["fma_latency_cycles"] = cpu["fma_latency_ns"] * ghz
    # the peak at the fastest clock seen (the single-core boost, normally also the all-core clock
    # here): the largest, so the most demanding, denominator for the GEMM fractions
    top = max(ghz, cpu.get(f"clock_ghz_{cpu['cores']}thread", 0.0))
    cpu["clock_ghz"] = top
    cpu["peak_gflops"] = {str(t): t * cpu["fma_units"] * lanes * 2 * top for t in range(1, cpu["cores"] + 1)}
    cpu["peak_formula"] = (f"{cpu['cores']} cores x {cpu['fma_units']} FMA units x {lanes} fp32 lanes x 2 flop x "
                           f"{top:.2f} GHz = {cpu['peak_gflops'][str(cpu['cores'])]:.0f} GFLOP/s")
    cpu["peak_method"] = ("clock: a chain of dependent register-register adds (1 cycle each), best of all runs on 1 "
                          f"and on {cpu['cores']} busy cores; FMA units: independent 512-bit FMA chains retired per cycle "
                          f"at that clock ({per_cycle:.2f} measured, rounded); check: one dependent FMA takes "
                          f"{cpu.get('fma_latency_cycles', float('nan')):.2f} cycles")


# -- main ----------------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
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
        result["torch_geometric_scatter"] = run.pop("torch_geometric_scatter")
        result["runs"][str(t)] = run
    result["scatter_in_pytorch"] = ("torch_geometric.utils.scatter (PyG " + _pyg_version() + "), reduce='sum' = torch "
                                    "scatter_add_" if result["torch_geometric_scatter"] else "torch index_add_")
    result["sizes"] = result["runs"][str(threads[0])]["sizes"]
    result["load_average_after_steps"] = os.getloadavg()

    cpu = result["cpu"]
    if not args.no_gemm:
        with tempfile.TemporaryDirectory() as tmp:
            exe = build_gemm_bench(Path(tmp))
            if exe is not None:
                gemm = {}
                bt = make_batch("dice")[0].graph
                for t in sorted(set(threads) | {1, cpu["cores"]}):
                    for label, rows in (("nodes", bt.num_nodes), ("edges", bt.num_edges)):
                        lines = run_gemm_bench(exe, rows, threads=t)
                        derive_peak(cpu, lines)
                        lines_cpu = run_gemm_bench(exe, rows, threads=t, cpu_time=True)
                        derive_peak(cpu, lines_cpu, cpu_time=True)
                        entry = {"threads": t, "rows": int(rows), "products": [x for x in lines if x["what"] == "gemm"]}
                        per_core = {x["product"]: x for x in lines_cpu if x["what"] == "gemm"}
                        for x in entry["products"]:
                            x["gflops_per_core_cpu_time_best"] = per_core[x["product"]]["gflops_best"]
                            x["gflops_per_core_cpu_time_median"] = per_core[x["product"]]["gflops_median"]
                        result["gemm_isa"] = next((x["isa"] for x in lines if x["what"] == "config"), None)
                        if torch is not None:
                            torch.set_num_threads(t)
                            entry["pytorch_matmul"] = torch_matmul_gflops(rows)
                        gemm[f"{label}_{t}thread"] = entry
                result["gemm"] = gemm
    for entry in result.get("gemm", {}).values():
        peak = cpu.get("peak_gflops", {}).get(str(entry["threads"]))
        loop = cpu.get(f"fma_loop_gflops_{entry['threads']}thread")
        # best of the repeats (other processes only ever slow a run down) and their median
        for p in list(entry["products"]) + list(entry.get("pytorch_matmul", {}).values()):
            if peak:
                p["fraction_of_peak"] = p["gflops_best"] / peak
                p["fraction_of_peak_median"] = p["gflops_median"] / peak
            if loop:
                p["fraction_of_fma_loop"] = p["gflops_best"] / loop
            if peak and "gflops_per_core_cpu_time_best" in p:
                p["fraction_of_core_peak_cpu_time"] = p["gflops_per_core_cpu_time_best"] / (peak / entry["threads"])
    result["load_average_after"] = os.getloadavg()

    report(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def _pyg_version() -> str:
    try:
        import torch_geometric

        return torch_geometric.__version__
    except ImportError:
        return "?"


def report(r: dict) -> None:
    print(f"load average before {r['load_average_before'][0]:.1f}; PyTorch {r['torch']}, scatter: "
          f"{r['scatter_in_pytorch']}")
    print(f"{'threads':<8}{'size':<7}{'graphs':>7}{'nodes':>7}{'edges':>7}{'circml g/s':>12}{'same-work':>11}"
          f"{'pytorch g/s':>13}{'speedup':>9}{'same-work':>11}{'cpu-time':>10}")
    nan = float("nan")
    for t, run in r["runs"].items():
        for size, row in run["sizes"].items():
            bt = row["batch"]
            print(f"{t:<8}{size:<7}{bt['graphs']:>7}{bt['nodes']:>7}{bt['edges']:>7}"
                  f"{row['circml']['graphs_per_s']:>12.1f}{row['circml_same_work']['graphs_per_s']:>11.1f}"
                  f"{row.get('pytorch', {}).get('graphs_per_s', nan):>13.1f}{row.get('speedup', nan):>8.2f}x"
                  f"{row.get('speedup_same_work', nan):>10.2f}x{row.get('speedup_cpu_time', nan):>9.2f}x")
    cpu = r["cpu"]
    print(f"cpu: {cpu.get('model')} (family {cpu.get('family')}), {cpu['cores']} cores; fp32 peak "
          f"{cpu.get('peak_formula', '?')}; FMA loop {cpu.get('fma_loop_gflops_1thread', nan):.0f} (1 thread), "
          f"{cpu.get('fma_loop_gflops_2thread', nan):.0f} (2 threads) GFLOP/s; {cpu.get('peak_method', '')}")
    for label, gm in r.get("gemm", {}).items():
        for p in gm["products"]:
            tm = gm.get("pytorch_matmul", {}).get(p["product"], {}).get("gflops_best", nan)
            print(f"gemm {gm['threads']} thr [{p['M']}x{p['K']}]x[{p['K']}x{p['N']}] {p['product']:<20} "
                  f"{p['gflops_best']:6.1f} GFLOP/s best ({100 * p.get('fraction_of_peak', nan):3.0f}% of peak), "
                  f"median {p['gflops_median']:6.1f} ({100 * p.get('fraction_of_peak_median', nan):3.0f}%); per busy "
                  f"core-second {p.get('gflops_per_core_cpu_time_best', nan):6.1f} "
                  f"({100 * p.get('fraction_of_core_peak_cpu_time', nan):3.0f}% of a core's peak); "
                  f"torch matmul {tm:6.1f}")


if __name__ == "__main__":
    main()
