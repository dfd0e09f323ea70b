"""circml.dice.downstream: similarity of circuits by embedding, and performance probes on
simulated op-amp sweeps (DICE's downstream tasks)."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

from circml.datasets import circuit_library
from circml.dice import DiceEncoder, NegativeView, PositiveView, held_out_split
from circml.dice.downstream import PerformanceProbe, cosine_similarity, nearer
from circml.spice import sweep
from circml.spice.store import Dataset
from circml.spice.testbenches import get_testbench, list_testbenches


@pytest.fixture(scope="module")
def split():
    return held_out_split(circuit_library(), 0.25, seed=0)


@pytest.fixture(scope="module")
def encoder(split):
    enc = DiceEncoder(seed=0)
    enc.pretrain(split[0], progress=False)
    return enc


def test_nearer_prefers_equivalent_views_on_held_out_circuits(encoder, split):
    """Task 1: of a positive view (equivalent) and a negative view (changed), which is nearer
    the base circuit? Measured: pretrained 64/64 the positive, untrained 23/64."""
    held = split[1]
    base, a, b = [], [], []
    for i, c in enumerate(held):
        for k in range(4):
            base.append(c)
            a.append(PositiveView(n_subs=2)(c, seed=100 * i + k))
            b.append(NegativeView(n_subs=1)(c, seed=100 * i + k))
    picks = nearer(encoder, base, a, b)
    assert picks.shape == (len(base),) and set(picks.tolist()) <= {0, 1}
    assert (picks == 0).mean() >= 0.9
    # untrained, the one-change negative looks nearer than the two-change positive most of the time
    assert (nearer(DiceEncoder(seed=0), base, a, b) == 0).mean() < 0.6
    # swapping the candidates swaps the answer (ties aside)
    np.testing.assert_array_equal(nearer(encoder, base, b, a), 1 - picks)
    s = cosine_similarity(encoder, held, held)
    np.testing.assert_allclose(s, 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="row by row"):
        cosine_similarity(encoder, held[:2], held[:3])


def _take(ds, idx):
    return Dataset(X=ds.X[idx], Y=ds.Y[idx], status=ds.status[idx], error=ds.error[idx],
                   param_names=ds.param_names, metric_names=ds.metric_names)


@pytest.fixture(scope="module")
def opamp_sweeps():
    return {n: sweep(get_testbench(n), 64, seed=0, workers=2, progress=False) for n in list_testbenches("opamp")}


def test_probe_on_opamp_sweeps(encoder, opamp_sweeps):
    """Task 3: one MLP over the five op-amps predicts held-out design points; knowing the
    circuit (its embedding) is what makes one model work across them."""
    train = {n: _take(d, np.arange(len(d)) % 4 != 0) for n, d in opamp_sweeps.items()}
    test = {n: _take(d, np.arange(len(d)) % 4 == 0) for n, d in opamp_sweeps.items()}
    scores = {}
    for feat in ("none", "embedding"):
        probe = PerformanceProbe(encoder, features=feat, model="mlp", hidden=(64, 64), max_iter=800).fit(train)
        scores[feat] = probe.score(test)
    print("\nR^2 on held-out design points:", {f: {k: round(v, 3) for k, v in s.items()} for f, s in scores.items()})
    for m in ("gain_db", "ugbw", "power"):
        assert scores["embedding"][m] >= 0.9, (m, scores)
        assert scores["embedding"][m] >= scores["none"][m] + 0.2, (m, scores)
    # predictions come back in the metrics' units, close to the simulated values
    name = "opamp_three_stage_nmc"
    cols = [test[name].param_names.index(p.name) for p in get_testbench(name).params]
    pred = probe.predict(name, test[name].X[:, cols])
    ok = test[name].status == "ok"
    assert pred.shape == (len(test[name].X), 5)
    power = probe.metric_names.index("power")
    rel = np.abs(pred[ok, power] / test[name].Y[ok, power] - 1)
    assert np.median(rel) < 0.2


def test_probe_errors(encoder, opamp_sweeps):
    with pytest.raises(ValueError, match="needs an encoder"):
        PerformanceProbe(None, features="embedding")
    with pytest.raises(ValueError, match="features"):
        PerformanceProbe(encoder, features="graph")
    with pytest.raises(RuntimeError, match="before fit"):
        PerformanceProbe(encoder).predict("opamp_three_stage_nmc", np.zeros((1, 6)))
    probe = PerformanceProbe(encoder, features="onehot", model="ridge").fit(
        {n: opamp_sweeps[n] for n in list(opamp_sweeps)[:2]})
    with pytest.raises(ValueError, match="knows only the fitted"):
        probe.score({n: opamp_sweeps[n] for n in list(opamp_sweeps)[2:3]})
    with pytest.raises(ValueError, match="design parameters"):
        probe.features_of(list(opamp_sweeps)[0], np.zeros((1, 2)))
