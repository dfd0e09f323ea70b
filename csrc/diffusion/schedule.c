/* schedule.c: cosine schedule with zero-terminal-SNR rescaling, x0/eps/v conversions, DDPM and
 * DDIM steps, classifier-free guidance and counter-based noise (see schedule.h).
 * Limits: DDPM's variance is "fixed_small" only; no dynamic thresholding. Coefficients are
 * computed in double, samples are stored as `real`. */
#include "schedule.h"
#include <math.h>
#include <stddef.h>

#define PI 3.14159265358979323846

/* ---------------------------------------------------------------- randomness */

static uint64_t mix64(uint64_t x) {   /* splitmix64's finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash4(uint64_t seed, uint64_t sample, uint64_t step, uint64_t index) {
    return mix64(seed ^ mix64(sample ^ mix64(step ^ mix64(index))));
}

/* Independent streams of the same counters: noise, timesteps, condition dropout. */
#define STREAM_TIMESTEP 0x74696d6573746570ull
#define STREAM_CONDDROP 0x636f6e6464726f70ull

double diffusion_normal(uint64_t seed, uint64_t sample, uint64_t step, uint64_t index) {
    uint64_t h1 = hash4(seed, sample, step, 2 * index), h2 = hash4(seed, sample, step, 2 * index + 1);
    double u1 = (double)((h1 >> 11) + 1) * (1.0 / 9007199254740992.0);   /* (0, 1]: log is finite */
    double u2 = (double)(h2 >> 11) * (1.0 / 9007199254740992.0);         /* [0, 1) */
    return sqrt(-2.0 * log(u1)) * cos(2.0 * PI * u2);
}

void diffusion_noise(real *out, uint64_t seed, uint64_t step, int64_t sample0, int64_t B, int D) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int d = 0; d < D; d++) out[b * D + d] = (real)diffusion_normal(seed, (uint64_t)(sample0 + b), step, (uint64_t)d);
}

void diffusion_random_timesteps(int64_t *t, int T, uint64_t seed, uint64_t step, int64_t sample0, int64_t B) {
    for (int64_t b = 0; b < B; b++) {
        double u = (double)(hash4(seed ^ STREAM_TIMESTEP, (uint64_t)(sample0 + b), step, 0) >> 11) *
                   (1.0 / 9007199254740992.0);
        int64_t k = (int64_t)(u * T);
        t[b] = k < T ? k : T - 1;
    }
}

void diffusion_condition_dropout(uint8_t *drop, double p, uint64_t seed, uint64_t step, int64_t sample0, int64_t B) {
    for (int64_t b = 0; b < B; b++) {
        double u = (double)(hash4(seed ^ STREAM_CONDDROP, (uint64_t)(sample0 + b), step, 0) >> 11) *
                   (1.0 / 9007199254740992.0);
        drop[b] = u < p;
    }
}

/* ---------------------------------------------------------------- schedule */

double diffusion_cosine_alpha_bar(double s) {
    double c = cos((s + 0.008) / 1.008 * PI / 2);
    return c * c;
}

cm_status diffusion_rescale_zero_terminal_snr(double *betas, int T, cm_error *err) {
    if (T < 2) return cm_error_set(err, CM_ERR_VALUE, "", 0, "zero-terminal-SNR rescaling needs T >= 2 (got %d)", T);
    /* sqrt(alpha_bar) in place of betas, then back */
    double prod = 1;
    for (int i = 0; i < T; i++) {
        prod *= 1 - betas[i];
        betas[i] = sqrt(prod);
    }
    const double s0 = betas[0], sT = betas[T - 1];
    if (!(s0 > sT)) return cm_error_set(err, CM_ERR_VALUE, "", 0, "alpha_bar is not decreasing: cannot rescale");
    const double k = s0 / (s0 - sT);
    double prev = 1;   /* alpha_bar before step 0 */
    for (int i = 0; i < T; i++) {
        double s = (betas[i] - sT) * k, ab = s * s;
        betas[i] = 1 - (i == 0 ? ab : ab / prev);
        prev = ab;
    }
    return CM_OK;
}

