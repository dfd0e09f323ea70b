/* test_nn_fast.c: the optimised elementwise and batch-norm kernels of csrc/nn/ops.c against
 * their plain _ref versions (float build, every vector path this CPU runs), and the same
 * results for 1, 2 and 3 threads. GEMM and linear have their own test (test_gemm.c).
 *
 *   test_nn_fast          prints "N passed, M failed", exits non-zero on a failure
 *   test_nn_fast bench    ns per element of each kernel (one line of JSON each)
 * Built by tests/test_gemm.py with the flags setup.py uses. */
#include "../nn/gemm.h"
#include "../nn/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int passed = 0, failed = 0;
static uint64_t rs = 88172645463325252ull;
static double urand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0; }
static real *vec(int64_t n, double scale) {
    real *a = malloc(sizeof(real) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) a[i] = (real)(scale * (2 * urand() - 1));
    return a;
}
static real *copy(const real *a, int64_t n) { real *b = malloc(sizeof(real) * (size_t)(n ? n : 1)); memcpy(b, a, sizeof(real) * (size_t)n); return b; }
static void set_threads(int t) {
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}
/* wall time, or with CPU_TIME=1 in the environment process CPU time (robust on a shared
 * machine when running one thread) */
static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("CPU_TIME") != NULL;
    if (cpu) return (double)clock() / CLOCKS_PER_SEC;
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

static void report(const char *what, int ok, double err, double tol) {
    if (ok) passed++;
    else { failed++; printf("FAIL %s [%s]: error %.3g (tolerance %.3g)\n", what, gemm_isa_name(gemm_get_isa()), err, tol); }
}

/* largest |x - ref| / (|ref| + floor) */
static double max_rel(const real *x, const real *ref, int64_t n, double floor) {
    double w = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)ref[i]) / (fabs((double)ref[i]) + floor);
        if (e > w || e != e) w = e != e ? INFINITY : e;
    }
    return w;
}

/* GELU in float against the double reference, relative to each value. The exponent -x^2/2 is
 * formed in float, so the tail x << 0 (where Phi is e^{-x^2/2}-small) carries a relative error
 * of about eps * x^2: the bound is 2e-6 + 1.2e-7 x^2 (2e-6 near 0, 2e-5 at |x| = 12). For the
 * derivative Phi + x phi, which crosses 0 near x = -0.75, the error is measured against the size
 * of its terms, |dout| (Phi + |x| phi). */
static void test_gelu(void) {
    const int64_t n = 100003;
    real *x = vec(n, 6.0), *o = vec(n, 1), *r = vec(n, 1);
    /* the far tails and exact points too */
    x[0] = 0; x[1] = -0.0f; x[2] = 12; x[3] = -12; x[4] = -30; x[5] = 80; x[6] = -1e-30f; x[7] = 1e-4f; x[8] = -0.7518f;
    gelu_forward(o, x, n);
    gelu_forward_ref(r, x, n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i], e = fabs((double)o[i] - r[i]) / (fabs((double)r[i]) + 1e-37);
        double bound = 2e-6 + 1.2e-7 * xi * xi;
        if (!(e <= bound) && fabs((double)o[i] - r[i]) > 1e-37) worst = fmax(worst, e / bound);
    }
    report("gelu_forward vs ref (relative, tails included)", worst == 0, worst, 1);
    real *g = vec(n, 1), *d1 = vec(n, 1), *d2 = copy(d1, n), *d0 = copy(d1, n);
    gelu_backward(d1, g, x, n);
    gelu_backward_ref(d2, g, x, n);
    worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = x[i], cdf = 0.5 * erfc(-xi * 0.70710678118654752), pdf = 0.39894228040143268 * exp(-0.5 * xi * xi);
        double scale = fabs((double)g[i]) * (cdf + fabs(xi) * pdf) + 1e-37;
        double e = fabs(((double)d1[i] - d0[i]) - ((double)d2[i] - d0[i])) / scale;
        /* d0 + change is rounded to float, so allow an ulp of d0 as well */
        double bound = 2e-6 + 1.2e-7 * xi * xi + 1.2e-7 * fabs((double)d0[i]) / scale;
        if (!(e <= bound)) worst = fmax(worst, e / bound);
    }
    report("gelu_backward vs ref", worst == 0, worst, 1);
    free(x); free(o); free(r); free(g); free(d1); free(d2); free(d0);
}

