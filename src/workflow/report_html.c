/* report_html.c - REPORT.html beside REPORT.md: the same report rendered by cmark-gfm (CommonMark
 * with GitHub's tables), one self-contained page: every picture embedded as a data: URI, the
 * style inline, no link to anything outside the file, so it can be mailed or archived alone. */
#include "../core/core.h"
#include "tune.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

/* Base64 of n bytes into a malloc'd NUL-terminated string (RFC 4648, with padding). */
static char *base64(const unsigned char *p, size_t n) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
    if (!out)
        return NULL;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = digits[v >> 18];
        *o++ = digits[(v >> 12) & 63];
        *o++ = digits[(v >> 6) & 63];
        *o++ = digits[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = digits[v >> 18];
        *o++ = digits[(v >> 12) & 63];
        *o++ = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Replaces every image's relative URL (img/x.png, as REPORT.md writes them) by the picture's
 * bytes as a data: URI. A picture that cannot be read keeps its URL and is counted in
 * *n_missing. */
static loom_status embed_images(cmark_node *doc, const char *dir, int *n_missing, loom_error *err) {
    cmark_iter *it = cmark_iter_new(doc);
    loom_status st = LOOM_OK;
    cmark_event_type ev;
    while (st == LOOM_OK && (ev = cmark_iter_next(it)) != CMARK_EVENT_DONE) {
        cmark_node *n = cmark_iter_get_node(it);
        if (ev != CMARK_EVENT_ENTER || cmark_node_get_type(n) != CMARK_NODE_IMAGE)
            continue;
        const char *url = cmark_node_get_url(n);
        if (!url || strchr(url, ':') || url[0] == '/') /* only the report's own pictures */
            continue;
        char path[2048], *bytes = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", dir, url);
        if (loom_file_read_all(path, &bytes, &len, NULL) != LOOM_OK) {
            (*n_missing)++;
            continue;
        }
        const char *ext = strrchr(url, '.');
        const char *mime = ext && strcmp(ext, ".svg") == 0 ? "image/svg+xml" : "image/png";
        char *b64 = base64((const unsigned char *)bytes, len);
        size_t ulen = b64 ? strlen(b64) + 64 : 0;
        char *data = b64 ? malloc(ulen) : NULL;
        if (data) {
            snprintf(data, ulen, "data:%s;base64,%s", mime, b64);
            cmark_node_set_url(n, data);
        } else {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
        }
        free(data);
        free(b64);
        free(bytes);
    }
    cmark_iter_free(it);
    return st;
}

static const char style[] =
    "body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;"
    "margin:2em auto;padding:0 1em;color:#1b1f24;line-height:1.45}"
    "table{border-collapse:collapse;margin:1em 0;font-size:0.92em}"
    "th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left}"
    "th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}"
    "img{max-width:100%;height:auto;border:1px solid #eaeef2;margin:0.3em 0}"
    "code{background:#f6f8fa;padding:1px 4px;border-radius:3px;font-size:0.9em}"
    "pre{background:#f6f8fa;padding:0.8em;overflow-x:auto}"
    "h1,h2,h3{border-bottom:1px solid #eaeef2;padding-bottom:0.2em}"
    "blockquote{color:#57606a;border-left:4px solid #d0d7de;margin:0;padding:0 1em}";

loom_status report_html_write(const char *md, size_t md_len, const char *dir, const char *title,
                              int *n_missing, loom_error *err) {
    *n_missing = 0;
    cmark_gfm_core_extensions_ensure_registered();
    cmark_parser *p = cmark_parser_new(CMARK_OPT_DEFAULT);
    cmark_syntax_extension *table = cmark_find_syntax_extension("table");
    if (!p || !table) {
        if (p)
            cmark_parser_free(p);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s/REPORT.html: cmark-gfm not usable", dir);
    }
    cmark_parser_attach_syntax_extension(p, table);
    cmark_parser_feed(p, md, md_len);
    cmark_node *doc = cmark_parser_finish(p);
    char *body = NULL, *page = NULL;
    loom_status st = doc ? embed_images(doc, dir, n_missing, err)
                         : loom_error_set(err, LOOM_ERR_NOMEM, "REPORT.html: out of memory");
    if (st == LOOM_OK &&
        !(body = cmark_render_html(doc, CMARK_OPT_DEFAULT, cmark_parser_get_syntax_extensions(p))))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "REPORT.html: out of memory");
    size_t len = body ? strlen(body) + strlen(title) + sizeof style + 256 : 0;
    if (st == LOOM_OK && !(page = malloc(len)))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "REPORT.html: out of memory");
    if (st == LOOM_OK) {
        int n = snprintf(page, len,
                         "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                         "<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n%s</body>\n"
                         "</html>\n",
                         title, style, body);
        char path[2048];
        snprintf(path, sizeof path, "%s/REPORT.html", dir);
        st = loom_file_write_atomic(path, page, (size_t)n, err);
    }
    free(page);
    free(body); /* cmark's default allocator is the C library's */
    if (doc)
        cmark_node_free(doc);
    cmark_parser_free(p);
    return st;
}
