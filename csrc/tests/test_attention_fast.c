/* test_attention_fast.c: the float attention forward and layer norm of csrc/nn/transformer.c,
 * alone (no Python). Attention:
 * every ISA path (AVX-512's short-sequence kernels: pairs in the lanes for 16-channel heads and
 * up to 32 keys, queries in the lanes otherwise; AVX2 and portable's generic body)
 * against plain double loops, over self- and cross-attention shapes with odd token counts
 * (1, 4, 17, 33 queries; 1..300 keys), head widths 8..64, and strides as in the fused q|k|v
 * projection. Also: out is bitwise the same with att NULL (inference) as with att kept; a batch
 * row's result does not depend on the other rows; the same for 1 and N OpenMP threads. And the
 * blocks' inference form (a packed-weight cache open, dropout 0: fused epilogues, no stored
 * probabilities) against their plain form, for encoder and decoder, ReLU and GELU. Layer norm
 * (rows in groups of 16 on AVX-512) on every ISA path against double loops over odd row counts
 * and widths, row and thread independence.
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
#include "../nn/gemm_bf16.h"
#include "../nn/transformer.h"

#include "check.h"

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
    for (int64_t i = 0; i < nq; i++) q[i] = 2.5f * urand_pm1f();
    for (int64_t i = 0; i < nkv; i++) kv[i] = 2.5f * urand_pm1f();
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

/* Layer norm on the current ISA path vs double loops; a row alone gives its rows of the batch. */
static void check_layernorm(int64_t N, int C, gemm_isa isa) {
    float *x = malloc(sizeof(float) * (size_t)(N * C)), *o = malloc(sizeof(float) * (size_t)(N * C));
    float *o2 = malloc(sizeof(float) * (size_t)C), *w = malloc(sizeof(float) * (size_t)C), *b = malloc(sizeof(float) * (size_t)C);
    float *mean = malloc(sizeof(float) * (size_t)N), *rstd = malloc(sizeof(float) * (size_t)N), m1, r1;
    for (int64_t i = 0; i < N * C; i++) x[i] = 3.0f + 2.0f * urand_pm1f();
    for (int c = 0; c < C; c++) { w[c] = 1.0f + 0.5f * urand_pm1f(); b[c] = 0.5f * urand_pm1f(); }
    layernorm_forward(o, mean, rstd, x, w, b, N, C);
    double eo = 0, em = 0, er = 0;
    for (int64_t n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[n * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
        const double r = 1.0 / sqrt(v / C + CM_LN_EPS);
        em = fmax(em, fabs(mean[n] - m));
        er = fmax(er, fabs(rstd[n] - r) / r);
        for (int c = 0; c < C; c++) eo = fmax(eo, fabs(o[n * C + c] - ((x[n * C + c] - m) * r * w[c] + b[c])));
    }
    CHECK(eo < 5e-5 && em < 5e-6 && er < 5e-6, "%s layernorm N%lld C%d: |out| %.2e |mean| %.2e rel |rstd| %.2e",
          gemm_isa_name(isa), (long long)N, C, eo, em, er);
    layernorm_forward(o2, &m1, &r1, x + (N - 1) * C, w, b, 1, C);
    CHECK(memcmp(o2, o + (N - 1) * C, sizeof(float) * (size_t)C) == 0 && m1 == mean[N - 1] && r1 == rstd[N - 1],
          "%s layernorm N%lld C%d: a row's result depends on the batch", gemm_isa_name(isa), (long long)N, C);
    free(x); free(o); free(o2); free(w); free(b); free(mean); free(rstd);
}

/* One block, plain form (no cache: ops.c's Linear) vs inference form (fp32 packed-weight cache):
 * the same function to float rounding; and the inference form of the last row alone equals its
 * rows of the batch bit for bit. */
static void check_block_forms(int decoder, cm_activation act) {
    const int B = 5, T = 17, S = 4, C = 64, NH = 4, F = 128;
    int64_t ps[TBP_N], as[TBA_N], mask_bytes;
    const int64_t np = tblock_param_sizes(ps, C, F, decoder), na = tblock_act_sizes(as, &mask_bytes, B, T, S, C, NH, F, decoder);
    real *pm = malloc(sizeof(real) * (size_t)np), *am = malloc(sizeof(real) * (size_t)na);
    uint8_t *mask = malloc((size_t)mask_bytes);
    tblock_params p;
    tblock_acts a;
    tblock_params_carve(&p, pm, ps);
    tblock_params_init(&p, ps, C, F, 11 + (uint64_t)decoder);
    for (int i = 0; i < TBP_N; i++)   /* non-trivial norms and biases */
        if (p.t[i] && (i == TBP_LN1_B || i == TBP_LN2_B || i == TBP_ATTN_BQKV || i == TBP_ATTN_BO || i == TBP_LNX_W))
            for (int64_t k = 0; k < ps[i]; k++) p.t[i][k] += 0.3f * urand_pm1f();
    tblock_acts_carve(&a, am, mask, as);
    const int64_t n = (int64_t)B * T * C, nm = (int64_t)B * S * C;
    real *x = malloc(sizeof(real) * (size_t)n), *mem = malloc(sizeof(real) * (size_t)nm);
    real *o1 = malloc(sizeof(real) * (size_t)n), *o2 = malloc(sizeof(real) * (size_t)n), *o3 = malloc(sizeof(real) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = 1.5f * urand_pm1f();
    for (int64_t i = 0; i < nm; i++) mem[i] = 1.5f * urand_pm1f();
    const int64_t row = (int64_t)T * C, b = B - 1;
    if (decoder) decoder_block_forward(o1, &a, x, mem, &p, B, T, S, C, NH, F, act, 0, 1);
    else encoder_block_forward(o1, &a, x, &p, B, T, C, NH, F, act, 0, 1);
    const int open = gemm_bf16_cache_begin(0) == 0;
    if (decoder) {
        decoder_block_forward(o2, &a, x, mem, &p, B, T, S, C, NH, F, act, 0, 1);
        decoder_block_forward(o3, &a, x + b * row, mem + b * S * C, &p, 1, T, S, C, NH, F, act, 0, 1);
    } else {
        encoder_block_forward(o2, &a, x, &p, B, T, C, NH, F, act, 0, 1);
        encoder_block_forward(o3, &a, x + b * row, &p, 1, T, C, NH, F, act, 0, 1);
    }
    if (open) gemm_bf16_cache_end();
    double e = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) { e = fmax(e, fabs(o1[i] - o2[i])); mx = fmax(mx, fabs(o1[i])); }
    CHECK(open && e <= 1e-5 * (1 + mx), "%s %s: inference form differs from the plain one by %.2e (max |out| %.2f)",
          decoder ? "decoder" : "encoder", act == CM_ACT_RELU ? "relu" : "gelu", e, mx);
    CHECK(memcmp(o2 + b * row, o3, sizeof(real) * (size_t)row) == 0, "%s: inference form of a row depends on the batch",
          decoder ? "decoder" : "encoder");
    free(pm); free(am); free(mask); free(x); free(mem); free(o1); free(o2); free(o3);
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
    for (int64_t i = 0; i < (int64_t)B * (T > S ? T : S) * ldq; i++) q[i] = urand_pm1f();
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
        /* the pairs kernel (16-channel heads, <= 32 keys): queries in several chunks (70 x 20:
         * 25 a chunk; 32 x 32: 16), an odd number of live pairs (5; 21 = 16 + 5) */
        {3, 70, 20, 64, 4, 0},  {2, 32, 32, 32, 2, 1}, {5, 9, 7, 16, 1, 0},   {7, 13, 13, 48, 3, 1},
    };
    const gemm_isa isas[] = {GEMM_ISA_AVX512, GEMM_ISA_AVX2, GEMM_ISA_PORTABLE};
    for (int s = 0; s < 3; s++) {
        if (gemm_set_isa(isas[s]) != isas[s]) {
            printf("skip %s: not on this CPU or build\n", gemm_isa_name(isas[s]));
            skipped++;
            continue;
        }
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(&shapes[i], isas[s]);
        const int ln[][2] = {{37, 64}, {16, 16}, {5, 48}, {300, 80}, {33, 256}, {1, 64}, {7, 24}};
        for (size_t i = 0; i < sizeof ln / sizeof ln[0]; i++) check_layernorm(ln[i][0], ln[i][1], isas[s]);
    }
    gemm_set_isa(GEMM_ISA_AUTO);
    for (int d = 0; d < 2; d++) {
        check_block_forms(d, CM_ACT_RELU);
        check_block_forms(d, CM_ACT_GELU);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
