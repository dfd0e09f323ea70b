/* mlp.h: a multilayer perceptron over one flat parameter block, as a forward/backward pair
 * (llm.c conventions, see ops.h), and a small regression model built on it (the inverse ANN
 * baseline of circml.sizing: performances in, sizes out, MSE, AdamW).
 *
 * Sizes: B rows, L linear layers, widths w[0..L] (w[0] the input, w[L] the output).
 * Layer i (0..L-1) is Linear(w[i] -> w[i+1]); between two layers sit ReLU and then dropout(p)
 * (training only; p = 0 skips it). The last layer is linear.
 * Parameters, in this order: W0[w1,w0], b0[w1], W1[w2,w1], b1[w2], ... (PyTorch's Linear
 * layout, so a twin of nn.Linear layers loads them by position).
 * Saved activations: for each hidden layer h = 0..L-2, pre[B,w[h+1]] (the linear output) then
 * post[B,w[h+1]] (after ReLU and dropout); masks: the dropout mask of each hidden layer.
 * Limits: L <= CM_MLP_MAX_LAYERS. */
#ifndef CIRCML_NN_MLP_H
#define CIRCML_NN_MLP_H
#include <stdint.h>
#include "ops.h"
#include "../util/status.h"

#define CM_MLP_MAX_LAYERS 32

int64_t mlp_num_params(const int *widths, int L);
/* reals of the saved activations of B rows (the output not included) */
int64_t mlp_num_acts(const int *widths, int L, int64_t B);
/* bytes of the dropout masks of B rows */
int64_t mlp_num_masks(const int *widths, int L, int64_t B);
/* reals of the scratch mlp_backward needs for B rows */
int64_t mlp_num_scratch(const int *widths, int L, int64_t B);
/* PyTorch's nn.Linear initialisation, U(+-1/sqrt(fan_in)) for weights and biases, from a
 * counter-based stream of seed. */
void mlp_init_params(real *params, const int *widths, int L, uint64_t seed);

/* out[B,w[L]] from inp[B,w[0]]. acts[mlp_num_acts], masks[mlp_num_masks] are written for
 * backward (masks untouched when p == 0). The hidden layer h draws its dropout mask from
 * a stream of (seed, h). */
void mlp_forward(real *out, real *acts, uint8_t *masks, const real *inp, const real *params, const int *widths, int L,
                 int64_t B, real p, uint64_t seed);
/* Accumulates dparams (and dinp[B,w[0]] unless NULL) from dout[B,w[L]]; scratch[mlp_num_scratch]. */
void mlp_backward(real *dinp, real *dparams, real *scratch, const real *dout, const real *inp, const real *params,
                  const real *acts, const uint8_t *masks, const int *widths, int L, int64_t B, real p);

/* ---------------------------------------------------------------- the regression model
 * cm_mlp: parameters, gradients and the AdamW moments in one block [4 P]; activations of a
 * batch in one workspace grown to the largest batch seen (never inside the loops). */
typedef struct cm_mlp cm_mlp;

cm_status cm_mlp_init(cm_mlp **out, const int *widths, int L, real dropout, uint64_t seed, cm_error *err);
void cm_mlp_free(cm_mlp *m);
int cm_mlp_layers(const cm_mlp *m);
const int *cm_mlp_widths(const cm_mlp *m);      /* [L+1] */
real cm_mlp_dropout(const cm_mlp *m);
int64_t cm_mlp_num_params(const cm_mlp *m);
real *cm_mlp_params(cm_mlp *m);                 /* [P] */
real *cm_mlp_grads(cm_mlp *m);                  /* [P] */
real *cm_mlp_moments(cm_mlp *m);                /* [2P]: AdamW m then v */
int cm_mlp_adam_step(const cm_mlp *m);
void cm_mlp_set_adam_step(cm_mlp *m, int step);
/* Inference (no dropout): out[B,w[L]] from x[B,w[0]]. Reads the model only; the activations go
 * to a workspace of the call's own, so several calls may run at once. */
cm_status cm_mlp_predict(const cm_mlp *m, real *out, const real *x, int64_t B, cm_error *err);
/* The MSE loss mean over B*w[L] of (mlp(x) - y)^2 with dropout from seed; writes the gradient
 * block (no accumulation). */
cm_status cm_mlp_loss(cm_mlp *m, double *loss, const real *x, const real *y, int64_t B, uint64_t seed, cm_error *err);
/* One step: cm_mlp_loss, then AdamW (decoupled weight decay). *loss gets the loss before the update. */
cm_status cm_mlp_train_step(cm_mlp *m, double *loss, const real *x, const real *y, int64_t B, real lr, real beta1,
                            real beta2, real eps, real weight_decay, uint64_t seed, cm_error *err);
#endif
