/* test_gemm.c: gemm (csrc/nn/gemm.c) against gemm_ref, and linear_* against linear_*_ref.
 *
 *   test_gemm            agreement on awkward shapes (edges of every block size), all stride
 *                        layouts, bias and accumulate, for every micro-kernel this CPU runs;
 *                        bitwise equality across 1, 2 and 3 threads. Prints
 *                        "N passed, M failed" and exits non-zero on a failure.
 *   test_gemm bench [M] [reps]
 *                        GFLOP/s of the three products of a 512 -> 512 Linear layer with M rows
 *                        (default 4096), best and median of reps, plus this CPU's fp32 FMA
 *                        throughput (the measured peak), one line of JSON each.
 * Built by tests/test_gemm.py and benchmarks/bench_gnn.py with the flags setup.py uses. */
#include "../nn/gemm.h"
#include "../nn/ops.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

static int passed = 0, failed = 0;
static uint64_t rs = 88172645463325252ull;
static double urand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0; }
static real *vec(int64_t n) { real *a = malloc(sizeof(real) * (size_t)(n ? n : 1)); for (int64_t i = 0; i < n; i++) a[i] = (real)(2 * urand() - 1); return a; }

static void set_threads(int t) {
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}

/* wall time, or with CPU_TIME=1 in the environment process CPU time (robust on a shared
 * machine when running one thread) */
static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("CPU_TIME") != NULL;
    if (cpu) return (double)clock() / CLOCKS_PER_SEC;
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* |x - ref| <= tol * (sum_k |a||b| + |bias| + |c0|): the rounding bound of a K-term sum */
static int close_enough(const real *x, const real *ref, const real *bound, int64_t n, double tol, double *worst) {
    int ok = 1;
    *worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - (double)ref[i]) / ((double)bound[i] + 1e-30);
        if (e > *worst) *worst = e;
        if (!(e <= tol)) ok = 0;
    }
    return ok;
}

/* layouts of op(A)[M,K] and op(B)[K,N] */
enum { LAY_FWD, LAY_DINP, LAY_DW, LAY_GENERIC, N_LAY };
static const char *LAY_NAME[N_LAY] = {"A@B^T (forward)", "A@B (dinp)", "A^T@B (dweight)", "strided"};

static void strides(int lay, int64_t M, int64_t N, int64_t K, int64_t *ars, int64_t *acs, int64_t *brs, int64_t *bcs,
                    int64_t *na, int64_t *nb) {
    switch (lay) {
    case LAY_FWD: *ars = K; *acs = 1; *brs = 1; *bcs = K; break;      /* A [M,K], B stored [N,K] */
    case LAY_DINP: *ars = K; *acs = 1; *brs = N; *bcs = 1; break;     /* A [M,K], B [K,N] */
    case LAY_DW: *ars = 1; *acs = M; *brs = N; *bcs = 1; break;       /* A stored [K,M], B [K,N] */
    default: *ars = 2 * K + 1; *acs = 2; *brs = 3; *bcs = 3 * K + 2; break; /* nothing contiguous */
    }
    *na = M && K ? (M - 1) * *ars + (K - 1) * *acs + 1 : 1;
    *nb = K && N ? (K - 1) * *brs + (N - 1) * *bcs + 1 : 1;
}

static void check_gemm(int64_t M, int64_t N, int64_t K, int lay, int accumulate, int with_bias) {
    int64_t ars, acs, brs, bcs, na, nb;
    strides(lay, M, N, K, &ars, &acs, &brs, &bcs, &na, &nb);
    const int64_t ldc = N + 3;   /* a C row stride that is not N */
    real *A = vec(na), *B = vec(nb), *bias = with_bias ? vec(N) : NULL, *C0 = vec(M * ldc);
    real *C = vec(M * ldc), *R = vec(M * ldc), *bound = vec(M * ldc);
    memcpy(C, C0, sizeof(real) * (size_t)(M * ldc));
    memcpy(R, C0, sizeof(real) * (size_t)(M * ldc));
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < ldc; n++) {
            if (n >= N) { bound[m * ldc + n] = 0; continue; }
            double s = (bias ? fabs((double)bias[n]) : 0) + (accumulate ? fabs((double)C0[m * ldc + n]) : 0);
            for (int64_t k = 0; k < K; k++) s += fabs((double)A[m * ars + k * acs] * (double)B[k * brs + n * bcs]);
            bound[m * ldc + n] = (real)s;
        }
    gemm(C, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, accumulate);
    gemm_ref(R, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, accumulate);
    double worst;
    /* a K-term float sum in any order is within ~K eps of the exact one, relative to the bound */
    double tol = sizeof(real) == 4 ? 2.4e-7 * (double)(K + 2) : 2.3e-16 * (double)(K + 2);
    int ok = close_enough(C, R, bound, M * ldc, tol, &worst);
    /* the padding columns between rows must be untouched */
    for (int64_t m = 0; m < M && ok; m++)
        for (int64_t n = N; n < ldc; n++)
            if (C[m * ldc + n] != C0[m * ldc + n]) ok = 0;
    if (ok) passed++;
    else {
        failed++;
        printf("FAIL gemm %s M=%lld N=%lld K=%lld acc=%d bias=%d isa=%s: worst %.3g (tol %.3g)\n", LAY_NAME[lay],
               (long long)M, (long long)N, (long long)K, accumulate, with_bias, gemm_isa_name(gemm_get_isa()), worst, tol);
    }
    free(A); free(B); free(bias); free(C0); free(C); free(R); free(bound);
}

