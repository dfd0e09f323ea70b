/* model.h: the conditional diffusion transformer for analog sizing (Azevedo, Lourenço & Martins,
 * "Encoder-Decoder Generative Diffusion Transformer Towards Push-Button Analog IC Sizing"):
 * forward/backward, one training step, and batched DDPM/DDIM sampling with classifier-free
 * guidance.
 *
 * Sizes: B batch, D sizing parameters (= decoder tokens), P performance features (after the
 * caller's preprocessing), S condition tokens, C channels, NH heads, F MLP width, Le/Ld encoder/
 * decoder blocks, T diffusion timesteps.
 *
 * Architecture (the paper's Fig. 1, built as PyTorch's nn.Transformer with norm_first=True,
 * batch_first=True, so a twin can load our parameters by name):
 *   timestep:   temb[B,C]    = Linear2(act(Linear1(sinusoid(t))))   sinusoid: diffusers' Timesteps(C, True, 0)
 *   targets:    ye[B,S,C]    = reshape(Linear(y[B,P] -> S*C))       or null[S,C] where the condition is dropped
 *   memory:     m0[B,S,C]    = ye + temb (broadcast over the S tokens)     ("embeddings are added together")
 *               mem[B,S,C]   = LN_enc(Encoder^Le(m0))                     (self-attention among condition tokens)
 *   sizing:     h0[B,D,C]    = reshape(Linear(x_t[B,D] -> D*C))            ("passes through a linear layer")
 *               h[B,D,C]     = LN_dec(Decoder^Ld(h0, mem))                 (self-attention + cross-attention to mem)
 *   output:     v[B,D]       = reshape(Linear(h -> 1))                     ("normalization and linear ... reshaped")
 * The model predicts v = alpha_t eps - sigma_t x0 (v-prediction). The dropped condition is a
 * LEARNED null embedding null[S,C] (trained with probability p_uncond), not zeros: the timestep
 * embedding is still added to it, so the unconditional model knows t.
 *
 * Memory: parameters, gradients and the two AdamW moments are one block [4 P]. Activations of a
 * batch live in a workspace sized for its batch capacity, grown only when a larger batch arrives
 * (never inside the per-op loops); sampling gives each thread a workspace of its own.
 *
 * Determinism: every per-row computation (linear via gemm, layer norm, attention within a
 * sample) gives bitwise the same result whatever the batch it sits in and whatever the thread
 * count (see gemm.h), and all randomness is counter-based (schedule.h: per (seed, sample, step,
 * index)), so training steps and samples are the same for 1 or N threads, and a sample does not
 * depend on how many others are drawn with it. */
#ifndef CIRCML_DIFFUSION_MODEL_H
#define CIRCML_DIFFUSION_MODEL_H
#include <stdint.h>
#include "../nn/mlp.h"
#include "../nn/ops.h"
#include "../nn/transformer.h"
#include "../util/status.h"
#include "schedule.h"

/* The network that predicts v. CM_BACKBONE_MLP is the DM-MLP baseline of Eid et al. (the
 * paper's ref. [6]) on the same diffusion, guidance and samplers:
 *   temb[B,C]   = Linear2(act(Linear1(sinusoid(t))))              (as above)
 *   c[B,P]      = y, or null[P] where the condition is dropped      (a learned null, zero at init)
 *   v[B,D]      = MLP(concat(x_t, temb, c))                         (mlp.h: hidden layers
 *                 Linear -> ReLU -> dropout, mlp_layers of width mlp_hidden, then Linear -> D)
 * Its tensors: "null_cond" [P], "t_embed.*", "mlp.<i>.weight" / "mlp.<i>.bias" (i = 0..L-1);
 * cond_tokens, heads, ff, enc_layers and dec_layers are unused. */
typedef enum { CM_BACKBONE_TRANSFORMER = 0, CM_BACKBONE_MLP = 1 } cm_backbone;

