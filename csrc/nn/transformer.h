/* transformer.h: transformer layers and pre-LN encoder/decoder blocks, forward and backward.
 *
 * Conventions are those of ops.h (llm.c): forward(outputs, saved-for-backward, inputs, params,
 * sizes); backward(dinputs, dparams, scratch, doutput, inputs, params, saved, sizes) ACCUMULATES
 * (+=) into dinputs and dparams. Buffers named "scratch" are overwritten, not accumulated.
 * Nothing here allocates: every output, saved activation and scratch buffer belongs to the caller.
 *
 * Sizes: B batch, T tokens (the queries), S tokens of the memory a decoder cross-attends to,
 * C channels, NH heads (C % NH == 0; head h owns channels [h*hs, (h+1)*hs), hs = C / NH, as in
 * PyTorch's nn.MultiheadAttention), F hidden width of the MLP. N rows = B*T where an op is
 * row-wise. Every buffer is row-major: [B,T,C] means row b*T + t, channel c.
 *
 * Blocks (pre-LN, as PyTorch's nn.Transformer{Encoder,Decoder}Layer with norm_first=True and
 * batch_first=True; the MLP's dropout sits after the activation, no dropout on attention):
 *   encoder:  x1 = x  + SelfAttn(LN1(x));                    out = x1 + MLP(LN2(x1))
 *   decoder:  x1 = x  + SelfAttn(LN1(x));  x2 = x1 + CrossAttn(LNX(x1), mem);
 *             out = x2 + MLP(LN2(x2))
 *   MLP(h) = Linear(C->F) -> GELU or ReLU -> Dropout(p) -> Linear(F->C)
 * The memory `mem` is used as given (no norm inside the block), as PyTorch does.
 * No causal mask: every query attends to every key.
 *
 * OpenMP: every loop writes disjoint memory; attention's backward splits into a per-query nest
 * (dq) and a per-key nest (dk, dv) so each gradient element has one writer. Results do not
 * depend on the thread count. */
#ifndef CIRCML_NN_TRANSFORMER_H
#define CIRCML_NN_TRANSFORMER_H
#include <stdint.h>
#include "ops.h"

/* Layer norm epsilon (PyTorch's default). */
#define CM_LN_EPS 1e-5

/* ---------------------------------------------------------------- row-wise ops */

/* out[N,C] = (inp - mean) * rstd * weight[C] + bias[C] per row; mean[N], rstd[N] saved. */
void layernorm_forward(real *out, real *mean, real *rstd, const real *inp, const real *weight, const real *bias,
                       int64_t N, int C);
void layernorm_backward(real *dinp, real *dweight, real *dbias, const real *dout, const real *inp, const real *weight,
                        const real *mean, const real *rstd, int64_t N, int C);

/* out[n] = max(inp[n], 0). At the kink the gradient is 0, as in PyTorch. */
void relu_forward(real *out, const real *inp, int64_t n);
void relu_backward(real *dinp, const real *dout, const real *inp, int64_t n);

/* out[n] = inp1[n] + inp2[n] */
void residual_forward(real *out, const real *inp1, const real *inp2, int64_t n);
void residual_backward(real *dinp1, real *dinp2, const real *dout, int64_t n);

/* ---------------------------------------------------------------- attention */

/* Scaled dot-product attention over already projected q, k, v, all heads at once:
 *   att[b,h,t,:] = softmax(q[b,t,h] . k[b,:,h] / sqrt(hs));  out[b,t,h] = sum_s att[b,h,t,s] v[b,s,h]
 * q rows are ldq apart ([B,T] rows), k and v rows ldkv apart ([B,S] rows), so the three can live
 * in one fused projection: self-attention passes q = qkv, k = qkv + C, v = qkv + 2C, ld = 3C.
 * out[B,T,C] (ld C), att[B,NH,T,S] saved for backward; att may be NULL when no backward follows
 * and S <= 4096 (inference: the probabilities then never leave the kernel). */
void attention_forward(real *out, real *att, const real *q, const real *k, const real *v, int B, int T, int S, int C,
                       int NH, int ldq, int ldkv);
/* Batch rows that fill whole lane groups of attention_forward's short-sequence kernel (16 (row,
 * head) pairs a group): 16 / gcd(NH, 16). A caller that splits a batch into pieces of a multiple
 * of this many rows leaves no lanes idle. */
int attention_rows_per_group(int NH);
/* datt[B,NH,T,S] is scratch (holds the gradient of the pre-softmax scores). dq, dk, dv use the
 * strides of q, k, v and accumulate; for self-attention they are disjoint columns of one dqkv. */
void attention_backward(real *dq, real *dk, real *dv, real *datt, const real *dout, const real *q, const real *k,
                        const real *v, const real *att, int B, int T, int S, int C, int NH, int ldq, int ldkv);

