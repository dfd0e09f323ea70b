"""circml's C DICE encoder against a PyTorch twin of the same model (skipped without torch).

The twin below is DICE exactly as csrc/nn/dice.c computes it, written the way a PyTorch user
would (nn.Linear, nn.BatchNorm1d in training mode, exact-erf GELU, index_add_ / PyG scatter),
plus DICE's three-temperature contrastive loss as csrc/nn/loss.h documents it. The C model's
parameters are copied in by tensor name and both run on a real augmented batch of library
circuits; forward embeddings, the loss, every parameter gradient, the running batch-norm
statistics and one AdamW step must agree to 1e-4 in a norm-based relative error
(||c - t|| / max(||t||, tiny), float32 on both sides).

Dropout: the C masks come from a counter-based hash (ops.c ``cm_uniform``), which is
reimplemented here in NumPy, so the twin can replay C's masks and the comparison also holds
with dropout 0.2; and masks must be deterministic for a seed and change with it.

benchmarks/bench_gnn.py imports :class:`DiceTwin` and :func:`dice_loss` from this file.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

try:  # PyTorch Geometric's scatter when it imports; plain index_add_ otherwise
    from torch_geometric.utils import scatter as _pyg_scatter
except Exception:  # pragma: no cover - depends on the environment
    _pyg_scatter = None

from circml import _core  # noqa: E402

HAVE_PYG = _pyg_scatter is not None


def scatter_sum(src: "torch.Tensor", index: "torch.Tensor", dim_size: int) -> "torch.Tensor":
    """Sum rows of ``src`` into ``dim_size`` segments given by ``index``."""
    if _pyg_scatter is not None:
        return _pyg_scatter(src, index, dim=0, dim_size=dim_size, reduce="sum")
    return src.new_zeros((dim_size, src.shape[1])).index_add_(0, index, src)


# -- the counter-based RNG of csrc/nn/ops.c, in NumPy ---------------------------------------
_U64 = np.uint64


def _mix64(x):
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def c_dropout_keep(seed: int, shape, p: float) -> np.ndarray:
    """The keep mask dropout_forward draws for ``seed``: element i (row-major) is kept when
    cm_uniform(seed, i) >= p, with p compared as the C float it is."""
    n = int(np.prod(shape))
    u = (_mix64(_U64(seed) ^ _mix64(np.arange(n, dtype=np.uint64))) >> _U64(11)).astype(np.float64) * 2.0**-53
    return (u >= float(np.float32(p))).reshape(shape)


def c_layer_seeds(seed: int, layer: int):
    """Seeds of layer ``layer``'s node and edge dropout masks (cm_dice_forward)."""
    s = _mix64(_U64(seed) ^ _mix64(_U64(layer * 2 + 0x5151)))
    return int(s), int(_mix64(s))


# -- the twin -------------------------------------------------------------------------------
class Encoder(nn.Module):
    """Linear -> BatchNorm1d -> GELU -> Linear (DICE's node/edge encoders and head)."""

    def __init__(self, fin: int, hidden: int, fout: int, bn_eps: float, bn_momentum: float):
        super().__init__()
        self.lin1 = nn.Linear(fin, hidden)
        self.bn = nn.BatchNorm1d(hidden, eps=bn_eps, momentum=bn_momentum)
        self.lin2 = nn.Linear(hidden, fout)

    def forward(self, x):
        return self.lin2(F.gelu(self.bn(self.lin1(x))))


