/* test_nn_grad.c: gradient checks of csrc/nn/ops.c, compiled with -DCM_REAL=double.
 * For each op: loss = sum(out * r) with random r; backward(dout = r) must match central
 * differences (h = 1e-6) of the loss on every input and parameter entry. Also: batch-norm
 * inference against its definition, AdamW against a scalar reference, dropout statistics.
 * Prints "N passed, M failed" and exits non-zero on any failure. */
#include "../nn/ops.h"
#include "../nn/loss.h"
#include "../nn/dice.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "grad_check.h"
#include "dice_check.h"



/* loss evaluators: each recomputes the op's forward and returns sum(out * r) */

/* ---- linear ---- */
typedef struct { real *x, *w, *b, *out, *r; int64_t B; int C, OC; } lin_ctx;
static double lin_loss(void *p) { lin_ctx *c = p; linear_forward(c->out, c->x, c->w, c->b, c->B, c->C, c->OC); return dot(c->out, c->r, c->B * c->OC); }
static void test_linear(void) {
    lin_ctx c = {0};
    c.B = 5; c.C = 4; c.OC = 3;
    c.x = vec(c.B * c.C); c.w = vec(c.OC * c.C); c.b = vec(c.OC); c.out = zeros(c.B * c.OC); c.r = vec(c.B * c.OC);
    real *dx = zeros(c.B * c.C), *dw = zeros(c.OC * c.C), *db = zeros(c.OC);
    lin_loss(&c);
    linear_backward(dx, dw, db, c.r, c.x, c.w, c.B, c.C, c.OC);
    for (int64_t i = 0; i < c.B * c.C; i++) check_close("linear dx", dx[i], numeric_grad(lin_loss, &c, c.x, i), 1e-7);
    for (int64_t i = 0; i < c.OC * c.C; i++) check_close("linear dw", dw[i], numeric_grad(lin_loss, &c, c.w, i), 1e-7);
    for (int64_t i = 0; i < c.OC; i++) check_close("linear db", db[i], numeric_grad(lin_loss, &c, c.b, i), 1e-7);
    /* accumulation: a second backward doubles the gradients */
    linear_backward(dx, dw, db, c.r, c.x, c.w, c.B, c.C, c.OC);
    check_close("linear accumulates", dw[0], 2 * numeric_grad(lin_loss, &c, c.w, 0), 1e-7);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.r); free(dx); free(dw); free(db);
}

/* ---- gelu ---- */
typedef struct { real *x, *out, *r; int64_t n; } un_ctx;
static double gelu_loss(void *p) { un_ctx *c = p; gelu_forward(c->out, c->x, c->n); return dot(c->out, c->r, c->n); }
static void test_gelu(void) {
    un_ctx c = {vec(40), zeros(40), vec(40), 40};
    for (int i = 0; i < 40; i++) c.x[i] *= 4;   /* cover the tails */
    real *dx = zeros(40);
    gelu_backward(dx, c.r, c.x, c.n);
    for (int64_t i = 0; i < c.n; i++) check_close("gelu dx", dx[i], numeric_grad(gelu_loss, &c, c.x, i), 1e-7);
    real z = 0, o;
    gelu_forward(&o, &z, 1);
    check_close("gelu(0) = 0", o, 0, 1e-15);
    real one = 1;
    gelu_forward(&o, &one, 1);
    check_close("gelu(1) = 0.841344746", o, 0.8413447460685429, 1e-12);
    free(c.x); free(c.out); free(c.r); free(dx);
}

