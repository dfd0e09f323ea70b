/* test_mlp_grad.c: checks of csrc/nn/mlp.c and of the MLP backbone of csrc/diffusion/model.c
 * (DM-MLP), compiled with -DCM_REAL=double.
 *
 * 1. mlp_forward/mlp_backward: for loss = sum(out * g) with fixed random g, the gradient of every
 *    parameter and of every input entry matches central differences (h = 1e-6), without dropout
 *    and with dropout 0.3 (the mask is a function of the seed, so the loss stays differentiable);
 *    an entry whose two differences leave different hidden units active (they straddle ReLU's
 *    kink) is skipped (at most 4 may be).
 * 2. cm_mlp: its MSE loss's gradient block (cm_mlp_loss) matches central differences; AdamW steps
 *    lower the loss; predict equals a forward without dropout.
 * 3. The diffusion model with backbone = MLP: the gradient block of cm_diffusion_loss (some rows
 *    with the condition dropped, t including 0 and T-1, dropout on) matches central differences of
 *    the loss computed by forward alone, on every parameter; every tensor gets some gradient;
 *    training steps lower the loss; sampling is deterministic, a sample does not depend on the
 *    others drawn with it, and the two guidance conventions agree (w and -w).
 * Prints "N passed, M failed" and exits non-zero on any failure. */
#include "../diffusion/model.h"
#include "../nn/mlp.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "grad_check.h"


static void expect(const char *what, int ok) {
    if (ok) passed++;
    else { failed++; printf("FAIL %s\n", what); }
}

/* ---------------------------------------------------------------- 1. the layer pair */

enum { B1 = 5, L1 = 3 };
static const int W1[L1 + 1] = {6, 9, 7, 4};

static double sum_out_g(const real *params, const real *inp, const real *g, real p) {
    real out[B1 * 4], acts[2 * B1 * 16];
    uint8_t masks[B1 * 16];
    mlp_forward(out, acts, masks, inp, params, W1, L1, B1, p, 1234);
    double s = 0;
    for (int i = 0; i < B1 * W1[L1]; i++) s += out[i] * g[i];
    return s;
}

/* a hash of which hidden units are active (pre > 0): where a difference changes it, the two
 * sides straddle ReLU's kink and the central difference is not the derivative */
static uint64_t active_pattern(const real *params, const real *inp, real p) {
    real out[B1 * 4], acts[2 * B1 * 16];
    uint8_t masks[B1 * 16];
    mlp_forward(out, acts, masks, inp, params, W1, L1, B1, p, 1234);
    uint64_t hsh = 1469598103934665603ull;
    int64_t off = 0;
    for (int h = 0; h + 1 < L1; h++) {
        for (int64_t k = 0; k < B1 * W1[h + 1]; k++) hsh = (hsh ^ (uint64_t)(acts[off + k] > 0)) * 1099511628211ull;
        off += 2 * B1 * W1[h + 1];
    }
    return hsh;
}