class MLP(nn.Module):
    """Linear -> GELU -> Dropout -> Linear; ``keep`` replays a given dropout mask."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.lin_a = nn.Linear(hidden, hidden)
        self.lin_b = nn.Linear(hidden, hidden)
        self.p = dropout

    def forward(self, x, keep=None):
        g = F.gelu(self.lin_a(x))
        if keep is not None:
            g = g * keep * (1.0 / (1.0 - self.p))
        else:
            g = F.dropout(g, self.p, self.training)
        return self.lin_b(g)


class GINELayer(nn.Module):
    """GIN with edge-feature update: m = h[src] * e, z = sum of m into dst,
    h' = MLP_n((1 + eps_n) h + z), e' = MLP_e((1 + eps_e) e + z[src] - z[dst])."""

    def __init__(self, hidden: int, dropout: float):
        super().__init__()
        self.eps_n = nn.Parameter(torch.zeros(1))
        self.eps_e = nn.Parameter(torch.zeros(1))
        self.node_mlp = MLP(hidden, dropout)
        self.edge_mlp = MLP(hidden, dropout)

    def forward(self, h, e, src, dst, keep_n=None, keep_e=None):
        z = scatter_sum(h[src] * e, dst, h.shape[0])
        comb_n = (1 + self.eps_n) * h + z
        comb_e = (1 + self.eps_e) * e + (z[src] - z[dst])
        if comb_n.requires_grad:  # kept so a test can see what d eps sums over
            comb_n.retain_grad()
            comb_e.retain_grad()
            self.saved = (h, comb_n, e, comb_e)
        return self.node_mlp(comb_n, keep_n), self.edge_mlp(comb_e, keep_e)

    def eps_grad_terms(self):
        """sum |terms| of d loss / d eps_n and d eps_e (each is a sum over every h or e entry)."""
        h, comb_n, e, comb_e = self.saved
        return (float((comb_n.grad * h.detach()).abs().sum()), float((comb_e.grad * e.detach()).abs().sum()))


class DiceTwin(nn.Module):
    """DICE in PyTorch, parameter for parameter the model of csrc/nn/dice.c."""

    def __init__(self, node_in: int, edge_in: int, hidden: int, out: int, layers: int, dropout: float = 0.2,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.node_enc = Encoder(node_in, hidden, hidden, bn_eps, bn_momentum)
        self.edge_enc = Encoder(edge_in, hidden, hidden, bn_eps, bn_momentum)
        self.layers = nn.ModuleList(GINELayer(hidden, dropout) for _ in range(layers))
        self.head = Encoder(hidden, hidden, out, bn_eps, bn_momentum)

    def forward(self, x, edge_attr, edge_index, batch, edge_batch, num_graphs: int, keeps=None):
        src, dst = edge_index[0], edge_index[1]
        h, e = self.node_enc(x), self.edge_enc(edge_attr)
        for i, layer in enumerate(self.layers):
            kn, ke = keeps[i] if keeps is not None else (None, None)
            h, e = layer(h, e, src, dst, kn, ke)
        pooled = scatter_sum(h, batch, num_graphs) + scatter_sum(e, edge_batch, num_graphs)
        return self.head(pooled)

    def c_masks(self, seed: int, N: int, E: int):
        """C's dropout masks for a training forward with ``seed``, as float tensors."""
        out = []
        for i, layer in enumerate(self.layers):
            sn, se = c_layer_seeds(seed, i)
            p, H = layer.node_mlp.p, layer.node_mlp.lin_a.out_features
            out.append((torch.from_numpy(c_dropout_keep(sn, (N, H), p).astype(np.float32)),
                        torch.from_numpy(c_dropout_keep(se, (E, H), p).astype(np.float32))))
        return out


def torch_name(c_name: str) -> str:
    """The twin's parameter name for a C tensor name (dice.c's table)."""
    parts = c_name.split(".")
    if parts[0].startswith("layer"):
        rest = ".".join(parts[1:])
        rest = {"eps_n": "eps_n", "eps_e": "eps_e"}.get(rest, rest)
        for mlp in ("node_mlp", "edge_mlp"):
            for c, t in (("wa", "lin_a.weight"), ("ba", "lin_a.bias"), ("wb", "lin_b.weight"), ("bb", "lin_b.bias")):
                if rest == f"{mlp}.{c}":
                    rest = f"{mlp}.{t}"
        return f"layers.{parts[0][5:]}.{rest}"
    tail = {"w1": "lin1.weight", "b1": "lin1.bias", "w2": "lin2.weight", "b2": "lin2.bias"}
    rest = ".".join(parts[1:])
    return f"{parts[0]}.{tail.get(rest, rest)}"