static void test_dropout(void) {
    const int64_t n = 70001;
    const float ps[3] = {0.0f, 0.2f, 0.9f};
    for (int k = 0; k < 3; k++) {
        real *x = vec(n, 1), *o1 = vec(n, 1), *o2 = vec(n, 1);
        uint8_t *m1 = malloc((size_t)n), *m2 = malloc((size_t)n);
        dropout_forward(o1, m1, x, n, ps[k], 1234567 + k);
        dropout_forward_ref(o2, m2, x, n, ps[k], 1234567 + k);
        report("dropout mask equals the cm_uniform reference", !memcmp(m1, m2, (size_t)n), 0, 0);
        report("dropout output equals the reference", !memcmp(o1, o2, sizeof(real) * (size_t)n), 0, 0);
        /* fused with GELU: equal to gelu then dropout, and its derivative, kept in place */
        real *g = vec(n, 1), *f = vec(n, 1), *deriv = copy(x, n);
        gelu_forward(g, x, n);
        dropout_forward(o1, m1, g, n, ps[k], 99 + k);
        gelu_dropout_forward(f, deriv, m2, deriv, n, ps[k], 99 + k);
        report("gelu_dropout_forward equals gelu then dropout",
               !memcmp(f, o1, sizeof(real) * (size_t)n) && !memcmp(m1, m2, (size_t)n), 0, 0);
        real *dy = vec(n, 1), *t = vec(n, 0), *da = vec(n, 0), *db = vec(n, 1);
        memset(t, 0, sizeof(real) * (size_t)n);
        memset(da, 0, sizeof(real) * (size_t)n);
        dropout_backward(t, dy, m1, n, ps[k]);
        gelu_backward(da, t, x, n);
        gelu_dropout_backward(db, dy, deriv, n);   /* overwrites db */
        double e = max_rel(db, da, n, 1.0);
        report("gelu_dropout_backward equals dropout then gelu backward", e < 5e-7, e, 5e-7);
        free(x); free(o1); free(o2); free(m1); free(m2); free(g); free(f); free(dy); free(t); free(da); free(db); free(deriv);
    }
}

static void test_batchnorm(int64_t B, int C, double offset) {
    real *x = vec(B * C, 1), *gamma = vec(C, 1), *beta = vec(C, 1), *dout = vec(B * C, 1);
    for (int64_t i = 0; i < B * C; i++) x[i] += (real)offset;   /* a mean far from 0 */
    real *o1 = vec(B * C, 1), *o2 = vec(B * C, 1), *m1 = vec(C, 1), *m2 = vec(C, 1), *r1 = vec(C, 1), *r2 = vec(C, 1);
    real *rm1 = vec(C, 1), *rv1 = vec(C, 1), *rm2 = copy(rm1, C), *rv2 = copy(rv1, C);
    batchnorm_forward(o1, m1, r1, x, gamma, beta, B, C, 1e-5f, rm1, rv1, 0.1f);
    batchnorm_forward_ref(o2, m2, r2, x, gamma, beta, B, C, 1e-5f, rm2, rv2, 0.1f);
    /* statistics are summed in double in the reference's order (a vector path may fuse d * d
     * into its sum): equal to float rounding */
    double e = fmax(fmax(max_rel(m1, m2, C, 1e-30), max_rel(r1, r2, C, 1e-30)),
                    fmax(max_rel(rm1, rm2, C, 1e-30), max_rel(rv1, rv2, C, 1e-30)));
    report("batchnorm statistics vs ref", e < 2e-7, e, 2e-7);
    e = max_rel(o1, o2, B * C, 1.0);
    report("batchnorm_forward vs ref", e < 1e-6, e, 1e-6);
    real *d1 = vec(B * C, 1), *d2 = copy(d1, B * C), *dg1 = vec(C, 1), *dg2 = copy(dg1, C), *db1 = vec(C, 1), *db2 = copy(db1, C);
    batchnorm_backward(d1, dg1, db1, dout, x, gamma, m1, r1, B, C);
    batchnorm_backward_ref(d2, dg2, db2, dout, x, gamma, m2, r2, B, C);
    e = fmax(max_rel(dg1, dg2, C, 1e-3), max_rel(db1, db2, C, 1e-3));
    report("batchnorm_backward dgamma, dbeta vs ref", e < 2e-7, e, 2e-7);
    e = max_rel(d1, d2, B * C, 1.0);
    report("batchnorm_backward dinp vs ref", e < 1e-6, e, 1e-6);
    free(x); free(gamma); free(beta); free(dout); free(o1); free(o2); free(m1); free(m2); free(r1); free(r2);
    free(rm1); free(rv1); free(rm2); free(rv2); free(d1); free(d2); free(dg1); free(dg2); free(db1); free(db2);
}

