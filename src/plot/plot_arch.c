/* plot_arch.c - architecture diagram from a model summary (loom_model_summary's table:
 * "layer text  (output shape)  params" rows between two rules): one box per layer, coloured by
 * kind, with its text, output shape and parameter count, joined by arrows from input to output;
 * long models wrap into side-by-side columns. A residual block is its head box, its inner layers'
 * boxes indented below it (the summary indents them) and the addition's box, with the shortcut
 * drawn from the head to the addition on the left. Drawn in pixel coordinates. */
#include "plot.h"

#include <ctype.h>
#include <plplot.h>
#include <stdlib.h>
#include <string.h>

#define AR_MAX_LAYERS 256
#define AR_PER_COL 12 /* boxes per column before wrapping */
#define AR_BOX_W 580
#define AR_COL_GAP 90
#define AR_MARGIN 50
#define AR_TOP 160
#define AR_SHAPE_R 132 /* right edge of the shape column, from the box's right edge */
#define AR_INDENT 36   /* per nesting depth of residual blocks */
#define AR_MAX_DEPTH 8

typedef struct {
    char text[64], shape[48], params[32];
    int depth;     /* residual blocks around the layer */
    int skip_from; /* an addition's box: the block's head box; else -1 */
} arch_layer;

typedef struct {
    arch_layer *l;
    int n;
    char title[160], totals[200];
    int n_cols, per_col;
    double box_h, gap;
    int width, height;
} arch_ctx;

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The box colour of a layer kind (its first word). */
static int kind_color(const char *text) {
    static const struct {
        const char *word;
        int color;
    } kinds[] = {{"conv", 0},  {"maxpool", 1},     {"avgpool", 1},  {"pool", 1},
                 {"dense", 2}, {"batchnorm", 3},   {"lstm", 4},     {"gru", 4},
                 {"rnn", 4},   {"dropout", 5},     {"flatten", 6},  {"rows", 6},
                 {"input", 7}, {"standardize", 7}, {"residual", 6}, {"+", 7}};
    size_t n = strcspn(text, " ");
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (strlen(kinds[i].word) == n && strncmp(text, kinds[i].word, n) == 0)
            return PC_BOX + kinds[i].color;
    return PC_BOX + 5;
}

/* Top-left corner of box i (indented by its depth); its width is box_w. */
static void box_pos(const arch_ctx *c, int i, double *x0, double *top) {
    int col = i / c->per_col, row = i % c->per_col;
    *x0 = AR_MARGIN + col * (AR_BOX_W + AR_COL_GAP) + c->l[i].depth * AR_INDENT;
    *top = c->height - AR_TOP - row * (c->box_h + c->gap);
}

static double box_w(const arch_ctx *c, int i) { return AR_BOX_W - c->l[i].depth * AR_INDENT; }

static void arrow_head(double x, double y) {
    PLFLT hx[3] = {x - 6, x + 6, x}, hy[3] = {y + 9, y + 9, y};
    plfill(3, hx, hy);
}

/* The shortcut of the addition box i from its block's head box: down the left of the boxes at
 * the block's depth into the addition. A block that wraps into later columns has its line run
 * to the bottom of the head's column, down each column between, and from the top of the
 * addition's column. */
static void draw_shortcut(const arch_ctx *c, int i) {
    int from = c->l[i].skip_from, col0 = from / c->per_col, col1 = i / c->per_col;
    double hx0, htop, x0, top;
    box_pos(c, from, &hx0, &htop);
    box_pos(c, i, &x0, &top);
    double mid = top - c->box_h / 2, hmid = htop - c->box_h / 2;
    double dx = x0 - (AR_MARGIN + col1 * (AR_BOX_W + AR_COL_GAP)); /* the depth's indent */
    double y_top = c->height - AR_TOP + 8;
    double y_bot = c->height - AR_TOP - c->per_col * (c->box_h + c->gap) + c->gap / 2;
    plcol0(PC_MUTED);
    plwidth(1.5);
    for (int col = col0; col <= col1; col++) {
        double xs = AR_MARGIN + col * (AR_BOX_W + AR_COL_GAP) + dx - AR_INDENT / 2.0 + 4;
        double y0 = col == col0 ? hmid : y_top, y1 = col == col1 ? mid : y_bot;
        if (col == col0) {
            PLFLT lx[2] = {hx0, xs}, ly[2] = {hmid, hmid};
            plline(2, lx, ly);
        }
        PLFLT vx[2] = {xs, xs}, vy[2] = {y0, y1};
        plline(2, vx, vy);
        if (col == col1) {
            PLFLT lx[2] = {xs, x0 - 8}, ly[2] = {mid, mid};
            plline(2, lx, ly);
        }
    }
    PLFLT hx[3] = {x0 - 9, x0 - 9, x0}, hy[3] = {mid - 6, mid + 6, mid};
    plfill(3, hx, hy);
    plwidth(1.0);
}

