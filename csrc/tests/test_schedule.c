/* test_schedule.c: checks of csrc/diffusion/schedule.c, compiled with -DCM_REAL=double.
 *
 * Plain run: the cosine betas against their formula; the zero-terminal-SNR rescale (alpha_bar
 * decreasing, last exactly 0, first unchanged); x0/eps/v round trips; a DDPM and a DDIM step on known
 * inputs against hand computations (including the paper's eq. (2) form of the DDPM mean, and
 * DDIM(eta = 1) == DDPM); timestep spacings; noise mean, variance and determinism; guidance.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 *
 * `test_schedule json T n B D seed clip eta` prints the schedule, conversions, single DDPM steps and
 * whole DDPM/DDIM chains (with a fixed stand-in model) as JSON, for tests/test_diffusion_schedule.py
 * to compare with diffusers' DDPMScheduler / DDIMScheduler. */
#include "../diffusion/schedule.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI_ 3.14159265358979323846
static int passed = 0, failed = 0;
static void check(const char *what, double got, double want, double tol) {
    double err = fabs(got - want) / fmax(1.0, fabs(want));
    if (!(err <= tol)) {
        failed++;
        printf("FAIL %s: got %.15g want %.15g (err %.2e)\n", what, got, want, err);
    } else passed++;
}
static void check_true(const char *what, int ok) {
    if (!ok) { failed++; printf("FAIL %s\n", what); } else passed++;
}
static uint64_t rs = 0x853c49e6748fea9bull;
static double urand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0; }

/* The stand-in "model" of the chains: any smooth deterministic function of (x, t) will do. */
static double fake_model(double x, int64_t t) { return 0.5 * x - 0.3 * sin(x) + 0.001 * (double)t; }

static void test_schedule(void) {
    const int T = 1000;
    double *b0 = malloc(sizeof(double) * T), *a0 = malloc(sizeof(double) * T);
    double *b = malloc(sizeof(double) * T), *a = malloc(sizeof(double) * T);
    cm_error err;
    check_true("plain cosine schedule", diffusion_cosine_schedule(b0, a0, T, 0, &err) == CM_OK);
    check_true("zero-SNR cosine schedule", diffusion_cosine_schedule(b, a, T, 1, &err) == CM_OK);
    /* betas of the plain schedule: the formula, capped at 0.999 */
    int capped = 0;
    for (int i = 0; i < T; i++) {
        double s1 = cos(((double)i / T + 0.008) / 1.008 * PI_ / 2), s2 = cos(((double)(i + 1) / T + 0.008) / 1.008 * PI_ / 2);
        double want = fmin(1 - (s2 * s2) / (s1 * s1), 0.999);
        capped += want == 0.999;
        check("cosine beta formula", b0[i], want, 1e-14);
    }
    check_true("the last plain beta is capped at 0.999", capped >= 1 && b0[T - 1] == 0.999);
    check("plain alpha_bar[0] = 1 - beta[0]", a0[0], 1 - b0[0], 1e-15);
    check_true("plain schedule has non-zero terminal SNR", a0[T - 1] > 0);
    /* rescaled: monotone, last exactly zero, first unchanged */
    int mono = 1;
    for (int i = 1; i < T; i++) mono &= a[i] < a[i - 1];
    check_true("alpha_bar strictly decreasing", mono);
    check_true("alpha_bar[T-1] == 0 exactly (zero terminal SNR)", a[T - 1] == 0.0);
    check_true("beta[T-1] == 1", b[T - 1] == 1.0);
    check("alpha_bar[0] unchanged by the rescale", a[0], a0[0], 1e-13);
    int in_range = 1;
    for (int i = 0; i < T; i++) in_range &= b[i] > 0 && b[i] <= 1;
    check_true("rescaled betas in (0, 1]", in_range);
    /* Algorithm 1 is affine on sqrt(alpha_bar): sqrt(a) = (sqrt(a0) - sqrt(a0_T)) * k */
    double k = sqrt(a0[0]) / (sqrt(a0[0]) - sqrt(a0[T - 1]));
    for (int i = 0; i < T; i += 37) check("rescale is the affine map of sqrt(alpha_bar)", sqrt(a[i]), (sqrt(a0[i]) - sqrt(a0[T - 1])) * k, 1e-12);
    /* small T and errors */
    double bs[2], as[2];
    check_true("T = 2 works", diffusion_cosine_schedule(bs, as, 2, 1, &err) == CM_OK && as[1] == 0);
    check_true("T = 1 cannot be rescaled", diffusion_cosine_schedule(bs, as, 1, 1, &err) == CM_ERR_VALUE);
    check_true("T = 0 refused", diffusion_cosine_schedule(bs, as, 0, 0, &err) == CM_ERR_VALUE);
    check_true("betas may be NULL", diffusion_cosine_schedule(NULL, as, 2, 1, &err) == CM_OK && as[1] == 0);
    free(b0); free(a0); free(b); free(a);
}

