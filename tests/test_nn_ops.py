"""The C neural-network ops and the whole DICE encoder: gradient checks in double precision
(csrc/tests/test_nn_grad.c), built with sanitizers, run serially and with 2 OpenMP threads."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")


def _build(tmp_path, extra):
    exe = tmp_path / "test_nn_grad"
    cmd = [CC, "-std=c11", "-O1", "-g", "-Wall", "-Wno-unknown-pragmas", "-DCM_REAL=double", *extra,
           str(ROOT / "csrc/tests/test_nn_grad.c"), str(ROOT / "csrc/nn/ops.c"), str(ROOT / "csrc/nn/gemm.c"), str(ROOT / "csrc/nn/loss.c"), str(ROOT / "csrc/nn/dice.c"), str(ROOT / "csrc/nn/gnn.c"),
           str(ROOT / "csrc/util/status.c"), "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return exe if r.returncode == 0 else None


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("threads", ["1", "2"])
def test_nn_gradients_match_central_differences(tmp_path, threads):
    exe = (_build(tmp_path, ["-fopenmp", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"])
           or _build(tmp_path, ["-fopenmp"]) or _build(tmp_path, []))
    assert exe is not None, "could not compile csrc/tests/test_nn_grad.c"
    env = dict(os.environ, OMP_NUM_THREADS=threads, ASAN_OPTIONS="detect_leaks=1")
    r = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed >= 800, last
