/* transformer.c: layer norm, ReLU, residual, multi-head self/cross attention, sinusoidal
 * timestep embedding, and pre-LN encoder/decoder blocks built from them (see transformer.h for
 * sizes and conventions). Linear, GELU and dropout come from ops.c.
 * Limits: no causal or padding mask; attention keeps the whole [B,NH,T,S] probability tensor,
 * which suits the few-token sequences of sizing vectors, not long sequences. */
#include "transformer.h"
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- layer norm */

void layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *weight, const real *bias,
                       int64_t N, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const real *x = inp + n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        double r = 1.0 / sqrt(v / C + CM_LN_EPS);   /* biased variance, as PyTorch */
        real *o = out + n * C;
        for (int c = 0; c < C; c++) o[c] = (real)((x[c] - m) * r * weight[c] + bias[c]);
        mean[n] = (real)m;
        rstd[n] = (real)r;
    }
}

void layernorm_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                        const real *mean, const real *rstd, int64_t N, int C) {
    /* with xhat = (x - mean) * rstd and g = dout * weight:
     * dx = rstd * (g - mean(g) - xhat * mean(g * xhat))          one writer per row */
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const real *x = inp + n * C, *d = dout + n * C;
        double m = mean[n], r = rstd[n], sg = 0, sgx = 0;
        for (int c = 0; c < C; c++) {
            double g = (double)d[c] * weight[c];
            sg += g;
            sgx += g * (x[c] - m) * r;
        }
        sg /= C;
        sgx /= C;
        real *dx = dinp + n * C;
        for (int c = 0; c < C; c++) {
            double xh = (x[c] - m) * r;
            dx[c] += (real)(r * ((double)d[c] * weight[c] - sg - xh * sgx));
        }
    }
    /* dweight[c] += sum_n dout * xhat, dbias[c] += sum_n dout    one writer per channel */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int64_t n = 0; n < N; n++) {
            double d = dout[n * C + c];
            sw += d * (inp[n * C + c] - mean[n]) * rstd[n];
            sb += d;
        }
        dweight[c] += (real)sw;
        dbias[c] += (real)sb;
    }
}

/* ---------------------------------------------------------------- ReLU, residual */

void relu_forward(real *out, const real *inp, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0 ? inp[i] : (real)0;
}

void relu_backward(real *dinp, const real *dout, const real *inp, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (inp[i] > 0) dinp[i] += dout[i];
}

void residual_forward(real *out, const real *inp1, const real *inp2, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = inp1[i] + inp2[i];
}

void residual_backward(real *dinp1, real *dinp2, const real *dout, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        dinp1[i] += dout[i];
        dinp2[i] += dout[i];
    }
}

/* ---------------------------------------------------------------- attention */

void attention_forward(real *out, real *att, const real *q, const real *k, const real *v, int B, int T, int S, int C,
                       int NH, int ldq, int ldkv) {
    const int hs = C / NH;
    const double scale = 1.0 / sqrt((double)hs);
    const int64_t rows = (int64_t)B * NH * T;
    /* one iteration per (b, h, t): writes att[b,h,t,:] and out[b,t,h*hs:(h+1)*hs] only */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const int t = (int)(i % T), h = (int)((i / T) % NH);
        const int64_t b = i / ((int64_t)T * NH);
        const real *qr = q + (b * T + t) * ldq + h * hs;
        real *a = att + i * S;   /* i == (b*NH + h)*T + t */
        double mx = -INFINITY;
        for (int s = 0; s < S; s++) {
            const real *kr = k + (b * S + s) * ldkv + h * hs;
            double d = 0;
            for (int j = 0; j < hs; j++) d += (double)qr[j] * kr[j];
            d *= scale;
            a[s] = (real)d;
            if (d > mx) mx = d;
        }
        double sum = 0;
        for (int s = 0; s < S; s++) {
            double e = exp(a[s] - mx);
            a[s] = (real)e;
            sum += e;
        }
        const double inv = 1.0 / sum;
        for (int s = 0; s < S; s++) a[s] = (real)(a[s] * inv);
        real *o = out + (b * T + t) * C + h * hs;
        for (int j = 0; j < hs; j++) o[j] = 0;
        for (int s = 0; s < S; s++) {
            const real *vr = v + (b * S + s) * ldkv + h * hs;
            const real w = a[s];
            for (int j = 0; j < hs; j++) o[j] += w * vr[j];
        }
    }
}

