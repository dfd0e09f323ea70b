/* schedule.h: the diffusion side of a DDPM: noise schedule, the x0 / eps / v conversions, one
 * ancestral DDPM step, one DDIM step, classifier-free guidance, and counter-based noise.
 *
 * Schedule: the cosine schedule of Nichol & Dhariwal as diffusers' "squaredcos_cap_v2" defines it,
 *   alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2)^2,   beta_i = min(1 - alpha_bar((i+1)/T) / alpha_bar(i/T), 0.999)
 * optionally rescaled to zero terminal SNR (Lin et al., WACV 2024, Algorithm 1): sqrt(alpha_bar) is
 * shifted so its last value is 0 and scaled so its first is unchanged; then alphas_cumprod =
 * cumprod(1 - beta) ends at exactly 0 (beta_{T-1} = 1). Computed in double; diffusers computes
 * the same in float32, so the two agree to ~1e-7.
 *
 * Notation: a = alphas_cumprod[t], alpha_t = sqrt(a), sigma_t = sqrt(1 - a) (the paper's alpha_t,
 * sigma_t), x_t = alpha_t x0 + sigma_t eps, and the v-prediction target
 *   v = alpha_t eps - sigma_t x0      (diffusers' get_velocity)
 * so x0 = alpha_t x_t - sigma_t v and eps = alpha_t v + sigma_t x_t hold at every t, including the
 * last step of a zero-terminal-SNR schedule (a = 0), where eps prediction cannot recover x0.
 *
 * Steps follow diffusers' DDPMScheduler.step (variance_type "fixed_small") and DDIMScheduler.step
 * (set_alpha_to_one=True, use_clipped_model_output=False), with the previous timestep passed
 * explicitly (-1 after the last). Noise is the counter-based normal diffusion_normal(seed, sample,
 * step = t, index), so a batch gives the same numbers whatever its split into threads or calls.
 *
 * Timestep spacing (Lin et al., Table 2; diffusers' names): "leading" t_i = i*floor(T/n) never
 * visits t = T-1, where a zero-terminal-SNR model sees pure noise, so sampling starts from a state
 * the model was not trained on; "trailing" t_i = round(T - i*T/n) - 1 starts at T-1 and is what
 * Lin et al. recommend with zero terminal SNR (our default); "linspace" round(linspace(0, T-1, n)).
 * When n does not divide T, diffusers' DDIM steps to t - T//n rather than to the next listed
 * timestep; we always step to the next listed timestep (identical when n divides T).
 *
 * Sizes: T training timesteps, B samples, D entries per sample; x[B,D] row-major.
 * OpenMP: loops over samples write disjoint rows. */
#ifndef CIRCML_DIFFUSION_SCHEDULE_H
#define CIRCML_DIFFUSION_SCHEDULE_H
#include <stdint.h>
#include "../nn/ops.h"
#include "../util/status.h"

typedef enum { CM_PRED_EPSILON = 0, CM_PRED_V = 1, CM_PRED_SAMPLE = 2 } cm_prediction;
typedef enum { CM_SPACING_TRAILING = 0, CM_SPACING_LEADING = 1, CM_SPACING_LINSPACE = 2 } cm_spacing;

/* alpha_bar(s) of the cosine schedule, s in [0, 1]. */
double diffusion_cosine_alpha_bar(double s);

/* [out] betas[T] (may be NULL), alphas_cumprod[T] (may be NULL). T >= 2 when zero_terminal_snr. */
cm_status diffusion_cosine_schedule(double *betas, double *alphas_cumprod, int T, int zero_terminal_snr,
                                    cm_error *err);
/* In place on betas[T]: Lin et al.'s Algorithm 1. */
cm_status diffusion_rescale_zero_terminal_snr(double *betas, int T, cm_error *err);

/* [out] ts[n]: the n sampling timesteps, descending, for T training steps. 1 <= n <= T. */
cm_status diffusion_timesteps(int64_t *ts, int T, int n, cm_spacing spacing, cm_error *err);

/* ---- conversions; t[B] in [0, T) per sample, acp = alphas_cumprod[T] ---- */
/* x_t = alpha_t x0 + sigma_t eps  (the forward process, diffusers' add_noise) */
cm_status diffusion_add_noise(real *xt, const real *x0, const real *eps, const double *acp, int T, const int64_t *t,
                              int64_t B, int D, cm_error *err);
/* v = alpha_t eps - sigma_t x0  (the training target) */
cm_status diffusion_velocity(real *v, const real *x0, const real *eps, const double *acp, int T, const int64_t *t,
                             int64_t B, int D, cm_error *err);