static void test_timesteps(void) {
    int64_t ts[1000];
    cm_error err;
    diffusion_timesteps(ts, 1000, 50, CM_SPACING_TRAILING, &err);
    int ok = 1;
    for (int i = 0; i < 50; i++) ok &= ts[i] == 999 - 20 * i;
    check_true("trailing 50 of 1000: 999, 979, ..., 19", ok);
    diffusion_timesteps(ts, 1000, 50, CM_SPACING_LEADING, &err);
    ok = 1;
    for (int i = 0; i < 50; i++) ok &= ts[i] == 980 - 20 * i;
    check_true("leading 50 of 1000: 980, 960, ..., 0", ok);
    diffusion_timesteps(ts, 1000, 4, CM_SPACING_LINSPACE, &err);
    check_true("linspace 4 of 1000: 999, 666, 333, 0", ts[0] == 999 && ts[1] == 666 && ts[2] == 333 && ts[3] == 0);
    diffusion_timesteps(ts, 1000, 1000, CM_SPACING_TRAILING, &err);
    ok = 1;
    for (int i = 0; i < 1000; i++) ok &= ts[i] == 999 - i;
    check_true("trailing T of T: every step", ok);
    check_true("more steps than T refused", diffusion_timesteps(ts, 10, 11, CM_SPACING_TRAILING, &err) == CM_ERR_VALUE);
    check_true("zero steps refused", diffusion_timesteps(ts, 10, 0, CM_SPACING_TRAILING, &err) == CM_ERR_VALUE);
}

static void test_conversions(void) {
    const int T = 1000, B = 6, D = 5;
    double *acp = malloc(sizeof(double) * T);
    cm_error err;
    diffusion_cosine_schedule(NULL, acp, T, 1, &err);
    int64_t t[6] = {0, 1, 250, 500, 998, 999};
    real x0[30], eps[30], xt[30], v[30], r1[30], r2[30];
    for (int i = 0; i < B * D; i++) { x0[i] = 2 * urand() - 1; eps[i] = diffusion_normal(1, 0, 0, (uint64_t)i); }
    diffusion_add_noise(xt, x0, eps, acp, T, t, B, D, &err);
    diffusion_velocity(v, x0, eps, acp, T, t, B, D, &err);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            int i = b * D + d;
            double al = sqrt(acp[t[b]]), si = sqrt(1 - acp[t[b]]);
            check("x_t = alpha x0 + sigma eps", xt[i], al * x0[i] + si * eps[i], 1e-15);
            check("v = alpha eps - sigma x0 (paper, diffusers get_velocity)", v[i], al * eps[i] - si * x0[i], 1e-15);
            /* (x_t, v) is a rotation of (x0, eps) */
            check("x_t^2 + v^2 = x0^2 + eps^2", xt[i] * xt[i] + v[i] * v[i], x0[i] * x0[i] + eps[i] * eps[i], 1e-14);
        }
    check("x_T = eps at zero SNR", xt[5 * D + 2], eps[5 * D + 2], 1e-15);
    check("v_T = -x0 at zero SNR", v[5 * D + 2], -x0[5 * D + 2], 1e-15);
    diffusion_x0_from_v(r1, xt, v, acp, T, t, B, D, &err);
    diffusion_eps_from_v(r2, xt, v, acp, T, t, B, D, &err);
    for (int i = 0; i < B * D; i++) {
        check("x0 from (x_t, v) round trip", r1[i], x0[i], 1e-14);
        check("eps from (x_t, v) round trip", r2[i], eps[i], 1e-14);
    }
    /* eps-based conversions on the rows where they are defined (all t < T-1) */
    check_true("x0 from eps refused at zero SNR", diffusion_x0_from_eps(r1, xt, eps, acp, T, t, B, D, &err) == CM_ERR_VALUE);
    check_true("v from eps refused at zero SNR", diffusion_v_from_eps(r1, xt, eps, acp, T, t, B, D, &err) == CM_ERR_VALUE);
    diffusion_x0_from_eps(r1, xt, eps, acp, T, t, B - 1, D, &err);
    diffusion_eps_from_x0(r2, xt, x0, acp, T, t, B - 1, D, &err);
    for (int i = 0; i < (B - 1) * D; i++) {
        check("x0 from (x_t, eps) round trip", r1[i], x0[i], 1e-9);   /* 1/alpha ~ 1e2 at t = 998 */
        check("eps from (x_t, x0) round trip", r2[i], eps[i], 1e-9);
    }
    diffusion_v_from_eps(r1, xt, eps, acp, T, t, B - 1, D, &err);
    for (int i = 0; i < (B - 1) * D; i++) check("v from (x_t, eps) round trip", r1[i], v[i], 1e-9);
    int64_t bad[1] = {1000};
    check_true("t out of range refused", diffusion_velocity(v, x0, eps, acp, T, bad, 1, D, &err) == CM_ERR_VALUE);
    free(acp);
}

