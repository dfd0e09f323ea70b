/* ops.c: forward/backward of the basic layers (see ops.h for conventions and sizes).
 * Linear goes through gemm.c. The elementwise, batch-norm and message-passing kernels are
 * vectorised per CPU (dispatch.h) and summed in fixed orders, so every result is
 * the same for any thread count; the _ref functions are the plain loops they are tested
 * against (csrc/tests/test_nn_fast.c). */
#include "ops.h"
#include "gemm.h"
#include "dispatch.h"   /* elementwise kernels: one body, three paths picked by the CPU */
#include <math.h>
#include <string.h>
#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

double cm_uniform(uint64_t seed, uint64_t i) {
    return (double)(mix64(seed ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0);
}

/* Work split for elementwise loops: fixed chunks (their boundaries never depend on the thread
 * count), and no team for small arrays, where waking threads costs more than the loop. */
#define EW_CHUNK 16384
#define EW_PARALLEL_MIN 32768   /* 128 KB of floats: below that waking a team costs more than it saves (on a busy machine a descheduled thread costs more still: 262144 there) */

/* ---------------------------------------------------------------- linear */
/* The products run in gemm.c (cache-blocked, SIMD, OpenMP); the _ref versions are the plain
 * loops they are tested against (tests/test_gemm.py). */

void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int64_t B, int C, int OC) {
    /* out[B,OC] = inp[B,C] @ weight[OC,C]^T + bias */
    gemm(out, OC, inp, C, 1, weight, 1, C, bias, B, OC, C, 0);
}

/* out[j] += sum_b in[b * ld + j] for j < w (<= 32), in double, rows in order */
CM_INLINE void colsum_w(real *out, const real *in, int64_t B, int ld, int w) {
    double acc[32];
    for (int j = 0; j < w; j++) acc[j] = 0;
    for (int64_t b = 0; b < B; b++)
        for (int j = 0; j < w; j++) acc[j] += in[b * ld + j];
    for (int j = 0; j < w; j++) out[j] += (real)acc[j];
}
CM_INLINE void colsum_body(real *out, const real *in, int64_t B, int ld, int w) {
    if (w == 32) colsum_w(out, in, B, ld, 32);   /* a constant width vectorises */
    else colsum_w(out, in, B, ld, w);
}
CM_DISPATCH(colsum, colsum_body, (real *out, const real *in, int64_t B, int ld, int w), (out, in, B, ld, w))

static void linear_backward_impl(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp,
                                 const real *weight, int64_t B, int C, int OC, int accumulate_dinp) {
    /* dinp[B,C] (+)= dout[B,OC] @ weight[OC,C] */
    if (dinp) gemm(dinp, C, dout, OC, 1, weight, C, 1, NULL, B, C, OC, accumulate_dinp);
    /* dweight[OC,C] += dout^T[OC,B] @ inp[B,C] */
    gemm(dweight, C, dout, 1, OC, inp, C, 1, NULL, OC, C, B, 1);
    /* dbias[oc] += sum_b dout[b,oc]: column sums in double (B is thousands of rows, whose float
     * sum would lose digits), a block of columns per thread, rows in order */
    if (dbias) {
        enum { COLS = 32 };
#pragma omp parallel for schedule(static) if ((int64_t)OC * B >= 32768)
        for (int o0 = 0; o0 < OC; o0 += COLS) {
            const int w = OC - o0 < COLS ? OC - o0 : COLS;
            colsum(dbias + o0, dout + o0, B, OC, w);
        }
    }
}

void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                     int64_t B, int C, int OC) {
    linear_backward_impl(dinp, dweight, dbias, dout, inp, weight, B, C, OC, 1);
}

void linear_backward_set(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                         int64_t B, int C, int OC) {
    linear_backward_impl(dinp, dweight, dbias, dout, inp, weight, B, C, OC, 0);
}

