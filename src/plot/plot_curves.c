/* plot_curves.c - line plots of training histories: learning curves (loss and accuracy per
 * epoch, training vs validation, two panels) and overlays of several series or runs, each line
 * optionally with a ± std band. A directory of fold runs (subdirectories holding history.csv)
 * is read as the per-epoch mean and standard deviation over its folds. */
#include "plot.h"
#include "../run/rundir.h"

#include <dirent.h>
#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- histories: one run, or the mean and std over the fold runs in a directory ------------ */

enum { H_LOSS, H_ACC, H_VAL_LOSS, H_VAL_ACC, H_N };
static const char *const h_names[H_N] = {"loss", "acc", "val_loss", "val_acc"};

typedef struct {
    int n;             /* epochs */
    int n_runs;        /* 1, or the number of fold runs averaged */
    double *epoch;     /* (n) */
    double *mean[H_N]; /* (n) each; NaN where missing */
    double *std[H_N];  /* (n) each, NULL for a single run */
    bool has_val;      /* validation columns hold numbers */
    char name[128];    /* model name from config.txt, else the directory name */
    char path[1024];   /* what was read, for messages */
} history;

static void history_reset(history *h) {
    free(h->epoch);
    for (int k = 0; k < H_N; k++) {
        free(h->mean[k]);
        free(h->std[k]);
    }
    memset(h, 0, sizeof *h);
}

/* One history.csv, read by the run directory's reader, as a curve set. */
static loom_status history_read_csv(const char *path, history *h, loom_error *err) {
    memset(h, 0, sizeof *h);
    snprintf(h->path, sizeof h->path, "%s", path);
    loom_history lh;
    loom_status st = loom_history_read_csv(path, &lh, err);
    if (st)
        return st;
    h->n = lh.n_epochs;
    h->n_runs = 1;
    h->epoch = malloc(sizeof(double) * (size_t)h->n);
    for (int k = 0; k < H_N; k++)
        h->mean[k] = malloc(sizeof(double) * (size_t)h->n);
    for (int k = 0; k < H_N; k++)
        if (!h->mean[k] || !h->epoch) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
    for (int i = 0; i < h->n; i++) {
        const loom_epoch *e = &lh.epochs[i];
        h->epoch[i] = e->epoch;
        h->mean[H_LOSS][i] = e->loss;
        h->mean[H_ACC][i] = e->acc;
        h->mean[H_VAL_LOSS][i] = e->val_loss;
        h->mean[H_VAL_ACC][i] = e->val_acc;
        h->has_val |= !isnan(e->val_loss) || !isnan(e->val_acc);
    }
done:
    loom_history_reset(&lh);
    if (st)
        history_reset(h);
    return st;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Subdirectories of dir holding a history.csv, sorted; *out is malloc'd (names malloc'd). */
static int fold_dirs(const char *dir, char ***out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int n = 0;
    size_t cap = 0;
    char **names = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char sub[2048], path[2100];
        plot_path(sub, sizeof sub, dir, e->d_name);
        if (!plot_is_dir(sub) || !plot_exists(plot_path(path, sizeof path, sub, "history.csv")))
            continue;
        if (!plot_grow((void **)&names, &cap, (size_t)n + 1, sizeof *names))
            break;
        if (!(names[n] = strdup(sub)))
            break;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

static void basename_of(const char *path, char *buf, size_t n) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t i = len;
    while (i > 0 && path[i - 1] != '/')
        i--;
    size_t m = len - i < n - 1 ? len - i : n - 1;
    memcpy(buf, path + i, m);
    buf[m] = '\0';
}

