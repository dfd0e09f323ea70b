/* gemm_bf16.c: bfloat16 Linear forward with AVX-512 BF16 (vdpbf16ps), run-time detected, with
 * plain-loop fallback, a per-thread cache of packed weights, and the peak loops of the
 * benchmark. See gemm_bf16.h. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* clock_gettime, for the peak loops */
#endif
#include "gemm_bf16.h"
#include "gemm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PANEL 64          /* columns per packed panel (4 zmm of fp32 lanes) */
#define MR 6              /* rows per micro-kernel */
#define KP_MAX 2048       /* k pairs the stack buffer holds (K <= 4096 on the fast path) */

#if defined(__GNUC__) && defined(__x86_64__) && (__GNUC__ >= 10 || defined(__clang__))
#define HAVE_BF16_KERNEL 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

static int enabled = 1;

int gemm_bf16_cpu_supported(void) {
#ifdef HAVE_BF16_KERNEL
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

int gemm_bf16_available(void) { return enabled && gemm_bf16_cpu_supported(); }

int gemm_bf16_set_enabled(int on) {
    enabled = on != 0;
    return gemm_bf16_available();
}

uint16_t gemm_bf16_round(float x) {
    union { uint32_t u; float f; } v;
    v.f = x;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40u);   /* quiet NaN */
    v.u += 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)(v.u >> 16);
}

/* ---------------------------------------------------------------- packing */

int gemm_bf16_pack(gemm_bf16_weight *pw, const float *W, int64_t N, int64_t K) {
    memset(pw, 0, sizeof *pw);
    pw->N = N;
    pw->K = K;
    pw->kp = (K + 1) / 2;
    pw->panels = (N + PANEL - 1) / PANEL;
    const size_t n = (size_t)(pw->panels * pw->kp * PANEL * 2);
    pw->w = aligned_alloc(64, (n * sizeof(uint16_t) + 63) / 64 * 64);
    if (!pw->w) return -1;
    for (int64_t p = 0; p < pw->panels; p++)
        for (int64_t q = 0; q < pw->kp; q++) {
            uint16_t *d = pw->w + ((p * pw->kp + q) * PANEL) * 2;
            for (int j = 0; j < PANEL; j++) {
                const int64_t col = p * PANEL + j, k0 = 2 * q;
                d[2 * j] = col < N ? gemm_bf16_round(W[col * K + k0]) : 0;
                d[2 * j + 1] = col < N && k0 + 1 < K ? gemm_bf16_round(W[col * K + k0 + 1]) : 0;
            }
        }
    return 0;
}

void gemm_bf16_weight_free(gemm_bf16_weight *pw) {
    free(pw->w);
    free(pw->wf);
    memset(pw, 0, sizeof *pw);
}

int gemm_f32_pack(gemm_bf16_weight *pw, const float *W, int64_t N, int64_t K) {
    memset(pw, 0, sizeof *pw);
    pw->N = N;
    pw->K = K;
    pw->kp = (K + 1) / 2;
    pw->panels = (N + PANEL - 1) / PANEL;
    const size_t n = (size_t)(pw->panels * K * PANEL);
    pw->wf = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!pw->wf) return -1;
    for (int64_t p = 0; p < pw->panels; p++)
        for (int64_t k = 0; k < K; k++)
            for (int j = 0; j < PANEL; j++) {
                const int64_t col = p * PANEL + j;
                pw->wf[(p * K + k) * PANEL + j] = col < N ? W[col * K + k] : 0.0f;
            }
    return 0;
}

int gemm_f32_packed_available(void) {
#ifdef HAVE_BF16_KERNEL
    return gemm_get_isa() == GEMM_ISA_AVX512;
#else
    return 0;
#endif
}

/* fp32 packed product with plain loops: one sum per element, k ascending, then + bias */
static void f32_packed_plain(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias, int64_t M) {
    const int64_t N = pw->N, K = pw->K;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            const float *w = pw->wf + (n / PANEL) * K * PANEL + n % PANEL;
            float s = 0;
            for (int64_t k = 0; k < K; k++) s += inp[m * K + k] * w[k * PANEL];
            out[m * N + n] = s + (bias ? bias[n] : 0.0f);
        }
}

/* ---------------------------------------------------------------- reference */