void linear_forward_ref(real *out, const real *inp, const real *weight, const real *bias, int64_t B, int C, int OC) {
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

void linear_backward_ref(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                         int64_t B, int C, int OC) {
    if (dinp)
        for (int64_t b = 0; b < B; b++) {
            const real *g = dout + b * OC;
            real *dx = dinp + b * C;
            for (int oc = 0; oc < OC; oc++) {
                const real *w = weight + (int64_t)oc * C;
                real go = g[oc];
                for (int c = 0; c < C; c++) dx[c] += go * w[c];
            }
        }
    for (int oc = 0; oc < OC; oc++) {
        real *dw = dweight + (int64_t)oc * C;
        double db = 0;
        for (int64_t b = 0; b < B; b++) {
            real go = dout[b * OC + oc];
            const real *x = inp + b * C;
            for (int c = 0; c < C; c++) dw[c] += go * x[c];
            db += go;
        }
        if (dbias) dbias[oc] += (real)db;
    }
}

/* ---------------------------------------------------------------- GELU */

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT2PI 0.39894228040143267794

#ifdef CM_REAL_IS_FLOAT
/* exp(x) for x <= 0 in float: x = n ln2 + r, |r| <= ln2/2, Cephes' expf polynomial for e^r
 * (about 1 ulp); clamped below at -87 (e^-87 ~ 1.6e-38, the smallest normal float's range). */
CM_INLINE float cm_expf_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   /* round to nearest via 1.5 * 2^23 */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    float y = q * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

/* Phi(x) = erfc(-x / sqrt 2) / 2 written with the scaled erfcx(z) = e^{z^2} erfc(z): with
 * z = |x| / sqrt 2, t = 1 / (1 + z / 2) in (0, 1] and u = 2t - 1,
 *     erfc(z) = t Q(u) e^{-x^2 / 2},
 * Q a degree-10 polynomial fitted (Chebyshev, weighted to relative error) to erfcx(z) / t on all
 * of z >= 0: relative error 4e-8 in exact arithmetic, ~2e-7 in float. The tail x << 0 keeps its
 * relative accuracy (1 + erf(x) would cancel), and e^{-x^2/2} is the one exp, shared with the
 * density phi(x) = e^{-x^2/2} / sqrt(2 pi) that the derivative needs (phi_out, may be NULL). */
CM_INLINE float cm_gelu_cdf(float x, float *phi_out) {
    float z = (x < 0 ? -x : x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float u = 2.0f * t - 1.0f;
    float q = 4.337968293e-05f;
    q = q * u - 3.646446882e-05f;
    q = q * u - 3.022030377e-04f;
    q = q * u + 4.303876586e-04f;
    q = q * u + 1.531420349e-03f;
    q = q * u - 3.243260370e-03f;
    q = q * u - 1.075235861e-02f;
    q = q * u + 1.822162219e-02f;
    q = q * u + 1.397358152e-01f;
    q = q * u + 3.435803218e-01f;
    q = q * u + 5.107913555e-01f;
    float g = cm_expf_neg(-0.5f * x * x);
    float half_erfc = 0.5f * t * q * g;
    if (phi_out) *phi_out = 0.39894228040143268f * g;
    return x < 0 ? half_erfc : 1.0f - half_erfc;
}

/* Blocks of GELU_ILP elements: the constant inner trip count becomes several vectors whose long
 * polynomial chains the compiler interleaves (one vector at a time is latency-bound). */
#define GELU_ILP 64
CM_INLINE void gelu_fwd_body(real *out, const real *inp, int64_t n) {
    int64_t i = 0;
    for (; i + GELU_ILP <= n; i += GELU_ILP)
        for (int j = 0; j < GELU_ILP; j++) out[i + j] = inp[i + j] * cm_gelu_cdf(inp[i + j], NULL);
    for (; i < n; i++) out[i] = inp[i] * cm_gelu_cdf(inp[i], NULL);
}
CM_INLINE void gelu_bwd_body(real *dinp, const real *dout, const real *inp, int64_t n) {
    int64_t i = 0;
    for (; i + GELU_ILP <= n; i += GELU_ILP)
        for (int j = 0; j < GELU_ILP; j++) {
            float phi, cdf = cm_gelu_cdf(inp[i + j], &phi);
            dinp[i + j] += dout[i + j] * (cdf + inp[i + j] * phi);
        }
    for (; i < n; i++) {
        float phi, cdf = cm_gelu_cdf(inp[i], &phi);
        dinp[i] += dout[i] * (cdf + inp[i] * phi);
    }
}
#else
/* double builds (the gradient tests): the library functions, exact to double precision */
CM_INLINE void gelu_fwd_body(real *out, const real *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = inp[i] * 0.5 * erfc(-inp[i] * INV_SQRT2);
}
CM_INLINE void gelu_bwd_body(real *dinp, const real *dout, const real *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = inp[i], cdf = 0.5 * erfc(-x * INV_SQRT2), pdf = INV_SQRT2PI * exp(-0.5 * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}
#endif
CM_DISPATCH(gelu_fwd_generic, gelu_fwd_body, (real *out, const real *inp, int64_t n), (out, inp, n))
CM_DISPATCH(gelu_bwd_generic, gelu_bwd_body, (real *dinp, const real *dout, const real *inp, int64_t n),
            (dinp, dout, inp, n))

#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
/* The AVX-512 path of GELU (and of GELU + dropout below), written with intrinsics: the same
 * erfcx polynomial and exp as cm_gelu_cdf, 16 values at a time, with 1 / (1 + z/2) from the
 * 14-bit reciprocal and one Newton step (within an ulp) instead of a divide. The compiler's
 * vectorisation of the scalar body left these ~1.4x slower (GELU + dropout was 15% of a small
 * DICE step). Tails go through masked loads and stores, so an element's bits never depend on
 * where a chunk or a row block starts. */
#define CM_GELU_AVX512 1
#define GELU_TGT __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma")))
GELU_TGT static inline __attribute__((always_inline)) __m512 expneg16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic), magic);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 q = _mm512_set1_ps(1.9875691500e-4f);
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.3981999507e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3334519073e-3f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1665795894e-2f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666665459e-1f));
    q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(q, r), r, r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
}
/* Phi(x) and phi(x) of 16 values (see cm_gelu_cdf) */
GELU_TGT static inline __attribute__((always_inline)) __m512 gelu_cdf16(__m512 x, __m512 *pdf) {
    const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    const __m512 den = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f));
    __m512 t = _mm512_rcp14_ps(den);
    t = _mm512_mul_ps(t, _mm512_fnmadd_ps(den, t, _mm512_set1_ps(2.0f)));
    const __m512 u = _mm512_fmsub_ps(_mm512_set1_ps(2.0f), t, _mm512_set1_ps(1.0f));
    __m512 q = _mm512_set1_ps(4.337968293e-05f);
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-3.646446882e-05f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-3.022030377e-04f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(4.303876586e-04f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(1.531420349e-03f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-3.243260370e-03f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(-1.075235861e-02f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(1.822162219e-02f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(1.397358152e-01f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(3.435803218e-01f));
    q = _mm512_fmadd_ps(q, u, _mm512_set1_ps(5.107913555e-01f));
    const __m512 g = expneg16(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), x), x));
    const __m512 half_erfc = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), t), q), g);
    *pdf = _mm512_mul_ps(_mm512_set1_ps(0.39894228040143268f), g);
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.0f), half_erfc), half_erfc);
}
static inline __mmask16 tail_mask16(int64_t left) { return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1); }

GELU_TGT static void gelu_fwd_avx512(float *out, const float *inp, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask16(n - i);
        const __m512 x = _mm512_maskz_loadu_ps(k, inp + i);
        __m512 pdf;
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(x, gelu_cdf16(x, &pdf)));
    }
}
GELU_TGT static void gelu_bwd_avx512(float *dinp, const float *dout, const float *inp, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask16(n - i);
        const __m512 x = _mm512_maskz_loadu_ps(k, inp + i);
        __m512 pdf;
        const __m512 cdf = gelu_cdf16(x, &pdf);
        const __m512 d = _mm512_fmadd_ps(x, pdf, cdf);
        _mm512_mask_storeu_ps(dinp + i, k, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, dout + i), d,
                                                           _mm512_maskz_loadu_ps(k, dinp + i)));
    }
}
#endif

static void gelu_fwd_chunk(real *out, const real *inp, int64_t n) {
#ifdef CM_GELU_AVX512
    if (gemm_get_isa() == GEMM_ISA_AVX512) { gelu_fwd_avx512(out, inp, n); return; }
#endif
    gelu_fwd_generic(out, inp, n);
}
static void gelu_bwd_chunk(real *dinp, const real *dout, const real *inp, int64_t n) {
#ifdef CM_GELU_AVX512
    if (gemm_get_isa() == GEMM_ISA_AVX512) { gelu_bwd_avx512(dinp, dout, inp, n); return; }
#endif
    gelu_bwd_generic(dinp, dout, inp, n);
}

void gelu_forward(real *out, const real *inp, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK) gelu_fwd_chunk(out + i, inp + i, n - i < EW_CHUNK ? n - i : EW_CHUNK);
}

void gelu_backward(real *dinp, const real *dout, const real *inp, int64_t n) {
    /* d/dx x*Phi(x) = Phi(x) + x*phi(x) */
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK)
        gelu_bwd_chunk(dinp + i, dout + i, inp + i, n - i < EW_CHUNK ? n - i : EW_CHUNK);
}

/* Phi(x) = erfc(-x / sqrt 2) / 2 in double: unlike (1 + erf) / 2, accurate in the far tail */
void gelu_forward_ref(real *out, const real *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = inp[i];
        out[i] = (real)(0.5 * x * erfc(-x * INV_SQRT2));
    }
}

void gelu_backward_ref(real *dinp, const real *dout, const real *inp, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double x = inp[i];
        double cdf = 0.5 * erfc(-x * INV_SQRT2), pdf = INV_SQRT2PI * exp(-0.5 * x * x);
        dinp[i] += (real)(dout[i] * (cdf + x * pdf));
    }
}

/* ---------------------------------------------------------------- batch norm
 * Threads take blocks of BN_COLS channels and walk all rows of them, so every channel is
 * summed over rows in row order (in double) by one thread: row-major memory is read a cache
 * line per row, and results do not depend on the thread count. */

#define BN_COLS 32

CM_INLINE void bn_stats_w(double *mean, double *var, const real *inp, int64_t B, int C, int c0, int w) {
    double s[BN_COLS], ss[BN_COLS];
    for (int j = 0; j < w; j++) s[j] = ss[j] = 0;
    for (int64_t b = 0; b < B; b++) {
        const real *x = inp + b * C + c0;
        for (int j = 0; j < w; j++) s[j] += x[j];
    }
    for (int j = 0; j < w; j++) mean[j] = s[j] / (double)B;
    for (int64_t b = 0; b < B; b++) {
        const real *x = inp + b * C + c0;
        for (int j = 0; j < w; j++) {
            double d = x[j] - mean[j];
            ss[j] += d * d;
        }
    }
    for (int j = 0; j < w; j++) var[j] = ss[j];
}
/* a constant width lets the compiler unroll and vectorise across the channels */
CM_INLINE void bn_stats_body(double *mean, double *var, const real *inp, int64_t B, int C, int c0, int w) {
    if (w == BN_COLS) bn_stats_w(mean, var, inp, B, C, c0, BN_COLS);
    else bn_stats_w(mean, var, inp, B, C, c0, w);
}
CM_DISPATCH(bn_stats, bn_stats_body, (double *mean, double *var, const real *inp, int64_t B, int C, int c0, int w),
            (mean, var, inp, B, C, c0, w))

