"""The bf16 Linear (csrc/nn/gemm_bf16.c) and the diffusion model's precision="bf16" sampling.

* csrc/tests/test_gemm_bf16.c (built with sanitizers): the AVX-512 BF16 kernel and the plain
  fallback against an fp32 reference on bf16-rounded inputs over odd shapes, bf16 rounding (ties
  to even, NaN, inf, error bound), the packed-weight cache behind the hook, row and thread
  independence. Where the CPU lacks avx512_bf16 the kernel checks are skipped and the fallback
  is still tested.
* The float library: bf16 sampling stays within bf16 rounding of fp32 sampling from the same
  seed; with the kernel turned off, precision="bf16" gives bitwise the fp32 samples (the fallback);
  bf16 samples do not depend on the thread count.
* The fp32 forward at the paper's head width (64 channels / 4 heads = 16, the AVX-512 attention
  and layer-norm paths) agrees with the PyTorch twin of tests/test_diffusion_model.py.
"""
import importlib.util
import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

from circml import _core

from _cbuild import ROOT, check_counts, exe_fixture, json_per_thread_count, run_program  # noqa: E402
SOURCES = ["csrc/tests/test_gemm_bf16.c", "csrc/nn/gemm_bf16.c", "csrc/nn/gemm.c"]
HAS_BF16 = _core.gemm_bf16_info()["cpu"]


exe = exe_fixture("test_gemm_bf16", SOURCES, ["-D_GNU_SOURCE"])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_c_kernel_and_fallback_match_reference(exe, threads):
    r = run_program(exe, threads, timeout=300)
    passed, failed, skipped, _ = check_counts(r)
    assert failed == 0
    # every shape x bias runs the fallback; the kernel too where the CPU has it
    assert passed >= (130 if HAS_BF16 else 80), r.stdout[-2000:]
    assert (skipped == 0) == HAS_BF16


def test_c_peak_loops_report(exe):
    r = subprocess.run([str(exe), "peak"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS="1", ASAN_OPTIONS="detect_leaks=1"))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["what"] for x in rows] == ["fp32_fma", "bf16_dp"]
    assert (rows[1]["gflops"] > 0) == HAS_BF16


# -- the library -------------------------------------------------------------------------------
def _model(L=2, seed=3):
    # D = 17 sizing tokens, 4 condition tokens, 64 channels / 4 heads: the paper's widths
    return _core.diffusion_init(17, 14, 4, 64, 4, 128, L, L, 100, True, 1, 0.1, seed)


def _sample(m, y, precision, seed=5):
    return _core.diffusion_sample(m, y, 10, 0, 0, 0.0, 0, 0.1, 1.0, seed, 0, precision)


def _perturb(m, scale=0.05, seed=0):
    """Move every parameter off its initialisation (layer norms away from 1/0, the null condition
    from 0) so that the comparison exercises all of them."""
    p = _core.diffusion_arrays(m)["params"]
    p += scale * np.random.default_rng(seed).standard_normal(p.shape).astype(np.float32)


def test_bf16_sampling_close_to_fp32():
    m = _model()
    _perturb(m)
    y = np.random.default_rng(1).standard_normal((40, 14)).astype(np.float32)
    x32, x16 = _sample(m, y, "fp32"), _sample(m, y, "bf16")
    assert x32.shape == x16.shape == (40, 17)
    assert np.isfinite(x16).all()
    d = np.abs(x16 - x32)
    if HAS_BF16:
        assert d.max() > 0, "bf16 sampling gave bitwise the fp32 result: the kernel did not run"
    # 10 DDIM steps, x clipped to [-1, 1]: bf16 rounding (2^-8) of the Linear inputs moves
    # samples by ~1e-3, far less than the spread of the samples themselves
    assert d.max() < 0.05 and np.median(d) < 5e-3, (d.max(), np.median(d))
    assert x32.std() > 0.1


def test_bf16_fallback_is_fp32_bitwise():
    m = _model()
    _perturb(m)
    y = np.random.default_rng(2).standard_normal((20, 14)).astype(np.float32)
    x32 = _sample(m, y, "fp32")
    try:
        assert _core.gemm_bf16_set_enabled(False) is False
        assert _core.gemm_bf16_info()["available"] is False
        xf = _sample(m, y, "bf16")
    finally:
        assert _core.gemm_bf16_set_enabled(True) == HAS_BF16
    assert np.array_equal(xf, x32)


def test_bf16_samples_do_not_depend_on_thread_count_or_batch():
    script = textwrap.dedent("""
        import hashlib, json, numpy as np
        from circml import _core
        m = _core.diffusion_init(17, 14, 4, 64, 4, 128, 2, 2, 100, True, 1, 0.1, 3)
        y = np.random.default_rng(4).standard_normal((37, 14)).astype(np.float32)
        x = _core.diffusion_sample(m, y, 8, 0, 0, 0.0, 0, 0.1, 1.0, 9, 0, "bf16")
        x5 = _core.diffusion_sample(m, y[5:6], 8, 0, 0, 0.0, 0, 0.1, 1.0, 9, 5, "bf16")
        print(json.dumps([hashlib.sha256(x.tobytes()).hexdigest(), bool(np.array_equal(x5[0], x[5]))]))
    """)
    out = json_per_thread_count(script)
    assert out[0] == out[1]
    assert out[0][1], "sample 5 drawn alone differs from sample 5 of the batch"


def test_precision_is_checked():
    m = _model(L=1)
    y = np.zeros((2, 14), np.float32)
    with pytest.raises(ValueError, match="precision"):
        _sample(m, y, "fp16")


def _twin_class():
    spec = importlib.util.spec_from_file_location("_diffusion_twin", ROOT / "tests" / "test_diffusion_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod._twin_class()


def test_fp32_forward_at_paper_head_width_matches_twin():
    """hs = 16 and 17 query tokens: the AVX-512 attention (two 16-key blocks, the second masked)
    and layer-norm rows; 4 memory tokens for the cross attention."""
    torch = pytest.importorskip("torch")
    Twin = _twin_class()
    D, P, S, C, NH, F, L, T = 17, 14, 4, 64, 4, 128, 2, 100
    m = _core.diffusion_init(D, P, S, C, NH, F, L, L, T, True, 1, 0.0, 3)
    _perturb(m)
    arr = _core.diffusion_arrays(m)
    twin = Twin(D, P, S, C, NH, F, L, "relu").double()
    off, state = 0, {}
    for name, shape in arr["tensors"]:
        k = int(np.prod(shape))
        state[name] = torch.tensor(arr["params"][off:off + k].reshape(shape), dtype=torch.float64)
        off += k
    twin.load_state_dict(state)
    twin.eval()
    rng = np.random.default_rng(0)
    B = 9
    xt = rng.standard_normal((B, D)).astype(np.float32)
    y = rng.standard_normal((B, P)).astype(np.float32)
    t = rng.integers(0, T, B)
    drop = (rng.random(B) < 0.3).astype(np.uint8)
    drop[:2] = [0, 1]
    out = _core.diffusion_forward(m, xt, t, y, drop, False, 0)
    with torch.no_grad():
        ref = twin(torch.tensor(xt, dtype=torch.float64), torch.tensor(t), torch.tensor(y, dtype=torch.float64),
                   torch.tensor(drop.astype(bool))).numpy()
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max(), np.abs(out - ref).max()
