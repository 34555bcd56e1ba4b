/* plot_util.c - the plots' shared machinery, through PLplot's cairo driver (pngcairo,
 * svgcairo): the figure lock, palette, temp file + rename, PLplot errors turned into statuses,
 * text and shapes, the CSV reader and the run-directory paths. The plots are in plot_curves.c,
 * plot_confusion.c, plot_images.c, plot_arch.c and plot_trials.c; plot_run.c calls them. */
#include "plot.h"
#include "../core/core.h"
#include "../run/rundir.h"

#include <errno.h>
#include <math.h>
#include <plplot.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- figures --------------------------------------------------------------------------------- */

/* PLplot keeps global state (streams, handlers, the driver table): one figure at a time. */
static pthread_mutex_t plot_lock = PTHREAD_MUTEX_INITIALIZER;
static jmp_buf plot_jmp;
static char plot_msg[256];
static bool plot_has_msg;
static PLINT plot_errcode;     /* plsError: plabort stores here instead of printing */
static char plot_errmsg[1024]; /* PLplot copies up to 160 characters */

/* plabort: remember the first message instead of printing it. */
static void handle_plabort(PLCHAR_VECTOR msg) {
    if (!plot_has_msg) {
        snprintf(plot_msg, sizeof plot_msg, "%s", msg ? msg : "unknown error");
        plot_has_msg = true;
    }
}

/* plexit would print and exit(): jump back into plot_render instead. */
static int handle_plexit(PLCHAR_VECTOR msg) {
    handle_plabort(msg);
    longjmp(plot_jmp, 1);
}

static bool has_device(const char *name) {
    static PLCHAR_VECTOR menu[256], devs[256];
    PLCHAR_VECTOR *pm = menu, *pd = devs;
    int n = 256;
    plgDevs(&pm, &pd, &n);
    for (int i = 0; i < n; i++)
        if (pd[i] && strcmp(pd[i], name) == 0)
            return true;
    return false;
}

static void set_palette(void) {
    static const int series[PLOT_N_SERIES][3] = {
        {31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
    static const int boxes[8][3] = {{198, 219, 239}, {253, 208, 162}, {199, 233, 192},
                                    {218, 218, 235}, {252, 187, 161}, {240, 240, 240},
                                    {255, 237, 160}, {204, 236, 230}};
    plscmap0n(PC_N);
    plscol0(PC_BG, 255, 255, 255);
    plscol0(PC_FG, 0, 0, 0);
    plscol0(PC_GRID, 225, 225, 225);
    plscol0(PC_MUTED, 110, 110, 110);
    plscol0(PC_WHITE, 255, 255, 255);
    for (int i = 0; i < PLOT_N_SERIES; i++) {
        plscol0(PC_SERIES + i, series[i][0], series[i][1], series[i][2]);
        plscol0a(PC_BAND + i, series[i][0], series[i][1], series[i][2], 0.2);
    }
    for (int i = 0; i < 8; i++)
        plscol0(PC_BOX + i, boxes[i][0], boxes[i][1], boxes[i][2]);
}

static void set_cmap1(const char *name) {
    if (strcmp(name, "gray") == 0) {
        PLINT v[256];
        for (int i = 0; i < 256; i++)
            v[i] = i;
        plscmap1(v, v, v, 256);
        return;
    }
    /* "blues": white to dark blue, as matplotlib's Blues */
    static const PLFLT pos[5] = {0.0, 0.25, 0.5, 0.75, 1.0};
    static const PLFLT r[5] = {247 / 255.0, 198 / 255.0, 107 / 255.0, 33 / 255.0, 8 / 255.0};
    static const PLFLT g[5] = {251 / 255.0, 219 / 255.0, 174 / 255.0, 113 / 255.0, 48 / 255.0};
    static const PLFLT b[5] = {255 / 255.0, 239 / 255.0, 214 / 255.0, 181 / 255.0, 107 / 255.0};
    plscmap1n(256);
    plscmap1l(1, 5, pos, r, g, b, NULL);
}

loom_status plot_render(const char *out, int width, int height, const char *cmap1,
                        plot_draw_fn draw, void *ctx, loom_error *err) {
    const char *dot = strrchr(out, '.');
    bool is_svg = dot && strcasecmp(dot, ".svg") == 0;
    const char *device = is_svg ? "svgcairo" : "pngcairo";
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid()) >= (int)sizeof tmp)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: path too long", out);

    pthread_mutex_lock(&plot_lock);
    if (!has_device(device)) {
        pthread_mutex_unlock(&plot_lock);
        return loom_error_set(err, LOOM_ERR_IO,
                              "%s: PLplot has no '%s' device: install plplot-driver-cairo", out,
                              device);
    }
    /* Create the file ourselves first: PLplot asks on stdin for another name when it cannot. */
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        pthread_mutex_unlock(&plot_lock);
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", out, strerror(e));
    }
    fclose(f);

    PLINT prev = 0;
    plgstrm(&prev);
    plot_has_msg = false;
    plsexit(handle_plexit);
    plsabort(handle_plabort);
    volatile bool is_exited = false;
    if (setjmp(plot_jmp) == 0) {
        PLINT strm = 0;
        plmkstrm(&strm); /* a fresh stream: never disturbs a caller's own PLplot stream */
        plot_errcode = 0;
        plot_errmsg[0] = '\0';
        plsError(&plot_errcode, plot_errmsg);
        plsdev(device);
        plsfnam(tmp);
        plspage(0.0, 0.0, width, height, 0, 0);
        set_palette();
        plinit();
        if (cmap1)
            set_cmap1(cmap1);
        pladv(0);
        plot_font(1.0);
        draw(ctx);
        plend1();
    } else {
        is_exited = true;
        plend1();
    }
    plsstrm(prev);
    plsexit(NULL);
    plsabort(NULL);
    bool has_msg = plot_has_msg;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", plot_msg);
    pthread_mutex_unlock(&plot_lock);

    struct stat st;
    if (is_exited || has_msg) {
        unlink(tmp);
        return loom_error_set(err, LOOM_ERR_IO, "%s: PLplot: %s", out, msg);
    }
    if (stat(tmp, &st) != 0 || st.st_size == 0) {
        unlink(tmp);
        return loom_error_set(err, LOOM_ERR_IO, "%s: PLplot wrote nothing", out);
    }
    if (rename(tmp, out) != 0) {
        int e = errno;
        unlink(tmp);
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot rename into place: %s", out,
                              strerror(e));
    }
    return LOOM_OK;
}

