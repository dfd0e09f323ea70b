"""The DICE encoder with plain GIN, GCN, GraphSAGE and GAT layers (csrc/nn/gnn.c) against
PyTorch twins written with plain tensor ops (index_add_, scatter_reduce; no PyG), skipped
without torch.

Each twin is the layer as gnn.h defines it, followed by GELU and dropout (C's counter-based
masks replayed), inside DICE's node encoder, sum readout and head (the twin pieces of
tests/test_dice_torch.py). The C model's parameters are copied in by name; on a real augmented
batch of library circuits the embeddings, DICE's contrastive loss and every parameter gradient
must agree with the float64 twin to 1e-4 in a norm-based relative error (float32 C).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from circml import _core  # noqa: E402
from circml.dice.encoder import CONV_TYPES  # noqa: E402
from test_dice_torch import (TAUS, TOL, Encoder, _batch, c_dropout_keep, c_layer_seeds, c_tensors,  # noqa: E402
                             dice_loss, rel_err, scatter_sum)


def _sum_into(src, index, n):
    return src.new_zeros((n,) + tuple(src.shape[1:])).index_add_(0, index, src)


class GINTwin(nn.Module):
    """out = Linear_b(GELU(Linear_a((1 + eps) h + sum_{j->i} h_j)))"""

    def __init__(self, H, heads=1, concat=True):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.wa, self.ba = nn.Parameter(torch.zeros(H, H)), nn.Parameter(torch.zeros(H))
        self.wb, self.bb = nn.Parameter(torch.zeros(H, H)), nn.Parameter(torch.zeros(H))

    def forward(self, h, src, dst):
        comb = (1 + self.eps) * h + _sum_into(h[src], dst, h.shape[0])
        if comb.requires_grad:
            comb.retain_grad()
            self.saved = (h, comb)
        return F.linear(F.gelu(F.linear(comb, self.wa, self.ba)), self.wb, self.bb)

    def eps_grad_terms(self):
        h, comb = self.saved
        return float((comb.grad * h.detach()).abs().sum())


class GCNTwin(nn.Module):
    """out = D^-1/2 (A + I) D^-1/2 h W^T + b, D = 1 + in-degree"""

    def __init__(self, H, heads=1, concat=True):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.zeros(H, H)), nn.Parameter(torch.zeros(H))

    def forward(self, h, src, dst):
        N = h.shape[0]
        dinv = (1.0 + torch.bincount(dst, minlength=N).to(h.dtype)).rsqrt()
        xw = h @ self.w.T
        msg = (dinv[src] * dinv[dst])[:, None] * xw[src]
        return self.b + (dinv * dinv)[:, None] * xw + _sum_into(msg, dst, N)


class SAGETwin(nn.Module):
    """out = h W_self^T + mean_{j->i} h_j W_neigh^T + b"""

    def __init__(self, H, heads=1, concat=True):
        super().__init__()
        self.w_self, self.w_neigh = nn.Parameter(torch.zeros(H, H)), nn.Parameter(torch.zeros(H, H))
        self.b = nn.Parameter(torch.zeros(H))

    def forward(self, h, src, dst):
        N = h.shape[0]
        cnt = torch.bincount(dst, minlength=N).clamp_min(1).to(h.dtype)
        mean = _sum_into(h[src], dst, N) / cnt[:, None]
        return h @ self.w_self.T + mean @ self.w_neigh.T + self.b


class GATTwin(nn.Module):
    """Additive attention with LeakyReLU(0.2), softmax over {i} + {j->i}, K heads concatenated
    (H/K each) or averaged (H each)."""

    def __init__(self, H, heads=1, concat=True):
        super().__init__()
        self.K, self.concat = heads, concat
        self.C = H // heads if concat else H
        HC = self.K * self.C
        self.w = nn.Parameter(torch.zeros(HC, H))
        self.att_src, self.att_dst = nn.Parameter(torch.zeros(HC)), nn.Parameter(torch.zeros(HC))
        self.b = nn.Parameter(torch.zeros(H))

    def forward(self, h, src, dst):
        N, K, C = h.shape[0], self.K, self.C
        loop = torch.arange(N)
        s, d = torch.cat([src, loop]), torch.cat([dst, loop])
        xw = (h @ self.w.T).view(N, K, C)
        a_s = (xw * self.att_src.view(K, C)).sum(-1)
        a_d = (xw * self.att_dst.view(K, C)).sum(-1)
        logit = F.leaky_relu(a_s[s] + a_d[d], 0.2)                       # [E + N, K]
        mx = torch.full((N, K), -torch.inf, dtype=h.dtype).scatter_reduce(0, d[:, None].expand(-1, K), logit, "amax")
        ex = (logit - mx[d].detach()).exp()
        alpha = ex / _sum_into(ex, d, N)[d]
        out = _sum_into(alpha[:, :, None] * xw[s], d, N)                   # [N, K, C]
        out = out.reshape(N, K * C) if self.concat else out.mean(1)
        return out + self.b


TWINS = {"gin": GINTwin, "gcn": GCNTwin, "sage": SAGETwin, "gat": GATTwin}


class PlainTwin(nn.Module):
    """DICE's node encoder, L x (conv -> GELU -> dropout), sum over nodes, head."""

    def __init__(self, conv, node_in, hidden, out, layers, dropout, heads=1, concat=True):
        super().__init__()
        self.node_enc = Encoder(node_in, hidden, hidden, 1e-5, 0.1)
        self.layers = nn.ModuleList(TWINS[conv](hidden, heads, concat) for _ in range(layers))
        self.head = Encoder(hidden, hidden, out, 1e-5, 0.1)
        self.p = dropout

    def forward(self, x, edge_index, batch, num_graphs, seed=None):
        src, dst = edge_index[0], edge_index[1]
        h = self.node_enc(x)
        for i, layer in enumerate(self.layers):
            h = F.gelu(layer(h, src, dst))
            if seed is not None and self.p > 0:
                keep = c_dropout_keep(c_layer_seeds(seed, i)[0], tuple(h.shape), self.p)
                h = h * torch.from_numpy(keep.astype(np.float64)).to(h.dtype) / (1.0 - self.p)
        return self.head(scatter_sum(h, batch, num_graphs))


