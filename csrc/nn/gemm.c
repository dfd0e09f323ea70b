/* gemm.c: cache-blocked, register-tiled matrix product, OpenMP over output blocks (see
 * gemm.h for the contract, the determinism it keeps and where its memory comes from).
 *
 * Each thread owns a block of whole MR rows (or NR columns) of C and runs, for each NC-wide
 * block of columns and each KC-long block of k, in order:
 *     op(B) block: NR-wide panels packed by the thread itself (no barriers), or read in place
 *     for each MC-row block: op(A) read in place, or packed into MR-row panels [kc][MR]
 *         for each MR-row panel, for each NR panel: the micro-kernel, MR x NR accumulators in
 *         registers over kc, then one update of the C tile
 * The op(A) panel (MR x KC floats, 12-24 KB) stays in L1 across a row of tiles; the op(B) block
 * (at most KC x NC floats) lives in L2 and is streamed once per row panel.
 * Sizes: M, N, K as in gemm.h; MR x NR the register tile; KC, NC, MC the cache blocks. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* clock_gettime, for the opt-in profiling */
#endif
#include "gemm.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(CM_REAL_IS_FLOAT) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define GEMM_X86 1
#include <immintrin.h>
#endif

/* k block: 512 when op(B) is packed (K = 512 then runs in one pass), 256 when op(B) is read in
 * place (its panel then stays nearer); NC: column block; MR_MAX, NR_MAX: the largest tile */
enum { KC_PACKED = 512, KC_IN_PLACE = 256, KC_MAX = 512, NC = 1024, MR_MAX = 12, NR_MAX = 32 };   /* MC below */
/* below this many multiply-adds a call runs on the calling thread: waking the team costs more */
#define GEMM_SERIAL_MACS 1000000.0

typedef void (*ukernel_fn)(int64_t kc, const real *a, int64_t a_rs, int64_t a_cs, const real *b, int64_t b_rs, real *c,
                           int64_t ldc, int add_c, const real *bias);
typedef struct {
    gemm_isa isa;
    int mr, nr;
    ukernel_fn kernel;
} kernel_desc;

/* ------------------------------------------------------------------ reference */

void gemm_ref(real *C, int64_t ldc, const real *A, int64_t a_rs, int64_t a_cs, const real *B, int64_t b_rs,
              int64_t b_cs, const real *bias, int64_t M, int64_t N, int64_t K, int accumulate) {
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            real acc = 0;
            for (int64_t k = 0; k < K; k++) acc += A[m * a_rs + k * a_cs] * B[k * b_rs + n * b_cs];
            if (bias) acc += bias[n];
            C[m * ldc + n] = accumulate ? C[m * ldc + n] + acc : acc;
        }
}

/* ------------------------------------------------------------------ micro-kernels
 * Each computes acc[MR][NR] = sum_k opA(i,k) * opB(k,j) over kc, with opA(i,k) at
 * a[i*a_rs + k*a_cs] and opB(k,j) at b[k*b_rs + j] (a packed panel: b_rs = NR), then writes the
 * full MR x NR tile:
 *     v = acc (+ bias[j]);  c = add_c ? c + v : v
 * in exactly the order the edge-tile merge (merge_tile) uses, so edge and interior tiles round
 * alike. */

enum { P_MR = 4, P_NR = 8 };

static void kernel_portable(int64_t kc, const real *a, int64_t a_rs, int64_t a_cs, const real *b, int64_t b_rs, real *c,
                            int64_t ldc, int add_c, const real *bias) {
    real acc[P_MR][P_NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++) {
        const real *bk = b + k * b_rs;
        for (int i = 0; i < P_MR; i++) {
            real ai = a[i * a_rs + k * a_cs];
            for (int j = 0; j < P_NR; j++) acc[i][j] += ai * bk[j];
        }
    }
    for (int i = 0; i < P_MR; i++)
        for (int j = 0; j < P_NR; j++) {
            real v = acc[i][j];
            if (bias) v += bias[j];
            c[i * ldc + j] = add_c ? c[i * ldc + j] + v : v;
        }
}

