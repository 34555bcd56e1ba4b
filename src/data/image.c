/* image.c - image files in and out, and preprocessing to the Fashion-MNIST convention.
 * Reads PNG (libpng), JPEG (libjpeg-turbo) and PGM/PPM (P2 P3 P5 P6, parsed here) into 8-bit
 * gray or RGB pixels (H, W, C), C = 1 or 3; writes 8-bit PNG. Preprocessing: luma, invert when
 * the border is light, crop to the object, fit into (H, W) with area averaging, centred.
 * Every size in a header is checked against the bytes in the file before anything is allocated. */
#include "../core/core.h"

#include <jerror.h>
#include <jpeglib.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>

#define IMAGE_MAX_SIDE 65535               /* pixels, either side */
#define IMAGE_MAX_PIXELS ((size_t)1 << 26) /* 67 M pixels: a 50-megapixel photo fits */
/* Largest raw-to-file size ratio believed: deflate cannot exceed about 1032:1, and JPEG's best
 * case (flat blocks, long end-of-band runs) stays well below this. */
#define MAX_EXPANSION 2048.0

static const unsigned char png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static loom_image *image_alloc(int W, int H, int C) {
    loom_image *img = calloc(1, sizeof *img);
    if (!img)
        return NULL;
    img->px = malloc((size_t)W * (size_t)H * (size_t)C);
    if (!img->px) {
        free(img);
        return NULL;
    }
    img->W = W;
    img->H = H;
    img->C = C;
    return img;
}

void loom_image_destroy(loom_image *img) {
    if (!img)
        return;
    free(img->px);
    free(img);
}

/* Rejects sizes beyond the limits, or more raw bytes (the pixel data as stored, before any
 * conversion) than a file of file_len bytes can hold. */
static loom_status check_size(const char *path, uint64_t W, uint64_t H, double raw_bytes,
                              size_t file_len, loom_error *err) {
    if (W < 1 || H < 1)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: image has zero size (%llux%llu)", path,
                              (unsigned long long)W, (unsigned long long)H);
    if (W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE || W * H > IMAGE_MAX_PIXELS)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: image of %llux%llu pixels is too large (at most %d per side "
                              "and %zu pixels)",
                              path, (unsigned long long)W, (unsigned long long)H, IMAGE_MAX_SIDE,
                              IMAGE_MAX_PIXELS);
    if (raw_bytes > MAX_EXPANSION * (double)file_len + 65536.0)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: header claims %llux%llu pixels, more than its %zu bytes can "
                              "hold",
                              path, (unsigned long long)W, (unsigned long long)H, file_len);
    return LOOM_OK;
}

/* ---- PGM / PPM ---- */

/* A read position in a netpbm file. */
typedef struct {
    const unsigned char *p, *end;
} pnm_reader;

static bool pnm_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to the end of the line). */
static void pnm_skip(pnm_reader *r) {
    while (r->p < r->end) {
        if (*r->p == '#') {
            while (r->p < r->end && *r->p != '\n')
                r->p++;
        } else if (pnm_space(*r->p)) {
            r->p++;
        } else {
            break;
        }
    }
}

/* Reads a decimal number of at most 9 digits; false when there is none. */
static bool pnm_number(pnm_reader *r, uint32_t *out) {
    pnm_skip(r);
    uint32_t v = 0;
    int n = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        if (++n > 9)
            return false;
        v = v * 10 + (uint32_t)(*r->p++ - '0');
    }
    *out = v;
    return n > 0 && (r->p == r->end || pnm_space(*r->p) || *r->p == '#');
}