static void check_linear(int64_t B, int C, int OC) {
    real *x = vec(B * C), *w = vec((int64_t)OC * C), *b = vec(OC), *dout = vec(B * OC);
    real *o1 = malloc(sizeof(real) * (size_t)(B * OC)), *o2 = malloc(sizeof(real) * (size_t)(B * OC));
    real *dx1 = vec(B * C), *dw1 = vec((int64_t)OC * C), *db1 = vec(OC);
    real *dx2 = malloc(sizeof(real) * (size_t)(B * C)), *dw2 = malloc(sizeof(real) * (size_t)OC * C), *db2 = malloc(sizeof(real) * (size_t)OC);
    memcpy(dx2, dx1, sizeof(real) * (size_t)(B * C));
    memcpy(dw2, dw1, sizeof(real) * (size_t)OC * C);
    memcpy(db2, db1, sizeof(real) * (size_t)OC);
    linear_forward(o1, x, w, b, B, C, OC);
    linear_forward_ref(o2, x, w, b, B, C, OC);
    linear_backward(dx1, dw1, db1, dout, x, w, B, C, OC);
    linear_backward_ref(dx2, dw2, db2, dout, x, w, B, C, OC);
    /* linear_backward_set: dinp overwritten, the same values as zeroing then accumulating */
    real *dx3 = vec(B * C), *dx4 = vec(B * C), *dw3 = vec((int64_t)OC * C), *dw4 = vec((int64_t)OC * C);
    memset(dx4, 0, sizeof(real) * (size_t)(B * C));
    memset(dw3, 0, sizeof(real) * (size_t)OC * C);
    memset(dw4, 0, sizeof(real) * (size_t)OC * C);
    linear_backward_set(dx3, dw3, NULL, dout, x, w, B, C, OC);
    linear_backward(dx4, dw4, NULL, dout, x, w, B, C, OC);
    int same = 1;
    for (int64_t i = 0; i < B * C; i++) same &= dx3[i] == dx4[i];
    for (int64_t i = 0; i < (int64_t)OC * C; i++) same &= dw3[i] == dw4[i];
    if (same) passed++;
    else { failed++; printf("FAIL linear_backward_set B=%lld C=%d OC=%d\n", (long long)B, C, OC); }
    free(dx3); free(dx4); free(dw3); free(dw4);
    /* values are O(1) with random signs: compare in norm */
    const real *got[4] = {o1, dx1, dw1, db1}, *want[4] = {o2, dx2, dw2, db2};
    const int64_t n[4] = {B * OC, B * C, (int64_t)OC * C, OC};
    const char *what[4] = {"linear_forward", "linear_backward dinp", "linear_backward dweight", "linear_backward dbias"};
    for (int t = 0; t < 4; t++) {
        double d = 0, r = 0;
        for (int64_t i = 0; i < n[t]; i++) {
            d += ((double)got[t][i] - want[t][i]) * ((double)got[t][i] - want[t][i]);
            r += (double)want[t][i] * want[t][i];
        }
        double e = sqrt(d / (r + 1e-300));
        double tol = t == 3 ? 0 : (sizeof(real) == 4 ? 1e-5 : 1e-13);   /* dbias keeps the reference's order */
        if (e <= tol) passed++;
        else { failed++; printf("FAIL %s B=%lld C=%d OC=%d: relative error %.3g\n", what[t], (long long)B, C, OC, e); }
    }
    free(x); free(w); free(b); free(dout); free(o1); free(o2); free(dx1); free(dw1); free(db1); free(dx2); free(dw2); free(db2);
}