/* x0 = alpha_t x_t - sigma_t v */
cm_status diffusion_x0_from_v(real *x0, const real *xt, const real *v, const double *acp, int T, const int64_t *t,
                              int64_t B, int D, cm_error *err);
/* eps = alpha_t v + sigma_t x_t */
cm_status diffusion_eps_from_v(real *eps, const real *xt, const real *v, const double *acp, int T, const int64_t *t,
                               int64_t B, int D, cm_error *err);
/* v = (eps - sigma_t x_t) / alpha_t; CM_ERR_VALUE where a = 0 */
cm_status diffusion_v_from_eps(real *v, const real *xt, const real *eps, const double *acp, int T, const int64_t *t,
                               int64_t B, int D, cm_error *err);
/* x0 = (x_t - sigma_t eps) / alpha_t; CM_ERR_VALUE where a = 0 (zero SNR: x_t holds no x0) */
cm_status diffusion_x0_from_eps(real *x0, const real *xt, const real *eps, const double *acp, int T, const int64_t *t,
                                int64_t B, int D, cm_error *err);
/* eps = (x_t - alpha_t x0) / sigma_t; CM_ERR_VALUE where a = 1 */
cm_status diffusion_eps_from_x0(real *eps, const real *xt, const real *x0, const double *acp, int T, const int64_t *t,
                                int64_t B, int D, cm_error *err);

/* ---- sampler steps, one timestep t for the whole batch; x_prev may be xt (in place) ---- */
/* Ancestral DDPM: x0 from the model output (clipped to [-clip, clip] when clip > 0), then
 *   x_prev = sqrt(a_prev) beta / (1 - a) x0 + sqrt(alpha) (1 - a_prev) / (1 - a) x_t + [t > 0] sqrt(var) z
 *   alpha = a / a_prev, beta = 1 - alpha, var = max((1 - a_prev) / (1 - a) beta, 1e-20)
 * with a_prev = acp[t_prev] (1 if t_prev < 0) and z = diffusion_normal(seed, sample0 + b, t, d).
 * x0_pred[B,D] (may be NULL) receives the (clipped) x0 estimate. */
cm_status ddpm_step(real *x_prev, real *x0_pred, const real *xt, const real *model_out, const double *acp, int T,
                    int64_t t, int64_t t_prev, cm_prediction pred, double clip, uint64_t seed, int64_t sample0,
                    int64_t B, int D, cm_error *err);
/* DDIM: x0 and eps from the model output (x0 clipped as above; eps from the unclipped output, as
 * diffusers does), then x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - s^2) eps + s z with
 * s = eta sqrt((1 - a_prev) / (1 - a) (1 - a / a_prev)). eta = 0 is deterministic (no noise drawn). */
cm_status ddim_step(real *x_prev, real *x0_pred, const real *xt, const real *model_out, const double *acp, int T,
                    int64_t t, int64_t t_prev, cm_prediction pred, double clip, double eta, uint64_t seed,
                    int64_t sample0, int64_t B, int D, cm_error *err);

/* ---- classifier-free guidance; both combine eps or v alike (the weights sum to 1) ---- */
/* out = w * uncond + (1 - w) * cond: the convention of Azevedo et al. (eq. 3, w = 0.1 there), where
 * w weighs the unconditional prediction. */
void cfg_combine_uncond_weight(real *out, const real *uncond, const real *cond, int64_t n, double w);
/* out = uncond + (1 + w) * (cond - uncond): Ho & Salimans' guidance weight w (diffusers'
 * guidance_scale is 1 + w). cfg_combine_uncond_weight(w) == cfg_combine_guidance_weight(-w). */
void cfg_combine_guidance_weight(real *out, const real *uncond, const real *cond, int64_t n, double w);

/* ---- counter-based randomness ---- */
/* N(0, 1) by Box-Muller from two splitmix64 hashes of (seed, sample, step, 2*index + {0, 1}). */
double diffusion_normal(uint64_t seed, uint64_t sample, uint64_t step, uint64_t index);
/* out[B,D]: out[b,d] = diffusion_normal(seed, sample0 + b, step, d). */
void diffusion_noise(real *out, uint64_t seed, uint64_t step, int64_t sample0, int64_t B, int D);
/* Training draws: t[b] uniform in [0, T); drop[b] = 1 with probability p (the condition is dropped
 * for classifier-free guidance). Both from (seed, sample0 + b, step) on streams of their own. */
void diffusion_random_timesteps(int64_t *t, int T, uint64_t seed, uint64_t step, int64_t sample0, int64_t B);
void diffusion_condition_dropout(uint8_t *drop, double p, uint64_t seed, uint64_t step, int64_t sample0, int64_t B);

#endif