/* Mean and std per epoch over runs[0..n); an epoch counts the runs that reached it. */
static loom_status history_average(history *runs, int n, history *h, loom_error *err) {
    memset(h, 0, sizeof *h);
    int longest = 0;
    for (int r = 0; r < n; r++)
        if (runs[r].n > runs[longest].n)
            longest = r;
    h->n = runs[longest].n;
    h->n_runs = n;
    h->epoch = malloc(sizeof(double) * (size_t)h->n);
    bool is_oom = !h->epoch;
    for (int k = 0; k < H_N; k++) {
        h->mean[k] = malloc(sizeof(double) * (size_t)h->n);
        h->std[k] = malloc(sizeof(double) * (size_t)h->n);
        is_oom |= !h->mean[k] || !h->std[k];
    }
    if (is_oom) {
        history_reset(h);
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory averaging histories");
    }
    memcpy(h->epoch, runs[longest].epoch, sizeof(double) * (size_t)h->n);
    for (int k = 0; k < H_N; k++)
        for (int i = 0; i < h->n; i++) {
            double s = 0, s2 = 0;
            int c = 0;
            for (int r = 0; r < n; r++)
                if (i < runs[r].n && isfinite(runs[r].mean[k][i])) {
                    s += runs[r].mean[k][i];
                    c++;
                }
            double m = c ? s / c : NAN;
            for (int r = 0; r < n; r++)
                if (i < runs[r].n && isfinite(runs[r].mean[k][i]))
                    s2 += (runs[r].mean[k][i] - m) * (runs[r].mean[k][i] - m);
            h->mean[k][i] = m;
            h->std[k][i] = c > 1 ? sqrt(s2 / (c - 1)) : 0.0;
        }
    for (int r = 0; r < n; r++)
        h->has_val |= runs[r].has_val;
    return LOOM_OK;
}

/* A history.csv, a run directory, or a directory of fold runs (mean and std). */
static loom_status history_load(const char *src, history *h, loom_error *err) {
    char path[2048], dir[1024];
    memset(h, 0, sizeof *h);
    if (!plot_is_dir(src)) {
        loom_status st = history_read_csv(src, h, err);
        if (st)
            return st;
        snprintf(dir, sizeof dir, "%s", src);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        if (!plot_run_config(dir, "model", h->name, sizeof h->name))
            basename_of(dir, h->name, sizeof h->name);
        return LOOM_OK;
    }
    plot_path(path, sizeof path, src, "history.csv");
    char **subs = NULL;
    int n = plot_exists(path) ? 0 : fold_dirs(src, &subs);
    if (n == 0) {
        loom_status st = history_read_csv(path, h, err);
        if (st)
            return st;
        if (!plot_run_config(src, "model", h->name, sizeof h->name))
            basename_of(src, h->name, sizeof h->name);
        return LOOM_OK;
    }
    history *runs = calloc((size_t)n, sizeof *runs);
    loom_status st = runs ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    for (int r = 0; r < n && !st; r++)
        st = history_read_csv(plot_path(path, sizeof path, subs[r], "history.csv"), &runs[r], err);
    if (!st)
        st = history_average(runs, n, h, err);
    if (!st) {
        snprintf(h->path, sizeof h->path, "%s", src);
        if (!plot_run_config(src, "model", h->name, sizeof h->name) &&
            !plot_run_config(subs[0], "model", h->name, sizeof h->name))
            basename_of(src, h->name, sizeof h->name);
    }
    for (int r = 0; r < n; r++) {
        if (runs)
            history_reset(&runs[r]);
        free(subs[r]);
    }
    free(runs);
    free(subs);
    return st;
}

/* ---- line panels ----------------------------------------------------------------------------- */

enum {
    LEGEND_NONE,
    LEGEND_UPPER_RIGHT,
    LEGEND_LOWER_RIGHT,
    LEGEND_UPPER_LEFT,
    LEGEND_LOWER_LEFT,
    LEGEND_OUTSIDE
};

typedef struct {
    double vx0, vx1, vy0, vy1; /* viewport, page coordinates */
    const char *title, *x_label, *y_label;
    const loom_plot_series *s;
    int n;
    int legend;
    double y_lo, y_hi; /* clamp the y range (NaN: none) */
    double marker_x;   /* dashed vertical line (NaN: none) */
    const char *marker_label;
    PLFLT *sx, *sy; /* (2 n + 1) scratch for the longest series, allocated by the caller */
} line_panel;

/* Scratch for drawing the series: 2 n + 1 values for the longest n (the band's polygon). */
static PLFLT *scratch_alloc(const loom_plot_series *s, int n_series) {
    int n = 0;
    for (int k = 0; k < n_series; k++)
        n = s[k].n > n ? s[k].n : n;
    return malloc(sizeof(PLFLT) * (size_t)(2 * n + 1));
}

