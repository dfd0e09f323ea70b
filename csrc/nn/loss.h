/* loss.h: DICE's contrastive loss and NT-Xent on graph embeddings.
 *
 * Embeddings y[G, D] are L2-normalised (u = y / |y|) and compared by cosine s_ij = u_i . u_j.
 * Views carry a group label (the base circuit) and a polarity (negative view or not).
 * For view i, pos(i) = other positive views of the same group; neg(i) = views of other groups
 * and negative views of its own group. DICE's loss over positive pairs (i, j):
 *   l_ij = -[ s_ij / tau - log( sum_{k in pos(i)} exp(s_ik / tau_p) + sum_{k in neg(i)} exp(s_ik / tau_n) ) ]
 * averaged over all ordered positive pairs. NT-Xent (SimCLR) is the special case with one
 * temperature and the positive in the denominator: pass tau = tau_p = tau_n.
 * Negative views are anchors of no positive pair (they only appear in denominators).
 * Sizes: G views, D embedding width. */
#ifndef CIRCML_NN_LOSS_H
#define CIRCML_NN_LOSS_H
#include "ops.h"

/* u[G,D] = y / max(|y|, 1e-12); norm[G] saved. */
void l2norm_forward(real *u, real *norm, const real *y, int64_t G, int D);
void l2norm_backward(real *dy, const real *du, const real *u, const real *norm, int64_t G, int D);

/* Loss value; sim[G,G] (cosines) saved for backward; anchor[G] is caller workspace (per-anchor
 * sums, kept so the total is summed in a fixed order). Returns the loss (0 with no positive pair). */
double dice_loss_forward(real *sim, double *anchor, const real *u, const int64_t *group, const uint8_t *negative,
                         int64_t G, int D, double tau, double tau_p, double tau_n, int64_t *n_pairs);
/* du[G,D] += d loss / du; ds[G,G] is caller workspace. */
void dice_loss_backward(real *du, real *ds, const real *u, const real *sim, const int64_t *group,
                        const uint8_t *negative, int64_t G, int D, double tau, double tau_p, double tau_n);

#endif