static void test_gin_combine(int64_t B, int C) {
    real *x = vec(B * C, 1), *dout = vec(B * C, 1), eps = 0.3f;
    real *dx1 = vec(B * C, 1), *dx2 = copy(dx1, B * C), *dz1 = vec(B * C, 1), *dz2 = copy(dz1, B * C);
    real de1 = 0.5f, de2 = 0.5f;
    gin_combine_backward(dx1, dz1, &de1, dout, x, &eps, B, C);
    gin_combine_backward_ref(dx2, dz2, &de2, dout, x, &eps, B, C);
    /* a vector path may fuse dx += k * dout into one FMA: equal to float rounding */
    double e0 = fmax(max_rel(dx1, dx2, B * C, 1.0), max_rel(dz1, dz2, B * C, 1.0));
    report("gin_combine_backward dx, dz vs ref", e0 < 2.4e-7, e0, 2.4e-7);
    double s = 0;
    for (int64_t i = 0; i < B * C; i++) s += fabs((double)dout[i] * x[i]);
    double e = fabs((double)de1 - de2) / s;
    report("gin_combine_backward deps vs ref (relative to sum |terms|)", e < 1e-7, e, 1e-7);
    free(x); free(dout); free(dx1); free(dx2); free(dz1); free(dz2);
}

