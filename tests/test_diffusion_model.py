"""The conditional diffusion transformer (csrc/diffusion/model.c) and circml.sizing.DiffusionSizer.

* csrc/tests/test_diffusion_model.c: whole-model gradient check by central differences in double
  precision (built with sanitizers, run serially and with 2 OpenMP threads), the chunked training
  loss, sampling determinism, both guidance conventions; its `dump` mode must print the same
  losses and samples with 1 and 2 threads.
* A PyTorch twin (nn.Transformer(norm_first=True) plus the embeddings) loaded with the C model's
  parameters by name must agree on the forward pass and on every gradient to 1e-4 relative.
* The float32 library gives bitwise the same training losses and samples with 1 and 2 threads.
* DiffusionSizer: preprocessing (against scikit-learn where installed), the x10 augmentation's
  exact semantics, sampling determinism, DDIM with few steps, DDPM, guidance conventions,
  save/load, errors, and a learning test on a synthetic sizing problem with a known smooth map.
"""
import math
import textwrap
import warnings

import numpy as np
import pytest

from circml import _core
from circml.sizing import (DiffusionSizer, MinMaxScale, PolynomialExpansion, RelaxSpecs, SizerConfig, Standardize,
                           parse_directions)

from _cbuild import check_counts, exe_fixture, json_per_thread_count, run_program  # noqa: E402
SOURCES = ["csrc/tests/test_diffusion_model.c", "csrc/diffusion/model.c", "csrc/diffusion/schedule.c",
           "csrc/nn/mlp.c", "csrc/nn/transformer.c", "csrc/nn/ops.c", "csrc/nn/gemm.c", "csrc/util/status.c"]


# -- the C test program ----------------------------------------------------------------------
exe = exe_fixture("test_diffusion_model", SOURCES, ["-D_GNU_SOURCE", "-DCM_REAL=double"])


def _run(exe, threads, *args):
    # passive waiting: on a shared machine, threads spinning at the end of each of the many small
    # parallel regions would steal the CPU from the ones still working (results are unaffected)
    return run_program(exe, threads, *args, OMP_WAIT_POLICY="passive")


@pytest.mark.parametrize("threads,mode,least", [("1", "full", 1900), ("2", "quick", 500)])
def test_model_gradients_match_central_differences(exe, threads, mode, least):
    """Serially: 16 entries of every larger tensor (all of the small ones); with 2 threads: 4."""
    passed, failed, _, last = check_counts(_run(exe, threads, *([] if mode == "full" else [mode])))
    assert failed == 0 and passed >= least, last


def test_c_model_does_not_depend_on_thread_count(exe):
    one, two = _run(exe, "1", "dump"), _run(exe, "2", "dump")
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    assert one.stdout.count("loss") == 5
    assert one.stdout == two.stdout


def test_float_library_does_not_depend_on_thread_count(tmp_path):
    """Training losses, parameters and samples of the float32 build (SIMD kernels, chunked
    data-parallel training, samples split over threads) are bitwise equal for 1 and 2 threads."""
    script = textwrap.dedent("""
        import hashlib, json, numpy as np
        from circml import _core
        m = _core.diffusion_init(5, 9, 3, 16, 4, 32, 2, 2, 100, True, 1, 0.1, 7)
        rng = np.random.default_rng(0)
        x0 = rng.uniform(-1, 1, (100, 5)).astype(np.float32)
        y = rng.standard_normal((100, 9)).astype(np.float32)
        losses = [_core.diffusion_train_step(m, x0, y, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 0.2, 1.0, 3, s).hex()
                  for s in range(4)]
        p = _core.diffusion_arrays(m)["params"]
        xs = _core.diffusion_sample(m, y[:37], 8, 0, 0, 0.0, 0, 0.1, 1.0, 5, 0)
        xd = _core.diffusion_sample(m, y[:37], 8, 1, 0, 0.0, 1, 1.5, 1.0, 5, 0)
        print(json.dumps([losses, hashlib.sha256(p.tobytes()).hexdigest(),
                          hashlib.sha256(xs.tobytes()).hexdigest(), hashlib.sha256(xd.tobytes()).hexdigest()]))
    """)
    out = json_per_thread_count(script)
    assert out[0] == out[1]


