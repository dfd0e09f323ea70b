/* grad_check.h: helpers of the gradient test programs, over the library's `real` type (include
 * it after the nn headers that define `real`, and after check.h for urand). A layer's gradient
 * is checked on the scalar loss sum(out * r) for a random r: numeric_grad is its central
 * difference in one input entry, dot the loss itself. */
#ifndef CIRCML_TESTS_GRAD_CHECK_H
#define CIRCML_TESTS_GRAD_CHECK_H
#include <stdint.h>
#include <stdlib.h>
#include "check.h"

/* uniform in [-1, 1) */
static inline void fill(real *a, int64_t n) { for (int64_t i = 0; i < n; i++) a[i] = 2 * urand() - 1; }
static inline real *vec(int64_t n) { real *a = calloc((size_t)(n ? n : 1), sizeof(real)); fill(a, n); return a; }
static inline real *zeros(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(real)); }
static inline double dot(const real *a, const real *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* d loss / d x[i] by central differences (h = 1e-6: `real` is double in these programs) */
typedef double (*loss_fn)(void *ctx);
static inline double numeric_grad(loss_fn f, void *ctx, real *x, int64_t i) {
    const double h = 1e-6;
    real old = x[i];
    x[i] = old + h; double lp = f(ctx);
    x[i] = old - h; double lm = f(ctx);
    x[i] = old;
    return (lp - lm) / (2 * h);
}

#endif