/* A DDPM step on known inputs against a hand computation. */
static void test_ddpm_step(void) {
    const int T = 10, B = 3, D = 4;
    double acp[10], betas[10];
    cm_error err;
    diffusion_cosine_schedule(betas, acp, T, 1, &err);
    real xt[12], m[12], out[12], x0p[12];
    for (int i = 0; i < 12; i++) { xt[i] = (real)(0.1 * i - 0.5); m[i] = (real)(0.3 - 0.07 * i); }
    const int64_t t = 6, tp = 5;
    check_true("ddpm step runs", ddpm_step(out, x0p, xt, m, acp, T, t, tp, CM_PRED_V, 0, 77, 10, B, D, &err) == CM_OK);
    const double a = acp[t], ap = acp[tp], alpha = 1 - betas[t], beta = betas[t];
    check("alpha_t = a_t / a_{t-1}", a / ap, alpha, 1e-13);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            int i = b * D + d;
            double x0 = sqrt(a) * xt[i] - sqrt(1 - a) * m[i];
            double mean = sqrt(ap) * beta / (1 - a) * x0 + sqrt(alpha) * (1 - ap) / (1 - a) * xt[i];
            double var = (1 - ap) / (1 - a) * beta;
            double z = diffusion_normal(77, (uint64_t)(10 + b), (uint64_t)t, (uint64_t)d);
            check("ddpm x0 estimate", x0p[i], x0, 1e-15);
            check("ddpm step = posterior mean + sqrt(var) z", out[i], mean + sqrt(var) * z, 1e-14);
            /* the paper's eq. (2) mean: (x_t - beta / sqrt(1 - a) eps) / sqrt(alpha) */
            double eps = sqrt(a) * m[i] + sqrt(1 - a) * xt[i];
            check("ddpm mean = eq. (2) of the paper", mean, (xt[i] - beta / sqrt(1 - a) * eps) / sqrt(alpha), 1e-13);
        }
    /* a worked number: sample 0, entry 0 by hand from the printed schedule values */
    {
        double x = -0.5, mv = 0.3, x0 = sqrt(a) * x - sqrt(1 - a) * mv;
        double want = sqrt(ap) * beta / (1 - a) * x0 + sqrt(alpha) * (1 - ap) / (1 - a) * x +
                      sqrt((1 - ap) / (1 - a) * beta) * diffusion_normal(77, 10, 6, 0);
        check("ddpm step, sample 0 entry 0", out[0], want, 1e-14);
    }
    /* eps and x0 predictions give the same step when they describe the same estimate */
    real m_eps[12], m_x0[12], out2[12];
    for (int i = 0; i < 12; i++) {
        m_eps[i] = (real)(sqrt(a) * m[i] + sqrt(1 - a) * xt[i]);
        m_x0[i] = (real)(sqrt(a) * xt[i] - sqrt(1 - a) * m[i]);
    }
    ddpm_step(out2, NULL, xt, m_eps, acp, T, t, tp, CM_PRED_EPSILON, 0, 77, 10, B, D, &err);
    for (int i = 0; i < 12; i++) check("ddpm step: eps prediction agrees", out2[i], out[i], 1e-13);
    ddpm_step(out2, NULL, xt, m_x0, acp, T, t, tp, CM_PRED_SAMPLE, 0, 77, 10, B, D, &err);
    for (int i = 0; i < 12; i++) check("ddpm step: x0 prediction agrees", out2[i], out[i], 1e-13);
    /* in place */
    real inplace[12];
    memcpy(inplace, xt, sizeof xt);
    ddpm_step(inplace, NULL, inplace, m, acp, T, t, tp, CM_PRED_V, 0, 77, 10, B, D, &err);
    check_true("ddpm step in place", memcmp(inplace, out, sizeof out) == 0);
    /* clipping bounds the x0 estimate */
    ddpm_step(out2, x0p, xt, m, acp, T, t, tp, CM_PRED_V, 0.05, 77, 10, B, D, &err);
    double mx = 0;
    for (int i = 0; i < 12; i++) mx = fmax(mx, fabs(x0p[i]));
    check_true("ddpm clip bounds x0", mx <= 0.05 + 1e-15);
    /* the last step adds no noise and returns the x0 estimate */
    ddpm_step(out2, x0p, xt, m, acp, T, 0, -1, CM_PRED_V, 0, 77, 10, B, D, &err);
    for (int i = 0; i < 12; i++) check("ddpm step at t = 0 returns x0", out2[i], x0p[i], 1e-14);
    /* the first step of a zero-SNR chain: x0 = -v */
    ddpm_step(out2, x0p, xt, m, acp, T, T - 1, T - 2, CM_PRED_V, 0, 77, 10, B, D, &err);
    check("ddpm at t = T-1: x0 = -v", x0p[3], -m[3], 1e-15);
    check_true("eps prediction refused at zero SNR",
               ddpm_step(out2, NULL, xt, m, acp, T, T - 1, T - 2, CM_PRED_EPSILON, 0, 77, 10, B, D, &err) == CM_ERR_VALUE);
    check_true("t_prev >= t refused", ddpm_step(out2, NULL, xt, m, acp, T, 3, 3, CM_PRED_V, 0, 1, 0, B, D, &err) == CM_ERR_VALUE);
    check_true("t >= T refused", ddpm_step(out2, NULL, xt, m, acp, T, 10, 9, CM_PRED_V, 0, 1, 0, B, D, &err) == CM_ERR_VALUE);
}