/* The data's range, padded; *is_int_x when every x is a whole number (epochs). */
static void series_range(const line_panel *p, double *x0, double *x1, double *y0, double *y1,
                         bool *is_int_x) {
    *x0 = INFINITY, *x1 = -INFINITY, *y0 = INFINITY, *y1 = -INFINITY;
    *is_int_x = true;
    for (int k = 0; k < p->n; k++) {
        const loom_plot_series *s = &p->s[k];
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i]))
                continue;
            double sd = s->std && isfinite(s->std[i]) ? s->std[i] : 0.0;
            *is_int_x &= s->x[i] == floor(s->x[i]);
            *x0 = fmin(*x0, s->x[i]);
            *x1 = fmax(*x1, s->x[i]);
            *y0 = fmin(*y0, s->y[i] - sd);
            *y1 = fmax(*y1, s->y[i] + sd);
        }
    }
    if (!isfinite(*x0)) {
        *x0 = 0, *x1 = 1, *y0 = 0, *y1 = 1;
    }
    if (*x1 - *x0 < 1e-9) {
        *x0 -= 0.5;
        *x1 += 0.5;
    } else /* keep the first and last points (and their markers) off the frame */
        plot_pad_range(x0, x1, 0.03, fmin(0.2, 0.1 * (*x1 - *x0)));
    plot_pad_range(y0, y1, 0.08, fmax(1e-3, 0.02 * fabs(*y1)));
    if (isfinite(p->y_lo) && *y0 < p->y_lo)
        *y0 = p->y_lo;
    if (isfinite(p->y_hi) && *y1 > p->y_hi)
        *y1 = p->y_hi;
}

/* Draws the finite stretches of a series (NaN breaks the line) into x, y (2 n + 1) scratch. */
static void draw_series(const loom_plot_series *s, int color, bool has_markers, PLFLT *x,
                        PLFLT *y) {
    if (s->std) { /* band: y + std forwards, y - std backwards */
        int m = 0;
        for (int i = 0; i < s->n; i++)
            if (isfinite(s->y[i]) && isfinite(s->std[i])) {
                x[m] = s->x[i];
                y[m++] = s->y[i] + s->std[i];
            }
        for (int i = s->n - 1; i >= 0; i--)
            if (isfinite(s->y[i]) && isfinite(s->std[i])) {
                x[m] = s->x[i];
                y[m++] = s->y[i] - s->std[i];
            }
        if (m >= 4) {
            plcol0(PC_BAND + color % PLOT_N_SERIES);
            plfill(m, x, y);
        }
    }
    plcol0(PC_SERIES + color % PLOT_N_SERIES);
    pllsty(color >= PLOT_N_SERIES ? 2 : 1);
    plwidth(2.5);
    int m = 0;
    for (int i = 0; i <= s->n; i++) {
        if (i < s->n && isfinite(s->x[i]) && isfinite(s->y[i])) {
            x[m] = s->x[i];
            y[m++] = s->y[i];
            continue;
        }
        if (m > 1)
            plline(m, x, y);
        if (m > 0 && has_markers) {
            plot_font(1.6);
            plstring(m, x, y, "•");
            plot_font(1.0);
        }
        m = 0;
    }
    pllsty(1);
    plwidth(1.0);
}

/* How much of the drawn data a legend box in corner `where` would cover: the series' points and
 * 16 samples along each segment between them, counted inside the box (w, h: its size as
 * fractions of the panel). */
static int legend_cover(const line_panel *p, int where, double w, double h, double x0, double x1,
                        double y0, double y1) {
    bool is_right = where == LEGEND_UPPER_RIGHT || where == LEGEND_LOWER_RIGHT;
    bool is_top = where == LEGEND_UPPER_RIGHT || where == LEGEND_UPPER_LEFT;
    double bx0 = is_right ? 1.0 - w : 0.0, bx1 = is_right ? 1.0 : w;
    double by0 = is_top ? 1.0 - h : 0.0, by1 = is_top ? 1.0 : h;
    int n = 0;
    for (int k = 0; k < p->n; k++) {
        const loom_plot_series *s = &p->s[k];
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->x[i]) || !isfinite(s->y[i]))
                continue;
            bool has_next = i + 1 < s->n && isfinite(s->x[i + 1]) && isfinite(s->y[i + 1]);
            for (int t = 0; t < (has_next ? 16 : 1); t++) {
                double f = t / 16.0;
                double x = has_next ? s->x[i] + f * (s->x[i + 1] - s->x[i]) : s->x[i];
                double y = has_next ? s->y[i] + f * (s->y[i + 1] - s->y[i]) : s->y[i];
                double u = (x - x0) / (x1 - x0), v = (y - y0) / (y1 - y0);
                n += u >= bx0 && u <= bx1 && v >= by0 && v <= by1;
            }
        }
    }
    return n;
}

