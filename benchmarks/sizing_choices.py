"""How DiffusionSizer's defaults are chosen: feasible samples per preprocessing and overshoot.

For one testbench and one preprocessing variant, fit a DiffusionSizer (the report's settings: the
testbench's log-scaled sizes, log power / noise / bandwidth, 60 epochs by default) on the report's
2,000 cached designs, then sample 100 designs for each of 6 targets and simulate every one in
ngspice. The 6 targets are the report's 2 and 4 more chosen by the same rule
(``choose_targets(Y, 8, min_separation=0.15)``, the first 4 that are not the report's). Defaults
are chosen on the 4 **extra** targets, so that the choice is not fitted to the report's own.

    python benchmarks/sizing_choices.py ota_telescopic std_robust \\
        --config '{"relax_units": "std", "robust_metrics": true}' --overshoot 0 0.25 0.5

writes ``benchmarks/results/sizing_choices/<testbench>_<name>.json`` (feasible count per target
and overshoot, each spec's pass rate) and prints one line per overshoot. Set OMP_NUM_THREADS to
keep it to a core; one run takes 4-5 minutes of one core.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def targets(Y: np.ndarray) -> np.ndarray:
    """The report's 2 targets, then 4 more Pareto targets by the same rule."""
    from circml.sizing.report import choose_targets
    report, _ = choose_targets(Y, 2, 0.02)
    more, _ = choose_targets(Y, 8, 0.02, min_separation=0.15)
    extra = [t for t in more if not any(np.allclose(t, r) for r in report)][:4]
    return np.concatenate([report, np.array(extra)])


def run(testbench: str, name: str, config: dict, overshoots, n_samples: int = 100, seed: int = 0,
        cache_dir: Path = ROOT / "benchmarks" / "_data" / "sizing") -> dict:
    from circml.sizing import DiffusionSizer
    from circml.sizing.report import DIRECTIONS, LOG_METRICS, dataset, log_flags, meets, simulate
    from circml.spice.testbenches import get_testbench

    tb = get_testbench(testbench)
    X, Y, _ = dataset(tb, 2000, cache_dir=cache_dir, progress=False)
    T = targets(Y)
    ranges = np.array([[p.low, p.high] for p in tb.params])
    t0 = time.perf_counter()
    sizer = DiffusionSizer(**{"seed": seed, "log_sizes": log_flags(tb), "log_metrics": LOG_METRICS, **config})
    sizer.fit(X, Y, ranges=ranges, directions=DIRECTIONS, progress=False)
    out = {"testbench": testbench, "name": name, "config": config, "train_s": time.perf_counter() - t0,
           "final_loss": sizer.history["train_loss"][-1], "targets": T.tolist(), "runs": []}
    for o in overshoots:
        feasible, rates = [], []
        for t in T:
            Ys, _ = simulate(tb, sizer.sample(t, n=n_samples, overshoot=o), workers=1)
            feasible.append(int(meets(Ys, t).sum()))
            rates.append([float(np.mean(Ys[:, j] <= t[j] if d == "<=" else Ys[:, j] >= t[j]))
                          for j, d in enumerate(DIRECTIONS)])
        out["runs"].append({"overshoot": o, "feasible": feasible, "report_targets": sum(feasible[:2]),
                            "extra_targets": sum(feasible[2:]), "spec_pass_rates": rates})
        print(f"{testbench} {name} overshoot {o}: feasible per target {feasible} "
              f"(report's {sum(feasible[:2])}, extra {sum(feasible[2:])})", flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("testbench")
    p.add_argument("name", help="a label for the variant (the output file's suffix)")
    p.add_argument("--config", default="{}", help="DiffusionSizer overrides as JSON")
    p.add_argument("--overshoot", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results" / "sizing_choices"))
    a = p.parse_args(argv)
    res = run(a.testbench, a.name, json.loads(a.config), a.overshoot, a.samples)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{a.testbench}_{a.name}.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
