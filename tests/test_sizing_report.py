"""circml.sizing.report: target choice, feasibility bookkeeping and a small end-to-end report on
ota_5t with every sample simulated in ngspice (the full four-testbench report is marked slow)."""
import json

import numpy as np
import pytest

import circml.sizing
from circml.sizing import DiffusionSizer, report as R
from circml.sizing.report import (METRICS, Method, SizingReport, choose_targets, closest, meets,
                                  pareto_mask, tighten)

ngspice = pytest.importorskip("circml.spice")


def _ngspice_available():
    try:
        with ngspice.Simulator():
            return True
    except Exception:  # noqa: BLE001
        return False


needs_ngspice = pytest.mark.skipif(not _ngspice_available(), reason="ngspice shared library not available")


# -- pure functions ------------------------------------------------------------------------------
def test_meets_follows_directions_and_rejects_nan():
    t = np.array([10.0, 5.0, 30.0, 1e3])
    Y = np.array([[10.0, 5.0, 30.0, 1e3],      # exactly on every bound: meets
                  [9.0, 4.0, 31.0, 2e3],       # better everywhere
                  [11.0, 4.0, 31.0, 2e3],      # power too high
                  [9.0, 4.0, 29.9, 2e3],       # gain too low
                  [9.0, 4.0, 31.0, 999.0],     # bandwidth too low
                  [9.0, np.nan, 31.0, 2e3]])   # failed metric
    assert meets(Y, t).tolist() == [True, True, False, False, False, False]


def test_pareto_mask_on_a_small_set():
    Y = np.array([[1.0, 1.0, 40.0, 1e3],
                  [2.0, 2.0, 30.0, 5e2],       # dominated by row 0
                  [0.5, 3.0, 40.0, 1e3],       # trades power for noise: kept
                  [1.0, 1.0, 40.0, 1e3]])      # equal to row 0: neither dominates
    assert pareto_mask(Y).tolist() == [True, False, True, True]


def test_tighten_moves_every_spec_the_strict_way():
    y = np.array([10.0, 5.0, 40.0, 1e3])
    t = tighten(y, 0.1)
    assert t[0] == pytest.approx(9.0) and t[1] == pytest.approx(4.5)
    assert t[2] == pytest.approx(40 + 20 * np.log10(1.1)) and t[3] == pytest.approx(1.1e3)


def test_choose_targets_are_met_by_no_design_but_come_from_good_ones():
    rng = np.random.default_rng(1)
    # a synthetic trade-off: power buys noise, gain and bandwidth
    p = 10 ** rng.uniform(-6, -3, 1500)
    Y = np.c_[p, 1e-9 / np.sqrt(p) * rng.uniform(1, 2, 1500), 40 + 5 * np.log10(p * 1e6) * rng.uniform(0.5, 1, 1500),
              1e9 * p * rng.uniform(0.2, 1, 1500)]
    T, src = choose_targets(Y, k=3, fraction=0.05)
    assert T.shape == (3, 4) and len(set(src.tolist())) == 3
    for t, i in zip(T, src):
        assert not meets(Y, t).any()
        assert meets(Y[i], tighten(t, -0.06))[0]          # relaxing past the tightening admits the source
        assert np.allclose(t, tighten(Y[i], 0.05))


def test_closest_prefers_feasible_then_nearest():
    t = np.array([10.0, 5.0, 30.0, 1e3])
    Y = np.array([[11.0, 5.0, 30.0, 1e3],     # infeasible
                  [1.0, 1.0, 60.0, 1e5],      # feasible, far
                  [9.5, 4.9, 31.0, 1.1e3],    # feasible, near
                  [np.nan] * 4])
    assert closest(Y, t) == 2
    assert closest(Y[[0, 3]], t) == 0
    assert closest(np.full((2, 4), np.nan), t) == -1


def test_report_is_reachable_as_a_callable_module():
    assert callable(circml.sizing.report) and circml.sizing.report.report is R.report