/* batch norm on distinct rows with counts, and the row gather, against the expanded rows */
static void test_grouped(int64_t R, int U, int C) {
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)R), *count = calloc((size_t)U, sizeof(int64_t));
    for (int64_t r = 0; r < R; r++) { idx[r] = r < U ? r : (int64_t)(urand() * U); count[idx[r]]++; }
    real *xu = vec((int64_t)U * C, 2), *x = vec(R * C, 1), *gamma = vec(C, 1), *beta = vec(C, 1);
    gather_rows_forward(x, xu, idx, R, C);
    int same = 1;
    for (int64_t r = 0; r < R && same; r++) same = !memcmp(x + r * C, xu + idx[r] * C, sizeof(real) * (size_t)C);
    report("gather_rows_forward copies rows", same, 0, 0);
    real *ou = vec((int64_t)U * C, 1), *o = vec(R * C, 1), *m1 = vec(C, 1), *r1 = vec(C, 1), *m2 = vec(C, 1), *r2 = vec(C, 1);
    real *rm1 = vec(C, 1), *rv1 = vec(C, 1), *rm2 = copy(rm1, C), *rv2 = copy(rv1, C);
    batchnorm_grouped_forward(ou, m1, r1, xu, count, gamma, beta, U, C, R, 1e-5f, rm1, rv1, 0.1f);
    batchnorm_forward(o, m2, r2, x, gamma, beta, R, C, 1e-5f, rm2, rv2, 0.1f);
    real *oe = vec(R * C, 1);
    gather_rows_forward(oe, ou, idx, R, C);
    double e = fmax(max_rel(oe, o, R * C, 1.0), fmax(max_rel(m1, m2, C, 1.0), max_rel(r1, r2, C, 1e-30)));
    e = fmax(e, fmax(max_rel(rm1, rm2, C, 1.0), max_rel(rv1, rv2, C, 1e-30)));
    report("batchnorm_grouped_forward equals batchnorm_forward on the expanded rows", e < 2e-6, e, 2e-6);
    /* backward: the distinct rows' gradients are sums over their copies */
    real *dout = vec(R * C, 1), *doutu = vec((int64_t)U * C, 0), *du = vec((int64_t)U * C, 0), *d = vec(R * C, 0);
    memset(doutu, 0, sizeof(real) * (size_t)U * C);
    memset(du, 0, sizeof(real) * (size_t)U * C);
    memset(d, 0, sizeof(real) * (size_t)(R * C));
    gather_rows_backward(doutu, dout, idx, R, C);
    real *dg1 = vec(C, 0), *db1 = vec(C, 0), *dg2 = copy(dg1, C), *db2 = copy(db1, C), *dsum = vec((int64_t)U * C, 0);
    batchnorm_grouped_backward(du, dg1, db1, doutu, xu, count, gamma, m1, r1, U, C, R);
    batchnorm_backward(d, dg2, db2, dout, x, gamma, m2, r2, R, C);
    memset(dsum, 0, sizeof(real) * (size_t)U * C);
    gather_rows_backward(dsum, d, idx, R, C);
    /* the expanded side sums R / U float terms of size ~1 per row (and they nearly cancel: a batch
     * norm's input gradients sum to zero), so compare on that scale */
    const double scale = (double)R / U;
    e = fmax(max_rel(du, dsum, (int64_t)U * C, scale), fmax(max_rel(dg1, dg2, C, scale), max_rel(db1, db2, C, scale)));
    report("batchnorm_grouped_backward equals batchnorm_backward summed over copies", e < 1e-5, e, 1e-5);
    free(idx); free(count); free(xu); free(x); free(gamma); free(beta); free(ou); free(o); free(m1); free(r1); free(m2);
    free(r2); free(rm1); free(rv1); free(rm2); free(rv2); free(oe); free(dout); free(doutu); free(du); free(d); free(dg1);
    free(db1); free(dg2); free(db2); free(dsum);
}

