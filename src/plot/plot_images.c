/* plot_images.c - image grids: sample images of every class (one row per class), and the test
 * images a model got wrong, captioned "true → predicted (confidence)". Images are (H, W, C)
 * uint8, drawn with plimage on a grey colour map 1 (0 black, 255 white; C > 1 averaged). The
 * figures use pixel coordinates: world (0, 0) is the lower-left corner of the page. */
#include "plot.h"

#include <math.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const loom_dataset *ds;
    PLFLT **cols; /* (W) pointers into pix: plimage's idata[x][y], y up */
    PLFLT *pix;   /* (W, H) */
} image_painter;

static bool painter_init(image_painter *ip, const loom_dataset *ds) {
    ip->ds = ds;
    ip->cols = malloc(sizeof(PLFLT *) * (size_t)ds->W);
    ip->pix = malloc(sizeof(PLFLT) * (size_t)ds->W * ds->H);
    if (!ip->cols || !ip->pix) {
        free(ip->cols);
        free(ip->pix);
        return false;
    }
    for (int x = 0; x < ds->W; x++)
        ip->cols[x] = ip->pix + (size_t)x * ds->H;
    return true;
}

static void painter_reset(image_painter *ip) {
    free(ip->cols);
    free(ip->pix);
}

/* Draws image i of the dataset into the world box (x0, y0) - (x0 + size, y0 + size). */
static void paint(image_painter *ip, int i, double x0, double y0, double size) {
    const loom_dataset *ds = ip->ds;
    int H = ds->H, W = ds->W, C = ds->C;
    const uint8_t *img = ds->x + (size_t)i * H * W * C;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int s = 0;
            for (int c = 0; c < C; c++)
                s += img[((size_t)y * W + x) * C + c];
            ip->cols[x][H - 1 - y] = (double)s / C; /* image row 0 is the top */
        }
    double w = size, h = size;
    if (W > H)
        h = size * H / W;
    else if (H > W)
        w = size * W / H;
    plimage((PLFLT_MATRIX)ip->cols, W, H, x0, x0 + w, y0, y0 + h, 0.0, 255.0, x0, x0 + w, y0,
            y0 + h);
}

/* Sets up pixel coordinates on the whole page. */
static void pixel_window(double width, double height) {
    plvpor(0.0, 1.0, 0.0, 1.0);
    plwind(0.0, width, 0.0, height);
}

/* ---- samples per class -------------------------------------------------------------------------
 */

#define SM_CELL 72 /* pixels per image cell, the image 64 of them */
#define SM_IMG 64
#define SM_LEFT 150 /* the class-name column */
#define SM_TOP 92

typedef struct {
    const loom_dataset *ds;
    int per_class, n_classes;
    int *pick; /* (n_classes, per_class) example index or -1 */
    int width, height;
    image_painter ip;
} samples_ctx;

static void draw_samples(void *vctx) {
    samples_ctx *c = vctx;
    pixel_window(c->width, c->height);
    char buf[128], name[32];
    plcol0(PC_FG);
    plot_font(1.3);
    snprintf(buf, sizeof buf, "%s: %d images of each class",
             c->ds->is_fashion ? "Fashion-MNIST" : "dataset", c->per_class);
    plot_text(c->width / 2.0, c->height - 36, 0.5, buf);
    plot_font(1.0);
    plcol0(PC_MUTED);
    snprintf(buf, sizeof buf, "the first of each class in file order (%d images, %dx%d)", c->ds->n,
             c->ds->H, c->ds->W);
    plot_text(c->width / 2.0, c->height - 66, 0.5, buf);
    for (int k = 0; k < c->n_classes; k++) {
        double y0 = c->height - SM_TOP - (k + 1) * SM_CELL + (SM_CELL - SM_IMG) / 2.0;
        plcol0(PC_FG);
        plot_text(SM_LEFT - 14, y0 + SM_IMG / 2.0, 1.0, loom_class_name(c->ds, k, name));
        for (int j = 0; j < c->per_class; j++) {
            int i = c->pick[(size_t)k * c->per_class + j];
            if (i >= 0)
                paint(&c->ip, i, SM_LEFT + j * SM_CELL, y0, SM_IMG);
        }
    }
}

