"""circml.dice: pretraining, determinism, embeddings, saving, the split, callbacks, held-out quality.

The mechanics use a small encoder (hidden 32) so the file stays fast; the quality tests use the
default config, as a user would. ``-m slow`` adds the full goal over several held-out splits.
"""
import json
import math

import numpy as np
import pytest

from circml.datasets import circuit_library
from circml.dice import (DiceConfig, DiceEncoder, EarlyStopping, QualityMonitor, augment_batch, held_out_split,
                         quality_report, retrieval_metrics, split_by_circuit)

SMALL = dict(hidden=32, out=16)


@pytest.fixture(scope="module")
def lib():
    return circuit_library()


@pytest.fixture(scope="module")
def circuits(lib):
    return [e.circuit for e in lib]


@pytest.fixture(scope="module")
def trained(circuits):
    """A small encoder after a few epochs (shared by the read-only tests)."""
    enc = DiceEncoder(seed=3, **SMALL)
    enc.pretrain(circuits, epochs=4, progress=False)
    return enc


# -- pretraining ---------------------------------------------------------------------
def test_pretrain_loss_decreases(circuits):
    enc = DiceEncoder(seed=0, hidden=64, out=32)
    hist = enc.pretrain(circuits, epochs=15, progress=False)
    loss = np.array(hist["train_loss"])
    assert len(loss) == 15 and np.isfinite(loss).all()
    assert loss[-3:].mean() < loss[:3].mean() - 0.3, loss
    assert enc.epochs_trained == 15 and hist["val_loss"] == []


def test_pretrain_accepts_library_entries(lib, circuits):
    a, b = DiceEncoder(seed=1, **SMALL), DiceEncoder(seed=1, **SMALL)
    a.pretrain(lib[:8], epochs=2, progress=False)
    b.pretrain(circuits[:8], epochs=2, progress=False)
    assert a.history == b.history


def test_same_seed_same_losses_and_embeddings(circuits):
    runs = []
    for _ in range(2):
        enc = DiceEncoder(seed=11, **SMALL)
        hist = enc.pretrain(circuits[:24], epochs=3, batch_size=8, progress=False)
        runs.append((list(hist["train_loss"]), enc.embed(circuits[:10]), enc.state_dict()))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    for k in runs[0][2]:
        np.testing.assert_array_equal(runs[0][2][k], runs[1][2][k])
    other = DiceEncoder(seed=12, **SMALL)
    other.pretrain(circuits[:24], epochs=3, batch_size=8, progress=False)
    assert other.history["train_loss"] != runs[0][0]


def test_continuing_equals_nothing_lost(circuits):
    """Two calls of 2 epochs log 4 epochs and keep counting."""
    enc = DiceEncoder(seed=2, **SMALL)
    enc.pretrain(circuits[:12], epochs=2, progress=False)
    enc.pretrain(circuits[:12], epochs=2, progress=False)
    assert enc.epochs_trained == 4 and len(enc.history["train_loss"]) == 4


# -- embeddings ----------------------------------------------------------------------
def test_embed_shapes_and_eval_mode_is_deterministic(trained, circuits):
    e = trained.embed(circuits)
    assert e.shape == (len(circuits), 16) and e.dtype == np.float32 and np.isfinite(e).all()
    before = trained.state_dict()
    np.testing.assert_array_equal(trained.embed(circuits), e)           # no dropout, running statistics
    for k, v in trained.state_dict().items():                          # embedding changes no state
        np.testing.assert_array_equal(v, before[k])
    # evaluation mode: a circuit's row does not depend on the batch it is in, or its size
    np.testing.assert_allclose(trained.embed(circuits[5:6]), e[5:6], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trained.embed(circuits, batch_size=7), e, rtol=1e-5, atol=1e-6)
    # a collated Graph gives the same rows as the circuits
    b = augment_batch(circuits[:3], n_positive=2, n_negative=0, seed=1)
    np.testing.assert_allclose(trained.embed(b.graph), trained.embed(b.views), rtol=1e-5, atol=1e-6)
    assert trained.embed([]).shape == (0, 16)