def c_tensors(model):
    """(name, size, offset) of every tensor in the C parameter block."""
    arr = _core.dice_arrays(model)
    off, out = 0, []
    for name, size in arr["tensors"]:
        out.append((name, size, off))
        off += size
    return arr, out


def copy_c_to_twin(model, twin: DiceTwin) -> None:
    """Copy parameters and running statistics of the C model into the twin, by name."""
    arr, tensors = c_tensors(model)
    params = dict(twin.named_parameters())
    assert len(params) == len(tensors), "the twin and the C model have different parameter lists"
    with torch.no_grad():
        for name, size, off in tensors:
            p = params[torch_name(name)]
            assert p.numel() == size, name
            p.copy_(torch.from_numpy(arr["params"][off:off + size].reshape(p.shape)))
        buf = arr["buffers"].reshape(3, 2, -1)
        for k, enc in enumerate((twin.node_enc, twin.edge_enc, twin.head)):
            enc.bn.running_mean.copy_(torch.from_numpy(buf[k, 0]))
            enc.bn.running_var.copy_(torch.from_numpy(buf[k, 1]))


def dice_loss(y, group, negative, tau: float, tau_p: float, tau_n: float):
    """DICE's contrastive loss (csrc/nn/loss.h): cosine sims of L2-normalised rows; for each
    ordered positive pair (i, j), -[s_ij / tau - log(sum_pos(i) e^{s/tau_p} + sum_neg(i) e^{s/tau_n})],
    averaged. pos(i): other non-negative views of i's group; neg(i): everything else but i.
    Negative views anchor no pair."""
    u = F.normalize(y, dim=1, eps=1e-12)
    s = u @ u.T
    G = y.shape[0]
    eye = torch.eye(G, dtype=torch.bool)
    pos = (group[:, None] == group[None, :]) & ~negative[None, :] & ~eye
    logits = torch.where(pos, s / tau_p, s / tau_n).masked_fill(eye, float("-inf"))
    lse = torch.logsumexp(logits, dim=1, keepdim=True)
    pairs = pos & ~negative[:, None]
    return -(s / tau - lse)[pairs].sum() / pairs.sum().clamp_min(1)


# -- comparison -----------------------------------------------------------------------------
def rel_err(c, t) -> float:
    """||c - t|| / ||t|| (with a floor for an all-zero reference), in float64."""
    c = np.asarray(c, dtype=np.float64).ravel()
    t = np.asarray(t, dtype=np.float64).ravel()
    return float(np.linalg.norm(c - t) / max(np.linalg.norm(t), 1e-20))


TOL = 1e-4
TAUS = (0.05, 0.2, 0.05)  # DICE: tau, tau_p, tau_n


def _batch(n_circuits: int, seed: int = 0):
    from circml.datasets import circuit_library
    from circml.dice import augment_batch

    circuits = [e.circuit for e in circuit_library()][:n_circuits]
    b = augment_batch(circuits, n_positive=2, n_negative=1, n_subs=1, seed=seed)
    g = b.graph
    edge_batch = g.batch[g.edge_index[0]]
    return b, g, edge_batch


def _c_model(node_in, edge_in, hidden, out, layers, dropout, seed=3):
    model = _core.dice_init(node_in, edge_in, hidden, out, layers, dropout, 1e-5, 0.1, seed)
    arr, tensors = c_tensors(model)
    # move the scalars and batch-norm affines off their init values so every path is exercised
    rng = np.random.default_rng(seed)
    for name, size, off in tensors:
        if "eps" in name:
            arr["params"][off:off + size] = rng.uniform(-0.3, 0.3, size)
        elif "bn." in name:
            base = 1.0 if name.endswith("weight") else 0.0
            arr["params"][off:off + size] = base + rng.uniform(-0.2, 0.2, size)
    return model


def _inputs(g, edge_batch):
    return (torch.from_numpy(g.x), torch.from_numpy(g.edge_attr), torch.from_numpy(g.edge_index),
            torch.from_numpy(g.batch), torch.from_numpy(edge_batch))


def _make_twin(model, dims, dropout, dtype):
    """A twin holding the C model's current parameters and running statistics, in ``dtype``."""
    twin = DiceTwin(*dims, dropout)
    copy_c_to_twin(model, twin)
    return twin.to(dtype).train()


