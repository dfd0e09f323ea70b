/* test_transformer_grad.c: gradient checks of csrc/nn/transformer.c, compiled with -DCM_REAL=double.
 *
 * For each op and block: loss = sum(out * r) with random r; backward(dout = r) must match central
 * differences (h = 1e-6) of the loss on EVERY input and parameter entry. Also: softmax rows sum to
 * one, ReLU's kink, the timestep embedding against its formula, accumulation (+=), the size tables.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 *
 * `test_transformer_grad dump` instead prints JSON (inputs, parameters by PyTorch name, outputs and
 * gradients of encoder and decoder blocks, and timestep embeddings) for tests/test_transformer_ops.py
 * to compare with PyTorch's nn.TransformerEncoderLayer/DecoderLayer and diffusers. */
#include "../nn/transformer.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "grad_check.h"



/* every entry of x[n] against grad[n] */
static void check_all(const char *what, loss_fn f, void *ctx, real *x, const real *grad, int64_t n, double tol) {
    char name[224];
    for (int64_t i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s[%lld]", what, (long long)i);
        check_close(name, grad[i], numeric_grad(f, ctx, x, i), tol);
    }
}

/* ---- layer norm ---- */
typedef struct { real *x, *w, *b, *out, *mean, *rstd, *r; int64_t N; int C; } ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C);
    return dot(c->out, c->r, c->N * c->C);
}
static void test_layernorm(void) {
    ln_ctx c = {0};
    c.N = 5; c.C = 6;
    c.x = vec(c.N * c.C); c.w = vec(c.C); c.b = vec(c.C); c.out = zeros(c.N * c.C); c.mean = zeros(c.N);
    c.rstd = zeros(c.N); c.r = vec(c.N * c.C);
    for (int64_t i = 0; i < c.N * c.C; i++) c.x[i] = 3 * c.x[i] + 0.5;   /* not already normalised */
    real *dx = zeros(c.N * c.C), *dw = zeros(c.C), *db = zeros(c.C);
    ln_loss(&c);
    layernorm_backward(dx, dw, db, c.r, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    check_all("layernorm dx", ln_loss, &c, c.x, dx, c.N * c.C, 1e-7);
    check_all("layernorm dweight", ln_loss, &c, c.w, dw, c.C, 1e-7);
    check_all("layernorm dbias", ln_loss, &c, c.b, db, c.C, 1e-7);
    /* the definition, row 2 channel 3 */
    double m = 0, v = 0;
    for (int k = 0; k < c.C; k++) m += c.x[2 * c.C + k] / c.C;
    for (int k = 0; k < c.C; k++) v += (c.x[2 * c.C + k] - m) * (c.x[2 * c.C + k] - m) / c.C;
    check_close("layernorm definition", c.out[2 * c.C + 3], (c.x[2 * c.C + 3] - m) / sqrt(v + 1e-5) * c.w[3] + c.b[3], 1e-12);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.mean); free(c.rstd); free(c.r); free(dx); free(dw); free(db);
}

/* ---- ReLU ---- */
typedef struct { real *x, *out, *r; int64_t n; } un_ctx;
static double relu_loss(void *p) { un_ctx *c = p; relu_forward(c->out, c->x, c->n); return dot(c->out, c->r, c->n); }
static void test_relu(void) {
    un_ctx c = {vec(40), zeros(40), vec(40), 40};
    /* keep entries away from the kink, where central differences straddle it */
    for (int i = 0; i < 40; i++) c.x[i] += c.x[i] > 0 ? 0.05 : -0.05;
    real *dx = zeros(40);
    relu_backward(dx, c.r, c.x, c.n);
    check_all("relu dx", relu_loss, &c, c.x, dx, c.n, 1e-9);
    real z = 0, o = 1, g = 1, dz = 0;
    relu_forward(&o, &z, 1);
    relu_backward(&dz, &g, &z, 1);
    check_close("relu(0) = 0", o, 0, 0);
    check_close("relu'(0) = 0 (PyTorch's choice at the kink)", dz, 0, 0);
    free(c.x); free(c.out); free(c.r); free(dx);
}

