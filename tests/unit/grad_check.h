/* Gradient checks shared by the op, loss and model tests: float64 copies
 * of float tensors, central finite differences and the relative error the
 * checks compare against a tolerance. */
#ifndef ME_TEST_GRAD_CHECK_H
#define ME_TEST_GRAD_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/harness.h"

#define FD_H 1e-6
#define GRAD_TOL 1e-4

static inline float *zerosf(size_t n) {
    float *x = calloc(n ? n : 1, sizeof *x);
    if (!x) abort();
    return x;
}

static inline double *zerosd(size_t n) {
    double *x = calloc(n ? n : 1, sizeof *x);
    if (!x) abort();
    return x;
}

/* A float64 copy of x (the references compute in double). */
static inline double *tod(const float *x, size_t n) {
    double *d = malloc((n ? n : 1) * sizeof *d);
    if (!d) abort();
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* max |a - b| / max |b| (0 when both are all zero; NaN propagates). */
static inline double rel_err(const float *a, const double *b, size_t n) {
    double e = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d;
        if (fabs(b[i]) > s) s = fabs(b[i]);
    }
    return s > 0.0 ? e / s : e;
}

/* ME_TEST_VERBOSE=1 prints each check's error. */
static inline int grad_verbose(void) {
    const char *v = getenv("ME_TEST_VERBOSE");
    return v && *v && *v != '0';
}

#define CHECK_GRAD(what, g, ref, n, tol)                                           \
    do {                                                                           \
        double e_ = rel_err((g), (ref), (n));                                      \
        if (grad_verbose()) fprintf(stderr, "    %-28s rel err %.3g (tol %.0e)\n", what, e_, (double)(tol)); \
        ASSERT_NEAR(e_, 0.0, (tol));                                               \
    } while (0)

typedef double (*loss_fn)(void *ctx);

/* g[k] = dL/dx[k] by central differences, L = f(ctx) reading x; x is
 * restored. */
static inline void fd_grad(double *g, double *x, size_t n, loss_fn f, void *ctx) {
    for (size_t k = 0; k < n; k++) {
        double x0 = x[k];
        x[k] = x0 + FD_H;
        double lp = f(ctx);
        x[k] = x0 - FD_H;
        double lm = f(ctx);
        x[k] = x0;
        g[k] = (lp - lm) / (2.0 * FD_H);
    }
}

#endif