/* the same call with 1, 2 and 3 threads must give the same bits */
static void check_threads(int64_t M, int64_t N, int64_t K, int lay) {
    int64_t ars, acs, brs, bcs, na, nb;
    strides(lay, M, N, K, &ars, &acs, &brs, &bcs, &na, &nb);
    real *A = vec(na), *B = vec(nb), *bias = vec(N), *C0 = vec(M * N);
    real *out[3];
    for (int t = 0; t < 3; t++) {
        out[t] = malloc(sizeof(real) * (size_t)(M * N));
        memcpy(out[t], C0, sizeof(real) * (size_t)(M * N));
        set_threads(t + 1);
        gemm(out[t], N, A, ars, acs, B, brs, bcs, lay == LAY_FWD ? bias : NULL, M, N, K, lay != LAY_FWD);
    }
    set_threads(2);
    int same = !memcmp(out[0], out[1], sizeof(real) * (size_t)(M * N)) && !memcmp(out[0], out[2], sizeof(real) * (size_t)(M * N));
    if (same) passed++;
    else { failed++; printf("FAIL thread determinism %s M=%lld N=%lld K=%lld\n", LAY_NAME[lay], (long long)M, (long long)N, (long long)K); }
    for (int t = 0; t < 3; t++) free(out[t]);
    free(A); free(B); free(bias); free(C0);
}

static void run_tests(void) {
    static const int64_t SIZES[] = {1, 3, 5, 12, 13, 31, 32, 33, 64, 95};
    const int ns = sizeof SIZES / sizeof SIZES[0];
    gemm_isa isas[3] = {GEMM_ISA_PORTABLE, GEMM_ISA_AVX2, GEMM_ISA_AVX512};
    for (int s = 0; s < 3; s++) {
        if (gemm_set_isa(isas[s]) != isas[s]) { printf("skip %s: not on this CPU or build\n", gemm_isa_name(isas[s])); continue; }
        for (int lay = 0; lay < N_LAY; lay++) {
            for (int a = 0; a < ns; a++)
                for (int b = 0; b < ns; b += 2)
                    for (int c = 0; c < ns; c += 3) check_gemm(SIZES[a], SIZES[b], SIZES[c], lay, (a + b + c) & 1, (a + c) & 1);
            /* across the k block edges (256 and 512), NC = 1024, and the serial / parallel threshold */
            check_gemm(37, 70, 257, lay, 0, 1);
            check_gemm(29, 1031, 40, lay, 1, 1);
            check_gemm(200, 96, 600, lay, 1, 0);
            check_gemm(130, 2100, 9, lay, 0, 1);
            check_gemm(0, 5, 5, lay, 0, 1);
            check_gemm(5, 7, 0, lay, 0, 1);
            check_gemm(5, 7, 0, lay, 1, 1);
            check_threads(301, 200, 300, lay);
            check_threads(64, 1100, 520, lay);
        }
        check_linear(1, 1, 1);
        check_linear(300, 9, 64);
        check_linear(517, 64, 64);
        check_linear(129, 512, 256);
        check_linear(1000, 5, 512);
    }
    gemm_set_isa(GEMM_ISA_AUTO);
    printf("%d passed, %d failed\n", passed, failed);
}

/* ------------------------------------------------------------------ benchmark */

#if defined(__GNUC__) && defined(__x86_64__) && defined(CM_REAL_IS_FLOAT)
/* 24 independent FMA chains (more than latency x ports), AVX-512 or AVX2 */
__attribute__((target("avx512f"))) static float fma_loop_512(long iters) {
    __m512 acc[24], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) static float fma_loop_256(long iters) {
    __m256 acc[12], x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    }
    float o[8], t = 0;
    for (int i = 1; i < 12; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    _mm256_storeu_ps(o, acc[0]);
    for (int i = 0; i < 8; i++) t += o[i];
    return t;
}
/* The core clock, from a chain of dependent register-register integer adds: each waits for
 * the one before, one cycle apiece on every x86 core (renamers eliminate moves and some
 * add-immediates, never an add of two registers), so adds/s = cycles/s. Run on `threads`
 * threads at once (the clock with every core busy); returns the slowest thread's GHz. */