static void test_ddim_step(void) {
    const int T = 1000, B = 2, D = 3;
    double *acp = malloc(sizeof(double) * T);
    cm_error err;
    diffusion_cosine_schedule(NULL, acp, T, 1, &err);
    real x0[6], eps[6], xt[6], v[6], out[6], want[6], x0p[6];
    for (int i = 0; i < 6; i++) { x0[i] = (real)(0.4 * i - 1); eps[i] = diffusion_normal(5, 0, 1, (uint64_t)i); }
    /* with the true v, a deterministic DDIM step lands exactly on the forward process at t_prev */
    const int64_t t = 700, tp = 680;
    int64_t tv[2] = {t, t}, tpv[2] = {tp, tp};
    diffusion_add_noise(xt, x0, eps, acp, T, tv, B, D, &err);
    diffusion_velocity(v, x0, eps, acp, T, tv, B, D, &err);
    ddim_step(out, x0p, xt, v, acp, T, t, tp, CM_PRED_V, 0, 0, 3, 0, B, D, &err);
    diffusion_add_noise(want, x0, eps, acp, T, tpv, B, D, &err);
    for (int i = 0; i < 6; i++) check("ddim(true v) = forward process at t_prev", out[i], want[i], 1e-13);
    for (int i = 0; i < 6; i++) check("ddim x0 estimate", x0p[i], x0[i], 1e-13);
    /* from pure noise at T-1 to the end in one step returns x0 */
    int64_t tl[2] = {T - 1, T - 1};
    diffusion_add_noise(xt, x0, eps, acp, T, tl, B, D, &err);
    diffusion_velocity(v, x0, eps, acp, T, tl, B, D, &err);
    ddim_step(out, NULL, xt, v, acp, T, T - 1, -1, CM_PRED_V, 0, 0, 3, 0, B, D, &err);
    for (int i = 0; i < 6; i++) check("ddim from T-1 to the end returns x0", out[i], x0[i], 1e-13);
    /* hand computation on arbitrary inputs */
    real m[6] = {0.2, -0.1, 0.7, 1.3, -2, 0.05};
    for (int i = 0; i < 6; i++) xt[i] = (real)(0.3 * i - 0.6);
    ddim_step(out, NULL, xt, m, acp, T, t, tp, CM_PRED_V, 0, 0, 3, 0, B, D, &err);
    for (int i = 0; i < 6; i++) {
        double a = acp[t], ap = acp[tp];
        double x0h = sqrt(a) * xt[i] - sqrt(1 - a) * m[i], epsh = sqrt(a) * m[i] + sqrt(1 - a) * xt[i];
        check("ddim step by hand", out[i], sqrt(ap) * x0h + sqrt(1 - ap) * epsh, 1e-14);
    }
    /* eta = 1 between consecutive timesteps is the DDPM step (same noise) */
    real o1[6], o2[6];
    ddim_step(o1, NULL, xt, m, acp, T, t, t - 1, CM_PRED_V, 0, 1.0, 9, 4, B, D, &err);
    ddpm_step(o2, NULL, xt, m, acp, T, t, t - 1, CM_PRED_V, 0, 9, 4, B, D, &err);
    for (int i = 0; i < 6; i++) check("ddim(eta = 1) == ddpm", o1[i], o2[i], 1e-12);
    check_true("negative eta refused", ddim_step(o1, NULL, xt, m, acp, T, t, tp, CM_PRED_V, 0, -1, 9, 4, B, D, &err) == CM_ERR_VALUE);
    free(acp);
}