#ifdef GEMM_X86
/* AVX-512F: 12 x 32 tile = 24 zmm accumulators, 2 for the B row, 1 broadcast of A. */
enum { Z_MR = 12, Z_NR = 32 };

__attribute__((target("avx512f"))) static void kernel_avx512(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                                             const float *b, int64_t b_rs, float *c, int64_t ldc,
                                                             int add_c, const float *bias) {
    __m512 c0[Z_MR], c1[Z_MR];
#pragma GCC unroll 12
    for (int i = 0; i < Z_MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    if (a_cs == 1) {
        /* op(A) read in place: 12 rows, each contiguous in k */
        for (int64_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_loadu_ps(b + k * b_rs), b1 = _mm512_loadu_ps(b + k * b_rs + 16);
#pragma GCC unroll 12
            for (int i = 0; i < Z_MR; i++) {
                __m512 ai = _mm512_set1_ps(a[i * a_rs + k]);
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }
    } else {
        /* op(A) contiguous along m (a_rs == 1): a packed panel [kc][12], or dout^T in place */
        for (int64_t k = 0; k < kc; k++) {
            __m512 b0 = _mm512_loadu_ps(b + k * b_rs), b1 = _mm512_loadu_ps(b + k * b_rs + 16);
            const float *ak = a + k * a_cs;
#pragma GCC unroll 12
            for (int i = 0; i < Z_MR; i++) {
                __m512 ai = _mm512_set1_ps(ak[i]);
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) { bias0 = _mm512_loadu_ps(bias); bias1 = _mm512_loadu_ps(bias + 16); }
#pragma GCC unroll 12
    for (int i = 0; i < Z_MR; i++) {
        float *ci = c + i * ldc;
        __m512 v0 = c0[i], v1 = c1[i];
        if (bias) { v0 = _mm512_add_ps(v0, bias0); v1 = _mm512_add_ps(v1, bias1); }
        if (add_c) { v0 = _mm512_add_ps(_mm512_loadu_ps(ci), v0); v1 = _mm512_add_ps(_mm512_loadu_ps(ci + 16), v1); }
        _mm512_storeu_ps(ci, v0);
        _mm512_storeu_ps(ci + 16, v1);
    }
}

/* AVX2 + FMA: 6 x 16 tile = 12 ymm accumulators (of 16 registers). */
enum { Y_MR = 6, Y_NR = 16 };

__attribute__((target("avx2,fma"))) static void kernel_avx2(int64_t kc, const float *a, int64_t a_rs, int64_t a_cs,
                                                            const float *b, int64_t b_rs, float *c, int64_t ldc,
                                                            int add_c, const float *bias) {
    __m256 c0[Y_MR], c1[Y_MR];
#pragma GCC unroll 6
    for (int i = 0; i < Y_MR; i++) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b + k * b_rs), b1 = _mm256_loadu_ps(b + k * b_rs + 8);
#pragma GCC unroll 6
        for (int i = 0; i < Y_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * a_rs + k * a_cs);
            c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
        }
    }
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (bias) { bias0 = _mm256_loadu_ps(bias); bias1 = _mm256_loadu_ps(bias + 8); }
#pragma GCC unroll 6
    for (int i = 0; i < Y_MR; i++) {
        float *ci = c + i * ldc;
        __m256 v0 = c0[i], v1 = c1[i];
        if (bias) { v0 = _mm256_add_ps(v0, bias0); v1 = _mm256_add_ps(v1, bias1); }
        if (add_c) { v0 = _mm256_add_ps(_mm256_loadu_ps(ci), v0); v1 = _mm256_add_ps(_mm256_loadu_ps(ci + 8), v1); }
        _mm256_storeu_ps(ci, v0);
        _mm256_storeu_ps(ci + 8, v1);
    }
}
#endif

/* ------------------------------------------------------------------ dispatch */

static const kernel_desc KERNELS[] = {
    {GEMM_ISA_PORTABLE, P_MR, P_NR, kernel_portable},
#ifdef GEMM_X86
    {GEMM_ISA_AVX2, Y_MR, Y_NR, kernel_avx2},
    {GEMM_ISA_AVX512, Z_MR, Z_NR, kernel_avx512},
#endif
};
enum { N_KERNELS = sizeof KERNELS / sizeof KERNELS[0] };

static int cpu_has(gemm_isa isa) {
    if (isa == GEMM_ISA_PORTABLE) return 1;
#ifdef GEMM_X86
    __builtin_cpu_init();
    if (isa == GEMM_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == GEMM_ISA_AVX512) return __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

static const kernel_desc *best_kernel(gemm_isa at_most) {
    const kernel_desc *best = &KERNELS[0];
    for (int i = 0; i < N_KERNELS; i++)
        if ((at_most == GEMM_ISA_AUTO || KERNELS[i].isa <= at_most) && cpu_has(KERNELS[i].isa)) best = &KERNELS[i];
    return best;
}

/* Chosen once (the same value by every thread, so the unsynchronised first write is benign). */
static const kernel_desc *g_kernel = NULL;

static const kernel_desc *current_kernel(void) {
    if (!g_kernel) g_kernel = best_kernel(GEMM_ISA_AUTO);
    return g_kernel;
}

gemm_isa gemm_get_isa(void) { return current_kernel()->isa; }
gemm_isa gemm_set_isa(gemm_isa isa) {
    g_kernel = best_kernel(isa);
    return g_kernel->isa;
}
const char *gemm_isa_name(gemm_isa isa) {
    switch (isa) {
    case GEMM_ISA_PORTABLE: return "portable";
    case GEMM_ISA_AVX2: return "avx2+fma";
    case GEMM_ISA_AVX512: return "avx512f";
    default: return "auto";
    }
}

/* ------------------------------------------------------------------ workspace */

static _Thread_local real *ws_ptr = NULL;
static _Thread_local size_t ws_cap = 0;   /* in reals */

static real *workspace(size_t n) {
    if (n <= ws_cap) return ws_ptr;
    size_t bytes = (n * sizeof(real) + 63) / 64 * 64;   /* aligned_alloc wants a multiple of 64 */
    void *p = aligned_alloc(64, bytes);
    if (!p) return NULL;
    free(ws_ptr);
    ws_ptr = p;
    ws_cap = n;
    return ws_ptr;
}

void gemm_release(void) {
    free(ws_ptr);
    ws_ptr = NULL;
    ws_cap = 0;
}

/* ------------------------------------------------------------------ packing */

/* bp[k][NR] <- op(B)[k0 + k, c0 + j], zero past the nr_valid columns that exist. */
static void pack_b_panel(real *bp, const real *B, int64_t b_rs, int64_t b_cs, int64_t k0, int64_t kc, int64_t c0,
                         int nr_valid, int NR) {
    if (b_cs == 1) {
        for (int64_t k = 0; k < kc; k++) {
            const real *src = B + (k0 + k) * b_rs + c0;
            real *dst = bp + k * NR;
            for (int j = 0; j < nr_valid; j++) dst[j] = src[j];
            for (int j = nr_valid; j < NR; j++) dst[j] = 0;
        }
    } else {
        /* op(B) = W^T: each column of the panel is a row of W, contiguous in k */
        for (int j = 0; j < nr_valid; j++) {
            const real *src = B + k0 * b_rs + (c0 + j) * b_cs;
            for (int64_t k = 0; k < kc; k++) bp[k * NR + j] = src[k * b_rs];
        }
        for (int j = nr_valid; j < NR; j++)
            for (int64_t k = 0; k < kc; k++) bp[k * NR + j] = 0;
    }
}

/* ap[panel][k][MR] <- op(A)[m0 + panel*MR + i, k0 + k] for the mc rows from m0, zero past them.
 * With op(A) contiguous along m (a_rs == 1: the dweight product) each k reads one run of mc
 * values, whole cache lines, and deals them out to the panels. */
static void pack_a_block(real *ap, const real *A, int64_t a_rs, int64_t a_cs, int64_t m0, int64_t mc, int64_t k0,
                         int64_t kc, int MR) {
    const int64_t panels = (mc + MR - 1) / MR;
    if (a_rs == 1) {
        for (int64_t k = 0; k < kc; k++) {
            const real *src = A + m0 + (k0 + k) * a_cs;
            for (int64_t p = 0; p < panels; p++) {
                real *dst = ap + p * MR * kc + k * MR;
                const int valid = (int)(mc - p * MR < MR ? mc - p * MR : MR);
                for (int i = 0; i < valid; i++) dst[i] = src[p * MR + i];
                for (int i = valid; i < MR; i++) dst[i] = 0;
            }
        }
    } else {
        for (int64_t p = 0; p < panels; p++) {
            real *dst = ap + p * MR * kc;
            const int valid = (int)(mc - p * MR < MR ? mc - p * MR : MR);
            for (int i = 0; i < valid; i++) {
                const real *src = A + (m0 + p * MR + i) * a_rs + k0 * a_cs;
                for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = src[k * a_cs];
            }
            for (int i = valid; i < MR; i++)
                for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0;
        }
    }
}

/* c[mr, nr] of an edge tile <- the kernel's full tile t[MR][NR], as the kernel would write. */
static void merge_tile(real *c, int64_t ldc, const real *t, int NR, int mr, int nr, int add_c, const real *bias) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            real v = t[i * NR + j];
            if (bias) v += bias[j];
            c[i * ldc + j] = add_c ? c[i * ldc + j] + v : v;
        }
}