/* The corner for an inside legend: the one that covers the least data (the asked-for corner on
 * ties, then upper right, lower right, upper left, lower left). */
static int legend_corner(const line_panel *p, double x0, double x1, double y0, double y1) {
    if (p->legend == LEGEND_OUTSIDE || p->legend == LEGEND_NONE)
        return p->legend;
    int n = p->n + (p->marker_label ? 1 : 0);
    size_t longest = 0;
    for (int k = 0; k < p->n; k++)
        longest =
            p->s[k].label && strlen(p->s[k].label) > longest ? strlen(p->s[k].label) : longest;
    if (p->marker_label && strlen(p->marker_label) > longest)
        longest = strlen(p->marker_label);
    /* about what pllegend draws at font 0.95 on these panels */
    double w = fmin(0.9, 0.16 + 0.026 * (double)longest), h = fmin(0.9, 0.05 + 0.085 * n);
    static const int order[] = {LEGEND_UPPER_RIGHT, LEGEND_LOWER_RIGHT, LEGEND_UPPER_LEFT,
                                LEGEND_LOWER_LEFT};
    int best = p->legend, best_n = legend_cover(p, p->legend, w, h, x0, x1, y0, y1);
    for (int i = 0; i < 4 && best_n > 0; i++) {
        int c = legend_cover(p, order[i], w, h, x0, x1, y0, y1);
        if (c < best_n)
            best = order[i], best_n = c;
    }
    return best;
}

static void draw_legend(const line_panel *p, bool has_markers, int corner) {
    int n = p->n + (p->marker_label ? 1 : 0);
    enum { N = PLOT_MAX_SERIES + 1 };
    PLINT opt[N], tcol[N], lcol[N], lsty[N], scol[N], snum[N];
    PLFLT lw[N], ssc[N];
    const char *text[N], *sym[N];
    char esc[N][160];
    if (n > N)
        n = N;
    for (int k = 0; k < n; k++) {
        bool is_marker = k >= p->n;
        opt[k] = PL_LEGEND_LINE | (has_markers && !is_marker ? PL_LEGEND_SYMBOL : 0);
        tcol[k] = PC_FG;
        lcol[k] = is_marker ? PC_MUTED : PC_SERIES + k % PLOT_N_SERIES;
        scol[k] = lcol[k];
        lsty[k] = is_marker || k >= PLOT_N_SERIES ? 2 : 1;
        lw[k] = is_marker ? 1.5 : 2.5;
        ssc[k] = 1.0;
        snum[k] = 1;
        sym[k] = "•";
        text[k] = plot_escape(is_marker       ? p->marker_label
                              : p->s[k].label ? p->s[k].label
                                              : "",
                              esc[k], sizeof esc[k]);
    }
    bool is_left = corner == LEGEND_UPPER_LEFT || corner == LEGEND_LOWER_LEFT;
    PLINT pos = (is_left ? PL_POSITION_LEFT : PL_POSITION_RIGHT) | PL_POSITION_VIEWPORT;
    double x = 0.02, y = 0.03;
    if (corner == LEGEND_OUTSIDE) { /* beside the plot, vertically centred */
        pos = PL_POSITION_RIGHT | PL_POSITION_VIEWPORT | PL_POSITION_OUTSIDE;
        y = 0.0;
    } else
        pos |= PL_POSITION_INSIDE |
               (corner == LEGEND_UPPER_RIGHT || corner == LEGEND_UPPER_LEFT ? PL_POSITION_TOP
                                                                            : PL_POSITION_BOTTOM);
    PLFLT lw_out, lh_out;
    plot_font(0.95);
    pllegend(&lw_out, &lh_out, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, pos, x, y, 0.07,
             PC_BG, PC_GRID, 1, 0, 0, n, opt, 0.8, 1.0, 2.0, 0.0, tcol, text, NULL, NULL, NULL,
             NULL, lcol, lsty, lw, scol, ssc, snum, sym);
    plot_font(1.0);
}