static void test_noise(void) {
    const int64_t B = 1000;
    const int D = 1000;
    real *z = malloc(sizeof(real) * (size_t)(B * D));
    diffusion_noise(z, 42, 7, 0, B, D);
    double s = 0, ss = 0, s4 = 0, lag = 0;
    for (int64_t i = 0; i < B * D; i++) { s += z[i]; ss += z[i] * z[i]; s4 += z[i] * z[i] * z[i] * z[i]; }
    for (int64_t i = 1; i < B * D; i++) lag += z[i] * z[i - 1];
    double n = (double)(B * D), mean = s / n, var = ss / n - mean * mean;
    check("noise mean ~ 0 (10^6 draws, 5 sigma)", mean, 0, 5e-3);
    check("noise variance ~ 1", var, 1, 7e-3);
    check("noise kurtosis ~ 3", s4 / n, 3, 0.03);
    check("noise lag-1 correlation ~ 0", lag / n, 0, 5e-3);
    int64_t in1 = 0;
    for (int64_t i = 0; i < B * D; i++) in1 += fabs(z[i]) < 1;
    check("P(|z| < 1) = 0.6827", (double)in1 / n, 0.682689, 3e-3);
    /* determinism and counters: a batch split gives the same rows */
    real part[2 * 1000];
    diffusion_noise(part, 42, 7, 500, 2, D);
    check_true("noise rows depend on (seed, sample, step, index) only", memcmp(part, z + 500 * D, sizeof part) == 0);
    check_true("another step gives other noise", diffusion_normal(42, 0, 8, 0) != z[0]);
    check_true("another seed gives other noise", diffusion_normal(43, 0, 7, 0) != z[0]);
    free(z);
    /* training draws */
    int64_t t[20000];
    diffusion_random_timesteps(t, 1000, 3, 0, 0, 20000);
    double tm = 0;
    int in_range = 1;
    for (int i = 0; i < 20000; i++) { tm += (double)t[i] / 20000; in_range &= t[i] >= 0 && t[i] < 1000; }
    check_true("random timesteps in [0, T)", in_range);
    check("random timesteps mean ~ (T-1)/2", tm, 499.5, 0.03);
    uint8_t drop[20000];
    diffusion_condition_dropout(drop, 0.1, 3, 0, 0, 20000);
    int nd = 0;
    for (int i = 0; i < 20000; i++) nd += drop[i];
    check("condition dropout rate ~ p", nd / 20000.0, 0.1, 0.01);
}

