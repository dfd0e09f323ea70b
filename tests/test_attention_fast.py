"""The float attention forward and layer norm of csrc/nn/transformer.c on every ISA path.

csrc/tests/test_attention_fast.c (built with sanitizers where the toolchain has them): the
AVX-512 short-sequence kernel (queries in lanes) and the generic AVX2/portable body against plain
double loops, over self- and cross-attention shapes with odd token counts and head widths 8..64;
out bitwise the same with att NULL (inference) as with att kept; a batch row's result independent
of the other rows; the same for 1 and 2 threads; the blocks' inference form against their plain
form; layer norm against double loops (row independence too). The matmul profile of a sampling
run is checked against the flops the model's shape implies.
"""

import numpy as np
import pytest

from _cbuild import check_counts, exe_fixture, run_program  # noqa: E402

SOURCES = ["csrc/tests/test_attention_fast.c", "csrc/nn/transformer.c", "csrc/nn/ops.c", "csrc/nn/gemm.c",
           "csrc/nn/gemm_bf16.c"]
exe = exe_fixture("test_attention_fast", SOURCES, ["-D_GNU_SOURCE"])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_attention_paths_match_double_reference(exe, threads):
    passed, failed, _, _ = check_counts(run_program(exe, threads, timeout=300))
    assert failed == 0 and passed >= 48


def test_matmul_profile_counts_the_sampling_flops():
    """Profiling on: every Linear and attention product of a sampling run is counted with the
    flops the shape implies (the bench's formula); off: nothing is counted."""
    from circml import _core
    D, P, S, C, NH, F, L, T, n, steps = 5, 7, 3, 32, 2, 48, 2, 50, 20, 4
    m = _core.diffusion_init(D, P, S, C, NH, F, L, L, T, True, 1, 0.0, 3)
    y = np.random.default_rng(0).standard_normal((n, P)).astype(np.float32)
    _core.matmul_profile(reset=True, enable=False)
    _core.diffusion_sample(m, y, steps, 0, 0, 0.0, 0, 0.1, 1.0, 0, 0)
    off = _core.matmul_profile(reset=True)
    assert not off["enabled"] and all(v["calls"] == 0 for k, v in off.items() if k != "enabled")
    try:
        _core.matmul_profile(enable=True)
        x = _core.diffusion_sample(m, y, steps, 0, 0, 0.0, 0, 0.1, 1.0, 0, 0)
        pr = _core.matmul_profile(reset=True)
    finally:
        _core.matmul_profile(enable=False)
    assert np.isfinite(x).all()
    R = 2 * n   # guided: conditional and unconditional rows
    lin = 2 * R * (2 * C * C + P * S * C + D * D * C + D * C)
    lin += L * 2 * R * S * (3 * C * C + C * C + 2 * C * F)
    lin += L * 2 * R * (D * (3 * C * C + C * C + C * C + C * C + 2 * C * F) + S * 2 * C * C)
    att = L * 4 * R * (S * S * C + D * D * C + D * S * C)
    counted_lin = sum(pr[k]["flops"] for k in ("gemm", "linear_fp32_packed", "linear_bf16_packed"))
    assert counted_lin == steps * lin
    assert pr["attention_fused"]["flops"] == steps * att
    assert pr["attention_fused"]["calls"] % (steps * 3 * L) == 0   # per sampling chunk (thread)
    for k, v in pr.items():
        if k != "enabled" and v["calls"]:
            assert v["wall_s"] > 0 and v["thread_s"] >= v["wall_s"] and v["cpu_s"] >= 0