/* ---- batch norm ---- */
typedef struct { real *x, *g, *b, *out, *mean, *rstd, *r; int64_t B; int C; } bn_ctx;
static double bn_loss(void *p) {
    bn_ctx *c = p;
    batchnorm_forward(c->out, c->mean, c->rstd, c->x, c->g, c->b, c->B, c->C, 1e-5, NULL, NULL, 0);
    return dot(c->out, c->r, c->B * c->C);
}
static void test_batchnorm(void) {
    bn_ctx c = {0};
    c.B = 7; c.C = 3;
    c.x = vec(c.B * c.C); c.g = vec(c.C); c.b = vec(c.C); c.out = zeros(c.B * c.C); c.mean = zeros(c.C);
    c.rstd = zeros(c.C); c.r = vec(c.B * c.C);
    real *dx = zeros(c.B * c.C), *dg = zeros(c.C), *db = zeros(c.C);
    bn_loss(&c);
    batchnorm_backward(dx, dg, db, c.r, c.x, c.g, c.mean, c.rstd, c.B, c.C);
    for (int64_t i = 0; i < c.B * c.C; i++) check_close("batchnorm dx", dx[i], numeric_grad(bn_loss, &c, c.x, i), 1e-6);
    for (int i = 0; i < c.C; i++) check_close("batchnorm dgamma", dg[i], numeric_grad(bn_loss, &c, c.g, i), 1e-7);
    for (int i = 0; i < c.C; i++) check_close("batchnorm dbeta", db[i], numeric_grad(bn_loss, &c, c.b, i), 1e-7);
    /* running stats, then inference equals (x - rm) / sqrt(rv + eps) * g + b */
    real rm[3] = {0, 0, 0}, rv[3] = {1, 1, 1};
    batchnorm_forward(c.out, c.mean, c.rstd, c.x, c.g, c.b, c.B, c.C, 1e-5, rm, rv, 0.1);
    double m0 = 0, v0 = 0;
    for (int64_t b = 0; b < c.B; b++) m0 += c.x[b * c.C] / (double)c.B;
    for (int64_t b = 0; b < c.B; b++) v0 += (c.x[b * c.C] - m0) * (c.x[b * c.C] - m0) / (double)(c.B - 1);
    check_close("batchnorm running mean", rm[0], 0.1 * m0, 1e-12);
    check_close("batchnorm running var", rv[0], 0.9 + 0.1 * v0, 1e-12);
    batchnorm_inference(c.out, c.x, c.g, c.b, rm, rv, c.B, c.C, 1e-5);
    check_close("batchnorm inference", c.out[4], (c.x[4] - rm[1]) / sqrt(rv[1] + 1e-5) * c.g[1] + c.b[1], 1e-12);
    free(c.x); free(c.g); free(c.b); free(c.out); free(c.mean); free(c.rstd); free(c.r); free(dx); free(dg); free(db);
}

/* ---- dropout ---- */
static void test_dropout(void) {
    int64_t n = 200000;
    real *x = vec(n), *out = zeros(n), *dx = zeros(n), *r = vec(n);
    uint8_t *mask = malloc((size_t)n);
    dropout_forward(out, mask, x, n, 0.2, 42);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += mask[i];
    check_close("dropout keeps 1-p", (double)kept / (double)n, 0.8, 5e-3);
    check_close("dropout scales kept", out[0], mask[0] ? x[0] / 0.8 : 0, 1e-12);
    dropout_backward(dx, r, mask, n, 0.2);
    check_close("dropout backward", dx[1], mask[1] ? r[1] / 0.8 : 0, 1e-12);
    uint8_t *mask2 = malloc((size_t)n);
    dropout_forward(out, mask2, x, n, 0.2, 42);
    check_close("dropout deterministic", memcmp(mask, mask2, (size_t)n) == 0, 1, 0);
    free(x); free(out); free(dx); free(r); free(mask); free(mask2);
}