static loom_status decode_pnm(const unsigned char *data, size_t len, const char *path,
                              loom_image **out, loom_error *err) {
    char kind = (char)data[1];
    if (kind == '1' || kind == '4')
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: PBM bitmaps (P%c) are not supported; use PGM or PPM", path,
                              kind);
    if (kind != '2' && kind != '3' && kind != '5' && kind != '6')
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unknown netpbm kind 'P%c'", path, kind);
    bool is_ascii = kind == '2' || kind == '3';
    int C = kind == '3' || kind == '6' ? 3 : 1;
    pnm_reader r = {data + 2, data + len};
    uint32_t W, H, maxval;
    if (!pnm_number(&r, &W) || !pnm_number(&r, &H) || !pnm_number(&r, &maxval))
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: bad P%c header: expected width, height and maximum value", path,
                              kind);
    if (maxval < 1 || maxval > 65535)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: maximum value %u is outside 1..65535",
                              path, (unsigned)maxval);
    if (r.p == r.end || !pnm_space(*r.p))
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: no pixel data after the header", path);
    r.p++;                             /* exactly one whitespace byte before binary data */
    size_t bps = maxval > 255 ? 2 : 1; /* bytes per binary sample */
    loom_status st = check_size(path, W, H, (double)W * H * C * bps, len, err);
    if (st)
        return st;
    size_t n = (size_t)W * H * (size_t)C;
    size_t left = (size_t)(r.end - r.p);
    if (!is_ascii && n * bps > left)
        return loom_error_set(
            err, LOOM_ERR_FORMAT,
            "%s: truncated: %ux%u P%c needs %zu bytes of pixels, the file has %zu", path,
            (unsigned)W, (unsigned)H, kind, n * bps, left);
    if (is_ascii && n > (left + 1) / 2) /* each value takes a digit and a separator */
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: truncated: %ux%u P%c needs %zu values, the file has %zu bytes",
                              path, (unsigned)W, (unsigned)H, kind, n, left);
    loom_image *img = image_alloc((int)W, (int)H, C);
    if (!img)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate %ux%u pixels", path,
                              (unsigned)W, (unsigned)H);
    for (size_t i = 0; i < n; i++) {
        uint32_t v;
        if (is_ascii) {
            if (!pnm_number(&r, &v)) {
                loom_image_destroy(img);
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s: pixel value %zu of %zu is missing or not a number", path,
                                      i + 1, n);
            }
        } else if (bps == 2) {
            v = (uint32_t)r.p[0] << 8 | r.p[1];
            r.p += 2;
        } else {
            v = *r.p++;
        }
        if (v > maxval) {
            loom_image_destroy(img);
            return loom_error_set(err, LOOM_ERR_FORMAT,
                                  "%s: pixel value %u exceeds the maximum value %u", path,
                                  (unsigned)v, (unsigned)maxval);
        }
        img->px[i] = (uint8_t)((v * 255u + maxval / 2) / maxval);
    }
    *out = img;
    return LOOM_OK;
}

/* ---- PNG ---- */

/* State of one libpng decode or encode. Fields are only reached through a pointer, so their
 * values survive libpng's longjmp. */
typedef struct {
    png_structp png;
    png_infop info;
    const unsigned char *data; /* decode: the file's bytes */
    size_t len, pos;
    unsigned char *buf; /* decode: rows (H, rowbytes); encode: the growing file */
    size_t cap;
    png_bytep *rows; /* (H) row pointers */
    const char *path;
    loom_image *img;
    loom_error *err;
    loom_status status; /* the first error, LOOM_OK until then */
} png_job;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_job *j = png_get_error_ptr(png);
    if (!j->status) /* a message set by our own checks wins */
        j->status = loom_error_set(j->err, j->data ? LOOM_ERR_FORMAT : LOOM_ERR_IO, "%s: %s: %s",
                                   j->path, j->data ? "bad PNG" : "cannot write PNG", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png, (void)msg; /* the library never prints */
}

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos)
        png_error(png, "file is truncated");
    memcpy(out, j->data + j->pos, n);
    j->pos += n;
}

