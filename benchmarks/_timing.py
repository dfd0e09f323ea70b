"""Timing shared by the benchmarks (each script's folder is on sys.path when it runs)."""
from __future__ import annotations

import time


def time_alternating(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Wall and CPU seconds (all threads of this process) of each call, the contenders
    alternating so that a change in the machine's load hits them alike:
    ``{name: {"wall": [...], "cpu": [...]}}``."""
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
