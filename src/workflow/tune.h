/* tune.h - internal pieces shared by cv.c, search.c and compare.c: one training from scratch on
 * a split (with its validation metrics), text files built in memory and written atomically,
 * and small CSV helpers. Not installed. */
#ifndef LOOM_TUNE_H
#define LOOM_TUNE_H

#include "../core/core.h"
#include "../run/rundir.h"

/* Trains text from scratch (seed tc->seed) on ds[sp->train], validating on ds[sp->val] each
 * epoch; fills hist and val (the final model on the validation part; the caller resets it) and
 * hands over the model when m_out is not NULL (else destroys it). */
loom_status tune_fit(const char *text, const char *source, const loom_dataset *ds,
                     const loom_split *sp, bool is_standardize, const loom_train_config *tc,
                     loom_history *hist, loom_metrics *val, loom_model **m_out, loom_error *err);

/* A text file built with fprintf into memory, then written through a temp file + rename. */
typedef struct {
    FILE *f;
    char *buf;
    size_t len;
} text_out;
bool text_open(text_out *t);                                           /* false: out of memory */
loom_status text_save(text_out *t, const char *path, loom_error *err); /* also frees */
void text_discard(text_out *t);
/* Writes root as indented JSON to path and deletes it; is_ok false (a failed cJSON call while
 * building root) is out of memory. */
struct cJSON;
loom_status json_save(struct cJSON *root, bool is_ok, const char *path, loom_error *err);
/* Loads data_dir's training set, and its test set when is_test (else *test = NULL). */
loom_status load_data(const char *data_dir, bool is_test, loom_dataset **train, loom_dataset **test,
                      loom_error *err);

/* "dir/name" into buf (n bytes). */
const char *path_join(char *buf, size_t n, const char *dir, const char *name);
/* The directory a run goes to when none is given: "runs/<prefix><name>", '/' in name -> '_'. */
void default_run_dir(char *buf, size_t n, const char *prefix, const char *name);
/* Splits one line of unquoted CSV in place at commas into at most max fields; returns the
 * count, or -1 when there are more. */
int csv_split(char *line, char **fields, int max);
/* More than the settings table holds (loom_setting_count). */
#define TRAIN_SETTINGS_MAX 32

/* Mean and sample standard deviation (n - 1 in the denominator; 0 for one value) of the finite
 * values among x[0..n); both NaN when there are none. */
void loom_mean_std(const double *x, int n, double *mean, double *sd);

/* A stratified, seeded subset of about n examples of ds (rounded per class) as a new dataset
 * that the caller destroys (loom_dataset_destroy); a copy of all of ds when n <= 0 or
 * n >= ds->n. Errors: LOOM_ERR_ARG (an invalid dataset), LOOM_ERR_NOMEM. */
loom_status loom_dataset_subset(loom_dataset **out, const loom_dataset *ds, int n, uint64_t seed,
                                loom_error *err);

/* Writes dir/REPORT.html from the report's Markdown md (md_len bytes): one self-contained page,
 * every picture under dir that md names embedded; *n_missing counts pictures that could not be
 * read (left as links). Errors: LOOM_ERR_IO, LOOM_ERR_NOMEM. */
loom_status report_html_write(const char *md, size_t md_len, const char *dir, const char *title,
                              int *n_missing, loom_error *err);

#endif
