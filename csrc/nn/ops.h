/* ops.h: neural-network layers as forward/backward pairs (llm.c conventions).
 *
 * forward(outputs, saved-for-backward, inputs, parameters, sizes);
 * backward(dinputs, dparams, doutput, inputs, params, saved, sizes) ACCUMULATES (+=) into
 * gradients, so one zeroing of the gradient block comes before each step.
 * Sizes: B rows (nodes, edges or graphs), C input channels, OC output channels, N nodes,
 * E edges, G graphs. Every buffer is row-major. `real` is float in the library; the gradient
 * tests compile the same file with -DCM_REAL=double.
 * OpenMP sits on loops whose iterations write disjoint memory; where a gradient collects
 * from many rows (weight gradients, scatters) the loop nest is split so each output element
 * has one writer, which keeps results identical for any thread count.
 * Speed: Linear runs on gemm.c; elementwise kernels are compiled for AVX-512, AVX2 and the
 * baseline and picked at run time (ops.c, "vector paths"); each optimised op keeps a plain
 * _ref twin that csrc/tests/test_nn_fast.c and test_gemm.c check it against. Two exceptions
 * to "backward accumulates", both named: linear_backward_set and gelu_dropout_backward
 * overwrite the input gradient (it is always a fresh buffer where they are used). */
#ifndef CIRCML_NN_OPS_H
#define CIRCML_NN_OPS_H
#include <stdint.h>

#ifndef CM_REAL
#define CM_REAL float
#define CM_REAL_IS_FLOAT 1   /* lets gemm.c use its float SIMD kernels */
#endif
typedef CM_REAL real;

/* out[B,OC] = inp[B,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL); runs in gemm.c, whose
 * summation order makes results bitwise identical for any thread count (see gemm.h). */
void linear_forward(real *out, const real *inp, const real *weight, const real *bias, int64_t B, int C, int OC);
void linear_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                     int64_t B, int C, int OC);
/* linear_backward with dinp overwritten instead of accumulated (spares zeroing a fresh buffer). */
void linear_backward_set(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                         int64_t B, int C, int OC);
/* The same with plain loops, serial: the reference the optimised pair is tested against. */
void linear_forward_ref(real *out, const real *inp, const real *weight, const real *bias, int64_t B, int C, int OC);
void linear_backward_ref(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                         int64_t B, int C, int OC);

/* GELU, exact form x * Phi(x) (PyTorch's default nn.GELU). In float builds Phi comes from a
 * vectorised erfc (relative error ~1e-7, also in the far negative tail); the _ref versions use
 * libm's erf in double. */
void gelu_forward(real *out, const real *inp, int64_t n);
void gelu_backward(real *dinp, const real *dout, const real *inp, int64_t n);
void gelu_forward_ref(real *out, const real *inp, int64_t n);
void gelu_backward_ref(real *dinp, const real *dout, const real *inp, int64_t n);

/* Batch norm over rows, training mode: out = (x - mean) * rstd * gamma + beta, biased
 * variance; mean[C], rstd[C] are saved; running stats updated with `momentum` when not NULL
 * (unbiased variance, as PyTorch). */
void batchnorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *gamma, const real *beta,
                       int64_t B, int C, real eps, real *running_mean, real *running_var, real momentum);
void batchnorm_backward(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp, const real *gamma,
                        const real *mean, const real *rstd, int64_t B, int C);
/* The same, channel by channel with plain loops (the reference). */
void batchnorm_forward_ref(real *out, real *mean, real *rstd, const real *inp, const real *gamma, const real *beta,
                           int64_t B, int C, real eps, real *running_mean, real *running_var, real momentum);
void batchnorm_backward_ref(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp, const real *gamma,
                            const real *mean, const real *rstd, int64_t B, int C);
/* Evaluation mode with running statistics. */
void batchnorm_inference(real *out, const real *inp, const real *gamma, const real *beta, const real *running_mean,
                         const real *running_var, int64_t B, int C, real eps);

/* Batch norm over R rows that are count[u] copies of each of U distinct rows inp[U,C] (out, and
 * in backward dout and dinp, hold the U distinct rows; dout/dinp as sums over the copies):
 * equal to batchnorm_forward/backward on the expanded rows, at the cost of U rows. */
void batchnorm_grouped_forward(real *out, real *mean, real *rstd, const real *inp, const int64_t *count,
                               const real *gamma, const real *beta, int64_t U, int C, int64_t R, real eps,
                               real *running_mean, real *running_var, real momentum);
