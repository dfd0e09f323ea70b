/* transformer.c: layer norm, ReLU, residual, multi-head self/cross attention, sinusoidal
 * timestep embedding, and pre-LN encoder/decoder blocks built from them (see transformer.h for
 * sizes and conventions). Linear, GELU and dropout come from ops.c.
 * Limits: no causal or padding mask; attention keeps the whole [B,NH,T,S] probability tensor for
 * backward (inference need not), which suits the few-token sequences of sizing vectors, not long
 * sequences. Attention's float paths: AVX-512 with (batch row, head) pairs in the lanes for heads
 * of 16 channels and up to 32 keys (the paper's shapes), else with queries in the lanes; AVX2 and
 * portable builds run one generic body. */
#include "transformer.h"
#include "gemm.h"
#include "gemm_bf16.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* The forward kernels of layer norm and attention use dispatch.h's three paths; every path
 * sums in a fixed order per row, so results do not depend on the thread count or on the batch
 * a row sits in. */
#include "dispatch.h"

#define ATT_SCRATCH 4096   /* probabilities of one (batch, head) held on the stack when att is NULL */

/* The blocks' Linear forwards: in bf16 when the calling thread has opened a bf16 weight cache
 * (gemm_bf16.h; the diffusion model's sampling with precision bf16) and the CPU has the
 * kernel, else ops.c's fp32 linear_forward. */
static void tf_linear_forward(real *out, const real *inp, const real *w, const real *b, int64_t B, int C, int OC) {
#ifdef CM_REAL_IS_FLOAT
    if (gemm_bf16_linear_hook(out, inp, w, b, B, C, OC)) return;
#endif
    linear_forward(out, inp, w, b, B, C, OC);
}

#ifdef CM_REAL_IS_FLOAT
/* The inference form's Linear with its epilogue fused into the product (gemm_bf16.h):
 * out = [relu](inp @ w^T + b) [+ res]; where the hook declines, the same by separate passes. */
static void tf_linear_epilogue(real *out, const real *inp, const real *w, const real *b, const real *res, int relu,
                               int64_t B, int C, int OC) {
    if (gemm_bf16_linear_hook_ex(out, inp, w, b, res, relu, B, C, OC)) return;
    linear_forward(out, inp, w, b, B, C, OC);
    if (relu) relu_forward(out, out, B * OC);
    if (res) residual_forward(out, res, out, B * OC);
}
#endif

/* exp(x) for the softmax (x <= 0 there). float: Cephes' expf (range reduction by ln 2 in two
 * parts, degree-6 polynomial, 2^n by exponent bits), within ~2 ulp on [-87, 0], branch-free so
 * it vectorises; below -87 it returns exp(-87) ~ 1.6e-38, which a softmax cannot tell from 0.
 * double (the gradient tests' build): the libm exp. */
CM_INLINE real tf_exp(real x) {
#ifdef CM_REAL_IS_FLOAT
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { uint32_t u; float f; } e;
    e.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * e.f;
#else
    return exp(x);
#endif
}

/* ---------------------------------------------------------------- layer norm */

/* Mean and variance in 16 lane sums per row (a fixed order, so it vectorises), then the lanes
 * by a fixed tree; biased variance, as PyTorch. */
CM_INLINE void layernorm_rows_body(real *out, real *mean, real *rstd, const real *inp, const real *weight,
                                   const real *bias, int64_t n0, int64_t n1, int C) {
    for (int64_t n = n0; n < n1; n++) {
        const real *x = inp + n * C;
        real acc[16] = {0};
        int c = 0;
        for (; c + 16 <= C; c += 16)
            for (int l = 0; l < 16; l++) acc[l] += x[c + l];
        for (int l = 0; c + l < C; l++) acc[l] += x[c + l];
        for (int w = 8; w; w /= 2)   /* lanes summed as a tree: a fixed order, short latency */
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        const real m = acc[0] / (real)C;
        for (int l = 0; l < 16; l++) acc[l] = 0;
        for (c = 0; c + 16 <= C; c += 16)
            for (int l = 0; l < 16; l++) acc[l] += (x[c + l] - m) * (x[c + l] - m);
        for (int l = 0; c + l < C; l++) acc[l] += (x[c + l] - m) * (x[c + l] - m);
        for (int w = 8; w; w /= 2)
            for (int l = 0; l < w; l++) acc[l] += acc[l + w];
        const real v = acc[0];
        const real r = (real)(1.0 / sqrt((double)(v / (real)C) + CM_LN_EPS));
        real *o = out + n * C;
        for (c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = r;
    }
}
CM_DISPATCH(layernorm_rows, layernorm_rows_body,
            (real *out, real *mean, real *rstd, const real *inp, const real *weight, const real *bias, int64_t n0,
             int64_t n1, int C), (out, mean, rstd, inp, weight, bias, n0, n1, C))

#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
/* 16 x 16 floats transposed in registers: r[i] lane c <- r[c] lane i (unpacks within 128-bit
 * lanes, then 4-float blocks moved across lanes). */
__attribute__((target("avx512f,avx512dq"), always_inline)) static inline void tr16x16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);       /* a0 b0 a1 b1 per 128-bit lane */
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);   /* a2 b2 a3 b3 */
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));       /* a0 b0 c0 d0 */
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));   /* a1 b1 c1 d1 */
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* r[4i + k], 128-bit lane L: rows 4i..4i+3 of column 4L + k */
    for (int k = 0; k < 4; k++) {
        const __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88), b = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xDD);
        const __m512 c = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88), d = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xDD);
        t[k] = _mm512_shuffle_f32x4(a, c, 0x88);
        t[4 + k] = _mm512_shuffle_f32x4(b, d, 0x88);
        t[8 + k] = _mm512_shuffle_f32x4(a, c, 0xDD);
        t[12 + k] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* AVX-512 layer norm of rows in groups of 16, one row per lane, for C % 16 == 0: each row's
 * C / 16 vectors added in order, the 16 row vectors transposed (tr16x16) and added in order, so
 * lane i holds row i's sum; the mean, then the centred squares likewise; 1 / sqrt(var + eps)
 * in double, as the body. Everything after the row loads is vertical over the 16 rows: no lane
 * reductions and no per-row dependency chain. Rows past n1 are zeros in their lanes and never
 * stored; a row's arithmetic is its own, whatever rows share its group. */
