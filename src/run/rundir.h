/* rundir.h - the run directory's files, shared by training, cross-validation, the search, the
 * plots and the reports: config.txt through the settings table, what kind of run a directory
 * holds, and the reproducibility receipt (receipt.txt): CRC-32s over what determines a result
 * (loom version, model text, configuration without the command line and thread count, the
 * data's bytes) and over the weights it produced. Not installed. */
#ifndef LOOM_RUNDIR_H
#define LOOM_RUNDIR_H

#include "../model/model.h"

/* What a directory holds: a training run (model.loom, history.csv or config.txt), a
 * cross-validation (cv.csv), a search (trials.csv or tune.txt), or none of these. */
typedef enum { LOOM_RUN_NONE = 0, LOOM_RUN_TRAIN, LOOM_RUN_CV, LOOM_RUN_TUNE } loom_run_kind;
loom_run_kind loom_run_dir_kind(const char *dir);

typedef struct {
    uint32_t inputs; /* version, model text, configuration, data */
    uint32_t data;   /* the training (and test) images and labels */
} receipt_in;

/* The input hashes; test may be NULL. */
receipt_in receipt_inputs(const char *model_text, const char *config, const loom_dataset *train,
                          const loom_dataset *test);
/* CRC-32 of a model's parameters and state. */
uint32_t receipt_weights(const loom_model *m);
/* Writes dir/receipt.txt: loom_version, inputs_crc32, data_crc32, then `extra` (lines of
 * "key=value\n", may be NULL) and weights_crc32. */
loom_status receipt_write(const char *dir, receipt_in in, const char *extra, uint32_t weights,
                          loom_error *err);

#endif