void batchnorm_grouped_backward(real *dinp, real *dgamma, real *dbeta, const real *dout, const real *inp,
                                const int64_t *count, const real *gamma, const real *mean, const real *rstd, int64_t U,
                                int C, int64_t R);
/* out[r] = in[idx[r]] for R rows of width C; backward din[idx[r]] += dout[r] (one writer per
 * column block, rows in order: deterministic for any thread count). */
void gather_rows_forward(real *out, const real *in, const int64_t *idx, int64_t R, int C);
void gather_rows_backward(real *din, const real *dout, const int64_t *idx, int64_t R, int C);

/* Dropout with a counter-based mask: element i is kept when hash(seed, i) >= p; kept values
 * are scaled by 1/(1-p). mask[n] (uint8) is saved for backward. */
void dropout_forward(real *out, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed);
void dropout_backward(real *dinp, const real *dout, const uint8_t *mask, int64_t n, real p);
void dropout_forward_ref(real *out, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed);
/* GELU then dropout in one pass, keeping the local derivative instead of the input:
 * out = dropout(gelu(inp)) with dropout_forward's mask for `seed` (p = 0: GELU alone) and
 * deriv[i] = d out[i] / d inp[i] = keep_i / (1 - p) * gelu'(inp[i]). deriv may be inp itself
 * (overwritten in place: backward needs nothing else); mask[n] (may be NULL) gets the keep mask.
 * Backward: dinp = dout * deriv, OVERWRITING dinp (unlike the other backwards: the MLP's hidden
 * gradient is always fresh, and this spares zeroing it). Values equal gelu then dropout. */
void gelu_dropout_forward(real *out, real *deriv, uint8_t *mask, const real *inp, int64_t n, real p, uint64_t seed);
void gelu_dropout_backward(real *dinp, const real *dout, const real *deriv, int64_t n);

/* out[E,C] = a[idx_a[e],C] * b[e,C]  (the GIN-with-edge-features message h_src * e) */
void gather_mul_forward(real *out, const real *a, const int64_t *idx, const real *b, int64_t E, int C);
void gather_mul_backward(real *da, real *db, const real *dout, const real *a, const int64_t *idx, const real *b,
                         int64_t E, int C, int64_t N, const int64_t *csr_ptr, const int64_t *csr_edges);

/* Scatter-add rows into segments: out[N,C] += src[E,C] summed over e with idx[e] == n.
 * Parallel over output rows via a CSR grouping of edges by target (csr_ptr[N+1],
 * csr_edges[E]), built once per graph batch with scatter_csr. */
void scatter_csr(int64_t *csr_ptr, int64_t *csr_edges, const int64_t *idx, int64_t E, int64_t N);
void scatter_add_forward(real *out, const real *src, const int64_t *csr_ptr, const int64_t *csr_edges, int64_t N, int C);
void scatter_add_backward(real *dsrc, const real *dout, const int64_t *idx, int64_t E, int C);

/* out[B,C] = x[B,C] * (1 + eps) + z[B,C]  (GIN's update input); eps is a learnable scalar. */
void gin_combine_forward(real *out, const real *x, const real *z, const real *eps, int64_t B, int C);
void gin_combine_backward(real *dx, real *dz, real *deps, const real *dout, const real *x, const real *eps, int64_t B,
                          int C);
void gin_combine_backward_ref(real *dx, real *dz, real *deps, const real *dout, const real *x, const real *eps,
                              int64_t B, int C);

/* GIN with edge features, fused (each equals the composition of the ops above):
 * z[N,C] = sum over edges e into n (dst[e] = n, in dst-CSR order) of h[src[e]] * ef[e]
 * (gather_mul then scatter_add into zeros; z is overwritten), and its backward:
 * dh[n] += sum_{src[e]=n} dz[dst[e]] * ef[e] (src CSR), def[e] += dz[dst[e]] * h[src[e]]. */
void gine_message_forward(real *z, const real *h, const real *ef, const int64_t *src, const int64_t *dst_ptr,
                          const int64_t *dst_edges, int64_t N, int C);
void gine_message_backward(real *dh, real *def, const real *dz, const real *h, const real *ef, const int64_t *src,
                           const int64_t *dst, int64_t E, int64_t N, int C, const int64_t *src_ptr,
                           const int64_t *src_edges);