# -- a small end-to-end report -------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sizing_cache")
    methods = [Method("DM-Transf.", lambda tb: DiffusionSizer(channels=32, heads=2, ff=64, blocks=1, epochs=3,
                                                              log_sizes=R.log_flags(tb))),
               Method("DM-Transf. DDIM 10", lambda tb: DiffusionSizer(channels=32, heads=2, ff=64, blocks=1, epochs=3,
                                                                      log_sizes=R.log_flags(tb)),
                      sample_kwargs={"steps": 10})]
    rep = R.report(["ota_5t"], methods, n_designs=300, n_targets=2, n_samples=20, cache_dir=cache, workers=2,
                   sample_repeats=1, progress=False, log=None)
    return rep, cache


@needs_ngspice
def test_small_report_table_and_bookkeeping(small_report, tmp_path):
    rep, cache = small_report
    info = rep.testbenches["ota_5t"]
    assert len(info["targets"]) == 2 and info["n_designs"] >= 250
    # the table has one row per target and method, in the paper's layout
    assert [(r["target_index"], r["method"]) for r in rep.rows] == [
        (0, "DM-Transf."), (1, "DM-Transf."), (0, "DM-Transf. DDIM 10"), (1, "DM-Transf. DDIM 10")]
    md = rep.to_markdown().splitlines()
    assert len(md) == 2 + 2 * (1 + 2) and md[2].startswith("| **ota_5t** #1")
    # no training design meets any target
    train = np.asarray(rep.samples["ota_5t"]["train"])
    assert info["n_train_meeting"] == [0, 0]
    for t in info["targets"]:
        assert not meets(train, t).any()
    for r in rep.rows:
        Ys = np.asarray(rep.samples["ota_5t"][f"{r['method']}#{r['target_index']}"])
        t = np.asarray(info["targets"][r["target_index"]])
        # every sample was simulated, and feasibility is what the simulated metrics say
        assert r["n_samples"] == r["n_simulated"] == len(Ys) == 20
        ok = ((Ys[:, 0] <= t[0]) & (Ys[:, 1] <= t[1]) & (Ys[:, 2] >= t[2]) & (Ys[:, 3] >= t[3]))
        assert r["n_feasible"] == int(ok.sum()) and r["accuracy"] == pytest.approx(ok.mean())
        c = np.array([r["closest"][m] for m in METRICS])
        assert any(np.allclose(c, y) for y in Ys)
        assert (r["closest_violation"] == 0) == bool(ok.any())
        assert r["train_time_s"] > 0 and r["sample_time_s"] > 0 and r["sim_time_s"] > 0
    # the sweep is cached: a second dataset() call simulates nothing new and gives the same data
    from circml.spice.testbenches import get_testbench
    X2, Y2, info2 = R.dataset(get_testbench("ota_5t"), 300, 0, cache, workers=2, progress=False)
    assert np.array_equal(Y2, train) and info2["sweep_wall_s"] < info["sweep_wall_s"] + 5
    # JSON round trip
    path = rep.save(tmp_path / "r.json")
    back = SizingReport.load(path)
    assert back.to_markdown() == rep.to_markdown()
    assert json.loads(path.read_text())["goals"]["targets"] == 2


@needs_ngspice
def test_small_report_samples_resimulate_to_the_stored_metrics(small_report):
    rep, _ = small_report
    from circml.spice.testbenches import get_testbench
    tb = get_testbench("ota_5t")
    S = rep.samples["ota_5t"]
    X = np.asarray(S["DM-Transf.#0:X"])[:3]
    Y = np.asarray(S["DM-Transf.#0"])[:3]
    with ngspice.Simulator() as sim:
        for x, y in zip(X, Y):
            m = tb.evaluate(dict(zip(tb.param_names, x)), sim)
            assert np.allclose([m[k] for k in METRICS], y, rtol=1e-6, equal_nan=True)