CM_INLINE void bn_apply_w(real *out, const real *inp, const double *shift, const double *mul, const real *beta,
                             int64_t B, int C, int c0, int w) {
    for (int64_t b = 0; b < B; b++) {
        const real *x = inp + b * C + c0;
        real *o = out + b * C + c0;
        for (int j = 0; j < w; j++) o[j] = (real)((x[j] - shift[j]) * mul[j] + beta[c0 + j]);
    }
}
/* a constant width lets the compiler unroll and vectorise across the channels */
CM_INLINE void bn_apply_body(real *out, const real *inp, const double *shift, const double *mul, const real *beta,
                             int64_t B, int C, int c0, int w) {
    if (w == BN_COLS) bn_apply_w(out, inp, shift, mul, beta, B, C, c0, BN_COLS);
    else bn_apply_w(out, inp, shift, mul, beta, B, C, c0, w);
}
CM_DISPATCH(bn_apply, bn_apply_body, (real *out, const real *inp, const double *shift, const double *mul, const real *beta, int64_t B,
                       int C, int c0, int w),
            (out, inp, shift, mul, beta, B, C, c0, w))

void batchnorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *gamma, const real *beta,
                       int64_t B, int C, real eps, real *running_mean, real *running_var, real momentum) {
#pragma omp parallel for schedule(static) if (B * C >= EW_PARALLEL_MIN)
    for (int c0 = 0; c0 < C; c0 += BN_COLS) {
        const int w = C - c0 < BN_COLS ? C - c0 : BN_COLS;
        double m[BN_COLS], ss[BN_COLS], mul[BN_COLS];
        bn_stats(m, ss, inp, B, C, c0, w);
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            double var = ss[j] / (double)B, r = 1.0 / sqrt(var + eps);
            mean[c] = (real)m[j];
            rstd[c] = (real)r;
            /* (x - m) * r * gamma, with r * gamma formed once: within an ulp of the reference */
            mul[j] = r * gamma[c];
            if (running_mean) {
                double unbiased = B > 1 ? ss[j] / (double)(B - 1) : var;
                running_mean[c] = (real)((1 - momentum) * running_mean[c] + momentum * m[j]);
                running_var[c] = (real)((1 - momentum) * running_var[c] + momentum * unbiased);
            }
        }
        bn_apply(out, inp, m, mul, beta, B, C, c0, w);
    }
}

CM_INLINE void bn_bwd_sums_w(double *sd, double *sdx, const real *dout, const real *inp, const real *mean,
                                const real *rstd, int64_t B, int C, int c0, int w) {
    double a[BN_COLS], bsum[BN_COLS], m[BN_COLS], r[BN_COLS];
    for (int j = 0; j < w; j++) { a[j] = bsum[j] = 0; m[j] = mean[c0 + j]; r[j] = rstd[c0 + j]; }
    for (int64_t b = 0; b < B; b++) {
        const real *g = dout + b * C + c0, *x = inp + b * C + c0;
        for (int j = 0; j < w; j++) {
            double gj = g[j];
            a[j] += gj;
            bsum[j] += gj * ((x[j] - m[j]) * r[j]);
        }
    }
    for (int j = 0; j < w; j++) { sd[j] = a[j]; sdx[j] = bsum[j]; }
}
/* a constant width lets the compiler unroll and vectorise across the channels */
CM_INLINE void bn_bwd_sums_body(double *sd, double *sdx, const real *dout, const real *inp, const real *mean,
                                const real *rstd, int64_t B, int C, int c0, int w) {
    if (w == BN_COLS) bn_bwd_sums_w(sd, sdx, dout, inp, mean, rstd, B, C, c0, BN_COLS);
    else bn_bwd_sums_w(sd, sdx, dout, inp, mean, rstd, B, C, c0, w);
}
CM_DISPATCH(bn_bwd_sums, bn_bwd_sums_body, (double *sd, double *sdx, const real *dout, const real *inp, const real *mean,
                          const real *rstd, int64_t B, int C, int c0, int w),
            (sd, sdx, dout, inp, mean, rstd, B, C, c0, w))

CM_INLINE void bn_bwd_apply_w(real *dinp, const real *dout, const real *inp, const real *mean, const real *rstd,
                                 const double *k, const double *md, const double *mdx, int64_t B, int C, int c0, int w) {
    double m[BN_COLS], r[BN_COLS];
    for (int j = 0; j < w; j++) { m[j] = mean[c0 + j]; r[j] = rstd[c0 + j]; }
    for (int64_t b = 0; b < B; b++) {
        const real *g = dout + b * C + c0, *x = inp + b * C + c0;
        real *d = dinp + b * C + c0;
        for (int j = 0; j < w; j++) {
            double xh = (x[j] - m[j]) * r[j];
            d[j] += (real)(k[j] * (g[j] - md[j] - xh * mdx[j]));
        }
    }
}
/* a constant width lets the compiler unroll and vectorise across the channels */
CM_INLINE void bn_bwd_apply_body(real *dinp, const real *dout, const real *inp, const real *mean, const real *rstd,
                                 const double *k, const double *md, const double *mdx, int64_t B, int C, int c0, int w) {
    if (w == BN_COLS) bn_bwd_apply_w(dinp, dout, inp, mean, rstd, k, md, mdx, B, C, c0, BN_COLS);
    else bn_bwd_apply_w(dinp, dout, inp, mean, rstd, k, md, mdx, B, C, c0, w);
}
CM_DISPATCH(bn_bwd_apply, bn_bwd_apply_body, (real *dinp, const real *dout, const real *inp, const real *mean, const real *rstd,
                           const double *k, const double *md, const double *mdx, int64_t B, int C, int c0, int w),
            (dinp, dout, inp, mean, rstd, k, md, mdx, B, C, c0, w))

void batchnorm_backward(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp, const real *gamma,
                        const real *mean, const real *rstd, int64_t B, int C) {
    /* with xhat = (x - mean) * rstd:
     * dx = rstd * gamma * (dout - mean(dout) - xhat * mean(dout * xhat)) */
#pragma omp parallel for schedule(static) if (B * C >= EW_PARALLEL_MIN)
    for (int c0 = 0; c0 < C; c0 += BN_COLS) {
        const int w = C - c0 < BN_COLS ? C - c0 : BN_COLS;
        double sd[BN_COLS], sdx[BN_COLS], k[BN_COLS], md[BN_COLS], mdx[BN_COLS];
        bn_bwd_sums(sd, sdx, dout, inp, mean, rstd, B, C, c0, w);
        for (int j = 0; j < w; j++) {
            const int c = c0 + j;
            dgamma[c] += (real)sdx[j];
            dbeta[c] += (real)sd[j];
            md[j] = sd[j] / (double)B;
            mdx[j] = sdx[j] / (double)B;
            k[j] = (double)rstd[c] * gamma[c];
        }
        bn_bwd_apply(dinp, dout, inp, mean, rstd, k, md, mdx, B, C, c0, w);
    }
}