/* Multi-head self-attention with projections, weights laid out as nn.MultiheadAttention's:
 *   qkv[B,T,3C] = inp @ wqkv[3C,C]^T + bqkv[3C]   (rows 0..C-1 query, C..2C-1 key, 2C..3C-1 value)
 *   y[B,T,C]    = attention(qkv)                   att[B,NH,T,T]
 *   out[B,T,C]  = y @ wo[C,C]^T + bo[C]
 * qkv, att, y are saved for backward. Biases may be NULL (then so must their gradients be). */
void mha_self_forward(real *out, real *qkv, real *att, real *y, const real *inp, const real *wqkv, const real *bqkv,
                      const real *wo, const real *bo, int B, int T, int C, int NH);
/* Scratch: dqkv[B,T,3C], dy[B,T,C], datt[B,NH,T,T]. */
void mha_self_backward(real *dinp, real *dwqkv, real *dbqkv, real *dwo, real *dbo, real *dqkv, real *dy, real *datt,
                       const real *dout, const real *inp, const real *wqkv, const real *wo, const real *qkv,
                       const real *att, const real *y, int B, int T, int C, int NH);

/* Multi-head cross-attention from inp[B,T,C] (queries) to mem[B,S,C] (keys and values), with the
 * same [3C,C] weight layout as self-attention (nn.MultiheadAttention's in_proj_weight):
 *   q[B,T,C]   = inp @ wqkv[0:C]^T  + bqkv[0:C]
 *   kv[B,S,2C] = mem @ wqkv[C:3C]^T + bqkv[C:3C]      (key channels first, then value)
 *   y[B,T,C]   = attention(q, kv)                    att[B,NH,T,S]
 *   out[B,T,C] = y @ wo^T + bo
 * q, kv, att, y are saved. */
void mha_cross_forward(real *out, real *q, real *kv, real *att, real *y, const real *inp, const real *mem,
                       const real *wqkv, const real *bqkv, const real *wo, const real *bo, int B, int T, int S, int C,
                       int NH);
/* Scratch: dq[B,T,C], dkv[B,S,2C], dy[B,T,C], datt[B,NH,T,S]. dmem may be NULL (memory fixed). */
void mha_cross_backward(real *dinp, real *dmem, real *dwqkv, real *dbqkv, real *dwo, real *dbo, real *dq, real *dkv,
                        real *dy, real *datt, const real *dout, const real *inp, const real *mem, const real *wqkv,
                        const real *wo, const real *q, const real *kv, const real *att, const real *y, int B, int T,
                        int S, int C, int NH);

/* ---------------------------------------------------------------- timestep embedding */

/* Sinusoidal embedding of (possibly fractional) timesteps t[B] into out[B,D], no parameters:
 *   half = D / 2;  f_i = exp(-ln(max_period) * i / (half - freq_shift)),  i < half
 *   out = [sin(t f_i) | cos(t f_i)]  ([cos | sin] when flip_sin_to_cos); a last zero column if D is odd.
 * This is diffusers' get_timestep_embedding(t, D, flip_sin_to_cos, freq_shift, 1, max_period);
 * (max_period 10000, flip 1, shift 0) is its Timesteps(D, True, 0) used by most of its models. */
void timestep_embedding_forward(real *out, const real *t, int64_t B, int D, double max_period, int flip_sin_to_cos,
                                double freq_shift);

/* ---------------------------------------------------------------- blocks */

typedef enum { CM_ACT_GELU = 0, CM_ACT_RELU = 1 } cm_activation;

/* Parameter tensors of a block, in table order. Encoders have no LNX/XATTN tensors (size 0). */
enum {
    TBP_LN1_W, TBP_LN1_B,                                           /* [C], [C]             */
    TBP_ATTN_WQKV, TBP_ATTN_BQKV, TBP_ATTN_WO, TBP_ATTN_BO,         /* [3C,C] [3C] [C,C] [C] */
    TBP_LNX_W, TBP_LNX_B,                                           /* decoder only          */
    TBP_XATTN_WQKV, TBP_XATTN_BQKV, TBP_XATTN_WO, TBP_XATTN_BO,     /* decoder only          */
    TBP_LN2_W, TBP_LN2_B,                                           /* [C], [C]             */
    TBP_FC_W, TBP_FC_B, TBP_PROJ_W, TBP_PROJ_B,                     /* [F,C] [F] [C,F] [C]   */
    TBP_N
};
typedef struct { real *t[TBP_N]; } tblock_params;