loom_status loom_plot_samples(const loom_dataset *ds, int per_class, const char *out,
                              loom_error *err) {
    if (!ds || ds->n < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: no images to show", out);
    if (per_class < 1 || per_class > 16)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: %d images per class, expected 1 to 16", out,
                              per_class);
    int K = ds->n_classes;
    if (K > 40)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: %d classes, a sample grid shows up to 40",
                              out, K);
    samples_ctx c = {
        ds, per_class, K, NULL, SM_LEFT + per_class * SM_CELL + 24, SM_TOP + K * SM_CELL + 24, {0}};
    c.pick = malloc(sizeof(int) * (size_t)K * per_class);
    int *got = calloc((size_t)K, sizeof(int));
    loom_status st = LOOM_OK;
    if (!c.pick || !got || !painter_init(&c.ip, ds)) {
        free(c.pick);
        free(got);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", out);
    }
    for (size_t i = 0; i < (size_t)K * per_class; i++)
        c.pick[i] = -1;
    for (int i = 0; i < ds->n; i++) {
        int k = ds->y[i];
        if (k < K && got[k] < per_class)
            c.pick[(size_t)k * per_class + got[k]++] = i;
    }
    st = plot_render(out, c.width, c.height, "gray", draw_samples, &c, err);
    painter_reset(&c.ip);
    free(c.pick);
    free(got);
    return st;
}

/* ---- misclassified test images -----------------------------------------------------------------
 */

#define MC_COLS 6
#define MC_CELL_W 180
#define MC_CELL_H 162
#define MC_IMG 96
#define MC_TOP 96

typedef struct {
    int index, y_true, y_pred;
    double prob;
} mistake;

typedef struct {
    const loom_dataset *ds;
    const mistake *m;
    int n_shown, n_mistakes, n_rows_csv;
    int width, height;
    image_painter ip;
} mistakes_ctx;

static void draw_mistakes(void *vctx) {
    mistakes_ctx *c = vctx;
    pixel_window(c->width, c->height);
    char buf[256], tn[32], pn[32];
    plcol0(PC_FG);
    plot_font(1.3);
    plot_text(c->width / 2.0, c->height - 36, 0.5, "Misclassified test images");
    plot_font(1.0);
    plcol0(PC_MUTED);
    if (c->n_mistakes == 0)
        snprintf(buf, sizeof buf, "no mistakes among %d test images", c->n_rows_csv);
    else
        snprintf(buf, sizeof buf,
                 "true → predicted (confidence): the %d most confident of %d mistakes in %d "
                 "test images",
                 c->n_shown, c->n_mistakes, c->n_rows_csv);
    plot_font(0.9);
    plot_text(c->width / 2.0, c->height - 66, 0.5, buf);
    plot_font(1.0);
    double x_pad = (c->width - MC_COLS * MC_CELL_W) / 2.0;
    for (int i = 0; i < c->n_shown; i++) {
        const mistake *m = &c->m[i];
        int row = i / MC_COLS, col = i % MC_COLS;
        double cx = x_pad + col * MC_CELL_W + MC_CELL_W / 2.0;
        double top = c->height - MC_TOP - row * MC_CELL_H;
        paint(&c->ip, m->index, cx - MC_IMG / 2.0, top - MC_IMG, MC_IMG);
        plot_font(0.9);
        plcol0(PC_FG);
        snprintf(buf, sizeof buf, "%s →", loom_class_name(c->ds, m->y_true, tn));
        plot_text(cx, top - MC_IMG - 15, 0.5, buf);
        plcol0(PC_SERIES + 3);
        /* never round a confidence below 100% up to "100%" */
        double pct = 100 * m->prob;
        if (pct >= 99.5 && pct < 100)
            snprintf(buf, sizeof buf, "%s (%.1f%%)", loom_class_name(c->ds, m->y_pred, pn),
                     floor(pct * 10) / 10);
        else
            snprintf(buf, sizeof buf, "%s (%.0f%%)", loom_class_name(c->ds, m->y_pred, pn), pct);
        plot_text(cx, top - MC_IMG - 35, 0.5, buf);
        plot_font(1.0);
    }
}