static void test_layer(real p) {
    const int64_t P = mlp_num_params(W1, L1);
    real *params = malloc(sizeof(real) * P), *dparams = calloc(P, sizeof(real));
    real inp[B1 * 6], dinp[B1 * 6] = {0}, g[B1 * 4], out[B1 * 4];
    real *acts = malloc(sizeof(real) * mlp_num_acts(W1, L1, B1));
    uint8_t *masks = malloc(mlp_num_masks(W1, L1, B1));
    real *scratch = malloc(sizeof(real) * mlp_num_scratch(W1, L1, B1));
    mlp_init_params(params, W1, L1, 5);
    fill(inp, B1 * W1[0]);
    fill(g, B1 * W1[L1]);
    mlp_forward(out, acts, masks, inp, params, W1, L1, B1, p, 1234);
    mlp_backward(dinp, dparams, scratch, g, inp, params, acts, masks, W1, L1, B1, p);
    const double h = 1e-6;
    char what[96];
    int skipped = 0;
    for (int64_t i = 0; i < P; i++) {
        const real keep = params[i];
        params[i] = keep + h;
        const double lp = sum_out_g(params, inp, g, p);
        const uint64_t ap = active_pattern(params, inp, p);
        params[i] = keep - h;
        const double lm = sum_out_g(params, inp, g, p);
        const uint64_t am = active_pattern(params, inp, p);
        params[i] = keep;
        if (ap != am) { skipped++; continue; }
        snprintf(what, sizeof what, "mlp p=%.1f dparam[%lld]", (double)p, (long long)i);
        check_close(what, dparams[i], (lp - lm) / (2 * h), 1e-6);
    }
    for (int64_t i = 0; i < B1 * W1[0]; i++) {
        const real keep = inp[i];
        inp[i] = keep + h;
        const double lp = sum_out_g(params, inp, g, p);
        inp[i] = keep - h;
        const double lm = sum_out_g(params, inp, g, p);
        inp[i] = keep;
        snprintf(what, sizeof what, "mlp p=%.1f dinp[%lld]", (double)p, (long long)i);
        check_close(what, dinp[i], (lp - lm) / (2 * h), 1e-6);
    }
    if (skipped >= 5) printf("skipped %d at kinks (p=%.1f)\n", skipped, (double)p);
    expect("few entries skipped at ReLU kinks", skipped < 5);
    /* with dropout some hidden units are zeroed: the output must differ from p = 0 */
    if (p > 0) {
        real out0[B1 * 4];
        mlp_forward(out0, acts, masks, inp, params, W1, L1, B1, 0, 1234);
        int differs = 0;
        for (int i = 0; i < B1 * W1[L1]; i++) differs |= out0[i] != out[i];
        expect("dropout changes the output", differs);
    }
    free(params); free(dparams); free(acts); free(masks); free(scratch);
}

/* ---------------------------------------------------------------- 2. the regression model */

static void test_regressor(void) {
    const int w[4] = {4, 10, 8, 3};
    cm_mlp *m;
    cm_error err;
    expect("cm_mlp_init refuses a zero width", cm_mlp_init(&m, (const int[]){4, 0, 3}, 2, 0, 1, &err) == CM_ERR_VALUE);
    if (cm_mlp_init(&m, w, 3, 0.0f, 9, &err)) { printf("FAIL init: %s\n", err.msg); exit(2); }
    enum { B = 20 };
    real x[B * 4], y[B * 3], out[B * 3];
    fill(x, B * 4);
    for (int b = 0; b < B; b++)   /* a smooth target the MLP can fit */
        for (int k = 0; k < 3; k++) y[b * 3 + k] = (real)(0.5 * sin(x[b * 4 + k] + x[b * 4 + 3]));
    double l0;
    cm_mlp_loss(m, &l0, x, y, B, 3, &err);
    const int64_t P = cm_mlp_num_params(m);
    real *p = cm_mlp_params(m), *gr = malloc(sizeof(real) * P);
    memcpy(gr, cm_mlp_grads(m), sizeof(real) * P);
    const double h = 1e-6;
    char what[64];
    for (int64_t i = 0; i < P; i++) {
        const real keep = p[i];
        double lp, lm;
        p[i] = keep + h; cm_mlp_loss(m, &lp, x, y, B, 3, &err);
        p[i] = keep - h; cm_mlp_loss(m, &lm, x, y, B, 3, &err);
        p[i] = keep;
        snprintf(what, sizeof what, "cm_mlp dparam[%lld]", (long long)i);
        check_close(what, gr[i], (lp - lm) / (2 * h), 1e-5);
    }
    double l = 0;
    for (int s = 0; s < 300; s++) cm_mlp_train_step(m, &l, x, y, B, 3e-3, 0.9, 0.999, 1e-8, 0, (uint64_t)s, &err);
    cm_mlp_loss(m, &l, x, y, B, 0, &err);
    expect("AdamW steps lower the MSE by 10x", l < 0.1 * l0);
    cm_mlp_predict(m, out, x, B, &err);
    double sse = 0;
    for (int i = 0; i < B * 3; i++) sse += (out[i] - y[i]) * (out[i] - y[i]);
    check_close("predict equals the loss's forward", sse / (B * 3), l, 1e-12);
    expect("cm_mlp_predict refuses an empty batch", cm_mlp_predict(m, out, x, 0, &err) == CM_ERR_VALUE);
    free(gr);
    cm_mlp_free(m);
}

