/* check.h - a small check macro: prints the failing expression with file and line and counts.
 * Each test binary ends with "N passed, N failed" and exits non-zero on any failure. */
#ifndef LOOM_CHECK_H
#define LOOM_CHECK_H

#include "loom.h"

#include <math.h>
#include <stdio.h>

extern int check_passed, check_failed;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (expr) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);               \
        }                                                                                          \
    } while (0)

#define CHECK_MSG(expr, ...)                                                                       \
    do {                                                                                           \
        if (expr) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #expr);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g", (double)(a), (double)(b))

/* Runs a test function, printing its name. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int f0_ = check_failed;                                                                    \
        fn();                                                                                      \
        fprintf(stderr, "  %-40s %s\n", #fn, check_failed == f0_ ? "ok" : "FAILED");               \
    } while (0)

/* An n-example dataset of H x W one-channel images in n_classes classes with x and y allocated
 * and uninitialised, for the caller to fill (NULL when out of memory); free it with
 * loom_dataset_destroy. */
loom_dataset *check_dataset(int n, int H, int W, int n_classes);

/* Prints the closing line; returns the exit code. */
int check_report(void);
/* A temporary directory for this test binary (created once, under $TMPDIR or /tmp). */
const char *check_tmpdir(void);
/* check_tmpdir()/name, in a ring of 64 buffers: a path stays valid for the next 63 calls. */
const char *tmp_path(const char *name);
/* Models over every layer kind the zoo does not use, for 28x28x1 inputs (the doors' tests). */
extern const char *const check_kinds[];
extern const int check_n_kinds;

#endif