void batchnorm_forward_ref(real *out, real *mean, real *rstd, const real *inp, const real *gamma, const real *beta,
                           int64_t B, int C, real eps, real *running_mean, real *running_var, real momentum) {
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

void batchnorm_backward_ref(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp, const real *gamma,
                            const real *mean, const real *rstd, int64_t B, int C) {
    for (int c = 0; c < C; c++) {
        double sd = 0, sdx = 0;
        for (int64_t b = 0; b < B; b++) {
            double g = dout[b * C + c], xh = ((double)inp[b * C + c] - mean[c]) * rstd[c];
            sd += g;
            sdx += g * xh;
        }
        dgamma[c] += (real)sdx;
        dbeta[c] += (real)sd;
        double md = sd / (double)B, mdx = sdx / (double)B, k = (double)rstd[c] * gamma[c];
        for (int64_t b = 0; b < B; b++) {
            double xh = ((double)inp[b * C + c] - mean[c]) * rstd[c];
            dinp[b * C + c] += (real)(k * (dout[b * C + c] - md - xh * mdx));
        }
    }
}

void batchnorm_inference(real *out, const real *inp, const real *gamma, const real *beta, const real *running_mean,
                         const real *running_var, int64_t B, int C, real eps) {
#pragma omp parallel for schedule(static) if (B * C >= EW_PARALLEL_MIN)
    for (int64_t b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            out[b * C + c] = (real)((inp[b * C + c] - running_mean[c]) / sqrt((double)running_var[c] + eps) * gamma[c] + beta[c]);
}

/* ---------------------------------------------------------------- grouped rows
 * Rows that are copies of U distinct rows (one-hot inputs: a handful of device or edge types),
 * counted count[u] times: batch norm over the R rows computed on the distinct rows alone. */

void batchnorm_grouped_forward(real *out, real *mean, real *rstd, const real *inp, const int64_t *count,
                               const real *gamma, const real *beta, int64_t U, int C, int64_t R, real eps,
                               real *running_mean, real *running_var, real momentum) {
    for (int c = 0; c < C; c++) {
        double s = 0, ss = 0;
        for (int64_t u = 0; u < U; u++) s += (double)count[u] * inp[u * C + c];
        double m = s / (double)R;
        for (int64_t u = 0; u < U; u++) {
            double d = inp[u * C + c] - m;
            ss += (double)count[u] * d * d;
        }
        double var = ss / (double)R, r = 1.0 / sqrt(var + eps);
        mean[c] = (real)m;
        rstd[c] = (real)r;
        for (int64_t u = 0; u < U; u++) out[u * C + c] = (real)((inp[u * C + c] - m) * (r * gamma[c]) + beta[c]);
        if (running_mean) {
            double unbiased = R > 1 ? ss / (double)(R - 1) : var;
            running_mean[c] = (real)((1 - momentum) * running_mean[c] + momentum * m);
            running_var[c] = (real)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
}

void batchnorm_grouped_backward(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp,
                                const int64_t *count, const real *gamma, const real *mean, const real *rstd, int64_t U,
                                int C, int64_t R) {
    /* dout[u] and dinp[u] are sums over the count[u] copies of row u; per row
     * dx = k (dout - mean(dout) - xhat mean(dout xhat)), so the sum over the copies is
     * k (dout[u] - count[u] mean(dout) - count[u] xhat[u] mean(dout xhat)) */
    for (int c = 0; c < C; c++) {
        double sd = 0, sdx = 0;
        for (int64_t u = 0; u < U; u++) {
            double g = dout[u * C + c], xh = ((double)inp[u * C + c] - mean[c]) * rstd[c];
            sd += g;
            sdx += g * xh;
        }
        dgamma[c] += (real)sdx;
        dbeta[c] += (real)sd;
        double md = sd / (double)R, mdx = sdx / (double)R, k = (double)rstd[c] * gamma[c];
        for (int64_t u = 0; u < U; u++) {
            double xh = ((double)inp[u * C + c] - mean[c]) * rstd[c], n = (double)count[u];
            dinp[u * C + c] += (real)(k * (dout[u * C + c] - n * md - n * xh * mdx));
        }
    }
}

CM_INLINE void gather_rows_body(real *out, const real *in, const int64_t *idx, int64_t r0, int64_t r1, int C) {
    for (int64_t r = r0; r < r1; r++) {
        const real *x = in + idx[r] * C;
        real *o = out + r * C;
        for (int c = 0; c < C; c++) o[c] = x[c];
    }
}
CM_DISPATCH(gather_rows_chunk, gather_rows_body, (real *out, const real *in, const int64_t *idx, int64_t r0, int64_t r1, int C),
            (out, in, idx, r0, r1, C))

void gather_rows_forward(real *out, const real *in, const int64_t *idx, int64_t R, int C) {
#pragma omp parallel for schedule(static) if (R * C >= EW_PARALLEL_MIN)
    for (int64_t r = 0; r < R; r += 256) gather_rows_chunk(out, in, idx, r, r + 256 < R ? r + 256 : R, C);
}

#define GR_COLS 32
CM_INLINE void gather_rows_bwd_body(real *din, const real *dout, const int64_t *idx, int64_t R, int C, int c0, int w) {
    for (int64_t r = 0; r < R; r++) {
        const real *g = dout + r * C + c0;
        real *d = din + idx[r] * C + c0;
        for (int j = 0; j < w; j++) d[j] += g[j];
    }
}
CM_DISPATCH(gather_rows_bwd_cols, gather_rows_bwd_body, (real *din, const real *dout, const int64_t *idx, int64_t R, int C, int c0, int w),
            (din, dout, idx, R, C, c0, w))

void gather_rows_backward(real *din, const real *dout, const int64_t *idx, int64_t R, int C) {
    /* din[idx[r]] += dout[r]: threads own blocks of columns and walk the rows in order, so every
     * sum has one writer and a fixed order */
#pragma omp parallel for schedule(static) if (R * C >= EW_PARALLEL_MIN)
    for (int c0 = 0; c0 < C; c0 += GR_COLS) gather_rows_bwd_cols(din, dout, idx, R, C, c0, C - c0 < GR_COLS ? C - c0 : GR_COLS);
}

/* ---------------------------------------------------------------- dropout
 * keep(i) = cm_uniform(seed, i) >= p, tested in integers: cm_uniform is (h >> 11) * 2^-53 with
 * h = mix64(seed ^ mix64(i)), and p * 2^53 is exact for a float p, so the test is
 * (h >> 11) >= ceil(p * 2^53), with the very same outcome. */

static uint64_t dropout_threshold(real p) { return (uint64_t)ceil((double)p * 9007199254740992.0); }

CM_INLINE uint64_t mix64_inline(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

CM_INLINE void dropout_fwd_body(real *out, uint8_t *mask, const real *inp, int64_t i0, int64_t n, uint64_t thr,
                                real scale, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        uint8_t keep = (mix64_inline(seed ^ mix64_inline((uint64_t)(i0 + i))) >> 11) >= thr;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : (real)0;
    }
}
CM_DISPATCH(dropout_fwd_chunk, dropout_fwd_body, (real *out, uint8_t *mask, const real *inp, int64_t i0, int64_t n, uint64_t thr,
                                real scale, uint64_t seed),
            (out, mask, inp, i0, n, thr, scale, seed))

void dropout_forward(real *out, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed) {
    real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
    uint64_t thr = dropout_threshold(p);
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK)
        dropout_fwd_chunk(out + i, mask + i, inp + i, i, n - i < EW_CHUNK ? n - i : EW_CHUNK, thr, scale, seed);
}

CM_INLINE void dropout_bwd_body(real *dinp, const real *dout, const uint8_t *mask, int64_t n, real scale) {
    for (int64_t i = 0; i < n; i++) dinp[i] += mask[i] ? dout[i] * scale : (real)0;
}
CM_DISPATCH(dropout_bwd_chunk, dropout_bwd_body, (real *dinp, const real *dout, const uint8_t *mask, int64_t n, real scale),
            (dinp, dout, mask, n, scale))

void dropout_backward(real *dinp, const real *dout, const uint8_t *mask, int64_t n, real p) {
    real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK)
        dropout_bwd_chunk(dinp + i, dout + i, mask + i, n - i < EW_CHUNK ? n - i : EW_CHUNK, scale);
}

void dropout_forward_ref(real *out, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed) {
    real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
    for (int64_t i = 0; i < n; i++) {
        uint8_t keep = cm_uniform(seed, (uint64_t)i) >= (double)p;
        mask[i] = keep;
        out[i] = keep ? inp[i] * scale : (real)0;
    }
}

/* ---------------------------------------------------------------- GELU + dropout, fused
 * The MLP's middle in one pass that also keeps its local derivative, so backward is a single
 * multiply (and needs neither the GELU input nor the mask). Blocks go through the stack: the
 * derivative may overwrite the input in place, and local arrays keep the loops vectorisable. */

#ifdef CM_REAL_IS_FLOAT
CM_INLINE real gelu_cdf_pdf(real x, real *pdf) { return cm_gelu_cdf(x, pdf); }
#else
CM_INLINE real gelu_cdf_pdf(real x, real *pdf) {
    *pdf = INV_SQRT2PI * exp(-0.5 * x * x);
    return 0.5 * erfc(-x * INV_SQRT2);
}
#endif

#define GD_BLOCK 256
CM_INLINE void gelu_dropout_fwd_body(real *out, real *deriv, uint8_t *mask, const real *inp, int64_t i0, int64_t n,
                                     int dropout, uint64_t thr, real scale, uint64_t seed) {
    real x[GD_BLOCK], o[GD_BLOCK], d[GD_BLOCK];
    uint8_t keep[GD_BLOCK];
    for (int64_t b = 0; b < n; b += GD_BLOCK) {
        const int w = (int)(n - b < GD_BLOCK ? n - b : GD_BLOCK);
        for (int j = 0; j < w; j++) x[j] = inp[b + j];
        for (int j = 0; j < w; j++) {
            real pdf, cdf = gelu_cdf_pdf(x[j], &pdf);
            o[j] = x[j] * cdf;
            d[j] = cdf + x[j] * pdf;
        }
        if (dropout) {
            for (int j = 0; j < w; j++)
                keep[j] = (mix64_inline(seed ^ mix64_inline((uint64_t)(i0 + b + j))) >> 11) >= thr;
            for (int j = 0; j < w; j++) {
                o[j] = keep[j] ? o[j] * scale : (real)0;
                d[j] = keep[j] ? d[j] * scale : (real)0;
            }
            if (mask)
                for (int j = 0; j < w; j++) mask[b + j] = keep[j];
        }
        for (int j = 0; j < w; j++) out[b + j] = o[j];
        for (int j = 0; j < w; j++) deriv[b + j] = d[j];
    }
}
CM_DISPATCH(gelu_dropout_fwd_generic, gelu_dropout_fwd_body,
            (real *out, real *deriv, uint8_t *mask, const real *inp, int64_t i0, int64_t n, int dropout, uint64_t thr,
             real scale, uint64_t seed),
            (out, deriv, mask, inp, i0, n, dropout, thr, scale, seed))

#ifdef CM_GELU_AVX512
GELU_TGT static inline __attribute__((always_inline)) __m512i mix64_16(__m512i x) {   /* mix64 of 8 lanes */
    x = _mm512_add_epi64(x, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ull));
    x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 30)), _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ull));
    x = _mm512_mullo_epi64(_mm512_xor_si512(x, _mm512_srli_epi64(x, 27)), _mm512_set1_epi64((long long)0x94d049bb133111ebull));
    return _mm512_xor_si512(x, _mm512_srli_epi64(x, 31));
}
/* gelu_dropout_fwd_body with intrinsics: the mask of element i is (mix64(seed ^ mix64(i)) >> 11)
 * >= thr on 8 64-bit lanes at a time, as the scalar test */