/* ---------------------------------------------------------------- 3. DM-MLP */

static cm_diffusion_config mlp_config(float dropout) {
    cm_diffusion_config c = {0};
    c.x_dim = 3; c.y_dim = 4; c.channels = 8; c.timesteps = 50; c.zero_terminal_snr = 1; c.act = CM_ACT_GELU;
    c.dropout = dropout; c.backbone = CM_BACKBONE_MLP; c.mlp_layers = 2; c.mlp_hidden = 10;
    return c;
}

enum { B3 = 6 };
typedef struct {
    cm_diffusion *m;
    real x0[B3 * 3], y[B3 * 4], eps[B3 * 3];
    int64_t t[B3];
    uint8_t drop[B3];
} ctx;

static double loss_of(ctx *c) {
    double l;
    cm_error err;
    if (cm_diffusion_loss(c->m, &l, c->x0, c->y, c->t, c->eps, c->drop, B3, 77, &err)) {
        printf("FAIL loss: %s\n", err.msg);
        exit(2);
    }
    return l;
}

/* the loss by forward alone, with x_t and v written out */
static double forward_loss(ctx *c) {
    const double *acp = cm_diffusion_alphas_cumprod(c->m);
    real xt[B3 * 3], out[B3 * 3];
    double v[B3 * 3];
    for (int b = 0; b < B3; b++)
        for (int d = 0; d < 3; d++) {
            const double a = sqrt(acp[c->t[b]]), s = sqrt(1 - acp[c->t[b]]);
            xt[b * 3 + d] = (real)(a * c->x0[b * 3 + d] + s * c->eps[b * 3 + d]);
            v[b * 3 + d] = a * c->eps[b * 3 + d] - s * c->x0[b * 3 + d];
        }
    cm_error err;
    if (cm_diffusion_forward(c->m, out, xt, c->t, c->y, c->drop, B3, 1, 77, &err)) {
        printf("FAIL forward: %s\n", err.msg);
        exit(2);
    }
    double l = 0;
    for (int i = 0; i < B3 * 3; i++) l += (out[i] - v[i]) * (out[i] - v[i]);
    return l / (B3 * 3);
}

static void test_dm_mlp(float dropout) {
    cm_diffusion_config cfg = mlp_config(dropout);
    ctx c;
    cm_error err;
    if (cm_diffusion_init(&c.m, &cfg, 11, &err)) { printf("FAIL init: %s\n", err.msg); exit(2); }
    fill(c.x0, B3 * 3); fill(c.y, B3 * 4); fill(c.eps, B3 * 3);
    const int64_t ts[B3] = {0, 49, 25, 3, 40, 12};
    const uint8_t dr[B3] = {0, 1, 0, 1, 0, 0};
    memcpy(c.t, ts, sizeof ts);
    memcpy(c.drop, dr, sizeof dr);
    /* biases and the null condition away from their initial values, so none is trivially 0 */
    real *p = cm_diffusion_params(c.m);
    const int64_t P = cm_diffusion_num_params(c.m);
    for (int64_t i = 0; i < P; i++) p[i] += (real)(0.1 * (2 * urand() - 1));
    const double l = loss_of(&c);
    check_close("loss equals forward_loss", l, forward_loss(&c), 1e-12);
    real *g = malloc(sizeof(real) * P);
    memcpy(g, cm_diffusion_grads(c.m), sizeof(real) * P);
    const double h = 1e-6;
    char what[128];
    const char *name;
    int nd;
    int64_t dims[2], size, off = 0;
    for (int ti = 0; (size = cm_diffusion_tensor(c.m, ti, &name, &nd, dims)) >= 0; ti++) {
        double gmax = 0;
        for (int64_t k = 0; k < size; k++) {
            const int64_t i = off + k;
            const real keep = p[i];
            p[i] = keep + h;
            const double lp = forward_loss(&c);
            p[i] = keep - h;
            const double lm = forward_loss(&c);
            p[i] = keep;
            snprintf(what, sizeof what, "dm-mlp dropout=%.1f %s[%lld]", (double)dropout, name, (long long)k);
            check_close(what, g[i], (lp - lm) / (2 * h), 1e-5);
            gmax = fmax(gmax, fabs(g[i]));
        }
        snprintf(what, sizeof what, "dm-mlp %s receives a gradient", name);
        expect(what, gmax > 0);
        off += size;
    }
    expect("the table covers every parameter", off == P);
    free(g);
    cm_diffusion_free(c.m);
}