# -- the PyTorch twin ------------------------------------------------------------------------
def twin_class(torch):
    """The C model written in PyTorch: ``Twin(D, P, S, C, NH, F, L, act="relu", dropout=0.0)``,
    nn.Transformer(norm_first=True) plus the embeddings, parameter names = the C table's. The C
    blocks drop out only inside the MLP (after the activation), so the twin's other dropouts are
    removed. Also used by tests/test_gemm_bf16.py and benchmarks/bench_diffusion.py."""
    nn = torch.nn

    class Twin(nn.Module):
        def __init__(self, D, P, S, C, NH, F, L, act="relu", dropout=0.0):
            super().__init__()
            self.D, self.S, self.C = D, S, C
            self.x_embed, self.y_embed = nn.Linear(D, D * C), nn.Linear(P, S * C)
            self.null_cond = nn.Parameter(torch.zeros(S, C))
            self.t_embed = nn.Module()
            self.t_embed.linear_1, self.t_embed.linear_2 = nn.Linear(C, C), nn.Linear(C, C)
            self.act = nn.ReLU() if act == "relu" else nn.GELU()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # nested tensors are off with norm_first: fine
                self.transformer = nn.Transformer(C, NH, L, L, F, dropout, act, batch_first=True, norm_first=True)
            for layer in list(self.transformer.encoder.layers) + list(self.transformer.decoder.layers):
                for name in ("dropout1", "dropout2", "dropout3"):
                    if hasattr(layer, name):
                        setattr(layer, name, nn.Identity())
                layer.self_attn.dropout = 0.0
                if hasattr(layer, "multihead_attn"):
                    layer.multihead_attn.dropout = 0.0
            self.out = nn.Linear(C, 1)
            # diffusers' Timesteps(C, flip_sin_to_cos=True, downscale_freq_shift=0)
            half = C // 2
            self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64)
                                                    / half).to(torch.get_default_dtype()), persistent=False)

        def forward(self, xt, t, y, drop):
            B, C = xt.shape[0], self.C
            arg = t.to(xt.dtype)[:, None] * self.freqs[None]
            temb = self.t_embed.linear_2(self.act(self.t_embed.linear_1(torch.cat([arg.cos(), arg.sin()], 1))))
            ye = self.y_embed(y).view(B, self.S, C)
            ye = torch.where(drop[:, None, None], self.null_cond[None], ye)
            h0 = self.x_embed(xt).view(B, self.D, C)
            return self.out(self.transformer(ye + temb[:, None, :], h0)).squeeze(-1)

    return Twin


def _twin_class():
    return twin_class(pytest.importorskip("torch"))


@pytest.mark.parametrize("act,B", [("relu", 6), ("gelu", 6), ("relu", 75)])
def test_matches_pytorch_twin(act, B):
    """Forward and every parameter gradient of the v-MSE agree with the twin in float64 to 1e-4
    relative; B = 75 runs the chunked (3 chunks of <= 32 rows) data-parallel loss."""
    torch = pytest.importorskip("torch")
    Twin = _twin_class()
    D, P, S, C, NH, F, L, T = 5, 7, 3, 16, 4, 24, 2, 100
    m = _core.diffusion_init(D, P, S, C, NH, F, L, L, T, True, {"gelu": 0, "relu": 1}[act], 0.0, 3)
    arr = _core.diffusion_arrays(m)
    twin = Twin(D, P, S, C, NH, F, L, act).double()
    sd = twin.state_dict()
    assert [n for n, _ in arr["tensors"]] and set(n for n, _ in arr["tensors"]) == set(sd)
    off, state = 0, {}
    for name, shape in arr["tensors"]:
        k = int(np.prod(shape))
        assert tuple(sd[name].shape) == tuple(shape), name
        state[name] = torch.tensor(arr["params"][off:off + k].reshape(shape), dtype=torch.float64)
        off += k
    twin.load_state_dict(state)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (B, D)).astype(np.float32)
    y = rng.standard_normal((B, P)).astype(np.float32)
    eps = rng.standard_normal((B, D)).astype(np.float32)
    t = rng.integers(0, T, B)
    t[:3] = [0, T - 1, T // 2]
    drop = (rng.random(B) < 0.3).astype(np.uint8)
    drop[:2] = [0, 1]
    loss = _core.diffusion_loss(m, x0, y, t, eps, drop, 0)
    acp = torch.tensor(arr["alphas_cumprod"])[t][:, None]
    X0, E = torch.tensor(x0, dtype=torch.float64), torch.tensor(eps, dtype=torch.float64)
    xt, v = acp.sqrt() * X0 + (1 - acp).sqrt() * E, acp.sqrt() * E - (1 - acp).sqrt() * X0
    pred = twin(xt, torch.tensor(t), torch.tensor(y, dtype=torch.float64), torch.tensor(drop.astype(bool)))
    ref = ((pred - v) ** 2).mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-4)
    out = _core.diffusion_forward(m, xt.float().numpy(), t, y, drop, False, 0)
    p = pred.detach().numpy()
    assert np.abs(out - p).max() <= 1e-4 * np.abs(p).max()
    off = 0
    params = dict(twin.named_parameters())
    for name, shape in arr["tensors"]:
        k = int(np.prod(shape))
        g, gt = arr["grads"][off:off + k], params[name].grad.numpy().ravel()
        off += k
        assert np.abs(gt).max() > 0, name
        assert np.abs(g - gt).max() <= 1e-4 * np.abs(gt).max(), name


