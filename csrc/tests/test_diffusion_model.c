/* test_diffusion_model.c: checks of csrc/diffusion/model.c, compiled with -DCM_REAL=double.
 *
 * Whole-model gradient check: loss = the v-prediction MSE of cm_diffusion_loss on a small batch
 * (some rows with their condition dropped, t including 0 and T-1, block dropout on); its gradient
 * must match central differences (h = 1e-6) of the loss recomputed by forward alone, on every
 * entry of the tensors of at most 16 entries and on 16 entries (first, last, 14 at random) of each
 * larger one, for a GELU model with dropout and a ReLU model without; every tensor must receive
 * some gradient. Also: the parameter table, training steps lowering the loss,
 * sampling determinism (a sample does not depend on the others drawn with it or on its chunk),
 * the two guidance conventions agreeing, and errors reported as statuses.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 *
 * `test_diffusion_model quick` checks 4 entries per larger tensor instead of 16 (for the run with
 * 2 threads, whose many small parallel regions are slow under the sanitizers).
 * `test_diffusion_model dump` instead prints training losses and samples in hexadecimal floats,
 * which tests/test_diffusion_model.py compares between 1 and 2 OpenMP threads. */
#include "../diffusion/model.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "grad_check.h"

static int picks_max = 16;   /* entries checked per larger tensor; `quick`: 4 */


static cm_diffusion_config small_config(cm_activation act, float dropout) {
    cm_diffusion_config c = {0};
    c.x_dim = 3; c.y_dim = 2; c.cond_tokens = 2; c.channels = 8; c.heads = 2; c.ff = 12;
    c.enc_layers = 2; c.dec_layers = 2; c.timesteps = 50; c.zero_terminal_snr = 1; c.act = act; c.dropout = dropout;
    return c;
}

static cm_diffusion *make(const cm_diffusion_config *c, uint64_t seed) {
    cm_diffusion *m;
    cm_error err;
    if (cm_diffusion_init(&m, c, seed, &err)) { printf("FAIL init: %s\n", err.msg); exit(2); }
    return m;
}

/* Layer norms away from (1, 0) and biases away from 0, so no gradient is trivially zero. */
static void perturb(cm_diffusion *m) {
    const char *name;
    int nd;
    int64_t dims[2], off = 0, size;
    real *p = cm_diffusion_params(m);
    for (int i = 0; (size = cm_diffusion_tensor(m, i, &name, &nd, dims)) >= 0; i++) {
        const int is_norm_w = strstr(name, "norm") && strstr(name, ".weight");
        const int is_bias = strstr(name, "bias") != NULL;
        for (int64_t k = 0; k < size; k++) {
            if (is_norm_w) p[off + k] = (real)(1 + 0.3 * (2 * urand() - 1));
            else if (is_bias) p[off + k] = (real)(0.2 * (2 * urand() - 1));
        }
        off += size;
    }
}

typedef struct {
    cm_diffusion *m;
    int64_t B;
    real *x0, *y, *eps;
    int64_t *t;
    uint8_t *drop;
} loss_ctx;

static double eval_loss(loss_ctx *c) {
    double l;
    cm_error err;
    if (cm_diffusion_loss(c->m, &l, c->x0, c->y, c->t, c->eps, c->drop, c->B, 77, &err)) {
        printf("FAIL loss: %s\n", err.msg);
        exit(2);
    }
    return l;
}

/* The same loss by forward alone (the numeric side needs no backward): v and x_t by the
 * formulas of schedule.h, written out here, so the check also covers the targets. */
