/* search.h - internal to the search (space.c, search.c, trials_io.c, refit.c): the parsed
 * search space, the state of one search, and the functions these files call across. Not
 * installed. */
#ifndef LOOM_TUNE_SEARCH_H
#define LOOM_TUNE_SEARCH_H

#include "tune.h"

#define SPACE_MAX_WORDS 16 /* words in one layer or setting line, as the model language */

/* Streams derived from the search seed: the points, the executions, the validation split. */
enum { STREAM_POINT = 1, STREAM_EXEC = 2, STREAM_SPLIT = 3 };

typedef enum { HP_INT = 0, HP_FLOAT, HP_CHOICE } hp_kind;

typedef struct {
    char *name;
    hp_kind kind;
    double lo, hi, step; /* ranges; step 0 = continuous */
    bool is_log;
    char **choices; /* (n_choices) HP_CHOICE */
    int n_choices;
    int line;
    char *token;    /* as written, for messages */
    int block, rep; /* repeat block (-1: none) and repetition (1-based) it belongs to */
} space_hp;

/* One layer or setting line of the fully expanded space (every block at its largest count). */
typedef struct {
    int line;
    bool is_setting;
    int block, rep; /* -1 and 0 outside repeat blocks */
    int n_words;
    char *words[SPACE_MAX_WORDS]; /* fixed words; NULL where hp[i] >= 0 */
    int hp[SPACE_MAX_WORDS];      /* hyperparameter index or -1 */
} space_item;

typedef struct {
    int count_hp; /* hyperparameter giving the count, or -1 */
    int count;    /* the fixed count when count_hp < 0 */
} space_block;

struct loom_space {
    char *source;
    space_hp *hps;
    int n_hp, cap_hp;
    space_item *items;
    int n_items, cap_items;
    space_block *blocks;
    int n_blocks, cap_blocks;
};

/* Grows *p (cap elements of size bytes) to hold need; false: out of memory (*p unchanged). */
bool grow(void **p, int *cap, int need, size_t size);
/* A whole string as a finite number. */
bool parse_number(const char *s, double *out);

/* ---- one search ---- */

/* One execution, as a line of executions.csv. */
typedef struct {
    int trial, rung, exec, epochs; /* 0-based */
    uint64_t seed;
    double val_acc, val_loss, val_f1, score, seconds;
    bool is_new; /* trained in this session (by any process of the job), not read back */
} exec_rec;

typedef struct {
    const loom_tune_config *tc;
    const char *source;
    loom_space *space;
    const loom_dataset *ds;   /* the training data (a subset when asked) */
    const loom_dataset *test; /* may be NULL */
    loom_split split;         /* one validation split: executions without cv, the best's retrain */
    loom_split *folds;        /* (n_folds) with cv */
    int n_folds;
    loom_space_point *points; /* (n_points) the trials' points */
    int n_points;
    exec_rec *done; /* executions recorded in executions.csv */
    int n_done, cap_done;
    int n_new; /* executions trained in this session */
    int exec_fd;
    FILE *log_file;
    double t_start;
    int base_epochs;
    loom_tune_result *res;
    char dir[1024];
    char prefix[96]; /* "trial t/N exec e/E: " in front of training lines */
} search;

/* search.c: a line to the log callback and tune.log (progress lines only to the callback). */
void slog(search *s, loom_log_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* search.c: the training settings of a point (epochs > 0 replaces its epochs); the schedule's
 * text into sched (n bytes). */
loom_status trial_config(search *s, const loom_space_point *pt, int epochs, loom_train_config *c,
                         char *sched, size_t n, loom_error *err);
/* search.c: the seed of execution e of trial t. */
uint64_t exec_seed(const search *s, int t, int e);
/* search.c: res->trials ranked best first (pointers, malloc'd; NULL: out of memory). */
const loom_tune_trial **ranked(const loom_tune_config *tc, const loom_tune_result *res);

/* trials_io.c: appends x to executions.csv (synced) and to s->done. */
loom_status record_exec(search *s, const exec_rec *x, loom_error *err);
/* trials_io.c: trials.csv and trials.json, in trial order. */
loom_status write_trials(search *s, loom_error *err);
/* trials_io.c: the results table, best first (Markdown), into res->summary and summary.md. */
loom_status write_summary(search *s, loom_error *err);
/* trials_io.c: the settings --resume must find unchanged (malloc'd; NULL: out of memory). */
char *settings_text(search *s, const char *text);
/* trials_io.c: creates or reopens the search directory (tune.txt, executions.csv, tune.log);
 * on --resume reads back the recorded executions. */
loom_status open_state(search *s, const char *settings, loom_error *err);

/* refit.c: retrains the best trial into DIR/best, saves it and tests it. */
loom_status retrain_best(search *s, loom_error *err);

#endif