/* ---- residual ---- */
typedef struct { real *a, *b, *out, *r; int64_t n; } res_ctx;
static double res_loss(void *p) { res_ctx *c = p; residual_forward(c->out, c->a, c->b, c->n); return dot(c->out, c->r, c->n); }
static void test_residual(void) {
    res_ctx c = {vec(17), vec(17), zeros(17), vec(17), 17};
    real *da = zeros(17), *db = zeros(17);
    residual_backward(da, db, c.r, c.n);
    check_all("residual dinp1", res_loss, &c, c.a, da, c.n, 1e-9);
    check_all("residual dinp2", res_loss, &c, c.b, db, c.n, 1e-9);
    free(c.a); free(c.b); free(c.out); free(c.r); free(da); free(db);
}

/* ---- scaled dot-product attention, self (fused, strided) and cross ---- */
typedef struct { real *q, *kv, *out, *att, *r; int B, T, S, C, NH, self; } at_ctx;
static void at_run(at_ctx *c) {
    if (c->self) attention_forward(c->out, c->att, c->q, c->q + c->C, c->q + 2 * c->C, c->B, c->T, c->T, c->C, c->NH, 3 * c->C, 3 * c->C);
    else attention_forward(c->out, c->att, c->q, c->kv, c->kv + c->C, c->B, c->T, c->S, c->C, c->NH, c->C, 2 * c->C);
}
static double at_loss(void *p) { at_ctx *c = p; at_run(c); return dot(c->out, c->r, (int64_t)c->B * c->T * c->C); }
static void test_attention(int self) {
    at_ctx c = {0};
    c.B = 2; c.T = 3; c.S = self ? 3 : 4; c.C = 8; c.NH = 2; c.self = self;
    int64_t nq = (int64_t)c.B * c.T * (self ? 3 : 1) * c.C, nkv = self ? 0 : (int64_t)c.B * c.S * 2 * c.C;
    int64_t no = (int64_t)c.B * c.T * c.C, na = (int64_t)c.B * c.NH * c.T * c.S;
    c.q = vec(nq); c.kv = vec(nkv); c.out = zeros(no); c.att = zeros(na); c.r = vec(no);
    for (int64_t i = 0; i < nq; i++) c.q[i] *= 2;   /* peakier softmax */
    real *dq = zeros(nq), *dkv = zeros(nkv), *datt = zeros(na);
    at_loss(&c);
    /* rows of att are distributions */
    for (int64_t row = 0; row < na / c.S; row++) {
        double s = 0;
        for (int k = 0; k < c.S; k++) s += c.att[row * c.S + k];
        check_close(self ? "self softmax row sums to 1" : "cross softmax row sums to 1", s, 1, 1e-12);
    }
    if (self)
        attention_backward(dq, dq + c.C, dq + 2 * c.C, datt, c.r, c.q, c.q + c.C, c.q + 2 * c.C, c.att, c.B, c.T, c.T, c.C, c.NH, 3 * c.C, 3 * c.C);
    else
        attention_backward(dq, dkv, dkv + c.C, datt, c.r, c.q, c.kv, c.kv + c.C, c.att, c.B, c.T, c.S, c.C, c.NH, c.C, 2 * c.C);
    check_all(self ? "attention(self) dqkv" : "attention(cross) dq", at_loss, &c, c.q, dq, nq, 1e-7);
    if (!self) check_all("attention(cross) dkv", at_loss, &c, c.kv, dkv, nkv, 1e-7);
    free(c.q); free(c.kv); free(c.out); free(c.att); free(c.r); free(dq); free(dkv); free(datt);
}