__attribute__((target("avx512f,avx512dq"))) static void layernorm_rows_avx512v(real *out, real *mean, real *rstd,
                                                                                const real *inp, const real *weight,
                                                                                const real *bias, int64_t n0,
                                                                                int64_t n1, int C) {
    const int nv = C / 16;
    const __m512 vc = _mm512_set1_ps((float)C);
    for (int64_t g = n0; g < n1; g += 16) {
        const int nr = n1 - g < 16 ? (int)(n1 - g) : 16;
        __m512 r[16];
        for (int i = 0; i < 16; i++) {
            __m512 acc = _mm512_setzero_ps();
            if (i < nr) {
                const float *x = inp + (g + i) * C;
                acc = _mm512_loadu_ps(x);
                for (int c = 1; c < nv; c++) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + 16 * c));
            }
            r[i] = acc;
        }
        tr16x16(r);
        __m512 sum = r[0];
        for (int k = 1; k < 16; k++) sum = _mm512_add_ps(sum, r[k]);
        const __m512 vm = _mm512_div_ps(sum, vc);
        for (int i = 0; i < 16; i++) {
            __m512 acc = _mm512_setzero_ps();
            if (i < nr) {
                const float *x = inp + (g + i) * C;
                const __m512 mi = _mm512_permutexvar_ps(_mm512_set1_epi32(i), vm);
                __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x), mi);
                acc = _mm512_mul_ps(d, d);
                for (int c = 1; c < nv; c++) {
                    d = _mm512_sub_ps(_mm512_loadu_ps(x + 16 * c), mi);
                    acc = _mm512_fmadd_ps(d, d, acc);
                }
            }
            r[i] = acc;
        }
        tr16x16(r);
        sum = r[0];
        for (int k = 1; k < 16; k++) sum = _mm512_add_ps(sum, r[k]);
        const __m512 var = _mm512_div_ps(sum, vc);
        const __m512d eps = _mm512_set1_pd(CM_LN_EPS), one = _mm512_set1_pd(1.0);
        const __m512d vlo = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(var)), eps);
        const __m512d vhi = _mm512_add_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(var), 1))), eps);
        const __m256 rlo = _mm512_cvtpd_ps(_mm512_div_pd(one, _mm512_sqrt_pd(vlo)));
        const __m256 rhi = _mm512_cvtpd_ps(_mm512_div_pd(one, _mm512_sqrt_pd(vhi)));
        const __m512 vr = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(rlo)),
                                                              _mm256_castps_pd(rhi), 1));
        for (int i = 0; i < nr; i++) {
            const float *x = inp + (g + i) * C;
            float *o = out + (g + i) * C;
            const __m512 mi = _mm512_permutexvar_ps(_mm512_set1_epi32(i), vm);
            const __m512 ri = _mm512_permutexvar_ps(_mm512_set1_epi32(i), vr);
            for (int c = 0; c < C; c += 16) {
                const __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), mi), ri);
                _mm512_storeu_ps(o + c, _mm512_fmadd_ps(xh, _mm512_loadu_ps(weight + c), _mm512_loadu_ps(bias + c)));
            }
        }
        const __mmask16 live = (__mmask16)((1u << nr) - 1u);
        _mm512_mask_storeu_ps(mean + g, live, vm);
        _mm512_mask_storeu_ps(rstd + g, live, vr);
    }
}
#define HAVE_LN_AVX512 1
#endif

static void layernorm_rows_any(real *out, real *mean, real *rstd, const real *inp, const real *weight,
                               const real *bias, int64_t n0, int64_t n1, int C) {
#ifdef HAVE_LN_AVX512
    if (C % 16 == 0 && gemm_get_isa() == GEMM_ISA_AVX512) {
        layernorm_rows_avx512v(out, mean, rstd, inp, weight, bias, n0, n1, C);
        return;
    }
#endif
    layernorm_rows(out, mean, rstd, inp, weight, bias, n0, n1, C);
}

