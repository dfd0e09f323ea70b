"""The plain message-passing layers of csrc/nn/gnn.c (GIN, GCN, GraphSAGE, GAT and the encoder
block): gradient checks in double precision (csrc/tests/test_gnn_grad.c), built with
sanitizers, run serially and with 2 OpenMP threads (the C test also compares 1 and 2 threads
bitwise on a batch large enough to run in parallel)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
SOURCES = ["csrc/tests/test_gnn_grad.c", "csrc/nn/gnn.c", "csrc/nn/dice.c", "csrc/nn/ops.c", "csrc/nn/gemm.c",
           "csrc/util/status.c"]


def _build(tmp_path, extra):
    exe = tmp_path / "test_gnn_grad"
    cmd = [CC, "-std=c11", "-O1", "-g", "-Wall", "-Wno-unknown-pragmas", "-DCM_REAL=double", *extra,
           *(str(ROOT / s) for s in SOURCES), "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return exe if r.returncode == 0 else None


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("threads", ["1", "2"])
def test_gnn_gradients_match_central_differences(tmp_path, threads):
    exe = (_build(tmp_path, ["-fopenmp", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"])
           or _build(tmp_path, ["-fopenmp"]) or _build(tmp_path, []))
    assert exe is not None, "could not compile csrc/tests/test_gnn_grad.c"
    env = dict(os.environ, OMP_NUM_THREADS=threads, ASAN_OPTIONS="detect_leaks=1",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    r = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "runtime error" not in r.stderr, r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed >= 1000, last