void gemm_bf16_linear_ref(float *out, const float *inp, const float *W, const float *bias, int64_t M, int64_t N,
                          int64_t K) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)gemm_bf16_to_float(gemm_bf16_round(inp[m * K + k])) *
                     gemm_bf16_to_float(gemm_bf16_round(W[n * K + k]));
            out[m * N + n] = (float)s + (bias ? bias[n] : 0.0f);
        }
}

/* The packed product with plain loops (no kernel on this CPU): fp32 sums of the pair products
 * in the kernel's order. */
static void linear_packed_plain(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias,
                                int64_t M) {
    const int64_t N = pw->N, K = pw->K;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            const int64_t p = n / PANEL, j = n % PANEL;
            float s = 0;
            for (int64_t q = 0; q < pw->kp; q++) {
                const uint16_t *w = pw->w + ((p * pw->kp + q) * PANEL + j) * 2;
                const int64_t k0 = 2 * q;
                const float a0 = gemm_bf16_to_float(gemm_bf16_round(inp[m * K + k0]));
                const float a1 = k0 + 1 < K ? gemm_bf16_to_float(gemm_bf16_round(inp[m * K + k0 + 1])) : 0.0f;
                s += a0 * gemm_bf16_to_float(w[0]) + a1 * gemm_bf16_to_float(w[1]);
            }
            out[m * N + n] = s + (bias ? bias[n] : 0.0f);
        }
}

/* ---------------------------------------------------------------- the AVX-512 BF16 kernel */
#ifdef HAVE_BF16_KERNEL

