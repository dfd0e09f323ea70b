/* test_gemm_bf16.c: the bf16 Linear (csrc/nn/gemm_bf16.c) against an fp32 reference on
 * bf16-rounded inputs, alone (no Python).
 *
 *   test_gemm_bf16           every shape: the kernel (where the CPU has avx512_bf16) and the
 *                            fallback (kernel disabled) against gemm_bf16_linear_ref; rounding;
 *                            the hook (declines without a cache or kernel, packs once, agrees);
 *                            row independence (a row's result does not depend on M) and
 *                            thread independence. Prints "N passed, M failed, K skipped".
 *   test_gemm_bf16 peak      JSON lines: GFLOP/s of the FMA and vdpbf16ps peak loops on
 *                            OMP_NUM_THREADS threads (0 where the CPU lacks them).
 *   test_gemm_bf16 bench M N K   JSON: GFLOP/s of the kernel on out[M,N] = inp[M,K] W^T.
 * Build: cc -std=c11 -O2 -fopenmp test_gemm_bf16.c ../nn/gemm_bf16.c ../nn/gemm.c -lm */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../nn/gemm_bf16.h"

#include "check.h"

/* max |a - b| relative to the largest |ref| and the sum of |products| scale */
static double max_err(const float *a, const float *ref, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= e)) e = d;   /* NaN propagates */
    }
    return e;
}

static void test_round(void) {
    CHECK(gemm_bf16_round(1.0f) == 0x3f80, "1.0 -> %04x", gemm_bf16_round(1.0f));
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0) */
    CHECK(gemm_bf16_round(1.00390625f) == 0x3f80, "tie to even");
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even (1 + 2^-6) */
    CHECK(gemm_bf16_round(1.01171875f) == 0x3f82, "tie to even up: %04x", gemm_bf16_round(1.01171875f));
    CHECK(gemm_bf16_round(-2.0f) == 0xc000, "-2");
    CHECK(isnan(gemm_bf16_to_float(gemm_bf16_round(NAN))), "NaN stays NaN");
    CHECK(isinf(gemm_bf16_to_float(gemm_bf16_round(INFINITY))), "inf stays inf");
    /* relative rounding error <= 2^-8 (8 significant bits) */
    double worst = 0;
    for (int i = 0; i < 100000; i++) {
        float x = urand_pm1f() * 1000.0f;
        if (x == 0) continue;
        double r = fabs(gemm_bf16_to_float(gemm_bf16_round(x)) - (double)x) / fabs((double)x);
        if (r > worst) worst = r;
    }
    CHECK(worst <= 1.0 / 256 + 1e-12, "bf16 rounding error %g > 2^-8", worst);
}

/* out of the packed product vs the reference; tolerance: fp32 sums of K exact products */
static void check_shape(int64_t M, int64_t N, int64_t K, int with_bias) {
    float *inp = malloc(sizeof(float) * (size_t)(M * K)), *W = malloc(sizeof(float) * (size_t)(N * K));
    float *bias = malloc(sizeof(float) * (size_t)N), *out = malloc(sizeof(float) * (size_t)(M * N));
    float *ref = malloc(sizeof(float) * (size_t)(M * N)), *one = malloc(sizeof(float) * (size_t)N);
    for (int64_t i = 0; i < M * K; i++) inp[i] = urand_pm1f();
    for (int64_t i = 0; i < N * K; i++) W[i] = urand_pm1f();
    for (int64_t i = 0; i < N; i++) bias[i] = urand_pm1f();
    gemm_bf16_weight pw;
    CHECK(gemm_bf16_pack(&pw, W, N, K) == 0, "pack");
    gemm_bf16_linear_ref(ref, inp, W, with_bias ? bias : NULL, M, N, K);
    const double tol = 4e-7 * (double)K;   /* |a| |w| <= 1: fp32 rounding of at most K sums */
    for (int on = 1; on >= 0; on--) {
        const int avail = gemm_bf16_set_enabled(on);
        if (on && !avail) { skipped++; continue; }   /* no avx512_bf16 here: only the fallback */
        memset(out, 0xff, sizeof(float) * (size_t)(M * N));
        gemm_bf16_linear(out, inp, &pw, with_bias ? bias : NULL, M);
        const double e = max_err(out, ref, M * N);
        CHECK(e <= tol, "%s M=%lld N=%lld K=%lld bias=%d: max err %g > %g", on ? "kernel" : "fallback", (long long)M,
              (long long)N, (long long)K, with_bias, e, tol);
        /* a row alone gives bitwise the row of the batch */
        const int64_t r = M / 2;
        gemm_bf16_linear(one, inp + r * K, &pw, with_bias ? bias : NULL, 1);
        CHECK(memcmp(one, out + r * N, sizeof(float) * (size_t)N) == 0, "row %lld alone differs (%s)", (long long)r,
              on ? "kernel" : "fallback");
    }
    gemm_bf16_set_enabled(1);
    gemm_bf16_weight_free(&pw);
    free(inp); free(W); free(bias); free(out); free(ref); free(one);
}

