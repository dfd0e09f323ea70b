/* mlp.c: the multilayer perceptron of mlp.h (forward/backward over one flat parameter block)
 * and the cm_mlp regression model (MSE, AdamW) built on it.
 * Linear layers run on gemm.c (ops.h), so results are the same for any thread count. */
#include "mlp.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "transformer.h"   /* relu_forward */

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

#define STREAM_MLP_DROPOUT 0x6d6c7064726f7075ull

int64_t mlp_num_params(const int *w, int L) {
    int64_t n = 0;
    for (int i = 0; i < L; i++) n += (int64_t)w[i + 1] * w[i] + w[i + 1];
    return n;
}

int64_t mlp_num_acts(const int *w, int L, int64_t B) {
    int64_t n = 0;
    for (int h = 0; h + 1 < L; h++) n += 2 * B * w[h + 1];
    return n;
}

int64_t mlp_num_masks(const int *w, int L, int64_t B) {
    int64_t n = 0;
    for (int h = 0; h + 1 < L; h++) n += B * w[h + 1];
    return n;
}

static int max_width(const int *w, int L) {
    int m = 1;
    for (int i = 0; i <= L; i++) m = w[i] > m ? w[i] : m;
    return m;
}

int64_t mlp_num_scratch(const int *w, int L, int64_t B) { return 2 * B * max_width(w, L); }

void mlp_init_params(real *params, const int *w, int L, uint64_t seed) {
    real *p = params;
    for (int i = 0; i < L; i++) {
        const int64_t n = (int64_t)w[i + 1] * w[i] + w[i + 1];
        const double bound = 1.0 / sqrt((double)w[i]);
        const uint64_t s = mix64(seed ^ mix64(0x4000 + (uint64_t)i));
        for (int64_t k = 0; k < n; k++) {
            const double u = (double)(mix64(s ^ mix64((uint64_t)k)) >> 11) * (1.0 / 9007199254740992.0);
            p[k] = (real)((2 * u - 1) * bound);
        }
        p += n;
    }
}

void mlp_forward(real *out, real *acts, uint8_t *masks, const real *inp, const real *params, const int *w, int L,
                 int64_t B, real p, uint64_t seed) {
    const real *x = inp, *par = params;
    real *a = acts;
    uint8_t *mk = masks;
    for (int i = 0; i < L; i++) {
        const real *W = par, *b = par + (int64_t)w[i + 1] * w[i];
        par = b + w[i + 1];
        if (i == L - 1) { linear_forward(out, x, W, b, B, w[i], w[i + 1]); break; }
        const int64_t n = B * w[i + 1];
        real *pre = a, *post = a + n;
        linear_forward(pre, x, W, b, B, w[i], w[i + 1]);
        relu_forward(post, pre, n);
        if (p > 0) dropout_forward(post, mk, post, n, p, mix64(seed ^ mix64(STREAM_MLP_DROPOUT + (uint64_t)i)));
        mk += n;
        a += 2 * n;
        x = post;
    }
}

void mlp_backward(real *dinp, real *dparams, real *scratch, const real *dout, const real *inp, const real *params,
                  const real *acts, const uint8_t *masks, const int *w, int L, int64_t B, real p) {
    /* where layer i's parameters, activations and mask start */
    int64_t poff[CM_MLP_MAX_LAYERS], aoff[CM_MLP_MAX_LAYERS], moff[CM_MLP_MAX_LAYERS];
    int64_t po = 0, ao = 0, mo = 0;
    for (int i = 0; i < L; i++) {
        poff[i] = po; aoff[i] = ao; moff[i] = mo;
        po += (int64_t)w[i + 1] * w[i] + w[i + 1];
        if (i + 1 < L) { ao += 2 * B * w[i + 1]; mo += B * w[i + 1]; }
    }
    const int64_t half = B * max_width(w, L);
    real *bufs[2] = {scratch, scratch + half};
    const real *dh = dout;   /* gradient of layer i's output */
    int cur = 0;
    const real scale = p > 0 ? (real)1 / ((real)1 - p) : (real)1;
    for (int i = L - 1; i >= 0; i--) {
        const real *W = params + poff[i];
        real *dW = dparams + poff[i], *db = dW + (int64_t)w[i + 1] * w[i];
        /* the input of layer i: x = post of hidden layer i-1, or inp */
        const real *x = i ? acts + aoff[i - 1] + B * w[i] : inp;
        if (i == 0) { linear_backward(dinp, dW, db, dh, x, W, B, w[0], w[1]); break; }
        real *dx = bufs[cur];
        cur ^= 1;
        const int64_t n = B * w[i];
        memset(dx, 0, sizeof(real) * (size_t)n);
        linear_backward(dx, dW, db, dh, x, W, B, w[i], w[i + 1]);
        /* post = dropout(relu(pre)): dpre = dpost * keep / (1 - p) * [pre > 0], in place (the
         * fused form of dropout_backward and relu_backward, which would need a zeroed buffer) */
        const real *pre = acts + aoff[i - 1];
        const uint8_t *mk = masks + moff[i - 1];
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (int64_t k = 0; k < n; k++)
            dx[k] = pre[k] > 0 && (p <= 0 || mk[k]) ? dx[k] * scale : (real)0;
        dh = dx;
    }
}

/* ---------------------------------------------------------------- the regression model */

struct cm_mlp {
    int L;
    int w[CM_MLP_MAX_LAYERS + 1];
    real dropout;
    int64_t P;
    real *block;                /* [4P]: params, grads, AdamW m, AdamW v */
    real *params, *grads, *am, *av;
    int step;
    /* training workspace for cap rows */
    int64_t cap;
    real *acts, *out, *dout, *scratch;
    uint8_t *masks;
};