/* ---- gather-mul and scatter-add (one message-passing step) ---- */
typedef struct { real *h, *e, *msg, *z, *r; int64_t *src, *dst, *ptr, *edges; int64_t N, E; int C; } mp_ctx;
static double mp_loss(void *p) {
    mp_ctx *c = p;
    gather_mul_forward(c->msg, c->h, c->src, c->e, c->E, c->C);
    memset(c->z, 0, sizeof(real) * (size_t)(c->N * c->C));
    scatter_add_forward(c->z, c->msg, c->ptr, c->edges, c->N, c->C);
    return dot(c->z, c->r, c->N * c->C);
}
static void test_message_passing(void) {
    mp_ctx c = {0};
    c.N = 6; c.E = 14; c.C = 3;
    c.h = vec(c.N * c.C); c.e = vec(c.E * c.C); c.msg = zeros(c.E * c.C); c.z = zeros(c.N * c.C); c.r = vec(c.N * c.C);
    c.src = malloc(sizeof(int64_t) * (size_t)c.E); c.dst = malloc(sizeof(int64_t) * (size_t)c.E);
    for (int64_t e = 0; e < c.E; e++) { c.src[e] = (int64_t)(urand() * (double)c.N); c.dst[e] = (int64_t)(urand() * (double)c.N); }
    c.ptr = malloc(sizeof(int64_t) * (size_t)(c.N + 1)); c.edges = malloc(sizeof(int64_t) * (size_t)c.E);
    int64_t *sptr = malloc(sizeof(int64_t) * (size_t)(c.N + 1)), *sedges = malloc(sizeof(int64_t) * (size_t)c.E);
    scatter_csr(c.ptr, c.edges, c.dst, c.E, c.N);
    scatter_csr(sptr, sedges, c.src, c.E, c.N);
    real *dmsg = zeros(c.E * c.C), *dh = zeros(c.N * c.C), *de = zeros(c.E * c.C);
    mp_loss(&c);
    scatter_add_backward(dmsg, c.r, c.dst, c.E, c.C);
    gather_mul_backward(dh, de, dmsg, c.h, c.src, c.e, c.E, c.C, c.N, sptr, sedges);
    for (int64_t i = 0; i < c.N * c.C; i++) check_close("message dh", dh[i], numeric_grad(mp_loss, &c, c.h, i), 1e-7);
    for (int64_t i = 0; i < c.E * c.C; i++) check_close("message de", de[i], numeric_grad(mp_loss, &c, c.e, i), 1e-7);
    free(c.h); free(c.e); free(c.msg); free(c.z); free(c.r); free(c.src); free(c.dst); free(c.ptr); free(c.edges);
    free(sptr); free(sedges); free(dmsg); free(dh); free(de);
}

/* ---- GIN combine ---- */
typedef struct { real *x, *z, *eps, *out, *r; int64_t B; int C; } gc_ctx;
static double gc_loss(void *p) { gc_ctx *c = p; gin_combine_forward(c->out, c->x, c->z, c->eps, c->B, c->C); return dot(c->out, c->r, c->B * c->C); }
static void test_gin_combine(void) {
    gc_ctx c = {vec(12), vec(12), vec(1), zeros(12), vec(12), 4, 3};
    real *dx = zeros(12), *dz = zeros(12), *de = zeros(1);
    gin_combine_backward(dx, dz, de, c.r, c.x, c.eps, c.B, c.C);
    for (int i = 0; i < 12; i++) check_close("gin dx", dx[i], numeric_grad(gc_loss, &c, c.x, i), 1e-7);
    for (int i = 0; i < 12; i++) check_close("gin dz", dz[i], numeric_grad(gc_loss, &c, c.z, i), 1e-7);
    check_close("gin deps", de[0], numeric_grad(gc_loss, &c, c.eps, 0), 1e-7);
    free(c.x); free(c.z); free(c.eps); free(c.out); free(c.r); free(dx); free(dz); free(de);
}

/* ---- AdamW against a scalar reference ---- */
static void test_adamw(void) {
    real p[2] = {0.5, -1.0}, g[2] = {0.1, -0.3}, m[2] = {0, 0}, v[2] = {0, 0};
    double rp = 0.5, rm = 0, rv = 0;
    for (int t = 1; t <= 3; t++) {
        adamw_update(p, g, m, v, 2, 1e-2, 0.9, 0.999, 1e-8, 0.01, t);
        rm = 0.9 * rm + 0.1 * 0.1;
        rv = 0.999 * rv + 0.001 * 0.01;
        double mh = rm / (1 - pow(0.9, t)), vh = rv / (1 - pow(0.999, t));
        rp -= 1e-2 * (mh / (sqrt(vh) + 1e-8) + 0.01 * rp);
    }
    check_close("adamw matches reference", p[0], rp, 1e-12);
}