GELU_TGT static void gelu_dropout_fwd_avx512(float *out, float *deriv, uint8_t *mask, const float *inp, int64_t i0,
                                             int64_t n, int dropout, uint64_t thr, float scale, uint64_t seed) {
    const __m512i vseed = _mm512_set1_epi64((long long)seed), vthr = _mm512_set1_epi64((long long)thr);
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), eight = _mm512_set1_epi64(8);
    const __m512 vscale = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail_mask16(n - i);
        const __m512 x = _mm512_maskz_loadu_ps(k, inp + i);
        __m512 pdf;
        const __m512 cdf = gelu_cdf16(x, &pdf);
        __m512 o = _mm512_mul_ps(x, cdf), d = _mm512_fmadd_ps(x, pdf, cdf);
        if (dropout) {
            const __m512i ia = _mm512_add_epi64(_mm512_set1_epi64((long long)(i0 + i)), lane), ib = _mm512_add_epi64(ia, eight);
            const __m512i ha = mix64_16(_mm512_xor_si512(vseed, mix64_16(ia)));
            const __m512i hb = mix64_16(_mm512_xor_si512(vseed, mix64_16(ib)));
            const __mmask16 keep = (__mmask16)(_mm512_cmpge_epu64_mask(_mm512_srli_epi64(ha, 11), vthr) |
                                               ((unsigned)_mm512_cmpge_epu64_mask(_mm512_srli_epi64(hb, 11), vthr) << 8));
            o = _mm512_maskz_mul_ps(keep, o, vscale);
            d = _mm512_maskz_mul_ps(keep, d, vscale);
            if (mask) _mm_mask_storeu_epi8(mask + i, k, _mm_maskz_mov_epi8(keep, _mm_set1_epi8(1)));
        }
        _mm512_mask_storeu_ps(out + i, k, o);
        _mm512_mask_storeu_ps(deriv + i, k, d);
    }
}
#endif

static void gelu_dropout_fwd_chunk(real *out, real *deriv, uint8_t *mask, const real *inp, int64_t i0, int64_t n,
                                   int dropout, uint64_t thr, real scale, uint64_t seed) {
#ifdef CM_GELU_AVX512
    if (gemm_get_isa() == GEMM_ISA_AVX512) {
        gelu_dropout_fwd_avx512(out, deriv, mask, inp, i0, n, dropout, thr, scale, seed);
        return;
    }
#endif
    gelu_dropout_fwd_generic(out, deriv, mask, inp, i0, n, dropout, thr, scale, seed);
}

void gelu_dropout_forward(real *out, real *deriv, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed) {
    real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
    uint64_t thr = dropout_threshold(p);
    const int dropout = p > 0;
    if (mask && !dropout) memset(mask, 1, (size_t)n);
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK)
        gelu_dropout_fwd_chunk(out + i, deriv + i, mask ? mask + i : NULL, inp + i, i, n - i < EW_CHUNK ? n - i : EW_CHUNK,
                               dropout, thr, scale, seed);
}