/* the fused GIN-with-edge-features ops against the ops they fuse */
static void test_gine(int64_t N, int64_t E, int C) {
    int64_t *src = malloc(sizeof(int64_t) * (size_t)E), *dst = malloc(sizeof(int64_t) * (size_t)E);
    for (int64_t e = 0; e < E; e++) { src[e] = (int64_t)(urand() * N); dst[e] = (int64_t)(urand() * N); }
    int64_t *dptr = malloc(sizeof(int64_t) * (size_t)(N + 1)), *dedg = malloc(sizeof(int64_t) * (size_t)E);
    int64_t *sptr = malloc(sizeof(int64_t) * (size_t)(N + 1)), *sedg = malloc(sizeof(int64_t) * (size_t)E);
    scatter_csr(dptr, dedg, dst, E, N);
    scatter_csr(sptr, sedg, src, E, N);
    real *h = vec(N * C, 1), *ef = vec(E * C, 1), *msg = vec(E * C, 1), *z1 = vec(N * C, 1), *z2 = vec(N * C, 1), eps = 0.25f;
    gine_message_forward(z1, h, ef, src, dptr, dedg, N, C);
    gather_mul_forward(msg, h, src, ef, E, C);
    memset(z2, 0, sizeof(real) * (size_t)(N * C));
    scatter_add_forward(z2, msg, dptr, dedg, N, C);
    double e = max_rel(z1, z2, N * C, 1.0);
    report("gine_message_forward equals gather_mul + scatter_add", e < 1e-6, e, 1e-6);
    real *c1 = vec(E * C, 1), *c2 = vec(E * C, 1), *zd = vec(E * C, 1);
    gine_edge_combine_forward(c1, ef, z1, src, dst, &eps, E, C);
    gather_diff_forward(zd, z1, src, dst, E, C);
    gin_combine_forward(c2, ef, zd, &eps, E, C);
    e = max_rel(c1, c2, E * C, 1.0);
    report("gine_edge_combine_forward equals gather_diff + gin_combine", e < 1e-6, e, 1e-6);
    real *dz = vec(N * C, 1), *dh1 = vec(N * C, 1), *dh2 = copy(dh1, N * C), *de1 = vec(E * C, 1), *de2 = copy(de1, E * C);
    gine_message_backward(dh1, de1, dz, h, ef, src, dst, E, N, C, sptr, sedg);
    memset(msg, 0, sizeof(real) * (size_t)(E * C));
    scatter_add_backward(msg, dz, dst, E, C);
    gather_mul_backward(dh2, de2, msg, h, src, ef, E, C, N, sptr, sedg);
    e = fmax(max_rel(dh1, dh2, N * C, 1.0), max_rel(de1, de2, E * C, 1.0));
    report("gine_message_backward equals scatter_add + gather_mul backward", e < 1e-6, e, 1e-6);
    free(src); free(dst); free(dptr); free(dedg); free(sptr); free(sedg); free(h); free(ef); free(msg); free(z1); free(z2);
    free(c1); free(c2); free(zd); free(dz); free(dh1); free(dh2); free(de1); free(de2);
}

/* the same call on 1, 2 and 3 threads gives the same bits */
static void test_threads(void) {
    const int64_t B = 3001;
    const int C = 96;
    real *x = vec(B * C, 2), *g = vec(C, 1), *bt = vec(C, 1), *dout = vec(B * C, 1), eps = -0.2f;
    real *out[3][6];
    uint8_t *mask[3];
    for (int t = 0; t < 3; t++) {
        set_threads(t + 1);
        for (int k = 0; k < 6; k++) { out[t][k] = vec(B * C, 0); memset(out[t][k], 0, sizeof(real) * (size_t)(B * C)); }
        mask[t] = malloc((size_t)(B * C));
        real *mean = out[t][5], *rstd = out[t][5] + C, *dg = out[t][5] + 2 * C, *db = out[t][5] + 3 * C;
        gelu_dropout_forward(out[t][0], out[t][1], mask[t], x, B * C, 0.2f, 7);
        gelu_dropout_backward(out[t][1], dout, out[t][0], B * C);
        batchnorm_forward(out[t][2], mean, rstd, x, g, bt, B, C, 1e-5f, NULL, NULL, 0);
        batchnorm_backward(out[t][3], dg, db, dout, x, g, mean, rstd, B, C);
        gin_combine_backward(out[t][4], out[t][4], out[t][5] + 4 * C, dout, x, &eps, B, C);
    }
    set_threads(2);
    int same = 1;
    for (int t = 1; t < 3; t++) {
        for (int k = 0; k < 6; k++) same &= !memcmp(out[0][k], out[t][k], sizeof(real) * (size_t)(B * C));
        same &= !memcmp(mask[0], mask[t], (size_t)(B * C));
    }
    report("elementwise, batch norm and gin_combine: same bits for 1, 2 and 3 threads", same, 0, 0);
    for (int t = 0; t < 3; t++) { for (int k = 0; k < 6; k++) free(out[t][k]); free(mask[t]); }
    free(x); free(g); free(bt); free(dout);
}

