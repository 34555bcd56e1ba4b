/* gradcheck.h - finite-difference gradient check of a whole model given as model text.
 * Loss = sum(output * R) for a fixed random R, summed in double; analytic gradients from the
 * model's backward pass are compared with central differences for the input and every
 * parameter group (up to max_samples sampled entries each). Entries where the two one-sided
 * slopes disagree (a ReLU/max-pool kink between x-h and x+h) are skipped and counted. */
#ifndef LOOM_GRADCHECK_H
#define LOOM_GRADCHECK_H

#include "loom.h"

typedef struct {
    int n_checked, n_bad, n_skipped;
    double worst_rel; /* worst relative error among checked entries */
} gradcheck_result;

/* Runs the check; prints a line per failing tensor to stderr. Input values are uniform in
 * [-1, 1] (or [0, 1] when is_positive). Returns the result; the caller CHECKs it. */
gradcheck_result gradcheck_model(const char *text, int H, int W, int C, int B, uint64_t seed,
                                 int max_samples, bool is_positive);

/* Multiplies every analytic gradient before comparison (1 normally): tests of the checker
 * set it to 1.1 and expect failures. */
extern float gradcheck_corrupt_scale;

/* CHECKs that a model text passes: no bad entries, at most 10% skipped. */
void gradcheck_expect(const char *text, int H, int W, int C, int B);

/* CHECKs that a training forward and backward of text on B examples (dropout masks from one
 * seed) gives the same outputs and gradients, bit for bit, on 2 .. max_threads threads as on 1. */
void gradcheck_threads_expect(const char *text, int H, int W, int C, int B, int max_threads);

#endif