def twin_name(c_name: str) -> str:
    """'layer1.gat.att_src' -> 'layers.1.att_src'; 'node_enc.w1' -> 'node_enc.lin1.weight'."""
    parts = c_name.split(".")
    if parts[0].startswith("layer"):
        return f"layers.{parts[0][5:]}.{parts[2]}"
    tail = {"w1": "lin1.weight", "b1": "lin1.bias", "w2": "lin2.weight", "b2": "lin2.bias"}
    rest = ".".join(parts[1:])
    return f"{parts[0]}.{tail.get(rest, rest)}"


def _setup(conv, hidden, out, dropout, heads, concat, n_circuits=48, seed=3):
    b, g, edge_batch = _batch(n_circuits)
    node_in, edge_in = g.x.shape[1], g.edge_attr.shape[1]
    model = _core.dice_init(node_in, edge_in, hidden, out, 2, dropout, 1e-5, 0.1, seed, CONV_TYPES.index(conv),
                            heads, int(concat))
    arr, tensors = c_tensors(model)
    rng = np.random.default_rng(seed)
    for name, size, off in tensors:   # move eps and the batch-norm affines off their init values
        if "eps" in name:
            arr["params"][off:off + size] = rng.uniform(-0.3, 0.3, size)
        elif "bn." in name:
            arr["params"][off:off + size] = (1.0 if name.endswith("weight") else 0.0) + rng.uniform(-0.2, 0.2, size)
    twin = PlainTwin(conv, node_in, hidden, out, 2, dropout, heads, concat)
    params = dict(twin.named_parameters())
    assert sorted(params) == sorted(twin_name(n) for n, _, _ in tensors), "the twin and C list different tensors"
    with torch.no_grad():
        for name, size, off in tensors:
            p = params[twin_name(name)]
            assert p.numel() == size, name
            p.copy_(torch.from_numpy(arr["params"][off:off + size].reshape(p.shape)))
    return b, g, edge_batch, model, twin.double()


