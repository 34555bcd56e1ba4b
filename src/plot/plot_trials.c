/* plot_trials.c - a tuning run's trials.csv (columns trial, score, then one per hyperparameter):
 * one small panel of score per trial, then one of score against each hyperparameter (numeric on a
 * linear or, over wide positive ranges, log axis; categorical as evenly spaced choices), with the
 * best trial marked. Empty or "nan" cells (a conditional hyperparameter, a failed trial) are left
 * out. */
#include "plot.h"
#include "../run/rundir.h"

#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TR_MAX_CATS 16
#define TR_MAX_PANELS 24
#define TR_PANEL_W 400
#define TR_PANEL_H 320
#define TR_TOP 100

typedef struct {
    const char *name;
    bool is_log, is_cat;
    bool is_int;    /* every value a whole number: ticks on whole numbers */
    bool is_nonneg; /* no value below 0: the axis does not go below 0 either */
    int n_cats;
    const char *cats[TR_MAX_CATS]; /* category names, in order of first appearance */
    double *x;                     /* (n_rows) value, log10 value or category index; NaN: none */
} tr_panel;

typedef struct {
    const plot_csv *t;
    double *score; /* (n_rows) NaN for a failed trial */
    int best;      /* row of the best score */
    tr_panel p[TR_MAX_PANELS];
    int n_panels, n_cols, n_rows_grid;
    int width, height;
    double y0, y1;
    char run[128]; /* the search's name: its space file's, else its directory's */
} trials_ctx;

static bool is_missing(const char *s) {
    return !*s || strcasecmp(s, "nan") == 0 || strcasecmp(s, "none") == 0;
}

static void draw_panel(const trials_ctx *c, int k) {
    const tr_panel *p = &c->p[k];
    int gx = k % c->n_cols, gy = k / c->n_cols;
    double W = c->width, H = c->height;
    double px0 = 20 + gx * TR_PANEL_W, ptop = H - TR_TOP - gy * TR_PANEL_H;
    plvpor((px0 + 78) / W, (px0 + TR_PANEL_W - 22) / W, (ptop - TR_PANEL_H + 70) / H,
           (ptop - 30) / H);
    int n = c->t->n_rows;
    double x0 = INFINITY, x1 = -INFINITY;
    for (int i = 0; i < n; i++)
        if (isfinite(p->x[i]) && isfinite(c->score[i])) {
            x0 = fmin(x0, p->x[i]);
            x1 = fmax(x1, p->x[i]);
        }
    if (!isfinite(x0))
        x0 = 0, x1 = 1;
    if (p->is_cat) {
        x0 = -0.5;
        x1 = p->n_cats - 0.5;
    } else if (x1 - x0 < 1e-12)
        plot_pad_range(&x0, &x1, 0.0, p->is_int ? 1.0 : fabs(x0) > 0 ? 0.1 * fabs(x0) : 0.5);
    else
        plot_pad_range(&x0, &x1, 0.08, 0.0);
    /* a quantity that is never negative (a dropout rate, a count) gets no negative axis: just
     * room for a point at 0 */
    if (!p->is_cat && !p->is_log && p->is_nonneg && x0 < 0)
        x0 = -0.04 * x1;
    /* whole numbers over a short range: a tick on each */
    bool is_unit = !p->is_cat && !p->is_log && p->is_int && x1 - x0 <= 12.5;
    double xtick = is_unit ? 1.0 : 0.0;
    int nxsub = is_unit ? 1 : 0;
    plwind(x0, x1, c->y0, c->y1);
    plcol0(PC_GRID);
    plbox(p->is_cat ? "" : "g", xtick, nxsub, "g", 0.0, 0);
    plot_font(0.85);
    plcol0(PC_FG);
    if (p->is_cat) {
        plbox("bc", 0.0, 0, "bcnstv", 0.0, 0);
        char buf[128];
        for (int j = 0; j < p->n_cats; j++)
            plmtex("b", 1.4, (j + 0.5) / p->n_cats, 0.5, plot_escape(p->cats[j], buf, sizeof buf));
    } else
        plbox(p->is_log ? "bcnstl" : "bcnst", xtick, nxsub, "bcnstv", 0.0, 0);
    plot_font(1.0);
    char buf[160];
    plmtex("t", 0.8, 0.5, 0.5, plot_escape(p->name, buf, sizeof buf));
    plot_font(0.9);
    if (gx == 0)
        plmtex("l", 4.2, 0.5, 0.5, "score");
    plot_font(1.0);
    for (int pass = 0; pass < 2; pass++) /* the best trial last, on top */
        for (int i = 0; i < n; i++) {
            if (!isfinite(p->x[i]) || !isfinite(c->score[i]) || (i == c->best) != (pass == 1))
                continue;
            PLFLT x = p->x[i], y = c->score[i];
            plcol0(i == c->best ? PC_SERIES + 3 : PC_SERIES);
            plot_font(i == c->best ? 1.6 : 1.2);
            plstring(1, &x, &y, "•");
        }
    plot_font(1.0);
}