void attention_backward(real *dq, real *dk, real *dv, real *datt, const real *dout, const real *q, const real *k,
                        const real *v, const real *att, int B, int T, int S, int C, int NH, int ldq, int ldkv) {
    const int hs = C / NH;
    const double scale = 1.0 / sqrt((double)hs);
    const int64_t rows = (int64_t)B * NH * T;
    /* Nest 1, per query (b, h, t): the softmax backward, then dq.
     *   da[s] = dout[t] . v[s];  dscore[s] = att[s] * (da[s] - sum_s' att[s'] da[s'])
     *   q.k was scaled: datt keeps dscore * scale, the gradient of the raw dot product */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const int t = (int)(i % T), h = (int)((i / T) % NH);
        const int64_t b = i / ((int64_t)T * NH);
        const real *g = dout + (b * T + t) * C + h * hs;
        const real *a = att + i * S;
        real *da = datt + i * S;
        double dot_sum = 0;
        for (int s = 0; s < S; s++) {
            const real *vr = v + (b * S + s) * ldkv + h * hs;
            double d = 0;
            for (int j = 0; j < hs; j++) d += (double)g[j] * vr[j];
            da[s] = (real)d;
            dot_sum += a[s] * d;
        }
        for (int s = 0; s < S; s++) da[s] = (real)(a[s] * (da[s] - dot_sum) * scale);
        real *dqr = dq + (b * T + t) * ldq + h * hs;
        for (int s = 0; s < S; s++) {
            const real *kr = k + (b * S + s) * ldkv + h * hs;
            const real w = da[s];
            for (int j = 0; j < hs; j++) dqr[j] += w * kr[j];
        }
    }
    /* Nest 2, per key (b, h, s): dk[s] += sum_t datt[t,s] q[t];  dv[s] += sum_t att[t,s] dout[t] */
    const int64_t krows = (int64_t)B * NH * S;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < krows; i++) {
        const int s = (int)(i % S), h = (int)((i / S) % NH);
        const int64_t b = i / ((int64_t)S * NH);
        real *dkr = dk + (b * S + s) * ldkv + h * hs;
        real *dvr = dv + (b * S + s) * ldkv + h * hs;
        for (int t = 0; t < T; t++) {
            const int64_t idx = ((b * NH + h) * T + t) * S + s;
            const real *qr = q + (b * T + t) * ldq + h * hs;
            const real *g = dout + (b * T + t) * C + h * hs;
            const real ws = datt[idx], wa = att[idx];
            for (int j = 0; j < hs; j++) {
                dkr[j] += ws * qr[j];
                dvr[j] += wa * g[j];
            }
        }
    }
}

void mha_self_forward(real *out, real *qkv, real *att, real *y, const real *inp, const real *wqkv, const real *bqkv,
                      const real *wo, const real *bo, int B, int T, int C, int NH) {
    const int64_t BT = (int64_t)B * T;
    linear_forward(qkv, inp, wqkv, bqkv, BT, C, 3 * C);
    attention_forward(y, att, qkv, qkv + C, qkv + 2 * C, B, T, T, C, NH, 3 * C, 3 * C);
    linear_forward(out, y, wo, bo, BT, C, C);
}

void mha_self_backward(real *dinp, real *dwqkv, real *dbqkv, real *dwo, real *dbo, real *dqkv, real *dy, real *datt,
                       const real *dout, const real *inp, const real *wqkv, const real *wo, const real *qkv,
                       const real *att, const real *y, int B, int T, int C, int NH) {
    const int64_t BT = (int64_t)B * T;
    memset(dqkv, 0, sizeof(real) * (size_t)(BT * 3 * C));
    memset(dy, 0, sizeof(real) * (size_t)(BT * C));
    linear_backward(dy, dwo, dbo, dout, y, wo, BT, C, C);
    attention_backward(dqkv, dqkv + C, dqkv + 2 * C, datt, dy, qkv, qkv + C, qkv + 2 * C, att, B, T, T, C, NH, 3 * C,
                       3 * C);
    linear_backward(dinp, dwqkv, dbqkv, dqkv, inp, wqkv, BT, C, 3 * C);
}