typedef struct {
    int x_dim;            /* D: sizing parameters */
    int y_dim;            /* P: performance features fed to the condition embedding */
    int cond_tokens;      /* S */
    int channels;         /* C */
    int heads;            /* NH, C % NH == 0 */
    int ff;               /* F */
    int enc_layers;       /* Le >= 1 */
    int dec_layers;       /* Ld >= 1 */
    int timesteps;        /* T >= 2 */
    int zero_terminal_snr;/* 1: cosine schedule rescaled to zero terminal SNR (Lin et al.) */
    cm_activation act;    /* in the blocks' MLPs and the timestep MLP (the paper: ReLU) */
    float dropout;        /* in the blocks' MLPs (or the MLP backbone's hidden layers), training only */
    cm_backbone backbone; /* 0 (a zeroed config): the transformer */
    int mlp_layers;       /* MLP backbone: hidden layers (1..CM_MLP_MAX_LAYERS-1) */
    int mlp_hidden;       /* MLP backbone: their width */
} cm_diffusion_config;

/* Guidance conventions (both in schedule.h):
 *   CM_GUIDE_UNCOND_WEIGHT: out = w * uncond + (1 - w) * cond        the paper's eq. (3), w = 0.1
 *   CM_GUIDE_SCALE:         out = uncond + (1 + w) * (cond - uncond) Ho & Salimans' w (diffusers' scale = 1 + w)
 * Both combine the model's v-predictions (eps is affine in v with weights summing to one, so
 * combining v or eps gives the same step). */
typedef enum { CM_GUIDE_UNCOND_WEIGHT = 0, CM_GUIDE_SCALE = 1 } cm_guidance;
typedef enum { CM_SAMPLER_DDIM = 0, CM_SAMPLER_DDPM = 1 } cm_sampler;
/* Arithmetic of the transformer blocks' Linear layers while sampling. BF16: operands rounded to
 * bfloat16, products summed in fp32 by the AVX-512 BF16 dot-product instruction (gemm_bf16.h),
 * each sampling thread packing the weights once per call; attention, layer norms, embeddings
 * and the sampler stay fp32. Where the CPU lacks avx512_bf16 (or the MLP backbone is used),
 * BF16 runs the fp32 path and gives the fp32 result. */
typedef enum { CM_PRECISION_FP32 = 0, CM_PRECISION_BF16 = 1 } cm_precision;

typedef struct {
    cm_sampler sampler;
    int steps;            /* 1..T sampling timesteps */
    cm_spacing spacing;   /* default trailing: starts at t = T-1, where zero-SNR training saw pure noise */
    double eta;           /* DDIM only: 0 deterministic given x_T */
    cm_guidance guidance;
    double w;             /* guidance weight in that convention; no unconditional pass when it is not needed */
    double clip;          /* clip the x0 estimate to [-clip, clip] each step (0: off) */
    uint64_t seed;
    int64_t sample0;      /* global index of the first sample (noise streams are per sample index) */
    cm_precision precision; /* CM_PRECISION_FP32 (0, a zeroed field) or CM_PRECISION_BF16 */
} cm_sample_config;

/* Parameter tensors outside the blocks. The table (cm_diffusion_tensor) runs: X_W, X_B, Y_W,
 * Y_B, NULL, T1_W, T1_B, T2_W, T2_B, the encoder blocks, ENC_LN_W, ENC_LN_B, the decoder blocks,
 * DEC_LN_W, DEC_LN_B, OUT_W, OUT_B, under the names of the PyTorch twin ("x_embed.weight", ...,
 * "transformer.encoder.layers.0.self_attn.in_proj_weight", ..., "out.bias"). */
enum {
    DM_X_W, DM_X_B,       /* [D*C, D] [D*C] */
    DM_Y_W, DM_Y_B,       /* [S*C, P] [S*C] */
    DM_NULL,              /* [S*C] */
    DM_T1_W, DM_T1_B,     /* [C, C] [C] */
    DM_T2_W, DM_T2_B,     /* [C, C] [C] */
    DM_ENC_LN_W, DM_ENC_LN_B, DM_DEC_LN_W, DM_DEC_LN_B,   /* [C] each */
    DM_OUT_W, DM_OUT_B,   /* [1, C] [1] */
    DM_N
};

typedef struct cm_diffusion cm_diffusion;

