"""The C neural-network ops and the whole DICE encoder: gradient checks in double precision
(csrc/tests/test_nn_grad.c), built with sanitizers, run serially and with 2 OpenMP threads."""

import pytest

from _cbuild import check_counts, exe_fixture, run_program

SOURCES = ["csrc/tests/test_nn_grad.c", "csrc/nn/ops.c", "csrc/nn/gemm.c", "csrc/nn/loss.c", "csrc/nn/dice.c",
           "csrc/nn/gnn.c", "csrc/util/status.c"]
exe = exe_fixture("test_nn_grad", SOURCES, ["-DCM_REAL=double"])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_nn_gradients_match_central_differences(exe, threads):
    passed, failed, _, last = check_counts(run_program(exe, threads, timeout=120))
    assert failed == 0 and passed >= 800, last
