/* study.h - the study-file parser, callable on its own (internal): for the fuzz harness and
 * tests. Not installed. */
#ifndef LOOM_STUDY_H
#define LOOM_STUDY_H

#include "../core/core.h"

/* Parses a study text (one step per line: train, cv or tune and its words; '#' comments) as
 * `loom study` does, without running anything: *n_steps gets the step count. text is copied,
 * not changed; source names it in messages ("source:line: ..."). Errors: LOOM_ERR_FORMAT for a
 * bad study, LOOM_ERR_NOMEM. */
loom_status study_parse_text(const char *text, const char *source, int *n_steps, loom_error *err);

#endif