cm_status cm_diffusion_init(cm_diffusion **out, const cm_diffusion_config *cfg, uint64_t seed, cm_error *err);
void cm_diffusion_free(cm_diffusion *m);
const cm_diffusion_config *cm_diffusion_get_config(const cm_diffusion *m);
int64_t cm_diffusion_num_params(const cm_diffusion *m);
real *cm_diffusion_params(cm_diffusion *m);     /* [P] flat, table order */
real *cm_diffusion_grads(cm_diffusion *m);      /* [P] */
real *cm_diffusion_moments(cm_diffusion *m);    /* [2P]: AdamW m then v */
int cm_diffusion_adam_step(const cm_diffusion *m);
void cm_diffusion_set_adam_step(cm_diffusion *m, int step);
const double *cm_diffusion_alphas_cumprod(const cm_diffusion *m);   /* [T] */
/* Tensor i: its PyTorch-twin name, its shape (ndim <= 2, dims[]), and its size; -1 past the end. */
int64_t cm_diffusion_tensor(const cm_diffusion *m, int i, const char **name, int *ndim, int64_t dims[2]);

/* Forward of a batch: out[B,D] (the v-prediction) from xt[B,D], t[B] (in [0, T)), y[B,P] and
 * drop[B] (1: the condition of that row is replaced by the null embedding; NULL: none dropped).
 * training: the blocks' dropout is on (mask from seed) and the activations are kept for
 * cm_diffusion_backward. The inputs are copied: the caller may free them afterwards. */
cm_status cm_diffusion_forward(cm_diffusion *m, real *out, const real *xt, const int64_t *t, const real *y,
                               const uint8_t *drop, int64_t B, int training, uint64_t seed, cm_error *err);
/* Backward of the last training forward from dout[B,D]: accumulates into the gradient block. */
cm_status cm_diffusion_backward(cm_diffusion *m, const real *dout, cm_error *err);
void cm_diffusion_zero_grad(cm_diffusion *m);
/* Clip the gradient block to global L2 norm max_norm (<= 0: no clipping); returns the norm before. */
double cm_diffusion_clip_grad(cm_diffusion *m, double max_norm);
void cm_diffusion_adamw(cm_diffusion *m, real lr, real beta1, real beta2, real eps, real weight_decay);

/* The v-prediction loss of given draws, with gradients: x_t = alpha_t x0 + sigma_t eps,
 * v = alpha_t eps - sigma_t x0, loss = mean over B*D of (model(x_t, t, y, drop) - v)^2.
 * Writes the gradient block (no accumulation). [in] x0[B,D], y[B,P], t[B], eps[B,D], drop[B] (or NULL).
 * Data-parallel: the batch is cut into chunks of cm_diffusion_chunk_rows rows, each chunk runs
 * forward and backward on a thread with a workspace and a gradient block of its own (dropout
 * masks drawn per chunk), and the chunks' gradients are summed in chunk order: one parallel
 * region per step, and the same result for any thread count. A batch of one chunk runs serially. */
cm_status cm_diffusion_loss(cm_diffusion *m, double *loss, const real *x0, const real *y, const int64_t *t,
                            const real *eps, const uint8_t *drop, int64_t B, uint64_t seed, cm_error *err);
/* Rows per chunk (default CM_DIFFUSION_CHUNK_ROWS; < 1 restores it). Results depend on it (the
 * order of the gradient sums, the dropout masks), not on the thread count. */
#define CM_DIFFUSION_CHUNK_ROWS 32
void cm_diffusion_set_chunk_rows(cm_diffusion *m, int rows);
int cm_diffusion_chunk_rows(const cm_diffusion *m);

typedef struct {
    real lr, beta1, beta2, eps, weight_decay;
    double p_uncond;      /* probability of dropping a row's condition */
    double max_grad_norm; /* <= 0: no clipping */
} cm_train_config;

/* One training step on a batch: draws t ~ U{0..T-1}, eps ~ N(0, I) and the condition dropout
 * from (seed, step, row) (schedule.h's counter streams), then cm_diffusion_loss, clipping and
 * AdamW. *loss receives the batch loss before the update. */
cm_status cm_diffusion_train_step(cm_diffusion *m, double *loss, const real *x0, const real *y, int64_t B,
                                  const cm_train_config *tc, uint64_t seed, uint64_t step, cm_error *err);

/* Draw n samples x[n,D] conditioned on y[n,P] (one target row per sample): x_T ~ N(0, I) from
 * the (seed, sample0 + i) streams, then `steps` DDIM or DDPM steps with guidance. OpenMP over
 * samples: each thread runs its share (at least 8) of the samples through the model with a
 * workspace of its own; fewer than 16 samples run serially. The model is only read: several
 * calls may run at once. */
cm_status cm_diffusion_sample(const cm_diffusion *m, real *x, const real *y, int64_t n, const cm_sample_config *sc,
                              cm_error *err);

#endif