# -- a synthetic sizing problem ----------------------------------------------------------------
# Three sizes (a width, a length, a bias current) map to three performances by a smooth,
# invertible function of the normalised sizes u in [-1, 1]^3: y = A u + 0.15 sin(2u) with a
# diagonally dominant A (its Jacobian is invertible everywhere), then to physical units.
A = np.array([[1.0, 0.3, 0.0], [0.0, 1.0, 0.3], [0.3, 0.0, 1.0]])
LO, HI = np.array([1e-6, 0.2e-6, 1e-6]), np.array([20e-6, 2e-6, 50e-6])
DIRECTIONS = ["<=", ">=", ">="]      # power <=, gain >=, bandwidth >=


def _u(X):
    return 2 * (X - LO) / (HI - LO) - 1


def _X(u):
    return LO + (u + 1) / 2 * (HI - LO)


def _perf(X):
    u = _u(np.asarray(X))
    y = u @ A.T + 0.15 * np.sin(2 * u)
    return np.stack([1e-6 * np.exp(y[..., 0]), 40 + 10 * y[..., 1], 1e3 * np.exp(y[..., 2])], axis=-1)


def _data(n, seed=1):
    rng = np.random.default_rng(seed)
    X = _X(rng.uniform(-1, 1, (n, 3)))
    return X, _perf(X)


U_TARGETS = np.array([[0.3, -0.4, 0.5], [-0.6, 0.2, -0.1], [0.1, 0.7, -0.6]])
SMALL = dict(channels=32, ff=64, heads=4, blocks=1, batch_size=128, timesteps=200, steps=20)


@pytest.fixture(scope="module")
def small_sizer():
    X, Y = _data(300)
    return DiffusionSizer(seed=3, epochs=2, augment=0, **SMALL).fit(X, Y, ranges=np.c_[LO, HI], progress=False)


def test_learning_lands_near_the_sizes_that_produce_the_target():
    """Fit on 1000 designs of the known map; samples conditioned on the performances of held-out
    sizes land near those sizes (the map is invertible, so they are the only answer), far closer
    than samples of the untrained model or uniform random sizes, and their performances match."""
    X, Y = _data(1000)
    cfg = dict(SMALL, augment=0, epochs=40, timesteps=1000)
    sizer = DiffusionSizer(seed=0, **cfg).fit(X, Y, ranges=np.c_[LO, HI], progress=False)
    untrained = DiffusionSizer(seed=0, **cfg).fit(X, Y, ranges=np.c_[LO, HI], epochs=0, progress=False)
    h = sizer.history["train_loss"]
    assert len(h) == 40 and np.mean(h[-5:]) < 0.5 * h[0]
    Yt = _perf(_X(U_TARGETS))
    S = sizer.sample(Yt, n=100, steps=20, guidance=0.0)                    # [3, 100, 3]
    err = np.abs(_u(S) - U_TARGETS[:, None]).mean()
    err_untrained = np.abs(_u(untrained.sample(Yt, n=100, steps=20)) - U_TARGETS[:, None]).mean()
    err_random = np.abs(np.random.default_rng(5).uniform(-1, 1, (3, 100, 3)) - U_TARGETS[:, None]).mean()
    assert err < 0.15 and err < 0.25 * min(err_untrained, err_random), (err, err_untrained, err_random)
    # the designs' performances: gain within a few dB, power and bandwidth within ~15 %
    P = _perf(S)
    assert np.median(np.abs(P[..., 1] - Yt[:, None, 1])) < 2.0
    assert np.median(np.abs(np.log(P[..., [0, 2]] / Yt[:, None, [0, 2]]))) < 0.15
    # the paper's guidance (w = 0.1 on the unconditional prediction) still lands close
    S01 = sizer.sample(Yt, n=100, steps=50, guidance=0.1)
    assert np.abs(_u(S01) - U_TARGETS[:, None]).mean() < 0.2