/* the result against bf16-free fp32 is within bf16's rounding: a sanity bound on the meaning */
static void check_against_fp32(void) {
    const int64_t M = 50, N = 64, K = 128;
    float *inp = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *out = malloc(sizeof(float) * M * N);
    for (int64_t i = 0; i < M * K; i++) inp[i] = urand_pm1f();
    for (int64_t i = 0; i < N * K; i++) W[i] = urand_pm1f();
    gemm_bf16_weight pw;
    gemm_bf16_pack(&pw, W, N, K);
    gemm_bf16_linear(out, inp, &pw, NULL, M);
    double worst = 0;
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < K; k++) { s += (double)inp[m * K + k] * W[n * K + k]; a += fabs(inp[m * K + k] * W[n * K + k]); }
            double r = fabs(out[m * N + n] - s) / a;
            if (r > worst) worst = r;
        }
    CHECK(worst <= 2.0 / 256, "bf16 product vs fp32: relative error %g (of sum |a w|) > 2^-7", worst);
    gemm_bf16_weight_free(&pw);
    free(inp); free(W); free(out);
}

static void check_hook(void) {
    const int64_t M = 40, N = 96, K = 64;
    float *inp = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
    float *out = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    for (int64_t i = 0; i < M * K; i++) inp[i] = urand_pm1f();
    for (int64_t i = 0; i < N * K; i++) W[i] = urand_pm1f();
    for (int64_t i = 0; i < N; i++) b[i] = urand_pm1f();
    CHECK(gemm_bf16_linear_hook(out, inp, W, b, M, K, N) == 0, "hook without a cache must decline");
    CHECK(gemm_bf16_cache_begin(1) == 0, "cache_begin");
    CHECK(gemm_bf16_cache_begin(1) == -1, "a second cache_begin on the same thread must fail");
    const int avail = gemm_bf16_available();
    int took = gemm_bf16_linear_hook(out, inp, W, b, M, K, N);
    CHECK(took == avail, "hook took %d with kernel available %d", took, avail);
    if (took) {
        gemm_bf16_linear_ref(ref, inp, W, b, M, N, K);
        CHECK(max_err(out, ref, M * N) <= 4e-7 * K, "hook result");
        /* a second call hits the cache (same result) */
        float *again = malloc(sizeof(float) * M * N);
        CHECK(gemm_bf16_linear_hook(again, inp, W, b, M, K, N) == 1, "second hook call");
        CHECK(memcmp(again, out, sizeof(float) * M * N) == 0, "cached weights give the same result");
        /* the same pointer with another shape is another entry */
        CHECK(gemm_bf16_linear_hook(again, inp, W, b, M, K / 2, N) == 1, "other shape");
        free(again);
    } else skipped++;
    /* narrow products run in fp32 (check_narrow) wherever the fp32 packed kernel runs */
    CHECK(gemm_bf16_linear_hook(out, inp, W, b, M, K, 8) == gemm_f32_packed_available(), "narrow products");
    gemm_bf16_set_enabled(0);
    CHECK(gemm_bf16_linear_hook(out, inp, W, b, M, K, N) == 0, "disabled kernel: the hook declines");
    gemm_bf16_set_enabled(1);
    gemm_bf16_cache_end();
    CHECK(gemm_bf16_linear_hook(out, inp, W, b, M, K, N) == 0, "after cache_end the hook declines");
    free(inp); free(W); free(b); free(out); free(ref);
}

/* fp32 prepacked: the kernel (AVX-512) and the plain loops against double sums; the fp32 cache
 * behind the hook; a bf16 cache with the bf16 kernel off packs fp32 (the fallback) */
