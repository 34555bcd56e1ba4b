/* study.h - `loom study`: a study file is a list of loom commands, so its runner belongs to the
 * command-line program: it runs each step as a child loom process, then the report through the
 * library. The parser is callable on its own for the fuzz harness and the tests. */
#ifndef LOOM_CLI_STUDY_H
#define LOOM_CLI_STUDY_H

#include "loom.h"

/* The built-in study file (every zoo model of SEED-MODELS.md, 5-fold CV of rnn and lstm, the
 * MLP random search) and the built-in MLP search space it names as "builtin:mlp-space". */
const char *cli_study_builtin(void);
const char *cli_space_builtin_mlp(void);

typedef struct {
    const char *study_file;   /* NULL = the built-in study */
    const char *exe;          /* the loom executable that runs each step (/proc/self/exe) */
    const char *out_dir;      /* default runs/study */
    const char *data_dir;     /* NULL = default */
    int threads;              /* passed to every step, 0 = all cores */
    bool is_quick;            /* a data subset and few epochs: about 10 minutes here */
    bool is_resume;           /* skip finished steps, continue interrupted ones */
    bool is_force;            /* start over in an existing out_dir */
    const char *command_line; /* recorded in the report */
    loom_log_fn log;          /* step lines (INFO) and live status (PROGRESS) */
    void *log_user;
    volatile int *stop_flag; /* set by a signal: the running step checkpoints, the study stops */
} cli_study_config;

/* Runs every step of the study file (lines "train MODEL [flags]", "cv MODEL [flags]",
 * "tune SPACE [flags]", '#' comments) as a child process of exe writing out_dir/<step>/ and
 * out_dir/<step>.log, then writes out_dir/REPORT.md (loom_report) over all steps. A step is
 * finished when out_dir/<step>/.done exists; with is_resume finished steps are skipped and an
 * interrupted training continues from its checkpoint. Errors: LOOM_ERR_FORMAT (the study file),
 * LOOM_ERR_ARG (out_dir holds a study, and not is_resume or is_force), LOOM_ERR_IO (files; a step
 * that fails: see its log), LOOM_ERR_INTERRUPTED (stop_flag), LOOM_ERR_NOMEM, loom_report's. */
loom_status cli_study_run(const cli_study_config *sc, loom_error *err);

/* Parses a study text (one step per line: train, cv or tune and its words; '#' comments) as
 * `loom study` does, without running anything: *n_steps gets the step count. text is copied,
 * not changed; source names it in messages ("source:line: ..."). Errors: LOOM_ERR_FORMAT for a
 * bad study, LOOM_ERR_NOMEM. */
loom_status study_parse_text(const char *text, const char *source, int *n_steps, loom_error *err);

#endif