#define LN_ROWS 64   /* rows per task */
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *weight, const real *bias,
                       int64_t N, int C) {
    const int64_t nb = (N + LN_ROWS - 1) / LN_ROWS;
#pragma omp parallel for schedule(static) if (nb >= 4)
    for (int64_t k = 0; k < nb; k++)
        layernorm_rows_any(out, mean, rstd, inp, weight, bias, k * LN_ROWS, (k + 1) * LN_ROWS < N ? (k + 1) * LN_ROWS : N, C);
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

/* One (batch, head): q, k, v point at the batch's first row and the head's first channel, att
 * at its [T,S] probabilities, out at its first row and channel. Scores: keys in blocks of 16 are
 * transposed into kt[block][hs][16] (zero-padded past S), so the sum over the head's channels
 * runs in 16 lanes, one per key, j ascending; then per query the softmax (max, exp, sum in key
 * order) and out = sum_s att[s] v[s] (s ascending, 16 channels at a time). Fixed 16-wide
 * accumulators stay in registers. */
#define ATT_KT 4096
CM_INLINE void attention_bh_body(real *out, real *att, const real *q, const real *k, const real *v, int T, int S,
                                 int C, int hs, int ldq, int ldkv, real scale) {
    real kt[ATT_KT];
    const int per = hs <= ATT_KT / 16 ? ATT_KT / (16 * hs) : 0;   /* 16-key blocks per fill of kt */
    if (per == 0) {   /* a head wider than the buffer: plain dot products */
        for (int t = 0; t < T; t++)
            for (int s = 0; s < S; s++) {
                const real *qr = q + (int64_t)t * ldq, *kr = k + (int64_t)s * ldkv;
                real d = 0;
                for (int j = 0; j < hs; j++) d += qr[j] * kr[j];
                att[(int64_t)t * S + s] = d * scale;
            }
    }
    for (int s0 = 0; per && s0 < S; s0 += 16 * per) {
        int nb = (S - s0 + 15) / 16;
        if (nb > per) nb = per;
        for (int bk = 0; bk < nb; bk++)
            for (int l = 0; l < 16; l++) {
                const int s = s0 + bk * 16 + l;
                real *col = kt + (int64_t)bk * hs * 16 + l;
                if (s < S) for (int j = 0; j < hs; j++) col[j * 16] = k[(int64_t)s * ldkv + j];
                else for (int j = 0; j < hs; j++) col[j * 16] = 0;
            }
        for (int t = 0; t < T; t++) {
            const real *qr = q + (int64_t)t * ldq;
            real *a = att + (int64_t)t * S;
            for (int bk = 0; bk < nb; bk++) {
                const real *kb = kt + (int64_t)bk * hs * 16;
                real acc[16] = {0};
                for (int j = 0; j < hs; j++) {
                    const real qj = qr[j];
                    for (int l = 0; l < 16; l++) acc[l] += qj * kb[j * 16 + l];
                }
                const int sb0 = s0 + bk * 16, n = S - sb0 < 16 ? S - sb0 : 16;
                for (int l = 0; l < n; l++) a[sb0 + l] = acc[l] * scale;
            }
        }
    }
    for (int t = 0; t < T; t++) {
        real *a = att + (int64_t)t * S;
        real mx = a[0];
        for (int s = 1; s < S; s++) mx = a[s] > mx ? a[s] : mx;
        for (int s = 0; s < S; s++) a[s] = tf_exp(a[s] - mx);
        real sum = 0;
        for (int s = 0; s < S; s++) sum += a[s];
        const real inv = (real)1 / sum;
        for (int s = 0; s < S; s++) a[s] *= inv;
        real *o = out + (int64_t)t * C;
        int j0 = 0;
        for (; j0 + 16 <= hs; j0 += 16) {
            real acc[16] = {0};
            for (int s = 0; s < S; s++) {
                const real *vr = v + (int64_t)s * ldkv + j0;
                const real w = a[s];
                for (int l = 0; l < 16; l++) acc[l] += w * vr[l];
            }
            for (int l = 0; l < 16; l++) o[j0 + l] = acc[l];
        }
        for (; j0 < hs; j0++) {
            real d = 0;
            for (int s = 0; s < S; s++) d += a[s] * v[(int64_t)s * ldkv + j0];
            o[j0] = d;
        }
    }
}

CM_DISPATCH(attention_bh_generic, attention_bh_body,
            (real *out, real *att, const real *q, const real *k, const real *v, int T, int S, int C, int hs, int ldq,
             int ldkv, real scale), (out, att, q, k, v, T, S, C, hs, ldq, ldkv, scale))

#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define ATT_SMAX 256   /* keys handled by the AVX-512 path */
#define ATT_HMAX 64    /* head width handled by the AVX-512 path (a multiple of 16) */
#define ATT_QALONE 2   /* a last block of this many queries or fewer runs query by query */
#define ATT_G 4        /* heads of a batch row run together, phase by phase */
#define ATT_PAIRS_SMAX 32   /* keys handled by the pairs-in-lanes path (heads of 16 channels) */
__attribute__((target("avx512f,avx512dq"))) static inline __m512 exp512(__m512 x) {
    /* callers pass x = score - max <= 0 (or lanes they mask away): no upper clamp needed */
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    /* p * 2^n: n is an integer in [-126, 127] after the clamps, so scalef is exact (the same
     * bits as multiplying by 2^n built from exponent bits, in one instruction) */
    return _mm512_scalef_ps(p, n);
}

/* Scores of NK keys from s0 for the 16 queries of qt[hs][16]: pt[s][16] = scale * sum_j k[s,j]
 * qt[j] (j ascending, one accumulator per key), and the running max per query lane. */
__attribute__((target("avx512f,avx512dq"), always_inline)) static inline void att_scores(
    float *pt, __m512 *mx, const float *qt, const float *k, int s0, const int NK, int hs, int ldkv, __m512 vscale) {
    __m512 acc[8], acc2[8];
    for (int r = 0; r < NK; r++) acc[r] = acc2[r] = _mm512_setzero_ps();
    for (int j = 0; j < hs; j += 2) {
        const __m512 qj = _mm512_load_ps(qt + j * 16), qj2 = _mm512_load_ps(qt + j * 16 + 16);
        for (int r = 0; r < NK; r++) {
            acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(k[(int64_t)(s0 + r) * ldkv + j]), qj, acc[r]);
            acc2[r] = _mm512_fmadd_ps(_mm512_set1_ps(k[(int64_t)(s0 + r) * ldkv + j + 1]), qj2, acc2[r]);
        }
    }
    for (int r = 0; r < NK; r++) {
        const __m512 sc = _mm512_mul_ps(_mm512_add_ps(acc[r], acc2[r]), vscale);
        *mx = _mm512_max_ps(*mx, sc);
        _mm512_store_ps(pt + (s0 + r) * 16, sc);
    }
}

/* out rows [tq, tq + NQ) of a query block (channels [0, hs), row stride C) = inv[t] * sum_s
 * pt[s][t] v[s] (s ascending, one accumulator per output vector; pt unnormalised). */
__attribute__((target("avx512f,avx512dq"), always_inline)) static inline void att_values(
    float *out, const float *pt, const float *inv, const float *v, int tq, const int NQ, int S, int hs, int ldkv,
    int C) {
    for (int jb = 0; jb < hs; jb += 16) {
        __m512 acc[8];
        for (int r = 0; r < NQ; r++) acc[r] = _mm512_setzero_ps();
        for (int s = 0; s < S; s++) {
            const __m512 vv = _mm512_loadu_ps(v + (int64_t)s * ldkv + jb);
            for (int r = 0; r < NQ; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(pt[s * 16 + tq + r]), vv, acc[r]);
        }
        for (int r = 0; r < NQ; r++)
            _mm512_storeu_ps(out + (int64_t)(tq + r) * C + jb, _mm512_mul_ps(acc[r], _mm512_set1_ps(inv[tq + r])));
    }
}

/* The last one or two queries of a sequence (e.g. the 17th of 17 tokens), each alone with the
 * keys in the lanes: a 16-query block would spend all its work on one lane. For the nh heads of
 * one query at once, phase by phase, so that the heads' dependency chains (short when there are
 * few keys) overlap. Per head: the scores of 16 keys at a time from each key's products over the
 * head's channels (hs / 16 vectors, FMA in channel-block order), reduced across lanes (by one
 * transpose and the rows added in order for more than 4 keys, else key by key); the softmax over
 * keys with masked lane reductions (max; exp; sum); out = (1 / sum) * sum_s e[s] v[s] with four
 * accumulators (s mod 4) added as (a0 + a1) + (a2 + a3). att's rows are written when att is not
 * NULL. A head's arithmetic depends only on its own data. */
