/* progress.c - the console's live line: one status line redrawn in place on a terminal (and
 * dropped in a pipe or on TERM=dumb), and the Keras-style training bar drawn on it from the
 * library's progress events (loom_progress):
 *   Epoch 1/2    25/25 [==============================] - ETA: 0s - loss: 1.8667 - acc: 0.3925 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool has_partial = false; /* a status line is on screen, without its newline */

static bool is_terminal(void) {
    static int is_tty = -1;
    if (is_tty < 0)
        is_tty = isatty(2) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
    return is_tty;
}

void cli_status_line(const char *line) {
    if (!is_terminal())
        return;
    fprintf(stderr, "\r%s\033[K", line);
    has_partial = true;
}

void cli_status_clear(void) {
    if (has_partial) {
        fprintf(stderr, "\r\033[K");
        has_partial = false;
    }
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%.0fs", s);
}

void cli_progress(void *user, const loom_progress *p) {
    (void)user;
    /* redrawn at most every 0.25 s of an epoch, and at its last step */
    static double shown_at = 0.0;
    if (p->kind == LOOM_PROGRESS_EPOCH_END) {
        shown_at = 0.0; /* the epoch line that follows replaces the bar */
        return;
    }
    if (p->seconds < shown_at) /* another epoch or training began without an end event */
        shown_at = 0.0;
    if (!(p->seconds - shown_at > 0.25 || p->step == p->n_steps))
        return;
    shown_at = p->seconds;
    char eta[32], bar[31], line[1024];
    fmt_eta(p->seconds / p->step * (p->n_steps - p->step), eta, sizeof eta);
    int fill = (int)(30.0 * p->step / p->n_steps);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : '.';
    bar[30] = '\0';
    snprintf(line, sizeof line, "%sEpoch %d/%d %5d/%d [%s] - ETA: %s - loss: %.4f - acc: %.4f",
             p->label ? p->label : "", p->epoch, p->n_epochs, p->step, p->n_steps, bar, eta,
             p->loss, p->acc);
    cli_status_line(line);
}