static void draw_line_panel(const line_panel *p) {
    double x0, x1, y0, y1;
    bool is_int_x;
    series_range(p, &x0, &x1, &y0, &y1, &is_int_x);
    plvpor(p->vx0, p->vx1, p->vy0, p->vy1);
    plwind(x0, x1, y0, y1);
    is_int_x &= x1 - x0 <= 12.5; /* a tick per epoch for short runs */
    double xtick = is_int_x ? 1.0 : 0.0;
    int nxsub = is_int_x ? 1 : 0;
    plcol0(PC_GRID);
    plbox("g", xtick, nxsub, "g", 0.0, 0);
    if (isfinite(p->marker_x)) {
        PLFLT mx[2] = {p->marker_x, p->marker_x}, my[2] = {y0, y1};
        plcol0(PC_MUTED);
        pllsty(2);
        plwidth(1.5);
        plline(2, mx, my);
        pllsty(1);
        plwidth(1.0);
    }
    int n_points = 0;
    for (int k = 0; k < p->n; k++)
        n_points = p->s[k].n > n_points ? p->s[k].n : n_points;
    bool has_markers = n_points <= 30;
    for (int k = 0; k < p->n; k++)
        draw_series(&p->s[k], k, has_markers, p->sx, p->sy);
    plcol0(PC_FG);
    plbox("bcnst", xtick, nxsub, "bcnstv", 0.0, 0);
    char buf[512];
    if (p->title) {
        plot_font(1.1);
        plmtex("t", 1.2, 0.5, 0.5, plot_escape(p->title, buf, sizeof buf));
        plot_font(1.0);
    }
    if (p->x_label)
        plmtex("b", 3.0, 0.5, 0.5, plot_escape(p->x_label, buf, sizeof buf));
    if (p->y_label)
        plmtex("l", 4.6, 0.5, 0.5, plot_escape(p->y_label, buf, sizeof buf));
    if (p->legend != LEGEND_NONE && p->n > 0)
        draw_legend(p, has_markers, legend_corner(p, x0, x1, y0, y1));
}

/* ---- learning curves ------------------------------------------------------------------------- */

typedef struct {
    const history *h;
    loom_plot_series loss[2], acc[2];
    double *acc_pct[2], *acc_std[2];
    int n_series;
    int best;       /* epoch index of the best validation accuracy, -1 */
    PLFLT *sx, *sy; /* drawing scratch */
} curves_ctx;

static void draw_curves(void *vctx) {
    curves_ctx *c = vctx;
    const history *h = c->h;
    char title[256], sub[256], best_label[64];
    if (h->n_runs > 1)
        snprintf(title, sizeof title, "%s: learning curves (mean ± std over %d runs)", h->name,
                 h->n_runs);
    else
        snprintf(title, sizeof title, "%s: learning curves", h->name);
    plcol0(PC_FG);
    plot_font(1.3);
    plot_page_text(0.5, 0.95, 0.0, 0.5, title);
    plot_font(1.0);
    sub[0] = '\0';
    if (c->best >= 0) {
        snprintf(sub, sizeof sub, "best validation accuracy %.2f%% at epoch %g",
                 100 * h->mean[H_VAL_ACC][c->best], h->epoch[c->best]);
        plcol0(PC_MUTED);
        plot_page_text(0.5, 0.89, 0.0, 0.5, sub);
        snprintf(best_label, sizeof best_label, "best epoch (%g)", h->epoch[c->best]);
    }
    line_panel lp = {.vx0 = 0.08,
                     .vx1 = 0.47,
                     .vy0 = 0.13,
                     .vy1 = 0.76,
                     .title = "Loss",
                     .x_label = "epoch",
                     .y_label = "cross-entropy loss",
                     .s = c->loss,
                     .n = c->n_series,
                     .legend = LEGEND_UPPER_RIGHT,
                     .y_lo = 0.0,
                     .y_hi = NAN,
                     .marker_x = NAN,
                     .sx = c->sx,
                     .sy = c->sy};
    draw_line_panel(&lp);
    line_panel ap = {.vx0 = 0.585,
                     .vx1 = 0.975,
                     .vy0 = 0.13,
                     .vy1 = 0.76,
                     .title = "Accuracy",
                     .x_label = "epoch",
                     .y_label = "accuracy (%)",
                     .s = c->acc,
                     .n = c->n_series,
                     .legend = LEGEND_LOWER_RIGHT,
                     .y_lo = NAN,
                     .y_hi = 100.0,
                     .marker_x = c->best >= 0 ? h->epoch[c->best] : NAN,
                     .marker_label = c->best >= 0 ? best_label : NULL,
                     .sx = c->sx,
                     .sy = c->sy};
    draw_line_panel(&ap);
}