/* ---- text and shapes ------------------------------------------------------------------------- */

const char *plot_escape(const char *text, char *buf, size_t n) {
    size_t j = 0;
    for (const char *p = text; *p && j + 2 < n; p++) {
        if (*p == '#')
            buf[j++] = '#';
        buf[j++] = *p;
    }
    buf[j] = '\0';
    return buf;
}

void plot_font(double scale) {
    /* the cairo driver's default character height grows with the page (in proportion to its
     * width plus height); scale it so that capitals are PLOT_FONT_PX pixels on every figure */
    PLFLT def, ht, x0, x1, y0, y1;
    plgchr(&def, &ht);
    plgspa(&x0, &x1, &y0, &y1);
    double w, h;
    plot_page_size(&w, &h);
    double px_per_mm = x1 > x0 ? w / (x1 - x0) : 72.0 / 25.4;
    if (def > 0)
        plschr(0.0, scale * PLOT_FONT_PX / (def * px_per_mm));
}

void plot_page_size(double *w, double *h) {
    PLFLT xp, yp;
    PLINT xl, yl, xo, yo;
    plgpage(&xp, &yp, &xl, &yl, &xo, &yo);
    *w = xl > 0 ? xl : 1;
    *h = yl > 0 ? yl : 1;
}

void plot_page_text(double x, double y, double angle, double just, const char *text) {
    PLFLT vx0, vx1, vy0, vy1, wx0, wx1, wy0, wy1;
    plgvpd(&vx0, &vx1, &vy0, &vy1);
    plgvpw(&wx0, &wx1, &wy0, &wy1);
    plvpor(0.0, 1.0, 0.0, 1.0);
    plwind(0.0, 1.0, 0.0, 1.0);
    double w, h;
    plot_page_size(&w, &h);
    double a = angle * M_PI / 180.0;
    char buf[1024];
    plptex(x, y, cos(a) / w, sin(a) / h, just, plot_escape(text, buf, sizeof buf));
    if (vx1 > vx0 && vy1 > vy0 && wx1 != wx0 && wy1 != wy0) { /* none set yet: leave the page */
        plvpor(vx0, vx1, vy0, vy1);
        plwind(wx0, wx1, wy0, wy1);
    }
}

void plot_text(double x, double y, double just, const char *text) {
    char buf[1024];
    plptex(x, y, 1.0, 0.0, just, plot_escape(text, buf, sizeof buf));
}

void plot_rect(double x0, double y0, double x1, double y1) {
    PLFLT x[4] = {x0, x1, x1, x0}, y[4] = {y0, y0, y1, y1};
    plfill(4, x, y);
}

void plot_pad_range(double *lo, double *hi, double frac, double min_pad) {
    double pad = (*hi - *lo) * frac;
    if (pad < min_pad)
        pad = min_pad;
    *lo -= pad;
    *hi += pad;
}

