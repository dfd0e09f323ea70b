/* dice.h: the DICE encoder (Device-level Integrated Circuits Encoder), forward and backward.
 *
 * node features x[N,Fn] -> Linear -> BatchNorm -> GELU -> Linear -> h0[N,H]
 * edge features a[E,Fe] -> Linear -> BatchNorm -> GELU -> Linear -> e0[E,H]
 * L layers of GIN with edge-feature update (conv GNN_DICE, the default):
 *     m_e = h[src_e] * e_e;  z_n = sum_{dst_e = n} m_e
 *     h'  = MLP_n((1 + eps_n) h + z);   e' = MLP_e((1 + eps_e) e + z[src] - z[dst])
 *     MLP = Linear -> GELU -> Dropout(p) -> Linear
 * or L plain layers from gnn.h (conv GNN_GIN, GNN_GCN, GNN_SAGE, GNN_GAT), each followed by
 *     GELU -> Dropout(p): they read node states and edge_index only, so the edge encoder is
 *     not built and the readout sums nodes alone.
 * readout: g = sum of a graph's h_L rows + sum of its e_L rows -> Linear -> BatchNorm -> GELU
 *          -> Linear -> y[G,D]
 * Sizes: N nodes, E edges, G graphs, Fn/Fe input widths, H hidden (DICE: 512), D output
 * (DICE: 256), L layers (DICE: 2).
 * Memory: parameters, gradients and AdamW moments live in one block allocated at init (a
 * table of tensor sizes carves it); activations live in a second block sized for the largest
 * batch seen, grown only when a larger batch arrives (never inside the per-op loops). */
#ifndef CIRCML_NN_DICE_H
#define CIRCML_NN_DICE_H
#include <stdint.h>
#include "../util/status.h"
#include "ops.h"

typedef struct {
    int node_in, edge_in, hidden, out, layers;
    float dropout, bn_eps, bn_momentum;
    int conv;                /* gnn_conv (gnn.h); 0 = DICE's GIN with edge features */
    int heads, gat_concat;   /* GAT only (gnn_spec's heads, concat) */
} cm_dice_config;

enum { DICE_ENC_W1, DICE_ENC_B1, DICE_ENC_G, DICE_ENC_BETA, DICE_ENC_W2, DICE_ENC_B2, DICE_ENC_N };
enum { DICE_MLP_WA, DICE_MLP_BA, DICE_MLP_WB, DICE_MLP_BB, DICE_MLP_N };

typedef struct {
    real *enc_node[DICE_ENC_N], *enc_edge[DICE_ENC_N], *head[DICE_ENC_N];
    real **eps_n, **eps_e;        /* [L] scalars */
    real *(*mlp_n)[DICE_MLP_N], *(*mlp_e)[DICE_MLP_N];   /* [L][4] */
} cm_dice_tensors;

/* Batch-norm statistics of one encoder: saved per batch (forward) and running (eval). */
typedef struct { real *mean, *rstd, *run_mean, *run_var; } cm_dice_bn;

typedef struct cm_dice cm_dice;

cm_status cm_dice_init(cm_dice **out, const cm_dice_config *cfg, uint64_t seed, cm_error *err);
void cm_dice_free(cm_dice *m);
int64_t cm_dice_num_params(const cm_dice *m);
real *cm_dice_params(cm_dice *m);      /* [P] flat, in table order */
real *cm_dice_grads(cm_dice *m);       /* [P] */
real *cm_dice_buffers(cm_dice *m, int64_t *n);  /* running BN statistics, [n] flat */
const cm_dice_config *cm_dice_get_config(const cm_dice *m);
/* Name and size of parameter tensor i (for saving with names), -1 past the end. */
int64_t cm_dice_tensor(const cm_dice *m, int i, const char **name);

/* Forward a collated batch. Inputs: x[N,Fn], ea[E,Fe], src[E], dst[E] (node ids), node_graph[N],
 * edge_graph[E] (graph of each row, in [0, G)). training: batch statistics + dropout (seeded),
 * else running statistics and no dropout. y[G,D] is written. */
cm_status cm_dice_forward(cm_dice *m, real *y, const real *x, const real *ea, const int64_t *src, const int64_t *dst,
                          const int64_t *node_graph, const int64_t *edge_graph, int64_t N, int64_t E, int64_t G,
                          int training, uint64_t seed, cm_error *err);
/* Backward of the last training forward: accumulates into the gradient block. */
cm_status cm_dice_backward(cm_dice *m, const real *dy, cm_error *err);
void cm_dice_zero_grad(cm_dice *m);
/* Two exact shortcuts, on by default: the node and edge encoders run on the distinct input rows
 * when rows repeat (one-hot types), and the readout is folded into the last layer (its second
 * Linears run on the pooled graph rows). Same values to rounding, far less work. Off computes
 * row by row, as a plain implementation would (for tests and the benchmark's same-work run). */
void cm_dice_set_grouping(cm_dice *m, int on);
void cm_dice_adamw(cm_dice *m, real lr, real beta1, real beta2, real eps, real weight_decay);

#endif