/* The libpng calls of a decode; returns false after a libpng error (message in j->err). */
static bool png_decode_run(png_job *j) {
    if (setjmp(png_jmpbuf(j->png)))
        return false;
    png_set_read_fn(j->png, j, png_read_mem);
    png_set_user_limits(j->png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_read_info(j->png, j->info);
    png_uint_32 W = png_get_image_width(j->png, j->info);
    png_uint_32 H = png_get_image_height(j->png, j->info);
    int depth = png_get_bit_depth(j->png, j->info);
    int type = png_get_color_type(j->png, j->info);
    int n_in = png_get_channels(j->png, j->info);
    /* the compressed rows inflate to H (1 + ceil(W n_in depth / 8)) bytes */
    double raw = (double)H * (1.0 + ceil((double)W * n_in * depth / 8.0));
    j->status = check_size(j->path, W, H, raw, j->len, j->err);
    if (j->status)
        png_error(j->png, "too large");
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    if (png_get_valid(j->png, j->info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(j->png);
    if (depth == 16)
        png_set_scale_16(j->png);
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    int n_ch = png_get_channels(j->png, j->info); /* 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    j->buf = malloc(rowbytes * H);
    j->rows = malloc(sizeof *j->rows * H);
    int C = n_ch <= 2 ? 1 : 3;
    j->img = image_alloc((int)W, (int)H, C);
    if (!j->buf || !j->rows || !j->img) {
        j->status = loom_error_set(j->err, LOOM_ERR_NOMEM, "%s: cannot allocate %ux%u pixels",
                                   j->path, (unsigned)W, (unsigned)H);
        png_error(j->png, "out of memory");
    }
    for (png_uint_32 y = 0; y < H; y++)
        j->rows[y] = j->buf + rowbytes * y;
    png_read_image(j->png, j->rows);
    /* alpha: composite on white, v' = (v a + 255 (255 - a)) / 255 */
    bool has_alpha = n_ch == 2 || n_ch == 4;
    for (png_uint_32 y = 0; y < H; y++) {
        const unsigned char *s = j->rows[y];
        uint8_t *d = j->img->px + (size_t)y * W * C;
        for (png_uint_32 x = 0; x < W; x++, s += n_ch, d += C) {
            unsigned a = has_alpha ? s[n_ch - 1] : 255;
            for (int c = 0; c < C; c++)
                d[c] = (uint8_t)((s[c] * a + 255u * (255u - a) + 127u) / 255u);
        }
    }
    return true;
}

static loom_status decode_png(const unsigned char *data, size_t len, const char *path,
                              loom_image **out, loom_error *err) {
    png_job j = {.data = data, .len = len, .path = path, .err = err};
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    if (j.png)
        j.info = png_create_info_struct(j.png);
    if (!j.png || !j.info) {
        png_destroy_read_struct(j.png ? &j.png : NULL, NULL, NULL);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot start the PNG decoder", path);
    }
    bool is_ok = png_decode_run(&j);
    png_destroy_read_struct(&j.png, &j.info, NULL);
    free(j.buf);
    free(j.rows);
    if (!is_ok) {
        loom_image_destroy(j.img);
        return j.status ? j.status : LOOM_ERR_FORMAT;
    }
    *out = j.img;
    return LOOM_OK;
}

/* ---- JPEG ---- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    bool is_truncated; /* libjpeg only warns when the data ends early */
} jpeg_errors;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    longjmp(e->jump, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        ((jpeg_errors *)cinfo->err)->is_truncated = true;
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_errors jerr;
    const unsigned char *data;
    size_t len;
    const char *path;
    loom_image *img;
    unsigned char *row; /* (W, components) one scanline as decoded */
    loom_error *err;
    loom_status status; /* the first error, LOOM_OK until then */
    int orientation;    /* EXIF orientation 1..8 */
} jpeg_job;

/* EXIF orientation (1..8) from an APP1 "Exif" marker: a TIFF header (byte order "II" or "MM",
 * 42, offset of IFD0), then IFD0's 12-byte entries; tag 0x0112 holds the orientation as a
 * SHORT. 1 (as stored) when absent or unreadable. */
static int exif_orientation(jpeg_saved_marker_ptr mk) {
    for (; mk; mk = mk->next) {
        if (mk->marker != JPEG_APP0 + 1 || mk->data_length < 6 + 8 ||
            memcmp(mk->data, "Exif\0\0", 6) != 0)
            continue;
        const unsigned char *t = mk->data + 6; /* the TIFF data */
        size_t n = mk->data_length - 6;
        bool is_le = t[0] == 'I' && t[1] == 'I';
        if (!is_le && !(t[0] == 'M' && t[1] == 'M'))
            return 1;
#define U16(p) (is_le ? (unsigned)(p)[0] | (unsigned)(p)[1] << 8 : (unsigned)(p)[0] << 8 | (p)[1])
        uint32_t ifd = is_le ? (uint32_t)U16(t + 4) | (uint32_t)U16(t + 6) << 16
                             : (uint32_t)U16(t + 4) << 16 | U16(t + 6);
        if (ifd > n - 2)
            return 1;
        unsigned count = U16(t + ifd);
        for (unsigned i = 0; i < count; i++) {
            size_t e = ifd + 2 + 12 * (size_t)i;
            if (e + 12 > n)
                break;
            if (U16(t + e) == 0x0112) {
                unsigned v = U16(t + e + 8);
                return v >= 1 && v <= 8 ? (int)v : 1;
            }
        }
#undef U16
        return 1;
    }
    return 1;
}

/* Turns img as stored into img as meant to be seen, for EXIF orientation o: 2 mirrored, 3
 * rotated 180, 4 flipped, 5 transposed, 6 rotated 90 clockwise, 7 transversed, 8 rotated 90
 * counter-clockwise. Returns the new image (img is freed) or NULL (out of memory; img kept). */
static loom_image *apply_orientation(loom_image *img, int o) {
    int W = img->W, H = img->H, C = img->C;
    bool is_swap = o >= 5; /* the sides exchange */
    loom_image *out = image_alloc(is_swap ? H : W, is_swap ? W : H, C);
    if (!out)
        return NULL;
    for (int y2 = 0; y2 < out->H; y2++)
        for (int x2 = 0; x2 < out->W; x2++) {
            int x = x2, y = y2; /* the stored pixel shown at (x2, y2) */
            switch (o) {
            case 2: x = W - 1 - x2; break;
            case 3: x = W - 1 - x2, y = H - 1 - y2; break;
            case 4: y = H - 1 - y2; break;
            case 5: x = y2, y = x2; break;
            case 6: x = y2, y = H - 1 - x2; break;
            case 7: x = W - 1 - y2, y = H - 1 - x2; break;
            case 8: x = W - 1 - y2, y = x2; break;
            default: break;
            }
            memcpy(out->px + ((size_t)y2 * out->W + x2) * C, img->px + ((size_t)y * W + x) * C,
                   (size_t)C);
        }
    loom_image_destroy(img);
    return out;
}

/* The libjpeg calls of a decode; returns false after an error (message in j->err). */
static bool jpeg_decode_run(jpeg_job *j) {
    if (setjmp(j->jerr.jump)) {
        if (!j->status) {
            char msg[JMSG_LENGTH_MAX];
            j->cinfo.err->format_message((j_common_ptr)&j->cinfo, msg);
            j->status = loom_error_set(j->err, LOOM_ERR_FORMAT, "%s: bad JPEG: %s", j->path, msg);
        }
        return false;
    }
    jpeg_create_decompress(&j->cinfo);
    jpeg_mem_src(&j->cinfo, j->data, (unsigned long)j->len);
    jpeg_save_markers(&j->cinfo, JPEG_APP0 + 1, 0xffff); /* EXIF */
    jpeg_read_header(&j->cinfo, TRUE);
    J_COLOR_SPACE cs = j->cinfo.jpeg_color_space;
    bool is_cmyk = cs == JCS_CMYK || cs == JCS_YCCK;
    j->cinfo.out_color_space = is_cmyk                        ? JCS_CMYK
                               : j->cinfo.num_components == 1 ? JCS_GRAYSCALE
                                                              : JCS_RGB;
    double raw = (double)j->cinfo.image_width * j->cinfo.image_height * j->cinfo.num_components;
    j->status =
        check_size(j->path, j->cinfo.image_width, j->cinfo.image_height, raw, j->len, j->err);
    if (j->status)
        longjmp(j->jerr.jump, 1);
    jpeg_start_decompress(&j->cinfo);
    int W = (int)j->cinfo.output_width, H = (int)j->cinfo.output_height;
    int n_in = j->cinfo.output_components, C = n_in == 1 ? 1 : 3;
    j->img = image_alloc(W, H, C);
    j->row = malloc((size_t)W * (size_t)n_in);
    if (!j->img || !j->row) {
        j->status = loom_error_set(j->err, LOOM_ERR_NOMEM, "%s: cannot allocate %dx%d pixels",
                                   j->path, W, H);
        longjmp(j->jerr.jump, 1);
    }
    while (j->cinfo.output_scanline < j->cinfo.output_height) {
        uint8_t *d = j->img->px + (size_t)j->cinfo.output_scanline * W * C;
        JSAMPROW rows[1] = {j->row};
        jpeg_read_scanlines(&j->cinfo, rows, 1);
        const unsigned char *s = j->row;
        if (!is_cmyk) {
            memcpy(d, s, (size_t)W * C);
            continue;
        }
        /* Adobe CMYK is stored inverted: R = C K / 255 with both already inverted */
        for (int x = 0; x < W; x++, s += 4, d += 3)
            for (int c = 0; c < 3; c++)
                d[c] = (uint8_t)((s[c] * s[3] + 127u) / 255u);
    }
    j->orientation = exif_orientation(j->cinfo.marker_list);
    jpeg_finish_decompress(&j->cinfo);
    if (j->jerr.is_truncated) {
        j->status =
            loom_error_set(j->err, LOOM_ERR_FORMAT, "%s: bad JPEG: the file is truncated", j->path);
        return false;
    }
    return true;
}

static loom_status decode_jpeg(const unsigned char *data, size_t len, const char *path,
                               loom_image **out, loom_error *err) {
    jpeg_job *j = calloc(1, sizeof *j);
    if (!j)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot start the JPEG decoder", path);
    j->data = data;
    j->len = len;
    j->path = path;
    j->err = err;
    j->cinfo.err = jpeg_std_error(&j->jerr.pub);
    j->jerr.pub.error_exit = jpeg_on_error;
    j->jerr.pub.emit_message = jpeg_on_message;
    bool is_ok = jpeg_decode_run(j);
    jpeg_destroy_decompress(&j->cinfo);
    loom_status st = LOOM_OK;
    if (is_ok && j->orientation > 1) {
        loom_image *turned = apply_orientation(j->img, j->orientation);
        if (turned)
            j->img = turned;
        else
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    if (is_ok && !st) {
        *out = j->img;
    } else {
        loom_image_destroy(j->img);
        st = st ? st : j->status ? j->status : LOOM_ERR_FORMAT;
    }
    free(j->row);
    free(j);
    return st;
}

/* ---- loading ---- */

loom_status loom_image_load(loom_image **out, const char *path, loom_error *err) {
    if (!out || !path)
        return loom_error_set(err, LOOM_ERR_ARG, "image load: NULL argument");
    *out = NULL;
    char *file = NULL;
    size_t len = 0;
    loom_status st = loom_file_read_all(path, &file, &len, err);
    if (st)
        return st;
    const unsigned char *d = (const unsigned char *)file;
    if (len == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: empty file, expected an image", path);
    else if (len >= 8 && memcmp(d, png_magic, 8) == 0)
        st = decode_png(d, len, path, out, err);
    else if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        st = decode_jpeg(d, len, path, out, err);
    else if (len >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6')
        st = decode_pnm(d, len, path, out, err);
    else
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: not a PNG, JPEG, PGM or PPM image (unknown first bytes)", path);
    free(file);
    return st;
}

/* ---- writing PNG ---- */

static void png_write_mem(png_structp png, png_bytep data, size_t n) {
    png_job *j = png_get_io_ptr(png);
    if (n > j->cap - j->len) {
        size_t cap = 2 * (j->cap + n);
        unsigned char *b = realloc(j->buf, cap);
        if (!b) {
            j->status = loom_error_set(j->err, LOOM_ERR_NOMEM, "%s: out of memory", j->path);
            png_error(png, "out of memory");
        }
        j->buf = b;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, data, n);
    j->len += n;
}

static void png_flush_mem(png_structp png) { (void)png; }

static bool png_encode_run(png_job *j, const uint8_t *px, int W, int H, int C) {
    if (setjmp(png_jmpbuf(j->png)))
        return false;
    png_set_write_fn(j->png, j, png_write_mem, png_flush_mem);
    png_set_IHDR(j->png, j->info, (png_uint_32)W, (png_uint_32)H, 8,
                 C == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    for (int y = 0; y < H; y++)
        png_write_row(j->png, px + (size_t)y * W * C);
    png_write_end(j->png, NULL);
    return true;
}

loom_status loom_image_save_png(const char *path, const uint8_t *px, int W, int H, int C,
                                loom_error *err) {
    if (!path || !px || W < 1 || H < 1 || W > IMAGE_MAX_SIDE || H > IMAGE_MAX_SIDE ||
        (C != 1 && C != 3))
        return loom_error_set(err, LOOM_ERR_ARG, "%s: cannot write a %dx%dx%d image as PNG",
                              path ? path : "(null)", W, H, C);
    png_job j = {.path = path, .err = err};
    j.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    if (j.png)
        j.info = png_create_info_struct(j.png);
    if (!j.png || !j.info) {
        png_destroy_write_struct(j.png ? &j.png : NULL, NULL);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot start the PNG encoder", path);
    }
    bool is_ok = png_encode_run(&j, px, W, H, C);
    png_destroy_write_struct(&j.png, &j.info);
    loom_status st = is_ok ? loom_file_write_atomic(path, j.buf, j.len, err)
                           : (j.status ? j.status : LOOM_ERR_NOMEM);
    free(j.buf);
    return st;
}

/* ---- preprocessing ---- */

void loom_preprocess_config_init(loom_preprocess_config *c) {
    *c = (loom_preprocess_config){.invert = LOOM_INVERT_AUTO,
                                  .is_crop = true,
                                  .is_fit = true,
                                  .crop_threshold = 0.05f,
                                  .gray = LOOM_GRAY_LUMA};
}

bool loom_gray_mode_parse(const char *s, loom_gray_mode *out) {
    static const char *const names[][2] = {
        {"luma", "luma"}, {"mean", "mean"}, {"red", "r"}, {"green", "g"}, {"blue", "b"}};
    for (int i = 0; i < 5; i++)
        if (s && (strcmp(s, names[i][0]) == 0 || strcmp(s, names[i][1]) == 0)) {
            *out = (loom_gray_mode)i;
            return true;
        }
    return false;
}

/* Area-averaging resampling of n_in samples src[0], src[step_in], ... onto n_out samples: output
 * j is the mean of the source over [j r, (j + 1) r), r = n_in / n_out, partial pixels weighted
 * by their overlap (a box filter when shrinking; nearest with blended edges when enlarging). */
static void resample_line(const float *src, size_t step_in, int n_in, float *dst, size_t step_out,
                          int n_out) {
    double r = (double)n_in / n_out;
    for (int j = 0; j < n_out; j++) {
        double lo = j * r, hi = (j + 1) * r, sum = 0;
        int k0 = (int)floor(lo), k1 = (int)ceil(hi);
        if (k1 > n_in)
            k1 = n_in;
        for (int k = k0; k < k1; k++) {
            double a = k < lo ? lo : k, b = k + 1 > hi ? hi : k + 1;
            sum += (b - a) * src[(size_t)k * step_in];
        }
        dst[(size_t)j * step_out] = (float)(sum / r);
    }
}

/* The pixels of the outer ring of g (H, W), bw = min(W, H) / 32 (at least 1) wide: their mean
 * (for the inversion decision) and median (the background level: robust to a garment that
 * touches the edge). */
static void border_stats(const float *g, int W, int H, double *mean, double *median) {
    int bw = (W < H ? W : H) / 32;
    if (bw < 1)
        bw = 1;
    double sum = 0;
    long n = 0, hist[256] = {0}; /* values rounded to 0..255 */
    for (int y = 0; y < H; y++) {
        bool is_edge_row = y < bw || y >= H - bw;
        for (int x = 0; x < W; x++)
            if (is_edge_row || x < bw || x >= W - bw) {
                float v = g[(size_t)y * W + x];
                sum += v;
                hist[v <= 0 ? 0 : v >= 255 ? 255 : lrintf(v)]++;
                n++;
            }
    }
    *mean = sum / (double)n; /* n >= 1: the ring holds at least the first row */
    long half = (n + 1) / 2, seen = 0;
    int k = 0;
    while (k < 255 && (seen += hist[k]) < half)
        k++;
    *median = k;
}

loom_status loom_image_preprocess(const loom_image *img, const loom_preprocess_config *cfg, int H,
                                  int W, uint8_t *out, loom_preprocess_info *info,
                                  loom_error *err) {
    if (!img || !img->px || !cfg || !out || img->W < 1 || img->H < 1 ||
        (img->C != 1 && img->C != 3) || H < 1 || W < 1 || cfg->gray < LOOM_GRAY_LUMA ||
        cfg->gray > LOOM_GRAY_BLUE)
        return loom_error_set(err, LOOM_ERR_ARG, "preprocess: bad image or output size");
    int Wi = img->W, Hi = img->H;
    size_t n = (size_t)Wi * (size_t)Hi;
    float *g = malloc(sizeof(float) * n); /* (Hi, Wi) gray 0..255 */
    if (!g)
        return loom_error_set(err, LOOM_ERR_NOMEM, "preprocess: cannot allocate %dx%d pixels", Wi,
                              Hi);
    /* one channel: luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), the mean, or R, G or B */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = img->px + i * (size_t)img->C;
        if (img->C == 1)
            g[i] = p[0];
        else if (cfg->gray == LOOM_GRAY_LUMA)
            g[i] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
        else if (cfg->gray == LOOM_GRAY_MEAN)
            g[i] = ((float)p[0] + p[1] + p[2]) / 3.0f;
        else
            g[i] = p[cfg->gray - LOOM_GRAY_RED];
    }
    /* invert when the background (the border) is light: the dataset has light garments on black */
    double border, bg; /* the border's mean, the background level */
    border_stats(g, Wi, Hi, &border, &bg);
    bool is_inverted =
        cfg->invert == LOOM_INVERT_ALWAYS || (cfg->invert == LOOM_INVERT_AUTO && border > 127.0);
    if (is_inverted) {
        for (size_t i = 0; i < n; i++)
            g[i] = 255.0f - g[i];
        bg = 255.0 - bg;
    }
    /* crop: the bounding box of the pixels above bg + threshold * (max - bg) */
    int x0 = 0, y0 = 0, x1 = Wi, y1 = Hi; /* [x0, x1) x [y0, y1) */
    if (cfg->is_crop) {
        float gmax = 0;
        for (size_t i = 0; i < n; i++)
            gmax = g[i] > gmax ? g[i] : gmax;
        if (gmax - bg > 1.0) {
            float t = (float)(bg + cfg->crop_threshold * (gmax - bg));
            int bx0 = Wi, by0 = Hi, bx1 = -1, by1 = -1;
            for (int y = 0; y < Hi; y++)
                for (int x = 0; x < Wi; x++)
                    if (g[(size_t)y * Wi + x] > t) {
                        bx0 = x < bx0 ? x : bx0;
                        bx1 = x > bx1 ? x : bx1;
                        by0 = y < by0 ? y : by0;
                        by1 = y > by1 ? y : by1;
                    }
            if (bx1 >= 0) {
                x0 = bx0, x1 = bx1 + 1, y0 = by0, y1 = by1 + 1;
            }
        }
    }
    int cw = x1 - x0, ch = y1 - y0;
    /* fit: scale the longer side to the frame, keep the aspect ratio, centre; else stretch */
    int tw = W, th = H;
    if (cfg->is_fit) {
        double s = fmin((double)W / cw, (double)H / ch);
        tw = (int)lround(cw * s);
        th = (int)lround(ch * s);
        tw = tw < 1 ? 1 : tw > W ? W : tw;
        th = th < 1 ? 1 : th > H ? H : th;
    }
    /* centred; an odd margin puts its extra pixel left or top, as the dataset's images do */
    int ox = (W - tw + 1) / 2, oy = (H - th + 1) / 2;
    float *row = malloc(sizeof(float) * (size_t)ch * (size_t)tw); /* (ch, tw) */
    float *fit = malloc(sizeof(float) * (size_t)th * (size_t)tw); /* (th, tw) */
    if (!row || !fit) {
        free(g);
        free(row);
        free(fit);
        return loom_error_set(err, LOOM_ERR_NOMEM, "preprocess: out of memory");
    }
    for (int y = 0; y < ch; y++)
        resample_line(g + (size_t)(y0 + y) * Wi + x0, 1, cw, row + (size_t)y * tw, 1, tw);
    for (int x = 0; x < tw; x++)
        resample_line(row + x, (size_t)tw, ch, fit + x, (size_t)tw, th);
    memset(out, 0, (size_t)W * (size_t)H);
    for (int y = 0; y < th; y++)
        for (int x = 0; x < tw; x++) {
            float v = fit[(size_t)y * tw + x];
            out[(size_t)(oy + y) * W + ox + x] = (uint8_t)lrintf(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    if (info)
        *info = (loom_preprocess_info){is_inverted, x0, y0, cw, ch};
    free(g);
    free(row);
    free(fit);
    return LOOM_OK;
}