static double forward_loss(loss_ctx *c) {
    const cm_diffusion_config *cfg = cm_diffusion_get_config(c->m);
    const double *acp = cm_diffusion_alphas_cumprod(c->m);
    const int D = cfg->x_dim;
    real xt[64], out[64];
    double v[64];
    for (int64_t b = 0; b < c->B; b++)
        for (int d = 0; d < D; d++) {
            const double a = sqrt(acp[c->t[b]]), s = sqrt(1 - acp[c->t[b]]);
            xt[b * D + d] = (real)(a * c->x0[b * D + d] + s * c->eps[b * D + d]);
            v[b * D + d] = a * c->eps[b * D + d] - s * c->x0[b * D + d];
        }
    cm_error err;
    if (cm_diffusion_forward(c->m, out, xt, c->t, c->y, c->drop, c->B, 1, 77, &err)) {
        printf("FAIL forward: %s\n", err.msg);
        exit(2);
    }
    double l = 0;
    for (int64_t i = 0; i < c->B * D; i++) l += (out[i] - v[i]) * (out[i] - v[i]);
    return l / (double)(c->B * D);
}

static void test_gradients(cm_activation act, float dropout, int chunk_rows) {
    cm_diffusion_config cfg = small_config(act, dropout);
    cm_diffusion *m = make(&cfg, 5);
    perturb(m);
    cm_diffusion_set_chunk_rows(m, chunk_rows);
    loss_ctx c = {m, 4, NULL, NULL, NULL, NULL, NULL};
    const int D = cfg.x_dim, P = cfg.y_dim;
    c.x0 = malloc(sizeof(real) * (size_t)(c.B * D)); c.eps = malloc(sizeof(real) * (size_t)(c.B * D));
    c.y = malloc(sizeof(real) * (size_t)(c.B * P));
    fill(c.x0, c.B * D); fill(c.eps, c.B * D); fill(c.y, c.B * P);
    int64_t t[4] = {0, 17, cfg.timesteps - 1, 33};
    uint8_t drop[4] = {0, 1, 0, 1};
    c.t = t; c.drop = drop;
    const double l0 = eval_loss(&c);
    check_close("loss is finite and positive", isfinite(l0) && l0 > 0, 1, 0);
    check_close("the loss by forward alone agrees", forward_loss(&c), l0, 1e-13);
    if (dropout == 0) {
        /* chunks of 1 row, of 3 and the whole batch give the same loss and gradients (up to the
         * order of the sums) */
        const int64_t np = cm_diffusion_num_params(m);
        real *g0 = malloc(sizeof(real) * (size_t)np);
        memcpy(g0, cm_diffusion_grads(m), sizeof(real) * (size_t)np);
        for (int r = 1; r <= 32; r += 31) {
            cm_diffusion_set_chunk_rows(m, r);
            double lr = eval_loss(&c), worst = 0;
            for (int64_t i = 0; i < np; i++) worst = fmax(worst, fabs(cm_diffusion_grads(m)[i] - g0[i]));
            check_close(r == 1 ? "chunks of 1 row: same loss" : "one chunk: same loss", lr, l0, 1e-14);
            check_close(r == 1 ? "chunks of 1 row: same gradients" : "one chunk: same gradients", worst, 0, 1e-13);
        }
        cm_diffusion_set_chunk_rows(m, chunk_rows);
        eval_loss(&c);
        free(g0);
    }
    const int64_t n = cm_diffusion_num_params(m);
    real *p = cm_diffusion_params(m), *g = malloc(sizeof(real) * (size_t)n);
    memcpy(g, cm_diffusion_grads(m), sizeof(real) * (size_t)n);
    /* the same loss again gives the same gradients (the zeroing is inside) */
    eval_loss(&c);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(cm_diffusion_grads(m)[i] - g[i]));
    check_close("cm_diffusion_loss zeroes before it accumulates", worst, 0, 0);
    const char *name;
    int nd;
    int64_t dims[2], off = 0, size;
    char what[160];
    const char *kind = act == CM_ACT_RELU ? "relu" : "gelu";
    for (int i = 0; (size = cm_diffusion_tensor(m, i, &name, &nd, dims)) >= 0; i++) {
        double gsum = 0;
        for (int64_t k = 0; k < size; k++) gsum += fabs(g[off + k]);
        /* small tensors: every entry; larger ones: the first, the last and the rest at random */
        const int64_t picks = size <= picks_max ? size : picks_max;
        for (int64_t q = 0; q < picks; q++) {
            const int64_t k = size <= picks_max ? q : q == 0 ? 0 : q == 1 ? size - 1 : (int64_t)(urand() * size);
            const int64_t j = off + k;
            const real old = p[j];
            p[j] = old + 1e-6; const double lp = forward_loss(&c);
            p[j] = old - 1e-6; const double lm = forward_loss(&c);
            p[j] = old;
            snprintf(what, sizeof what, "%s(p=%.1f, chunks of %d) d%s[%lld]", kind, (double)dropout, chunk_rows, name,
                     (long long)k);
            check_close(what, g[j], (lp - lm) / 2e-6, 2e-6);
        }
        snprintf(what, sizeof what, "%s(p=%.1f) %s gets a gradient", kind, (double)dropout, name);
        check_close(what, gsum > 0, 1, 0);
        off += size;
    }
    check_close("the table covers the parameter block", (double)off, (double)n, 0);
    /* with no row dropped the null embedding gets no gradient */
    uint8_t keep[4] = {0, 0, 0, 0};
    c.drop = keep;
    eval_loss(&c);
    real *gn = NULL;
    off = 0;
    for (int i = 0; (size = cm_diffusion_tensor(m, i, &name, &nd, dims)) >= 0; i++) {
        if (!strcmp(name, "null_cond")) gn = cm_diffusion_grads(m) + off;
        off += size;
    }
    double gnull = 0;
    for (int k = 0; k < cfg.cond_tokens * cfg.channels; k++) gnull += fabs(gn[k]);
    check_close("null_cond: no gradient when no condition is dropped", gnull, 0, 0);
    free(c.x0); free(c.eps); free(c.y); free(g);
    cm_diffusion_free(m);
}