CASES = [("gin", 1, True, 0.0), ("gcn", 1, True, 0.0), ("sage", 1, True, 0.0), ("gat", 4, True, 0.0),
         ("gat", 3, False, 0.0), ("gin", 1, True, 0.2), ("gcn", 1, True, 0.2), ("sage", 1, True, 0.2),
         ("gat", 4, True, 0.2)]


@pytest.mark.parametrize("conv,heads,concat,dropout", CASES)
def test_plain_conv_encoder_matches_pytorch(conv, heads, concat, dropout):
    hidden, out, seed = 64, 32, 1234
    b, g, edge_batch, model, twin = _setup(conv, hidden, out, dropout, heads, concat)
    twin.train()
    # C: forward, loss, backward
    y_c = _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch, g.num_graphs, True, seed)
    loss_c, dy_c, pairs = _core.contrastive_loss(y_c, b.base, b.negative.astype(np.uint8), *TAUS)
    assert pairs > 0
    _core.dice_zero_grad(model)
    _core.dice_backward(model, dy_c)
    arr, tensors = c_tensors(model)
    # twin in float64
    y_t = twin(torch.from_numpy(g.x).double(), torch.from_numpy(g.edge_index), torch.from_numpy(g.batch),
               g.num_graphs, seed)
    loss_t = dice_loss(y_t, torch.from_numpy(b.base), torch.from_numpy(b.negative), *TAUS)
    loss_t.backward()
    assert rel_err(y_c, y_t.detach()) < TOL
    assert abs(loss_c - loss_t.item()) < TOL * max(1.0, abs(loss_t.item())), (loss_c, loss_t.item())
    params = dict(twin.named_parameters())
    total = float(np.sqrt(sum(float((p.grad ** 2).sum()) for p in params.values())))
    assert total > 0
    for name, size, off in tensors:
        c, t = arr["grads"][off:off + size], params[twin_name(name)].grad.reshape(-1).numpy()
        if name.endswith(".eps"):
            # a scalar summed over every node entry with cancellation: good to ~1e-5 of the sum
            # of its terms' magnitudes (as in test_dice_torch), not of itself
            terms = twin.layers[int(name.split(".")[0][5:])].eps_grad_terms()
            assert abs(float(c[0]) - float(t[0])) <= TOL * max(abs(float(t[0])), 0.1 * terms), (name, c[0], t[0])
            continue
        if np.linalg.norm(t) < 1e-9 * total:
            # exactly zero in exact arithmetic (a Linear bias that feeds batch norm): rounding noise
            assert np.linalg.norm(c) < TOL * total, (name, np.linalg.norm(c), total)
            continue
        assert rel_err(c, t) < TOL, (f"gradient of {name}", rel_err(c, t))


@pytest.mark.parametrize("conv", ["gcn", "gat"])
def test_plain_conv_eval_matches_pytorch(conv):
    """Evaluation mode (running statistics, no dropout) and edge features ignored."""
    b, g, edge_batch, model, twin = _setup(conv, 32, 16, 0.2, 2, True, n_circuits=24)
    _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch, g.num_graphs, True, 5)
    buf = _core.dice_arrays(model)["buffers"].reshape(3, 2, -1)
    with torch.no_grad():
        for k, enc in ((0, twin.node_enc), (2, twin.head)):
            enc.bn.running_mean.copy_(torch.from_numpy(buf[k, 0]))
            enc.bn.running_var.copy_(torch.from_numpy(buf[k, 1]))
    twin.eval()
    y_c = _core.dice_forward(model, g.x, g.edge_attr, g.edge_index, g.batch, edge_batch, g.num_graphs, False, 0)
    y_c2 = _core.dice_forward(model, g.x, g.edge_attr + 1.0, g.edge_index, g.batch, edge_batch, g.num_graphs, False, 0)
    np.testing.assert_array_equal(y_c, y_c2)
    with torch.no_grad():
        y_t = twin(torch.from_numpy(g.x).double(), torch.from_numpy(g.edge_index), torch.from_numpy(g.batch),
                   g.num_graphs)
    assert rel_err(y_c, y_t) < TOL