/* ------------------------------------------------------------------ driver */

enum { MC = 96 };   /* rows of op(A) packed at a time (a multiple of every MR) */

typedef struct {
    const real *A, *B, *bias;
    int64_t a_rs, a_cs, b_rs, b_cs, ldc, K;
    real *C;
    int64_t kc_block;
    int accumulate, a_in_place, b_in_place;
} gemm_args;

/* C[m_lo..m_hi, n_lo..n_hi] on the calling thread, with its own packing buffers bp[KC * NC]
 * and ap[MC * KC] (KC = g->kc_block). */
static void gemm_block(const kernel_desc *kd, const gemm_args *g, real *bp, real *ap, int64_t m_lo, int64_t m_hi,
                       int64_t n_lo, int64_t n_hi) {
    const int MR = kd->mr, NR = kd->nr;
    const int64_t K = g->K, ldc = g->ldc, KC = g->kc_block;
    real tile[MR_MAX * NR_MAX] __attribute__((aligned(64)));
    for (int64_t n0 = n_lo; n0 < n_hi; n0 += NC) {
        const int64_t nc = n_hi - n0 < NC ? n_hi - n0 : NC;
        const int64_t n_panels = (nc + NR - 1) / NR;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kc = K - k0 < KC ? K - k0 : KC;
            const int add_c = g->accumulate || k0 > 0;
            const real *bias_here = k0 == 0 && g->bias ? g->bias + n0 : NULL;
            /* op(B) block: read in place (full panels of a row-contiguous B) or packed */
            for (int64_t p = 0; p < n_panels; p++) {
                const int64_t c0 = n0 + p * NR;
                const int valid = (int)(n_hi - c0 < NR ? n_hi - c0 : NR);
                if (!g->b_in_place || valid < NR)
                    pack_b_panel(bp + p * NR * kc, g->B, g->b_rs, g->b_cs, k0, kc, c0, valid, NR);
            }
            for (int64_t mc0 = m_lo; mc0 < m_hi; mc0 += MC) {
                const int64_t mc = m_hi - mc0 < MC ? m_hi - mc0 : MC;
                const int a_in_place = g->a_cs == 1 || g->a_in_place;
                if (!a_in_place) pack_a_block(ap, g->A, g->a_rs, g->a_cs, mc0, mc, k0, kc, MR);
                for (int64_t m0 = mc0; m0 < mc0 + mc; m0 += MR) {
                    const int mr = (int)(mc0 + mc - m0 < MR ? mc0 + mc - m0 : MR);
                    const real *a;
                    int64_t ars, acs;
                    if (a_in_place && mr == MR) {   /* in place: rows contiguous in k, or columns in m */
                        a = g->A + m0 * g->a_rs + k0 * g->a_cs;
                        ars = g->a_rs;
                        acs = g->a_cs;
                    } else {
                        if (a_in_place) pack_a_block(ap, g->A, g->a_rs, g->a_cs, m0, mr, k0, kc, MR);
                        a = a_in_place ? ap : ap + (m0 - mc0) / MR * MR * kc;
                        ars = 1;
                        acs = MR;
                    }
                    real *crow = g->C + m0 * ldc + n0;
                    for (int64_t p = 0; p < n_panels; p++) {
                        const int nr = (int)(nc - p * NR < NR ? nc - p * NR : NR);
                        const real *bias_p = bias_here ? bias_here + p * NR : NULL;
                        const real *b = bp + p * NR * kc;
                        int64_t brs = NR;
                        if (g->b_in_place && nr == NR) {
                            b = g->B + k0 * g->b_rs + n0 + p * NR;
                            brs = g->b_rs;
                        }
                        if (mr == MR && nr == NR) {
                            kd->kernel(kc, a, ars, acs, b, brs, crow + p * NR, ldc, add_c, bias_p);
                        } else {
                            kd->kernel(kc, a, ars, acs, b, brs, tile, NR, 0, NULL);
                            merge_tile(crow + p * NR, ldc, tile, NR, mr, nr, add_c, bias_p);
                        }
                    }
                }
            }
        }
    }
}