cm_status cm_mlp_init(cm_mlp **out, const int *widths, int L, real dropout, uint64_t seed, cm_error *err) {
    *out = NULL;
    if (L < 1 || L > CM_MLP_MAX_LAYERS)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "an MLP needs 1..%d layers (got %d)", CM_MLP_MAX_LAYERS, L);
    for (int i = 0; i <= L; i++)
        if (widths[i] < 1)
            return cm_error_set(err, CM_ERR_VALUE, "", 0, "MLP width %d is %d: widths must be positive", i, widths[i]);
    if (!(dropout >= 0 && dropout < 1))
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "dropout must be in [0, 1) (got %g)", (double)dropout);
    cm_mlp *m = calloc(1, sizeof *m);
    if (!m) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory");
    m->L = L;
    memcpy(m->w, widths, sizeof(int) * (size_t)(L + 1));
    m->dropout = dropout;
    m->P = mlp_num_params(widths, L);
    m->block = calloc((size_t)(4 * m->P), sizeof(real));
    if (!m->block) { free(m); return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory"); }
    m->params = m->block;
    m->grads = m->block + m->P;
    m->am = m->block + 2 * m->P;
    m->av = m->block + 3 * m->P;
    mlp_init_params(m->params, m->w, L, seed);
    *out = m;
    return CM_OK;
}

static void free_ws(cm_mlp *m) {
    free(m->acts); free(m->out); free(m->dout); free(m->scratch); free(m->masks);
    m->acts = m->out = m->dout = m->scratch = NULL;
    m->masks = NULL;
    m->cap = 0;
}

void cm_mlp_free(cm_mlp *m) {
    if (!m) return;
    free_ws(m);
    free(m->block);
    free(m);
}

int cm_mlp_layers(const cm_mlp *m) { return m->L; }
const int *cm_mlp_widths(const cm_mlp *m) { return m->w; }
real cm_mlp_dropout(const cm_mlp *m) { return m->dropout; }
int64_t cm_mlp_num_params(const cm_mlp *m) { return m->P; }
real *cm_mlp_params(cm_mlp *m) { return m->params; }
real *cm_mlp_grads(cm_mlp *m) { return m->grads; }
real *cm_mlp_moments(cm_mlp *m) { return m->am; }
int cm_mlp_adam_step(const cm_mlp *m) { return m->step; }
void cm_mlp_set_adam_step(cm_mlp *m, int step) { m->step = step < 0 ? 0 : step; }

static cm_status reserve(cm_mlp *m, int64_t B) {
    if (B <= m->cap) return CM_OK;
    free_ws(m);
    const int64_t na = mlp_num_acts(m->w, m->L, B), nm = mlp_num_masks(m->w, m->L, B);
    const int64_t no = B * m->w[m->L], ns = mlp_num_scratch(m->w, m->L, B);
    m->acts = malloc(sizeof(real) * (size_t)(na > 0 ? na : 1));
    m->masks = malloc((size_t)(nm > 0 ? nm : 1));
    m->out = malloc(sizeof(real) * (size_t)no);
    m->dout = malloc(sizeof(real) * (size_t)no);
    m->scratch = malloc(sizeof(real) * (size_t)ns);
    if (!m->acts || !m->masks || !m->out || !m->dout || !m->scratch) { free_ws(m); return CM_ERR_NOMEM; }
    m->cap = B;
    return CM_OK;
}

cm_status cm_mlp_predict(const cm_mlp *m, real *out, const real *x, int64_t B, cm_error *err) {
    if (B < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "the batch is empty");
    const int64_t na = mlp_num_acts(m->w, m->L, B);
    real *acts = malloc(sizeof(real) * (size_t)(na > 0 ? na : 1));
    if (!acts) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for %lld rows", (long long)B);
    mlp_forward(out, acts, NULL, x, m->params, m->w, m->L, B, 0, 0);
    free(acts);
    return CM_OK;
}

cm_status cm_mlp_loss(cm_mlp *m, double *loss, const real *x, const real *y, int64_t B, uint64_t seed, cm_error *err) {
    if (B < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "the batch is empty");
    if (reserve(m, B)) return cm_error_set(err, CM_ERR_NOMEM, "", 0, "out of memory for %lld rows", (long long)B);
    const int O = m->w[m->L];
    mlp_forward(m->out, m->acts, m->masks, x, m->params, m->w, m->L, B, m->dropout, seed);
    /* loss = mean (out - y)^2 over B*O; dout = 2 (out - y) / (B O) */
    double sse = 0;
    const double n = (double)(B * O);
    for (int64_t i = 0; i < B * O; i++) {
        const double d = (double)m->out[i] - (double)y[i];
        sse += d * d;
        m->dout[i] = (real)(2.0 * d / n);
    }
    if (loss) *loss = sse / n;
    memset(m->grads, 0, sizeof(real) * (size_t)m->P);
    mlp_backward(NULL, m->grads, m->scratch, m->dout, x, m->params, m->acts, m->masks, m->w, m->L, B, m->dropout);
    return CM_OK;
}

cm_status cm_mlp_train_step(cm_mlp *m, double *loss, const real *x, const real *y, int64_t B, real lr, real beta1,
                            real beta2, real eps, real weight_decay, uint64_t seed, cm_error *err) {
    cm_status st = cm_mlp_loss(m, loss, x, y, B, seed, err);
    if (st) return st;
    m->step++;
    adamw_update(m->params, m->grads, m->am, m->av, m->P, lr, beta1, beta2, eps, weight_decay, m->step);
    return CM_OK;
}