/* out[E,C] = (1 + eps) x + z[src] - z[dst] (gather_diff then gin_combine); its backward is
 * gin_combine_backward (dz = NULL) plus gather_diff_backward of the same dout. */
void gine_edge_combine_forward(real *out, const real *x, const real *z, const int64_t *src, const int64_t *dst,
                               const real *eps, int64_t E, int C);

/* AdamW over a flat parameter block (decoupled weight decay), step t >= 1. */
void adamw_update(real *params, const real *grads, real *m, real *v, int64_t n, real lr, real beta1, real beta2,
                  real eps, real weight_decay, int t);

/* Counter-based hash to [0, 1): the RNG behind dropout (and augmentation seeds). */
double cm_uniform(uint64_t seed, uint64_t i);

/* out[E,C] = z[src[e]] - z[dst[e]]  (the edge update's z_s - z_d) */
void gather_diff_forward(real *out, const real *z, const int64_t *src, const int64_t *dst, int64_t E, int C);
/* dz[n] += sum_{src[e]=n} dout[e] - sum_{dst[e]=n} dout[e], one writer per node via both CSRs */
void gather_diff_backward(real *dz, const real *dout, int64_t N, int C, const int64_t *src_ptr,
                          const int64_t *src_edges, const int64_t *dst_ptr, const int64_t *dst_edges);
/* ---- serial row ranges: pieces of the ops above (and fusions of them) on the calling thread,
 * for callers that run their own OpenMP team over fixed row blocks (dice.c). Elementwise
 * ones take whole arrays and the element range [i0, i0 + n); row ones rows [r0, r1). */
/* gelu_dropout_forward / gelu_forward / gelu_dropout_backward on elements [i0, i0 + n) (the
 * dropout mask of element i is the same as in the whole-array call) */
void gelu_dropout_forward_rows(real *out, real *deriv, const real *inp, int64_t i0, int64_t n, real p, uint64_t seed);
void gelu_forward_rows(real *out, const real *inp, int64_t i0, int64_t n);
void gelu_dropout_backward_rows(real *dinp, const real *dout, const real *deriv, int64_t i0, int64_t n);
void gin_combine_forward_rows(real *out, const real *x, const real *z, const real *eps, int64_t r0, int64_t r1, int C);
void gine_edge_combine_forward_rows(real *out, const real *x, const real *z, const int64_t *src, const int64_t *dst,
                                    const real *eps, int64_t e0, int64_t e1, int C);
/* dh[n] += sum_{src[e]=n} dz[dst[e]] * ef[e] (gine_message_backward's node half) */
void gine_message_backward_nodes_rows(real *dh, const real *dz, const real *ef, const int64_t *dst, const int64_t *src_ptr,
                                      const int64_t *src_edges, int64_t n0, int64_t n1, int C);
/* The node half of a GINE layer's backward after its MLPs: with dcomb_n/dcomb_e the gradients
 * of the node and edge MLP inputs, dz[n] = (sum_{src[e]=n} dcomb_e[e] - sum_{dst[e]=n}
 * dcomb_e[e]) + dcomb_n[n] and dx[n] = (1 + eps) dcomb_n[n], both WRITTEN; returns
 * sum over the rows of dcomb_n * x (this block's part of d eps). */
double gine_node_backward_rows(real *dz, real *dx, const real *dcomb_n, const real *dcomb_e, const real *x,
                               const real *eps, const int64_t *src_ptr, const int64_t *src_edges, const int64_t *dst_ptr,
                               const int64_t *dst_edges, int64_t n0, int64_t n1, int C);
/* The edge half: dx[e] = (1 + eps) dcomb[e] + dz[dst[e]] * h[src[e]], WRITTEN; returns the sum
 * over the rows of dcomb * x (this block's part of d eps). */
double gine_edge_backward_rows(real *dx, const real *dcomb, const real *x, const real *dz, const real *h,
                               const int64_t *src, const int64_t *dst, const real *eps, int64_t e0, int64_t e1, int C);
/* out[r] = a[idx[r]] * b[r] for rows [r0, r1) (written) */
void gather_mul_forward_rows(real *out, const real *a, const int64_t *idx, const real *b, int64_t r0, int64_t r1, int C);
/* out[C] = column sums of in[r0..r1) (summed in double, rows in order; written) */
void colsum_rows(real *out, const real *in, int64_t r0, int64_t r1, int C);
#endif