static void gemm_run(real *C, int64_t ldc, const real *A, int64_t a_rs, int64_t a_cs, const real *B, int64_t b_rs,
                     int64_t b_cs, const real *bias, int64_t M, int64_t N, int64_t K, int accumulate, int *threads_used);

void gemm(real *C, int64_t ldc, const real *A, int64_t a_rs, int64_t a_cs, const real *B, int64_t b_rs, int64_t b_cs,
          const real *bias, int64_t M, int64_t N, int64_t K, int accumulate) {
    if (!gemm_profile_on()) {
        gemm_run(C, ldc, A, a_rs, a_cs, B, b_rs, b_cs, bias, M, N, K, accumulate, NULL);
        return;
    }
    gemm_prof_mark pm;
    int threads = 1;
    gemm_profile_start(&pm);
    gemm_run(C, ldc, A, a_rs, a_cs, B, b_rs, b_cs, bias, M, N, K, accumulate, &threads);
    gemm_profile_stop(GEMM_PROF_GEMM, 2.0 * (double)M * (double)N * (double)(K > 0 ? K : 0), threads, &pm);
}

static void gemm_run(real *C, int64_t ldc, const real *A, int64_t a_rs, int64_t a_cs, const real *B, int64_t b_rs,
                     int64_t b_cs, const real *bias, int64_t M, int64_t N, int64_t K, int accumulate, int *threads_used) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                real v = bias ? bias[n] : (real)0;
                C[m * ldc + n] = accumulate ? C[m * ldc + n] + v : v;
            }
        return;
    }
    const kernel_desc *kd = current_kernel();
    const int MR = kd->mr, NR = kd->nr;
    const int serial = (double)M * (double)N * (double)K < GEMM_SERIAL_MACS;
    int threads = 1;
