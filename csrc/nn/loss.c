/* loss.c: L2 normalisation and DICE's three-temperature contrastive loss (see loss.h). */
#include "loss.h"
#include "gemm.h"
#include "dispatch.h"   /* the similarity and gradient loops: one body, vector paths by CPU */
#include <math.h>
#include <string.h>

/* no OpenMP team below this many multiply-adds of the similarity matrix (G x G x D): its loops
 * (and their G x G exps) then take less than a team costs to wake; the small benchmark batch
 * (64 x 64 x 32) still splits its ~0.1 ms between threads. Results do not depend on it. */
#define LOSS_PARALLEL_MIN (1 << 16)

/* sim[i, k] = u_i . u_k for rows i of [i0, i1), each in double in 8 interleaved sums added in
 * a fixed order (one running sum would be a chain of dependent adds, 4 cycles each: the loss's
 * whole cost at small sizes) */
CM_INLINE void sim_rows_body(real *sim, const real *u, int64_t i0, int64_t i1, int64_t G, int D) {
    enum { LANES = 8 };
    for (int64_t i = i0; i < i1; i++)
        for (int64_t k = 0; k < G; k++) {
            const real *a = u + i * D, *b = u + k * D;
            double acc[LANES] = {0};
            int d = 0;
            for (; d + LANES <= D; d += LANES)
                for (int j = 0; j < LANES; j++) acc[j] += (double)a[d + j] * b[d + j];
            for (; d < D; d++) acc[d % LANES] += (double)a[d] * b[d];
            sim[i * G + k] = (real)(((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])));
        }
}
CM_DISPATCH(sim_rows, sim_rows_body, (real *sim, const real *u, int64_t i0, int64_t i1, int64_t G, int D),
            (sim, u, i0, i1, G, D))

/* du[a] += sum_k (ds[a, k] + ds[k, a]) u_k for rows a of [a0, a1) */
CM_INLINE void du_rows_body(real *du, const real *ds, const real *u, int64_t a0, int64_t a1, int64_t G, int D) {
    for (int64_t a = a0; a < a1; a++)
        for (int64_t k = 0; k < G; k++) {
            double w = (double)ds[a * G + k] + (double)ds[k * G + a];
            if (w == 0.0) continue;
            for (int d = 0; d < D; d++) du[a * D + d] += (real)(w * u[k * D + d]);
        }
}
CM_DISPATCH(du_rows, du_rows_body, (real *du, const real *ds, const real *u, int64_t a0, int64_t a1, int64_t G, int D),
            (du, ds, u, a0, a1, G, D))

void l2norm_forward(real *u, real *norm, const real *y, int64_t G, int D) {
#pragma omp parallel for schedule(static) if (G * D >= 32768)
    for (int64_t g = 0; g < G; g++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)y[g * D + d] * y[g * D + d];
        double n = sqrt(s);
        if (n < 1e-12) n = 1e-12;
        norm[g] = (real)n;
        for (int d = 0; d < D; d++) u[g * D + d] = (real)(y[g * D + d] / n);
    }
}

void l2norm_backward(real *dy, const real *du, const real *u, const real *norm, int64_t G, int D) {
    /* dy = (du - u (u . du)) / |y| */
#pragma omp parallel for schedule(static) if (G * D >= 32768)
    for (int64_t g = 0; g < G; g++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)u[g * D + d] * du[g * D + d];
        for (int d = 0; d < D; d++) dy[g * D + d] += (real)((du[g * D + d] - u[g * D + d] * dot) / norm[g]);
    }
}

/* relation of k to anchor i: 1 positive, 2 negative, 0 none (k == i) */
static int relation(const int64_t *group, const uint8_t *negative, int64_t i, int64_t k) {
    if (k == i) return 0;
    if (group[k] == group[i] && !negative[k]) return 1;
    return 2;
}