static void draw_trials(void *vctx) {
    trials_ctx *c = vctx;
    char buf[256];
    plcol0(PC_FG);
    plot_font(1.3);
    char title[256];
    snprintf(title, sizeof title, "%s: score against each hyperparameter", c->run);
    plot_page_text(0.5, 1.0 - 36.0 / c->height, 0.0, 0.5, plot_escape(title, buf, sizeof buf));
    plot_font(1.0);
    plcol0(PC_MUTED);
    snprintf(buf, sizeof buf, "%d trial%s; the best (red) is trial %s with score %.4g",
             c->t->n_rows, PLURAL(c->t->n_rows), plot_csv_cell(c->t, c->best, 0),
             c->score[c->best]);
    plot_page_text(0.5, 1.0 - 66.0 / c->height, 0.0, 0.5, buf);
    for (int k = 0; k < c->n_panels; k++)
        draw_panel(c, k);
}

/* The search's name for the title: its space file's base name without the extension (tune.txt
 * beside the trials), else the directory's name. */
static void run_name(const char *trials_csv, char *out, size_t n) {
    char dir[1024], space[1024];
    snprintf(dir, sizeof dir, "%s", trials_csv);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    char path[1100], *text = NULL;
    snprintf(path, sizeof path, "%s/tune.txt", dir);
    const char *name = NULL;
    if (loom_file_read_all(path, &text, NULL, NULL) == LOOM_OK)
        name = loom_config_get(text, "space_file", space, sizeof space);
    if (!name) {
        snprintf(space, sizeof space, "%s", dir);
        size_t end = strlen(space);
        while (end > 1 && space[end - 1] == '/')
            space[--end] = '\0';
        name = space;
    }
    const char *base = strrchr(name, '/');
    base = base && base[1] ? base + 1 : name;
    size_t len = strlen(base) < n ? strlen(base) : n - 1; /* a long name is cut */
    memcpy(out, base, len);
    out[len] = '\0';
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = '\0';
    free(text);
}