/* With one key, attention returns that key's value whatever the query. */
static void test_attention_one_key(void) {
    real q[4] = {0.3, -2, 1, 5}, kv[8] = {1, 2, 3, 4, 0.5, -0.25, 7, 9}, out[4], att[2];
    attention_forward(out, att, q, kv, kv + 4, 1, 1, 1, 4, 2, 4, 8);
    for (int j = 0; j < 4; j++) check_close("attention with one key returns its value", out[j], kv[4 + j], 1e-15);
}

/* ---- multi-head self and cross attention with projections ---- */
typedef struct {
    real *x, *mem, *wqkv, *bqkv, *wo, *bo, *out, *q, *kv, *att, *y, *r;
    int B, T, S, C, NH, cross;
} mha_ctx;
static double mha_loss(void *p) {
    mha_ctx *c = p;
    if (c->cross) mha_cross_forward(c->out, c->q, c->kv, c->att, c->y, c->x, c->mem, c->wqkv, c->bqkv, c->wo, c->bo, c->B, c->T, c->S, c->C, c->NH);
    else mha_self_forward(c->out, c->q, c->att, c->y, c->x, c->wqkv, c->bqkv, c->wo, c->bo, c->B, c->T, c->C, c->NH);
    return dot(c->out, c->r, (int64_t)c->B * c->T * c->C);
}
static void test_mha(int cross) {
    mha_ctx c = {0};
    c.B = 2; c.T = 3; c.S = cross ? 4 : 3; c.C = 8; c.NH = 2; c.cross = cross;
    const int64_t BT = (int64_t)c.B * c.T, BS = (int64_t)c.B * c.S, C = c.C;
    c.x = vec(BT * C); c.mem = vec(BS * C); c.wqkv = vec(3 * C * C); c.bqkv = vec(3 * C); c.wo = vec(C * C); c.bo = vec(C);
    c.out = zeros(BT * C); c.q = zeros(BT * 3 * C); c.kv = zeros(BS * 2 * C); c.att = zeros((int64_t)c.B * c.NH * c.T * c.S);
    c.y = zeros(BT * C); c.r = vec(BT * C);
    real *dx = zeros(BT * C), *dmem = zeros(BS * C), *dwqkv = zeros(3 * C * C), *dbqkv = zeros(3 * C), *dwo = zeros(C * C), *dbo = zeros(C);
    real *s1 = zeros(BT * 3 * C), *s2 = zeros(BS * 2 * C), *s3 = zeros(BT * C), *s4 = zeros((int64_t)c.B * c.NH * c.T * c.S);
    mha_loss(&c);
    if (cross)
        mha_cross_backward(dx, dmem, dwqkv, dbqkv, dwo, dbo, s1, s2, s3, s4, c.r, c.x, c.mem, c.wqkv, c.wo, c.q, c.kv, c.att, c.y, c.B, c.T, c.S, c.C, c.NH);
    else
        mha_self_backward(dx, dwqkv, dbqkv, dwo, dbo, s1, s3, s4, c.r, c.x, c.wqkv, c.wo, c.q, c.att, c.y, c.B, c.T, c.C, c.NH);
    const char *k = cross ? "cross-attention" : "self-attention";
    char n[64];
    snprintf(n, sizeof n, "%s dinp", k); check_all(n, mha_loss, &c, c.x, dx, BT * C, 1e-7);
    if (cross) { snprintf(n, sizeof n, "%s dmem", k); check_all(n, mha_loss, &c, c.mem, dmem, BS * C, 1e-7); }
    snprintf(n, sizeof n, "%s dwqkv", k); check_all(n, mha_loss, &c, c.wqkv, dwqkv, 3 * C * C, 1e-7);
    snprintf(n, sizeof n, "%s dbqkv", k); check_all(n, mha_loss, &c, c.bqkv, dbqkv, 3 * C, 1e-7);
    snprintf(n, sizeof n, "%s dwo", k); check_all(n, mha_loss, &c, c.wo, dwo, C * C, 1e-7);
    snprintf(n, sizeof n, "%s dbo", k); check_all(n, mha_loss, &c, c.bo, dbo, C, 1e-7);
    /* a second backward doubles the accumulated gradients */
    double before = dwqkv[5];
    if (cross)
        mha_cross_backward(dx, dmem, dwqkv, dbqkv, dwo, dbo, s1, s2, s3, s4, c.r, c.x, c.mem, c.wqkv, c.wo, c.q, c.kv, c.att, c.y, c.B, c.T, c.S, c.C, c.NH);
    else
        mha_self_backward(dx, dwqkv, dbqkv, dwo, dbo, s1, s3, s4, c.r, c.x, c.wqkv, c.wo, c.q, c.att, c.y, c.B, c.T, c.C, c.NH);
    snprintf(n, sizeof n, "%s accumulates", k); check_close(n, dwqkv[5], 2 * before, 1e-12);
    free(c.x); free(c.mem); free(c.wqkv); free(c.bqkv); free(c.wo); free(c.bo); free(c.out); free(c.q); free(c.kv);
    free(c.att); free(c.y); free(c.r); free(dx); free(dmem); free(dwqkv); free(dbqkv); free(dwo); free(dbo);
    free(s1); free(s2); free(s3); free(s4);
}