static int cmp_mistake(const void *a, const void *b) {
    const mistake *x = a, *y = b;
    if (x->prob != y->prob)
        return x->prob > y->prob ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

loom_status loom_plot_misclassified(const loom_dataset *ds, const char *predictions_csv,
                                    int max_images, const char *out, loom_error *err) {
    if (!ds || ds->n < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: no test images", out);
    if (max_images < 1 || max_images > 64)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: %d images, expected 1 to 64", out,
                              max_images);
    plot_csv t;
    loom_status st = plot_csv_load(&t, predictions_csv, err);
    if (st)
        return st;
    mistakes_ctx c = {ds, NULL, 0, 0, t.n_rows, 0, 0, {0}};
    mistake *ms = NULL;
    int ci, ct, cp, cq;
    if ((st = plot_csv_need(&t, "index", &ci, err)) || (st = plot_csv_need(&t, "true", &ct, err)) ||
        (st = plot_csv_need(&t, "pred", &cp, err)) || (st = plot_csv_need(&t, "prob", &cq, err)))
        goto done;
    ms = malloc(sizeof *ms * (size_t)(t.n_rows + 1));
    if (!ms) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", predictions_csv);
        goto done;
    }
    for (int r = 0; r < t.n_rows; r++) {
        double v[4];
        int cols[4] = {ci, ct, cp, cq};
        for (int k = 0; k < 4; k++)
            if ((st = plot_csv_num(&t, r, cols[k], &v[k], err)))
                goto done;
        int line = t.lines[r + 1];
        if (v[0] < 0 || v[0] >= ds->n || v[0] != floor(v[0])) {
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s:%d: index %g is not an image of the test set (%d images)",
                                predictions_csv, line, v[0], ds->n);
            goto done;
        }
        for (int k = 1; k < 3; k++)
            if (v[k] < 0 || v[k] >= ds->n_classes || v[k] != floor(v[k])) {
                st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: %g is not a class (0 to %d)",
                                    predictions_csv, line, v[k], ds->n_classes - 1);
                goto done;
            }
        if (v[3] < 0 || v[3] > 1) {
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: probability %g outside [0, 1]",
                                predictions_csv, line, v[3]);
            goto done;
        }
        mistake m = {(int)v[0], (int)v[1], (int)v[2], v[3]};
        if (ds->y[m.index] != m.y_true) {
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s:%d: image %d has label %d in the test set, not %d: the "
                                "predictions are for other data",
                                predictions_csv, line, m.index, ds->y[m.index], m.y_true);
            goto done;
        }
        if (m.y_true != m.y_pred)
            ms[c.n_mistakes++] = m;
    }
    qsort(ms, (size_t)c.n_mistakes, sizeof *ms, cmp_mistake);
    c.m = ms;
    c.n_shown = c.n_mistakes < max_images ? c.n_mistakes : max_images;
    int n_rows = (c.n_shown + MC_COLS - 1) / MC_COLS;
    c.width = MC_COLS * MC_CELL_W + 40;
    c.height = MC_TOP + (n_rows > 0 ? n_rows : 1) * MC_CELL_H + 10;
    if (!painter_init(&c.ip, ds)) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", out);
        goto done;
    }
    st = plot_render(out, c.width, c.height, "gray", draw_mistakes, &c, err);
    painter_reset(&c.ip);
done:
    free(ms);
    plot_csv_reset(&t);
    return st;
}