/* Fills panel p from column col: numeric when every present cell is a number, else categorical. */
static loom_status make_panel(trials_ctx *c, tr_panel *p, int col, loom_error *err) {
    const plot_csv *t = c->t;
    int n = t->n_rows;
    p->name = t->cells[col];
    p->x = malloc(sizeof(double) * (size_t)(n + 1));
    if (!p->x)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", t->path);
    bool is_num = true;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) {
        const char *s = plot_csv_cell(t, i, col);
        p->x[i] = NAN;
        if (is_missing(s))
            continue;
        if (!plot_csv_is_num(t, i, col)) {
            is_num = false;
            continue;
        }
        plot_csv_num(t, i, col, &p->x[i], NULL);
        lo = fmin(lo, p->x[i]);
        hi = fmax(hi, p->x[i]);
    }
    if (is_num) {
        p->is_int = true;
        for (int i = 0; i < n; i++)
            p->is_int &= !isfinite(p->x[i]) || p->x[i] == floor(p->x[i]);
        p->is_nonneg = lo >= 0;
        p->is_log = lo > 0 && hi / lo >= 20;
        for (int i = 0; i < n && p->is_log; i++)
            p->x[i] = log10(p->x[i]);
        return LOOM_OK;
    }
    p->is_cat = true;
    for (int i = 0; i < n; i++) {
        const char *s = plot_csv_cell(t, i, col);
        p->x[i] = NAN;
        if (is_missing(s))
            continue;
        int j = 0;
        while (j < p->n_cats && strcmp(p->cats[j], s) != 0)
            j++;
        if (j == p->n_cats) {
            if (p->n_cats == TR_MAX_CATS)
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s: column '%s' has more than %d distinct values", t->path,
                                      p->name, TR_MAX_CATS);
            p->cats[p->n_cats++] = s;
        }
        p->x[i] = j;
    }
    return LOOM_OK;
}

loom_status loom_plot_trials(const char *trials_csv, const char *out, loom_error *err) {
    plot_csv t;
    loom_status st = plot_csv_load(&t, trials_csv, err);
    if (st)
        return st;
    trials_ctx c = {.t = &t, .best = -1};
    run_name(trials_csv, c.run, sizeof c.run);
    if (t.n_cols < 2 || strcmp(t.cells[0], "trial") != 0 || strcmp(t.cells[1], "score") != 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: the header must start with the columns trial,score", trials_csv);
        goto done;
    }
    if (t.n_rows == 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no trials after the header", trials_csv);
        goto done;
    }
    if (t.n_cols - 1 > TR_MAX_PANELS) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: more than %d hyperparameters", trials_csv,
                            TR_MAX_PANELS - 1);
        goto done;
    }
    c.score = malloc(sizeof(double) * (size_t)t.n_rows);
    if (!c.score) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", trials_csv);
        goto done;
    }
    c.y0 = INFINITY;
    c.y1 = -INFINITY;
    for (int i = 0; i < t.n_rows; i++) {
        c.score[i] = NAN;
        if (is_missing(plot_csv_cell(&t, i, 1)))
            continue;
        if ((st = plot_csv_num(&t, i, 1, &c.score[i], err)))
            goto done;
        if (c.best < 0 || c.score[i] > c.score[c.best])
            c.best = i;
        c.y0 = fmin(c.y0, c.score[i]);
        c.y1 = fmax(c.y1, c.score[i]);
    }
    if (c.best < 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no trial has a score", trials_csv);
        goto done;
    }
    plot_pad_range(&c.y0, &c.y1, 0.1, fmax(1e-4, 0.01 * fabs(c.y1)));
    /* panel 0: score per trial; then one per hyperparameter */
    for (int col = 0; col < t.n_cols; col++) {
        if (col == 1)
            continue;
        if ((st = make_panel(&c, &c.p[c.n_panels++], col, err)))
            goto done;
    }
    if (c.p[0].is_cat || c.p[0].is_log) { /* trial ids that are not plain numbers: 1, 2, ... */
        c.p[0].is_cat = c.p[0].is_log = false;
        for (int i = 0; i < t.n_rows; i++)
            c.p[0].x[i] = plot_csv_is_num(&t, i, 0) && !c.p[0].is_cat ? c.p[0].x[i] : i + 1;
    }
    c.p[0].name = "score per trial";
    c.n_cols = c.n_panels < 3 ? c.n_panels : 3;
    c.n_rows_grid = (c.n_panels + c.n_cols - 1) / c.n_cols;
    c.width = 40 + c.n_cols * TR_PANEL_W;
    c.height = TR_TOP + c.n_rows_grid * TR_PANEL_H + 10;
    st = plot_render(out, c.width, c.height, NULL, draw_trials, &c, err);
done:
    for (int k = 0; k < c.n_panels; k++)
        free(c.p[k].x);
    free(c.score);
    plot_csv_reset(&t);
    return st;
}
