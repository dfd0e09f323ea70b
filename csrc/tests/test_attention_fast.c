/* test_attention_fast.c: the float attention forward of csrc/nn/transformer.c, alone (no Python):
 * every ISA path (AVX-512's fused short-sequence kernel, AVX2 and portable's generic body)
 * against plain double loops, over self- and cross-attention shapes with odd token counts
 * (1, 4, 17, 33 queries; 1..300 keys), head widths 8..64, and strides as in the fused q|k|v
 * projection. Also: out is bitwise the same with att NULL (inference) as with att kept; a batch
 * row's result does not depend on the other rows; the same for 1 and N OpenMP threads.
 *   test_attention_fast            prints "N passed, M failed, K skipped"; exit 1 on failure
 *   test_attention_fast bench B T S C NH reps   JSON: GFLOP/s of the forward (the two products)
 * Build: cc -std=c11 -O2 -fopenmp -D_GNU_SOURCE test_attention_fast.c ../nn/transformer.c
 *        ../nn/ops.c ../nn/gemm.c ../nn/gemm_bf16.c -lm */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../nn/gemm.h"
#include "../nn/transformer.h"

static int passed, failed, skipped;
#define CHECK(cond, ...)                                                                                      \
    do {                                                                                                      \
        if (cond) passed++;                                                                                   \
        else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); }    \
    } while (0)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float urand(void) {   /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* The definition in double: out[b,t,h] = softmax(q.k / sqrt(hs)) v. */
static void attention_double(double *out, double *att, const float *q, const float *k, const float *v, int B, int T,
                             int S, int C, int NH, int ldq, int ldkv) {
    const int hs = C / NH;
    double *sc = malloc(sizeof(double) * (size_t)S);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *qr = q + ((int64_t)b * T + t) * ldq + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s < S; s++) {
                    const float *kr = k + ((int64_t)b * S + s) * ldkv + h * hs;
                    double d = 0;
                    for (int j = 0; j < hs; j++) d += (double)qr[j] * kr[j];
                    sc[s] = d / sqrt((double)hs);
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                for (int s = 0; s < S; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int s = 0; s < S; s++) att[(((int64_t)b * NH + h) * T + t) * S + s] = sc[s] / sum;
                for (int j = 0; j < hs; j++) {
                    double o = 0;
                    for (int s = 0; s < S; s++) o += sc[s] / sum * v[((int64_t)b * S + s) * ldkv + h * hs + j];
                    out[((int64_t)b * T + t) * C + h * hs + j] = o;
                }
            }
    free(sc);
}

typedef struct { int B, T, S, C, NH, self; } shape;

