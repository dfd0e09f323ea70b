/* test_dice_rows.c: the serial row-range kernels of ops.c that dice.c's blocked layers use, and
 * AdamW's vector path, against the whole-array ops they are pieces of (float build, every vector
 * path this CPU runs). Blocks of rows must reproduce the whole op bit for bit where the op is
 * elementwise or a per-row sum; the fused GINE backward halves agree with the composition of
 * the plain ops to float rounding, and their eps parts with the double reference.
 *
 *   test_dice_rows    prints "N passed, M failed", exits non-zero on a failure
 * Built by tests/test_dice_fast.py. */
#include "../nn/gemm.h"
#include "../nn/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0, failed = 0;
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0; }
static real *vec(int64_t n, double scale) {
    real *a = malloc(sizeof(real) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) a[i] = (real)(scale * (2 * urand() - 1));
    return a;
}
static real *zeros(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(real)); }
static int same(const real *a, const real *b, int64_t n) { return !memcmp(a, b, sizeof(real) * (size_t)n); }
static double max_rel(const real *x, const real *ref, int64_t n, double floor) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)ref[i]) / (fabs((double)ref[i]) + floor);
        if (!(e <= w)) w = e;
    }
    return w;
}
static void report(const char *what, int ok) {
    if (ok) passed++;
    else { failed++; printf("FAIL %s [%s]\n", what, gemm_isa_name(gemm_get_isa())); }
}

enum { BLK = 37 };   /* odd block size: blocks end mid-vector */

static void test_elementwise(int64_t R, int C) {
    const int64_t n = R * C;
    real *x = vec(n, 4), *o1 = zeros(n), *o2 = zeros(n), *d1 = zeros(n), *d2 = zeros(n);
    const float ps[2] = {0.0f, 0.2f};
    for (int k = 0; k < 2; k++) {
        memcpy(d1, x, sizeof(real) * (size_t)n);
        gelu_dropout_forward(o1, d1, NULL, d1, n, ps[k], 41 + k);   /* deriv in place, as dice.c */
        memcpy(d2, x, sizeof(real) * (size_t)n);
        for (int64_t r = 0; r < R; r += BLK) {
            const int64_t r1 = r + BLK < R ? r + BLK : R;
            gelu_dropout_forward_rows(o2, d2, d2, r * C, (r1 - r) * C, ps[k], 41 + k);
        }
        report("gelu_dropout_forward_rows: blocks equal the whole op (output and derivative)",
               same(o1, o2, n) && same(d1, d2, n));
    }
    gelu_forward(o1, x, n);
    for (int64_t r = 0; r < R; r += BLK) gelu_forward_rows(o2, x, r * C, ((r + BLK < R ? r + BLK : R) - r) * C);
    report("gelu_forward_rows equals gelu_forward", same(o1, o2, n));
    real *g = vec(n, 1);
    gelu_dropout_backward(o1, g, d1, n);
    memcpy(o2, g, sizeof(real) * (size_t)n);
    for (int64_t r = 0; r < R; r += BLK)   /* in place, as dice.c */
        gelu_dropout_backward_rows(o2, o2, d1, r * C, ((r + BLK < R ? r + BLK : R) - r) * C);
    report("gelu_dropout_backward_rows (in place) equals gelu_dropout_backward", same(o1, o2, n));
    real *z = vec(n, 1), eps = 0.3f;
    gin_combine_forward(o1, x, z, &eps, R, C);
    for (int64_t r = 0; r < R; r += BLK) gin_combine_forward_rows(o2, x, z, &eps, r, r + BLK < R ? r + BLK : R, C);
    report("gin_combine_forward_rows equals gin_combine_forward", same(o1, o2, n));
    real *s1 = zeros(C), *s2 = zeros(C);
    colsum_rows(s1, g, 3, R, C);
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int64_t r = 3; r < R; r++) acc += g[r * C + c];
        s2[c] = (real)acc;
    }
    report("colsum_rows equals the double column sums", max_rel(s1, s2, C, 1e-6) < 1e-6);
    free(x); free(o1); free(o2); free(d1); free(d2); free(g); free(z); free(s1); free(s2);
}