#ifdef _OPENMP
    if (!serial) threads = omp_get_max_threads();
#endif
    /* each thread packs its own blocks: no barrier inside the product, which matters on a
     * shared machine where a descheduled thread would stall the others at every barrier */
    gemm_args g = {A, B, bias, a_rs, a_cs, b_rs, b_cs, ldc, K, C, 0, accumulate, 0, 0};
    /* In the weight gradient op(A) = dout^T and op(B) = inp are tall (K = rows of the batch) and
     * reused by few tiles: copying them into panels would cost about as much as the product, so
     * they are read in place (op(A) along m, op(B) along n: both contiguous). Elsewhere op(B)
     * is the weight, small and reused by every row panel: packed. op(A) rows contiguous in k
     * are always read in place. */
    g.a_in_place = a_rs == 1;
    g.b_in_place = b_cs == 1 && M < 2048;
    /* the k blocking fixes the summation order: it depends on the shapes only, never on threads */
    g.kc_block = g.b_in_place ? KC_IN_PLACE : KC_PACKED;
    const int64_t ncmax = N < NC ? N : NC, kcmax = K < g.kc_block ? K : g.kc_block;
    const size_t bp_size = (size_t)((ncmax + NR - 1) / NR * NR * kcmax), ap_size = (size_t)(MC * kcmax);
    const size_t per_thread = (bp_size + ap_size + 15) / 16 * 16;
    real *ws = workspace(per_thread * (size_t)threads);
    if (!ws) {
        gemm_ref(C, ldc, A, a_rs, a_cs, B, b_rs, b_cs, bias, M, N, K, accumulate);
        return;
    }
    if (threads_used) *threads_used = threads;
    const int64_t m_panels = (M + MR - 1) / MR, n_panels = (N + NR - 1) / NR;
    /* split the larger of op(A) and op(B) between threads (each thread reads all of the
     * other), in whole panels; the other way when there are too few panels to share */
    int by_rows = M >= N;
    if (by_rows && m_panels < threads && n_panels >= threads) by_rows = 0;
    if (!by_rows && n_panels < threads && m_panels >= threads) by_rows = 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        const int64_t parts = by_rows ? m_panels : n_panels;
        const int64_t lo = parts * t / T, hi = parts * (t + 1) / T;
        real *bp = ws + per_thread * (size_t)t, *ap = bp + bp_size;
        if (lo < hi) {
            if (by_rows)
                gemm_block(kd, &g, bp, ap, lo * MR, hi * MR < M ? hi * MR : M, 0, N);
            else
                gemm_block(kd, &g, bp, ap, 0, M, lo * NR, hi * NR < N ? hi * NR : N);
        }
    }
}