__attribute__((target("avx512f,avx512dq"))) static void attention_query_avx512(float *out, float *att, const float *q,
                                                                                const float *k, const float *v, int T,
                                                                                int S, int hs, int nh, int ldkv,
                                                                                float scale) {
    float e[ATT_G][ATT_SMAX] __attribute__((aligned(64)));
    __m512 sc[ATT_G][ATT_SMAX / 16];
    float inv[ATT_G];
    const int nbk = (S + 15) / 16;
    for (int g = 0; g < nh; g++) {
        const float *qg = q + g * hs, *kg = k + g * hs;
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int bk = 0; bk < nbk; bk++) {
            const int n = S - bk * 16 < 16 ? S - bk * 16 : 16;
            __m512 r[16], d;
            for (int i = 0; i < 16; i++) {
                __m512 acc = _mm512_setzero_ps();
                if (i < n) {
                    const float *kr = kg + (int64_t)(bk * 16 + i) * ldkv;
                    for (int jc = 0; jc < hs; jc += 16)
                        acc = _mm512_fmadd_ps(_mm512_loadu_ps(qg + jc), _mm512_loadu_ps(kr + jc), acc);
                }
                r[i] = acc;
            }
            if (n > 4) {   /* many keys: one transpose, then the rows added in order */
                tr16x16(r);
                d = r[0];
                for (int i = 1; i < 16; i++) d = _mm512_add_ps(d, r[i]);
            } else {       /* a few: each key's lanes reduced alone */
                float dd[16] __attribute__((aligned(64))) = {0};
                for (int i = 0; i < n; i++) dd[i] = _mm512_reduce_add_ps(r[i]);
                d = _mm512_load_ps(dd);
            }
            sc[g][bk] = _mm512_mul_ps(d, _mm512_set1_ps(scale));
            mx = _mm512_mask_max_ps(mx, (__mmask16)((1u << n) - 1u), mx, sc[g][bk]);
        }
        const __m512 vmx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
        __m512 sum = _mm512_setzero_ps();
        for (int bk = 0; bk < nbk; bk++) {
            const int n = S - bk * 16 < 16 ? S - bk * 16 : 16;
            const __m512 x = _mm512_maskz_mov_ps((__mmask16)((1u << n) - 1u), exp512(_mm512_sub_ps(sc[g][bk], vmx)));
            sum = _mm512_add_ps(sum, x);
            _mm512_store_ps(e[g] + bk * 16, x);
        }
        inv[g] = 1.0f / _mm512_reduce_add_ps(sum);
    }
    if (att)
        for (int g = 0; g < nh; g++)
            for (int s = 0; s < S; s++) att[(int64_t)g * T * S + s] = e[g][s] * inv[g];
    for (int g = 0; g < nh; g++)
        for (int jb = 0; jb < hs; jb += 16) {
            const float *vg = v + g * hs + jb;
            __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int s = 0; s < S; s++)
                a[s & 3] = _mm512_fmadd_ps(_mm512_set1_ps(e[g][s]), _mm512_loadu_ps(vg + (int64_t)s * ldkv), a[s & 3]);
            const __m512 o = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
            _mm512_storeu_ps(out + g * hs + jb, _mm512_mul_ps(o, _mm512_set1_ps(inv[g])));
        }
}

/* The fused attention forward with AVX-512 for hs % 16 == 0, hs <= ATT_HMAX, S <= ATT_SMAX, made
 * for the short sequences of sizing vectors (a few to a few tens of tokens), where padding keys
 * to whole vectors and reducing across lanes would cost more than the products. nh <= ATT_G heads
 * of one batch row (head g's channels at g * hs; its att at g * T * S), run phase by phase so
 * that the heads' dependency chains overlap. Queries go 16 at a time into the lanes: q
 * transposed in registers into qt[hs][16]; the scores of every key, a vector over the 16
 * queries, from k broadcast (keys in groups of 8, 4, 1: independent FMA chains, each the sum of
 * even and of odd channels); the softmax over keys is then vertical (max, exp, sum lane by lane,
 * keys in order: no horizontal reductions); out rows from the unnormalised exponentials
 * broadcast and v rows (8 queries at a time), times 1 / sum at the end (the normalised
 * probabilities are formed only when att is kept). Every lane's arithmetic is that of its query
 * alone, so a query's result does not depend on the others in its block, on the batch or on the
 * thread count. */
__attribute__((target("avx512f,avx512dq"))) static void attention_heads_avx512(float *out, float *att, const float *q,
                                                                                const float *k, const float *v, int T,
                                                                                int S, int C, int hs, int nh, int ldq,
                                                                                int ldkv, float scale) {
    float qt[ATT_G][ATT_HMAX * 16] __attribute__((aligned(64)));
    float pt[ATT_G][ATT_SMAX * 16] __attribute__((aligned(64)));
    float inv[ATT_G][16] __attribute__((aligned(64)));
    __m512 mx[ATT_G], sum[ATT_G];
    const __m512 vscale = _mm512_set1_ps(scale);
    const __m512i lane_rows = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                 _mm512_set1_epi32(S));
    for (int t0 = 0; t0 < T; t0 += 16) {
        const int nq = T - t0 < 16 ? T - t0 : 16;
        if (nq <= ATT_QALONE) {   /* a block of one or two queries: each alone, keys in the lanes */
            for (int t = t0; t < T; t++)
                attention_query_avx512(out + (int64_t)t * C, att ? att + (int64_t)t * S : NULL, q + (int64_t)t * ldq, k,
                                       v, T, S, hs, nh, ldkv, scale);
            break;
        }
        for (int g = 0; g < nh; g++)
            for (int jc = 0; jc < hs; jc += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++)
                    r[i] = i < nq ? _mm512_loadu_ps(q + (int64_t)(t0 + i) * ldq + g * hs + jc) : _mm512_setzero_ps();
                tr16x16(r);
                for (int i = 0; i < 16; i++) _mm512_store_ps(qt[g] + (jc + i) * 16, r[i]);
            }
        for (int g = 0; g < nh; g++) mx[g] = _mm512_set1_ps(-INFINITY);
        int s = 0;
        for (; s + 8 <= S; s += 8)
            for (int g = 0; g < nh; g++) att_scores(pt[g], &mx[g], qt[g], k + g * hs, s, 8, hs, ldkv, vscale);
        if (s + 4 <= S) {
            for (int g = 0; g < nh; g++) att_scores(pt[g], &mx[g], qt[g], k + g * hs, s, 4, hs, ldkv, vscale);
            s += 4;
        }
        for (; s < S; s++)
            for (int g = 0; g < nh; g++) att_scores(pt[g], &mx[g], qt[g], k + g * hs, s, 1, hs, ldkv, vscale);
        for (int g = 0; g < nh; g++) sum[g] = _mm512_setzero_ps();
        for (s = 0; s < S; s++)
            for (int g = 0; g < nh; g++) {
                const __m512 x = exp512(_mm512_sub_ps(_mm512_load_ps(pt[g] + s * 16), mx[g]));
                sum[g] = _mm512_add_ps(sum[g], x);
                _mm512_store_ps(pt[g] + s * 16, x);
            }
        for (int g = 0; g < nh; g++) _mm512_store_ps(inv[g], _mm512_div_ps(_mm512_set1_ps(1.0f), sum[g]));
        if (att) {   /* the probabilities for backward; out below uses e and inv either way */
            const __mmask16 live = (__mmask16)((1u << nq) - 1u);
            for (int g = 0; g < nh; g++)
                for (s = 0; s < S; s++)
                    _mm512_mask_i32scatter_ps(att + (int64_t)g * T * S + (int64_t)t0 * S + s, live, lane_rows,
                                              _mm512_mul_ps(_mm512_load_ps(pt[g] + s * 16), _mm512_load_ps(inv[g])), 4);
        }
        float *o = out + (int64_t)t0 * C;
        int tq = 0;
        for (; tq + 8 <= nq; tq += 8)
            for (int g = 0; g < nh; g++) att_values(o + g * hs, pt[g], inv[g], v + g * hs, tq, 8, S, hs, ldkv, C);
        if (tq + 4 <= nq) {
            for (int g = 0; g < nh; g++) att_values(o + g * hs, pt[g], inv[g], v + g * hs, tq, 4, S, hs, ldkv, C);
            tq += 4;
        }
        if (tq + 2 <= nq) {
            for (int g = 0; g < nh; g++) att_values(o + g * hs, pt[g], inv[g], v + g * hs, tq, 2, S, hs, ldkv, C);
            tq += 2;
        }
        if (tq < nq)
            for (int g = 0; g < nh; g++) att_values(o + g * hs, pt[g], inv[g], v + g * hs, tq, 1, S, hs, ldkv, C);
    }
}
/* 2^x for the pairs kernel's softmax: n = round(x), f = x - n in [-1/2, 1/2], 2^f by a degree-6
 * polynomial fitted for relative error on [-1/2, 1/2] (within ~0.7 ulp in float), times 2^n by
 * vscalefps, which is exact and goes to 0 (through the denormals) for very negative x, so no
 * clamp is needed. 10 operations where exp512 takes 15. */
