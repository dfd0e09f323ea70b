/* ops.c: forward/backward of the basic layers (see ops.h for conventions and sizes). */
#include "ops.h"
#include <math.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double cm_uniform(uint64_t seed, uint64_t i) {
    return (double)(mix64(seed ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---------------------------------------------------------------- linear */

void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int64_t B, int C, int OC) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const real *x = inp + b * C;
        real *o = out + b * OC;
        for (int oc = 0; oc < OC; oc++) {
            const real *w = weight + (int64_t)oc * C;
            real acc = bias ? bias[oc] : (real)0;
            for (int c = 0; c < C; c++) acc += x[c] * w[c];
            o[oc] = acc;
        }
    }
}

void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                     int64_t B, int C, int OC) {
    /* dinp[b,:] += dout[b,:] @ weight : one writer per row */
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            const real *g = dout + b * OC;
            real *dx = dinp + b * C;
            for (int oc = 0; oc < OC; oc++) {
                const real *w = weight + (int64_t)oc * C;
                real go = g[oc];
                for (int c = 0; c < C; c++) dx[c] += go * w[c];
            }
        }
    }
    /* dweight[oc,:] += sum_b dout[b,oc] * inp[b,:] : one writer per output channel */
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; oc++) {
        real *dw = dweight + (int64_t)oc * C;
        real db = 0;
        for (int64_t b = 0; b < B; b++) {
            real go = dout[b * OC + oc];
            const real *x = inp + b * C;
            for (int c = 0; c < C; c++) dw[c] += go * x[c];
            db += go;
        }
        if (dbias) dbias[oc] += db;
    }
}

/* ---------------------------------------------------------------- GELU */

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794

void gelu_forward(real *out, const real *inp, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (real)(0.5 * x * (1.0 + erf(x * INV_SQRT2)));
    }
}

void gelu_backward(real *dinp, const real *dout, const real *inp, int64_t n) {
    /* d/dx x*Phi(x) = Phi(x) + x*phi(x) */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double x = inp[i];
        double cdf = 0.5 * (1.0 + erf(x * INV_SQRT2)), pdf = INV_SQRT2PI * exp(-0.5 * x * x);
        dinp[i] += (real)(dout[i] * (cdf + x * pdf));
    }
}

/* ---------------------------------------------------------------- batch norm */

void batchnorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *gamma, const real *beta,
                       int64_t B, int C, real eps, real *running_mean, real *running_var, real momentum) {
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t b = 0; b < B; b++) s += inp[b * C + c];
        double m = s / (double)B;
        for (int64_t b = 0; b < B; b++) {
            double d = inp[b * C + c] - m;
            ss += d * d;
        }
        double var = ss / (double)B, r = 1.0 / sqrt(var + eps);
        mean[c] = (real)m;
        rstd[c] = (real)r;
        for (int64_t b = 0; b < B; b++)
            out[b * C + c] = (real)((inp[b * C + c] - m) * r * gamma[c] + beta[c]);
        if (running_mean) {
            double unbiased = B > 1 ? ss / (double)(B - 1) : var;
            running_mean[c] = (real)((1 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (real)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
}

void batchnorm_backward(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp, const real *gamma,
                        const real *mean, const real *rstd, int64_t B, int C) {
    /* with xhat = (x - mean) * rstd:
     * dx = rstd * gamma * (dout - mean(dout) - xhat * mean(dout * xhat)) */
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sd = 0, sdx = 0;
        for (int64_t b = 0; b < B; b++) {
            double g = dout[b * C + c], xh = (inp[b * C + c] - mean[c]) * rstd[c];
            sd += g;
            sdx += g * xh;
        }
        dgamma[c] += (real)sdx;
        dbeta[c] += (real)sd;
        double md = sd / (double)B, mdx = sdx / (double)B, k = (double)rstd[c] * gamma[c];
        for (int64_t b = 0; b < B; b++) {
            double xh = (inp[b * C + c] - mean[c]) * rstd[c];
            dinp[b * C + c] += (real)(k * (dout[b * C + c] - md - xh * mdx));
        }
    }
}

void batchnorm_inference(real *out, const real *inp, const real *gamma, const real *beta, const real *running_mean,
                         const real *running_var, int64_t B, int C, real eps) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            out[b * C + c] = (real)((inp[b * C + c] - running_mean[c]) / sqrt((double)running_var[c] + eps) * gamma[c] + beta[c]);
}

/* ---------------------------------------------------------------- dropout */

void dropout_forward(real *out, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed) {
    real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint8_t keep = cm_uniform(seed, (uint64_t)i) >= (double)p;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : (real)0;
    }
}

void dropout_backward(real *dinp, const real *dout, const uint8_t *mask, int64_t n, real p) {
    real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        if (mask[i]) dinp[i] += dout[i] * scale;
}

/* ---------------------------------------------------------------- message passing */

void gather_mul_forward(real *out, const real *a, const int64_t *idx, const real *b, int64_t E, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < E; e++) {
        const real *x = a + idx[e] * C, *y = b + e * C;
        real *o = out + e * C;
        for (int c = 0; c < C; c++) o[c] = x[c] * y[c];
    }
}