/* Rows [0, mr) of inp (stride K) as bf16 pairs into a[mr][lda] (lda = kp rounded up to 16). */
BF16_TARGET static void convert_rows(uint32_t *a, int64_t lda, const float *inp, int64_t K, int mr) {
    for (int r = 0; r < mr; r++) {
        const float *x = inp + r * K;
        uint32_t *d = a + r * lda;
        for (int64_t k0 = 0; k0 < 2 * lda; k0 += 32) {
            const int64_t left = K - k0;
            const __mmask16 mlo = left >= 16 ? 0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1u) : 0;
            const __mmask16 mhi = left >= 32 ? 0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1u) : 0;
            const __m512 lo = _mm512_maskz_loadu_ps(mlo, x + k0);
            const __m512 hi = _mm512_maskz_loadu_ps(mhi, x + k0 + 16);
            _mm512_storeu_si512((void *)(d + k0 / 2), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

#define F32_RV(X) X(0, 0) X(0, 1) X(0, 2) X(0, 3) X(1, 0) X(1, 1) X(1, 2) X(1, 3) X(2, 0) X(2, 1) X(2, 2) X(2, 3) \
    X(3, 0) X(3, 1) X(3, 2) X(3, 3) X(4, 0) X(4, 1) X(4, 2) X(4, 3) X(5, 0) X(5, 1) X(5, 2) X(5, 3)
#define F32_DECL(r, v) __m512 acc_##r##_##v = _mm512_setzero_ps();
#define F32_FMA(r, v) \
    if (r < KR && v < KNV) acc_##r##_##v = _mm512_fmadd_ps(_mm512_set1_ps(a[r * K + k]), bv##v, acc_##r##_##v);
#define F32_LOADB(v) const __m512 bv##v = v < KNV ? _mm512_loadu_ps(bk + v * 16) : _mm512_setzero_ps();
#define F32_MASK(v) \
    const int n##v = ncols - v * 16 < 16 ? ncols - v * 16 : 16; \
    const __mmask16 mk##v = (__mmask16)(n##v >= 16 ? 0xFFFFu : n##v > 0 ? (1u << n##v) - 1u : 0u); \
    const __m512 bb##v = bias && v < KNV ? _mm512_maskz_loadu_ps(mk##v, bias + v * 16) : _mm512_setzero_ps();
#define F32_STORE(r, v) \
    if (r < KR && v < KNV) { \
        __m512 o = _mm512_add_ps(acc_##r##_##v, bb##v); \
        if (relu) o = _mm512_max_ps(o, _mm512_setzero_ps()); \
        if (res) o = _mm512_add_ps(_mm512_maskz_loadu_ps(mk##v, res + r * ldc + v * 16), o); \
        _mm512_mask_storeu_ps(c + r * ldc + v * 16, mk##v, o); \
    }
#define F32_PREF(r, v) \
    if (r < KR && v < KNV) _mm_prefetch((const char *)(res + r * ldc + v * 16), _MM_HINT_T0);
/* C[rows, ncols] (+ bias) of one panel: R rows, NV column vectors (constants after inlining).
 * Named accumulators as in the fp32 kernel below (F32_RV: an array stayed in memory). */
#define BF_FMA(r, v) \
    if (r < KR && v < KNV) \
        acc_##r##_##v = _mm512_dpbf16_ps(acc_##r##_##v, (__m512bh)_mm512_set1_epi32((int)a[r * lda + q]), bv##v);
#define BF_LOADB(v) \
    const __m512bh bv##v = (__m512bh)(v < KNV ? _mm512_loadu_si512((const void *)(bq + v * 32)) : _mm512_setzero_si512());
#define KERNEL_BODY(R, NV) \
    do { \
        enum { KR = (R), KNV = (NV) }; \
        if (res) { F32_RV(F32_PREF) } \
        F32_RV(F32_DECL) \
        for (int64_t q = 0; q < kp; q++) { \
            const uint16_t *bq = b + q * PANEL * 2; \
            BF_LOADB(0) BF_LOADB(1) BF_LOADB(2) BF_LOADB(3) \
            F32_RV(BF_FMA) \
        } \
        F32_MASK(0) F32_MASK(1) F32_MASK(2) F32_MASK(3) \
        F32_RV(F32_STORE) \
    } while (0)

#define KFN(R, NV)                                                                                              \
    BF16_TARGET static void kern_##R##_##NV(int64_t kp, const uint32_t *a, int64_t lda, const uint16_t *b,      \
                                            float *c, int64_t ldc, const float *bias, int ncols,                \
                                            const float *res, int relu) {                                       \
        KERNEL_BODY(R, NV);                                                                                     \
    }
#define KFN_ROW(R) KFN(R, 1) KFN(R, 2) KFN(R, 3) KFN(R, 4)
KFN_ROW(1) KFN_ROW(2) KFN_ROW(3) KFN_ROW(4) KFN_ROW(5) KFN_ROW(6)

typedef void (*kern_fn)(int64_t, const uint32_t *, int64_t, const uint16_t *, float *, int64_t, const float *, int,
                        const float *, int);
#define KROW(R) {kern_##R##_1, kern_##R##_2, kern_##R##_3, kern_##R##_4}
static const kern_fn KERNELS[MR][4] = {KROW(1), KROW(2), KROW(3), KROW(4), KROW(5), KROW(6)};

/* Rows [m0, m0 + mr) of out. */
BF16_TARGET static void row_block(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias,
                                  const float *res, int relu, int64_t m0, int mr) {
    const int64_t lda = (pw->kp + 15) / 16 * 16;
    uint32_t a[MR * KP_MAX];
    convert_rows(a, lda, inp + m0 * pw->K, pw->K, mr);
    for (int64_t p = 0; p < pw->panels; p++) {
        const int64_t c0 = p * PANEL;
        const int ncols = (int)(pw->N - c0 < PANEL ? pw->N - c0 : PANEL);
        KERNELS[mr - 1][(ncols + 15) / 16 - 1](pw->kp, a, lda, pw->w + p * pw->kp * PANEL * 2, out + m0 * pw->N + c0,
                                               pw->N, bias ? bias + c0 : NULL, ncols,
                                               res ? res + m0 * pw->N + c0 : NULL, relu);
    }
}

/* fp32: C[rows, ncols] (+ bias) of one panel from inp rows read in place (stride K). The 24
 * accumulators are named variables (acc_r_v) rather than an array, with every use guarded by a
 * constant condition on R and NV: GCC then keeps them all in registers through the epilogue (an
 * array was kept in memory too, zeroed, spilled and reloaded at every call, ~10% of a K = 64
 * panel). No prefetch of the residual (unlike the bf16 kernel): since sampling runs in
 * sub-batches that stay in cache (model.c), the 24 prefetches per panel cost more than they
 * saved (paper shape, 1 thread: Linear 0.580 -> 0.573 CPU-s, 6 alternating runs). */
#define KERNEL_F32_BODY(R, NV) \
    do { \
        enum { KR = (R), KNV = (NV) }; \
        F32_RV(F32_DECL) \
        for (int64_t k = 0; k < K; k++) { \
            const float *bk = b + k * PANEL; \
            F32_LOADB(0) F32_LOADB(1) F32_LOADB(2) F32_LOADB(3) \
            F32_RV(F32_FMA) \
        } \
        F32_MASK(0) F32_MASK(1) F32_MASK(2) F32_MASK(3) \
        F32_RV(F32_STORE) \
    } while (0)

#define FFN(R, NV)                                                                                              \
    __attribute__((target("avx512f"))) static void fkern_##R##_##NV(int64_t K, const float *a, const float *b,  \
                                                                   float *c, int64_t ldc, const float *bias,    \
                                                                   int ncols, const float *res, int relu) {     \
        KERNEL_F32_BODY(R, NV);                                                                                 \
    }
#define FFN_ROW(R) FFN(R, 1) FFN(R, 2) FFN(R, 3) FFN(R, 4)
FFN_ROW(1) FFN_ROW(2) FFN_ROW(3) FFN_ROW(4) FFN_ROW(5) FFN_ROW(6)

typedef void (*fkern_fn)(int64_t, const float *, const float *, float *, int64_t, const float *, int, const float *,
                         int);
#define FROW(R) {fkern_##R##_1, fkern_##R##_2, fkern_##R##_3, fkern_##R##_4}
static const fkern_fn FKERNELS[MR][4] = {FROW(1), FROW(2), FROW(3), FROW(4), FROW(5), FROW(6)};

/* One MR-row block of an fp32 packed product, all panels. */
static void f32_row_block(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias,
                          const float *res, int relu, int64_t m0, int mr) {
    for (int64_t p = 0; p < pw->panels; p++) {
        const int64_t c0 = p * PANEL;
        const int ncols = (int)(pw->N - c0 < PANEL ? pw->N - c0 : PANEL);
        FKERNELS[mr - 1][(ncols + 15) / 16 - 1](pw->K, inp + m0 * pw->K, pw->wf + p * pw->K * PANEL,
                                                out + m0 * pw->N + c0, pw->N, bias ? bias + c0 : NULL, ncols,
                                                res ? res + m0 * pw->N + c0 : NULL, relu);
    }
}
#endif

/* Whether a packed product of M rows runs on a thread team (enough MR-row blocks, and not
 * already inside one): the kernels' OpenMP condition, and the profile's thread count. */
static int packed_parallel(int64_t M) {
#ifdef _OPENMP
    return (M + MR - 1) / MR >= 16 && !omp_in_parallel();
#else
    (void)M;
    return 0;
#endif
}

static int packed_threads(int64_t M) {
#ifdef _OPENMP
    return packed_parallel(M) ? omp_get_max_threads() : 1;
#else
    (void)M;
    return 1;
#endif
}

#ifdef HAVE_BF16_KERNEL
/* fp32 out[M,N] for a narrow W (N < 16 columns: the diffusion model's C -> 1 output), W read in
 * place (a 64-column panel would be mostly zeros): per element one dot product, k in 16 lane sums
 * (k ascending in each lane, a masked tail), the lanes added by _mm512_reduce_add_ps (a fixed
 * tree), then the packed kernel's epilogue (+ bias, relu, res +). Row by row, so a row's result
 * does not depend on M or the thread count. */
__attribute__((target("avx512f"))) static void f32_narrow(float *out, const float *inp, const float *W,
                                                          const float *bias, const float *res, int relu, int64_t M,
                                                          int64_t N, int64_t K) {
    const int64_t k16 = K / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (K - k16)) - 1u);
#pragma omp parallel for schedule(static) if (packed_parallel(M))
    for (int64_t m = 0; m < M; m++) {
        const float *x = inp + m * K;
        for (int64_t n = 0; n < N; n++) {
            const float *w = W + n * K;
            __m512 acc = _mm512_setzero_ps();
            for (int64_t k = 0; k < k16; k += 16)
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_loadu_ps(w + k), acc);
            if (tail)
                acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + k16), _mm512_maskz_loadu_ps(tail, w + k16), acc);
            float v = _mm512_reduce_add_ps(acc) + (bias ? bias[n] : 0.0f);
            if (relu) v = v > 0.0f ? v : 0.0f;
            if (res) v = res[m * N + n] + v;
            out[m * N + n] = v;
        }
    }
}
#endif