static void run_tests(void) {
    gemm_isa isas[3] = {GEMM_ISA_PORTABLE, GEMM_ISA_AVX2, GEMM_ISA_AVX512};
    for (int s = 0; s < 3; s++) {
        if (gemm_set_isa(isas[s]) != isas[s]) { printf("skip %s: not on this CPU or build\n", gemm_isa_name(isas[s])); continue; }
        test_gelu();
        test_dropout();
        test_batchnorm(1, 5, 0);
        test_batchnorm(2, 40, 3);
        test_batchnorm(1000, 33, 0);
        test_batchnorm(517, 64, 50);
        test_gin_combine(1, 3);
        test_gin_combine(1001, 64);
        test_grouped(2, 2, 3);
        test_grouped(3000, 5, 64);
        test_grouped(777, 9, 40);
        test_gine(1, 1, 3);
        test_gine(500, 1700, 64);
        test_gine(300, 900, 33);
        test_threads();
    }
    gemm_set_isa(GEMM_ISA_AUTO);
    printf("%d passed, %d failed\n", passed, failed);
}

/* ------------------------------------------------------------------ benchmark */

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

#define BENCH(label, n, stmt)                                                                                     \
    do {                                                                                                         \
        double ts[9];                                                                                            \
        for (int r = 0; r < 9; r++) { double t0 = now(); stmt; ts[r] = now() - t0; }                              \
        qsort(ts, 9, sizeof(double), cmp_double);                                                                \
        printf("{\"what\": \"%s\", \"n\": %lld, \"ns_per_element\": %.3f}\n", label, (long long)(n), ts[4] / (double)(n) * 1e9); \
    } while (0)

static void run_bench(int64_t B, int C) {
    const int64_t n = B * C;
    real *x = vec(n, 3), *y = vec(n, 1), *z = vec(n, 1), *g = vec(C, 1), *bt = vec(C, 1), *st = vec(4 * C, 1), eps = 0.1f;
    uint8_t *mask = malloc((size_t)n);
    printf("{\"what\": \"config\", \"isa\": \"%s\", \"rows\": %lld, \"channels\": %d}\n", gemm_isa_name(gemm_get_isa()), (long long)B, C);
    BENCH("gelu_forward", n, gelu_forward(y, x, n));
    BENCH("gelu_forward_ref", n, gelu_forward_ref(y, x, n));
    BENCH("gelu_backward", n, gelu_backward(y, z, x, n));
    BENCH("gelu_dropout_forward", n, gelu_dropout_forward(y, z, mask, x, n, 0.2f, 5));
    BENCH("gelu_dropout_backward", n, gelu_dropout_backward(y, z, x, n));
    BENCH("dropout_forward", n, dropout_forward(y, mask, x, n, 0.2f, 5));
    BENCH("dropout_forward_ref", n, dropout_forward_ref(y, mask, x, n, 0.2f, 5));
    BENCH("batchnorm_forward", n, batchnorm_forward(y, st, st + C, x, g, bt, B, C, 1e-5f, NULL, NULL, 0));
    BENCH("batchnorm_forward_ref", n, batchnorm_forward_ref(y, st, st + C, x, g, bt, B, C, 1e-5f, NULL, NULL, 0));
    BENCH("batchnorm_backward", n, batchnorm_backward(y, st + 2 * C, st + 3 * C, z, x, g, st, st + C, B, C));
    BENCH("batchnorm_backward_ref", n, batchnorm_backward_ref(y, st + 2 * C, st + 3 * C, z, x, g, st, st + C, B, C));
    BENCH("gin_combine_backward", n, gin_combine_backward(y, z, st, x, x, &eps, B, C));
    BENCH("gin_combine_backward_ref", n, gin_combine_backward_ref(y, z, st, x, x, &eps, B, C));
    BENCH("memset", n, memset(y, 0, sizeof(real) * (size_t)n));
    free(x); free(y); free(z); free(g); free(bt); free(st); free(mask);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "bench")) {
        run_bench(argc > 2 ? atoll(argv[2]) : 16026, argc > 3 ? atoi(argv[3]) : 64);
        return 0;
    }
    run_tests();
    gemm_release();
    return failed ? 1 : 0;
}