double dice_loss_forward(real *sim, double *anchor_loss, const real *u, const int64_t *group, const uint8_t *negative,
                         int64_t G, int D, double tau, double tau_p, double tau_n, int64_t *n_pairs_out) {
#pragma omp parallel for schedule(static) if (G * G * D >= LOSS_PARALLEL_MIN)
    for (int64_t i = 0; i < G; i++) sim_rows(sim, u, i, i + 1, G, D);
    /* per-anchor sums in fixed order: deterministic for any thread count */
#pragma omp parallel for schedule(static) if (G * G * D >= LOSS_PARALLEL_MIN)
    for (int64_t i = 0; i < G; i++) {
        anchor_loss[i] = 0;
        if (negative[i]) continue;
        const real *si = sim + i * G;
        /* log-sum-exp of the denominator, shifted by its max term for stability */
        double mx = -INFINITY;
        for (int64_t k = 0; k < G; k++) {
            int r = relation(group, negative, i, k);
            if (r) { double t = si[k] / (r == 1 ? tau_p : tau_n); if (t > mx) mx = t; }
        }
        double den = 0;
        for (int64_t k = 0; k < G; k++) {
            int r = relation(group, negative, i, k);
            if (r) den += exp(si[k] / (r == 1 ? tau_p : tau_n) - mx);
        }
        double lse = mx + log(den), acc = 0;
        int64_t np = 0;
        for (int64_t j = 0; j < G; j++)
            if (relation(group, negative, i, j) == 1) { acc += -(si[j] / tau - lse); np++; }
        (void)np;
        anchor_loss[i] = acc;
    }
    double total = 0;
    int64_t pairs = 0;
    for (int64_t i = 0; i < G; i++) {
        total += anchor_loss[i];
        if (!negative[i])
            for (int64_t j = 0; j < G; j++) pairs += relation(group, negative, i, j) == 1;
    }
    if (n_pairs_out) *n_pairs_out = pairs;
    return pairs ? total / (double)pairs : 0.0;
}

void dice_loss_backward(real *du, real *ds, const real *u, const real *sim, const int64_t *group,
                        const uint8_t *negative, int64_t G, int D, double tau, double tau_p, double tau_n) {
    /* dL/ds_ik for anchor i: -(1/P)[ [k pos] * (1/tau)  - n_i * softmax_ik / tau_k ] over its n_i pairs,
     * with tau_k = tau_p or tau_n. Then du_i += sum_k dL/ds_ik u_k and du_k += dL/ds_ik u_i,
     * gathered per row so each du row has one writer. */
    int64_t pairs = 0;
    for (int64_t i = 0; i < G; i++)
        if (!negative[i])
            for (int64_t j = 0; j < G; j++) pairs += relation(group, negative, i, j) == 1;
    if (!pairs) return;
#pragma omp parallel for schedule(static) if (G * G * D >= LOSS_PARALLEL_MIN)
    for (int64_t i = 0; i < G; i++) {
        memset(ds + i * G, 0, sizeof(real) * (size_t)G);
        if (negative[i]) continue;
        const real *si = sim + i * G;
        int64_t ni = 0;
        double mx = -INFINITY;
        for (int64_t k = 0; k < G; k++) {
            int r = relation(group, negative, i, k);
            ni += r == 1;
            if (r) { double t = si[k] / (r == 1 ? tau_p : tau_n); if (t > mx) mx = t; }
        }
        if (!ni) continue;
        /* the terms, kept in this anchor's ds row for the softmax below (one exp per pair) */
        real *ex = ds + i * G;
        double den = 0;
        for (int64_t k = 0; k < G; k++) {
            int r = relation(group, negative, i, k);
            if (!r) continue;
            double t = exp(si[k] / (r == 1 ? tau_p : tau_n) - mx);
            den += t;
            ex[k] = (real)t;
        }
        for (int64_t k = 0; k < G; k++) {
            int r = relation(group, negative, i, k);
            if (!r) continue;
            double tk = r == 1 ? tau_p : tau_n;
            double soft = (double)ex[k] / den;
            double g = (double)ni * soft / tk - (r == 1 ? 1.0 / tau : 0.0);
            ds[i * G + k] = (real)(g / (double)pairs);
        }
    }
#pragma omp parallel for schedule(static) if (G * G * D >= LOSS_PARALLEL_MIN)
    for (int64_t a = 0; a < G; a++)   /* s_ik = u_i . u_k: du_a collects ds[a,k] u_k (as anchor) and ds[i,a] u_i (as partner) */
        du_rows(du, ds, u, a, a + 1, G, D);
}