/* a random graph: N nodes, E edges, both CSRs */
typedef struct { int64_t N, E, *src, *dst, *sp, *se, *dp, *de; } graph;
static graph make_graph(int64_t N, int64_t E) {
    graph g = {N, E, malloc(8 * (size_t)E), malloc(8 * (size_t)E), malloc(8 * (size_t)(N + 1)), malloc(8 * (size_t)E),
               malloc(8 * (size_t)(N + 1)), malloc(8 * (size_t)E)};
    for (int64_t e = 0; e < E; e++) { g.src[e] = (int64_t)(urand() * N); g.dst[e] = (int64_t)(urand() * N); }
    scatter_csr(g.sp, g.se, g.src, E, N);
    scatter_csr(g.dp, g.de, g.dst, E, N);
    return g;
}
static void free_graph(graph *g) { free(g->src); free(g->dst); free(g->sp); free(g->se); free(g->dp); free(g->de); }

static void test_gine(int64_t N, int64_t E, int C) {
    graph g = make_graph(N, E);
    real *h = vec(N * C, 1), *ef = vec(E * C, 1), *z = vec(N * C, 1), eps_n = -0.2f, eps_e = 0.4f;
    real *dcn = vec(N * C, 1), *dce = vec(E * C, 1);
    real *o1 = zeros(E * C), *o2 = zeros(E * C);
    /* forward edge combine */
    gine_edge_combine_forward(o1, ef, z, g.src, g.dst, &eps_e, E, C);
    for (int64_t r = 0; r < E; r += BLK)
        gine_edge_combine_forward_rows(o2, ef, z, g.src, g.dst, &eps_e, r, r + BLK < E ? r + BLK : E, C);
    report("gine_edge_combine_forward_rows equals gine_edge_combine_forward", same(o1, o2, E * C));
    /* the node half: reference = zeros, gather_diff_backward, + dcomb_n; dx = (1 + eps) dcomb_n;
     * d eps = sum dcomb_n * h */
    real *dz1 = zeros(N * C), *dz2 = zeros(N * C), *dx1 = zeros(N * C), *dx2 = zeros(N * C), de1 = 0;
    gather_diff_backward(dz1, dce, N, C, g.sp, g.se, g.dp, g.de);
    for (int64_t i = 0; i < N * C; i++) dz1[i] += dcn[i];
    gin_combine_backward_ref(dx1, NULL, &de1, dcn, h, &eps_n, N, C);
    double dot = 0;
    for (int64_t r = 0; r < N; r += BLK)
        dot += gine_node_backward_rows(dz2, dx2, dcn, dce, h, &eps_n, g.sp, g.se, g.dp, g.de, r, r + BLK < N ? r + BLK : N, C);
    double sum_abs = 0;
    for (int64_t i = 0; i < N * C; i++) sum_abs += fabs((double)dcn[i] * h[i]);
    report("gine_node_backward_rows: dz equals gather_diff_backward + dcomb_n", same(dz1, dz2, N * C));
    report("gine_node_backward_rows: dx equals (1 + eps) dcomb_n", same(dx1, dx2, N * C));
    report("gine_node_backward_rows: d eps parts sum to the reference", fabs(dot - de1) <= 1e-6 * sum_abs + 1e-30);
    /* the edge half: reference = zeros, (1 + eps) dcomb_e, then + dz[dst] * h[src] */
    real *dxe1 = zeros(E * C), *dxe2 = zeros(E * C), dee = 0;
    gin_combine_backward_ref(dxe1, NULL, &dee, dce, ef, &eps_e, E, C);
    gine_message_backward(NULL, dxe1, dz1, h, ef, g.src, g.dst, E, N, C, g.sp, g.se);
    dot = 0;
    for (int64_t r = 0; r < E; r += BLK)
        dot += gine_edge_backward_rows(dxe2, dce, ef, dz1, h, g.src, g.dst, &eps_e, r, r + BLK < E ? r + BLK : E, C);
    sum_abs = 0;
    for (int64_t i = 0; i < E * C; i++) sum_abs += fabs((double)dce[i] * ef[i]);
    report("gine_edge_backward_rows: dx equals the composition", max_rel(dxe2, dxe1, E * C, 1e-3) < 1e-6);
    report("gine_edge_backward_rows: d eps parts sum to the reference", fabs(dot - dee) <= 1e-6 * sum_abs + 1e-30);
    /* the node input's message gradient */
    real *dh1 = vec(N * C, 1), *dh2 = zeros(N * C);
    memcpy(dh2, dh1, sizeof(real) * (size_t)(N * C));
    gine_message_backward(dh1, NULL, dz1, h, ef, g.src, g.dst, E, N, C, g.sp, g.se);
    for (int64_t r = 0; r < N; r += BLK)
        gine_message_backward_nodes_rows(dh2, dz1, ef, g.dst, g.sp, g.se, r, r + BLK < N ? r + BLK : N, C);
    report("gine_message_backward_nodes_rows equals gine_message_backward's node half", same(dh1, dh2, N * C));
    /* gather * rows */
    gather_mul_forward(o1, z, g.src, ef, E, C);
    for (int64_t r = 0; r < E; r += BLK) gather_mul_forward_rows(o2, z, g.src, ef, r, r + BLK < E ? r + BLK : E, C);
    report("gather_mul_forward_rows equals gather_mul_forward", same(o1, o2, E * C));
    free(h); free(ef); free(z); free(dcn); free(dce); free(o1); free(o2); free(dz1); free(dz2); free(dx1); free(dx2);
    free(dxe1); free(dxe2); free(dh1); free(dh2);
    free_graph(&g);
}

