/* gemm_bf16.h: a bfloat16 Linear forward for inference (the diffusion model's sampling path).
 *
 *     out[M,N] = bf16(inp)[M,K] @ bf16(W)[N,K]^T + bias[N]        (fp32 accumulation)
 *
 * Both operands are rounded to bfloat16 (round to nearest even; the products of two bf16 are
 * exact in fp32) and the sums over k run in fp32 with the AVX-512 BF16 dot-product instruction
 * vdpbf16ps, which adds the products of a pair (k, k+1) into each fp32 lane; pairs are summed
 * in ascending k with one accumulator per output element. So every element of out depends only
 * on its row of inp and the weights: the same for any thread count, batch or blocking.
 *
 * Layout (a BLIS-like split): W is packed once into 64-column panels of bf16 pairs
 * ([panel][k/2][64 columns][2]); inp is converted 6 rows at a time into a pair buffer on the
 * stack; a 6 x 64 micro-kernel keeps 24 zmm accumulators and reads 4 weight vectors and 6
 * broadcast pairs per k pair.
 *
 * Run-time detection: the kernel runs where the CPU has avx512_bf16 (and the build could
 * compile it) and gemm_bf16_set_enabled has not turned it off. Elsewhere gemm_bf16_available()
 * is 0: callers keep their fp32 path (the hook below declines), and gemm_bf16_linear computes
 * the same bf16-rounded product with plain loops (gemm_bf16_linear_ref), slowly but identically
 * in meaning.
 *
 * The hook: a caller that wants a whole forward in bf16 without threading weights through every
 * layer opens a cache on its thread (gemm_bf16_cache_begin); while it is open,
 * gemm_bf16_linear_hook(out, inp, W, ...) packs W on its first use (keyed by the pointer and
 * the shape) and runs the bf16 product, returning 1; with no cache open, or no bf16 kernel, it
 * returns 0 and the caller runs its fp32 Linear. Weights must not change while a cache is open.
 * Only the library's float build has the kernel (real = double: the hook always declines). */
#ifndef CIRCML_NN_GEMM_BF16_H
#define CIRCML_NN_GEMM_BF16_H
#include <stdint.h>

/* Packed weights of one Linear layer: W[N,K] as 64-column panels, of bf16 (k, k+1) pairs or
 * (gemm_f32_pack) of fp32. */
typedef struct {
    int64_t N, K;         /* shape of W */
    int64_t kp;           /* k pairs: ceil(K / 2) (a zero pads an odd K) */
    int64_t panels;       /* ceil(N / 64) */
    uint16_t *w;          /* bf16: [panels][kp][64][2] bits, zero-padded (NULL for fp32) */
    float *wf;            /* fp32: [panels][K][64], zero-padded (NULL for bf16) */
} gemm_bf16_weight;

/* 1 when the bf16 kernel runs on this CPU (avx512_bf16 and avx512f, build support, enabled). */
int gemm_bf16_available(void);
/* 1 when the CPU has the instructions, whatever gemm_bf16_set_enabled said. */
int gemm_bf16_cpu_supported(void);
/* Turn the kernel off (0: every caller takes its fp32 path; for tests of the fallback) or back
 * on (1: where the CPU supports it). Returns gemm_bf16_available() afterwards. */
int gemm_bf16_set_enabled(int on);

/* Round fp32 to bfloat16 bits, nearest even (NaN stays NaN). */
uint16_t gemm_bf16_round(float x);
static inline float gemm_bf16_to_float(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}

/* Pack W[N,K] (row-major, as a Linear's weight). Returns 0, or -1 when out of memory. */
int gemm_bf16_pack(gemm_bf16_weight *pw, const float *W, int64_t N, int64_t K);
void gemm_bf16_weight_free(gemm_bf16_weight *pw);

/* out[M,N] = bf16(inp)[M,K] @ packed W^T (+ bias). OpenMP over 6-row blocks when not already in
 * a parallel region and M is large. Without the kernel: gemm_bf16_linear_ref on the packed
 * weights (same rounding, fp32 sums in the same order, no FMA fusion guaranteed). */
void gemm_bf16_linear(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias, int64_t M);
/* Plain loops: inputs rounded to bf16 (gemm_bf16_round, denormals kept), products summed in
 * double in ascending k. The reference the tests compare the kernel with. */
void gemm_bf16_linear_ref(float *out, const float *inp, const float *W, const float *bias, int64_t M, int64_t N,
                          int64_t K);

/* fp32 with prepacked weights, for the same inference path: W packed once into fp32 panels, a
 * 6 x 64 AVX-512 FMA micro-kernel reading inp in place; every out element is one accumulator
 * summed over k ascending, then + bias. For small M (a few designs at a time) this saves
 * gemm.c's packing of W on every call. Runs where gemm_get_isa() is AVX-512 (so
 * gemm_set_isa moves it too); elsewhere gemm_f32_linear uses plain loops (same order, no FMA). */
int gemm_f32_pack(gemm_bf16_weight *pw, const float *W, int64_t N, int64_t K);
void gemm_f32_linear(float *out, const float *inp, const gemm_bf16_weight *pw, const float *bias, int64_t M);
int gemm_f32_packed_available(void);

/* The per-thread cache of packed weights behind the hook. begin opens one on the calling thread,
 * bf16 (1) or fp32 (0) (returns 0, or -1 when one is already open or memory is short); end
 * frees it. A bf16 cache where the bf16 kernel is not available packs fp32: the fallback is then
 * exactly the fp32 cache's arithmetic. */
int gemm_bf16_cache_begin(int bf16);
void gemm_bf16_cache_end(void);
/* out[M,N] = inp[M,K] @ W[N,K]^T + bias with the cache's packed W (packed on first use) if a
 * cache is open on this thread and its kernel runs here (returns 1); else does nothing and
 * returns 0. In bf16, short sums (K < 8) decline too. Narrow products (N < 16, e.g. a C -> 1
 * output layer) run in fp32 in either cache, W read in place (no panel): one dot product per
 * element, k in 16 lane sums, the lanes added by a fixed tree; they decline where the fp32
 * packed kernel would (gemm_f32_packed_available() == 0). */
int gemm_bf16_linear_hook(float *out, const float *inp, const float *W, const float *bias, int64_t M, int64_t K,
                          int64_t N);
/* The same with an epilogue fused into the product's stores (no extra pass over out):
 *     v = inp @ W^T + bias;  v = relu ? max(v, 0) : v;  out = res ? res + v : v
 * res[M,N] (may alias out) is a residual stream added after the Linear, as in h + Linear(...):
 * bitwise what the separate Linear, ReLU and residual add would give. */
int gemm_bf16_linear_hook_ex(float *out, const float *inp, const float *W, const float *bias, const float *res,
                             int relu, int64_t M, int64_t K, int64_t N);
/* 1 while a cache is open on the calling thread (the blocks of transformer.h then run their
 * inference form). */
int gemm_bf16_cache_open(void);

/* Peak throughput loops for the benchmark: GFLOP/s of independent 512-bit FMA chains (32 flop
 * per instruction) and of vdpbf16ps chains (64 flop), each thread running `iters` rounds of 24
 * accumulators, all threads at once; each thread's rate is taken over its own CPU time and the
 * rates are summed (so load from other processes does not lower it). Return 0 where the
 * instructions are missing. */
double gemm_bf16_peak_fma(int64_t iters);
double gemm_bf16_peak_dpbf16(int64_t iters);
#endif