@needs_ngspice
def test_small_report_plots(small_report, tmp_path):
    pytest.importorskip("matplotlib")
    rep, _ = small_report
    fig = rep.plot_samples(path=tmp_path / "s.png")
    assert len(fig.axes) == 2 * 3 and (tmp_path / "s.png").stat().st_size > 10_000


@pytest.mark.slow
@needs_ngspice
def test_full_report_goals(tmp_path):
    """The issue's report: four OTAs, ~2,000 designs each, 2 targets each, 100 samples per method
    and target, all four methods; the diffusion transformer finds a feasible design for every
    target. (Tens of minutes on 2 cores.)"""
    rep = R.report(n_designs=2000, n_targets=2, n_samples=100, cache_dir=tmp_path, progress=False, log=None)
    goals = rep.goals()
    assert goals["targets"] == 8
    assert goals["targets_with_feasible"] == 8
    for info in rep.testbenches.values():
        assert info["n_train_meeting"] == [0, 0]
    assert all(r["n_simulated"] == 100 for r in rep.rows if r["learned"])


def test_log_metrics_conditions_on_log_values():
    """SizerConfig.log_metrics: the condition is built from log(metric) for the selected metrics,
    after the augmentation (which relaxes specs in physical units); save/load keeps it."""
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 2, (100, 3))
    Y = np.c_[10 ** rng.uniform(-6, -3, 100), rng.uniform(20, 40, 100)]
    s = DiffusionSizer(channels=16, heads=2, ff=32, blocks=1, epochs=1, augment=0, log_metrics=[True, False],
                       robust_metrics=False)
    s.fit(X, Y, progress=False)
    L = np.c_[np.log(Y[:, 0]), Y[:, 1]]
    Z = (L - L.mean(0)) / L.std(0)
    F = np.c_[Z, Z[:, 0] ** 2, Z[:, 0] * Z[:, 1], Z[:, 1] ** 2]
    assert np.allclose(s.condition(Y), (F - F.mean(0)) / F.std(0), atol=1e-5)
    lin = DiffusionSizer(channels=16, heads=2, ff=32, blocks=1, epochs=1, augment=0, robust_metrics=False).fit(
        X, Y, progress=False)
    assert not np.allclose(lin.condition(Y), s.condition(Y), atol=1e-2)
    with pytest.raises(ValueError, match="log_metrics"):
        s.condition(np.array([[-1.0, 30.0]]))


def _small_problem(seed=0, n=120):
    rng = np.random.default_rng(seed)
    X = rng.uniform(1, 2, (n, 3))
    Y = np.c_[10 ** rng.uniform(-6, -3, n), 10 ** rng.uniform(-6, -4, n), rng.uniform(20, 40, n),
              10 ** rng.uniform(2, 5, n)]
    Y[:3, 1] = 1.0       # three outliers in the noise column
    return X, Y


