"""The C diffusion schedule and samplers (csrc/diffusion/schedule.c).

csrc/tests/test_schedule.c checks itself (built with sanitizers, run serially and with 2 OpenMP
threads); in its `json` mode it prints the schedule, conversions, single DDPM steps and whole DDPM and
DDIM chains for given (T, n, B, D, seed, clip, eta), which are compared here with HuggingFace
diffusers' DDPMScheduler / DDIMScheduler(beta_schedule="squaredcos_cap_v2",
prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing") when
diffusers (and torch) are importable, and skipped otherwise.

diffusers keeps its schedule in float32 while ours is double, so the schedule is compared to float32
accuracy; the step arithmetic is compared twice: once with diffusers' own float32 schedule (loosely)
and once with our double schedule loaded into the scheduler (to 1e-12). The DDPM noise is injected by
replacing diffusers' randn_tensor with our counter-based noise; DDIM takes it as variance_noise."""
import json
import math

import numpy as np
import pytest

from _cbuild import check_counts, exe_fixture, run_program  # noqa: E402
SOURCES = ["csrc/tests/test_schedule.c", "csrc/diffusion/schedule.c", "csrc/util/status.c"]


exe = exe_fixture("test_schedule", SOURCES, ["-DCM_REAL=double"])


def _run(exe, threads, *args):
    return run_program(exe, threads, *args, timeout=300)


# (T, n, B, D, seed, clip, eta): a paper-sized chain, and a short one with clipping and DDIM noise
CONFIGS = {"T1000_n10": (1000, 10, 3, 4, 7, 0, 0), "T1000_n50_clip_eta": (1000, 50, 4, 17, 11, 1.0, 0.5)}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def c_out(request, exe):
    r = _run(exe, "1", "json", *CONFIGS[request.param])
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _arr(x, B, D):
    return np.array(x, dtype=np.float64).reshape(B, D)


@pytest.mark.parametrize("threads", ["1", "2"])
def test_schedule_checks(exe, threads):
    passed, failed, _, last = check_counts(_run(exe, threads))
    assert failed == 0 and passed >= 1000, last


def test_json_does_not_depend_on_thread_count(exe):
    args = ("json", *CONFIGS["T1000_n50_clip_eta"])
    one, two = _run(exe, "1", *args), _run(exe, "2", *args)
    assert one.returncode == 0 and two.returncode == 0
    assert one.stdout == two.stdout


def test_schedule_matches_float64_reference(c_out):
    """diffusers' betas_for_alpha_bar + rescale_zero_terminal_snr, written out in numpy float64."""
    T = c_out["T"]
    ab = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = np.array([min(1 - ab((i + 1) / T) / ab(i / T), 0.999) for i in range(T)])
    np.testing.assert_allclose(c_out["betas_plain"], betas, rtol=1e-13, atol=0)
    s = np.sqrt(np.cumprod(1 - betas))
    s0, sT = s[0], s[-1]
    s = (s - sT) * (s0 / (s0 - sT))
    abar = s ** 2
    alphas = np.concatenate([abar[:1], abar[1:] / abar[:-1]])
    np.testing.assert_allclose(c_out["betas"], 1 - alphas, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(c_out["alphas_cumprod"], np.cumprod(alphas), rtol=1e-9, atol=1e-15)
    assert c_out["alphas_cumprod"][-1] == 0.0


# ---------------------------------------------------------------- against diffusers

@pytest.fixture(scope="module")
def diffusers_mod():
    pytest.importorskip("torch")
    return pytest.importorskip("diffusers")


def _scheduler(diffusers_mod, kind, c_out, ours=False):
    import torch
    cls = diffusers_mod.DDPMScheduler if kind == "ddpm" else diffusers_mod.DDIMScheduler
    s = cls(num_train_timesteps=c_out["T"], beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
            rescale_betas_zero_snr=True, timestep_spacing="trailing", clip_sample=c_out["clip"] > 0,
            clip_sample_range=c_out["clip"] if c_out["clip"] > 0 else 1.0)
    if ours:  # the same step arithmetic on our double schedule
        s.alphas_cumprod = torch.tensor(c_out["alphas_cumprod"], dtype=torch.float64)
    return s


def _report(name, diff):
    print(f"[diffusers] {name}: max |C - diffusers| = {diff:.3g}")


def test_schedule_matches_diffusers(diffusers_mod, c_out):
    plain = diffusers_mod.DDPMScheduler(num_train_timesteps=c_out["T"], beta_schedule="squaredcos_cap_v2")
    s = _scheduler(diffusers_mod, "ddpm", c_out)
    d = _scheduler(diffusers_mod, "ddim", c_out)
    pairs = [("betas (plain cosine)", c_out["betas_plain"], plain.betas),
             ("alphas_cumprod (plain cosine)", c_out["alphas_cumprod_plain"], plain.alphas_cumprod),
             ("betas (zero SNR)", c_out["betas"], s.betas),
             ("alphas_cumprod (zero SNR)", c_out["alphas_cumprod"], s.alphas_cumprod),
             ("alphas_cumprod (DDIM scheduler)", c_out["alphas_cumprod"], d.alphas_cumprod)]
    for name, ours, theirs in pairs:
        theirs = theirs.double().numpy()
        diff = float(np.max(np.abs(np.array(ours) - theirs)))
        _report(name, diff)
        assert diff < 2e-6, name   # float32 rounding of diffusers' computation
    assert s.alphas_cumprod[-1].item() == 0.0 and c_out["alphas_cumprod"][-1] == 0.0


@pytest.mark.parametrize("n", [1, 7, 10, 30, 50, 1000])
@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_timesteps_match_diffusers(diffusers_mod, exe, n, spacing):
    r = _run(exe, "1", "json", 1000, n, 1, 1, 0, 0, 0)
    assert r.returncode == 0, r.stderr[-2000:]
    ours = json.loads(r.stdout)["timesteps"][spacing]
    s = diffusers_mod.DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                    rescale_betas_zero_snr=True, timestep_spacing=spacing)
    s.set_timesteps(n)
    assert ours == s.timesteps.tolist()