def _run_twin(twin, b, g, edge_batch, dropout, seed, dtype):
    """Forward, loss and backward of a twin on the batch."""
    x, ea, ei, bt, eb = _inputs(g, edge_batch)
    keeps = twin.c_masks(seed, g.num_nodes, g.num_edges) if dropout > 0 else None
    if keeps is not None:
        keeps = [(kn.to(dtype), ke.to(dtype)) for kn, ke in keeps]
    y = twin(x.to(dtype), ea.to(dtype), ei, bt, eb, g.num_graphs, keeps)
    loss = dice_loss(y, torch.from_numpy(b.base), torch.from_numpy(b.negative), *TAUS)
    loss.backward()
    return twin, y.detach(), loss.item()


@pytest.mark.parametrize("hidden,out,n_circuits,dropout", [(64, 32, 64, 0.0), (512, 256, 12, 0.0),
                                                           (64, 32, 64, 0.2)])
def test_c_dice_matches_pytorch(hidden, out, n_circuits, dropout):
    """The reference is the twin in float64 (the C float32 model agrees with it to ~1e-5 or better);
    the twin in float32 is itself ~5e-4 away from it on these batches (its batch norm over
    one-hot features loses digits), so against float32 PyTorch the C model must be about as
    far as float64 PyTorch is: within 1.1 times that distance, plus 1e-4."""
    torch.manual_seed(0)
    b, g, edge_batch = _batch(n_circuits)
    dims = (g.x.shape[1], g.edge_attr.shape[1], hidden, out, 2)
    seed = 1234
    model = _c_model(*dims, dropout)
    twin64 = _make_twin(model, dims, dropout, torch.float64)
    twin32 = _make_twin(model, dims, dropout, torch.float32)

    # C: forward, loss and its gradient, backward
    y_c = _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch, g.num_graphs, True, seed)
    loss_c, dy_c, pairs = _core.contrastive_loss(y_c, b.base, b.negative.astype(np.uint8), *TAUS)
    assert pairs > 0
    _core.dice_zero_grad(model)
    _core.dice_backward(model, dy_c)
    arr, tensors = c_tensors(model)

    _, y64, loss64 = _run_twin(twin64, b, g, edge_batch, dropout, seed, torch.float64)
    _, y32, loss32 = _run_twin(twin32, b, g, edge_batch, dropout, seed, torch.float32)

    def agree(what, c, t64, t32):
        e64, e32, base = rel_err(c, t64), rel_err(c, t32), rel_err(t32, t64)
        assert e64 < TOL, (what, "C vs float64 twin", e64)
        assert e32 < 1.1 * base + TOL, (what, "C vs float32 twin", e32, "float32 twin vs float64", base)

    agree("embeddings", y_c, y64, y32)
    assert abs(loss_c - loss64) < TOL * max(1.0, abs(loss64)), (loss_c, loss64)
    assert abs(loss_c - loss32) < abs(loss32 - loss64) + TOL * max(1.0, abs(loss64)), (loss_c, loss32)
    p64, p32 = dict(twin64.named_parameters()), dict(twin32.named_parameters())
    total = float(np.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in p64.values())))
    eps_terms = {}
    for i, layer in enumerate(twin64.layers):
        eps_terms[f"layer{i}.eps_n"], eps_terms[f"layer{i}.eps_e"] = layer.eps_grad_terms()
    for name, size, off in tensors:
        key = torch_name(name)
        c, t64 = arr["grads"][off:off + size], p64[key].grad.reshape(-1)
        if name in eps_terms:
            # a scalar summed over every node or edge entry with heavy cancellation (sum|terms|
            # is ~1000x the sum here): the terms carry float32 errors of ~1e-5 relative, as the
            # other gradients show, so the sum is good to ~1e-5 of sum|terms|, not of itself
            err, t = abs(float(c[0]) - float(t64[0])), abs(float(t64[0]))
            assert err <= TOL * max(t, 0.1 * eps_terms[name]), (name, float(c[0]), float(t64[0]), eps_terms[name])
            continue
        if float(t64.norm()) < 1e-9 * total:
            # exactly zero in exact arithmetic (the bias of a Linear that feeds a batch norm):
            # C's value is rounding noise, measured against the whole gradient's norm
            assert np.linalg.norm(c) < TOL * total, (name, np.linalg.norm(c), total)
            continue
        agree(f"gradient of {name}", c, t64, p32[key].grad.reshape(-1))

    # running batch-norm statistics after the forward
    buf = arr["buffers"].reshape(3, 2, -1)
    for k, (e64, e32) in enumerate(zip((twin64.node_enc, twin64.edge_enc, twin64.head),
                                       (twin32.node_enc, twin32.edge_enc, twin32.head))):
        agree(f"running mean {k}", buf[k, 0], e64.bn.running_mean, e32.bn.running_mean)
        agree(f"running var {k}", buf[k, 1], e64.bn.running_var, e32.bn.running_var)

    # one AdamW step: PyTorch's AdamW, fed C's gradients, must move every parameter as C does
    # (feeding C's own gradients keeps rounding-level gradients, e.g. of the biases above,
    # from turning into sign flips of Adam's ~lr * sign(g) first step)
    lr, wd = 1e-3, 0.01
    opt_twin = _make_twin(model, dims, dropout, torch.float32)
    popt = dict(opt_twin.named_parameters())
    for name, size, off in tensors:
        p = popt[torch_name(name)]
        p.grad = torch.from_numpy(arr["grads"][off:off + size].copy()).reshape(p.shape)
    before = arr["params"].copy()
    opt = torch.optim.AdamW(opt_twin.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    for _ in range(2):  # a second step reads the moments the first one left
        _core.dice_adamw(model, lr, 0.9, 0.999, 1e-8, wd)
        opt.step()
    for name, size, off in tensors:
        t = popt[torch_name(name)].detach().reshape(-1).numpy()
        c = arr["params"][off:off + size]
        assert rel_err(c, t) < TOL, ("parameters after AdamW", name)
        assert rel_err(c - before[off:off + size], t - before[off:off + size]) < TOL, ("AdamW update", name)


def test_c_dropout_masks_deterministic_and_seeded():
    b, g, edge_batch = _batch(16)
    node_in, edge_in = g.x.shape[1], g.edge_attr.shape[1]
    model = _c_model(node_in, edge_in, 32, 16, 2, 0.2)
    run = lambda s: _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch,  # noqa: E731
                                       g.num_graphs, True, s)
    y1, y2, y3 = run(7), run(7), run(8)
    np.testing.assert_array_equal(y1, y2)
    assert rel_err(y1, y3) > 1e-3
    # the masks themselves: keep rate near 1 - p, and distinct per layer, path and seed
    k7 = c_layer_seeds(7, 0)
    m7 = c_dropout_keep(k7[0], (g.num_nodes, 32), 0.2)
    assert abs(m7.mean() - 0.8) < 0.02
    assert (m7 != c_dropout_keep(c_layer_seeds(8, 0)[0], m7.shape, 0.2)).mean() > 0.2
    assert (m7 != c_dropout_keep(c_layer_seeds(7, 1)[0], m7.shape, 0.2)).mean() > 0.2
    assert (m7[:100] != c_dropout_keep(k7[1], (g.num_edges, 32), 0.2)[:100]).mean() > 0.2


def test_eval_forward_matches_pytorch_eval():
    """Evaluation mode: running statistics, no dropout."""
    b, g, edge_batch = _batch(24)
    node_in, edge_in = g.x.shape[1], g.edge_attr.shape[1]
    model = _c_model(node_in, edge_in, 64, 32, 2, 0.2)
    twin = DiceTwin(node_in, edge_in, 64, 32, 2, 0.2)
    # one training forward moves the running statistics away from (0, 1)
    _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch, g.num_graphs, True, 5)
    copy_c_to_twin(model, twin)
    twin.eval()
    y_c = _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch, g.num_graphs, False, 0)
    with torch.no_grad():
        y_t = twin(*_inputs(g, edge_batch), g.num_graphs)
    assert rel_err(y_c, y_t) < TOL