def test_overshoot_conditions_on_stricter_specs():
    """sample(overshoot=a) asks for specs a (robust) standard deviations stricter in each inequality's
    direction: it is sampling the target moved by that much in the condition's space (log scale for
    log metrics), equality metrics untouched; overshoot_spread draws a further U(0, spread) per
    sample and metric, and sample i depends on (seed, i) only."""
    X, Y = _small_problem()
    s = DiffusionSizer(channels=16, heads=2, ff=32, blocks=1, epochs=1, augment=2, log_metrics=[True, True, False, True],
                       robust_metrics=True, metric_clip=5.0)
    s.fit(X, Y, directions=["<=", "<=", ">=", None], progress=False)
    t = np.array([1e-5, 1e-5, 30.0, 1e3])
    a = 0.5
    sd = s._y_std.std
    moved = np.array([t[0] * np.exp(-a * sd[0]), t[1] * np.exp(-a * sd[1]), t[2] + a * sd[2], t[3]])
    assert moved[0] < t[0] and moved[1] < t[1] and moved[2] > t[2]
    np.testing.assert_allclose(s.condition(t, shift=-np.array([1, 1, -1, 0]) * a), s.condition(moved), atol=1e-5)
    got = s.sample(t, n=6, steps=5, overshoot=a)
    ref = s.sample(moved, n=6, steps=5, overshoot=0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    assert not np.allclose(got, s.sample(t, n=6, steps=5, overshoot=0.0))
    # spread: deterministic, sample i independent of n
    s6 = s.sample(t, n=6, steps=5, overshoot=a, overshoot_spread=1.0)
    s3 = s.sample(t, n=3, steps=5, overshoot=a, overshoot_spread=1.0)
    np.testing.assert_array_equal(s6[:3], s3)
    assert s.sample(np.stack([moved, t]), n=3, steps=5, overshoot=a, overshoot_spread=1.0).shape == (2, 3, 3)
    assert not np.allclose(s6, got)
    with pytest.raises(ValueError, match="overshoot"):
        s.sample(t, n=2, overshoot=-1.0)


def test_robust_metric_scaling_and_relax_units():
    """robust_metrics centres on the median and scales by IQR/1.349 (scikit-learn's RobustScaler with
    unit_variance); metric_clip bounds the standardised metrics; relax_units='std' relaxes each copy by
    at most `relax` standard deviations of the (log-)metric, in the spec's direction only."""
    X, Y = _small_problem()
    s = DiffusionSizer(channels=16, heads=2, ff=32, blocks=1, epochs=0, augment=0, log_metrics=[True, True, False, True],
                       robust_metrics=True, metric_clip=3.0)
    s.fit(X, Y, directions=["<=", "<=", ">=", ">="], progress=False)
    L = np.log(Y)
    L[:, 2] = Y[:, 2]
    q1, med, q3 = np.percentile(L, [25, 50, 75], axis=0)
    np.testing.assert_allclose(s._y_std.mean, med)
    np.testing.assert_allclose(s._y_std.std, (q3 - q1) / 1.3489795003921634)
    try:
        from sklearn.preprocessing import RobustScaler
        np.testing.assert_allclose(s._y_std.transform(L), RobustScaler(unit_variance=True).fit_transform(L), atol=1e-9)
    except ImportError:
        pass
    Z = np.clip(s._y_std.transform(L), -3, 3)
    assert np.abs(Z[:3, 1]).max() == 3.0          # the outliers are clipped
    F = np.c_[Z, *[Z[:, i] * Z[:, j] for i in range(4) for j in range(i, 4)]]
    q1, med, q3 = np.percentile(F, [25, 50, 75], axis=0)
    np.testing.assert_allclose(s.condition(Y), (F - med) / ((q3 - q1) / 1.3489795003921634), atol=1e-4)
    # relaxation in the condition's units: standard deviations, or robust ones (the default)
    q1, q3 = np.percentile(L, [25, 75], axis=0)
    for robust, scale in ((False, L.std(axis=0)), (True, (q3 - q1) / 1.3489795003921634)):
        r = DiffusionSizer(channels=16, heads=2, ff=32, blocks=1, epochs=0, augment=4, relax=0.5, relax_units="std",
                           log_metrics=[True, True, False, True], robust_metrics=robust)
        Xa, Ya = r._prepare(X, Y, np.array([1.0, 1.0, -1.0, -1.0]), np.random.default_rng(1))
        assert len(Ya) == 5 * len(Y)
        La = np.log(Ya)
        La[:, 2] = Ya[:, 2]
        d = (La[len(Y):] - np.repeat(L, 4, axis=0)) / scale
        assert (d[:, :2] >= -1e-9).all() and (d[:, 2:] <= 1e-9).all()      # looser specs only
        assert np.abs(d).max() <= 0.5 + 1e-9 and np.abs(d).max() > 0.4
    with pytest.raises(ValueError, match="relax_units"):
        DiffusionSizer(relax_units="percent")