/* ---- CSV ------------------------------------------------------------------------------------- */

void plot_csv_reset(plot_csv *t) {
    free(t->text);
    free(t->cells);
    free(t->lines);
    memset(t, 0, sizeof *t);
}

bool plot_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *q = realloc(*p, nc * elem);
    if (!q)
        return false;
    *p = q;
    *cap = nc;
    return true;
}

loom_status plot_csv_load(plot_csv *t, const char *path, loom_error *err) {
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    loom_status st = loom_file_read_all(path, &t->text, NULL, err);
    if (st)
        return st;
    size_t cap_cells = 0, n_cells = 0, cap_lines = 0;
    int n_rows = 0, line = 1;
    char *p = t->text;
    if ((unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF)
        p += 3; /* UTF-8 byte order mark */
    while (*p) {
        if (*p == '\n' || *p == '\r') { /* blank line */
            line += *p == '\n';
            p++;
            continue;
        }
        int row_line = line, n_fields = 0;
        for (;;) {
            char *start = p, *w = p;
            if (*p == '"') {
                p++;
                for (;;) {
                    if (!*p) {
                        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: unterminated quote", path,
                                            row_line);
                        goto fail;
                    }
                    if (*p == '"' && p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    if (*p == '"') {
                        p++;
                        break;
                    }
                    line += *p == '\n';
                    *w++ = *p++;
                }
                if (*p && *p != ',' && *p != '\n' && *p != '\r') {
                    st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: text after a closing quote",
                                        path, line);
                    goto fail;
                }
            } else {
                while (*p && *p != ',' && *p != '\n' && *p != '\r')
                    p++;
                w = p;
            }
            char sep = *p;
            *w = '\0';
            if (!plot_grow((void **)&t->cells, &cap_cells, n_cells + 1, sizeof *t->cells)) {
                st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
                goto fail;
            }
            t->cells[n_cells++] = start;
            n_fields++;
            if (sep == ',') {
                p++;
                continue;
            }
            if (sep == '\r')
                p += p[1] == '\n' ? 2 : 1;
            else if (sep == '\n')
                p++;
            line++;
            break;
        }
        if (n_rows == 0)
            t->n_cols = n_fields;
        else if (n_fields != t->n_cols) {
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: %d fields, but the header has %d",
                                path, row_line, n_fields, t->n_cols);
            goto fail;
        }
        if (!plot_grow((void **)&t->lines, &cap_lines, (size_t)n_rows + 1, sizeof *t->lines)) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
            goto fail;
        }
        t->lines[n_rows++] = row_line;
    }
    if (n_rows == 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: empty file, expected a header line", path);
        goto fail;
    }
    t->n_rows = n_rows - 1;
    return LOOM_OK;
fail:
    plot_csv_reset(t);
    return st;
}

int plot_csv_col(const plot_csv *t, const char *name) {
    for (int c = 0; c < t->n_cols; c++)
        if (strcmp(t->cells[c], name) == 0)
            return c;
    return -1;
}

loom_status plot_csv_need(const plot_csv *t, const char *name, int *col, loom_error *err) {
    *col = plot_csv_col(t, name);
    if (*col < 0)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: no column '%s' in the header", t->path,
                              name);
    return LOOM_OK;
}

static bool parse_num(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s)
        return false;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool plot_csv_is_num(const plot_csv *t, int row, int col) {
    double v;
    return parse_num(plot_csv_cell(t, row, col), &v);
}

loom_status plot_csv_num(const plot_csv *t, int row, int col, double *out, loom_error *err) {
    const char *s = plot_csv_cell(t, row, col);
    if (!parse_num(s, out))
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: column '%s': '%.40s' is not a number",
                              t->path, t->lines[row + 1], t->cells[col], s);
    return LOOM_OK;
}

/* ---- files ----------------------------------------------------------------------------------- */

const char *plot_path(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

bool plot_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool plot_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *plot_run_config(const char *dir, const char *key, char *buf, size_t n) {
    char path[2048], *text = NULL;
    if (loom_file_read_all(plot_path(path, sizeof path, dir, "config.txt"), &text, NULL, NULL))
        return NULL;
    const char *v = loom_config_get(text, key, buf, n);
    free(text);
    return v;
}

const char *plot_cut_label(const char *s, int max, char *buf, size_t n) {
    int len = (int)strlen(s);
    if (len <= max) {
        snprintf(buf, n, "%s", s);
        return buf;
    }
    int cut = max - 1;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    snprintf(buf, n, "%.*s…", cut, s);
    return buf;
}