static loom_status plot_history_data(const history *h, const char *out, loom_error *err) {
    curves_ctx c = {.h = h, .n_series = h->has_val ? 2 : 1, .best = -1};
    static const char *const labels[2] = {"training", "validation"};
    loom_status st = LOOM_OK;
    for (int v = 0; v < c.n_series; v++) {
        int kl = v ? H_VAL_LOSS : H_LOSS, ka = v ? H_VAL_ACC : H_ACC;
        c.loss[v] = (loom_plot_series){labels[v], h->epoch, h->mean[kl], h->std[kl], h->n};
        c.acc_pct[v] = malloc(sizeof(double) * (size_t)h->n);
        c.acc_std[v] = malloc(sizeof(double) * (size_t)h->n);
        if (!c.acc_pct[v] || !c.acc_std[v]) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", out);
            goto done;
        }
        for (int i = 0; i < h->n; i++) {
            c.acc_pct[v][i] = 100 * h->mean[ka][i];
            c.acc_std[v][i] = h->std[ka] ? 100 * h->std[ka][i] : 0.0;
        }
        c.acc[v] = (loom_plot_series){labels[v], h->epoch, c.acc_pct[v],
                                      h->std[ka] ? c.acc_std[v] : NULL, h->n};
    }
    if (h->has_val)
        for (int i = 0; i < h->n; i++)
            if (isfinite(h->mean[H_VAL_ACC][i]) &&
                (c.best < 0 || h->mean[H_VAL_ACC][i] > h->mean[H_VAL_ACC][c.best]))
                c.best = i;
    c.sx = scratch_alloc(c.loss, c.n_series);
    c.sy = scratch_alloc(c.loss, c.n_series);
    if (!c.sx || !c.sy)
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", out);
    else
        st = plot_render(out, 1100, 500, NULL, draw_curves, &c, err);
done:
    for (int v = 0; v < 2; v++) {
        free(c.acc_pct[v]);
        free(c.acc_std[v]);
    }
    free(c.sx);
    free(c.sy);
    return st;
}

loom_status loom_plot_history(const char *src, const char *out, loom_error *err) {
    history h;
    loom_status st = history_load(src, &h, err);
    if (st)
        return st;
    st = plot_history_data(&h, out, err);
    history_reset(&h);
    return st;
}

/* ---- overlays -------------------------------------------------------------------------------- */

typedef struct {
    const char *title, *x_label, *y_label;
    const loom_plot_series *s;
    int n;
    double right; /* right edge of the plot box, leaving room for the legend */
    double y_hi;
    PLFLT *sx, *sy; /* drawing scratch */
} overlay_ctx;

static void draw_overlay(void *vctx) {
    overlay_ctx *c = vctx;
    plcol0(PC_FG);
    line_panel p = {.vx0 = 0.09,
                    .vx1 = c->right,
                    .vy0 = 0.12,
                    .vy1 = 0.88,
                    .x_label = c->x_label,
                    .y_label = c->y_label,
                    .s = c->s,
                    .n = c->n,
                    .legend = LEGEND_OUTSIDE,
                    .y_lo = NAN,
                    .y_hi = c->y_hi,
                    .marker_x = NAN,
                    .sx = c->sx,
                    .sy = c->sy};
    draw_line_panel(&p);
    char buf[512];
    plot_font(1.3);
    plmtex("t", 1.6, 0.5, 0.5, plot_escape(c->title ? c->title : "", buf, sizeof buf));
    plot_font(1.0);
}

static loom_status overlay(const char *out, const char *title, const char *x_label,
                           const char *y_label, const loom_plot_series *series, int n_series,
                           double y_hi, loom_error *err) {
    if (n_series < 1 || n_series > PLOT_MAX_SERIES)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: %d series to overlay, expected 1 to %d", out,
                              n_series, PLOT_MAX_SERIES);
    size_t longest = 0;
    for (int k = 0; k < n_series; k++) {
        if (series[k].n < 0 || (series[k].n > 0 && (!series[k].x || !series[k].y)))
            return loom_error_set(err, LOOM_ERR_ARG, "%s: series %d has no data", out, k);
        size_t len = series[k].label ? strlen(series[k].label) : 0;
        longest = len > longest ? len : longest;
    }
    /* room for the legend: about 9 px per character plus the line sample, on 1000 px */
    double legend = (longest * 10.0 + 130.0) / 1000.0;
    overlay_ctx c = {title,
                     x_label,
                     y_label,
                     series,
                     n_series,
                     fmax(0.5, 0.97 - legend),
                     y_hi,
                     scratch_alloc(series, n_series),
                     scratch_alloc(series, n_series)};
    loom_status st = !c.sx || !c.sy ? loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", out)
                                    : plot_render(out, 1000, 560, NULL, draw_overlay, &c, err);
    free(c.sx);
    free(c.sy);
    return st;
}