__attribute__((target("avx512f,avx512dq"), always_inline)) static inline __m512 exp2_512(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.5353361959569156e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3398873852565885e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6184369176626205e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503323674201965e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022647738456726e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718246459961e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#define ATT_PAIRS_PBUF 544   /* exponential vectors of the pairs kernel's query chunk (queries x keys) */
#define ATT_PAIRS_TBUF 32    /* queries per chunk at most (even) */

/* Where pair lane l's (e[t], e[t+1]) sit in the interleaved layout of the pairs kernel's
 * exponentials: vector t holds unpacklo(e[t], e[t+1]), vector t+1 unpackhi (float offsets from
 * vector t). */
static inline int pairs_ioff(int l) { return ((l & 3) >= 2 ? 16 : 0) + 4 * (l >> 2) + 2 * (l & 1); }

/* out rows of NQP query pairs (t, t + 1) from tq of the pair in lane l, with the channels in the
 * lanes: out[t] = (sum_s e[t][s] v[s], s in order) * inv[t]. One 64-bit broadcast of (e[t][s],
 * e[t+1][s]) feeds two FMAs, one with v and one with v's neighbours swapped, so a1 holds out[t]'s
 * even channels and out[t+1]'s odd ones, a2 the rest; a blend puts them back. */
__attribute__((target("avx512f,avx512dq"), always_inline)) static inline void pairs_values2(
    float *o, const float *vb, const float *e, const float *inv, int l, int tq, const int NQP, int S, int C, int ldkv,
    int NTP) {
    __m512 a1[8], a2[8];
    const int off = pairs_ioff(l);
    for (int i = 0; i < NQP; i++) a1[i] = a2[i] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int s = 0; s < S; s++) {
        const __m512 v = _mm512_loadu_ps(vb + (int64_t)s * ldkv), vs = _mm512_permute_ps(v, 0xB1);
        const float *es = e + ((int64_t)s * NTP + tq) * 16 + off;
        for (int i = 0; i < NQP; i++) {
            const __m512 b = _mm512_broadcast_f32x2(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(es + i * 32))));
            a1[i] = _mm512_fmadd_ps(b, v, a1[i]);
            a2[i] = _mm512_fmadd_ps(b, vs, a2[i]);
        }
    }
    for (int i = 0; i < NQP; i++) {
        const __m512 sw = _mm512_permute_ps(a2[i], 0xB1);
        const int t = tq + 2 * i;
        _mm512_storeu_ps(o + (int64_t)t * C,
                         _mm512_mul_ps(_mm512_mask_blend_ps(0xAAAA, a1[i], sw), _mm512_set1_ps(inv[t * 16 + l])));
        _mm512_storeu_ps(o + (int64_t)(t + 1) * C,
                         _mm512_mul_ps(_mm512_mask_blend_ps(0xAAAA, sw, a1[i]), _mm512_set1_ps(inv[(t + 1) * 16 + l])));
    }
}

/* Attention of up to 16 (batch row, head) pairs at once, for heads of 16 channels and at most
 * ATT_PAIRS_SMAX keys (the paper's shapes: a few to a few tens of tokens, where padding keys to
 * whole vectors and reducing across lanes would cost more than the products). The scores and
 * the softmax run with one pair per lane, every operation vertical over the 16 pairs (no
 * padding, no lane reductions); k of all keys is transposed once into kt[s][16 channels] and q
 * query by query into 16 registers (16 x 16 transposes in registers). The queries run in chunks,
 * phase by phase so that each phase's independent chains overlap: (1) raw scores d[t][s] = (sum
 * of even channels) + (sum of odd channels) (two FMA chains each, keys four at a time) and the
 * max m[t]; (2) e = 2^(c2 d - c2 m) with c2 = log2(e) / sqrt(hs), i.e. exp((d - m) / sqrt(hs)),
 * and inv = 1 / sum_s e (s in order), the e of queries t, t + 1 stored interleaved; (3) out row
 * by row with the channels in the lanes, v and out read and written in place (no transposes):
 * out[t] = (sum_s e[t][s] v[s]) * inv[t], queries two at a time (pairs_values2; a last odd one
 * alone). Lanes past np compute on zeros and are never stored. Each pair's arithmetic is its
 * own, so results do not depend on which pairs share a group, the chunking, the batch or the
 * thread count. */
