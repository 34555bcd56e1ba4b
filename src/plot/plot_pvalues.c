/* plot_pvalues.c - the p-value matrix of McNemar's test between every pair of runs: one cell per
 * pair (symmetric; the diagonal left empty), its p-value written in it, shaded by -log10(p) on a
 * white-to-blue map (darker = stronger evidence of a difference), a pair below the significance
 * level marked with '*', run labels on both axes. */
#include "plot.h"

#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

#define PV_W 960 /* figure size in pixels */
#define PV_H 880
#define PV_LOG_MAX 6.0 /* -log10(p) at which the colour saturates: p = 1e-6 */

typedef struct {
    int n;
    const char *const *labels; /* (n) */
    const double *p;           /* (n, n) p-values, NaN where not tested */
    double alpha;
} pv_ctx;

static double shade(double p) {
    if (!(p > 0))
        return 1.0;
    return fmin(1.0, -log10(p) / PV_LOG_MAX);
}

static void draw_pv(void *vctx) {
    const pv_ctx *c = vctx;
    int n = c->n;
    double side = 600, left = 190, bottom = 170;
    double vx0 = left / PV_W, vx1 = (left + side) / PV_W;
    double vy0 = bottom / PV_H, vy1 = (bottom + side) / PV_H;
    double cell_px = side / n;
    char buf[128], name[64];
    plvpor(vx0, vx1, vy0, vy1);
    plwind(0.0, n, 0.0, n);
    double g = 0.015;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double p = c->p[(size_t)i * n + j];
            if (i == j || isnan(p))
                continue;
            plcol1(shade(p));
            plot_rect(j + g, n - i - 1 + g, j + 1 - g, n - i - g);
        }
    plot_font(fmin(0.85, cell_px / 70));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double p = c->p[(size_t)i * n + j];
            if (i == j || isnan(p))
                continue;
            plcol0(shade(p) > 0.55 ? PC_WHITE : PC_FG);
            snprintf(buf, sizeof buf, "%.2g%s", p, p < c->alpha ? "*" : "");
            plptex(j + 0.5, n - i - 0.5, 1.0, 0.0, 0.5, buf);
        }
    plcol0(PC_FG);
    plot_font(1.0);
    plbox("bc", 0.0, 0, "bc", 0.0, 0);
    plot_font(fmin(1.0, cell_px / 40.0));
    for (int k = 0; k < n; k++) {
        plot_cut_label(c->labels[k], 16, name, sizeof name);
        double x = vx0 + (k + 0.5) * (vx1 - vx0) / n;
        plot_page_text(x + 4.0 / PV_W, vy0 - 12.0 / PV_H, 45.0, 1.0, name);
        double y = vy1 - (k + 0.5) * (vy1 - vy0) / n;
        plot_page_text(vx0 - 10.0 / PV_W, y, 0.0, 1.0, name);
    }
    plot_font(1.3);
    plot_page_text(0.5, 1.0 - 38.0 / PV_H, 0.0, 0.5, "McNemar's test: p-value of every pair");
    plot_font(1.0);
    plcol0(PC_MUTED);
    snprintf(buf, sizeof buf, "* below alpha = %g: the two runs' errors differ significantly",
             c->alpha);
    plot_page_text(0.5, 1.0 - 72.0 / PV_H, 0.0, 0.5, buf);
    /* colour bar in -log10(p) */
    double bx0 = (left + side + 30) / PV_W, bx1 = (left + side + 52) / PV_W;
    plvpor(bx0, bx1, vy0, vy1);
    plwind(0.0, 1.0, 0.0, PV_LOG_MAX);
    PLFLT gx[4] = {0, 1, 1, 0}, gy[4] = {0, 0, PV_LOG_MAX, PV_LOG_MAX};
    plgradient(4, gx, gy, 90.0);
    plcol0(PC_FG);
    plot_font(0.9);
    plbox("bc", 0.0, 0, "bcmtiv", 1.0, 0);
    plot_font(1.0);
    plmtex("r", 4.2, 0.5, 0.5, "-log10(p)");
}

loom_status loom_plot_pvalues(const char *out, const char *const *labels, int n, const double *p,
                              double alpha, loom_error *err) {
    if (n < 2 || n > 64 || !labels || !p)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: a p-value matrix of 2 to 64 runs", out);
    pv_ctx c = {n, labels, p, alpha > 0 ? alpha : 0.05};
    return plot_render(out, PV_W, PV_H, "blues", draw_pv, &c, err);
}