/* Text at (x, y) in the current font, made smaller when its estimated width (about 11.5 pixels
 * per character at scale 1) would pass max_w. */
static void text_fit(double x, double y, double just, const char *s, double max_w) {
    double w = 11.5 * (double)strlen(s), scale = w > max_w && w > 0 ? max_w / w : 1.0;
    if (scale < 1.0)
        plot_font(scale < 0.7 ? 0.7 : scale);
    plot_text(x, y, just, s);
    if (scale < 1.0)
        plot_font(1.0);
}

static void draw_arch(void *vctx) {
    arch_ctx *c = vctx;
    plvpor(0.0, 1.0, 0.0, 1.0);
    plwind(0.0, c->width, 0.0, c->height);
    plcol0(PC_FG);
    plot_font(1.3);
    plot_text(c->width / 2.0, c->height - 40, 0.5, c->title);
    plot_font(1.0);
    plcol0(PC_MUTED);
    plot_text(c->width / 2.0, c->height - 72, 0.5, c->totals);
    for (int col = 0; col < c->n_cols; col++) { /* column headings */
        double x0 = AR_MARGIN + col * (AR_BOX_W + AR_COL_GAP), y = c->height - AR_TOP + 22;
        plot_font(0.85);
        plot_text(x0 + 14, y, 0.0, "layer");
        plot_text(x0 + AR_BOX_W - AR_SHAPE_R, y, 1.0, "output shape");
        plot_text(x0 + AR_BOX_W - 14, y, 1.0, "params");
        plot_font(1.0);
    }
    for (int i = 0; i < c->n; i++) {
        double x0, top;
        box_pos(c, i, &x0, &top);
        double x1 = x0 + box_w(c, i), bot = top - c->box_h, mid = (top + bot) / 2;
        if (c->l[i].skip_from >= 0)
            draw_shortcut(c, i);
        plcol0(kind_color(c->l[i].text));
        plot_rect(x0, bot, x1, top);
        plcol0(PC_MUTED);
        PLFLT bx[5] = {x0, x1, x1, x0, x0}, by[5] = {bot, bot, top, top, bot};
        plline(5, bx, by);
        plcol0(PC_FG);
        plsfont(PL_FCI_SANS, PL_FCI_UPRIGHT, PL_FCI_BOLD);
        /* the text ends before the shape column (about 10 pixels per character) */
        double shape_w = 10.0 * (double)strlen(c->l[i].shape);
        text_fit(x0 + 14, mid, 0.0, c->l[i].text, box_w(c, i) - 14 - AR_SHAPE_R - shape_w - 16);
        plsfont(PL_FCI_SANS, PL_FCI_UPRIGHT, PL_FCI_MEDIUM);
        plot_text(x1 - AR_SHAPE_R, mid, 1.0, c->l[i].shape);
        plcol0(PC_MUTED);
        plot_text(x1 - 14, mid, 1.0, c->l[i].params);
        if (i + 1 == c->n)
            continue;
        /* arrow to the next box: straight down, or over to the top of the next column */
        double nx0, ntop;
        box_pos(c, i + 1, &nx0, &ntop);
        double xm = x0 + box_w(c, i) / 2.0, nxm = nx0 + box_w(c, i + 1) / 2.0;
        plcol0(PC_FG);
        plwidth(1.5);
        if ((i + 1) / c->per_col == i / c->per_col) {
            PLFLT ax[4] = {xm, xm, nxm, nxm},
                  ay[4] = {bot, bot - c->gap / 2, bot - c->gap / 2, ntop + 8};
            plline(4, ax, ay);
        } else {
            /* over the column headings to the top of the next column */
            double xg = x1 + AR_COL_GAP / 2.0, ylow = bot - c->gap / 2, yhigh = ntop + 46;
            PLFLT ax[6] = {xm, xm, xg, xg, nxm, nxm};
            PLFLT ay[6] = {bot, ylow, ylow, yhigh, yhigh, ntop + 8};
            plline(6, ax, ay);
        }
        plwidth(1.0);
        arrow_head(nxm, ntop);
    }
}

