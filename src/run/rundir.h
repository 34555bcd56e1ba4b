/* rundir.h - the run directory's files, shared by training, cross-validation, the search, the
 * plots and the reports: config.txt through the settings table, what kind of run a directory
 * holds, and the reproducibility receipt (receipt.txt): CRC-32s over what determines a result
 * (loom version, model text, configuration without the command line and thread count, the
 * data's bytes) and over the weights it produced. Not installed. */
#ifndef LOOM_RUNDIR_H
#define LOOM_RUNDIR_H

#include "../model/model.h"

/* config with a "classes=" line (a JSON array of ds's class names) added when ds has names of
 * its own (image folders): the model file keeps them. Takes config (frees it); NULL when out of
 * memory. */
char *loom_config_with_classes(char *config, const loom_dataset *ds);

/* What a directory holds: a cross-validation (cv.csv), a search (trials.csv or tune.txt), a
 * training run (model.loom, history.csv, metrics.json or config.txt), or none of these. The one
 * place that decides; the reports, comparisons and plots ask it. */
typedef enum { LOOM_RUN_NONE = 0, LOOM_RUN_TRAIN, LOOM_RUN_CV, LOOM_RUN_TUNE } loom_run_kind;
loom_run_kind loom_run_dir_kind(const char *dir);

/* Pieces of a training run (src/workflow/train_run.c) shared with cross-validation and the
 * search. */

/* Creates model text for ds's image shape, initialised from seed; with is_standardize a
 * standardize layer goes first, fitted on ds[idx[0..n)]. *out is the caller's to destroy
 * (loom_model_destroy). Errors: those of loom_model_create and, with is_standardize, of
 * loom_norm_fit. */
loom_status loom_model_build(loom_model **out, const char *text, const char *source,
                             const loom_dataset *ds, const int *idx, int n, bool is_standardize,
                             uint64_t seed, loom_error *err);
/* Writes h as CSV (epoch,loss,acc,val_loss,val_acc,lr,seconds) through a temp file + rename.
 * Errors: LOOM_ERR_IO, LOOM_ERR_ARG (path too long), LOOM_ERR_NOMEM. */
loom_status loom_history_write_csv(const loom_history *h, const char *path, loom_error *err);
/* Reads a history.csv (epoch, loss, acc; val_loss, val_acc, lr, seconds optional: NaN, seconds 0,
 * where absent or written empty or nan) into h (reset it after, also on failure); h->seconds is
 * the sum. Errors: those of loom_file_read_all; LOOM_ERR_FORMAT naming the file and line (a
 * missing column, a field count unlike the header's, a cell that is not a number, no rows). */
loom_status loom_history_read_csv(const char *path, loom_history *h, loom_error *err);
/* Creates dir and its parents; refuses an existing dir holding model.loom unless is_force.
 * Errors: LOOM_ERR_ARG (a run is there), LOOM_ERR_IO (cannot create; a file of that name, unless
 * is_force). */
loom_status loom_run_create_dir(const char *dir, bool is_force, loom_error *err);
/* Removes what train and cv write in dir (their files and plots; fold_K/ directories, emptied
 * then removed when nothing else is in them), so that a run replacing another (force) leaves none
 * of the old one's files beside its own. Other files stay; a file that cannot go is ignored. */
void loom_run_clear_dir(const char *dir);
/* After a run failed before making anything worth keeping: loom_run_clear_dir, then removes dir
 * itself when is_created (the run made it) and it is empty. */
void loom_run_discard_dir(const char *dir, bool is_created);
/* Evaluates m on the first n images of test (all when n <= 0), fills mt and writes (dir must
 * exist) dir/predictions.csv (index,true,pred,prob), dir/metrics.json, dir/confusion.csv. Pass mt
 * zeroed; the caller resets it (loom_metrics_reset), also on failure. stop_flag (may be NULL)
 * set stops it between chunks of images, nothing written. Errors: those of loom_evaluate,
 * LOOM_ERR_IO, LOOM_ERR_NOMEM, LOOM_ERR_INTERRUPTED. */
loom_status loom_run_write_test(loom_model *m, const loom_dataset *test, int n, int batch,
                                const char *dir, volatile int *stop_flag, loom_metrics *mt,
                                loom_error *err);

/* Config text helpers: value of key in "key=value" lines (copied into buf), or NULL. */
const char *loom_config_get(const char *config, const char *key, char *buf, size_t n);
/* The config.txt text of a run of rc (malloc'd; NULL when out of memory). */
char *loom_run_config_text(const loom_run_config *rc);

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
