"""The DICE step's shortcuts and speed-minded kernels keep their results.

- With grouping on (the default) the encoders run on distinct rows and the readout is folded
  (the last layer's second Linears run on the pooled rows, csrc/nn/dice.c); off, everything
  runs row by row as PyTorch does. Both must give the same embeddings, gradients and AdamW
  step to float rounding, with dropout and without.
- The serial row-block kernels behind the blocked layers equal the whole-array ops
  (csrc/tests/test_dice_rows.c, built with sanitizers where the toolchain has them).
- A whole pretraining step at the small benchmark size (hidden 64, where most kernels run on
  the calling thread or a small team) gives the same bits for 1, 2 and 3 OpenMP threads.
"""
from __future__ import annotations

import ctypes
import os
import subprocess

import numpy as np
import pytest
from _cbuild import exe_fixture, outputs_per_thread_count

from circml import _core

TAUS = (0.05, 0.2, 0.05)


def _set_grouping(model, on: bool) -> None:
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    lib = ctypes.CDLL(_core.__file__)
    lib.cm_dice_set_grouping.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.cm_dice_set_grouping(get(model, b"circml.dice"), int(on))


def _batch(every: int = 4, seed: int = 0):
    from circml.datasets import circuit_library
    from circml.dice import augment_batch

    circuits = [e.circuit for e in circuit_library()][::every]
    b = augment_batch(circuits, n_positive=3, n_negative=1, n_subs=1, seed=seed)
    return b, b.graph.batch[b.graph.edge_index[0]]


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _step(model, b, eb, seed):
    g = b.graph
    y = _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, eb, g.num_graphs, True, seed)
    loss, dy, _ = _core.contrastive_loss(y, b.base, b.negative.astype(np.uint8), *TAUS)
    _core.dice_zero_grad(model)
    _core.dice_backward(model, dy)
    grads = _core.dice_arrays(model)["grads"].copy()
    _core.dice_adamw(model, 1e-3, 0.9, 0.999, 1e-8, 0.01)
    return y, loss, grads, _core.dice_arrays(model)["params"].copy()


@pytest.mark.parametrize("hidden,dropout", [(64, 0.0), (64, 0.2), (128, 0.2)])
def test_grouped_and_folded_step_matches_row_by_row(hidden, dropout):
    b, eb = _batch()
    g = b.graph
    dims = (g.x.shape[1], g.edge_attr.shape[1], hidden, hidden // 2, 2, dropout, 1e-5, 0.1, 5)
    fast, plain = _core.dice_init(*dims), _core.dice_init(*dims)
    _set_grouping(plain, False)
    # one step: AdamW's sign-like first update makes later steps differ where gradients are noise
    yf, lf, gf, pf = _step(fast, b, eb, 101)
    yp, lp, gp, pp = _step(plain, b, eb, 101)
    assert _rel(yf, yp) < 1e-5, ("embeddings", _rel(yf, yp))
    assert abs(lf - lp) < 1e-5 * max(1.0, abs(lp)), (lf, lp)
    # a few gradients are exactly zero in exact arithmetic (biases feeding a batch norm): the
    # whole vector's error is measured against its norm
    assert _rel(gf, gp) < 1e-4, ("gradients", _rel(gf, gp))
    # AdamW's first steps move each parameter by ~lr * sign(g): a gradient near rounding noise
    # (whole tensors of them: biases feeding a batch norm; single small entries elsewhere)
    # can flip sign, so the parameters are compared where both gradients clearly agree
    real = (np.sign(gf) == np.sign(gp)) & (np.abs(gp) > 1e-3 * np.abs(gp).max())
    assert real.mean() > 0.5
    assert _rel(pf[real], pp[real]) < 1e-5, ("parameters after AdamW", _rel(pf[real], pp[real]))


def test_grouped_and_folded_eval_forward_matches_row_by_row():
    b, eb = _batch()
    g = b.graph
    dims = (g.x.shape[1], g.edge_attr.shape[1], 64, 32, 3, 0.2, 1e-5, 0.1, 9)
    fast, plain = _core.dice_init(*dims), _core.dice_init(*dims)
    _set_grouping(plain, False)
    _step(fast, b, eb, 3)   # move the parameters and running statistics off their init values
    src, dst = _core.dice_arrays(fast), _core.dice_arrays(plain)   # views of the C blocks
    dst["params"][:] = src["params"]
    dst["buffers"][:] = src["buffers"]
    yf = _core.dice_forward(fast, g.x, g.edge_attr, g.edge_index, g.batch, eb, g.num_graphs, False, 0)
    yp = _core.dice_forward(plain, g.x, g.edge_attr, g.edge_index, g.batch, eb, g.num_graphs, False, 0)
    assert _rel(yf, yp) < 1e-5


_STEP = r"""
import sys, numpy as np
from circml import _core
from circml.datasets import circuit_library
from circml.dice import augment_batch
b = augment_batch([e.circuit for e in circuit_library()][::4], 3, 1, 1, seed=2)
g = b.graph
eb = g.batch[g.edge_index[0]]
m = _core.dice_init(g.x.shape[1], g.edge_attr.shape[1], 64, 32, 2, 0.2, 1e-5, 0.1, 4)
out = []
for step in (1, 2):
    y = _core.dice_forward(m, g.x, g.edge_attr, g.edge_index, g.batch, eb, g.num_graphs, True, step)
    loss, dy, _ = _core.contrastive_loss(y, b.base, b.negative.astype(np.uint8), 0.05, 0.2, 0.05)
    _core.dice_zero_grad(m)
    _core.dice_backward(m, dy)
    _core.dice_adamw(m, 1e-3, 0.9, 0.999, 1e-8, 0.01)
    a = _core.dice_arrays(m)
    out += [y.ravel(), a["grads"].copy(), a["params"].copy(), a["buffers"].copy()]
np.save(sys.argv[1], np.concatenate(out))
"""


def test_small_step_same_bits_for_any_thread_count(tmp_path):
    outs = outputs_per_thread_count(tmp_path, _STEP)
    assert np.isfinite(outs[0]).all()
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(outs[0], outs[2])


_rows_exe = exe_fixture("test_dice_rows", ["csrc/tests/test_dice_rows.c", "csrc/nn/ops.c", "csrc/nn/gemm.c"])


def test_row_kernels_match_whole_ops(_rows_exe):
    """csrc/tests/test_dice_rows.c: the row-block kernels of the blocked layers reproduce the
    whole-array ops, and AdamW's vector path the portable one (every path this CPU runs)."""
    r = subprocess.run([str(_rows_exe)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = r.stdout.strip().splitlines()[-1]
    passed, failed = int(last.split()[0]), int(last.split()[2])
    assert failed == 0 and passed >= 40, last