@pytest.mark.slow
def test_default_model_with_augmentation_meets_specs():
    """The default model on 2000 designs with the x10 augmentation and spec directions: most
    samples for a target meet all three specs, far more than random designs do."""
    X, Y = _data(2000)
    sizer = DiffusionSizer(seed=0).fit(X, Y, ranges=np.c_[LO, HI], directions=DIRECTIONS, progress=False)
    Yt = _perf(_X(U_TARGETS))
    S = sizer.sample(Yt, n=100)
    P = _perf(S)
    meets = (P[..., 0] <= Yt[:, None, 0]) & (P[..., 1] >= Yt[:, None, 1]) & (P[..., 2] >= Yt[:, None, 2])
    R = _perf(_X(np.random.default_rng(2).uniform(-1, 1, (100, 3))))
    rand = np.mean([((R[:, 0] <= y[0]) & (R[:, 1] >= y[1]) & (R[:, 2] >= y[2])).mean() for y in Yt])
    assert meets.mean(axis=1).min() > 0.3 and meets.mean() > 3 * rand, (meets.mean(axis=1), rand)


# -- sampling ----------------------------------------------------------------------------------
def test_samples_are_deterministic_and_in_range(small_sizer):
    y = _perf(_X(U_TARGETS[0]))
    a, b = small_sizer.sample(y, n=50), small_sizer.sample(y, n=50)
    assert a.shape == (50, 3) and np.array_equal(a, b)
    c = small_sizer.sample(y, n=50, seed=123)
    assert not np.array_equal(a, c)
    assert ((a >= LO) & (a <= HI)).all()
    # sample i depends on (seed, i) only: the first 7 of 50 are the 7 drawn alone
    assert np.array_equal(small_sizer.sample(y, n=7), a[:7])
    several = small_sizer.sample(_perf(_X(U_TARGETS)), n=4)
    assert several.shape == (3, 4, 3) and np.array_equal(several[0], a[:4])


def test_sample_index_streams_at_the_c_level(small_sizer):
    """A sample does not depend on the others drawn in the same call (they are split over
    threads and chunks): samples 11..18 of a call of 40 equal a call of 8 starting at index 11."""
    cond = small_sizer.condition(_perf(_X(U_TARGETS[[0] * 40])))
    m = small_sizer._model
    for sampler, mode, w in ((0, 0, 0.1), (1, 1, 2.0)):
        full = _core.diffusion_sample(m, cond, 10, sampler, 0, 0.3, mode, w, 1.0, 9, 0)
        part = _core.diffusion_sample(m, cond[11:19], 10, sampler, 0, 0.3, mode, w, 1.0, 9, 11)
        assert np.array_equal(full[11:19], part)


def test_ddim_with_few_steps_and_ddpm_run(small_sizer):
    y = _perf(_X(U_TARGETS[1]))
    for steps in (1, 2, 5):
        s = small_sizer.sample(y, n=20, steps=steps)
        assert s.shape == (20, 3) and np.isfinite(s).all()
    full = small_sizer.sample(y, n=20, steps=small_sizer.config.timesteps, sampler="ddpm")
    assert np.isfinite(full).all() and ((full >= LO) & (full <= HI)).all()
    # DDIM with eta > 0 draws noise: another stream than eta = 0
    assert not np.array_equal(small_sizer.sample(y, n=5, eta=1.0), small_sizer.sample(y, n=5, eta=0.0))
    with pytest.raises(ValueError, match="steps"):
        small_sizer.sample(y, steps=small_sizer.config.timesteps + 1)


