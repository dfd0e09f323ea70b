"""circml.plot.tsne: panels, points, colours per label, and the errors it raises."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

pytest.importorskip("sklearn")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from circml.plot import tsne  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread_and_close_figures():
    # t-SNE of a few dozen points: OpenMP threads only spin, and on a loaded machine (the test
    # suite in parallel) they make each call 25x slower; one thread keeps this file ~1 s
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
    else:
        with threadpool_limits(1):
            yield
    plt.close("all")


def _clusters(n_labels=4, per=6, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_labels, dim)) * 5
    labels = np.repeat(np.arange(n_labels), per)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


def _points(a):
    """(number of points, colours by legend label) of one axis's scatter collections."""
    n = sum(len(c.get_offsets()) for c in a.collections)
    colours = {c.get_label(): to_hex(c.get_facecolor()[0], keep_alpha=False) for c in a.collections}
    return n, colours


def test_single_array_one_panel():
    emb, labels = _clusters()
    fig = tsne(emb, labels, title="views", perplexity=5)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 1
    a = fig.axes[0]
    n, colours = _points(a)
    assert n == len(emb)
    assert a.get_title() == "views"
    assert len(a.collections) == 4                       # one scatter per label
    assert len(set(colours.values())) == 4               # each label its own colour
    assert a.get_legend() is not None


def test_panels_share_colours_and_points():
    emb, labels = _clusters(n_labels=3, per=5)
    fig = tsne({"untrained": emb, "pretrained": emb[::-1] * 2}, labels, perplexity=4)
    assert [a.get_title() for a in fig.axes] == ["untrained", "pretrained"]
    (n0, c0), (n1, c1) = _points(fig.axes[0]), _points(fig.axes[1])
    assert n0 == n1 == len(emb)
    assert c0 == c1                                      # a label keeps its colour across panels
    # points are coloured by their own label: each label's scatter holds exactly its rows
    for coll in fig.axes[0].collections:
        assert len(coll.get_offsets()) == int((labels == int(coll.get_label())).sum())


def test_label_rows_make_a_grid():
    emb, base = _clusters(n_labels=6, per=4)
    family = np.array(["ota", "logic", "ota", "mirror", "logic", "ota"])[base]
    fig = tsne({"a": emb, "b": emb + 1.0}, {"circuit": base, "family": family}, perplexity=5)
    assert len(fig.axes) == 4                            # 2 labellings x 2 panels, row-major
    assert fig.axes[0].get_title() == "a, by circuit" and fig.axes[3].get_title() == "b, by family"
    assert len(fig.axes[0].collections) == 6 and len(fig.axes[2].collections) == 3
    for a in fig.axes:
        assert _points(a)[0] == len(emb)
    # both rows plot the same t-SNE coordinates (computed once per panel)
    xy_row0 = np.sort(np.concatenate([c.get_offsets() for c in fig.axes[0].collections]), axis=0)
    xy_row1 = np.sort(np.concatenate([c.get_offsets() for c in fig.axes[2].collections]), axis=0)
    np.testing.assert_allclose(xy_row0, xy_row1)


def test_many_labels_get_distinct_colours_and_no_legend():
    emb, labels = _clusters(n_labels=30, per=2, dim=4)
    fig = tsne(emb, labels, perplexity=5)
    n, colours = _points(fig.axes[0])
    assert n == 60 and len(set(colours.values())) == 30
    assert fig.axes[0].get_legend() is None


def test_label_names_and_deterministic_seed():
    emb, labels = _clusters(n_labels=2, per=6)
    f1 = tsne(emb, labels, label_names={0: "ota_5t", 1: "inverter"}, seed=3, perplexity=4)
    f2 = tsne(emb, labels, seed=3, perplexity=4)
    assert {c.get_label() for c in f1.axes[0].collections} == {"ota_5t", "inverter"}
    np.testing.assert_array_equal(f1.axes[0].collections[0].get_offsets(), f2.axes[0].collections[0].get_offsets())


def test_given_axes_are_used():
    emb, labels = _clusters(n_labels=2, per=5)
    fig, axes = plt.subplots(1, 2)
    out = tsne({"x": emb, "y": emb}, labels, ax=axes, perplexity=3)
    assert out is fig and _points(axes[1])[0] == len(emb)
    with pytest.raises(ValueError, match="ax has 1 axes"):
        tsne({"x": emb, "y": emb}, labels, ax=axes[0])


def test_length_mismatch_names_the_panel():
    emb, labels = _clusters(n_labels=2, per=5)
    with pytest.raises(ValueError, match=r"'pretrained': 9 embeddings but 10 labels"):
        tsne({"untrained": emb, "pretrained": emb[:9]}, labels)
    with pytest.raises(ValueError, match=r"10 embeddings but 11 labels \(labels 'family'\)"):
        tsne(emb, {"circuit": labels, "family": np.r_[labels, 0]})


def test_bad_inputs():
    emb, labels = _clusters(n_labels=2, per=5)
    with pytest.raises(ValueError, match="at least 3"):
        tsne(emb[:2], labels[:2])
    with pytest.raises(ValueError, match=r"\[G, D\]"):
        tsne(emb[:, 0], labels)
    with pytest.raises(ValueError, match="NaN"):
        bad = emb.copy()
        bad[0, 0] = np.nan
        tsne(bad, labels)
    with pytest.raises(ValueError, match="empty"):
        tsne({}, labels)