void gather_mul_backward(real *da, real *db, const real *dout, const real *a, const int64_t *idx, const real *b,
                         int64_t E, int C, int64_t N, const int64_t *csr_ptr, const int64_t *csr_edges) {
    /* db[e] += dout[e] * a[idx[e]] : one writer per edge */
    if (db) {
#pragma omp parallel for schedule(static)
        for (int64_t e = 0; e < E; e++) {
            const real *x = a + idx[e] * C, *g = dout + e * C;
            real *d = db + e * C;
            for (int c = 0; c < C; c++) d[c] += g[c] * x[c];
        }
    }
    /* da[n] += sum over edges with idx == n of dout[e] * b[e] : one writer per node (CSR by idx) */
    if (da) {
#pragma omp parallel for schedule(dynamic, 64)
        for (int64_t n = 0; n < N; n++) {
            real *d = da + n * C;
            for (int64_t k = csr_ptr[n]; k < csr_ptr[n + 1]; k++) {
                int64_t e = csr_edges[k];
                const real *g = dout + e * C, *y = b + e * C;
                for (int c = 0; c < C; c++) d[c] += g[c] * y[c];
            }
        }
    }
}

void scatter_csr(int64_t *csr_ptr, int64_t *csr_edges, const int64_t *idx, int64_t E, int64_t N) {
    /* counting sort, stable: edges of a node keep their order, so sums are deterministic */
    memset(csr_ptr, 0, sizeof(int64_t) * (size_t)(N + 1));
    for (int64_t e = 0; e < E; e++) csr_ptr[idx[e] + 1]++;
    for (int64_t n = 0; n < N; n++) csr_ptr[n + 1] += csr_ptr[n];
    for (int64_t e = 0; e < E; e++) csr_edges[csr_ptr[idx[e]]++] = e;
    for (int64_t n = N; n > 0; n--) csr_ptr[n] = csr_ptr[n - 1];
    csr_ptr[0] = 0;
}

void scatter_add_forward(real *out, const real *src, const int64_t *csr_ptr, const int64_t *csr_edges, int64_t N, int C) {
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t n = 0; n < N; n++) {
        real *o = out + n * C;
        for (int64_t k = csr_ptr[n]; k < csr_ptr[n + 1]; k++) {
            const real *s = src + csr_edges[k] * C;
            for (int c = 0; c < C; c++) o[c] += s[c];
        }
    }
}

void scatter_add_backward(real *dsrc, const real *dout, const int64_t *idx, int64_t E, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < E; e++) {
        const real *g = dout + idx[e] * C;
        real *d = dsrc + e * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

void gin_combine_forward(real *out, const real *x, const real *z, const real *eps, int64_t B, int C) {
    real k = (real)1 + eps[0];
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < B * C; i++) out[i] = k * x[i] + z[i];
}

void gin_combine_backward(real *dx, real *dz, real *deps, const real *dout, const real *x, const real *eps, int64_t B,
                          int C) {
    real k = (real)1 + eps[0];
    const int64_t n = B * C;
    /* d eps = sum(dout * x), summed in fixed blocks so the result does not depend on threads */
    enum { BLOCKS = 64 };
    double partial[BLOCKS];
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < BLOCKS; blk++) {
        int64_t lo = n * blk / BLOCKS, hi = n * (blk + 1) / BLOCKS;
        double acc = 0;
        for (int64_t i = lo; i < hi; i++) {
            if (dx) dx[i] += k * dout[i];
            if (dz) dz[i] += dout[i];
            acc += (double)dout[i] * x[i];
        }
        partial[blk] = acc;
    }
    double total = 0;
    for (int blk = 0; blk < BLOCKS; blk++) total += partial[blk];
    deps[0] += (real)total;
}

/* ---------------------------------------------------------------- AdamW */

void adamw_update(real *params, const real *grads, real *m, real *v, int64_t n, real lr, real beta1, real beta2,
                  real eps, real weight_decay, int t) {
    double c1 = 1.0 - pow(beta1, t), c2 = 1.0 - pow(beta2, t);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        real g = grads[i];
        m[i] = beta1 * m[i] + (1 - beta1) * g;
        v[i] = beta2 * v[i] + (1 - beta2) * g * g;
        double mh = m[i] / c1, vh = v[i] / c2;
        params[i] -= (real)(lr * (mh / (sqrt(vh) + eps) + weight_decay * params[i]));
    }
}

/* ---------------------------------------------------------------- edge difference */

void gather_diff_forward(real *out, const real *z, const int64_t *src, const int64_t *dst, int64_t E, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < E; e++) {
        const real *a = z + src[e] * C, *b = z + dst[e] * C;
        real *o = out + e * C;
        for (int c = 0; c < C; c++) o[c] = a[c] - b[c];
    }
}

void gather_diff_backward(real *dz, const real *dout, int64_t N, int C, const int64_t *src_ptr,
                          const int64_t *src_edges, const int64_t *dst_ptr, const int64_t *dst_edges) {
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t n = 0; n < N; n++) {
        real *d = dz + n * C;
        for (int64_t k = src_ptr[n]; k < src_ptr[n + 1]; k++) {
            const real *g = dout + src_edges[k] * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
        for (int64_t k = dst_ptr[n]; k < dst_ptr[n + 1]; k++) {
            const real *g = dout + dst_edges[k] * C;
            for (int c = 0; c < C; c++) d[c] -= g[c];
        }
    }
}