static void check_f32_packed(void) {
    const int64_t shapes[][3] = {{1, 64, 64}, {7, 192, 64}, {34, 1088, 17}, {13, 100, 128}, {6, 16, 3}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
        float *inp = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *b = malloc(sizeof(float) * N);
        float *out = malloc(sizeof(float) * M * N), *one = malloc(sizeof(float) * N);
        for (int64_t j = 0; j < M * K; j++) inp[j] = urand_pm1f();
        for (int64_t j = 0; j < N * K; j++) W[j] = urand_pm1f();
        for (int64_t j = 0; j < N; j++) b[j] = urand_pm1f();
        gemm_bf16_weight pw;
        CHECK(gemm_f32_pack(&pw, W, N, K) == 0, "f32 pack");
        gemm_f32_linear(out, inp, &pw, b, M);
        double e = 0;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = b[n];
                for (int64_t k = 0; k < K; k++) s += (double)inp[m * K + k] * W[n * K + k];
                const double d = fabs(out[m * N + n] - s);
                if (!(d <= e)) e = d;
            }
        CHECK(e <= 2e-7 * (double)(K + 1), "f32 packed M=%lld N=%lld K=%lld: max err %g", (long long)M, (long long)N,
              (long long)K, e);
        gemm_f32_linear(one, inp + (M - 1) * K, &pw, b, 1);
        CHECK(memcmp(one, out + (M - 1) * N, sizeof(float) * N) == 0, "f32 packed: last row alone differs");
        /* through the hook: an fp32 cache, and a bf16 cache with the bf16 kernel off */
        for (int mode = 0; mode < 2; mode++) {
            if (mode) gemm_bf16_set_enabled(0);
            gemm_bf16_cache_begin(mode);
            float *h = malloc(sizeof(float) * M * N);
            const int took = gemm_bf16_linear_hook(h, inp, W, b, M, K, N);
            CHECK(took == gemm_f32_packed_available(), "f32 hook took %d", took);
            if (took) CHECK(memcmp(h, out, sizeof(float) * M * N) == 0, "f32 hook (mode %d) differs", mode);
            free(h);
            gemm_bf16_cache_end();
            gemm_bf16_set_enabled(1);
        }
        gemm_bf16_weight_free(&pw);
        free(inp); free(W); free(b); free(out); free(one);
    }
}

/* Narrow products (N < 16) through the hook, in an fp32 and a bf16 cache (both fp32 there):
 * against double sums with the epilogue (bias, relu, residual, residual aliasing out); the last
 * row alone gives its row bit for bit; 1 and 3 threads give the same bits. */