static double add_chain_ghz(int threads) {
    const long iters = 50000000;   /* x 8 adds: 4e8 cycles, ~0.1 s */
    double worst = 1e30;
#pragma omp parallel num_threads(threads)
    {
        double best = 0;
        for (int rep = 0; rep < 5; rep++) {
            long x = 0, one = 1, n = iters;
            double t0 = now();
            __asm__ volatile("1:\n\t"
                             "add %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\t"
                             "add %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\tadd %2, %0\n\t"
                             "dec %1\n\tjnz 1b"
                             : "+r"(x), "+r"(n)
                             : "r"(one));
            double ghz = 8.0 * (double)iters / (now() - t0) / 1e9;
            if (ghz > best) best = ghz;
        }
#pragma omp critical
        if (best < worst) worst = best;
    }
    return worst;
}
/* Latency of one fp32 FMA in seconds: a single dependent chain (x = x * a + b). */
__attribute__((target("avx512f"))) static double fma_latency_s(void) {
    const long iters = 20000000;
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        __m512 x = _mm512_set1_ps(1.0f), a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
        double t0 = now();
        for (long it = 0; it < iters; it++) {
            x = _mm512_fmadd_ps(x, a, b);
            __asm__ volatile("" : "+v"(x));   /* keep the chain: no reassociation, no hoisting */
        }
        double dt = (now() - t0) / (double)iters;
        volatile float sink = _mm512_reduce_add_ps(x);
        (void)sink;
        if (dt < best) best = dt;
    }
    return best;
}
/* fp32 FLOP/s of pure FMA chains on `threads` threads (best of a few short runs) */
static double fma_peak(int threads, int isa) {
    const long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        volatile float sink = 0;
        double t0 = now();
#pragma omp parallel num_threads(threads)
        {
            float r = isa == GEMM_ISA_AVX512 ? fma_loop_512(iters) : fma_loop_256(iters);
#pragma omp atomic
            sink += r;
        }
        double dt = now() - t0;
        double flops = (double)threads * iters * (isa == GEMM_ISA_AVX512 ? 24.0 * 32 : 12.0 * 16);
        if (flops / dt > best) best = flops / dt;
    }
    return best;
}
#endif

static int cmp_double(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

static void bench_one(const char *name, int64_t M, int64_t N, int64_t K, int reps, real *C, int64_t ldc, const real *A,
                      int64_t ars, int64_t acs, const real *B, int64_t brs, int64_t bcs, const real *bias, int acc) {
    double *t = malloc(sizeof(double) * (size_t)reps);
    gemm(C, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, acc);   /* warm-up (workspace, caches) */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        gemm(C, ldc, A, ars, acs, B, brs, bcs, bias, M, N, K, acc);
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double fl = 2.0 * M * N * K;
    printf("{\"what\": \"gemm\", \"product\": \"%s\", \"M\": %lld, \"N\": %lld, \"K\": %lld, \"gflops_best\": %.2f, "
           "\"gflops_median\": %.2f}\n", name, (long long)M, (long long)N, (long long)K, fl / t[0] / 1e9,
           fl / t[reps / 2] / 1e9);
    free(t);
}

static void run_bench(int64_t M, int H, int reps) {
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("{\"what\": \"config\", \"isa\": \"%s\", \"threads\": %d}\n", gemm_isa_name(gemm_get_isa()), threads);
#if defined(__GNUC__) && defined(__x86_64__) && defined(CM_REAL_IS_FLOAT)
    int isa = gemm_get_isa() == GEMM_ISA_AVX512 ? GEMM_ISA_AVX512 : GEMM_ISA_AVX2;
    if (gemm_get_isa() >= GEMM_ISA_AVX2)
        for (int t = 1; t <= threads; t++)
            printf("{\"what\": \"fma_peak\", \"threads\": %d, \"gflops\": %.2f}\n", t, fma_peak(t, isa) / 1e9);
    for (int t = 1; t <= threads; t++)
        printf("{\"what\": \"clock\", \"threads\": %d, \"ghz_add_chain\": %.4f}\n", t, add_chain_ghz(t));
    if (gemm_get_isa() == GEMM_ISA_AVX512)
        printf("{\"what\": \"fma_latency\", \"ns\": %.4f}\n", fma_latency_s() * 1e9);
#endif
    real *x = vec(M * H), *w = vec((int64_t)H * H), *b = vec(H), *dout = vec(M * H), *out = vec(M * H), *dx = vec(M * H), *dw = vec((int64_t)H * H);
    bench_one("out = inp @ W^T", M, H, H, reps, out, H, x, H, 1, w, 1, H, b, 0);
    bench_one("dinp += dout @ W", M, H, H, reps, dx, H, dout, H, 1, w, H, 1, NULL, 1);
    bench_one("dW += dout^T @ inp", H, H, M, reps, dw, H, dout, 1, H, x, H, 1, NULL, 1);
    free(x); free(w); free(b); free(dout); free(out); free(dx); free(dw);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "bench")) {
        int64_t M = argc > 2 ? atoll(argv[2]) : 4096;
        int reps = argc > 3 ? atoi(argv[3]) : 20;
        int H = argc > 4 ? atoi(argv[4]) : 512;
        run_bench(M, H, reps);
        return 0;
    }
    run_tests();
    gemm_release();
    return failed ? 1 : 0;
}