/* ---- whole blocks ---- */
typedef struct {
    int decoder, B, T, S, C, NH, F;
    cm_activation act;
    real dropout;
    int64_t psizes[TBP_N], asizes[TBA_N], P, A, mask_bytes;
    real *params, *grads, *acts_mem, *dacts_mem, *x, *mem, *out, *r, *dx, *dmem;
    uint8_t *mask, *dmask;
    tblock_params p, g;
    tblock_acts a, d;
} blk_ctx;

static void blk_init(blk_ctx *c, int decoder, cm_activation act, real dropout) {
    memset(c, 0, sizeof *c);
    c->decoder = decoder; c->B = 2; c->T = 3; c->S = 4; c->C = 8; c->NH = 2; c->F = 12; c->act = act; c->dropout = dropout;
    if (!decoder) c->S = c->T;
    c->P = tblock_param_sizes(c->psizes, c->C, c->F, decoder);
    c->A = tblock_act_sizes(c->asizes, &c->mask_bytes, c->B, c->T, c->S, c->C, c->NH, c->F, decoder);
    c->params = vec(c->P); c->grads = zeros(c->P);
    c->acts_mem = zeros(c->A); c->dacts_mem = zeros(c->A);
    c->mask = calloc((size_t)c->mask_bytes, 1); c->dmask = calloc((size_t)c->mask_bytes, 1);
    tblock_params_carve(&c->p, c->params, c->psizes);
    tblock_params_carve(&c->g, c->grads, c->psizes);
    tblock_acts_carve(&c->a, c->acts_mem, c->mask, c->asizes);
    tblock_acts_carve(&c->d, c->dacts_mem, c->dmask, c->asizes);
    /* layer-norm weights near 1 so the blocks look like trained ones, but not exactly 1 */
    for (int k = 0; k < c->C; k++) {
        c->p.t[TBP_LN1_W][k] = (real)(1 + 0.3 * c->p.t[TBP_LN1_W][k]);
        c->p.t[TBP_LN2_W][k] = (real)(1 + 0.3 * c->p.t[TBP_LN2_W][k]);
        if (decoder) c->p.t[TBP_LNX_W][k] = (real)(1 + 0.3 * c->p.t[TBP_LNX_W][k]);
    }
    const int64_t BT = (int64_t)c->B * c->T, BS = (int64_t)c->B * c->S;
    c->x = vec(BT * c->C); c->mem = vec(BS * c->C); c->out = zeros(BT * c->C); c->r = vec(BT * c->C);
    c->dx = zeros(BT * c->C); c->dmem = zeros(BS * c->C);
}
static void blk_free(blk_ctx *c) {
    free(c->params); free(c->grads); free(c->acts_mem); free(c->dacts_mem); free(c->mask); free(c->dmask);
    free(c->x); free(c->mem); free(c->out); free(c->r); free(c->dx); free(c->dmem);
}
static void blk_forward(blk_ctx *c) {
    if (c->decoder) decoder_block_forward(c->out, &c->a, c->x, c->mem, &c->p, c->B, c->T, c->S, c->C, c->NH, c->F, c->act, c->dropout, 1234);
    else encoder_block_forward(c->out, &c->a, c->x, &c->p, c->B, c->T, c->C, c->NH, c->F, c->act, c->dropout, 1234);
}
static void blk_backward(blk_ctx *c) {
    if (c->decoder) decoder_block_backward(c->dx, c->dmem, &c->g, &c->d, c->r, c->x, c->mem, &c->p, &c->a, c->B, c->T, c->S, c->C, c->NH, c->F, c->act, c->dropout);
    else encoder_block_backward(c->dx, &c->g, &c->d, c->r, c->x, &c->p, &c->a, c->B, c->T, c->C, c->NH, c->F, c->act, c->dropout);
}
static double blk_loss(void *p) { blk_ctx *c = p; blk_forward(c); return dot(c->out, c->r, (int64_t)c->B * c->T * c->C); }

