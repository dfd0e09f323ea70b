/* test_gnn_grad.c: gradient checks of csrc/nn/gnn.c (GIN, GCN, GraphSAGE, GAT and the encoder
 * block), compiled with -DCM_REAL=double. For each layer: loss = sum(out * r) with random r;
 * backward(dout = r) must match central differences (h = 1e-6) on every parameter and input
 * entry. The graph has a node without incoming edges, a repeated edge and a 2-cycle. Also:
 * backward accumulates, GAT's attention rows sum to 1, GCN on a graph without edges is
 * h W^T + b, and (with OpenMP) a batch large enough to run parallel gives the same bits with
 * 1 and 2 threads; and the DICE encoder (dice.c) with each plain conv, end to end. Prints "N passed, M failed" and exits non-zero on any failure. */
#include "../nn/gnn.h"
#include "../nn/dice.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "grad_check.h"
#include "dice_check.h"



static const char *CONV_NAME[] = {"dice", "gin", "gcn", "sage", "gat"};

/* one layer (or block) with its parameters, buffers and graph */
typedef struct {
    gnn_spec s;
    gnn_graph g;
    int64_t *csr, *src, *dst;
    int n_t;
    const char *names[GNN_MAX_TENSORS];
    int64_t sizes[GNN_MAX_TENSORS];
    real *p[GNN_MAX_TENSORS], *dp[GNN_MAX_TENSORS];
    real *x, *dx, *out, *r, *act, *scratch;
    int block, training;
    real dropout;
} layer;

static void layer_forward(layer *L) {
    if (L->block) { gnn_block_forward(L->out, L->act, L->x, L->p, &L->g, &L->s, L->training, L->dropout, 77); return; }
    switch (L->s.conv) {
    case GNN_GIN: gin_forward(L->out, L->act, L->x, L->p, &L->g, &L->s); break;
    case GNN_GCN: gcn_forward(L->out, L->act, L->x, L->p, &L->g, &L->s); break;
    case GNN_SAGE: sage_forward(L->out, L->act, L->x, L->p, &L->g, &L->s); break;
    case GNN_GAT: gat_forward(L->out, L->act, L->x, L->p, &L->g, &L->s); break;
    }
}
static void layer_backward(layer *L) {
    if (L->block) { gnn_block_backward(L->dx, L->dp, L->r, L->x, L->p, L->act, &L->g, &L->s, L->scratch); return; }
    switch (L->s.conv) {
    case GNN_GIN: gin_backward(L->dx, L->dp, L->r, L->x, L->p, L->act, &L->g, &L->s, L->scratch); break;
    case GNN_GCN: gcn_backward(L->dx, L->dp, L->r, L->x, L->p, L->act, &L->g, &L->s, L->scratch); break;
    case GNN_SAGE: sage_backward(L->dx, L->dp, L->r, L->x, L->p, L->act, &L->g, &L->s, L->scratch); break;
    case GNN_GAT: gat_backward(L->dx, L->dp, L->r, L->x, L->p, L->act, &L->g, &L->s, L->scratch); break;
    }
}
static double layer_loss(void *p) {
    layer *L = p;
    layer_forward(L);
    return dot(L->out, L->r, L->g.N * L->s.hidden);
}

/* the small test graph: node 5 has no incoming edge, 0->1 twice, 2<->3 */
static const int64_t SRC[] = {0, 0, 1, 2, 3, 3, 4, 5, 5, 1, 0};
static const int64_t DST[] = {1, 1, 2, 3, 2, 4, 0, 4, 0, 3, 4};

static void layer_init(layer *L, gnn_spec s, int64_t N, int64_t E, const int64_t *src, const int64_t *dst) {
    memset(L, 0, sizeof *L);
    L->s = s;
    L->src = malloc(sizeof(int64_t) * (size_t)(E ? E : 1));
    L->dst = malloc(sizeof(int64_t) * (size_t)(E ? E : 1));
    if (E) { memcpy(L->src, src, sizeof(int64_t) * (size_t)E); memcpy(L->dst, dst, sizeof(int64_t) * (size_t)E); }
    L->csr = malloc(sizeof(int64_t) * (size_t)(2 * (N + 1) + 2 * E));
    gnn_graph_init(&L->g, L->csr, L->src, L->dst, N, E);
    L->n_t = gnn_tensors(&s, L->names, L->sizes);
    for (int t = 0; t < L->n_t; t++) { L->p[t] = vec(L->sizes[t]); L->dp[t] = zeros(L->sizes[t]); }
    const int64_t H = s.hidden;
    L->x = vec(N * H); L->dx = zeros(N * H); L->out = zeros(N * H); L->r = vec(N * H);
    L->act = zeros(gnn_block_act_size(&s, N, E));
    L->scratch = zeros(gnn_block_scratch_size(&s, N, E));
}
static void layer_free(layer *L) {
    for (int t = 0; t < L->n_t; t++) { free(L->p[t]); free(L->dp[t]); }
    free(L->x); free(L->dx); free(L->out); free(L->r); free(L->act); free(L->scratch); free(L->csr); free(L->src); free(L->dst);
}