static void test_table(void) {
    cm_diffusion_config cfg = small_config(CM_ACT_GELU, 0);
    cm_diffusion *m = make(&cfg, 1);
    const char *name;
    int nd;
    int64_t dims[2];
    int64_t s0 = cm_diffusion_tensor(m, 0, &name, &nd, dims);
    check_close("first tensor is x_embed.weight [D*C, D]", !strcmp(name, "x_embed.weight") && nd == 2 &&
          dims[0] == cfg.x_dim * cfg.channels && dims[1] == cfg.x_dim && s0 == dims[0] * dims[1], 1, 0);
    int found_enc = 0, found_dec = 0, count = 0;
    for (int i = 0; cm_diffusion_tensor(m, i, &name, &nd, dims) >= 0; i++, count++) {
        found_enc += !strcmp(name, "transformer.encoder.layers.1.self_attn.in_proj_weight");
        found_dec += !strcmp(name, "transformer.decoder.layers.1.multihead_attn.out_proj.bias");
    }
    check_close("encoder and decoder tensors are named as nn.Transformer's", found_enc && found_dec, 1, 0);
    /* 9 embedding tensors, 12 per encoder block, 18 per decoder block, 2 norms of 2, the head */
    check_close("tensor count", count, 9 + 12 * cfg.enc_layers + 2 + 18 * cfg.dec_layers + 2 + 2, 0);
    const double *acp = cm_diffusion_alphas_cumprod(m);
    check_close("zero terminal SNR", acp[cfg.timesteps - 1], 0, 0);
    cm_diffusion_free(m);
}

