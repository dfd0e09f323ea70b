"""The plain message-passing layers of csrc/nn/gnn.c (GIN, GCN, GraphSAGE, GAT and the encoder
block): gradient checks in double precision (csrc/tests/test_gnn_grad.c), built with
sanitizers, run serially and with 2 OpenMP threads (the C test also compares 1 and 2 threads
bitwise on a batch large enough to run in parallel)."""

import pytest

from _cbuild import check_counts, exe_fixture, run_program

SOURCES = ["csrc/tests/test_gnn_grad.c", "csrc/nn/gnn.c", "csrc/nn/dice.c", "csrc/nn/ops.c", "csrc/nn/gemm.c",
           "csrc/util/status.c"]


exe = exe_fixture("test_gnn_grad", SOURCES, ["-DCM_REAL=double"])


@pytest.mark.parametrize("threads", ["1", "2"])
def test_gnn_gradients_match_central_differences(exe, threads):
    r = run_program(exe, threads, timeout=240, UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    passed, failed, _, last = check_counts(r)
    assert "runtime error" not in r.stderr, r.stderr[-3000:]
    assert failed == 0 and passed >= 1000, last


# -- the plain layers inside DiceEncoder ----------------------------------------------------
@pytest.mark.parametrize("conv", ["gin", "gcn", "sage", "gat"])
def test_encoder_with_plain_conv_trains_saves_and_loads(conv, tmp_path):
    import numpy as np

    from circml.datasets import circuit_library
    from circml.dice import DiceEncoder

    circuits = [e.circuit for e in circuit_library()][:12]
    enc = DiceEncoder(hidden=32, out=16, conv=conv, seed=1)
    names = [n for n in enc.state_dict() if n.startswith("layer")]
    assert names and all(f".{conv}." in n for n in names)
    assert not any(n.startswith("edge_enc") for n in enc.state_dict())
    before = enc.embed(circuits)
    hist = enc.pretrain(circuits, epochs=3, batch_size=6, progress=False)
    assert len(hist["train_loss"]) == 3 and np.isfinite(hist["train_loss"]).all()
    after = enc.embed(circuits)
    assert after.shape == (12, 16) and np.isfinite(after).all()
    assert np.abs(after - before).max() > 1e-4           # training moved the weights
    enc.save(tmp_path / "enc.npz")
    back = DiceEncoder.load(tmp_path / "enc.npz")
    assert back.config.conv == conv
    np.testing.assert_array_equal(back.embed(circuits), after)
    # same seed, same config: the same embeddings (deterministic)
    again = DiceEncoder(hidden=32, out=16, conv=conv, seed=1)
    again.pretrain(circuits, epochs=3, batch_size=6, progress=False)
    np.testing.assert_array_equal(again.embed(circuits), after)


def test_encoder_conv_config_errors():
    from circml.dice import DiceConfig, DiceEncoder

    with pytest.raises(ValueError, match="conv must be one of"):
        DiceConfig(conv="transformer")
    with pytest.raises(ValueError, match="divisible by heads"):
        DiceConfig(conv="gat", hidden=30, heads=4)
    with pytest.raises(ValueError, match="heads must be at least 1"):
        DiceConfig(conv="gat", heads=0)
    DiceConfig(conv="gat", hidden=30, heads=4, gat_concat=False)   # averaged heads: any width
    assert DiceConfig().conv == "dice"
    assert DiceEncoder(hidden=16, out=8).state_dict().keys() >= {"edge_enc.w1", "layer0.eps_n"}