def test_guidance_conventions_agree(small_sizer):
    """w * eps(x) + (1 - w) * eps(x|y) with w = 0.1 is the (1 + w) convention with w = -0.1;
    w = 0 is purely conditional in both; w = 1 (uncond_weight) ignores the target."""
    y = _perf(_X(U_TARGETS[2]))
    a = small_sizer.sample(y, n=30, guidance=0.1, guidance_mode="uncond_weight")
    b = small_sizer.sample(y, n=30, guidance=-0.1, guidance_mode="scale")
    np.testing.assert_allclose(_u(a), _u(b), rtol=0, atol=1e-5)   # float32 rounding only
    c0 = small_sizer.sample(y, n=30, guidance=0.0, guidance_mode="uncond_weight")
    s0 = small_sizer.sample(y, n=30, guidance=0.0, guidance_mode="scale")
    assert np.array_equal(c0, s0)
    u1 = small_sizer.sample(y, n=30, guidance=1.0)
    u2 = small_sizer.sample(_perf(_X(U_TARGETS[0])), n=30, guidance=1.0)
    assert np.array_equal(u1, u2)
    with pytest.raises(ValueError, match="guidance_mode"):
        small_sizer.sample(y, guidance_mode="cfg")


# -- preprocessing -----------------------------------------------------------------------------
def test_polynomial_expansion_and_standardize_match_scikit_learn():
    sk = pytest.importorskip("sklearn.preprocessing")
    Y = np.random.default_rng(0).standard_normal((50, 4)) * [1, 10, 0.1, 5] + [0, 3, -1, 0]
    for degree in (1, 2, 3):
        ref = sk.PolynomialFeatures(degree, include_bias=False).fit_transform(Y)
        np.testing.assert_allclose(PolynomialExpansion(degree).transform(Y), ref, rtol=1e-12)
    assert PolynomialExpansion(2).transform(Y).shape == (50, 14)     # 4 + 10 features
    np.testing.assert_allclose(Standardize().fit(Y).transform(Y), sk.StandardScaler().fit_transform(Y), atol=1e-12)


def test_relax_specs_augmentation_is_exactly_as_documented():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(20, 3))
    Y = np.c_[rng.uniform(1, 2, 20), rng.uniform(30, 40, 20), rng.uniform(-1, 1, 20)]
    aug = RelaxSpecs(copies=10, relax=0.2, directions=["<=", ">=", None])
    Xa, Ya = aug(X, Y, np.random.default_rng(1))
    assert Xa.shape == (220, 3) and Ya.shape == (220, 3)              # originals + 10 copies each
    assert np.array_equal(Xa[:20], X) and np.array_equal(Ya[:20], Y)  # originals first, unchanged
    assert np.array_equal(Xa[20:], np.repeat(X, 10, axis=0))          # sizes never change
    base = np.repeat(Y, 10, axis=0)
    d = Ya[20:] - base
    scale = 0.2 * np.abs(Y.mean(axis=0))
    assert (d[:, 0] >= 0).all() and (d[:, 0] <= scale[0]).all()      # "<=": relaxed upwards
    assert (d[:, 1] <= 0).all() and (d[:, 1] >= -scale[1]).all()     # ">=": relaxed downwards
    assert (d[:, 2] == 0).all()                                      # no direction: unchanged
    assert d[:, 0].max() > 0.9 * scale[0]                            # u ~ U(0, 1) fills the range
    # no direction at all: nothing to relax, no copies
    Xn, Yn = RelaxSpecs(10, 0.2, [None, None, None])(X, Y, rng)
    assert Xn.shape == X.shape
    assert parse_directions(["<=", ">=", None, "max", "min", 1, -1]).tolist() == [1, -1, 0, 1, -1, 1, -1]
    with pytest.raises(ValueError, match=r"directions\[0\]"):
        parse_directions(["less"])


def test_minmax_scale_roundtrip_with_log():
    s = MinMaxScale(LO, HI, log=[True, False, True])
    X = _data(10)[0]
    Z = s.transform(X)
    assert (Z >= -1).all() and (Z <= 1).all()
    np.testing.assert_allclose(s.inverse(Z), X, rtol=1e-12)
    with pytest.raises(ValueError, match="hi <= lo"):
        MinMaxScale([0, 1], [1, 1])