__attribute__((target("avx512f,avx512dq"))) static void attention_pairs_avx512(float *out, float *att, const float *q,
                                                                                const float *k, const float *v,
                                                                                int64_t p0, int np, int T, int S, int C,
                                                                                int NH, int ldq, int ldkv, float scale) {
    const float *qb[16], *kb[16], *vb[16];
    float *ob[16];
    int64_t ab[16];
    for (int l = 0; l < 16; l++) {
        const int64_t p = p0 + (l < np ? l : 0), b = p / NH;
        const int h = (int)(p % NH);
        qb[l] = q + b * T * ldq + h * 16;
        kb[l] = k + b * S * ldkv + h * 16;
        vb[l] = v + b * S * ldkv + h * 16;
        ob[l] = out + b * T * C + h * 16;
        ab[l] = p * T * S;
    }
    __m512 kt[ATT_PAIRS_SMAX * 16], mx[ATT_PAIRS_TBUF];
    float e[ATT_PAIRS_PBUF * 16] __attribute__((aligned(64)));
    float inv[ATT_PAIRS_TBUF * 16] __attribute__((aligned(64)));
    /* four heads of four whole batch rows (the paper's shape): each lane's row from one of four
     * row pointers and a constant head offset, not from a table of sixteen pointers */
    const int four = NH == 4 && np == 16;
    const int64_t rsq = (int64_t)T * ldq, rskv = (int64_t)S * ldkv;
    for (int s = 0; s < S; s++) {
        __m512 r[16];
        if (four) {
            const float *a = k + (p0 / 4) * rskv + (int64_t)s * ldkv;
            for (int l = 0; l < 16; l++) r[l] = _mm512_loadu_ps(a + (l >> 2) * rskv + (l & 3) * 16);
        } else if (np == 16)
            for (int l = 0; l < 16; l++) r[l] = _mm512_loadu_ps(kb[l] + (int64_t)s * ldkv);
        else
            for (int l = 0; l < 16; l++)
                r[l] = l < np ? _mm512_loadu_ps(kb[l] + (int64_t)s * ldkv) : _mm512_setzero_ps();
        tr16x16(r);
        for (int j = 0; j < 16; j++) kt[s * 16 + j] = r[j];
    }
    const __m512 c2 = _mm512_set1_ps(scale * 1.44269504088896341f);
    const int chunk = (ATT_PAIRS_PBUF / S < ATT_PAIRS_TBUF ? ATT_PAIRS_PBUF / S : ATT_PAIRS_TBUF) & ~1;
    for (int t0 = 0; t0 < T; t0 += chunk) {
        const int nt = T - t0 < chunk ? T - t0 : chunk, NTP = (nt + 1) & ~1;   /* e[s][NTP queries][16] */
        /* (1) raw scores */
        for (int t = 0; t < nt; t++) {
            __m512 qv[16];
            if (four) {
                const float *a = q + (p0 / 4) * rsq + (int64_t)(t0 + t) * ldq;
                for (int l = 0; l < 16; l++) qv[l] = _mm512_loadu_ps(a + (l >> 2) * rsq + (l & 3) * 16);
            } else if (np == 16)
                for (int l = 0; l < 16; l++) qv[l] = _mm512_loadu_ps(qb[l] + (int64_t)(t0 + t) * ldq);
            else
                for (int l = 0; l < 16; l++)
                    qv[l] = l < np ? _mm512_loadu_ps(qb[l] + (int64_t)(t0 + t) * ldq) : _mm512_setzero_ps();
            tr16x16(qv);
            __m512 m = _mm512_set1_ps(-INFINITY);
            int s = 0;
            for (; s + 4 <= S; s += 4) {
                __m512 ae[4], ao[4];
                for (int r = 0; r < 4; r++) ae[r] = ao[r] = _mm512_setzero_ps();
                for (int j = 0; j < 16; j += 2)
                    for (int r = 0; r < 4; r++) {
                        ae[r] = _mm512_fmadd_ps(qv[j], kt[(s + r) * 16 + j], ae[r]);
                        ao[r] = _mm512_fmadd_ps(qv[j + 1], kt[(s + r) * 16 + j + 1], ao[r]);
                    }
                for (int r = 0; r < 4; r++) {
                    const __m512 d = _mm512_add_ps(ae[r], ao[r]);
                    m = _mm512_max_ps(m, d);
                    _mm512_store_ps(e + ((int64_t)(s + r) * NTP + t) * 16, d);
                }
            }
            for (; s < S; s++) {
                __m512 ae = _mm512_setzero_ps(), ao = _mm512_setzero_ps();
                for (int j = 0; j < 16; j += 2) {
                    ae = _mm512_fmadd_ps(qv[j], kt[s * 16 + j], ae);
                    ao = _mm512_fmadd_ps(qv[j + 1], kt[s * 16 + j + 1], ao);
                }
                const __m512 d = _mm512_add_ps(ae, ao);
                m = _mm512_max_ps(m, d);
                _mm512_store_ps(e + ((int64_t)s * NTP + t) * 16, d);
            }
            mx[t] = m;
        }
        /* (2) the softmax's exponentials and 1 / sum, queries two at a time (a last odd one
         * with zeros), stored interleaved */
        for (int t = 0; t < nt; t += 2) {
            const int two = t + 1 < nt;
            const __m512 mc0 = _mm512_mul_ps(mx[t], c2), mc1 = two ? _mm512_mul_ps(mx[t + 1], c2) : mc0;
            __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
            for (int s = 0; s < S; s++) {
                float *es = e + ((int64_t)s * NTP + t) * 16;
                const __m512 x0 = exp2_512(_mm512_fmsub_ps(_mm512_load_ps(es), c2, mc0));
                const __m512 x1 =
                    two ? exp2_512(_mm512_fmsub_ps(_mm512_load_ps(es + 16), c2, mc1)) : _mm512_setzero_ps();
                sum0 = _mm512_add_ps(sum0, x0);
                sum1 = _mm512_add_ps(sum1, x1);
                _mm512_store_ps(es, _mm512_unpacklo_ps(x0, x1));
                _mm512_store_ps(es + 16, _mm512_unpackhi_ps(x0, x1));
            }
            _mm512_store_ps(inv + t * 16, _mm512_div_ps(_mm512_set1_ps(1.0f), sum0));
            if (two) _mm512_store_ps(inv + (t + 1) * 16, _mm512_div_ps(_mm512_set1_ps(1.0f), sum1));
            if (att)   /* the probabilities for backward */
                for (int u = 0; u <= two; u++)
                    for (int s = 0; s < S; s++)
                        for (int l = 0; l < np; l++)
                            att[ab[l] + (int64_t)(t0 + t + u) * S + s] =
                                e[((int64_t)s * NTP + t) * 16 + pairs_ioff(l) + u] * inv[(t + u) * 16 + l];
        }
        /* (3) out: per pair, query pairs in blocks of at most 8 (split evenly); then a last odd
         * query of all pairs at once */
        const int npr = nt / 2, nb = (npr + 7) / 8, base = nb ? npr / nb : 0, extra = nb ? npr % nb : 0;
        for (int l = 0; l < np; l++) {
            float *o = ob[l] + (int64_t)t0 * C;
            for (int i = 0, tq = 0; i < nb; i++) {
                const int n = base + (i < extra);
                switch (n) {
                    case 8: pairs_values2(o, vb[l], e, inv, l, tq, 8, S, C, ldkv, NTP); break;
                    case 7: pairs_values2(o, vb[l], e, inv, l, tq, 7, S, C, ldkv, NTP); break;
                    case 6: pairs_values2(o, vb[l], e, inv, l, tq, 6, S, C, ldkv, NTP); break;
                    case 5: pairs_values2(o, vb[l], e, inv, l, tq, 5, S, C, ldkv, NTP); break;
                    case 4: pairs_values2(o, vb[l], e, inv, l, tq, 4, S, C, ldkv, NTP); break;
                    case 3: pairs_values2(o, vb[l], e, inv, l, tq, 3, S, C, ldkv, NTP); break;
                    case 2: pairs_values2(o, vb[l], e, inv, l, tq, 2, S, C, ldkv, NTP); break;
                    default: pairs_values2(o, vb[l], e, inv, l, tq, 1, S, C, ldkv, NTP); break;
                }
                tq += 2 * n;
            }
        }
        if (nt & 1) {   /* the last odd query of every pair at once: np independent chains */
            const int tq = nt - 1;
            __m512 a[16];
            for (int l = 0; l < 16; l++) a[l] = _mm512_setzero_ps();
            for (int s = 0; s < S; s++) {
                const float *es = e + ((int64_t)s * NTP + tq) * 16;
                if (four) {
                    const float *vs = v + (p0 / 4) * rskv + (int64_t)s * ldkv;
                    for (int l = 0; l < 16; l++)
                        a[l] = _mm512_fmadd_ps(_mm512_set1_ps(es[pairs_ioff(l)]),
                                               _mm512_loadu_ps(vs + (l >> 2) * rskv + (l & 3) * 16), a[l]);
                } else
                    for (int l = 0; l < np; l++)
                        a[l] = _mm512_fmadd_ps(_mm512_set1_ps(es[pairs_ioff(l)]),
                                               _mm512_loadu_ps(vb[l] + (int64_t)s * ldkv), a[l]);
            }
            for (int l = 0; l < np; l++)
                _mm512_storeu_ps(ob[l] + (int64_t)(t0 + tq) * C, _mm512_mul_ps(a[l], _mm512_set1_ps(inv[tq * 16 + l])));
        }
    }
}
#define HAVE_ATT_AVX512 1
#endif