#ifdef HAVE_BF16_KERNEL
typedef void (*row_block_fn)(float *, const float *, const gemm_bf16_weight *, const float *, const float *, int,
                             int64_t, int);

/* A packed product, MR-row blocks handed out statically (the same rows per thread each time). */
static void packed_rows(row_block_fn block, float *out, const float *inp, const gemm_bf16_weight *pw,
                        const float *bias, const float *res, int relu, int64_t M) {
    const int64_t nb = (M + MR - 1) / MR;
    const int par = packed_parallel(M);
    (void)par;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t i = 0; i < nb; i++) {
        const int64_t m0 = i * MR;
        block(out, inp, pw, bias, res, relu, m0, (int)(M - m0 < MR ? M - m0 : MR));
    }
}
#endif

void gemm_f32_linear(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias, int64_t M) {
    const int prof = gemm_profile_on();
    gemm_prof_mark pm;
    if (prof) gemm_profile_start(&pm);
#ifdef HAVE_BF16_KERNEL
    if (gemm_f32_packed_available()) packed_rows(f32_row_block, out, inp, pw, bias, NULL, 0, M);
    else
#endif
        f32_packed_plain(out, inp, pw, bias, M);
    if (prof) gemm_profile_stop(GEMM_PROF_LINEAR_FP32, 2.0 * (double)M * (double)pw->N * (double)pw->K, packed_threads(M), &pm);
}