static void test_guidance(void) {
    real u[3] = {1, -2, 0.5}, c[3] = {3, 4, -1}, o1[3], o2[3];
    cfg_combine_uncond_weight(o1, u, c, 3, 0.1);
    check("paper's cfg: 0.1 u + 0.9 c", o1[0], 0.1 * 1 + 0.9 * 3, 1e-15);
    check("paper's cfg, entry 1", o1[1], 0.1 * -2 + 0.9 * 4, 1e-15);
    cfg_combine_guidance_weight(o2, u, c, 3, 2.0);
    check("Ho-Salimans cfg: u + 3 (c - u)", o2[2], 0.5 + 3 * (-1 - 0.5), 1e-15);
    cfg_combine_guidance_weight(o2, u, c, 3, -0.1);
    for (int i = 0; i < 3; i++) check("uncond_weight(w) == guidance_weight(-w)", o2[i], o1[i], 1e-15);
    cfg_combine_uncond_weight(o1, u, c, 3, 0);
    for (int i = 0; i < 3; i++) check("w = 0 gives the conditional prediction", o1[i], c[i], 0);
}

/* ---------------------------------------------------------------- JSON for the diffusers comparison */

static void put(const char *key, const real *a, int64_t n, int comma) {
    printf("\"%s\": [", key);
    for (int64_t i = 0; i < n; i++) printf("%s%.17g", i ? ", " : "", (double)a[i]);
    printf("]%s", comma ? ", " : "");
}
static void putd(const char *key, const double *a, int64_t n) {
    printf("\"%s\": [", key);
    for (int64_t i = 0; i < n; i++) printf("%s%.17g", i ? ", " : "", a[i]);
    printf("],\n");
}
static void puti(const char *key, const int64_t *a, int64_t n, int comma) {
    printf("\"%s\": [", key);
    for (int64_t i = 0; i < n; i++) printf("%s%lld", i ? ", " : "", (long long)a[i]);
    printf("]%s", comma ? ", " : "");
}