static void test_errors(void) {
    cm_diffusion_config cfg = small_config(CM_ACT_GELU, 0);
    cm_diffusion *m;
    cm_error err;
    cfg.heads = 3;
    check_close("channels % heads refused", cm_diffusion_init(&m, &cfg, 0, &err), CM_ERR_VALUE, 0);
    cfg = small_config(CM_ACT_GELU, 0);
    cfg.timesteps = 1;
    check_close("T = 1 refused", cm_diffusion_init(&m, &cfg, 0, &err), CM_ERR_VALUE, 0);
    cfg = small_config(CM_ACT_GELU, 0);
    m = make(&cfg, 0);
    check_close("backward before a training forward refused", cm_diffusion_backward(m, NULL, &err), CM_ERR_VALUE, 0);
    real x[3] = {0}, y[2] = {0}, out[3];
    int64_t t = cfg.timesteps;
    check_close("t = T refused", cm_diffusion_forward(m, out, x, &t, y, NULL, 1, 0, 0, &err), CM_ERR_VALUE, 0);
    check_close("... with a message naming it", strstr(err.msg, "t[0]") != NULL, 1, 0);
    cm_sample_config sc = {CM_SAMPLER_DDIM, 0, CM_SPACING_TRAILING, 0, CM_GUIDE_UNCOND_WEIGHT, 0.1, 1, 0, 0};
    check_close("0 sampling steps refused", cm_diffusion_sample(m, x, y, 1, &sc, &err), CM_ERR_VALUE, 0);
    sc.steps = cfg.timesteps + 1;
    check_close("steps > T refused", cm_diffusion_sample(m, x, y, 1, &sc, &err), CM_ERR_VALUE, 0);
    cm_diffusion_free(m);
}

/* A tiny learnable problem: x0 = (y0, -y0, y1), y uniform. */
static void make_data(real *x0, real *y, int64_t B) {
    for (int64_t b = 0; b < B; b++) {
        y[2 * b] = (real)(2 * urand() - 1); y[2 * b + 1] = (real)(2 * urand() - 1);
        x0[3 * b] = y[2 * b]; x0[3 * b + 1] = -y[2 * b]; x0[3 * b + 2] = y[2 * b + 1];
    }
}

static void test_training(void) {
    cm_diffusion_config cfg = small_config(CM_ACT_GELU, 0);
    cfg.channels = 16; cfg.ff = 32; cfg.enc_layers = 1; cfg.dec_layers = 1;
    cm_diffusion *m = make(&cfg, 3);
    cm_train_config tc = {3e-3, 0.9, 0.999, 1e-8, 0, 0.1, 1.0};
    const int64_t B = 64;
    real *x0 = malloc(sizeof(real) * B * 3), *y = malloc(sizeof(real) * B * 2);
    make_data(x0, y, B);
    double first = 0, last = 0, l;
    cm_error err;
    for (int s = 0; s < 300; s++) {
        if (cm_diffusion_train_step(m, &l, x0, y, B, &tc, 9, (uint64_t)s, &err)) { printf("FAIL step: %s\n", err.msg); exit(2); }
        if (s < 20) first += l / 20;
        if (s >= 280) last += l / 20;
    }
    check_close("training lowers the v-loss by half", last < 0.5 * first, 1, 0);
    check_close("the AdamW step counter advanced", cm_diffusion_adam_step(m), 300, 0);
    /* sampling: a sample does not depend on the others drawn with it, nor on its chunk */
    const int64_t n = 40;
    real *ys = malloc(sizeof(real) * n * 2), *xa = malloc(sizeof(real) * n * 3), *xb = malloc(sizeof(real) * 5 * 3);
    for (int64_t i = 0; i < n; i++) { ys[2 * i] = (real)(0.5 - i * 0.01); ys[2 * i + 1] = (real)(-0.3 + i * 0.005); }
    cm_sample_config sc = {CM_SAMPLER_DDIM, 10, CM_SPACING_TRAILING, 0, CM_GUIDE_UNCOND_WEIGHT, 0.1, 1, 42, 0};
    for (int k = 0; k < 2; k++) {
        sc.sampler = k ? CM_SAMPLER_DDPM : CM_SAMPLER_DDIM;
        if (cm_diffusion_sample(m, xa, ys, n, &sc, &err)) { printf("FAIL sample: %s\n", err.msg); exit(2); }
        cm_sample_config s5 = sc;
        s5.sample0 = 7;
        cm_diffusion_sample(m, xb, ys + 7 * 2, 5, &s5, &err);
        double worst = 0;
        for (int i = 0; i < 15; i++) worst = fmax(worst, fabs(xa[7 * 3 + i] - xb[i]));
        check_close(k ? "DDPM: samples 7..11 alone equal those of the batch of 40" : "DDIM: samples 7..11 alone equal those of the batch of 40",
              worst, 0, 0);
    }
    /* the paper's w = 0.1 on the unconditional output is guidance weight -0.1 in the (1 + w) convention */
    sc.sampler = CM_SAMPLER_DDIM;
    cm_diffusion_sample(m, xa, ys, 5, &sc, &err);
    cm_sample_config sg = sc;
    sg.guidance = CM_GUIDE_SCALE;
    sg.w = -0.1;
    cm_diffusion_sample(m, xb, ys, 5, &sg, &err);
    double worst = 0;
    for (int i = 0; i < 15; i++) worst = fmax(worst, fabs(xa[i] - xb[i]));
    check_close("w * uncond + (1 - w) * cond == uncond + (1 - w) * (cond - uncond)", worst, 0, 1e-10);
    /* the trained model lands near x0(y): (y0, -y0, y1), for a target it was trained around */
    real yt[2] = {(real)0.4, (real)-0.2};
    real ytn[20 * 2], xs[20 * 3];
    for (int i = 0; i < 20; i++) { ytn[2 * i] = yt[0]; ytn[2 * i + 1] = yt[1]; }
    sc.w = 0;
    sc.steps = 20;
    cm_diffusion_sample(m, xs, ytn, 20, &sc, &err);
    double e = 0;
    for (int i = 0; i < 20; i++)
        e += (fabs(xs[3 * i] - yt[0]) + fabs(xs[3 * i + 1] + yt[0]) + fabs(xs[3 * i + 2] - yt[1])) / 60;
    check_close("conditional samples land near (y0, -y0, y1): mean abs error < 0.15", e < 0.15, 1, 0);
    if (e >= 0.15) printf("  mean abs error %g\n", e);
    free(x0); free(y); free(ys); free(xa); free(xb);
    cm_diffusion_free(m);
}