static void test_dm_mlp_train_and_sample(void) {
    cm_diffusion_config cfg = mlp_config(0.1f);
    cm_diffusion *m;
    cm_error err;
    cfg.timesteps = 100;
    if (cm_diffusion_init(&m, &cfg, 3, &err)) { printf("FAIL init: %s\n", err.msg); exit(2); }
    enum { N = 64 };
    real x0[N * 3], y[N * 4];
    fill(x0, N * 3);
    for (int b = 0; b < N; b++)
        for (int k = 0; k < 4; k++) y[b * 4 + k] = x0[b * 3 + k % 3] * (k == 3 ? -1 : 1);
    cm_train_config tc = {3e-3, 0.9, 0.999, 1e-8, 0, 0.1, 1.0};
    double first = 0, last = 0, l;
    for (int s = 0; s < 400; s++) {
        cm_diffusion_train_step(m, &l, x0, y, N, &tc, 5, (uint64_t)s, &err);
        if (s < 20) first += l / 20;
        if (s >= 380) last += l / 20;
    }
    expect("DM-MLP training lowers the v-loss", last < 0.7 * first);
    real a[N * 3], b[N * 3], part[8 * 3], gu[N * 3], gs[N * 3];
    cm_sample_config sc = {CM_SAMPLER_DDIM, 10, CM_SPACING_TRAILING, 0.0, CM_GUIDE_UNCOND_WEIGHT, 0.1, 1.0, 9, 0};
    cm_diffusion_sample(m, a, y, N, &sc, &err);
    cm_diffusion_sample(m, b, y, N, &sc, &err);
    expect("DM-MLP sampling is deterministic", !memcmp(a, b, sizeof a));
    sc.sample0 = 20;
    cm_diffusion_sample(m, part, y + 20 * 4, 8, &sc, &err);
    expect("a DM-MLP sample does not depend on the others drawn with it", !memcmp(part, a + 20 * 3, sizeof part));
    sc.sample0 = 0;
    sc.sampler = CM_SAMPLER_DDPM;
    sc.eta = 0;
    sc.w = 0.3;
    cm_diffusion_sample(m, gu, y, N, &sc, &err);
    sc.guidance = CM_GUIDE_SCALE;
    sc.w = -0.3;
    cm_diffusion_sample(m, gs, y, N, &sc, &err);
    double dmax = 0;
    for (int i = 0; i < N * 3; i++) dmax = fmax(dmax, fabs(gu[i] - gs[i]));
    expect("guidance conventions agree for DM-MLP (w and -w)", dmax < 1e-9);
    cm_diffusion_config bad = mlp_config(0);
    bad.mlp_layers = 0;
    cm_diffusion *mb = NULL;
    expect("mlp_layers = 0 is refused", cm_diffusion_init(&mb, &bad, 1, &err) == CM_ERR_VALUE && mb == NULL);
    bad = mlp_config(0);
    bad.backbone = (cm_backbone)7;
    expect("an unknown backbone is refused", cm_diffusion_init(&mb, &bad, 1, &err) == CM_ERR_VALUE);
    cm_diffusion_free(m);
}

int main(void) {
    rng_state = 0x2545f4914f6cdd1dull;   /* the inputs this test was written with */
    test_layer(0);
    test_layer(0.3f);
    test_regressor();
    test_dm_mlp(0);
    test_dm_mlp(0.2f);
    test_dm_mlp_train_and_sample();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