void mha_cross_forward(real *out, real *q, real *kv, real *att, real *y, const real *inp, const real *mem,
                       const real *wqkv, const real *bqkv, const real *wo, const real *bo, int B, int T, int S, int C,
                       int NH) {
    const int64_t BT = (int64_t)B * T, BS = (int64_t)B * S, CC = (int64_t)C * C;
    linear_forward(q, inp, wqkv, bqkv, BT, C, C);
    linear_forward(kv, mem, wqkv + CC, bqkv ? bqkv + C : NULL, BS, C, 2 * C);
    attention_forward(y, att, q, kv, kv + C, B, T, S, C, NH, C, 2 * C);
    linear_forward(out, y, wo, bo, BT, C, C);
}

void mha_cross_backward(real *dinp, real *dmem, real *dwqkv, real *dbqkv, real *dwo, real *dbo, real *dq, real *dkv,
                        real *dy, real *datt, const real *dout, const real *inp, const real *mem, const real *wqkv,
                        const real *wo, const real *q, const real *kv, const real *att, const real *y, int B, int T,
                        int S, int C, int NH) {
    const int64_t BT = (int64_t)B * T, BS = (int64_t)B * S, CC = (int64_t)C * C;
    memset(dq, 0, sizeof(real) * (size_t)(BT * C));
    memset(dkv, 0, sizeof(real) * (size_t)(BS * 2 * C));
    memset(dy, 0, sizeof(real) * (size_t)(BT * C));
    linear_backward(dy, dwo, dbo, dout, y, wo, BT, C, C);
    attention_backward(dq, dkv, dkv + C, datt, dy, q, kv, kv + C, att, B, T, S, C, NH, C, 2 * C);
    linear_backward(dinp, dwqkv, dbqkv, dq, inp, wqkv, BT, C, C);
    linear_backward(dmem, dwqkv + CC, dbqkv ? dbqkv + C : NULL, dkv, mem, wqkv + CC, BS, C, 2 * C);
}

/* ---------------------------------------------------------------- timestep embedding */

void timestep_embedding_forward(real *out, const real *t, int64_t B, int D, double max_period, int flip_sin_to_cos,
                                double freq_shift) {
    const int half = D / 2;
    const double lmp = log(max_period);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        real *o = out + b * D;
        for (int i = 0; i < half; i++) {
            double arg = (double)t[b] * exp(-lmp * i / (half - freq_shift));
            double s = sin(arg), c = cos(arg);
            o[i] = (real)(flip_sin_to_cos ? c : s);
            o[half + i] = (real)(flip_sin_to_cos ? s : c);
        }
        if (D % 2) o[D - 1] = 0;
    }
}

/* ---------------------------------------------------------------- blocks: tables */

int64_t tblock_param_sizes(int64_t sizes[TBP_N], int C, int F, int decoder) {
    const int64_t c = C, f = F, x = decoder ? 1 : 0;
    sizes[TBP_LN1_W] = c;            sizes[TBP_LN1_B] = c;
    sizes[TBP_ATTN_WQKV] = 3 * c * c; sizes[TBP_ATTN_BQKV] = 3 * c;
    sizes[TBP_ATTN_WO] = c * c;      sizes[TBP_ATTN_BO] = c;
    sizes[TBP_LNX_W] = x * c;        sizes[TBP_LNX_B] = x * c;
    sizes[TBP_XATTN_WQKV] = x * 3 * c * c; sizes[TBP_XATTN_BQKV] = x * 3 * c;
    sizes[TBP_XATTN_WO] = x * c * c; sizes[TBP_XATTN_BO] = x * c;
    sizes[TBP_LN2_W] = c;            sizes[TBP_LN2_B] = c;
    sizes[TBP_FC_W] = f * c;         sizes[TBP_FC_B] = f;
    sizes[TBP_PROJ_W] = c * f;       sizes[TBP_PROJ_B] = c;
    int64_t total = 0;
    for (int i = 0; i < TBP_N; i++) total += sizes[i];
    return total;
}

