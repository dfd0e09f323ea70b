"""The baselines of circml.sizing: DM-MLP (the C diffusion model's MLP backbone), the inverse ANN
(csrc/nn/mlp.c) and the evolutionary optimiser with ngspice in the loop.

* csrc/tests/test_mlp_grad.c: the MLP layer pair, the regression model and the whole DM-MLP model
  against central differences in double precision (sanitizers; 1 and 2 OpenMP threads).
* PyTorch twins (when torch is installed) loaded by parameter name agree on the loss and every
  gradient, for DM-MLP (chunked data-parallel loss included) and for the inverse ANN.
* Both learned baselines recover the known inverse of a synthetic sizing problem (the map of
  tests/test_diffusion_model.py), and save/load round trips give the same samples.
* EvolutionarySizer finds a feasible design of the real ota_5t testbench for loose specs, counts
  its simulator calls exactly (a counting measure), and the design it returns meets the specs
  when simulated again; a budget stops it at exactly that many calls.
"""
import dataclasses
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from circml import _core
from circml.sizing import (ANNConfig, DiffusionMLPSizer, DiffusionSizer, EvolutionarySizer, InverseANNSizer,
                           MLPSizerConfig, spec_violation)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_diffusion_model import DIRECTIONS, HI, LO, U_TARGETS, _data, _perf, _u, _X  # noqa: E402

from _cbuild import check_counts, exe_fixture, json_per_thread_count, run_program  # noqa: E402
SOURCES = ["csrc/tests/test_mlp_grad.c", "csrc/nn/mlp.c", "csrc/diffusion/model.c", "csrc/diffusion/schedule.c",
           "csrc/nn/transformer.c", "csrc/nn/ops.c", "csrc/nn/gemm.c", "csrc/util/status.c"]


# -- the C test program ----------------------------------------------------------------------
exe = exe_fixture("test_mlp_grad", SOURCES, ["-D_GNU_SOURCE", "-DCM_REAL=double"])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_mlp_and_dm_mlp_gradients_match_central_differences(exe, threads):
    passed, failed, _, last = check_counts(run_program(exe, threads, OMP_WAIT_POLICY="passive"))
    assert failed == 0 and passed >= 1400, last


# -- PyTorch twins -----------------------------------------------------------------------------
def _load_twin(torch, twin, arrays):
    sd = twin.state_dict()
    assert set(n for n, _ in arrays["tensors"]) == set(sd)
    off, state = 0, {}
    for name, shape in arrays["tensors"]:
        k = int(np.prod(shape))
        assert tuple(sd[name].shape) == tuple(shape), name
        state[name] = torch.tensor(arrays["params"][off:off + k].reshape(shape), dtype=torch.float64)
        off += k
    twin.load_state_dict(state)