static void check_narrow(void) {
    if (!gemm_f32_packed_available()) { skipped++; return; }
    const int64_t shapes[][3] = {{37, 1, 64}, {5, 3, 17}, {16, 15, 128}, {9, 1, 5}, {3, 2, 33}, {517, 1, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int mode = 0; mode < 2; mode++)
            for (int ep = 0; ep < 3; ep++) {   /* 0: bias; 1: bias, relu, res; 2: res aliasing out */
                const int64_t M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
                float *inp = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
                float *b = malloc(sizeof(float) * N), *res = malloc(sizeof(float) * M * N);
                float *out = malloc(sizeof(float) * M * N), *o2 = malloc(sizeof(float) * M * N);
                for (int64_t j = 0; j < M * K; j++) inp[j] = urand_pm1f();
                for (int64_t j = 0; j < N * K; j++) W[j] = urand_pm1f();
                for (int64_t j = 0; j < N; j++) b[j] = urand_pm1f();
                for (int64_t j = 0; j < M * N; j++) res[j] = out[j] = urand_pm1f();
                const int relu = ep == 1;
                const float *r = ep == 1 ? res : ep == 2 ? out : NULL;
                gemm_bf16_cache_begin(mode);
                CHECK(gemm_bf16_linear_hook_ex(out, inp, W, b, r, relu, M, K, N) == 1,
                      "narrow M%lld N%lld K%lld: declined", (long long)M, (long long)N, (long long)K);
                double e = 0;
                for (int64_t m = 0; m < M; m++)
                    for (int64_t n = 0; n < N; n++) {
                        double s = b[n];
                        for (int64_t k = 0; k < K; k++) s += (double)inp[m * K + k] * W[n * K + k];
                        if (relu && s < 0) s = 0;
                        if (ep) s += res[m * N + n];
                        const double d = fabs(out[m * N + n] - s);
                        if (!(d <= e)) e = d;
                    }
                CHECK(e <= 2e-7 * (double)(K + 2), "narrow M%lld N%lld K%lld mode %d ep %d: max err %g", (long long)M,
                      (long long)N, (long long)K, mode, ep, e);
                if (ep == 0) {
                    gemm_bf16_linear_hook_ex(o2, inp + (M - 1) * K, W, b, NULL, 0, 1, K, N);
                    CHECK(memcmp(o2, out + (M - 1) * N, sizeof(float) * N) == 0, "narrow: the last row alone differs");
#ifdef _OPENMP
                    const int nt = omp_get_max_threads();
                    omp_set_num_threads(1);
                    gemm_bf16_linear_hook_ex(o2, inp, W, b, NULL, 0, M, K, N);
                    omp_set_num_threads(3);
                    gemm_bf16_linear_hook_ex(out, inp, W, b, NULL, 0, M, K, N);
                    omp_set_num_threads(nt);
                    CHECK(memcmp(o2, out, sizeof(float) * M * N) == 0, "narrow: 1 and 3 threads differ");
#endif
                }
                gemm_bf16_cache_end();
                free(inp); free(W); free(b); free(res); free(out); free(o2);
            }
}

static void check_threads(void) {
#ifdef _OPENMP
    if (!gemm_bf16_available()) { skipped++; return; }
    const int64_t M = 517, N = 192, K = 64;
    float *inp = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
    float *o1 = malloc(sizeof(float) * M * N), *o2 = malloc(sizeof(float) * M * N);
    for (int64_t i = 0; i < M * K; i++) inp[i] = urand_pm1f();
    for (int64_t i = 0; i < N * K; i++) W[i] = urand_pm1f();
    gemm_bf16_weight pw;
    gemm_bf16_pack(&pw, W, N, K);
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    gemm_bf16_linear(o1, inp, &pw, NULL, M);
    omp_set_num_threads(3);
    gemm_bf16_linear(o2, inp, &pw, NULL, M);
    omp_set_num_threads(nt);
    CHECK(memcmp(o1, o2, sizeof(float) * M * N) == 0, "1 and 3 threads differ");
    gemm_bf16_weight_free(&pw);
    free(inp); free(W); free(o1); free(o2);
#else
    skipped++;
#endif
}

static double wall(void) {
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

int main(int argc, char **argv) {
    rng_state = 0x1234567887654321ull;   /* the inputs this test was written with */
    if (argc > 1 && !strcmp(argv[1], "peak")) {
        int nt = 1;
#ifdef _OPENMP
        nt = omp_get_max_threads();
#endif
        const int64_t iters = 20000000;
        printf("{\"what\": \"fp32_fma\", \"threads\": %d, \"gflops\": %.2f}\n", nt, gemm_bf16_peak_fma(iters));
        printf("{\"what\": \"bf16_dp\", \"threads\": %d, \"gflops\": %.2f}\n", nt, gemm_bf16_peak_dpbf16(iters));
        return 0;
    }
    if (argc > 4 && !strcmp(argv[1], "bench")) {
        const int64_t M = atoll(argv[2]), N = atoll(argv[3]), K = atoll(argv[4]);
        float *inp = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K), *out = malloc(sizeof(float) * M * N);
        for (int64_t i = 0; i < M * K; i++) inp[i] = urand_pm1f();
        for (int64_t i = 0; i < N * K; i++) W[i] = urand_pm1f();
        gemm_bf16_weight pw;
        gemm_bf16_pack(&pw, W, N, K);
        double best = 1e30;
        for (int r = 0; r < 20; r++) {
            double t = wall();
            gemm_bf16_linear(out, inp, &pw, NULL, M);
            t = wall() - t;
            if (t < best) best = t;
        }
        printf("{\"what\": \"bf16_linear\", \"M\": %lld, \"N\": %lld, \"K\": %lld, \"gflops\": %.2f, \"kernel\": %d}\n",
               (long long)M, (long long)N, (long long)K, 2.0 * M * N * K / best / 1e9, gemm_bf16_available());
        return 0;
    }
    printf("avx512_bf16 kernel: %s\n", gemm_bf16_cpu_supported() ? "yes" : "no (fallback only)");
    test_round();
    const int64_t shapes[][3] = {{1, 64, 64}, {2, 192, 64}, {5, 64, 128}, {6, 128, 64}, {7, 16, 8},  {13, 1088, 17},
                                 {34, 256, 14}, {100, 100, 33}, {200, 64, 64}, {3, 17, 9}, {64, 300, 511}, {12, 65, 3}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int b = 0; b < 2; b++) check_shape(shapes[i][0], shapes[i][1], shapes[i][2], b);
    check_against_fp32();
    check_hook();
    check_f32_packed();
    check_narrow();
    check_threads();
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed != 0;
}
