/* progress.c - the console's live line: one status line redrawn in place on a terminal (and
 * dropped in a pipe or on TERM=dumb), and the Keras-style training bar drawn on it from the
 * library's progress events (loom_progress), sized to the terminal (its width is read before every
 * redraw: TIOCGWINSZ on stderr, else $COLUMNS, else 80; a line never wraps):
 *   Epoch 1/2    12/25 [=============>................] - ETA: 1s - loss: 1.8667 - acc: 39.25%
 * and at the epoch's end Keras's final line, kept on screen above the epoch's log line:
 *   Epoch 1/2    25/25 [==============================] - 1s 40ms/step - loss: 1.2 - acc: 60.00% */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static bool has_partial = false; /* a status line is on screen, without its newline */

static bool is_terminal(void) {
    static int is_tty = -1;
    if (is_tty < 0)
        is_tty = isatty(2) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
    return is_tty;
}

/* The terminal's width now (it may have been resized since the last redraw). */
static int term_cols(void) {
    struct winsize ws;
    if (ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *env = getenv("COLUMNS");
    int n = env ? atoi(env) : 0;
    return n > 0 ? n : 80;
}

/* The line cut to the terminal's width less one column (a full line would wrap on some
 * terminals), at a UTF-8 character boundary. */
static void draw(const char *line) {
    int n = (int)strlen(line), max = term_cols() - 1;
    if (n > max) {
        n = max > 0 ? max : 0;
        while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80)
            n--;
    }
    fprintf(stderr, "\r%.*s\033[K", n, line);
}

void cli_status_line(const char *line) {
    if (!is_terminal())
        return;
    draw(line);
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

/* The bar line of p with `timing` ("ETA: 3s", "1s 40ms/step") and a bar as wide as the terminal
 * leaves room for, up to Keras's 30 columns. */
static void bar_line(const loom_progress *p, const char *timing, char *line, size_t n) {
    char head[256], tail[256], bar[31];
    snprintf(head, sizeof head, "%sEpoch %d/%d %5d/%d [", p->label ? p->label : "", p->epoch,
             p->n_epochs, p->step, p->n_steps);
    snprintf(tail, sizeof tail, "] - %s - loss: %.4f - acc: %.2f%%", timing, p->loss, 100 * p->acc);
    int width = term_cols() - 1 - (int)(strlen(head) + strlen(tail));
    width = width > 30 ? 30 : width < 10 ? 10 : width;
    int fill = (int)((double)width * p->step / p->n_steps);
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '=' : i == fill ? '>' : '.';
    bar[width] = '\0';
    snprintf(line, n, "%s%s%s", head, bar, tail);
}

void cli_progress(void *user, const loom_progress *p) {
    if (loom_dist_job_rank() > 0) /* rank 0 shows the job's progress */
        return;
    (void)user;
    /* redrawn at most every 0.25 s of an epoch, and at its last step */
    static double shown_at = 0.0;
    char timing[64], line[1024];
    if (p->kind == LOOM_PROGRESS_EPOCH_END) {
        shown_at = 0.0;
        if (!is_terminal() || p->n_steps < 1)
            return;
        /* Keras's final line: the time of the epoch and per step, kept on screen */
        double ms = 1000 * p->seconds / p->n_steps;
        snprintf(timing, sizeof timing, "%.0fs %.0f%s/step", p->seconds, ms >= 1 ? ms : ms * 1000,
                 ms >= 1 ? "ms" : "us");
        bar_line(p, timing, line, sizeof line);
        draw(line);
        fputc('\n', stderr);
        has_partial = false;
        return;
    }
    if (p->seconds < shown_at) /* another epoch or training began without an end event */
        shown_at = 0.0;
    if (!(p->seconds - shown_at > 0.25 || p->step == p->n_steps))
        return;
    shown_at = p->seconds;
    char eta[32];
    fmt_eta(p->seconds / p->step * (p->n_steps - p->step), eta, sizeof eta);
    snprintf(timing, sizeof timing, "ETA: %s", eta);
    bar_line(p, timing, line, sizeof line);
    cli_status_line(line);
}
