"""The C neural-network ops and the whole DICE encoder: gradient checks in double precision
(csrc/tests/test_nn_grad.c), built with sanitizers, run serially and with 2 OpenMP threads."""
import os
import subprocess

import pytest

from _cbuild import exe_fixture

SOURCES = ["csrc/tests/test_nn_grad.c", "csrc/nn/ops.c", "csrc/nn/gemm.c", "csrc/nn/loss.c", "csrc/nn/dice.c",
           "csrc/nn/gnn.c", "csrc/util/status.c"]
exe = exe_fixture("test_nn_grad", SOURCES, ["-DCM_REAL=double"])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_nn_gradients_match_central_differences(exe, threads):
    env = dict(os.environ, OMP_NUM_THREADS=threads, ASAN_OPTIONS="detect_leaks=1")
    r = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed >= 800, last
