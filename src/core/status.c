/* status.c - status codes, error records, small shared utilities (time, aligned alloc, CRC). */
#include "core.h"

#include <stdarg.h>
#include <time.h>
#include <zlib.h>

const char *loom_status_str(loom_status s) {
    switch (s) {
    case LOOM_OK: return "ok";
    case LOOM_ERR_IO: return "I/O error";
    case LOOM_ERR_FORMAT: return "format error";
    case LOOM_ERR_SHAPE: return "shape error";
    case LOOM_ERR_NOMEM: return "out of memory";
    case LOOM_ERR_ARG: return "bad argument";
    case LOOM_ERR_NUMERIC: return "numerical error";
    case LOOM_ERR_INTERRUPTED: return "interrupted";
    case LOOM_ERR_EXISTS: return "exists";
    }
    return "unknown status";
}

loom_status loom_error_set(loom_error *err, loom_status s, const char *fmt, ...) {
    if (err) {
        err->status = s;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        for (char *p = err->msg; *p; p++)
            if (*p == '\n')
                *p = ' ';
    }
    return s;
}

void float_text(float v, char *buf, size_t n) {
    snprintf(buf, n, "%g", (double)v);
    if (strtof(buf, NULL) != v)
        snprintf(buf, n, "%.9g", (double)v);
}

uint32_t loom_crc32(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = data;
    while (len > 0) { /* zlib takes uInt lengths */
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = (uint32_t)crc32(crc, p, chunk);
        p += chunk;
        len -= chunk;
    }
    return crc;
}

double loom_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void *loom_xalloc(size_t bytes) {
    if (bytes == 0)
        bytes = 64;
    void *p = aligned_alloc(64, arena_round(bytes));
    if (p)
        memset(p, 0, arena_round(bytes));
    return p;
}

void shape_format(loom_shape s, char *buf, size_t n) {
    if (s.rank == 1)
        snprintf(buf, n, "(%d)", s.d[0]);
    else if (s.rank == 2)
        snprintf(buf, n, "(%d, %d)", s.d[0], s.d[1]);
    else
        snprintf(buf, n, "(%d, %d, %d)", s.d[0], s.d[1], s.d[2]);
}

loom_status arena_init(arena *a, size_t bytes, loom_error *err) {
    a->size = arena_round(bytes);
    a->used = 0;
    a->base = loom_xalloc(a->size);
    if (!a->base)
        return loom_error_set(err, LOOM_ERR_NOMEM, "activation arena: cannot allocate %zu MiB",
                              a->size >> 20);
    return LOOM_OK;
}

void arena_free(arena *a) {
    free(a->base);
    a->base = NULL;
    a->size = a->used = 0;
}

float *arena_floats(arena *a, size_t n) {
    size_t bytes = arena_round(n * sizeof(float));
    if (a->used + bytes > a->size)
        return NULL;
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    return p;
}

void log_printf(loom_log_fn fn, void *user, loom_log_kind kind, const char *fmt, ...) {
    if (!fn)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fn(user, kind, line);
}