static void attention_bh(real *out, real *att, const real *q, const real *k, const real *v, int T, int S, int C,
                         int hs, int ldq, int ldkv, real scale) {
    if (att) {
        attention_bh_generic(out, att, q, k, v, T, S, C, hs, ldq, ldkv, scale);
        return;
    }
    /* no att to keep: the probabilities of a few queries at a time in a buffer of our own */
    real buf[ATT_SCRATCH];
    const int rows = S <= ATT_SCRATCH ? ATT_SCRATCH / S : 1;
    for (int t0 = 0; t0 < T; t0 += rows)
        attention_bh_generic(out + (int64_t)t0 * C, buf, q + (int64_t)t0 * ldq, k, v, T - t0 < rows ? T - t0 : rows, S, C,
                             hs, ldq, ldkv, scale);
}

int attention_rows_per_group(int NH) {
    int g = 16;
    while (g > 1 && NH > 0 && NH % 2 == 0) { NH /= 2; g /= 2; }
    return g;
}

void attention_forward(real *out, real *att, const real *q, const real *k, const real *v, int B, int T, int S, int C,
                       int NH, int ldq, int ldkv) {
    const int hs = C / NH;
    const real scale = (real)(1.0 / sqrt((double)hs));
    const int64_t pairs = (int64_t)B * NH;
    const int prof = gemm_profile_on();
    gemm_prof_mark pm;
    if (prof) gemm_profile_start(&pm);
#ifdef HAVE_ATT_AVX512
    if (hs == 16 && S <= ATT_PAIRS_SMAX && gemm_get_isa() == GEMM_ISA_AVX512) {
        /* one iteration per group of 16 (b, h) pairs: writes only their att and out */
        const int64_t groups = (pairs + 15) / 16;
#pragma omp parallel for schedule(static) if (pairs * T * S >= 4096)
        for (int64_t g = 0; g < groups; g++)
            attention_pairs_avx512(out, att, q, k, v, g * 16, (int)(pairs - g * 16 < 16 ? pairs - g * 16 : 16), T, S, C,
                                   NH, ldq, ldkv, scale);
    } else if (hs % 16 == 0 && hs <= ATT_HMAX && S <= ATT_SMAX && gemm_get_isa() == GEMM_ISA_AVX512) {
        /* one iteration per (b, group of ATT_G heads): writes only their att and out */
        const int ng = (NH + ATT_G - 1) / ATT_G;
        const int64_t items = (int64_t)B * ng;
#pragma omp parallel for schedule(static) if (pairs * T * S >= 4096)
        for (int64_t i = 0; i < items; i++) {
            const int64_t b = i / ng;
            const int h0 = (int)(i % ng) * ATT_G, nh = NH - h0 < ATT_G ? NH - h0 : ATT_G;
            attention_heads_avx512(out + b * T * C + h0 * hs, att ? att + (b * NH + h0) * T * S : NULL,
                                   q + b * T * ldq + h0 * hs, k + b * S * ldkv + h0 * hs, v + b * S * ldkv + h0 * hs, T,
                                   S, C, hs, nh, ldq, ldkv, scale);
        }
    } else
#endif
    /* one iteration per (b, h): writes att[b,h,:,:] and out[b,:,h*hs:(h+1)*hs] only */
#pragma omp parallel for schedule(static) if (pairs * T * S >= 4096)
    for (int64_t i = 0; i < pairs; i++) {
        const int64_t b = i / NH;
        const int h = (int)(i % NH);
        attention_bh(out + b * T * C + h * hs, att ? att + i * T * S : NULL, q + b * T * ldq + h * hs, k + b * S * ldkv + h * hs,
                     v + b * S * ldkv + h * hs, T, S, C, hs, ldq, ldkv, scale);
    }
    if (prof) {
        int threads = 1;
#ifdef _OPENMP
        if (pairs * T * S >= 4096 && !omp_in_parallel()) threads = omp_get_max_threads();
#endif
        gemm_profile_stop(GEMM_PROF_ATTENTION, 4.0 * (double)B * T * S * C, threads, &pm);
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
    tf_linear_forward(qkv, inp, wqkv, bqkv, BT, C, 3 * C);
    attention_forward(y, att, qkv, qkv + C, qkv + 2 * C, B, T, T, C, NH, 3 * C, 3 * C);
    tf_linear_forward(out, y, wo, bo, BT, C, C);
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
    tf_linear_forward(q, inp, wqkv, bqkv, BT, C, C);
    tf_linear_forward(kv, mem, wqkv + CC, bqkv ? bqkv + C : NULL, BS, C, 2 * C);
    attention_forward(y, att, q, kv, kv + C, B, T, S, C, NH, C, 2 * C);
    tf_linear_forward(out, y, wo, bo, BT, C, C);
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

#ifdef CM_REAL_IS_FLOAT
/* The inference form of block_forward (see transformer.h): no dropout, the attention
 * probabilities kept inside the kernel, the residual adds and ReLU fused into the Linear
 * products' stores. Only LN1, QKV, ATTY, RES1, (LNX, XQ, XKV, XATTY, RES2,) LN2, FCH_ACT (and
 * FCH with GELU) are written. */
static void block_forward_inference(real *out, tblock_acts *acts, const real *inp, const real *mem,
                                    const tblock_params *p, int B, int T, int S, int C, int NH, int F,
                                    cm_activation act) {
    real *const *a = acts->t;
    real *const *w = p->t;
    const int64_t BT = (int64_t)B * T, CC = (int64_t)C * C;
    /* x1 = x + SelfAttn(LN1(x)) */
    layernorm_forward(a[TBA_LN1], a[TBA_LN1_MEAN], a[TBA_LN1_RSTD], inp, w[TBP_LN1_W], w[TBP_LN1_B], BT, C);
    tf_linear_forward(a[TBA_QKV], a[TBA_LN1], w[TBP_ATTN_WQKV], w[TBP_ATTN_BQKV], BT, C, 3 * C);
    attention_forward(a[TBA_ATTY], T <= ATT_SCRATCH ? NULL : a[TBA_ATT], a[TBA_QKV], a[TBA_QKV] + C,
                      a[TBA_QKV] + 2 * C, B, T, T, C, NH, 3 * C, 3 * C);
    tf_linear_epilogue(a[TBA_RES1], a[TBA_ATTY], w[TBP_ATTN_WO], w[TBP_ATTN_BO], inp, 0, BT, C, C);
    const real *h = a[TBA_RES1];
    if (mem) {
        /* x2 = x1 + CrossAttn(LNX(x1), mem) */
        const real *xb = w[TBP_XATTN_BQKV];
        layernorm_forward(a[TBA_LNX], a[TBA_LNX_MEAN], a[TBA_LNX_RSTD], h, w[TBP_LNX_W], w[TBP_LNX_B], BT, C);
        tf_linear_forward(a[TBA_XQ], a[TBA_LNX], w[TBP_XATTN_WQKV], xb, BT, C, C);
        tf_linear_forward(a[TBA_XKV], mem, w[TBP_XATTN_WQKV] + CC, xb ? xb + C : NULL, (int64_t)B * S, C, 2 * C);
        attention_forward(a[TBA_XATTY], S <= ATT_SCRATCH ? NULL : a[TBA_XATT], a[TBA_XQ], a[TBA_XKV], a[TBA_XKV] + C,
                          B, T, S, C, NH, C, 2 * C);
        tf_linear_epilogue(a[TBA_RES2], a[TBA_XATTY], w[TBP_XATTN_WO], w[TBP_XATTN_BO], h, 0, BT, C, C);
        h = a[TBA_RES2];
    }
    /* out = h + Linear(act(Linear(LN2(h)))) */
    layernorm_forward(a[TBA_LN2], a[TBA_LN2_MEAN], a[TBA_LN2_RSTD], h, w[TBP_LN2_W], w[TBP_LN2_B], BT, C);
    if (act == CM_ACT_RELU) tf_linear_epilogue(a[TBA_FCH_ACT], a[TBA_LN2], w[TBP_FC_W], w[TBP_FC_B], NULL, 1, BT, C, F);
    else {
        tf_linear_forward(a[TBA_FCH], a[TBA_LN2], w[TBP_FC_W], w[TBP_FC_B], BT, C, F);
        gelu_forward(a[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    }
    tf_linear_epilogue(out, a[TBA_FCH_ACT], w[TBP_PROJ_W], w[TBP_PROJ_B], h, 0, BT, F, C);
}
#endif

/* One body for both kinds: the decoder adds the cross-attention sub-block (mem != NULL). */
static void block_forward(real *out, tblock_acts *acts, const real *inp, const real *mem, const tblock_params *p,
                          int B, int T, int S, int C, int NH, int F, cm_activation act, real dropout, uint64_t seed) {
#ifdef CM_REAL_IS_FLOAT
    if (dropout == 0 && gemm_bf16_cache_open()) {
        block_forward_inference(out, acts, inp, mem, p, B, T, S, C, NH, F, act);
        return;
    }
#endif
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
    tf_linear_forward(a[TBA_FCH], a[TBA_LN2], w[TBP_FC_W], w[TBP_FC_B], BT, C, F);
    if (act == CM_ACT_RELU) relu_forward(a[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    else gelu_forward(a[TBA_FCH_ACT], a[TBA_FCH], BT * F);
    dropout_forward(a[TBA_FCH_DROP], acts->mask, a[TBA_FCH_ACT], BT * F, dropout, seed);
    tf_linear_forward(a[TBA_MLP_OUT], a[TBA_FCH_DROP], w[TBP_PROJ_W], w[TBP_PROJ_B], BT, F, C);
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