@pytest.mark.parametrize("act,B", [("relu", 6), ("gelu", 75)])
def test_dm_mlp_matches_pytorch_twin(act, B):
    """Loss and every gradient of the DM-MLP v-loss agree with an nn.Module twin in float64
    (B = 75 runs the chunked data-parallel loss)."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    D, P, C, H, L, T = 4, 9, 16, 24, 3, 100

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.null_cond = nn.Parameter(torch.zeros(P))
            self.t_embed = nn.Module()
            self.t_embed.linear_1, self.t_embed.linear_2 = nn.Linear(C, C), nn.Linear(C, C)
            self.act = nn.ReLU() if act == "relu" else nn.GELU()
            self.mlp = nn.ModuleList([nn.Linear(D + C + P, H)] + [nn.Linear(H, H) for _ in range(L - 1)]
                                     + [nn.Linear(H, D)])

        def forward(self, xt, t, y, drop):
            half = C // 2
            freqs = torch.exp(-np.log(10000.0) * torch.arange(half, dtype=xt.dtype) / half)
            arg = t.to(xt.dtype)[:, None] * freqs[None]
            temb = self.t_embed.linear_2(self.act(self.t_embed.linear_1(torch.cat([arg.cos(), arg.sin()], 1))))
            cond = torch.where(drop[:, None], self.null_cond[None], y)
            h = torch.cat([xt, temb, cond], 1)
            for layer in self.mlp[:-1]:
                h = torch.relu(layer(h))
            return self.mlp[-1](h)

    m = _core.diffusion_init(D, P, 1, C, 1, 1, 1, 1, T, True, {"gelu": 0, "relu": 1}[act], 0.0, 3, 1, L, H)
    arr = _core.diffusion_arrays(m)
    arr["params"][:P] = np.random.default_rng(1).uniform(-0.5, 0.5, P)   # a non-zero null condition
    twin = Twin().double()
    _load_twin(torch, twin, arr)
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
    params = dict(twin.named_parameters())
    off = 0
    for name, shape in arr["tensors"]:
        k = int(np.prod(shape))
        g, gt = arr["grads"][off:off + k], params[name].grad.numpy().ravel()
        off += k
        assert np.abs(gt).max() > 0, name
        assert np.abs(g - gt).max() <= 1e-4 * np.abs(gt).max(), name


def test_inverse_ann_mlp_matches_pytorch_twin():
    torch = pytest.importorskip("torch")
    widths = [14, 32, 20, 5]
    m = _core.mlp_init(widths, 0.0, 4)
    arr = _core.mlp_arrays(m)
    assert arr["widths"] == widths
    layers = [torch.nn.Linear(a, b).double() for a, b in zip(widths[:-1], widths[1:])]
    off = 0
    for lin in layers:
        for prm in (lin.weight, lin.bias):
            k = prm.numel()
            prm.data = torch.tensor(arr["params"][off:off + k].reshape(prm.shape), dtype=torch.float64)
            off += k
    assert off == arr["params"].size
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 14)).astype(np.float32)
    y = rng.uniform(-1, 1, (40, 5)).astype(np.float32)
    loss = _core.mlp_loss(m, x, y, 0)
    h = torch.tensor(x, dtype=torch.float64)
    for lin in layers[:-1]:
        h = torch.relu(lin(h))
    out = layers[-1](h)
    ref = ((out - torch.tensor(y, dtype=torch.float64)) ** 2).mean()
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    np.testing.assert_allclose(_core.mlp_predict(m, x), out.detach().numpy(), rtol=0, atol=1e-5)
    gt = np.concatenate([p.grad.numpy().ravel() for lin in layers for p in (lin.weight, lin.bias)])
    assert np.abs(arr["grads"] - gt).max() <= 1e-4 * np.abs(gt).max()


def test_mlp_errors():
    with pytest.raises(ValueError, match="widths"):
        _core.mlp_init([3], 0.0, 0)
    with pytest.raises(ValueError, match="positive"):
        _core.mlp_init([3, 0, 2], 0.0, 0)
    with pytest.raises(ValueError, match="dropout"):
        _core.mlp_init([3, 4, 2], 1.0, 0)
    m = _core.mlp_init([3, 4, 2], 0.0, 0)
    with pytest.raises(ValueError, match="x must have shape"):
        _core.mlp_predict(m, np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="y must have shape"):
        _core.mlp_train_step(m, np.zeros((5, 3), np.float32), np.zeros((4, 2), np.float32), 1e-3, 0.9, 0.999, 1e-8,
                             0.0, 0)
    with pytest.raises(ValueError, match="mlp_layers"):
        _core.diffusion_init(3, 4, 1, 8, 1, 1, 1, 1, 50, True, 1, 0.0, 0, 1, 0, 8)
    with pytest.raises(ValueError, match="backbone"):
        _core.diffusion_init(3, 4, 1, 8, 1, 1, 1, 1, 50, True, 1, 0.0, 0, 5, 2, 8)


def test_dm_mlp_training_does_not_depend_on_thread_count():
    script = textwrap.dedent("""
        import hashlib, json, numpy as np
        from circml import _core
        m = _core.diffusion_init(5, 9, 1, 16, 1, 1, 1, 1, 100, True, 1, 0.1, 7, 1, 3, 64)
        rng = np.random.default_rng(0)
        x0 = rng.uniform(-1, 1, (100, 5)).astype(np.float32)
        y = rng.standard_normal((100, 9)).astype(np.float32)
        losses = [_core.diffusion_train_step(m, x0, y, 1e-3, 0.9, 0.999, 1e-8, 1e-4, 0.2, 1.0, 3, s).hex()
                  for s in range(4)]
        xs = _core.diffusion_sample(m, y[:37], 8, 0, 0, 0.0, 0, 0.1, 1.0, 5, 0)
        a = _core.mlp_init([9, 64, 32, 5], 0.1, 1)
        la = [_core.mlp_train_step(a, y, x0, 1e-3, 0.9, 0.999, 1e-8, 1e-4, s).hex() for s in range(4)]
        print(json.dumps([losses, la, hashlib.sha256(xs.tobytes()).hexdigest()]))
    """)
    out = json_per_thread_count(script)
    assert out[0] == out[1]


# -- learning the known inverse ------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    X, Y = _data(1000)
    return X, Y, _perf(_X(U_TARGETS))


@pytest.fixture(scope="module")
def ann(synthetic):
    X, Y, _ = synthetic
    # plain standardisation: with robust scaling (the default) the degree-2 features' tails are
    # stretched (their IQR is narrow) and one held-out target's power lands 12 % off instead of < 10 %
    return InverseANNSizer(seed=0, augment=0, epochs=40, hidden=(128, 64), robust_metrics=False).fit(
        X, Y, ranges=np.c_[LO, HI], progress=False)


@pytest.fixture(scope="module")
def dm_mlp(synthetic):
    X, Y, _ = synthetic
    return DiffusionMLPSizer(seed=0, augment=0, epochs=40, batch_size=128, mlp_layers=3, mlp_hidden=128,
                             steps=20).fit(X, Y, ranges=np.c_[LO, HI], progress=False)


def test_inverse_ann_reproduces_targets(ann, synthetic):
    """The network's designs for the performances of held-out sizes are those sizes (the map is
    invertible), and their performances match the targets."""
    X, Y, Yt = synthetic
    h = ann.history["train_loss"]
    assert len(h) == 40 and h[-1] < 0.05 * h[0]
    untrained = InverseANNSizer(seed=0, augment=0, hidden=(128, 64), robust_metrics=False).fit(
        X, Y, ranges=np.c_[LO, HI], epochs=0, progress=False)
    S = ann.predict(Yt)
    err, err0 = np.abs(_u(S) - U_TARGETS).mean(), np.abs(_u(untrained.predict(Yt)) - U_TARGETS).mean()
    assert err < 0.05 and err < 0.2 * err0, (err, err0)
    P = _perf(S)
    assert np.abs(P[:, 1] - Yt[:, 1]).max() < 1.0                    # gain within 1 dB
    assert np.abs(np.log(P[:, [0, 2]] / Yt[:, [0, 2]])).max() < 0.1   # power, bandwidth within ~10 %


def test_inverse_ann_samples_tighten_targets(ann, synthetic):
    _, _, Yt = synthetic
    ann.directions = [1.0, -1.0, -1.0]            # as if fitted with DIRECTIONS: power <=, gain >=, bw >=
    S = ann.sample(Yt[0], n=50, seed=3)
    assert S.shape == (50, 3) and ((S >= LO) & (S <= HI)).all()
    np.testing.assert_array_equal(S[0], ann.predict(Yt[0]))
    assert len(np.unique(S, axis=0)) == 50
    # tighter targets: the designs' power is at most, their gain at least, near the target's
    P = _perf(S)
    assert np.median(P[1:, 0]) < Yt[0, 0] and np.median(P[1:, 1]) > Yt[0, 1]
    same = ann.sample(Yt, n=4, spread=0.0)
    assert same.shape == (3, 4, 3) and (same == same[:, :1]).all()
    np.testing.assert_array_equal(ann.sample(Yt[0], n=50, seed=3), S)


def test_dm_mlp_lands_near_the_inverse(dm_mlp, synthetic):
    _, _, Yt = synthetic
    h = dm_mlp.history["train_loss"]
    assert len(h) == 40 and np.mean(h[-5:]) < 0.5 * h[0]
    S = dm_mlp.sample(Yt, n=100, guidance=0.0)
    err = np.abs(_u(S) - U_TARGETS[:, None]).mean()
    err_random = np.abs(np.random.default_rng(5).uniform(-1, 1, (3, 100, 3)) - U_TARGETS[:, None]).mean()
    assert err < 0.15 and err < 0.25 * err_random, (err, err_random)
    # both guidance conventions: w on the unconditional prediction is -w in the scale convention
    a = dm_mlp.sample(Yt[0], n=20, guidance=0.1)
    b = dm_mlp.sample(Yt[0], n=20, guidance=-0.1, guidance_mode="scale")
    np.testing.assert_allclose(_u(a), _u(b), rtol=0, atol=1e-5)
    assert np.isfinite(dm_mlp.sample(Yt[0], n=5, sampler="ddpm", steps=dm_mlp.config.timesteps)).all()


def test_save_load_round_trips(tmp_path, ann, dm_mlp, synthetic):
    _, _, Yt = synthetic
    p = ann.save(tmp_path / "ann")
    assert p.suffix == ".npz"
    with np.load(p, allow_pickle=False) as z:
        assert "mlp.0.weight" in z.files
    a2 = InverseANNSizer.load(p)
    np.testing.assert_array_equal(a2.sample(Yt, n=7, seed=1), ann.sample(Yt, n=7, seed=1))
    assert a2.history == ann.history and a2.config == ann.config and repr(a2) == repr(ann)
    q = dm_mlp.save(tmp_path / "dm.npz")
    d2 = DiffusionMLPSizer.load(q)
    assert isinstance(d2.config, MLPSizerConfig) and d2.config == dm_mlp.config
    np.testing.assert_array_equal(d2.sample(Yt, n=9), dm_mlp.sample(Yt, n=9))
    assert d2.history == dm_mlp.history
    with pytest.raises(ValueError, match="not a circml.sizing.inverse_ann"):
        InverseANNSizer.load(q)
    with pytest.raises(ValueError, match="not a circml.sizing.diffusion_mlp"):
        DiffusionMLPSizer.load(p)


def test_configs_and_errors():
    with pytest.raises(TypeError, match="unknown ANNConfig"):
        InverseANNSizer(hiden=(3,))
    with pytest.raises(ValueError, match="hidden"):
        ANNConfig(hidden=())
    with pytest.raises(TypeError, match="unknown MLPSizerConfig"):
        DiffusionMLPSizer(mlp_hiden=3)
    with pytest.raises(ValueError, match="mlp_layers"):
        MLPSizerConfig(mlp_layers=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        InverseANNSizer().sample([1.0, 2.0])
    X, Y = _data(20)
    ann = InverseANNSizer(epochs=1, hidden=(8,)).fit(X, Y, directions=DIRECTIONS, progress=False)
    with pytest.raises(ValueError, match="3 performance column"):
        ann.sample([1.0, 2.0])
    with pytest.raises(ValueError, match="n must be"):
        ann.sample(Y[0], n=0)
    with pytest.raises(ValueError, match="outside ranges"):
        InverseANNSizer().fit(X, Y, ranges=np.c_[LO, LO * 1.01], progress=False)
    # a DiffusionSizer config converts into the MLP variant's
    s = DiffusionMLPSizer(DiffusionSizer().config, mlp_hidden=16)
    assert s.config.mlp_hidden == 16 and s.config.timesteps == DiffusionSizer().config.timesteps


def test_spec_violation():
    Y = np.array([[1.0, 50.0], [2.0, 40.0], [np.nan, 60.0], [1.5, 45.0]])
    v = spec_violation(Y, [1.5, 45.0], ["<=", ">="])
    np.testing.assert_allclose(v[[0, 1, 3]], [0.0, 0.5 / 1.5 + 5 / 45, 0.0])
    assert v[2] == np.inf
    # a metric without a direction does not count, even when NaN
    assert spec_violation(Y, [1.5, 45.0], [1, 0])[2] == np.inf
    assert spec_violation(Y, [1.5, 45.0], [0, -1])[2] == 0.0


# -- simulation in the loop ----------------------------------------------------------------------
CALLS = {"n": 0}


def _counting(measure):
    def m(result, design):
        CALLS["n"] += 1
        return measure(result, design)
    return m


@pytest.fixture(scope="module")
def ota():
    from circml.spice import NgspiceNotFound, Simulator
    from circml.spice.testbenches import get_testbench
    try:
        Simulator().close()
    except NgspiceNotFound as e:
        pytest.skip(f"libngspice not available: {e}")
    tb = get_testbench("ota_5t")
    return dataclasses.replace(tb, measure=_counting(tb.measure))


# loose specs for ota_5t (power <=, irn <=, gain >=, bw >=): with seed 2, none of the first 24
# (Latin hypercube) designs meets all four, and DE finds one within a few generations
LOOSE = np.array([30e-6, 28e-6, 42.0, 1e6])


def test_evolutionary_finds_a_feasible_ota_and_counts_calls(ota):
    from circml.spice import Simulator
    evo = EvolutionarySizer(ota, population=24, max_generations=30, workers=0, progress=False, seed=2)
    assert evo.metrics == ["power", "irn", "gain_db", "bw"] and evo.directions == [1.0, 1.0, -1.0, -1.0]
    CALLS["n"] = 0
    res = evo.optimize(LOOSE)
    assert res.feasible and res.stop_reason == "feasible" and res.generations >= 2
    assert res.calls == CALLS["n"] == len(res.X) == len(res.Y) == 24 * res.generations
    k = res.calls_to_feasible
    assert res.violation[k - 1] == 0 and (res.violation[:k - 1] > 0).all()
    assert 0 < res.time_to_feasible <= res.wall_time
    # the best design meets every spec when simulated again, outside the optimiser
    best = res.best(3)
    with Simulator() as sim:
        m = ota.evaluate(dict(zip(ota.param_names, best[0])), sim)
    assert spec_violation(np.array([[m[k] for k in evo.metrics]]), LOOSE, evo.directions)[0] == 0
    lo, hi = evo.ranges.T
    assert ((best >= lo) & (best <= hi)).all()
    # sample(): the n best of a fresh run, same seed -> the same run
    CALLS["n"] = 0
    S = evo.sample(LOOSE, n=5)
    assert CALLS["n"] == res.calls and evo.last_result.calls == res.calls
    np.testing.assert_array_equal(S[:3], best)


def test_evolutionary_budget_and_save_load(ota, tmp_path):
    evo = EvolutionarySizer(ota, population=24, max_generations=30, max_calls=50, workers=0, progress=False)
    CALLS["n"] = 0
    res = evo.optimize([1e-9, 1e-9, 200.0, 1e12])     # impossible
    assert not res.feasible and res.stop_reason == "max_calls"
    assert res.calls == CALLS["n"] == 50 and res.calls_to_feasible is None and res.time_to_feasible is None
    assert np.isfinite(res.violation).any() and (res.violation > 0).all()
    p = evo.save(tmp_path / "evo")
    e2 = EvolutionarySizer.load(p, testbench=ota)
    r2 = e2.last_result
    assert r2.calls == 50 and r2.stop_reason == "max_calls" and not r2.feasible
    np.testing.assert_array_equal(r2.X, res.X)
    np.testing.assert_array_equal(r2.violation, res.violation)
    with pytest.raises(ValueError, match="metrics"):
        EvolutionarySizer(ota, metrics=["gain"])
    with pytest.raises(ValueError, match="population"):
        EvolutionarySizer(ota, population=3)
    with pytest.raises(ValueError, match="one target row"):
        evo.optimize(np.ones((2, 4)))
