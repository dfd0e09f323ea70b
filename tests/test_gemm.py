"""The optimised kernels of csrc/nn against their plain references, in C:

* csrc/tests/test_gemm.c: gemm (every micro-kernel the CPU runs: AVX-512, AVX2, portable) vs
  gemm_ref on awkward shapes and all stride layouts, linear_* vs linear_*_ref, and bitwise
  equality across 1, 2 and 3 threads;
* csrc/tests/test_nn_fast.c: the vectorised GELU, dropout, batch norm, grouped rows, fused GIN
  and gin_combine kernels vs their _ref versions or the ops they fuse, and bitwise equality
  across thread counts.

Built twice: with the flags setup.py uses (-O3, OpenMP: what the package runs) and with
AddressSanitizer/UBSan (catches an out-of-bounds read in packing or an edge tile); each run
with 1 and 2 OpenMP threads.
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _cbuild import check_counts, outputs_per_thread_count, run_program

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
SOURCES = [ROOT / "csrc/nn/gemm.c", ROOT / "csrc/nn/ops.c"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer"]


def _build(tmp_path, test, extra):
    exe = tmp_path / (test + ("_asan" if "-fsanitize=address,undefined" in extra else ""))
    cmd = [CC, "-std=c11", "-Wall", "-Wno-unknown-pragmas", "-D_GNU_SOURCE", "-fopenmp", "-I", str(ROOT / "csrc"),
           *extra, str(ROOT / f"csrc/tests/{test}.c"), *map(str, SOURCES), "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    return exe if r.returncode == 0 else None


@pytest.mark.skipif(CC is None, reason="no C compiler")
@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("flavour", ["O3", "sanitized"])
@pytest.mark.parametrize("test", ["test_gemm", "test_nn_fast"])
def test_optimised_kernels_match_reference(tmp_path, test, flavour, threads):
    exe = _build(tmp_path, test, ["-O3"] if flavour == "O3" else SANITIZE)
    if exe is None and flavour == "sanitized":
        pytest.skip("the compiler cannot build with sanitizers here")
    assert exe is not None, f"could not compile csrc/tests/{test}.c"
    passed, failed, _, last = check_counts(run_program(exe, threads))
    assert failed == 0 and passed >= (2000 if test == "test_gemm" else 100), last


_STEP = r"""
import sys, numpy as np
from circml import _core
from circml.datasets import circuit_library
from circml.dice import augment_batch
b = augment_batch([e.circuit for e in circuit_library()], 2, 1, 1, seed=5)
g = b.graph
eb = g.batch[g.edge_index[0]]
# wide enough (E x 256 values, E x 256 x 256 products) that every kernel runs with a team
m = _core.dice_init(g.x.shape[1], g.edge_attr.shape[1], 256, 64, 2, 0.2, 1e-5, 0.1, 11)
y = _core.dice_forward(m, g.x, g.edge_attr, g.edge_index, g.batch, eb, g.num_graphs, True, 77)
loss, dy, _ = _core.contrastive_loss(y, b.base, b.negative.astype(np.uint8), 0.05, 0.2, 0.05)
_core.dice_zero_grad(m)
_core.dice_backward(m, dy)
_core.dice_adamw(m, 1e-3, 0.9, 0.999, 1e-8, 0.01)
a = _core.dice_arrays(m)
np.save(sys.argv[1], np.concatenate([y.ravel(), a["grads"], a["params"], a["buffers"]]))
"""


def test_dice_training_step_same_bits_for_any_thread_count(tmp_path):
    """One training step of the C encoder (forward with dropout, loss, backward, AdamW) gives the
    same bits with 1, 2 and 3 OpenMP threads: every sum has a fixed order."""
    import numpy as np

    outs = outputs_per_thread_count(tmp_path, _STEP)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])