loom_status loom_plot_overlay(const char *out, const char *title, const char *x_label,
                              const char *y_label, const loom_plot_series *series, int n_series,
                              loom_error *err) {
    return overlay(out, title, x_label, y_label, series, n_series, NAN, err);
}

loom_status loom_plot_overlay_runs(const char *out, const char *const *run_dirs, int n_runs,
                                   const char *column, loom_error *err) {
    if (!column)
        column = "val_acc";
    int k_col = -1;
    for (int k = 0; k < H_N; k++)
        if (strcmp(column, h_names[k]) == 0)
            k_col = k;
    if (k_col < 0)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "overlay column '%s': expected loss, acc, val_loss or val_acc",
                              column);
    if (n_runs < 1 || n_runs > PLOT_MAX_SERIES)
        return loom_error_set(err, LOOM_ERR_ARG, "%d runs to overlay, expected 1 to %d", n_runs,
                              PLOT_MAX_SERIES);
    bool is_acc = k_col == H_ACC || k_col == H_VAL_ACC;
    history hs[PLOT_MAX_SERIES];
    loom_plot_series s[PLOT_MAX_SERIES];
    char labels[PLOT_MAX_SERIES][200];
    double *ys[PLOT_MAX_SERIES] = {0}, *sds[PLOT_MAX_SERIES] = {0};
    memset(hs, 0, sizeof hs);
    loom_status st = LOOM_OK;
    for (int r = 0; r < n_runs && !st; r++) {
        if ((st = history_load(run_dirs[r], &hs[r], err)))
            break;
        const history *h = &hs[r];
        ys[r] = malloc(sizeof(double) * (size_t)h->n);
        sds[r] = malloc(sizeof(double) * (size_t)h->n);
        if (!ys[r] || !sds[r]) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", out);
            break;
        }
        double f = is_acc ? 100.0 : 1.0;
        for (int i = 0; i < h->n; i++) {
            ys[r][i] = f * h->mean[k_col][i];
            sds[r][i] = h->std[k_col] ? f * h->std[k_col][i] : 0.0;
        }
        snprintf(labels[r], sizeof labels[r], "%s", h->name);
        s[r] = (loom_plot_series){labels[r], h->epoch, ys[r], h->std[k_col] ? sds[r] : NULL, h->n};
    }
    /* runs of the same model are told apart by their directory names */
    for (int r = 0; r < n_runs && !st; r++) {
        int dup = 0;
        for (int q = 0; q < n_runs; q++)
            dup += q != r && strcmp(hs[q].name, hs[r].name) == 0;
        char base[128];
        basename_of(run_dirs[r], base, sizeof base);
        size_t len = strlen(labels[r]);
        if (dup)
            snprintf(labels[r] + len, sizeof labels[r] - len, " (%s)", base);
        len = strlen(labels[r]);
        if (hs[r].n_runs > 1)
            snprintf(labels[r] + len, sizeof labels[r] - len, ", mean ± std of %d runs",
                     hs[r].n_runs);
    }
    if (!st) {
        static const char *const ylab[H_N] = {"training loss", "training accuracy (%)",
                                              "validation loss", "validation accuracy (%)"};
        static const char *const titles[H_N] = {
            "Training loss per epoch", "Training accuracy per epoch", "Validation loss per epoch",
            "Validation accuracy per epoch"};
        const char *title = titles[k_col];
        st = overlay(out, title, "epoch", ylab[k_col], s, n_runs, is_acc ? 100.0 : NAN, err);
    }
    for (int r = 0; r < n_runs; r++) {
        free(ys[r]);
        free(sds[r]);
        history_reset(&hs[r]);
    }
    return st;
}

bool plot_has_history(const char *dir) {
    char path[2048], **subs = NULL;
    if (plot_exists(plot_path(path, sizeof path, dir, "history.csv")))
        return true;
    int n = fold_dirs(dir, &subs);
    for (int k = 0; k < n; k++)
        free(subs[k]);
    free(subs);
    return n > 0;
}