static void test_layer(gnn_spec s, int block, real dropout) {
    layer L;
    const int64_t N = 6, E = (int64_t)(sizeof SRC / sizeof SRC[0]);
    layer_init(&L, s, N, E, SRC, DST);
    L.block = block; L.training = 1; L.dropout = dropout;
    if (s.conv == GNN_GIN) L.p[GIN_EPS][0] = (real)0.3;
    char what[160];
    const char *tag = s.conv == GNN_GAT ? (s.concat ? "concat" : "mean") : "";
    layer_forward(&L);
    layer_backward(&L);
    for (int t = 0; t < L.n_t; t++)
        for (int64_t i = 0; i < L.sizes[t]; i++) {
            snprintf(what, sizeof what, "%s%s K=%d %s d%s[%lld]", block ? "block " : "", CONV_NAME[s.conv], s.heads, tag,
                     L.names[t], (long long)i);
            check_close(what, L.dp[t][i], numeric_grad(layer_loss, &L, L.p[t], i), 1e-6);
        }
    for (int64_t i = 0; i < N * s.hidden; i++) {
        snprintf(what, sizeof what, "%s%s K=%d %s dx[%lld]", block ? "block " : "", CONV_NAME[s.conv], s.heads, tag, (long long)i);
        check_close(what, L.dx[i], numeric_grad(layer_loss, &L, L.x, i), 1e-6);
    }
    /* a second backward adds the same again */
    real first = L.dp[L.n_t - 1][0], firstx = L.dx[0];
    layer_forward(&L);
    layer_backward(&L);
    snprintf(what, sizeof what, "%s accumulates (params)", CONV_NAME[s.conv]);
    check_close(what, L.dp[L.n_t - 1][0], 2 * first, 1e-12);
    snprintf(what, sizeof what, "%s accumulates (input)", CONV_NAME[s.conv]);
    check_close(what, L.dx[0], 2 * firstx, 1e-12);
    if (s.conv == GNN_GAT && !block) {   /* attention over {i} + {j->i} sums to 1 */
        const int K = s.heads, C = s.concat ? s.hidden / K : s.hidden;
        const real *al_self = L.act + N * K * C + 2 * N * K, *al_e = al_self + N * K;
        for (int64_t i = 0; i < N; i++)
            for (int k = 0; k < K; k++) {
                double sum = al_self[i * K + k];
                for (int64_t e = 0; e < E; e++) if (DST[e] == i) sum += al_e[e * K + k];
                check_close("gat attention sums to 1", sum, 1, 1e-12);
            }
    }
    layer_free(&L);
}

/* GCN with no edges is a plain Linear: D = I */
static void test_gcn_no_edges(void) {
    layer L;
    gnn_spec s = {GNN_GCN, 3, 1, 1};
    layer_init(&L, s, 4, 0, NULL, NULL);
    layer_forward(&L);
    for (int64_t n = 0; n < 4; n++)
        for (int o = 0; o < 3; o++) {
            double v = L.p[GCN_B][o];
            for (int c = 0; c < 3; c++) v += L.x[n * 3 + c] * L.p[GCN_W][o * 3 + c];
            check_close("gcn without edges = Linear", L.out[n * 3 + o], v, 1e-12);
        }
    layer_free(&L);
}

static void test_spec_check(void) {
    cm_error err;
    gnn_spec bad1 = {GNN_GAT, 6, 4, 1}, bad2 = {7, 4, 1, 1}, bad3 = {GNN_GAT, 6, 0, 0}, ok = {GNN_GAT, 6, 4, 0};
    check_close("spec: concat needs H % K == 0", gnn_spec_check(&bad1, &err) == CM_ERR_VALUE, 1, 0);
    check_close("spec: unknown conv", gnn_spec_check(&bad2, &err) == CM_ERR_VALUE, 1, 0);
    check_close("spec: heads >= 1", gnn_spec_check(&bad3, &err) == CM_ERR_VALUE, 1, 0);
    check_close("spec: mean heads any H", gnn_spec_check(&ok, &err) == CM_OK, 1, 0);
}