CM_INLINE void mul_body(real *dinp, const real *dout, const real *deriv, int64_t n) {
    for (int64_t i = 0; i < n; i++) dinp[i] = dout[i] * deriv[i];
}
CM_DISPATCH(mul_chunk, mul_body, (real *dinp, const real *dout, const real *deriv, int64_t n), (dinp, dout, deriv, n))

void gelu_dropout_backward(real *dinp, const real *dout, const real *deriv, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK) mul_chunk(dinp + i, dout + i, deriv + i, n - i < EW_CHUNK ? n - i : EW_CHUNK);
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
#pragma omp parallel for schedule(dynamic, 64) if (csr_ptr[N] * C >= EW_PARALLEL_MIN)
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
#pragma omp parallel for schedule(static) if (B * C >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < B * C; i++) out[i] = k * x[i] + z[i];
}

/* d eps = sum(dout * x) is summed in GC_BLOCKS fixed blocks (so the result does not depend on
 * the thread count), each block in GC_LANES interleaved double sums that vectorise, added in a
 * fixed order at the end. */
#define GC_BLOCKS 64
#define GC_LANES 8

/* one pass: dx += k dout, dz += dout and the dot product, with has_dx / has_dz constant after
 * inlining (the four combinations compile to four loops) */
CM_INLINE double gin_combine_bwd_pass(real *dx, real *dz, const real *dout, const real *x, real k, int64_t lo,
                                      int64_t hi, int has_dx, int has_dz) {
    double acc[GC_LANES] = {0};
    int64_t i = lo;
    for (; i + GC_LANES <= hi; i += GC_LANES)
        for (int j = 0; j < GC_LANES; j++) {
            const real g = dout[i + j];
            if (has_dx) dx[i + j] += k * g;
            if (has_dz) dz[i + j] += g;
            acc[j] += (double)g * x[i + j];
        }
    for (; i < hi; i++) {
        if (has_dx) dx[i] += k * dout[i];
        if (has_dz) dz[i] += dout[i];
        acc[0] += (double)dout[i] * x[i];
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
CM_INLINE double gin_combine_bwd_body(real *dx, real *dz, const real *dout, const real *x, real k, int64_t lo,
                                      int64_t hi) {
    if (dx && dz) return gin_combine_bwd_pass(dx, dz, dout, x, k, lo, hi, 1, 1);
    if (dx) return gin_combine_bwd_pass(dx, dz, dout, x, k, lo, hi, 1, 0);
    if (dz) return gin_combine_bwd_pass(dx, dz, dout, x, k, lo, hi, 0, 1);
    return gin_combine_bwd_pass(dx, dz, dout, x, k, lo, hi, 0, 0);
}
CM_INLINE void gin_combine_bwd_block_body(double *out, real *dx, real *dz, const real *dout, const real *x, real k,
                                          int64_t lo, int64_t hi) {
    *out = gin_combine_bwd_body(dx, dz, dout, x, k, lo, hi);
}
CM_DISPATCH(gin_combine_bwd_block, gin_combine_bwd_block_body,
            (double *out, real *dx, real *dz, const real *dout, const real *x, real k, int64_t lo, int64_t hi),
            (out, dx, dz, dout, x, k, lo, hi))

void gin_combine_backward(real *dx, real *dz, real *deps, const real *dout, const real *x, const real *eps, int64_t B,
                          int C) {
    real k = (real)1 + eps[0];
    const int64_t n = B * C;
    double partial[GC_BLOCKS];
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int blk = 0; blk < GC_BLOCKS; blk++)
        gin_combine_bwd_block(&partial[blk], dx, dz, dout, x, k, n * blk / GC_BLOCKS, n * (blk + 1) / GC_BLOCKS);
    double total = 0;
    for (int blk = 0; blk < GC_BLOCKS; blk++) total += partial[blk];
    deps[0] += (real)total;
}

void gin_combine_backward_ref(real *dx, real *dz, real *deps, const real *dout, const real *x, const real *eps,
                              int64_t B, int C) {
    real k = (real)1 + eps[0];
    double total = 0;
    for (int64_t i = 0; i < B * C; i++) {
        if (dx) dx[i] += k * dout[i];
        if (dz) dz[i] += dout[i];
        total += (double)dout[i] * x[i];
    }
    deps[0] += (real)total;
}

/* ---------------------------------------------------------------- GIN with edge features, fused
 * The message h[src] * e and its sum into dst in one pass (no [E, C] message buffer), and the
 * edge update's input (1 + eps) e + z[src] - z[dst] in one pass. One writer per output row,
 * rows summed in CSR order (the order of the edges): deterministic for any thread count. */

CM_INLINE void gine_msg_fwd_body(real *z, const real *h, const real *ef, const int64_t *src, const int64_t *dst_ptr,
                                 const int64_t *dst_edges, int64_t n0, int64_t n1, int C) {
    for (int64_t n = n0; n < n1; n++) {
        real *o = z + n * C;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (int64_t k = dst_ptr[n]; k < dst_ptr[n + 1]; k++) {
            const int64_t e = dst_edges[k];
            const real *x = h + src[e] * C, *y = ef + e * C;
            for (int c = 0; c < C; c++) o[c] += x[c] * y[c];
        }
    }
}
CM_DISPATCH(gine_msg_fwd_rows, gine_msg_fwd_body,
            (real *z, const real *h, const real *ef, const int64_t *src, const int64_t *dst_ptr, const int64_t *dst_edges,
             int64_t n0, int64_t n1, int C),
            (z, h, ef, src, dst_ptr, dst_edges, n0, n1, C))

#define ROWS_CHUNK 64
void gine_message_forward(real *z, const real *h, const real *ef, const int64_t *src, const int64_t *dst_ptr,
                          const int64_t *dst_edges, int64_t N, int C) {
#pragma omp parallel for schedule(dynamic, 1) if (N * C >= EW_PARALLEL_MIN)
    for (int64_t n = 0; n < N; n += ROWS_CHUNK)
        gine_msg_fwd_rows(z, h, ef, src, dst_ptr, dst_edges, n, n + ROWS_CHUNK < N ? n + ROWS_CHUNK : N, C);
}

CM_INLINE void gine_msg_bwd_edges_body(real *def, const real *dz, const real *h, const int64_t *src, const int64_t *dst,
                                       int64_t e0, int64_t e1, int C) {
    for (int64_t e = e0; e < e1; e++) {
        const real *g = dz + dst[e] * C, *x = h + src[e] * C;
        real *d = def + e * C;
        for (int c = 0; c < C; c++) d[c] += g[c] * x[c];
    }
}
CM_DISPATCH(gine_msg_bwd_edges, gine_msg_bwd_edges_body,
            (real *def, const real *dz, const real *h, const int64_t *src, const int64_t *dst, int64_t e0, int64_t e1, int C),
            (def, dz, h, src, dst, e0, e1, C))

CM_INLINE void gine_msg_bwd_nodes_body(real *dh, const real *dz, const real *ef, const int64_t *dst, const int64_t *src_ptr,
                                       const int64_t *src_edges, int64_t n0, int64_t n1, int C) {
    for (int64_t n = n0; n < n1; n++) {
        real *d = dh + n * C;
        for (int64_t k = src_ptr[n]; k < src_ptr[n + 1]; k++) {
            const int64_t e = src_edges[k];
            const real *g = dz + dst[e] * C, *y = ef + e * C;
            for (int c = 0; c < C; c++) d[c] += g[c] * y[c];
        }
    }
}
CM_DISPATCH(gine_msg_bwd_nodes, gine_msg_bwd_nodes_body,
            (real *dh, const real *dz, const real *ef, const int64_t *dst, const int64_t *src_ptr, const int64_t *src_edges,
             int64_t n0, int64_t n1, int C),
            (dh, dz, ef, dst, src_ptr, src_edges, n0, n1, C))

void gine_message_backward(real *dh, real *def, const real *dz, const real *h, const real *ef, const int64_t *src,
                           const int64_t *dst, int64_t E, int64_t N, int C, const int64_t *src_ptr,
                           const int64_t *src_edges) {
    /* the message of edge e is m_e = h[src_e] * ef_e and dL/dm_e = dz[dst_e] */
#pragma omp parallel if ((N + E) * C >= EW_PARALLEL_MIN)
    {
        if (def) {
#pragma omp for schedule(static) nowait
            for (int64_t e = 0; e < E; e += ROWS_CHUNK)
                gine_msg_bwd_edges(def, dz, h, src, dst, e, e + ROWS_CHUNK < E ? e + ROWS_CHUNK : E, C);
        }
        if (dh) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t n = 0; n < N; n += ROWS_CHUNK)
                gine_msg_bwd_nodes(dh, dz, ef, dst, src_ptr, src_edges, n, n + ROWS_CHUNK < N ? n + ROWS_CHUNK : N, C);
        }
    }
}

