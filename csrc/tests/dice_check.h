/* dice_check.h: the small DICE encoder fixture of the gradient programs (test_nn_grad.c,
 * test_gnn_grad.c): 3 graphs of 3 nodes with 14 random edges inside them, random node (3) and
 * edge (2) features, 3-wide graph embeddings and the loss sum(y * r). Include after dice.h and
 * grad_check.h. */
#ifndef CIRCML_TESTS_DICE_CHECK_H
#define CIRCML_TESTS_DICE_CHECK_H
#include <stdint.h>
#include <stdlib.h>
#include "grad_check.h"

typedef struct {
    cm_dice *m;
    real *x, *ea, *y, *r;
    int64_t *src, *dst, *ng, *eg;
    int64_t N, E, G;
    int D;
} dm_ctx;

/* training-mode forward with a fixed dropout seed; the loss sum(y * r) */
static double dm_loss(void *p) {
    dm_ctx *c = p;
    cm_dice_forward(c->m, c->y, c->x, c->ea, c->src, c->dst, c->ng, c->eg, c->N, c->E, c->G, 1, 99, NULL);
    return dot(c->y, c->r, c->G * c->D);
}

/* The inputs, drawn from urand in a fixed order (x, ea, r, then each edge's ends), so a program
 * that calls this at the same point of its stream gets the same graph as before. */
static void dm_inputs(dm_ctx *c) {
    c->N = 9; c->E = 14; c->G = 3; c->D = 3;
    c->x = vec(c->N * 3); c->ea = vec(c->E * 2); c->y = zeros(c->G * 3); c->r = vec(c->G * 3);
    c->src = malloc(sizeof(int64_t) * 14); c->dst = malloc(sizeof(int64_t) * 14);
    c->ng = malloc(sizeof(int64_t) * 9); c->eg = malloc(sizeof(int64_t) * 14);
    for (int n = 0; n < 9; n++) c->ng[n] = n / 3;                 /* 3 graphs of 3 nodes */
    for (int e = 0; e < 14; e++) {
        int g = e % 3;
        c->src[e] = 3 * g + (int64_t)(urand() * 3);
        c->dst[e] = 3 * g + (int64_t)(urand() * 3);
        c->eg[e] = g;
    }
}

/* The name of the parameter tensor flat index i falls in; *off: that tensor's first index. */
static const char *dm_tensor_of(const cm_dice *m, int64_t i, int64_t *off) {
    const char *name = "";
    *off = 0;
    for (int t = 0;; t++) {
        const int64_t sz = cm_dice_tensor(m, t, &name);
        if (sz < 0 || i < *off + sz) return name;
        *off += sz;
    }
}

static void dm_free(dm_ctx *c) {
    cm_dice_free(c->m);
    free(c->x); free(c->ea); free(c->y); free(c->r); free(c->src); free(c->dst); free(c->ng); free(c->eg);
}

#endif