/* Parses the summary table; fills c->l, c->n and c->totals. */
static loom_status parse_summary(char *text, const char *path, arch_ctx *c, loom_error *err) {
    int line_no = 0, state = 0; /* 0 before the header, 1 before the rule, 2 rows, 3 totals */
    int heads[AR_MAX_DEPTH], n_heads = 0; /* the residual blocks open */
    char total[64] = "", flops[64] = "";
    for (char *line = text; line;) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        line_no++;
        char *s = trim(line);
        if (state == 0 && strncmp(s, "Layer", 5) == 0)
            state = 1;
        else if (state == 1 && strncmp(s, "---", 3) == 0)
            state = 2;
        else if (state == 2 && strncmp(s, "---", 3) == 0)
            state = 3;
        else if (state == 2 && *s == '}') {
            /* a residual block's closing row, "} + input, relu": the addition's box */
            if (n_heads == 0 || c->n == AR_MAX_LAYERS)
                return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: '}' without a block", path,
                                      line_no);
            arch_layer *l = &c->l[c->n++];
            int head = heads[--n_heads];
            snprintf(l->text, sizeof l->text, "%s", trim(s + 1));
            snprintf(l->shape, sizeof l->shape, "%s", c->l[head].shape);
            l->params[0] = '\0';
            l->depth = c->l[head].depth;
            l->skip_from = head;
        } else if (state == 2 && *s) {
            char *close = strrchr(s, ')'), *open = NULL;
            for (char *q = close; close && q >= s; q--)
                if (*q == '(') {
                    open = q;
                    break;
                }
            if (!close || !open || open == s)
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s:%d: expected 'layer  (output shape)  params'", path,
                                      line_no);
            if (c->n == AR_MAX_LAYERS)
                return loom_error_set(err, LOOM_ERR_FORMAT, "%s: more than %d layers", path,
                                      AR_MAX_LAYERS);
            arch_layer *l = &c->l[c->n++];
            char *params = trim(close + 1);
            close[1] = '\0';
            snprintf(l->shape, sizeof l->shape, "%s", open);
            *open = '\0';
            snprintf(l->text, sizeof l->text, "%s", trim(s));
            snprintf(l->params, sizeof l->params, "%s", strcmp(params, "0") ? params : "");
            l->depth = n_heads;
            l->skip_from = -1;
            if (strncmp(l->text, "residual", 8) == 0 && l->text[strlen(l->text) - 1] == '{') {
                if (n_heads == AR_MAX_DEPTH)
                    return loom_error_set(err, LOOM_ERR_FORMAT,
                                          "%s:%d: residual blocks nested more than %d deep", path,
                                          line_no, AR_MAX_DEPTH);
                heads[n_heads++] = c->n - 1;
            }
        } else if (state == 3 && strncmp(s, "Total params:", 13) == 0)
            snprintf(total, sizeof total, "%s", trim(s + 13));
        else if (state == 3 && strncmp(s, "Forward FLOPs per image:", 24) == 0) {
            snprintf(flops, sizeof flops, "%s", trim(s + 24));
            char *paren = strchr(flops, '(');
            if (paren)
                *trim(paren) = '\0';
            trim(flops);
        }
        line = eol ? eol + 1 : NULL;
    }
    if (state < 2)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: no layer table (the 'Layer  Output shape  Params' header and "
                              "its rule)",
                              path);
    if (c->n == 0)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: the layer table is empty", path);
    char *end = trim(flops);
    snprintf(c->totals, sizeof c->totals, "%s%s%s%s%s", total[0] ? total : "",
             total[0] ? " parameters" : "", total[0] && end[0] ? " · " : "", end,
             end[0] ? " FLOPs per image (forward)" : "");
    return LOOM_OK;
}

loom_status loom_plot_architecture(const char *src, const char *out, loom_error *err) {
    char path[2048], dir[1024], name[128];
    if (plot_is_dir(src)) {
        plot_path(path, sizeof path, src, "summary.txt");
        snprintf(dir, sizeof dir, "%s", src);
    } else {
        snprintf(path, sizeof path, "%s", src);
        snprintf(dir, sizeof dir, "%s", src);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    char *text = NULL;
    loom_status st = loom_file_read_all(path, &text, NULL, err);
    if (st)
        return st;
    arch_ctx c = {0};
    c.l = calloc(AR_MAX_LAYERS, sizeof *c.l);
    if (!c.l) {
        free(text);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    st = parse_summary(text, path, &c, err);
    free(text);
    if (!st) {
        if (plot_run_config(dir, "model", name, sizeof name))
            snprintf(c.title, sizeof c.title, "Architecture of %s", name);
        else
            snprintf(c.title, sizeof c.title, "Architecture");
        c.n_cols = (c.n + AR_PER_COL - 1) / AR_PER_COL;
        c.per_col = (c.n + c.n_cols - 1) / c.n_cols;
        c.box_h = 44;
        c.gap = 24;
        c.width = 2 * AR_MARGIN + c.n_cols * AR_BOX_W + (c.n_cols - 1) * AR_COL_GAP;
        c.height = AR_TOP + (int)(c.per_col * (c.box_h + c.gap)) + 30;
        st = plot_render(out, c.width, c.height, NULL, draw_arch, &c, err);
    }
    free(c.l);
    return st;
}