/* Saved activations of a block (and, in the same layout, their gradients as backward scratch). */
enum {
    TBA_LN1, TBA_LN1_MEAN, TBA_LN1_RSTD,          /* [B,T,C] [B,T] [B,T]  */
    TBA_QKV, TBA_ATT, TBA_ATTY, TBA_ATTN_OUT,     /* [B,T,3C] [B,NH,T,T] [B,T,C] [B,T,C] */
    TBA_RES1,                                     /* [B,T,C]  x1            */
    TBA_LNX, TBA_LNX_MEAN, TBA_LNX_RSTD,          /* decoder only: [B,T,C] [B,T] [B,T] */
    TBA_XQ, TBA_XKV, TBA_XATT, TBA_XATTY, TBA_XATTN_OUT,   /* [B,T,C] [B,S,2C] [B,NH,T,S] [B,T,C] [B,T,C] */
    TBA_RES2,                                     /* decoder only: [B,T,C]  x2 */
    TBA_LN2, TBA_LN2_MEAN, TBA_LN2_RSTD,          /* [B,T,C] [B,T] [B,T]  */
    TBA_FCH, TBA_FCH_ACT, TBA_FCH_DROP,           /* [B,T,F] x3             */
    TBA_MLP_OUT,                                  /* [B,T,C]                */
    TBA_N
};
/* mask[B,T,F]: the MLP dropout's keep mask. */
typedef struct { real *t[TBA_N]; uint8_t *mask; } tblock_acts;

/* Fill sizes[TBP_N] (in reals) and return their sum. */
int64_t tblock_param_sizes(int64_t sizes[TBP_N], int C, int F, int decoder);
/* PyTorch's state_dict name of tensor i in nn.TransformerEncoderLayer / DecoderLayer
 * ("self_attn.in_proj_weight", "norm1.weight", ...); NULL for tensors the block lacks. */
const char *tblock_param_name(int i, int decoder);
/* Point p->t[i] into base (which holds at least the sum of sizes reals) in table order. */
void tblock_params_carve(tblock_params *p, real *base, const int64_t sizes[TBP_N]);
/* PyTorch's initialisation, from a counter-based hash of seed: LN weight 1, bias 0; attention
 * in_proj xavier-uniform, its biases and out_proj bias 0, out_proj weight U(+-1/sqrt(C)); MLP
 * Linear weights and biases U(+-1/sqrt(fan_in)). */
void tblock_params_init(tblock_params *p, const int64_t sizes[TBP_N], int C, int F, uint64_t seed);

/* Fill sizes[TBA_N] (in reals), *mask_bytes, and return the sum of sizes. */
int64_t tblock_act_sizes(int64_t sizes[TBA_N], int64_t *mask_bytes, int B, int T, int S, int C, int NH, int F,
                         int decoder);
void tblock_acts_carve(tblock_acts *a, real *base, uint8_t *mask, const int64_t sizes[TBA_N]);

/* out[B,T,C] from inp[B,T,C]. dropout p in [0,1) with a counter-based mask from seed (pass
 * p = 0 for evaluation).
 * Inference form: with p = 0 while a packed-weight cache is open on the calling thread
 * (gemm_bf16_cache_begin: sampling, where no backward follows), a block skips the dropout copy,
 * keeps the attention probabilities inside the kernel and fuses the residual adds and ReLU into
 * the Linear products' stores; the output is bitwise the same as the plain form's with the same
 * Linear kernels, but acts then holds only LN1, QKV, ATTY, RES1, LNX, XQ, XKV, XATTY, RES2, LN2,
 * FCH_ACT (and FCH with GELU): backward must not follow. */
void encoder_block_forward(real *out, tblock_acts *acts, const real *inp, const tblock_params *p, int B, int T, int C,
                           int NH, int F, cm_activation act, real dropout, uint64_t seed);
/* dacts: the same layout as acts, used as scratch (zeroed here). dinp and grads accumulate. */
void encoder_block_backward(real *dinp, tblock_params *grads, tblock_acts *dacts, const real *dout, const real *inp,
                            const tblock_params *p, const tblock_acts *acts, int B, int T, int C, int NH, int F,
                            cm_activation act, real dropout);

/* out[B,T,C] from inp[B,T,C] and the memory mem[B,S,C] (not NULL). */
void decoder_block_forward(real *out, tblock_acts *acts, const real *inp, const real *mem, const tblock_params *p,
                           int B, int T, int S, int C, int NH, int F, cm_activation act, real dropout, uint64_t seed);
/* dmem[B,S,C] accumulates (may be NULL). */
void decoder_block_backward(real *dinp, real *dmem, tblock_params *grads, tblock_acts *dacts, const real *dout,
                            const real *inp, const real *mem, const tblock_params *p, const tblock_acts *acts, int B,
                            int T, int S, int C, int NH, int F, cm_activation act, real dropout);

#endif