static void test_block(int decoder, cm_activation act, real dropout) {
    blk_ctx c;
    blk_init(&c, decoder, act, dropout);
    blk_loss(&c);
    blk_backward(&c);
    char what[160];
    const char *kind = decoder ? "decoder" : "encoder", *an = act == CM_ACT_RELU ? "relu" : "gelu";
    const int64_t BT = (int64_t)c.B * c.T, BS = (int64_t)c.B * c.S;
    if (dropout > 0) {
        int64_t dropped = 0;
        for (int64_t i = 0; i < c.mask_bytes; i++) dropped += !c.mask[i];
        check_close("block dropout drops some units", dropped > 0 && dropped < c.mask_bytes, 1, 0);
    }
    /* ReLU: pre-activations within h of 0 would make central differences straddle the kink */
    if (act == CM_ACT_RELU) {
        double closest = 1;
        for (int64_t i = 0; i < BT * c.F; i++) closest = fmin(closest, fabs(c.a.t[TBA_FCH][i]));
        check_close("relu block: no pre-activation at the kink", closest > 1e-4, 1, 0);
    }
    snprintf(what, sizeof what, "%s(%s, p=%.1f) dinp", kind, an, dropout);
    check_all(what, blk_loss, &c, c.x, c.dx, BT * c.C, 1e-6);
    if (decoder) {
        snprintf(what, sizeof what, "%s(%s, p=%.1f) dmem", kind, an, dropout);
        check_all(what, blk_loss, &c, c.mem, c.dmem, BS * c.C, 1e-6);
    }
    for (int i = 0; i < TBP_N; i++) {
        if (!c.psizes[i]) continue;
        snprintf(what, sizeof what, "%s(%s, p=%.1f) d%s", kind, an, dropout, tblock_param_name(i, decoder));
        check_all(what, blk_loss, &c, c.p.t[i], c.g.t[i], c.psizes[i], 1e-6);
    }
    /* backward accumulates and does not depend on the scratch's old contents */
    real *g1 = malloc(sizeof(real) * (size_t)c.P);
    memcpy(g1, c.grads, sizeof(real) * (size_t)c.P);
    for (int64_t i = 0; i < c.A; i++) c.dacts_mem[i] = 1e3;
    blk_loss(&c);
    blk_backward(&c);
    double worst = 0;
    for (int64_t i = 0; i < c.P; i++) worst = fmax(worst, fabs(c.grads[i] - 2 * g1[i]));
    snprintf(what, sizeof what, "%s(%s) second backward doubles the gradients", kind, an);
    check_close(what, worst, 0, 1e-12);
    free(g1);
    blk_free(&c);
}