/* ------------------------------------------------------------------ profiling */

int gemm_prof_flag = 0;
static int64_t prof_tab[GEMM_PROF_N][5];   /* calls, flops, wall_ns, thread_ns, cpu_ns */

int gemm_profile_enable(int on) { return __atomic_exchange_n(&gemm_prof_flag, on != 0, __ATOMIC_SEQ_CST); }

void gemm_profile_read(gemm_prof_entry out[GEMM_PROF_N], int reset) {
    for (int k = 0; k < GEMM_PROF_N; k++) {
        int64_t v[5];
        for (int i = 0; i < 5; i++)
            v[i] = reset ? __atomic_exchange_n(&prof_tab[k][i], 0, __ATOMIC_SEQ_CST)
                         : __atomic_load_n(&prof_tab[k][i], __ATOMIC_SEQ_CST);
        out[k] = (gemm_prof_entry){v[0], v[1], v[2], v[3], v[4]};
    }
}

const char *gemm_profile_name(int kind) {
    switch (kind) {
    case GEMM_PROF_GEMM: return "gemm";
    case GEMM_PROF_LINEAR_FP32: return "linear_fp32_packed";
    case GEMM_PROF_LINEAR_BF16: return "linear_bf16_packed";
    case GEMM_PROF_ATTENTION: return "attention_fused";
    default: return NULL;
    }
}

static int64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void gemm_profile_start(gemm_prof_mark *m) {
    m->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    m->wall_ns = clock_ns(CLOCK_MONOTONIC);
}

void gemm_profile_stop(int kind, double flops, int threads, const gemm_prof_mark *m) {
    const int64_t wall = clock_ns(CLOCK_MONOTONIC) - m->wall_ns, cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - m->cpu_ns;
    if (kind < 0 || kind >= GEMM_PROF_N) return;
    int64_t *e = prof_tab[kind];
    __atomic_fetch_add(&e[0], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&e[1], (int64_t)flops, __ATOMIC_RELAXED);
    __atomic_fetch_add(&e[2], wall, __ATOMIC_RELAXED);
    __atomic_fetch_add(&e[3], wall * (threads > 0 ? threads : 1), __ATOMIC_RELAXED);
    __atomic_fetch_add(&e[4], cpu, __ATOMIC_RELAXED);
}