def test_fit_records_augmented_preprocessing_and_history():
    X, Y = _data(200)
    calls = []
    sizer = DiffusionSizer(seed=1, epochs=5, **{k: v for k, v in SMALL.items()})
    sizer.fit(X, Y, ranges=np.c_[LO, HI], directions=DIRECTIONS, val_fraction=0.2, progress=False,
              callbacks=[lambda s, e, logs: calls.append(e) or e == 2])    # stop after the third epoch
    assert calls == [0, 1, 2] and sizer.epochs_trained == 3
    assert len(sizer.history["train_loss"]) == 3 and len(sizer.history["val_loss"]) == 3
    # 160 training designs x 11 rows, batches of 128: 14 steps per epoch
    assert sizer.steps_trained == 3 * 14
    assert sizer.directions == [1.0, -1.0, -1.0]
    assert sizer.condition(Y[:5]).shape == (5, 9)                       # 3 metrics -> 3 + 6 features


# -- saving and errors -------------------------------------------------------------------------
def test_save_load_roundtrip(small_sizer, tmp_path):
    path = small_sizer.save(tmp_path / "sizer")
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as z:
        assert "x_embed.weight" in z.files and "__header__" in z.files
    loaded = DiffusionSizer.load(path)
    y = _perf(_X(U_TARGETS[0]))
    assert np.array_equal(loaded.sample(y, n=20), small_sizer.sample(y, n=20))
    assert loaded.history == small_sizer.history and loaded.config == small_sizer.config
    np.testing.assert_array_equal(loaded.ranges, small_sizer.ranges)
    for k, v in small_sizer.state_dict().items():
        assert np.array_equal(loaded.state_dict()[k], v), k
    bad = tmp_path / "other.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a circml sizer"):
        DiffusionSizer.load(bad)


def test_errors_name_the_input_at_fault(small_sizer):
    with pytest.raises(ValueError, match="3 performance column"):
        small_sizer.sample([1.0, 2.0])
    with pytest.raises(RuntimeError, match="not fitted"):
        DiffusionSizer().sample([1.0, 2.0, 3.0])
    X, Y = _data(20)
    with pytest.raises(ValueError, match="directions has 2 entries"):
        DiffusionSizer(**SMALL).fit(X, Y, directions=["<=", ">="], progress=False)
    with pytest.raises(ValueError, match=r"ranges must have shape \(3, 2\)"):
        DiffusionSizer(**SMALL).fit(X, Y, ranges=[[0, 1]], progress=False)
    with pytest.raises(ValueError, match="outside ranges in column"):
        DiffusionSizer(**SMALL).fit(X, Y, ranges=np.c_[LO, LO * 1.01], progress=False)
    with pytest.raises(ValueError, match="X has 20 designs but Y has 19"):
        DiffusionSizer(**SMALL).fit(X, Y[:-1], progress=False)
    with pytest.raises(TypeError, match="unknown SizerConfig field"):
        DiffusionSizer(layers=3)
    with pytest.raises(ValueError, match="multiple of heads"):
        SizerConfig(channels=30, heads=4)
    with pytest.raises(ValueError, match=r"t\[0\]"):
        _core.diffusion_forward(small_sizer._model, np.zeros((1, 3), np.float32), np.array([10**6]),
                                np.zeros((1, 9), np.float32), None, False, 0)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 9\)"):
        _core.diffusion_forward(small_sizer._model, np.zeros((2, 3), np.float32), np.zeros(2, np.int64),
                                np.zeros((2, 4), np.float32), None, False, 0)


def test_paper_configuration_is_one_argument_away():
    c = SizerConfig.paper()
    assert (c.blocks, c.timesteps, c.guidance, c.guidance_mode, c.epochs) == (8, 1000, 0.1, "uncond_weight", 100)
    X, Y = _data(40)
    sizer = DiffusionSizer(c, epochs=0).fit(X, Y, progress=False)
    names = [n for n, _ in _core.diffusion_arrays(sizer._model)["tensors"]]
    assert "transformer.encoder.layers.7.norm1.weight" in names and "transformer.decoder.layers.7.norm3.bias" in names