/* AdamW: every path gives the portable path's bits; and the double formula to float rounding */
static real *adam_ref_p;
static void test_adamw(void) {
    const int64_t n = 1003;
    rs = 12345;   /* the same inputs on every path */
    real *p = vec(n, 1), *g = vec(n, 0.1), *m = zeros(n), *v = zeros(n);
    for (int t = 1; t <= 3; t++) adamw_update(p, g, m, v, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
    if (gemm_get_isa() == GEMM_ISA_PORTABLE) {
        free(adam_ref_p);
        adam_ref_p = malloc(sizeof(real) * (size_t)n);
        memcpy(adam_ref_p, p, sizeof(real) * (size_t)n);
    } else if (adam_ref_p) {
        report("adamw_update: this vector path gives the portable path's bits", same(p, adam_ref_p, n));
    }
    free(p); free(g); free(m); free(v);
}

static void test_adamw_formula(void) {
    const int64_t n = 517;
    real *p = vec(n, 1), *g = vec(n, 0.1), *m = zeros(n), *v = zeros(n);
    double *rp = malloc(sizeof(double) * (size_t)n), *rm = calloc((size_t)n, sizeof(double)), *rv = calloc((size_t)n, sizeof(double));
    for (int64_t i = 0; i < n; i++) rp[i] = p[i];
    for (int t = 1; t <= 4; t++) {
        adamw_update(p, g, m, v, n, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, t);
        for (int64_t i = 0; i < n; i++) {
            rm[i] = 0.9 * rm[i] + 0.1 * g[i];
            rv[i] = 0.999 * rv[i] + 0.001 * (double)g[i] * g[i];
            double mh = rm[i] / (1 - pow(0.9, t)), vh = rv[i] / (1 - pow(0.999, t));
            rp[i] -= 1e-2 * (mh / (sqrt(vh) + 1e-8) + 0.01 * rp[i]);
        }
    }
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(p[i] - rp[i]) / (fabs(rp[i]) + 1e-3));
    report("adamw_update follows the double formula to float rounding", worst < 1e-5);
    free(p); free(g); free(m); free(v); free(rp); free(rm); free(rv);
}

int main(void) {
    gemm_isa isas[3] = {GEMM_ISA_PORTABLE, GEMM_ISA_AVX2, GEMM_ISA_AVX512};
    for (int s = 0; s < 3; s++) {
        if (gemm_set_isa(isas[s]) != isas[s]) { printf("skip %s: not on this CPU or build\n", gemm_isa_name(isas[s])); continue; }
        test_elementwise(1, 5);
        test_elementwise(500, 64);
        test_elementwise(301, 33);
        test_gine(50, 170, 64);
        test_gine(300, 900, 33);
        test_gine(2, 1, 3);
        test_adamw();
        test_adamw_formula();
    }
    gemm_set_isa(GEMM_ISA_AUTO);
    free(adam_ref_p);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