const char *tblock_param_name(int i, int decoder) {
    static const char *enc[TBP_N] = {
        "norm1.weight", "norm1.bias", "self_attn.in_proj_weight", "self_attn.in_proj_bias",
        "self_attn.out_proj.weight", "self_attn.out_proj.bias", NULL, NULL, NULL, NULL, NULL, NULL,
        "norm2.weight", "norm2.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"};
    static const char *dec[TBP_N] = {
        "norm1.weight", "norm1.bias", "self_attn.in_proj_weight", "self_attn.in_proj_bias",
        "self_attn.out_proj.weight", "self_attn.out_proj.bias", "norm2.weight", "norm2.bias",
        "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias", "multihead_attn.out_proj.weight",
        "multihead_attn.out_proj.bias", "norm3.weight", "norm3.bias", "linear1.weight", "linear1.bias",
        "linear2.weight", "linear2.bias"};
    if (i < 0 || i >= TBP_N) return NULL;
    return decoder ? dec[i] : enc[i];
}

void tblock_params_carve(tblock_params *p, real *base, const int64_t sizes[TBP_N]) {
    for (int i = 0; i < TBP_N; i++) {
        p->t[i] = sizes[i] ? base : NULL;
        base += sizes[i];
    }
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void tblock_params_init(tblock_params *p, const int64_t sizes[TBP_N], int C, int F, uint64_t seed) {
    uint64_t ctr = 0;
    for (int i = 0; i < TBP_N; i++) {
        real *w = p->t[i];
        if (!w) continue;
        double bound = 0;   /* 0: constant fill */
        real fill = 0;
        switch (i) {
        case TBP_LN1_W: case TBP_LNX_W: case TBP_LN2_W: fill = 1; break;
        case TBP_ATTN_WQKV: case TBP_XATTN_WQKV: bound = sqrt(6.0 / (double)(C + 3 * C)); break;  /* xavier on [3C,C] */
        case TBP_ATTN_WO: case TBP_XATTN_WO: bound = 1.0 / sqrt((double)C); break;
        case TBP_FC_W: case TBP_FC_B: bound = 1.0 / sqrt((double)C); break;
        case TBP_PROJ_W: case TBP_PROJ_B: bound = 1.0 / sqrt((double)F); break;
        default: break;     /* LN biases, attention biases: 0 */
        }
        for (int64_t k = 0; k < sizes[i]; k++) {
            if (bound > 0) {
                double u = (double)(mix64(seed ^ mix64(ctr++)) >> 11) * (1.0 / 9007199254740992.0);
                w[k] = (real)((2 * u - 1) * bound);
            } else w[k] = fill;
        }
    }
}

int64_t tblock_act_sizes(int64_t sizes[TBA_N], int64_t *mask_bytes, int B, int T, int S, int C, int NH, int F,
                         int decoder) {
    const int64_t BT = (int64_t)B * T, x = decoder ? 1 : 0;
    sizes[TBA_LN1] = BT * C;  sizes[TBA_LN1_MEAN] = BT;  sizes[TBA_LN1_RSTD] = BT;
    sizes[TBA_QKV] = BT * 3 * C;
    sizes[TBA_ATT] = (int64_t)B * NH * T * T;
    sizes[TBA_ATTY] = BT * C;  sizes[TBA_ATTN_OUT] = BT * C;  sizes[TBA_RES1] = BT * C;
    sizes[TBA_LNX] = x * BT * C;  sizes[TBA_LNX_MEAN] = x * BT;  sizes[TBA_LNX_RSTD] = x * BT;
    sizes[TBA_XQ] = x * BT * C;
    sizes[TBA_XKV] = x * (int64_t)B * S * 2 * C;
    sizes[TBA_XATT] = x * (int64_t)B * NH * T * S;
    sizes[TBA_XATTY] = x * BT * C;  sizes[TBA_XATTN_OUT] = x * BT * C;  sizes[TBA_RES2] = x * BT * C;
    sizes[TBA_LN2] = BT * C;  sizes[TBA_LN2_MEAN] = BT;  sizes[TBA_LN2_RSTD] = BT;
    sizes[TBA_FCH] = BT * F;  sizes[TBA_FCH_ACT] = BT * F;  sizes[TBA_FCH_DROP] = BT * F;
    sizes[TBA_MLP_OUT] = BT * C;
    if (mask_bytes) *mask_bytes = BT * F;
    int64_t total = 0;
    for (int i = 0; i < TBA_N; i++) total += sizes[i];
    return total;
}

void tblock_acts_carve(tblock_acts *a, real *base, uint8_t *mask, const int64_t sizes[TBA_N]) {
    for (int i = 0; i < TBA_N; i++) {
        a->t[i] = sizes[i] ? base : NULL;
        base += sizes[i];
    }
    a->mask = mask;
}

/* ---------------------------------------------------------------- blocks: forward, backward */

/* One body for both kinds: the decoder adds the cross-attention sub-block (mem != NULL). */
static void block_forward(real *out, tblock_acts *acts, const real *inp, const real *mem, const tblock_params *p,
                          int B, int T, int S, int C, int NH, int F, cm_activation act, real dropout, uint64_t seed) {
    real *const *a = acts->t;
    real *const *w = p->t;
    const int64_t BT = (int64_t)B * T, n = BT * C;
    /* x1 = x + SelfAttn(LN1(x)) */
    layernorm_forward(a[TBA_LN1], a[TBA_LN1_MEAN], a[TBA_LN1_RSTD], inp, w[TBP_LN1_W], w[TBP_LN1_B], BT, C);
    mha_self_forward(a[TBA_ATTN_OUT], a[TBA_QKV], a[TBA_ATT], a[TBA_ATTY], a[TBA_LN1], w[TBP_ATTN_WQKV],
                     w[TBP_ATTN_BQKV], w[TBP_ATTN_WO], w[TBP_ATTN_BO], B, T, C, NH);
    residual_forward(a[TBA_RES1], inp, a[TBA_ATTN_OUT], n);
    const real *h = a[TBA_RES1];
    if (mem) {
        /* x2 = x1 + CrossAttn(LNX(x1), mem) */
        layernorm_forward(a[TBA_LNX], a[TBA_LNX_MEAN], a[TBA_LNX_RSTD], h, w[TBP_LNX_W], w[TBP_LNX_B], BT, C);
        mha_cross_forward(a[TBA_XATTN_OUT], a[TBA_XQ], a[TBA_XKV], a[TBA_XATT], a[TBA_XATTY], a[TBA_LNX], mem,
                          w[TBP_XATTN_WQKV], w[TBP_XATTN_BQKV], w[TBP_XATTN_WO], w[TBP_XATTN_BO], B, T, S, C, NH);
        residual_forward(a[TBA_RES2], h, a[TBA_XATTN_OUT], n);
        h = a[TBA_RES2];
    }
    /* out = h + Linear(Dropout(act(Linear(LN2(h))))) */
    layernorm_forward(a[TBA_LN2], a[TBA_LN2_MEAN], a[TBA_LN2_RSTD], h, w[TBP_LN2_W], w[TBP_LN2_B], BT, C);
    linear_forward(a[TBA_FCH], a[TBA_LN2], w[TBP_FC_W], w[TBP_FC_B], BT, C, F);
    if (act == CM_ACT_RELU) relu_forward(a[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    else gelu_forward(a[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    dropout_forward(a[TBA_FCH_DROP], acts->mask, a[TBA_FCH_ACT], BT * F, dropout, seed);
    linear_forward(a[TBA_MLP_OUT], a[TBA_FCH_DROP], w[TBP_PROJ_W], w[TBP_PROJ_B], BT, F, C);
    residual_forward(out, h, a[TBA_MLP_OUT], n);
}

static void block_backward(real *dinp, real *dmem, tblock_params *grads, tblock_acts *dacts, const real *dout,
                           const real *inp, const real *mem, const tblock_params *p, const tblock_acts *acts, int B,
                           int T, int S, int C, int NH, int F, cm_activation act, real dropout) {
    real *const *a = acts->t, *const *w = p->t, *const *g = grads->t, *const *d = dacts->t;
    const int64_t BT = (int64_t)B * T, n = BT * C;
    int64_t sizes[TBA_N];
    tblock_act_sizes(sizes, NULL, B, T, S, C, NH, F, mem != NULL);
    for (int i = 0; i < TBA_N; i++)
        if (sizes[i]) memset(d[i], 0, sizeof(real) * (size_t)sizes[i]);
    const real *h = mem ? a[TBA_RES2] : a[TBA_RES1];
    real *dh = mem ? d[TBA_RES2] : d[TBA_RES1];
    /* out = h + mlp_out */
    residual_backward(dh, d[TBA_MLP_OUT], dout, n);
    linear_backward(d[TBA_FCH_DROP], g[TBP_PROJ_W], g[TBP_PROJ_B], d[TBA_MLP_OUT], a[TBA_FCH_DROP], w[TBP_PROJ_W], BT, F,
                    C);
    dropout_backward(d[TBA_FCH_ACT], d[TBA_FCH_DROP], acts->mask, BT * F, dropout);
    if (act == CM_ACT_RELU) relu_backward(d[TBA_FCH], d[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    else gelu_backward(d[TBA_FCH], d[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    linear_backward(d[TBA_LN2], g[TBP_FC_W], g[TBP_FC_B], d[TBA_FCH], a[TBA_LN2], w[TBP_FC_W], BT, C, F);
    layernorm_backward(dh, g[TBP_LN2_W], g[TBP_LN2_B], d[TBA_LN2], h, w[TBP_LN2_W], a[TBA_LN2_MEAN], a[TBA_LN2_RSTD], BT,
                       C);
    if (mem) {
        /* x2 = x1 + CrossAttn(LNX(x1), mem) */
        residual_backward(d[TBA_RES1], d[TBA_XATTN_OUT], d[TBA_RES2], n);
        mha_cross_backward(d[TBA_LNX], dmem, g[TBP_XATTN_WQKV], g[TBP_XATTN_BQKV], g[TBP_XATTN_WO], g[TBP_XATTN_BO],
                           d[TBA_XQ], d[TBA_XKV], d[TBA_XATTY], d[TBA_XATT], d[TBA_XATTN_OUT], a[TBA_LNX], mem,
                           w[TBP_XATTN_WQKV], w[TBP_XATTN_WO], a[TBA_XQ], a[TBA_XKV], a[TBA_XATT], a[TBA_XATTY], B, T,
                           S, C, NH);
        layernorm_backward(d[TBA_RES1], g[TBP_LNX_W], g[TBP_LNX_B], d[TBA_LNX], a[TBA_RES1], w[TBP_LNX_W],
                           a[TBA_LNX_MEAN], a[TBA_LNX_RSTD], BT, C);
    }
    /* x1 = x + SelfAttn(LN1(x)) */
    residual_backward(dinp, d[TBA_ATTN_OUT], d[TBA_RES1], n);
    mha_self_backward(d[TBA_LN1], g[TBP_ATTN_WQKV], g[TBP_ATTN_BQKV], g[TBP_ATTN_WO], g[TBP_ATTN_BO], d[TBA_QKV],
                      d[TBA_ATTY], d[TBA_ATT], d[TBA_ATTN_OUT], a[TBA_LN1], w[TBP_ATTN_WQKV], w[TBP_ATTN_WO],
                      a[TBA_QKV], a[TBA_ATT], a[TBA_ATTY], B, T, C, NH);
    layernorm_backward(dinp, g[TBP_LN1_W], g[TBP_LN1_B], d[TBA_LN1], inp, w[TBP_LN1_W], a[TBA_LN1_MEAN],
                       a[TBA_LN1_RSTD], BT, C);
}

void encoder_block_forward(real *out, tblock_acts *acts, const real *inp, const tblock_params *p, int B, int T, int C,
                           int NH, int F, cm_activation act, real dropout, uint64_t seed) {
    block_forward(out, acts, inp, NULL, p, B, T, T, C, NH, F, act, dropout, seed);
}

void encoder_block_backward(real *dinp, tblock_params *grads, tblock_acts *dacts, const real *dout, const real *inp,
                            const tblock_params *p, const tblock_acts *acts, int B, int T, int C, int NH, int F,
                            cm_activation act, real dropout) {
    block_backward(dinp, NULL, grads, dacts, dout, inp, NULL, p, acts, B, T, T, C, NH, F, act, dropout);
}

void decoder_block_forward(real *out, tblock_acts *acts, const real *inp, const real *mem, const tblock_params *p,
                           int B, int T, int S, int C, int NH, int F, cm_activation act, real dropout, uint64_t seed) {
    block_forward(out, acts, inp, mem, p, B, T, S, C, NH, F, act, dropout, seed);
}

void decoder_block_backward(real *dinp, real *dmem, tblock_params *grads, tblock_acts *dacts, const real *dout,
                            const real *inp, const real *mem, const tblock_params *p, const tblock_acts *acts, int B,
                            int T, int S, int C, int NH, int F, cm_activation act, real dropout) {
    block_backward(dinp, dmem, grads, dacts, dout, inp, mem, p, acts, B, T, S, C, NH, F, act, dropout);
}