static int json(int argc, char **argv) {
    if (argc < 9) { fprintf(stderr, "usage: test_schedule json T n B D seed clip eta\n"); return 2; }
    const int T = atoi(argv[2]), n = atoi(argv[3]), B = atoi(argv[4]), D = atoi(argv[5]);
    const uint64_t seed = strtoull(argv[6], NULL, 10);
    const double clip = atof(argv[7]), eta = atof(argv[8]);
    const int64_t N = (int64_t)B * D;
    cm_error err;
    double *b0 = malloc(sizeof(double) * T), *a0 = malloc(sizeof(double) * T), *b = malloc(sizeof(double) * T),
           *acp = malloc(sizeof(double) * T);
    real *x0 = malloc(sizeof(real) * N), *eps = malloc(sizeof(real) * N), *xt = malloc(sizeof(real) * N),
         *v = malloc(sizeof(real) * N), *m = malloc(sizeof(real) * N), *out = malloc(sizeof(real) * N),
         *x0p = malloc(sizeof(real) * N), *z = malloc(sizeof(real) * N);
    int64_t *ts = malloc(sizeof(int64_t) * (n > B ? n : B));
    if (diffusion_cosine_schedule(b0, a0, T, 0, &err) || diffusion_cosine_schedule(b, acp, T, 1, &err) ||
        diffusion_timesteps(ts, T, n, CM_SPACING_TRAILING, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    printf("{\"T\": %d, \"n\": %d, \"B\": %d, \"D\": %d, \"seed\": %llu, \"clip\": %.17g, \"eta\": %.17g,\n", T, n, B, D,
           (unsigned long long)seed, clip, eta);
    putd("betas_plain", b0, T);
    putd("alphas_cumprod_plain", a0, T);
    putd("betas", b, T);
    putd("alphas_cumprod", acp, T);
    printf("\"timesteps\": {");
    const char *names[3] = {"trailing", "leading", "linspace"};
    for (int s = 0; s < 3; s++) {
        diffusion_timesteps(ts, T, n, (cm_spacing)s, &err);
        puti(names[s], ts, n, s < 2);
    }
    printf("},\n");
    /* conversions at per-sample timesteps spread over [0, T) including T-1 */
    for (int i = 0; i < B; i++) ts[i] = i == 0 ? T - 1 : (int64_t)((double)i / B * T);
    diffusion_noise(x0, seed, 1000001, 0, B, D);
    diffusion_noise(eps, seed, 1000002, 0, B, D);
    diffusion_add_noise(xt, x0, eps, acp, T, ts, B, D, &err);
    diffusion_velocity(v, x0, eps, acp, T, ts, B, D, &err);
    printf("\"conversions\": {");
    puti("t", ts, B, 1); put("x0", x0, N, 1); put("eps", eps, N, 1); put("xt", xt, N, 1); put("v", v, N, 1);
    diffusion_x0_from_v(out, xt, v, acp, T, ts, B, D, &err);
    put("x0_from_v", out, N, 1);
    diffusion_eps_from_v(out, xt, v, acp, T, ts, B, D, &err);
    put("eps_from_v", out, N, 0);
    printf("},\n");
    /* single DDPM steps of the full T-step chain (t_prev = t - 1), with x0 estimates */
    const int64_t single[4] = {T - 1, T / 2, 1, 0};
    printf("\"ddpm_steps\": [\n");
    for (int k = 0; k < 4; k++) {
        const int64_t t = single[k];
        diffusion_noise(xt, seed, 2000000 + (uint64_t)k, 0, B, D);
        diffusion_noise(m, seed, 3000000 + (uint64_t)k, 0, B, D);
        diffusion_noise(z, seed, (uint64_t)t, 0, B, D);    /* the noise ddpm_step draws */
        if (ddpm_step(out, x0p, xt, m, acp, T, t, t - 1, CM_PRED_V, clip, seed, 0, B, D, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        printf("{\"t\": %lld, \"t_prev\": %lld, ", (long long)t, (long long)(t - 1));
        put("sample", xt, N, 1); put("model_output", m, N, 1); put("noise", z, N, 1);
        put("prev_sample", out, N, 1); put("pred_original_sample", x0p, N, 0);
        printf("}%s\n", k < 3 ? "," : "");
    }
    printf("],\n");
    /* whole chains over the trailing timesteps with the stand-in model */
    diffusion_timesteps(ts, T, n, CM_SPACING_TRAILING, &err);
    for (int chain = 0; chain < 2; chain++) {
        printf("\"%s\": {", chain ? "ddim_chain" : "ddpm_chain");
        puti("timesteps", ts, n, 1);
        diffusion_noise(xt, seed, 4000000 + (uint64_t)chain, 0, B, D);
        put("x_init", xt, N, 1);
        printf("\"steps\": [\n");
        for (int i = 0; i < n; i++) {
            const int64_t t = ts[i], tp = i + 1 < n ? ts[i + 1] : -1;
            for (int64_t j = 0; j < N; j++) m[j] = (real)fake_model(xt[j], t);
            diffusion_noise(z, seed, (uint64_t)t, 0, B, D);
            cm_status st = chain ? ddim_step(xt, x0p, xt, m, acp, T, t, tp, CM_PRED_V, clip, eta, seed, 0, B, D, &err)
                                 : ddpm_step(xt, x0p, xt, m, acp, T, t, tp, CM_PRED_V, clip, seed, 0, B, D, &err);
            if (st) { fprintf(stderr, "%s\n", err.msg); return 2; }
            printf("{\"t\": %lld, \"t_prev\": %lld, ", (long long)t, (long long)tp);
            put("noise", z, N, 1); put("pred_original_sample", x0p, N, 1); put("prev_sample", xt, N, 0);
            printf("}%s\n", i + 1 < n ? "," : "");
        }
        printf("]}%s\n", chain ? "" : ",");
    }
    printf("}\n");
    free(b0); free(a0); free(b); free(acp); free(x0); free(eps); free(xt); free(v); free(m); free(out); free(x0p); free(z); free(ts);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "json")) return json(argc, argv);
    test_schedule();
    test_timesteps();
    test_conversions();
    test_ddpm_step();
    test_ddim_step();
    test_noise();
    test_guidance();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