/* ---- tables and initialisation ---- */
static void test_tables(void) {
    int64_t s[TBP_N], a[TBA_N], mb;
    const int C = 8, F = 12;
    int64_t enc = tblock_param_sizes(s, C, F, 0);
    check_close("encoder parameter count", (double)enc, 2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + F * C + F + C * F + C, 0);
    int64_t dec = tblock_param_sizes(s, C, F, 1);
    check_close("decoder adds a norm and a cross-attention", (double)(dec - enc), 2 * C + 4 * C * C + 4 * C, 0);
    for (int i = 0; i < TBP_N; i++) {
        int named = tblock_param_name(i, 1) != NULL;
        check_close("every decoder tensor has a PyTorch name", named, 1, 0);
        check_close("encoder names exactly its tensors", (tblock_param_name(i, 0) != NULL), s[i] && !(i >= TBP_LNX_W && i <= TBP_XATTN_BO), 0);
    }
    check_close("act table size", (double)tblock_act_sizes(a, &mb, 2, 3, 4, C, 2, F, 0), (double)(2 * 3) * (C * 6 + 3 * C + 4 + 3 * F) + 2 * 2 * 3 * 3, 0);
    check_close("mask bytes", (double)mb, 2 * 3 * F, 0);
    /* PyTorch's initialisation rules */
    tblock_param_sizes(s, C, F, 1);
    int64_t P = tblock_param_sizes(s, C, F, 1);
    real *block = zeros(P);
    tblock_params p;
    tblock_params_carve(&p, block, s);
    tblock_params_init(&p, s, C, F, 7);
    check_close("init: layer-norm weight 1", p.t[TBP_LNX_W][3], 1, 0);
    check_close("init: attention bias 0", p.t[TBP_XATTN_BQKV][5], 0, 0);
    double mx = 0, mx2 = 0;
    for (int64_t i = 0; i < s[TBP_ATTN_WQKV]; i++) mx = fmax(mx, fabs(p.t[TBP_ATTN_WQKV][i]));
    for (int64_t i = 0; i < s[TBP_PROJ_W]; i++) mx2 = fmax(mx2, fabs(p.t[TBP_PROJ_W][i]));
    check_close("init: xavier bound on in_proj", mx <= sqrt(6.0 / (4 * C)) && mx > 0.8 * sqrt(6.0 / (4 * C)), 1, 0);
    check_close("init: 1/sqrt(F) bound on linear2", mx2 <= 1 / sqrt((double)F) && mx2 > 0.7 / sqrt((double)F), 1, 0);
    free(block);
}

/* ---- timestep embedding against its formula ---- */
static void test_timestep_embedding(void) {
    real t[3] = {0, 3, 999.5}, out[3 * 7];
    timestep_embedding_forward(out, t, 3, 7, 10000, 0, 1);
    /* D = 7: half = 3, f_i = 10000^(-i / 2) = 1, 0.01, 1e-4 */
    const double f[3] = {1, 0.01, 1e-4};
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < 3; i++) {
            check_close("timestep embedding sin half", out[b * 7 + i], sin(t[b] * f[i]), 1e-12);
            check_close("timestep embedding cos half", out[b * 7 + 3 + i], cos(t[b] * f[i]), 1e-12);
        }
        check_close("timestep embedding odd D padded with 0", out[b * 7 + 6], 0, 0);
    }
    real o2[8];
    timestep_embedding_forward(o2, t + 1, 1, 8, 10000, 1, 0);   /* half 4, f_i = 10000^(-i/4) */
    check_close("timestep embedding flip: cos first", o2[1], cos(3 * 0.1), 1e-12);
    check_close("timestep embedding flip: sin second", o2[4 + 2], sin(3 * 0.01), 1e-12);
}