def test_conversions_match_diffusers(diffusers_mod, c_out):
    import torch
    B, D = c_out["B"], c_out["D"]
    conv = c_out["conversions"]
    s = _scheduler(diffusers_mod, "ddpm", c_out, ours=True)
    t = torch.tensor(conv["t"])
    x0, eps = torch.tensor(_arr(conv["x0"], B, D)), torch.tensor(_arr(conv["eps"], B, D))
    v = s.get_velocity(x0, eps, t).numpy()
    xt = s.add_noise(x0, eps, t).numpy()
    np.testing.assert_allclose(_arr(conv["v"], B, D), v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_arr(conv["xt"], B, D), xt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_arr(conv["x0_from_v"], B, D), _arr(conv["x0"], B, D), rtol=0, atol=1e-12)
    np.testing.assert_allclose(_arr(conv["eps_from_v"], B, D), _arr(conv["eps"], B, D), rtol=0, atol=1e-12)
    # and with diffusers' float32 schedule
    s32 = _scheduler(diffusers_mod, "ddpm", c_out)
    diff = float(np.max(np.abs(_arr(conv["v"], B, D) - s32.get_velocity(x0, eps, t).numpy())))
    _report("get_velocity (float32 schedule)", diff)
    assert diff < 1e-5


def _inject_noise(monkeypatch, noise):
    import diffusers.schedulers.scheduling_ddpm as ddpm_mod
    monkeypatch.setattr(ddpm_mod, "randn_tensor", lambda shape, **kw: noise.clone())


@pytest.mark.parametrize("ours", [True, False], ids=["our_schedule", "diffusers_schedule"])
def test_single_ddpm_steps_match_diffusers(diffusers_mod, c_out, monkeypatch, ours):
    import torch
    B, D = c_out["B"], c_out["D"]
    s = _scheduler(diffusers_mod, "ddpm", c_out, ours=ours)
    tol = 1e-12 if ours else 2e-3
    for step in c_out["ddpm_steps"]:
        _inject_noise(monkeypatch, torch.tensor(_arr(step["noise"], B, D)))
        out = s.step(torch.tensor(_arr(step["model_output"], B, D)), step["t"], torch.tensor(_arr(step["sample"], B, D)))
        for key, theirs in (("prev_sample", out.prev_sample), ("pred_original_sample", out.pred_original_sample)):
            diff = float(np.max(np.abs(_arr(step[key], B, D) - theirs.numpy())))
            _report(f"DDPM step t={step['t']} {key} ({'our' if ours else 'float32'} schedule)", diff)
            assert diff < tol, (step["t"], key, diff)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
@pytest.mark.parametrize("ours", [True, False], ids=["our_schedule", "diffusers_schedule"])
def test_chains_match_diffusers(diffusers_mod, c_out, monkeypatch, kind, ours):
    """Every step of a whole trailing-spaced chain, fed our previous sample (so errors do not
    compound), plus the free-running end point of diffusers' own chain."""
    import torch
    B, D, n = c_out["B"], c_out["D"], c_out["n"]
    chain = c_out[f"{kind}_chain"]
    s = _scheduler(diffusers_mod, kind, c_out, ours=ours)
    s.set_timesteps(n)
    assert s.timesteps.tolist() == chain["timesteps"]
    model = lambda x, t: 0.5 * x - 0.3 * torch.sin(x) + 0.001 * t  # noqa: E731  (test_schedule.c's fake_model)
    x_ours = torch.tensor(_arr(chain["x_init"], B, D))
    x_free = x_ours.clone()
    tol = 1e-12 if ours else 2e-3
    worst = 0.0
    for step in chain["steps"]:
        t = step["t"]
        noise = torch.tensor(_arr(step["noise"], B, D))
        if kind == "ddpm":
            _inject_noise(monkeypatch, noise)
            kw = {}
        else:
            kw = {"eta": c_out["eta"], "variance_noise": noise} if c_out["eta"] > 0 else {}
        out = s.step(model(x_ours, t), t, x_ours, **kw)
        diff = float(np.max(np.abs(_arr(step["prev_sample"], B, D) - out.prev_sample.numpy())))
        diff = max(diff, float(np.max(np.abs(_arr(step["pred_original_sample"], B, D)
                                             - out.pred_original_sample.numpy()))))
        worst = max(worst, diff)
        assert diff < tol, (kind, t, diff)
        x_free = s.step(model(x_free, t), t, x_free, **kw).prev_sample
        x_ours = torch.tensor(_arr(step["prev_sample"], B, D))
    end = float(np.max(np.abs(x_free.numpy() - x_ours.numpy())))
    label = f"{kind.upper()} chain of {n} steps, eta={c_out['eta'] if kind == 'ddim' else 'n/a'}, clip={c_out['clip']}"
    _report(f"{label}, worst step ({'our' if ours else 'float32'} schedule)", worst)
    _report(f"{label}, free-running end point ({'our' if ours else 'float32'} schedule)", end)
    assert end < (1e-10 if ours else 1e-2)