cm_status diffusion_cosine_schedule(double *betas, double *alphas_cumprod, int T, int zero_terminal_snr,
                                    cm_error *err) {
    if (T < 1) return cm_error_set(err, CM_ERR_VALUE, "", 0, "T must be >= 1 (got %d)", T);
    /* betas may be NULL: then alphas_cumprod carries them until the end */
    double *b = betas ? betas : alphas_cumprod;
    if (!b) return CM_OK;
    for (int i = 0; i < T; i++) {
        double beta = 1 - diffusion_cosine_alpha_bar((double)(i + 1) / T) / diffusion_cosine_alpha_bar((double)i / T);
        b[i] = beta < 0.999 ? beta : 0.999;
    }
    if (zero_terminal_snr) {
        cm_status st = diffusion_rescale_zero_terminal_snr(b, T, err);
        if (st) return st;
    }
    if (alphas_cumprod) {
        double prod = 1;
        for (int i = 0; i < T; i++) {
            prod *= 1 - b[i];
            alphas_cumprod[i] = prod;
        }
    }
    return CM_OK;
}

cm_status diffusion_timesteps(int64_t *ts, int T, int n, cm_spacing spacing, cm_error *err) {
    if (n < 1 || n > T) return cm_error_set(err, CM_ERR_VALUE, "", 0, "sampling steps must be in [1, T = %d] (got %d)", T, n);
    for (int i = 0; i < n; i++) {
        switch (spacing) {
        case CM_SPACING_LEADING: ts[i] = (int64_t)(n - 1 - i) * (T / n); break;
        /* numpy's round: half to even, as diffusers gets it from np.round */
        case CM_SPACING_TRAILING: ts[i] = (int64_t)nearbyint((double)T - i * ((double)T / n)) - 1; break;
        case CM_SPACING_LINSPACE:
            ts[i] = n == 1 ? 0 : (int64_t)nearbyint((double)(T - 1) * (n - 1 - i) / (n - 1));
            break;
        default: return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown timestep spacing %d", (int)spacing);
        }
    }
    return CM_OK;
}

/* ---------------------------------------------------------------- conversions */

static cm_status check_t(int T, const int64_t *t, int64_t B, cm_error *err) {
    for (int64_t b = 0; b < B; b++)
        if (t[b] < 0 || t[b] >= T)
            return cm_error_set(err, CM_ERR_VALUE, "", 0, "timestep t[%lld] = %lld is outside [0, %d)", (long long)b,
                                (long long)t[b], T);
    return CM_OK;
}

/* out = ca * p + cb * q per row, with (ca, cb) from the row's alpha_bar */
typedef void (*coef_fn)(double a, double *ca, double *cb);

static cm_status combine_rows(real *out, const real *p, const real *q, const double *acp, int T, const int64_t *t,
                              int64_t B, int D, coef_fn coef, cm_error *err) {
    cm_status st = check_t(T, t, B, err);
    if (st) return st;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        double ca, cb;
        coef(acp[t[b]], &ca, &cb);
        for (int d = 0; d < D; d++) out[b * D + d] = (real)(ca * p[b * D + d] + cb * q[b * D + d]);
    }
    return CM_OK;
}

static void coef_add_noise(double a, double *ca, double *cb) { *ca = sqrt(a); *cb = sqrt(1 - a); }
static void coef_velocity(double a, double *ca, double *cb) { *ca = -sqrt(1 - a); *cb = sqrt(a); }   /* (x0, eps) */
static void coef_x0_from_v(double a, double *ca, double *cb) { *ca = sqrt(a); *cb = -sqrt(1 - a); }  /* (xt, v) */
static void coef_eps_from_v(double a, double *ca, double *cb) { *ca = sqrt(1 - a); *cb = sqrt(a); }  /* (xt, v) */
static void coef_v_from_eps(double a, double *ca, double *cb) { *ca = -sqrt(1 - a) / sqrt(a); *cb = 1 / sqrt(a); }
static void coef_x0_from_eps(double a, double *ca, double *cb) { *ca = 1 / sqrt(a); *cb = -sqrt(1 - a) / sqrt(a); }
static void coef_eps_from_x0(double a, double *ca, double *cb) { *ca = 1 / sqrt(1 - a); *cb = -sqrt(a) / sqrt(1 - a); }