/* ---- JSON dump for the PyTorch / diffusers comparison ---- */
static void put_array(const char *key, const real *a, int64_t n, int comma) {
    printf("\"%s\": [", key);
    for (int64_t i = 0; i < n; i++) printf("%s%.17g", i ? ", " : "", (double)a[i]);
    printf("]%s\n", comma ? "," : "");
}
static void dump_block(int decoder, cm_activation act, int last) {
    blk_ctx c;
    blk_init(&c, decoder, act, 0);
    blk_loss(&c);
    blk_backward(&c);
    const int64_t BT = (int64_t)c.B * c.T, BS = (int64_t)c.B * c.S;
    printf("{\"kind\": \"%s\", \"act\": \"%s\", \"B\": %d, \"T\": %d, \"S\": %d, \"C\": %d, \"NH\": %d, \"F\": %d,\n",
           decoder ? "decoder" : "encoder", act == CM_ACT_RELU ? "relu" : "gelu", c.B, c.T, c.S, c.C, c.NH, c.F);
    put_array("inp", c.x, BT * c.C, 1);
    put_array("mem", c.mem, BS * c.C, 1);
    put_array("r", c.r, BT * c.C, 1);
    put_array("out", c.out, BT * c.C, 1);
    put_array("dinp", c.dx, BT * c.C, 1);
    put_array("dmem", c.dmem, BS * c.C, 1);
    printf("\"params\": {\n");
    int first = 1;
    for (int i = 0; i < TBP_N; i++) {
        if (!c.psizes[i]) continue;
        printf("%s", first ? "" : ",\n");
        first = 0;
        put_array(tblock_param_name(i, decoder), c.p.t[i], c.psizes[i], 0);
    }
    printf("},\n\"grads\": {\n");
    first = 1;
    for (int i = 0; i < TBP_N; i++) {
        if (!c.psizes[i]) continue;
        printf("%s", first ? "" : ",\n");
        first = 0;
        put_array(tblock_param_name(i, decoder), c.g.t[i], c.psizes[i], 0);
    }
    printf("}}%s\n", last ? "" : ",");
    blk_free(&c);
}
static void dump(void) {
    printf("{\"blocks\": [\n");
    dump_block(0, CM_ACT_GELU, 0);
    dump_block(0, CM_ACT_RELU, 0);
    dump_block(1, CM_ACT_GELU, 0);
    dump_block(1, CM_ACT_RELU, 1);
    printf("],\n\"timestep_embedding\": [\n");
    real t[5] = {0, 1, 17, 500.5, 999};
    const int dims[4] = {8, 7, 16, 16};
    const int flips[4] = {0, 1, 1, 0};
    const double shifts[4] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        real out[5 * 16];
        timestep_embedding_forward(out, t, 5, dims[k], 10000, flips[k], shifts[k]);
        printf("{\"D\": %d, \"flip_sin_to_cos\": %d, \"freq_shift\": %g, \"max_period\": 10000,\n", dims[k], flips[k], shifts[k]);
        put_array("t", t, 5, 1);
        put_array("out", out, 5 * dims[k], 0);
        printf("}%s\n", k < 3 ? "," : "");
    }
    printf("]}\n");
}

int main(int argc, char **argv) {
    rng_state = 88172645463325252ull;   /* the inputs this test was written with */
    if (argc > 1 && !strcmp(argv[1], "dump")) { dump(); return 0; }
    test_layernorm();
    test_relu();
    test_residual();
    test_attention(1);
    test_attention(0);
    test_attention_one_key();
    test_mha(0);
    test_mha(1);
    test_tables();
    test_timestep_embedding();
    test_block(0, CM_ACT_GELU, 0);
    test_block(0, CM_ACT_GELU, 0.3f);
    test_block(0, CM_ACT_RELU, 0);
    test_block(1, CM_ACT_GELU, 0.2f);
    test_block(1, CM_ACT_RELU, 0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