CM_INLINE void gine_edge_combine_body(real *out, const real *x, const real *z, const int64_t *src, const int64_t *dst,
                                      real k, int64_t e0, int64_t e1, int C) {
    for (int64_t e = e0; e < e1; e++) {
        const real *a = z + src[e] * C, *b = z + dst[e] * C, *xe = x + e * C;
        real *o = out + e * C;
        for (int c = 0; c < C; c++) o[c] = k * xe[c] + (a[c] - b[c]);
    }
}
CM_DISPATCH(gine_edge_combine_rows, gine_edge_combine_body,
            (real *out, const real *x, const real *z, const int64_t *src, const int64_t *dst, real k, int64_t e0, int64_t e1,
             int C),
            (out, x, z, src, dst, k, e0, e1, C))

void gine_edge_combine_forward(real *out, const real *x, const real *z, const int64_t *src, const int64_t *dst,
                               const real *eps, int64_t E, int C) {
    const real k = (real)1 + eps[0];
#pragma omp parallel for schedule(static) if (E * C >= EW_PARALLEL_MIN)
    for (int64_t e = 0; e < E; e += ROWS_CHUNK)
        gine_edge_combine_rows(out, x, z, src, dst, k, e, e + ROWS_CHUNK < E ? e + ROWS_CHUNK : E, C);
}

/* ---------------------------------------------------------------- AdamW */

/* Moments in the parameters' type, the bias-corrected step in double (the formula of the scalar
 * reference in csrc/tests/test_nn_grad.c), in chunks: the double divide and square root were
 * the cost of a small model's step. GCC keeps a scalar sqrt with an errno check in any loop
 * (-fmath-errno, which -O3 keeps and a function attribute cannot turn off), so the AVX-512 path
 * is written with intrinsics: 8 parameters at a time, the same operations in the same order. */
CM_INLINE void adamw_scalar(real *params, const real *grads, real *m, real *v, int64_t i0, int64_t n, real beta1,
                            real beta2, double ic1, double ic2, double lr, double eps, double wd) {
    const real a1 = 1 - beta1, a2 = 1 - beta2;
    for (int64_t i = i0; i < n; i++) {
        const real g = grads[i], mi = beta1 * m[i] + a1 * g, vi = beta2 * v[i] + a2 * g * g;
        m[i] = mi;
        v[i] = vi;
        const double mh = mi * ic1, vh = vi * ic2;
        params[i] -= (real)(lr * (mh / (sqrt(vh) + eps) + wd * params[i]));
    }
}

#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("avx512f"))) static void adamw_avx512(real *params, const real *grads, real *m, real *v, int64_t n,
                                                            real beta1, real beta2, double ic1, double ic2, double lr,
                                                            double eps, double wd) {
    const __m256 b1 = _mm256_set1_ps(beta1), b2 = _mm256_set1_ps(beta2), a1 = _mm256_set1_ps(1 - beta1),
                 a2 = _mm256_set1_ps(1 - beta2);
    const __m512d c1 = _mm512_set1_pd(ic1), c2 = _mm512_set1_pd(ic2), vlr = _mm512_set1_pd(lr),
                  veps = _mm512_set1_pd(eps), vwd = _mm512_set1_pd(wd);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(grads + i);
        /* beta1 m + (1 - beta1) g and beta2 v + ((1 - beta2) g) g, rounded as the scalar loop does */
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(a1, g));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(a2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        const __m512d mh = _mm512_mul_pd(_mm512_cvtps_pd(mi), c1), vh = _mm512_mul_pd(_mm512_cvtps_pd(vi), c2);
        const __m512d p = _mm512_cvtps_pd(_mm256_loadu_ps(params + i));
        const __m512d step = _mm512_mul_pd(vlr, _mm512_add_pd(_mm512_div_pd(mh, _mm512_add_pd(_mm512_sqrt_pd(vh), veps)),
                                                              _mm512_mul_pd(vwd, p)));
        /* p - (float)step, in float as the scalar loop's params[i] -= (real)step */
        _mm256_storeu_ps(params + i, _mm256_sub_ps(_mm512_cvtpd_ps(p), _mm512_cvtpd_ps(step)));
    }
    adamw_scalar(params, grads, m, v, i, n, beta1, beta2, ic1, ic2, lr, eps, wd);
}
#endif

static void adamw_chunk(real *params, const real *grads, real *m, real *v, int64_t n, real beta1, real beta2, double ic1,
                        double ic2, double lr, double eps, double wd) {
#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && defined(__x86_64__)
    if (gemm_get_isa() == GEMM_ISA_AVX512) {
        adamw_avx512(params, grads, m, v, n, beta1, beta2, ic1, ic2, lr, eps, wd);
        return;
    }
#endif
    adamw_scalar(params, grads, m, v, 0, n, beta1, beta2, ic1, ic2, lr, eps, wd);
}

void adamw_update(real *params, const real *grads, real *m, real *v, int64_t n, real lr, real beta1, real beta2,
                  real eps, real weight_decay, int t) {
    const double ic1 = 1.0 / (1.0 - pow(beta1, t)), ic2 = 1.0 / (1.0 - pow(beta2, t));
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i += EW_CHUNK) {
        const int64_t len = n - i < EW_CHUNK ? n - i : EW_CHUNK;
        adamw_chunk(params + i, grads + i, m + i, v + i, len, beta1, beta2, ic1, ic2, lr, eps, weight_decay);
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
#pragma omp parallel for schedule(dynamic, 64) if (N * C >= EW_PARALLEL_MIN)
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

/* ---------------------------------------------------------------- serial row ranges
 * The pieces of the ops above, and fusions of them, on the calling thread for callers that run
 * their own team over fixed row blocks (dice.c's blocked layers). Same values as the ops. */

void gelu_dropout_forward_rows(real *out, real *deriv, const real *inp, int64_t i0, int64_t n, real p, uint64_t seed) {
    const real scale = p < 1 ? (real)1 / ((real)1 - p) : (real)0;
    gelu_dropout_fwd_chunk(out + i0, deriv + i0, NULL, inp + i0, i0, n, p > 0, dropout_threshold(p), scale, seed);
}

void gelu_forward_rows(real *out, const real *inp, int64_t i0, int64_t n) { gelu_fwd_chunk(out + i0, inp + i0, n); }

void gelu_dropout_backward_rows(real *dinp, const real *dout, const real *deriv, int64_t i0, int64_t n) {
    mul_chunk(dinp + i0, dout + i0, deriv + i0, n);
}

CM_INLINE void combine_rows_body(real *out, const real *x, const real *z, real k, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) out[i] = k * x[i] + z[i];
}
CM_DISPATCH(combine_rows, combine_rows_body, (real *out, const real *x, const real *z, real k, int64_t i0, int64_t i1),
            (out, x, z, k, i0, i1))

