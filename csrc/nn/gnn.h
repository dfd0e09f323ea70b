/* gnn.h: plain message-passing layers over an edge list, the alternatives to DICE's GIN with
 * edge features (DICE compares them): GIN, GCN, GraphSAGE (mean) and GAT.
 *
 * Every layer maps h[N,H] -> out[N,H] over directed edges src[e] -> dst[e] (messages flow
 * from src to dst; an undirected graph lists both directions):
 *   GIN   out = MLP((1 + eps) h + sum_{j->i} h_j),  MLP = Linear -> GELU -> Linear, eps learnable
 *   GCN   out = D^-1/2 (A + I) D^-1/2 h W^T + b,     D = 1 + in-degree (A counts repeated edges)
 *   SAGE  out = h W_self^T + mean_{j->i} h_j W_neigh^T + b   (mean of no neighbours = 0)
 *   GAT   K heads: xw = h W^T; logit_ij,k = LeakyReLU_0.2(att_src_k . xw_j,k + att_dst_k . xw_i,k)
 *         over j in {i} + {j->i} (one self-loop added; an explicit i->i edge would count twice);
 *         alpha = softmax over those j; out_i,k = sum_j alpha_ij,k xw_j,k; heads concatenated
 *         (each H/K wide) or averaged (each H wide), + b.
 * Sizes: N nodes, E edges, H width, K heads, C head width, HC = K*C.
 * Conventions (ops.h): forward(out, act, inp, params, graph, spec); backward(dinp, dparams,
 * dout, inp, params, act, graph, spec, scratch) ACCUMULATES into dinp and dparams. params and
 * dparams are arrays of tensor pointers in gnn_tensors' order; act (written by forward, read
 * by backward) and scratch are caller-owned blocks of gnn_*_size reals, laid out by the
 * actual N and E of the call (so a block sized for a larger batch serves a smaller one).
 * Determinism: every sum runs in a fixed order (edge lists grouped by target or by source in
 * gnn_graph_init's stable order); loops are split so each output has one writer, no atomics;
 * results are the same for any thread count. */
#ifndef CIRCML_NN_GNN_H
#define CIRCML_NN_GNN_H
#include <stdint.h>
#include "../util/status.h"
#include "ops.h"

typedef enum { GNN_DICE = 0, GNN_GIN = 1, GNN_GCN = 2, GNN_SAGE = 3, GNN_GAT = 4 } gnn_conv;

typedef struct {
    int conv;     /* gnn_conv */
    int hidden;   /* H */
    int heads;    /* GAT: K >= 1 */
    int concat;   /* GAT: 1 concatenates K heads of H/K (H % K == 0), 0 averages K heads of H */
} gnn_spec;

/* The edge list with both groupings (built once per batch). */
typedef struct {
    int64_t N, E;
    const int64_t *src, *dst;            /* [E] */
    const int64_t *dst_ptr, *dst_edges;  /* [N+1], [E]: edges into each node, in edge order */
    const int64_t *src_ptr, *src_edges;  /* [N+1], [E]: edges out of each node, in edge order */
} gnn_graph;

/* Build both groupings into csr[2 (N + 1) + 2 E] (caller-owned); src, dst must hold node ids in
 * [0, N) (not checked here) and outlive g. */
void gnn_graph_init(gnn_graph *g, int64_t *csr, const int64_t *src, const int64_t *dst, int64_t N, int64_t E);

/* CM_OK, or CM_ERR_VALUE with a message for an impossible spec (unknown conv, H < 1, K < 1,
 * concat with H % K != 0). */
cm_status gnn_spec_check(const gnn_spec *s, cm_error *err);
/* Parameter tensors of one layer: writes up to GNN_MAX_TENSORS names ("gin.eps", ...) and sizes,
 * returns the count (0 for GNN_DICE, whose layer lives in dice.c). Tensors named "*eps" start at
 * 0, the rest U(-1/sqrt(H), 1/sqrt(H)) (every Linear here has fan-in H). */
#define GNN_MAX_TENSORS 5
int gnn_tensors(const gnn_spec *s, const char **names, int64_t *sizes);
/* reals of act / scratch one layer needs for N nodes and E edges (monotone in both) */
int64_t gnn_act_size(const gnn_spec *s, int64_t N, int64_t E);
int64_t gnn_scratch_size(const gnn_spec *s, int64_t N, int64_t E);

/* The layers. out[N,H], inp[N,H]; p / dp as gnn_tensors lists them. */
enum { GIN_EPS, GIN_WA, GIN_BA, GIN_WB, GIN_BB };
void gin_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s);
void gin_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                  const gnn_graph *g, const gnn_spec *s, real *scratch);
enum { GCN_W, GCN_B };
void gcn_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s);
void gcn_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                  const gnn_graph *g, const gnn_spec *s, real *scratch);
enum { SAGE_W_SELF, SAGE_W_NEIGH, SAGE_B };
void sage_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s);
void sage_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                   const gnn_graph *g, const gnn_spec *s, real *scratch);
enum { GAT_W, GAT_ATT_SRC, GAT_ATT_DST, GAT_B };
void gat_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s);
void gat_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p, const real *act,
                  const gnn_graph *g, const gnn_spec *s, real *scratch);

/* One encoder block: out = Dropout(GELU(conv(inp))) for the spec's conv (not GNN_DICE).
 * training: dropout with the counter-based mask of `seed` (p = dropout), and act keeps what
 * backward needs; otherwise no dropout (backward must not follow). gnn_block_act_size /
 * gnn_block_scratch_size give the block sizes (the conv's plus one [N,H] each). */
int64_t gnn_block_act_size(const gnn_spec *s, int64_t N, int64_t E);
int64_t gnn_block_scratch_size(const gnn_spec *s, int64_t N, int64_t E);
void gnn_block_forward(real *out, real *act, const real *inp, real *const *p, const gnn_graph *g, const gnn_spec *s,
                       int training, real dropout, uint64_t seed);
void gnn_block_backward(real *dinp, real *const *dp, const real *dout, const real *inp, real *const *p,
                        const real *act, const gnn_graph *g, const gnn_spec *s, real *scratch);

#endif