/* A batch big enough for the OpenMP paths: 1 and 2 threads give the same bits. */
static void test_threads(gnn_spec s) {
#ifdef _OPENMP
    const int64_t N = 3000, E = 9000;
    int64_t *src = malloc(sizeof(int64_t) * E), *dst = malloc(sizeof(int64_t) * E);
    for (int64_t e = 0; e < E; e++) { src[e] = (int64_t)(urand() * N); dst[e] = (int64_t)(urand() * N); }
    layer L;
    layer_init(&L, s, N, E, src, dst);
    L.block = 1; L.training = 1; L.dropout = 0.2;
    const int64_t NH = N * s.hidden;
    real *out1 = malloc(sizeof(real) * NH), *dx1 = malloc(sizeof(real) * NH), *dw1 = malloc(sizeof(real) * L.sizes[0]);
    int saved = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass ? 2 : 1);
        memset(L.dx, 0, sizeof(real) * NH);
        memset(L.dp[0], 0, sizeof(real) * L.sizes[0]);
        layer_forward(&L);
        layer_backward(&L);
        if (!pass) { memcpy(out1, L.out, sizeof(real) * NH); memcpy(dx1, L.dx, sizeof(real) * NH); memcpy(dw1, L.dp[0], sizeof(real) * L.sizes[0]); }
    }
    omp_set_num_threads(saved);
    char what[96];
    snprintf(what, sizeof what, "%s 1 vs 2 threads: forward bitwise", CONV_NAME[s.conv]);
    check_close(what, memcmp(out1, L.out, sizeof(real) * NH) == 0, 1, 0);
    snprintf(what, sizeof what, "%s 1 vs 2 threads: backward bitwise", CONV_NAME[s.conv]);
    check_close(what, memcmp(dx1, L.dx, sizeof(real) * NH) == 0 && memcmp(dw1, L.dp[0], sizeof(real) * L.sizes[0]) == 0, 1, 0);
    free(out1); free(dx1); free(dw1); free(src); free(dst);
    layer_free(&L);
#else
    (void)s;
#endif
}

/* The DICE encoder with each plain conv in place of its message passing: every parameter's
 * gradient (encoders, layers, head) by central differences through batch norm, GELU and
 * dropout; the edge encoder is not built, so edge features cannot change the output. */
static void test_dice_with_conv(int conv, int heads, int concat, float dropout) {
    cm_dice_config cfg = {3, 2, 4, 3, 2, dropout, 1e-5f, 0.1f, conv, heads, concat};
    dm_ctx c = {0};
    cm_error err;
    if (cm_dice_init(&c.m, &cfg, 5, &err)) { failed++; printf("FAIL dice init (%s): %s\n", CONV_NAME[conv], err.msg); return; }
    dm_inputs(&c);
    const char *name;
    real *P = cm_dice_params(c.m);
    int64_t P_n = cm_dice_num_params(c.m), off = 0;
    int has_edge_enc = 0;
    for (int i = 0; cm_dice_tensor(c.m, i, &name) >= 0; i++) {
        int64_t sz = cm_dice_tensor(c.m, i, &name);
        if (strstr(name, "eps")) P[off] = (real)0.25;
        if (strstr(name, "edge_enc")) has_edge_enc = 1;
        off += sz;
    }
    char what[128];
    snprintf(what, sizeof what, "dice/%s builds no edge encoder", CONV_NAME[conv]);
    check_close(what, has_edge_enc, 0, 0);
    cm_dice_zero_grad(c.m);
    double L0 = dm_loss(&c);
    if (cm_dice_backward(c.m, c.r, &err)) { failed++; printf("FAIL dice backward: %s\n", err.msg); }
    real *G = cm_dice_grads(c.m);
    int before = failed;
    for (int64_t i = 0; i < P_n; i++) {
        name = dm_tensor_of(c.m, i, &off);
        snprintf(what, sizeof what, "dice/%s%s d%s[%lld] (dropout %.1f)", CONV_NAME[conv], conv == GNN_GAT ? (concat ? " concat" : " mean") : "",
                 name, (long long)(i - off), dropout);
        check_close(what, G[i], numeric_grad(dm_loss, &c, P, i), 1e-5);
        if (failed - before > 10) break;
    }
    for (int64_t i = 0; i < c.E * 2; i++) c.ea[i] += 1;
    snprintf(what, sizeof what, "dice/%s ignores edge features", CONV_NAME[conv]);
    check_close(what, dm_loss(&c), L0, 1e-12);
    dm_free(&c);
}

int main(void) {
    rng_state = 0x9e3779b97f4a7c15ull;   /* the inputs this test was written with */
    test_spec_check();
    test_gcn_no_edges();
    const gnn_spec specs[] = {{GNN_GIN, 4, 1, 1}, {GNN_GCN, 4, 1, 1}, {GNN_SAGE, 4, 1, 1}, {GNN_GAT, 4, 1, 1},
                              {GNN_GAT, 4, 2, 1}, {GNN_GAT, 3, 3, 0}};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        test_layer(specs[i], 0, 0);
        test_layer(specs[i], 1, 0);
        test_layer(specs[i], 1, 0.2);
    }
    const gnn_spec big[] = {{GNN_GIN, 16, 1, 1}, {GNN_GCN, 16, 1, 1}, {GNN_SAGE, 16, 1, 1}, {GNN_GAT, 16, 4, 1}, {GNN_GAT, 16, 2, 0}};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) test_threads(big[i]);
    for (int conv = GNN_GIN; conv <= GNN_GAT; conv++) {
        test_dice_with_conv(conv, 2, 1, 0.0f);
        test_dice_with_conv(conv, 2, 1, 0.2f);
    }
    test_dice_with_conv(GNN_GAT, 3, 0, 0.2f);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