void gin_combine_forward_rows(real *out, const real *x, const real *z, const real *eps, int64_t r0, int64_t r1, int C) {
    combine_rows(out, x, z, (real)1 + eps[0], r0 * C, r1 * C);
}

void gine_edge_combine_forward_rows(real *out, const real *x, const real *z, const int64_t *src, const int64_t *dst,
                                    const real *eps, int64_t e0, int64_t e1, int C) {
    gine_edge_combine_rows(out, x, z, src, dst, (real)1 + eps[0], e0, e1, C);
}

void gine_message_backward_nodes_rows(real *dh, const real *dz, const real *ef, const int64_t *dst, const int64_t *src_ptr,
                                      const int64_t *src_edges, int64_t n0, int64_t n1, int C) {
    gine_msg_bwd_nodes(dh, dz, ef, dst, src_ptr, src_edges, n0, n1, C);
}

/* sum of a[i] * b[i] over a row of C, in DOT_LANES interleaved double sums (added in a fixed
 * order), so a long row is not one latency-bound chain */
#define DOT_LANES 16
CM_INLINE void dot_lanes(double *acc, const real *a, const real *b, int C) {
    int c = 0;
    for (; c + DOT_LANES <= C; c += DOT_LANES)
        for (int j = 0; j < DOT_LANES; j++) acc[j] += (double)a[c + j] * b[c + j];
    for (; c < C; c++) acc[c % DOT_LANES] += (double)a[c] * b[c];
}
CM_INLINE double dot_total(const double *acc) {
    double s = 0;
    for (int j = 0; j < DOT_LANES; j++) s += acc[j];
    return s;
}

CM_INLINE void gine_node_grad_body(double *dot, real *dz, real *dx, const real *dcomb_n, const real *dcomb_e,
                                   const real *x, real k, const int64_t *src_ptr, const int64_t *src_edges,
                                   const int64_t *dst_ptr, const int64_t *dst_edges, int64_t n0, int64_t n1, int C) {
    double acc[DOT_LANES] = {0};
    for (int64_t n = n0; n < n1; n++) {
        real *d = dz + n * C, *o = dx + n * C;
        const real *g = dcomb_n + n * C;
        for (int c = 0; c < C; c++) d[c] = 0;
        for (int64_t q = src_ptr[n]; q < src_ptr[n + 1]; q++) {
            const real *s = dcomb_e + src_edges[q] * C;
            for (int c = 0; c < C; c++) d[c] += s[c];
        }
        for (int64_t q = dst_ptr[n]; q < dst_ptr[n + 1]; q++) {
            const real *s = dcomb_e + dst_edges[q] * C;
            for (int c = 0; c < C; c++) d[c] -= s[c];
        }
        for (int c = 0; c < C; c++) d[c] += g[c];
        for (int c = 0; c < C; c++) o[c] = k * g[c];
        dot_lanes(acc, g, x + n * C, C);
    }
    *dot = dot_total(acc);
}
CM_DISPATCH(gine_node_grad, gine_node_grad_body,
            (double *dot, real *dz, real *dx, const real *dcomb_n, const real *dcomb_e, const real *x, real k,
             const int64_t *src_ptr, const int64_t *src_edges, const int64_t *dst_ptr, const int64_t *dst_edges, int64_t n0,
             int64_t n1, int C),
            (dot, dz, dx, dcomb_n, dcomb_e, x, k, src_ptr, src_edges, dst_ptr, dst_edges, n0, n1, C))

double gine_node_backward_rows(real *dz, real *dx, const real *dcomb_n, const real *dcomb_e, const real *x,
                               const real *eps, const int64_t *src_ptr, const int64_t *src_edges, const int64_t *dst_ptr,
                               const int64_t *dst_edges, int64_t n0, int64_t n1, int C) {
    double dot;
    gine_node_grad(&dot, dz, dx, dcomb_n, dcomb_e, x, (real)1 + eps[0], src_ptr, src_edges, dst_ptr, dst_edges, n0, n1, C);
    return dot;
}

CM_INLINE void gine_edge_grad_body(double *dot, real *dx, const real *dcomb, const real *x, const real *dz,
                                   const real *h, const int64_t *src, const int64_t *dst, real k, int64_t e0, int64_t e1,
                                   int C) {
    double acc[DOT_LANES] = {0};
    for (int64_t e = e0; e < e1; e++) {
        const real *g = dcomb + e * C, *gz = dz + dst[e] * C, *hs = h + src[e] * C;
        real *o = dx + e * C;
        for (int c = 0; c < C; c++) o[c] = k * g[c] + gz[c] * hs[c];
        dot_lanes(acc, g, x + e * C, C);
    }
    *dot = dot_total(acc);
}
CM_DISPATCH(gine_edge_grad, gine_edge_grad_body,
            (double *dot, real *dx, const real *dcomb, const real *x, const real *dz, const real *h, const int64_t *src,
             const int64_t *dst, real k, int64_t e0, int64_t e1, int C),
            (dot, dx, dcomb, x, dz, h, src, dst, k, e0, e1, C))

double gine_edge_backward_rows(real *dx, const real *dcomb, const real *x, const real *dz, const real *h,
                               const int64_t *src, const int64_t *dst, const real *eps, int64_t e0, int64_t e1, int C) {
    double dot;
    gine_edge_grad(&dot, dx, dcomb, x, dz, h, src, dst, (real)1 + eps[0], e0, e1, C);
    return dot;
}

CM_INLINE void gather_mul_rows_body(real *out, const real *a, const int64_t *idx, const real *b, int64_t r0, int64_t r1,
                                    int C) {
    for (int64_t r = r0; r < r1; r++) {
        const real *x = a + idx[r] * C, *y = b + r * C;
        real *o = out + r * C;
        for (int c = 0; c < C; c++) o[c] = x[c] * y[c];
    }
}
CM_DISPATCH(gather_mul_rows, gather_mul_rows_body,
            (real *out, const real *a, const int64_t *idx, const real *b, int64_t r0, int64_t r1, int C),
            (out, a, idx, b, r0, r1, C))

void gather_mul_forward_rows(real *out, const real *a, const int64_t *idx, const real *b, int64_t r0, int64_t r1, int C) {
    gather_mul_rows(out, a, idx, b, r0, r1, C);
}

void colsum_rows(real *out, const real *in, int64_t r0, int64_t r1, int C) {
    enum { COLS = 32 };
    for (int c0 = 0; c0 < C; c0 += COLS) {
        const int w = C - c0 < COLS ? C - c0 : COLS;
        for (int j = 0; j < w; j++) out[c0 + j] = 0;
        colsum(out + c0, in + r0 * C + c0, r1 - r0, C, w);
    }
}