void gemm_bf16_linear(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias, int64_t M) {
    const int prof = gemm_profile_on();
    gemm_prof_mark pm;
    if (prof) gemm_profile_start(&pm);
#ifdef HAVE_BF16_KERNEL
    if (gemm_bf16_available() && pw->kp <= KP_MAX) packed_rows(row_block, out, inp, pw, bias, NULL, 0, M);
    else
#endif
        linear_packed_plain(out, inp, pw, bias, M);
    if (prof) gemm_profile_stop(GEMM_PROF_LINEAR_BF16, 2.0 * (double)M * (double)pw->N * (double)pw->K, packed_threads(M), &pm);
}

/* ---------------------------------------------------------------- per-thread cache and hook */

#define CACHE_SLOTS 1024   /* a power of two; a full cache declines new weights */
typedef struct {
    const float *key;
    gemm_bf16_weight w;
} cache_entry;
typedef struct {
    cache_entry *e;
    int used;
    int bf16;           /* entries packed in bf16 (1) or fp32 (0) */
} bf16_cache;

static _Thread_local bf16_cache *tls_cache;

int gemm_bf16_cache_begin(int bf16) {
    if (tls_cache) return -1;
    bf16_cache *c = calloc(1, sizeof *c);
    if (!c) return -1;
    c->bf16 = bf16 && gemm_bf16_available();
    c->e = calloc(CACHE_SLOTS, sizeof *c->e);
    if (!c->e) { free(c); return -1; }
    tls_cache = c;
    return 0;
}

void gemm_bf16_cache_end(void) {
    bf16_cache *c = tls_cache;
    if (!c) return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (c->e[i].key) gemm_bf16_weight_free(&c->e[i].w);
    free(c->e);
    free(c);
    tls_cache = NULL;
}

static const gemm_bf16_weight *cache_get(bf16_cache *c, const float *W, int64_t N, int64_t K) {
    uint64_t h = (uint64_t)(uintptr_t)W;
    h ^= (uint64_t)N * 0x9e3779b97f4a7c15ull ^ (uint64_t)K * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 32;
    for (int probe = 0; probe < CACHE_SLOTS; probe++) {
        cache_entry *e = &c->e[(h + (uint64_t)probe) & (CACHE_SLOTS - 1)];
        if (!e->key) {
            if (c->used >= CACHE_SLOTS / 2 || (c->bf16 ? gemm_bf16_pack(&e->w, W, N, K) : gemm_f32_pack(&e->w, W, N, K)))
                return NULL;
            e->key = W;
            c->used++;
            return &e->w;
        }
        if (e->key == W && e->w.N == N && e->w.K == K) return &e->w;
    }
    return NULL;
}

