"""The C transformer layers and blocks (csrc/nn/transformer.c): gradient checks in double precision
(csrc/tests/test_transformer_grad.c, built with sanitizers, run serially and with 2 OpenMP threads),
thread-count independence, and agreement with PyTorch's nn.TransformerEncoderLayer/DecoderLayer
(norm_first=True, batch_first=True) and diffusers' get_timestep_embedding where those are installed."""
import json
import math

import numpy as np
import pytest

from _cbuild import ROOT, check_counts, exe_fixture, run_program  # noqa: E402
SOURCES = ["csrc/tests/test_transformer_grad.c", "csrc/nn/transformer.c", "csrc/nn/ops.c"]
# ops.c's Linear may run on the matrix-product kernel of gemm.c: link it when it is there
SOURCES += [s for s in ["csrc/nn/gemm.c"] if (ROOT / s).exists()]


exe = exe_fixture("test_transformer_grad", SOURCES, ["-DCM_REAL=double"])


@pytest.fixture(scope="module")
def dump(exe):
    r = run_program(exe, "1", "dump")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_transformer_gradients_match_central_differences(exe, threads):
    passed, failed, _, last = check_counts(run_program(exe, threads))
    assert failed == 0 and passed >= 4500, last


def test_blocks_do_not_depend_on_thread_count(exe):
    one, two = run_program(exe, "1", "dump"), run_program(exe, "2", "dump")
    assert one.returncode == 0 and two.returncode == 0
    assert one.stdout == two.stdout


def test_timestep_embedding_matches_formula(dump):
    for case in dump["timestep_embedding"]:
        t = np.array(case["t"])
        D, half = case["D"], case["D"] // 2
        freqs = np.exp(-math.log(case["max_period"]) * np.arange(half) / (half - case["freq_shift"]))
        arg = t[:, None] * freqs[None, :]
        emb = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)
        if case["flip_sin_to_cos"]:
            emb = np.concatenate([emb[:, half:], emb[:, :half]], axis=1)
        if D % 2:
            emb = np.pad(emb, ((0, 0), (0, 1)))
        np.testing.assert_allclose(np.array(case["out"]).reshape(len(t), D), emb, rtol=0, atol=1e-12)


def test_timestep_embedding_matches_diffusers(dump):
    pytest.importorskip("torch")
    emb_mod = pytest.importorskip("diffusers.models.embeddings")
    import torch
    for case in dump["timestep_embedding"]:
        t = torch.tensor(case["t"], dtype=torch.float64)
        ref = emb_mod.get_timestep_embedding(t, case["D"], flip_sin_to_cos=bool(case["flip_sin_to_cos"]),
                                             downscale_freq_shift=case["freq_shift"], max_period=case["max_period"])
        # diffusers builds the frequencies in float32: at t ~ 1000 the phase is off by ~1e-4
        np.testing.assert_allclose(np.array(case["out"]).reshape(len(case["t"]), case["D"]), ref.double().numpy(),
                                   rtol=0, atol=5e-4)


def _torch_block(case):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    kw = dict(d_model=case["C"], nhead=case["NH"], dim_feedforward=case["F"], dropout=0.0, activation=case["act"],
              batch_first=True, norm_first=True, dtype=torch.float64)
    layer = nn.TransformerDecoderLayer(**kw) if case["kind"] == "decoder" else nn.TransformerEncoderLayer(**kw)
    state = layer.state_dict()
    assert set(state) == set(case["params"]), "C parameter names differ from PyTorch's"
    layer.load_state_dict({k: torch.tensor(v, dtype=torch.float64).reshape(state[k].shape)
                           for k, v in case["params"].items()})
    return layer


@pytest.mark.parametrize("index", range(4))
def test_blocks_match_pytorch(dump, index):
    torch = pytest.importorskip("torch")
    case = dump["blocks"][index]
    layer = _torch_block(case)
    B, T, S, C = case["B"], case["T"], case["S"], case["C"]
    x = torch.tensor(case["inp"], dtype=torch.float64).reshape(B, T, C).requires_grad_()
    mem = torch.tensor(case["mem"], dtype=torch.float64).reshape(B, S, C).requires_grad_()
    r = torch.tensor(case["r"], dtype=torch.float64).reshape(B, T, C)
    out = layer(x, mem) if case["kind"] == "decoder" else layer(x)
    (out * r).sum().backward()
    what = f"{case['kind']} ({case['act']})"
    np.testing.assert_allclose(np.array(case["out"]), out.detach().numpy().ravel(), rtol=0, atol=1e-12, err_msg=what)
    np.testing.assert_allclose(np.array(case["dinp"]), x.grad.numpy().ravel(), rtol=0, atol=1e-12, err_msg=what)
    if case["kind"] == "decoder":
        np.testing.assert_allclose(np.array(case["dmem"]), mem.grad.numpy().ravel(), rtol=0, atol=1e-12, err_msg=what)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(np.array(case["grads"][name]), p.grad.numpy().ravel(), rtol=0, atol=1e-12,
                                   err_msg=f"{what} d{name}")