cm_status diffusion_add_noise(real *xt, const real *x0, const real *eps, const double *acp, int T, const int64_t *t,
                              int64_t B, int D, cm_error *err) {
    return combine_rows(xt, x0, eps, acp, T, t, B, D, coef_add_noise, err);
}
cm_status diffusion_velocity(real *v, const real *x0, const real *eps, const double *acp, int T, const int64_t *t,
                             int64_t B, int D, cm_error *err) {
    return combine_rows(v, x0, eps, acp, T, t, B, D, coef_velocity, err);
}
cm_status diffusion_x0_from_v(real *x0, const real *xt, const real *v, const double *acp, int T, const int64_t *t,
                              int64_t B, int D, cm_error *err) {
    return combine_rows(x0, xt, v, acp, T, t, B, D, coef_x0_from_v, err);
}
cm_status diffusion_eps_from_v(real *eps, const real *xt, const real *v, const double *acp, int T, const int64_t *t,
                               int64_t B, int D, cm_error *err) {
    return combine_rows(eps, xt, v, acp, T, t, B, D, coef_eps_from_v, err);
}

static cm_status check_a(const double *acp, const int64_t *t, int64_t B, double bad, const char *why, cm_error *err) {
    for (int64_t b = 0; b < B; b++)
        if (acp[t[b]] == bad)
            return cm_error_set(err, CM_ERR_VALUE, "", 0, "t[%lld] = %lld: %s", (long long)b, (long long)t[b], why);
    return CM_OK;
}

cm_status diffusion_v_from_eps(real *v, const real *xt, const real *eps, const double *acp, int T, const int64_t *t,
                               int64_t B, int D, cm_error *err) {
    cm_status st = check_t(T, t, B, err);
    if (!st) st = check_a(acp, t, B, 0, "alpha_bar = 0 (zero SNR): eps does not determine v there", err);
    return st ? st : combine_rows(v, xt, eps, acp, T, t, B, D, coef_v_from_eps, err);
}
cm_status diffusion_x0_from_eps(real *x0, const real *xt, const real *eps, const double *acp, int T, const int64_t *t,
                                int64_t B, int D, cm_error *err) {
    cm_status st = check_t(T, t, B, err);
    if (!st) st = check_a(acp, t, B, 0, "alpha_bar = 0 (zero SNR): x_t holds no information on x0", err);
    return st ? st : combine_rows(x0, xt, eps, acp, T, t, B, D, coef_x0_from_eps, err);
}
cm_status diffusion_eps_from_x0(real *eps, const real *xt, const real *x0, const double *acp, int T, const int64_t *t,
                                int64_t B, int D, cm_error *err) {
    cm_status st = check_t(T, t, B, err);
    if (!st) st = check_a(acp, t, B, 1, "alpha_bar = 1: x_t holds no noise", err);
    return st ? st : combine_rows(eps, xt, x0, acp, T, t, B, D, coef_eps_from_x0, err);
}

/* ---------------------------------------------------------------- sampler steps */

/* x0 and eps estimates from a model output at alpha_bar a (eps may be NULL). Returns the unclipped x0. */
static inline double estimate(double *eps, double xt, double m, double a, cm_prediction pred) {
    const double sa = sqrt(a), sb = sqrt(1 - a);
    double x0;
    switch (pred) {
    case CM_PRED_V: x0 = sa * xt - sb * m; if (eps) *eps = sa * m + sb * xt; break;
    case CM_PRED_SAMPLE: x0 = m; if (eps) *eps = (xt - sa * x0) / sb; break;
    default: x0 = (xt - sb * m) / sa; if (eps) *eps = m; break;
    }
    return x0;
}