int gemm_bf16_cache_open(void) { return tls_cache != NULL; }

int gemm_bf16_linear_hook(float *out, const float *inp, const float *W, const float *bias, int64_t M, int64_t K,
                          int64_t N) {
    return gemm_bf16_linear_hook_ex(out, inp, W, bias, NULL, 0, M, K, N);
}

int gemm_bf16_linear_hook_ex(float *out, const float *inp, const float *W, const float *bias, const float *res,
                             int relu, int64_t M, int64_t K, int64_t N) {
#ifdef HAVE_BF16_KERNEL
    bf16_cache *c = tls_cache;
    if (!c || N < 1 || K < 1) return 0;
    if (N < 16) {   /* narrow: fp32 in either cache, W in place */
        if (!gemm_f32_packed_available()) return 0;
        const int prof = gemm_profile_on();
        gemm_prof_mark pm;
        if (prof) gemm_profile_start(&pm);
        f32_narrow(out, inp, W, bias, res, relu, M, N, K);
        if (prof)
            gemm_profile_stop(GEMM_PROF_LINEAR_FP32, 2.0 * (double)M * (double)N * (double)K, packed_threads(M), &pm);
        return 1;
    }
    if (c->bf16) {
        if (K < 8 || (K + 1) / 2 > KP_MAX || !gemm_bf16_available()) return 0;
    } else if (!gemm_f32_packed_available()) return 0;
    const gemm_bf16_weight *pw = cache_get(c, W, N, K);
    if (!pw) return 0;
    const int prof = gemm_profile_on();
    gemm_prof_mark pm;
    if (prof) gemm_profile_start(&pm);
    packed_rows(c->bf16 ? row_block : f32_row_block, out, inp, pw, bias, res, relu, M);
    if (prof)
        gemm_profile_stop(c->bf16 ? GEMM_PROF_LINEAR_BF16 : GEMM_PROF_LINEAR_FP32, 2.0 * (double)M * (double)N * (double)K,
                          packed_threads(M), &pm);
    return 1;
#else
    (void)out; (void)inp; (void)W; (void)bias; (void)res; (void)relu; (void)M; (void)K; (void)N;
    return 0;
#endif
}

/* ---------------------------------------------------------------- peak loops */

/* CPU time of the calling thread: the peak loops are timed by it, so that a thread descheduled
 * by other processes on a shared machine does not lower the peak (a core's peak is what it does
 * while it runs; wall-clock figures of the same machine are then honestly lower under load). */
static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifdef HAVE_BF16_KERNEL
#define NACC 24   /* independent chains per thread: more than latency x ports of any current core */
__attribute__((target("avx512f"))) static float fma_loop(int64_t iters) {
    __m512 acc[NACC];
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 32
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
    }
    __m512 s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

BF16_TARGET static float dp_loop(int64_t iters) {
    __m512 acc[NACC];
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(2e-3f), _mm512_set1_ps(2e-3f));
    for (int i = 0; i < NACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 32
        for (int i = 0; i < NACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
#endif

static volatile float peak_sink;

static double peak_run(int which, int64_t iters) {
#ifdef HAVE_BF16_KERNEL
    if (which == 0 ? !(__builtin_cpu_init(), __builtin_cpu_supports("avx512f")) : !gemm_bf16_cpu_supported()) return 0;
    /* every thread at once; each one's rate over its own CPU time, summed */
    const double flop = (double)iters * (double)NACC * (which == 0 ? 32.0 : 64.0);
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
        const double t0 = thread_cpu_s();
        float r = which == 0 ? fma_loop(iters) : dp_loop(iters);
        const double t1 = thread_cpu_s();
#pragma omp atomic
        peak_sink += r;
        total += t1 > t0 ? flop / (t1 - t0) / 1e9 : 0;
    }
    return total;
#else
    (void)which; (void)iters;
    return 0;
#endif
}

double gemm_bf16_peak_fma(int64_t iters) { return peak_run(0, iters); }
double gemm_bf16_peak_dpbf16(int64_t iters) { return peak_run(1, iters); }