static void dump(void) {
    cm_diffusion_config cfg = small_config(CM_ACT_RELU, 0.1f);
    cfg.channels = 16; cfg.ff = 24;
    cm_diffusion *m = make(&cfg, 11);
    cm_train_config tc = {1e-3, 0.9, 0.999, 1e-8, 1e-4, 0.2, 0.5};
    const int64_t B = 48;
    real *x0 = malloc(sizeof(real) * B * 3), *y = malloc(sizeof(real) * B * 2);
    make_data(x0, y, B);
    cm_error err;
    double l;
    for (int s = 0; s < 5; s++) {
        cm_diffusion_train_step(m, &l, x0, y, B, &tc, 4, (uint64_t)s, &err);
        printf("loss %a\n", l);
    }
    const int64_t n = 37;
    real *xs = malloc(sizeof(real) * n * 3);
    for (int k = 0; k < 2; k++) {
        cm_sample_config sc = {k ? CM_SAMPLER_DDPM : CM_SAMPLER_DDIM, 8, CM_SPACING_TRAILING, 0.5, CM_GUIDE_SCALE, 1.5,
                               1, 123, 0};
        cm_diffusion_sample(m, xs, y, n, &sc, &err);
        for (int64_t i = 0; i < n * 3; i++) printf("%a%c", xs[i], i + 1 == n * 3 ? '\n' : ' ');
    }
    free(x0); free(y); free(xs);
    cm_diffusion_free(m);
}

int main(int argc, char **argv) {
    rng_state = 88172645463325252ull;   /* the inputs this test was written with */
    if (argc > 1 && !strcmp(argv[1], "dump")) { dump(); return 0; }
    if (argc > 1 && !strcmp(argv[1], "quick")) picks_max = 4;
    test_table();
    test_errors();
    test_gradients(CM_ACT_GELU, 0.2f, 32);   /* one chunk: dropout masks as in cm_diffusion_forward */
    test_gradients(CM_ACT_RELU, 0, 3);       /* two chunks (3 + 1 rows) summed */
    test_training();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
