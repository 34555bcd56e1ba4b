/* plot.h - internal pieces shared by the plot files: one figure rendered through PLplot's cairo
 * driver into a temporary file renamed into place (serialised: PLplot keeps global state), the
 * palette, text helpers in page coordinates, and a small CSV table reader. Not installed. */
#ifndef LOOM_PLOT_H
#define LOOM_PLOT_H

#include "loom.h"
#include "../core/core.h"

/* Colour map 0 slots set up for every figure. */
enum {
    PC_BG = 0,     /* white background */
    PC_FG = 1,     /* black: axes, text */
    PC_GRID = 2,   /* light grey grid lines */
    PC_MUTED = 3,  /* mid grey: secondary text */
    PC_WHITE = 4,  /* white text on dark cells */
    PC_SERIES = 5, /* 10 series colours (tab10) */
    PC_BAND = 15,  /* the same 10 colours, translucent, for +-std bands */
    PC_BOX = 25,   /* 8 light fills for the architecture boxes */
    PC_N = 33
};
#define PLOT_N_SERIES 10 /* colours; series 10..19 repeat them dashed */
#define PLOT_MAX_SERIES 20

/* Draws the figure; runs with the figure's stream current and the plot lock held. */
typedef void (*plot_draw_fn)(void *ctx);

/* Renders one figure of width x height pixels to out (".svg": SVG, anything else PNG) through
 * out.tmp.PID renamed into place. cmap1 (may be NULL) is the colour map 1: "gray" or "blues". */
loom_status plot_render(const char *out, int width, int height, const char *cmap1,
                        plot_draw_fn draw, void *ctx, loom_error *err);

/* Text at page coordinates (0..1 both ways) rotated by angle degrees, just 0 left .. 1 right;
 * restores the viewport and window. Escapes PLplot's '#'. */
void plot_page_text(double x, double y, double angle, double just, const char *text);
/* Text in world coordinates of the current window, escaped. */
void plot_text(double x, double y, double just, const char *text);
/* Copies text into buf with PLplot's escape character '#' doubled. */
const char *plot_escape(const char *text, char *buf, size_t n);
/* Filled rectangle in world coordinates in the current colour. */
void plot_rect(double x0, double y0, double x1, double y1);
/* Text size: scale times the base size (capitals PLOT_FONT_PX pixels high) on any page size. */
#define PLOT_FONT_PX 15.0
void plot_font(double scale);
/* Page size in pixels of the current figure. */
void plot_page_size(double *w, double *h);

/* ---- CSV tables: a header row and rows of the same width; fields point into the text ---- */

typedef struct {
    char path[1024]; /* for messages */
    char *text;      /* the file, split in place */
    char **cells;    /* (n_rows + 1, n_cols), row 0 is the header */
    int *lines;      /* (n_rows + 1) line number of each row */
    int n_rows, n_cols;
} plot_csv;

/* Reads path: LOOM_ERR_IO when missing, LOOM_ERR_FORMAT when rows disagree in width, a quote
 * is unbalanced or there is no header. */
loom_status plot_csv_load(plot_csv *t, const char *path, loom_error *err);
void plot_csv_reset(plot_csv *t);
static inline const char *plot_csv_cell(const plot_csv *t, int row, int col) {
    return t->cells[(size_t)(row + 1) * (size_t)t->n_cols + (size_t)col];
}
/* Column index of name, or -1. */
int plot_csv_col(const plot_csv *t, const char *name);
/* The column named name: LOOM_ERR_FORMAT naming the file when it is missing. */
loom_status plot_csv_need(const plot_csv *t, const char *name, int *col, loom_error *err);
/* Parses cell (row, col) as a finite number: LOOM_ERR_FORMAT naming file, line and column. */
loom_status plot_csv_num(const plot_csv *t, int row, int col, double *out, loom_error *err);
/* True when the cell parses as a finite number. */
bool plot_csv_is_num(const plot_csv *t, int row, int col);

/* "dir/name" into buf. */
const char *plot_path(char *buf, size_t n, const char *dir, const char *name);
bool plot_is_dir(const char *path);
bool plot_exists(const char *path);
/* Value of key in dir/config.txt, or NULL when the file or key is missing. */
const char *plot_run_config(const char *dir, const char *key, char *buf, size_t n);

/* Grows *p (an array of elem-byte items, capacity *cap) to hold need items; false when out of
 * memory (then *p is unchanged). */
bool plot_grow(void **p, size_t *cap, size_t need, size_t elem);
/* dir holds a history.csv, or subdirectories that do (fold runs). */
bool plot_has_history(const char *dir);

/* Nice axis range: [lo, hi] padded by frac of the span (at least min_pad). */
void plot_pad_range(double *lo, double *hi, double frac, double min_pad);

/* s cut to at most max bytes (on a UTF-8 character boundary) into buf, "…" marking a cut. */
const char *plot_cut_label(const char *s, int max, char *buf, size_t n);

#endif
