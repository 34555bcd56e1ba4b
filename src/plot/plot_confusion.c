/* plot_confusion.c - confusion-matrix heatmap from confusion.csv (rows = true class, columns =
 * predicted): one filled cell per entry on a white-to-blue colour map, its value written in it
 * (white on dark cells, black on light), class names on both axes, a colour bar on the right.
 * Counts, or ratios normalised per row (per true class). */
#include "plot.h"

#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

#define CM_W 960 /* figure size in pixels */
#define CM_H 870

typedef struct {
    int K;
    const char *const *names; /* (K) class names */
    double *v;                /* (K, K) counts, or ratios when is_normalized */
    double v_max;
    bool is_normalized;
    long n; /* total count */
    double accuracy;
} cm_ctx;

static void draw_cm(void *vctx) {
    const cm_ctx *c = vctx;
    int K = c->K;
    /* a square heatmap: 580 px, its lower-left corner at (175, 170) px */
    double side = 580, left = 175, bottom = 170;
    double vx0 = left / CM_W, vx1 = (left + side) / CM_W;
    double vy0 = bottom / CM_H, vy1 = (bottom + side) / CM_H;
    double cell_px = side / K;
    /* "0.00" needs about 48 px at scale 0.8 */
    double tscale = fmin(c->is_normalized ? 0.8 : 0.95, cell_px / (c->is_normalized ? 72 : 60));
    char buf[256], name[64];

    plvpor(vx0, vx1, vy0, vy1);
    plwind(0.0, K, 0.0, K);
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) {
            double v = c->v[(size_t)t * K + p];
            double f = c->v_max > 0 ? v / c->v_max : 0.0;
            plcol1(f);
            /* row t is drawn t rows down from the top; a hairline gap separates the cells */
            double g = 0.015;
            plot_rect(p + g, K - t - 1 + g, p + 1 - g, K - t - g);
        }
    plot_font(tscale);
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++) {
            double v = c->v[(size_t)t * K + p];
            double f = c->v_max > 0 ? v / c->v_max : 0.0;
            plcol0(f > 0.55 ? PC_WHITE : PC_FG);
            if (c->is_normalized)
                snprintf(buf, sizeof buf, "%.2f", v);
            else
                snprintf(buf, sizeof buf, "%.0f", v);
            plptex(p + 0.5, K - t - 0.5, 1.0, 0.0, 0.5, buf);
        }
    plcol0(PC_FG);
    plot_font(1.0);
    plbox("bc", 0.0, 0, "bc", 0.0, 0);

    /* class names: predicted along the bottom at 45 degrees, true along the left */
    double name_scale = fmin(1.0, cell_px / 40.0);
    plot_font(name_scale);
    for (int k = 0; k < K; k++) {
        plot_cut_label(c->names[k], 14, name, sizeof name);
        double x = vx0 + (k + 0.5) * (vx1 - vx0) / K;
        plot_page_text(x + 4.0 / CM_W, vy0 - 12.0 / CM_H, 45.0, 1.0, name);
        double y = vy1 - (k + 0.5) * (vy1 - vy0) / K;
        plot_page_text(vx0 - 10.0 / CM_W, y, 0.0, 1.0, name);
    }
    plot_font(1.1);
    plot_page_text((vx0 + vx1) / 2, 30.0 / CM_H, 0.0, 0.5, "predicted class");
    plot_page_text(22.0 / CM_W, (vy0 + vy1) / 2, 90.0, 0.5, "true class");

    plot_font(1.3);
    if (c->is_normalized)
        snprintf(buf, sizeof buf, "Confusion matrix, normalised per true class");
    else
        snprintf(buf, sizeof buf, "Confusion matrix (counts)");
    plot_page_text(0.5, 1.0 - 38.0 / CM_H, 0.0, 0.5, buf);
    plot_font(1.0);
    plcol0(PC_MUTED);
    if (c->is_normalized)
        snprintf(buf, sizeof buf,
                 "recall of each class on the diagonal; %ld images, accuracy %.2f%%", c->n,
                 100 * c->accuracy);
    else
        snprintf(buf, sizeof buf, "%ld images, accuracy %.2f%%", c->n, 100 * c->accuracy);
    plot_page_text(0.5, 1.0 - 72.0 / CM_H, 0.0, 0.5, buf);

    /* colour bar: a cmap1 gradient beside the heatmap, its scale on the right */
    double bx0 = (left + side + 30) / CM_W, bx1 = (left + side + 52) / CM_W;
    plvpor(bx0, bx1, vy0, vy1);
    double top = c->v_max > 0 ? c->v_max : 1.0;
    plwind(0.0, 1.0, 0.0, top);
    PLFLT gx[4] = {0, 1, 1, 0}, gy[4] = {0, 0, top, top};
    plgradient(4, gx, gy, 90.0);
    plcol0(PC_FG);
    plot_font(0.9);
    plbox("bc", 0.0, 0, "bcmtv", 0.0, 0);
    plot_font(1.0);
    plmtex("r", 5.2, 0.5, 0.5, c->is_normalized ? "fraction of the true class" : "images");
}

loom_status loom_plot_confusion(const char *confusion_csv, bool is_normalized, const char *out,
                                loom_error *err) {
    plot_csv t;
    loom_status st = plot_csv_load(&t, confusion_csv, err);
    if (st)
        return st;
    int K = t.n_cols - 1;
    cm_ctx c = {K, NULL, NULL, 0.0, is_normalized, 0, 0.0};
    const char **names = NULL;
    if (K < 1 || K > LOOM_MAX_CLASSES) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: %d classes in the header, expected 1 to %d",
                            confusion_csv, K, LOOM_MAX_CLASSES);
        goto done;
    }
    if (t.n_rows != K) {
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: %d classes in the header but %d rows: expected one row per "
                            "true class",
                            confusion_csv, K, t.n_rows);
        goto done;
    }
    names = malloc(sizeof *names * (size_t)K);
    c.v = malloc(sizeof(double) * (size_t)K * K);
    if (!names || !c.v) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", confusion_csv);
        goto done;
    }
    for (int k = 0; k < K; k++)
        names[k] = t.cells[k + 1];
    c.names = names;
    long diag = 0;
    for (int r = 0; r < K; r++) {
        double row = 0;
        for (int p = 0; p < K; p++) {
            double v;
            if ((st = plot_csv_num(&t, r, p + 1, &v, err)))
                goto done;
            if (v < 0 || v != floor(v) || v > 1e15) {
                st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: column %d: %g is not a count",
                                    confusion_csv, t.lines[r + 1], p + 2, v);
                goto done;
            }
            c.v[(size_t)r * K + p] = v;
            row += v;
            c.n += (long)v;
            if (p == r)
                diag += (long)v;
        }
        for (int p = 0; p < K && is_normalized; p++)
            c.v[(size_t)r * K + p] = row > 0 ? c.v[(size_t)r * K + p] / row : 0.0;
    }
    c.accuracy = c.n > 0 ? (double)diag / c.n : 0.0;
    if (is_normalized)
        c.v_max = 1.0;
    else
        for (size_t i = 0; i < (size_t)K * K; i++)
            c.v_max = fmax(c.v_max, c.v[i]);
    st = plot_render(out, CM_W, CM_H, "blues", draw_cm, &c, err);
done:
    free(names);
    free(c.v);
    plot_csv_reset(&t);
    return st;
}