# -- saving --------------------------------------------------------------------------
def test_save_load_round_trip(trained, circuits, tmp_path):
    path = trained.save(tmp_path / "dice")                              # .npz appended
    assert path.name == "dice.npz" and path.exists()
    with np.load(path, allow_pickle=False) as z:                        # no pickle anywhere
        header = json.loads(bytes(z["__header__"]).decode())
        names = set(z.files)
    assert header["format"] == "circml.dice" and header["version"] == 1
    assert header["config"]["hidden"] == 32 and header["epochs_trained"] == 4
    assert set(trained.state_dict()) | {"__header__"} == names
    back = DiceEncoder.load(path)
    assert back.config == trained.config and back.seed == trained.seed
    assert back.history == trained.history and back.epochs_trained == 4
    np.testing.assert_array_equal(back.embed(circuits), trained.embed(circuits))
    assert DiceEncoder.load(tmp_path / "dice").epochs_trained == 4     # suffix optional when loading


def _rewrite_header(src, dst, **changes):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["__header__"]).decode())
    header.update(changes)
    arrays["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(dst, **arrays)


def test_load_refuses_newer_versions_and_other_files(trained, tmp_path):
    path = trained.save(tmp_path / "m.npz")
    _rewrite_header(path, tmp_path / "newer.npz", version=2)
    with pytest.raises(ValueError, match="version 2"):
        DiceEncoder.load(tmp_path / "newer.npz")
    _rewrite_header(path, tmp_path / "other.npz", format="something.else")
    with pytest.raises(ValueError, match="not a circml DICE model"):
        DiceEncoder.load(tmp_path / "other.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no __header__"):
        DiceEncoder.load(tmp_path / "plain.npz")
    with pytest.raises(ValueError, match="lacks"):
        DiceEncoder(seed=0, hidden=8, out=4).load_state_dict(trained.state_dict())


# -- the split -----------------------------------------------------------------------
def test_split_by_circuit(lib, circuits):
    fam = [e.family for e in lib]
    tr, va = split_by_circuit(circuits, 0.25, seed=0, groups=fam)
    assert len(va) == 16 and len(tr) == 48
    assert not set(tr) & set(va) and sorted(set(tr) | set(va)) == list(range(64))
    tr2, va2 = split_by_circuit(circuits, 0.25, seed=0, groups=fam)
    assert tr.tolist() == tr2.tolist() and va.tolist() == va2.tolist()
    assert split_by_circuit(circuits, 0.25, seed=1)[1].tolist() != va.tolist()
    # stratified: every family of four or more circuits has one held out and one kept
    for f in set(fam):
        members = [i for i, x in enumerate(fam) if x == f]
        if len(members) >= 4:
            assert set(members) & set(va) and set(members) & set(tr), f
    # a duplicated circuit (same netlist twice) never straddles the split
    dup = circuits[:10] + [lib[3].load()]
    for seed in range(20):
        tr, va = split_by_circuit(dup, 0.3, seed=seed)
        assert (3 in va) == (10 in va)


def test_pretrain_validation_split_is_by_circuit(circuits):
    enc = DiceEncoder(seed=5, **SMALL)
    hist = enc.pretrain(circuits[:20], epochs=3, val_fraction=0.25, progress=False)
    tr, va = enc.split["train"], enc.split["val"]
    assert len(va) == 5 and not set(tr) & set(va) and sorted(tr + va) == list(range(20))
    assert len(hist["val_loss"]) == 3 and np.isfinite(hist["val_loss"]).all()
    enc.pretrain(circuits[:20], epochs=1, val_fraction=0.25, progress=False)
    assert enc.split["val"] == va                     # a second call holds out the same circuits
    with pytest.raises(ValueError, match="also training circuits"):
        enc.pretrain(circuits[:10], epochs=1, val_circuits=circuits[8:12], progress=False)
    with pytest.raises(ValueError, match="not both"):
        enc.pretrain(circuits[:10], epochs=1, val_fraction=0.2, val_circuits=circuits[10:12], progress=False)
    enc2 = DiceEncoder(seed=5, **SMALL)
    h2 = enc2.pretrain(circuits[:10], epochs=2, val_circuits=circuits[10:14], progress=False)
    assert len(h2["val_loss"]) == 2


# -- callbacks -----------------------------------------------------------------------
def test_callbacks_run_per_epoch_and_can_stop(circuits):
    seen = []

    def record(enc, epoch, logs):
        seen.append((epoch, sorted(logs)))
        logs["extra"] = 10.0 * epoch                   # what a callback adds is kept in the history

    def stop_at_2(enc, epoch, logs):
        return epoch == 2

    enc = DiceEncoder(seed=4, **SMALL)
    hist = enc.pretrain(circuits[:12], epochs=10, callbacks=[record, stop_at_2], progress=False)
    assert [e for e, _ in seen] == [0, 1, 2] and seen[0][1] == ["train_loss"]
    assert enc.epochs_trained == 3 and len(hist["train_loss"]) == 3
    assert hist["extra"] == [0.0, 10.0, 20.0]


def test_early_stopping_restores_best(circuits):
    states = {}

    def snapshot(enc, epoch, logs):
        states[epoch] = enc.state_dict()

    stop = EarlyStopping("train_loss", patience=2, min_delta=1e9, restore_best=True)   # nothing improves by 1e9
    enc = DiceEncoder(seed=6, **SMALL)
    enc.pretrain(circuits[:12], epochs=20, callbacks=[snapshot, stop], progress=False)
    assert stop.best_epoch == 0 and stop.stopped_epoch == 2 and enc.epochs_trained == 3
    for k, v in enc.state_dict().items():
        np.testing.assert_array_equal(v, states[0][k])
    with pytest.raises(KeyError, match="val_loss"):
        DiceEncoder(seed=6, **SMALL).pretrain(circuits[:6], epochs=1, callbacks=[EarlyStopping()], progress=False)


def test_quality_monitor_logs_every_n(circuits):
    mon = QualityMonitor(circuits[40:44], every=2, n_views=3, n_negative=1, n_subs=2)
    enc = DiceEncoder(seed=7, **SMALL)
    hist = enc.pretrain(circuits[:12], epochs=4, callbacks=[mon], progress=False)
    acc = hist["held_out_nn_accuracy"]
    assert len(acc) == 4 and math.isnan(acc[0]) and math.isnan(acc[2]) and 0 <= acc[1] <= 1 and 0 <= acc[3] <= 1


def test_progress_bar_runs(circuits, capsys):
    enc = DiceEncoder(seed=8, **SMALL)
    enc.pretrain(circuits[:6], epochs=2, progress=True)
    assert "DICE pretraining" in capsys.readouterr().err


# -- configs and errors --------------------------------------------------------------
def test_paper_config_is_one_argument_away(circuits):
    p = DiceConfig.paper()
    assert (p.hidden, p.out, p.batch_size, p.epochs, p.layers) == (512, 256, 1024, 200, 2)
    assert (p.lr, p.tau, p.tau_p, p.tau_n) == (3e-4, 0.05, 0.2, 0.05)
    assert DiceConfig.paper(epochs=3).epochs == 3
    big, small = DiceEncoder(p), DiceEncoder()
    assert big.num_parameters > 10 * small.num_parameters
    assert big.embed(circuits[:2]).shape == (2, 256)                   # built, not trained


def test_bad_inputs(circuits):
    enc = DiceEncoder(seed=0, **SMALL)
    with pytest.raises(ValueError, match="at least 2"):
        enc.pretrain(circuits[:1], epochs=1, progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        enc.pretrain([], epochs=1, progress=False)
    with pytest.raises(ValueError, match="validation split has 1"):
        enc.pretrain(circuits[:6], epochs=1, val_fraction=0.1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        enc.pretrain(circuits[:6], epochs=1, batch_size=1, progress=False)
    with pytest.raises(TypeError, match=r"circuits\[1\] is a str"):
        enc.pretrain([circuits[0], "ota.sp"], epochs=1, progress=False)
    with pytest.raises(TypeError, match="unknown DiceConfig field"):
        DiceEncoder(hiden=3)
    with pytest.raises(ValueError, match="n_positive"):
        DiceConfig(n_positive=1)
    with pytest.raises(ValueError, match="lr_schedule"):
        DiceConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="at least 2 held-out"):
        quality_report(enc, circuits[:1])
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_circuit(circuits, 1.0)
    with pytest.raises(ValueError, match="embeddings but"):
        retrieval_metrics(np.zeros((3, 2)), np.zeros(4))
    assert enc.epochs_trained == 0                                      # nothing ran


def test_cosine_schedule_logs_lr(circuits):
    enc = DiceEncoder(seed=0, lr_schedule="cosine", lr=1e-3, min_lr_ratio=0.1, **SMALL)
    hist = enc.pretrain(circuits[:8], epochs=3, progress=False)
    np.testing.assert_allclose(hist["lr"], [1e-3, 0.55e-3, 1e-4])


# -- quality on held-out circuits ------------------------------------------------------
def test_held_out_split(lib, circuits):
    train, held, distractors = held_out_split(lib, 0.25, seed=0)
    assert (len(train), len(held)) == (48, 16)
    text = lambda cs: {c.to_spice() for c in cs}                       # noqa: E731
    assert not text(train) & text(held) and text(distractors) <= text(train)
    fam = {c.to_spice(): e.family for c, e in zip(circuits, lib)}
    held_fams = {fam[c.to_spice()] for c in held}
    assert {fam[c.to_spice()] for c in distractors} == held_fams - {f for f in held_fams
                                                                   if sum(v == f for v in fam.values()) == 1}
    assert len(distractors) == sum(fam[c.to_spice()] in held_fams for c in train)
    with pytest.raises(ValueError, match="groups="):
        held_out_split(circuits)


def test_quality_report_fields_and_baseline(lib):
    train, held, distractors = held_out_split(lib, 0.25, seed=0)
    enc = DiceEncoder(seed=0)
    r = quality_report(enc, held, distractors)
    assert r["n_circuits"] == 16 and r["n_distractors"] == len(distractors) > 20
    assert (r["n_views"], r["n_negative"], r["n_subs"], r["negative_subs"]) == (8, 8, 4, 1)
    assert r["mean_subs"] > 3                         # views are far from trivial
    # an untrained encoder is well below the goal here: the evaluation is not too easy
    assert r["nn_accuracy"] < 0.9 and r["nn_accuracy"] <= r["nn_accuracy_positives"]
    # negatives and distractors only add candidates, so they can only take hits away
    easier = quality_report(enc, held, n_negative=0)
    assert easier["nn_accuracy"] == easier["nn_accuracy_positives"] == r["nn_accuracy_positives"]
    assert r["nn_accuracy"] <= quality_report(enc, held)["nn_accuracy"] <= easier["nn_accuracy"]
    assert r == quality_report(DiceEncoder(seed=0), held, distractors)          # deterministic
    with pytest.raises(ValueError, match="negative_subs"):
        quality_report(enc, held, negative_subs=0)


def test_quality_goal_on_held_out_circuits(lib):
    """The goal with the default config (100 epochs on 48 circuits, a few seconds): on 16
    held-out circuits among views of 30+ same-family siblings and one-change negatives, a
    view's nearest neighbour is one of its own positives >= 95 % of the time, well above the
    untrained encoder."""
    train, held, distractors = held_out_split(lib, 0.25, seed=0)
    enc = DiceEncoder(seed=0)
    before = quality_report(enc, held, distractors)
    enc.pretrain(train, progress=False)
    after = quality_report(enc, held, distractors)
    print(f"\nheld-out nn_accuracy {before['nn_accuracy']:.3f} -> {after['nn_accuracy']:.3f}, "
          f"alignment {before['alignment']:.4f} -> {after['alignment']:.4f}, "
          f"uniformity {before['uniformity']:.3f} -> {after['uniformity']:.3f}")
    assert after["nn_accuracy"] >= 0.95 and after["nn_accuracy"] >= before["nn_accuracy"] + 0.1
    assert after["uniformity"] < before["uniformity"] - 1.0          # embeddings no longer collapsed
    assert after["alignment"] < 0.5                                    # views of a circuit stay close


@pytest.mark.slow
def test_quality_goal_over_splits(lib):
    """The goal over six held-out splits (each with its own encoder seed)."""
    before, after = [], []
    for split_seed in range(6):
        train, held, distractors = held_out_split(lib, 0.25, seed=split_seed)
        enc = DiceEncoder(seed=split_seed)
        before.append(quality_report(enc, held, distractors)["nn_accuracy"])
        enc.pretrain(train, progress=False)
        after.append(quality_report(enc, held, distractors)["nn_accuracy"])
        print(f"\nsplit {split_seed}: nn_accuracy {before[-1]:.3f} -> {after[-1]:.3f}")
    assert np.mean(after) >= 0.95 and min(after) >= 0.93
    assert np.mean(after) >= np.mean(before) + 0.1 and max(before) < 0.95


@pytest.mark.slow
def test_quality_half_the_library_held_out(lib):
    """Harder: 32 circuits held out, 32 to train on."""
    accs = []
    for split_seed in range(4):
        train, held, distractors = held_out_split(lib, 0.5, seed=split_seed)
        enc = DiceEncoder(seed=split_seed)
        before = quality_report(enc, held, distractors)
        enc.pretrain(train, progress=False)
        after = quality_report(enc, held, distractors)
        print(f"\nhalf held out, split {split_seed}: {before['nn_accuracy']:.3f} -> {after['nn_accuracy']:.3f}")
        accs.append(after["nn_accuracy"])
    assert np.mean(accs) >= 0.9