/* ---- edge difference ---- */
typedef struct { real *z, *out, *r; int64_t *src, *dst; int64_t N, E; int C; } gd_ctx;
static double gd_loss(void *p) { gd_ctx *c = p; gather_diff_forward(c->out, c->z, c->src, c->dst, c->E, c->C); return dot(c->out, c->r, c->E * c->C); }
static void test_gather_diff(void) {
    gd_ctx c = {0};
    c.N = 5; c.E = 9; c.C = 2;
    c.z = vec(c.N * c.C); c.out = zeros(c.E * c.C); c.r = vec(c.E * c.C);
    c.src = malloc(sizeof(int64_t) * 9); c.dst = malloc(sizeof(int64_t) * 9);
    for (int e = 0; e < 9; e++) { c.src[e] = (int64_t)(urand() * 5); c.dst[e] = (int64_t)(urand() * 5); }
    int64_t sp[6], se[9], dp[6], de[9];
    scatter_csr(sp, se, c.src, 9, 5);
    scatter_csr(dp, de, c.dst, 9, 5);
    real *dz = zeros(c.N * c.C);
    gather_diff_backward(dz, c.r, c.N, c.C, sp, se, dp, de);
    for (int64_t i = 0; i < c.N * c.C; i++) check_close("gather_diff dz", dz[i], numeric_grad(gd_loss, &c, c.z, i), 1e-7);
    free(c.z); free(c.out); free(c.r); free(c.src); free(c.dst); free(dz);
}