static cm_status check_step(int T, int64_t t, int64_t t_prev, cm_prediction pred, const double *acp, cm_error *err) {
    if (t < 0 || t >= T) return cm_error_set(err, CM_ERR_VALUE, "", 0, "timestep %lld is outside [0, %d)", (long long)t, T);
    if (t_prev >= t) return cm_error_set(err, CM_ERR_VALUE, "", 0, "previous timestep %lld must be below t = %lld", (long long)t_prev, (long long)t);
    if (pred != CM_PRED_V && pred != CM_PRED_EPSILON && pred != CM_PRED_SAMPLE)
        return cm_error_set(err, CM_ERR_VALUE, "", 0, "unknown prediction type %d", (int)pred);
    if (pred == CM_PRED_EPSILON && acp[t] == 0)
        return cm_error_set(err, CM_ERR_VALUE, "", 0,
                            "epsilon prediction cannot recover x0 at zero SNR (t = %lld); use v-prediction", (long long)t);
    return CM_OK;   /* any t_prev < 0 means "after the last step": alpha_bar = 1 */
}

cm_status ddpm_step(real *x_prev, real *x0_pred, const real *xt, const real *model_out, const double *acp, int T,
                    int64_t t, int64_t t_prev, cm_prediction pred, double clip, uint64_t seed, int64_t sample0,
                    int64_t B, int D, cm_error *err) {
    cm_status st = check_step(T, t, t_prev, pred, acp, err);
    if (st) return st;
    const double a = acp[t], a_prev = t_prev >= 0 ? acp[t_prev] : 1.0;
    const double alpha = a / a_prev, beta = 1 - alpha;
    /* DDPM eq. (7): posterior mean coefficients of x0 and x_t */
    const double c0 = sqrt(a_prev) * beta / (1 - a), ct = sqrt(alpha) * (1 - a_prev) / (1 - a);
    double var = (1 - a_prev) / (1 - a) * beta;
    if (var < 1e-20) var = 1e-20;
    const double sd = t > 0 ? sqrt(var) : 0;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            const int64_t i = b * D + d;
            double x0 = estimate(NULL, xt[i], model_out[i], a, pred);
            if (clip > 0) x0 = x0 < -clip ? -clip : x0 > clip ? clip : x0;
            double x = c0 * x0 + ct * xt[i];
            if (sd > 0) x += sd * diffusion_normal(seed, (uint64_t)(sample0 + b), (uint64_t)t, (uint64_t)d);
            if (x0_pred) x0_pred[i] = (real)x0;
            x_prev[i] = (real)x;   /* last: x_prev may alias xt */
        }
    return CM_OK;
}

cm_status ddim_step(real *x_prev, real *x0_pred, const real *xt, const real *model_out, const double *acp, int T,
                    int64_t t, int64_t t_prev, cm_prediction pred, double clip, double eta, uint64_t seed,
                    int64_t sample0, int64_t B, int D, cm_error *err) {
    cm_status st = check_step(T, t, t_prev, pred, acp, err);
    if (st) return st;
    if (eta < 0) return cm_error_set(err, CM_ERR_VALUE, "", 0, "eta must be >= 0 (got %g)", eta);
    const double a = acp[t], a_prev = t_prev >= 0 ? acp[t_prev] : 1.0;
    const double var = (1 - a_prev) / (1 - a) * (1 - a / a_prev);
    const double s = eta * sqrt(var > 0 ? var : 0);
    const double dir = 1 - a_prev - s * s, cdir = sqrt(dir > 0 ? dir : 0), cx0 = sqrt(a_prev);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            const int64_t i = b * D + d;
            double eps;
            double x0 = estimate(&eps, xt[i], model_out[i], a, pred);
            if (clip > 0) x0 = x0 < -clip ? -clip : x0 > clip ? clip : x0;
            double x = cx0 * x0 + cdir * eps;
            if (s > 0) x += s * diffusion_normal(seed, (uint64_t)(sample0 + b), (uint64_t)t, (uint64_t)d);
            if (x0_pred) x0_pred[i] = (real)x0;
            x_prev[i] = (real)x;
        }
    return CM_OK;
}

/* ---------------------------------------------------------------- guidance */

void cfg_combine_uncond_weight(real *out, const real *uncond, const real *cond, int64_t n, double w) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = (real)(w * uncond[i] + (1 - w) * cond[i]);
}

void cfg_combine_guidance_weight(real *out, const real *uncond, const real *cond, int64_t n, double w) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = (real)(uncond[i] + (1 + w) * (cond[i] - uncond[i]));
}