static void check_shape(const shape *sh, gemm_isa isa) {
    const int B = sh->B, T = sh->T, S = sh->self ? sh->T : sh->S, C = sh->C, NH = sh->NH;
    const int ldq = sh->self ? 3 * C : C, ldkv = sh->self ? 3 * C : 2 * C;
    const int64_t nq = (int64_t)B * T * ldq, nkv = sh->self ? 0 : (int64_t)B * S * ldkv, no = (int64_t)B * T * C,
                  na = (int64_t)B * NH * T * S;
    float *q = malloc(sizeof(float) * (size_t)nq), *kv = nkv ? malloc(sizeof(float) * (size_t)nkv) : NULL;
    for (int64_t i = 0; i < nq; i++) q[i] = 2.5f * urand();
    for (int64_t i = 0; i < nkv; i++) kv[i] = 2.5f * urand();
    const float *k = sh->self ? q + C : kv, *v = sh->self ? q + 2 * C : kv + C;
    float *out = malloc(sizeof(float) * (size_t)no), *out2 = malloc(sizeof(float) * (size_t)no);
    float *att = malloc(sizeof(float) * (size_t)na);
    double *ro = malloc(sizeof(double) * (size_t)no), *ra = malloc(sizeof(double) * (size_t)na);
    attention_double(ro, ra, q, k, v, B, T, S, C, NH, ldq, ldkv);
    attention_forward(out, att, q, k, v, B, T, S, C, NH, ldq, ldkv);
    double eo = 0, ea = 0;
    for (int64_t i = 0; i < no; i++) eo = fmax(eo, fabs(out[i] - ro[i]));
    for (int64_t i = 0; i < na; i++) ea = fmax(ea, fabs(att[i] - ra[i]));
    const char *name = gemm_isa_name(isa);
    CHECK(eo < 2e-5 && ea < 2e-6, "%s B%d T%d S%d C%d NH%d self%d: |out - ref| %.2e, |att - ref| %.2e", name, B, T, S,
          C, NH, sh->self, eo, ea);
    /* att NULL (inference): the same out, bit for bit */
    attention_forward(out2, NULL, q, k, v, B, T, S, C, NH, ldq, ldkv);
    CHECK(memcmp(out, out2, sizeof(float) * (size_t)no) == 0, "%s T%d S%d C%d: out differs with att NULL", name, T, S, C);
    /* the last row alone gives its rows of the batch, bit for bit */
    const int b = B - 1;
    attention_forward(out2, att, q + (int64_t)b * T * ldq, k + (int64_t)b * S * ldkv, v + (int64_t)b * S * ldkv, 1, T,
                      S, C, NH, ldq, ldkv);
    CHECK(memcmp(out + (int64_t)b * T * C, out2, sizeof(float) * (size_t)T * C) == 0,
          "%s T%d S%d C%d: a row's result depends on the batch", name, T, S, C);
#ifdef _OPENMP
    const int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    attention_forward(out2, NULL, q, k, v, B, T, S, C, NH, ldq, ldkv);
    omp_set_num_threads(nt);
    CHECK(memcmp(out, out2, sizeof(float) * (size_t)no) == 0, "%s T%d S%d C%d: 1 thread differs from %d", name, T, S,
          C, nt);
#endif
    free(q); free(kv); free(out); free(out2); free(att); free(ro); free(ra);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(int argc, char **argv) {
    if (argc < 8) { fprintf(stderr, "usage: bench B T S C NH reps\n"); return 2; }
    const int B = atoi(argv[2]), T = atoi(argv[3]), S = atoi(argv[4]), C = atoi(argv[5]), NH = atoi(argv[6]),
              reps = atoi(argv[7]);
    const int ldq = 3 * C;
    float *q = malloc(sizeof(float) * (size_t)B * (size_t)(T > S ? T : S) * ldq), *out = malloc(sizeof(float) * (size_t)B * T * C);
    for (int64_t i = 0; i < (int64_t)B * (T > S ? T : S) * ldq; i++) q[i] = urand();
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = now();
        attention_forward(out, NULL, q, q + C, q + 2 * C, B, T, S, C, NH, ldq, ldq);
        const double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    printf("{\"isa\": \"%s\", \"B\": %d, \"T\": %d, \"S\": %d, \"C\": %d, \"NH\": %d, \"s\": %.6g, \"gflops\": %.2f}\n",
           gemm_isa_name(gemm_get_isa()), B, T, S, C, NH, best, 4.0 * B * T * S * C / best / 1e9);
    free(q); free(out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "bench") == 0) return bench(argc, argv);
    const shape shapes[] = {
        {3, 17, 17, 64, 4, 1},  {3, 17, 4, 64, 4, 0},  {5, 4, 4, 64, 4, 1},   {2, 1, 1, 16, 1, 1},
        {2, 1, 5, 16, 1, 0},    {2, 16, 16, 64, 4, 1}, {2, 33, 20, 128, 4, 0}, {2, 9, 300, 64, 1, 0},
        {2, 17, 17, 48, 3, 1},  {2, 9, 9, 40, 5, 1},   {1, 40, 13, 256, 4, 1}, {4, 7, 3, 32, 2, 0},
    };
    const gemm_isa isas[] = {GEMM_ISA_AVX512, GEMM_ISA_AVX2, GEMM_ISA_PORTABLE};
    for (int s = 0; s < 3; s++) {
        if (gemm_set_isa(isas[s]) != isas[s]) {
            printf("skip %s: not on this CPU or build\n", gemm_isa_name(isas[s]));
            skipped++;
            continue;
        }
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&shapes[i], isas[s]);
    }
    gemm_set_isa(GEMM_ISA_AUTO);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