/* ---- l2 norm + DICE loss (and NT-Xent as tau = tau_p = tau_n) ---- */
typedef struct { real *y, *u, *norm, *sim; double *anchor; int64_t *group; uint8_t *neg; int64_t G; int D; double t, tp, tn; } dl_ctx;
static double dl_loss(void *p) {
    dl_ctx *c = p;
    l2norm_forward(c->u, c->norm, c->y, c->G, c->D);
    return dice_loss_forward(c->sim, c->anchor, c->u, c->group, c->neg, c->G, c->D, c->t, c->tp, c->tn, NULL);
}
static void test_dice_loss(double t, double tp, double tn, const char *name) {
    dl_ctx c = {0};
    c.G = 9; c.D = 4; c.t = t; c.tp = tp; c.tn = tn;
    c.y = vec(c.G * c.D); c.u = zeros(c.G * c.D); c.norm = zeros(c.G); c.sim = zeros(c.G * c.G);
    c.anchor = calloc(9, sizeof(double));
    int64_t group[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    uint8_t neg[9] = {0, 0, 1, 0, 0, 1, 0, 0, 0};
    c.group = group; c.neg = neg;
    int64_t pairs = 0;
    l2norm_forward(c.u, c.norm, c.y, c.G, c.D);
    double L = dice_loss_forward(c.sim, c.anchor, c.u, group, neg, c.G, c.D, t, tp, tn, &pairs);
    check_close("dice loss pair count", (double)pairs, 2 + 2 + 6, 0);
    /* reference value straight from the formula */
    double ref = 0;
    for (int i = 0; i < 9; i++) {
        if (neg[i]) continue;
        double den = 0;
        for (int k = 0; k < 9; k++) {
            if (k == i) continue;
            int pos = group[k] == group[i] && !neg[k];
            den += exp(c.sim[i * 9 + k] / (pos ? tp : tn));
        }
        for (int j = 0; j < 9; j++)
            if (j != i && group[j] == group[i] && !neg[j]) ref += -(c.sim[i * 9 + j] / t - log(den));
    }
    check_close(name, L, ref / (double)pairs, 1e-12);
    real *du = zeros(c.G * c.D), *dy = zeros(c.G * c.D), *ds = zeros(c.G * c.G);
    dice_loss_backward(du, ds, c.u, c.sim, group, neg, c.G, c.D, t, tp, tn);
    l2norm_backward(dy, du, c.u, c.norm, c.G, c.D);
    for (int64_t i = 0; i < c.G * c.D; i++) check_close(name, dy[i], numeric_grad(dl_loss, &c, c.y, i), 1e-6);
    free(c.y); free(c.u); free(c.norm); free(c.sim); free(c.anchor); free(du); free(dy); free(ds);
}

/* ---- the whole DICE encoder (fixture in dice_check.h) ---- */
/* onehot: node and edge features are one-hot types, as in DICE's schema, which sends the
 * encoders down their grouped path (distinct rows only) */
static void test_dice_model(float dropout, int onehot) {
    cm_dice_config cfg = {3, 2, 4, 3, 2, dropout, 1e-5f, 0.1f};
    dm_ctx c = {0};
    cm_error err;
    if (cm_dice_init(&c.m, &cfg, 5, &err)) { failed++; printf("FAIL dice init: %s\n", err.msg); return; }
    dm_inputs(&c);
    if (onehot) {
        for (int n = 0; n < 9; n++) for (int f = 0; f < 3; f++) c.x[n * 3 + f] = (real)((n * 5 + n / 3) % 3 == f);
        for (int e = 0; e < 14; e++) for (int f = 0; f < 2; f++) c.ea[e * 2 + f] = (real)((e * 7 / 3) % 2 == f);
    }
    /* make eps non-zero so its gradient path is exercised with a non-trivial factor */
    const char *name;
    real *P = cm_dice_params(c.m);
    int64_t off = 0;
    for (int i = 0; cm_dice_tensor(c.m, i, &name) >= 0; i++) {
        int64_t sz = cm_dice_tensor(c.m, i, &name);
        if (strstr(name, "eps")) P[off] = (real)(0.3 * (i % 3) - 0.2);
        off += sz;
    }
    cm_dice_zero_grad(c.m);
    dm_loss(&c);
    if (cm_dice_backward(c.m, c.r, &err)) { failed++; printf("FAIL dice backward: %s\n", err.msg); }
    real *G = cm_dice_grads(c.m);
    int64_t P_n = cm_dice_num_params(c.m);
    /* running statistics move with each forward; they do not enter the training-mode output */
    int before = failed;
    for (int64_t i = 0; i < P_n; i++) {
        char what[96];
        name = dm_tensor_of(c.m, i, &off);
        snprintf(what, sizeof what, "dice d%s[%lld] (dropout %.1f%s)", name, (long long)(i - off), dropout,
                 onehot ? ", one-hot inputs" : "");
        check_close(what, G[i], numeric_grad(dm_loss, &c, P, i), 1e-5);
        if (failed - before > 10) break;
    }
    /* eval mode runs (running statistics, no dropout) and backward then refuses */
    cm_dice_forward(c.m, c.y, c.x, c.ea, c.src, c.dst, c.ng, c.eg, c.N, c.E, c.G, 0, 0, &err);
    check_close("dice backward after eval forward refuses", cm_dice_backward(c.m, c.r, &err) != CM_OK, 1, 0);
    dm_free(&c);
}

int main(void) {
    rng_state = 88172645463325252ull;   /* the inputs this test was written with */
    test_dice_model(0.0f, 0);
    test_dice_model(0.2f, 0);
    test_dice_model(0.0f, 1);
    test_dice_model(0.2f, 1);
    test_gather_diff();
    test_dice_loss(0.05, 0.2, 0.05, "dice loss (DICE temperatures)");
    test_dice_loss(0.1, 0.1, 0.1, "nt-xent (one temperature)");
    test_linear();
    test_gelu();
    test_batchnorm();
    test_dropout();
    test_message_passing();
    test_gin_combine();
    test_adamw();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
