/* check.h: what every C test program here shares: pass/fail counters, CHECK, a closeness check
 * for values against references (gradients against central differences, kernels against double
 * loops) and a seeded xorshift generator. Header-only: include it once per test program. */
#ifndef CIRCML_TESTS_CHECK_H
#define CIRCML_TESTS_CHECK_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>

static int passed, failed, skipped;

#define CHECK(cond, ...)                                                                                      \
    do {                                                                                                      \
        if (cond) passed++;                                                                                   \
        else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); }    \
    } while (0)

/* `got` against `want`: error relative to max(1, |got|, |want|) (absolute near zero); NaN fails.
 * The first 60 failures are printed. */
static inline void check_close(const char *what, double got, double want, double tol) {
    double err = fabs(got - want) / fmax(1.0, fmax(fabs(got), fabs(want)));
    if (!(err <= tol)) {
        failed++;
        if (failed <= 60) printf("FAIL %s: got %.10g want %.10g (err %.2e)\n", what, got, want, err);
    } else passed++;
}

/* A seeded xorshift64 generator (set rng_state for another sequence). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t rng_next(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
/* uniform in [0, 1), 53 bits */
static inline double urand(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }
/* uniform in [-1, 1), float */
static inline float urand_pm1f(void) { return (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; }

static inline int check_report(void) {
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#endif
