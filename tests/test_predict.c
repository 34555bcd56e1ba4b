/* test_predict.c - prediction: the PGM/PPM, PNG and JPEG readers on small images written here
 * (PNG and JPEG with libpng and libjpeg directly), malformed files (truncated, foreign, zero or
 * huge claimed sizes) as errors, preprocessing to the dataset's convention, the prediction API
 * against loom_model_forward's softmax, two threads on one model, and loom_run_predict. */
#include "check.h"

#include "loom.h"
#include "../src/core/core.h"

#include <cjson/cJSON.h>
#include <jpeglib.h>
#include <png.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static bool write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool is_ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && is_ok;
}

static unsigned char *read_bytes(const char *path, size_t *len) {
    char *buf = NULL;
    loom_error err;
    if (loom_file_read_all(path, &buf, len, &err) != LOOM_OK)
        return NULL;
    return (unsigned char *)buf;
}

/* Loads path and expects status st (and, for errors, a message naming the file). */
static loom_image *load_expect(const char *path, loom_status st) {
    loom_image *img = NULL;
    loom_error err = {0};
    loom_status got = loom_image_load(&img, path, &err);
    CHECK_MSG(got == st, "%s: status %d, expected %d (%s)", path, got, st, err.msg);
    if (st != LOOM_OK) {
        CHECK(img == NULL);
        CHECK_MSG(strstr(err.msg, path) != NULL, "message '%s' does not name %s", err.msg, path);
    }
    return img;
}

/* ---- writers used by the tests ---- */

/* Writes a PNG of rows (H, W * channels) bytes, or 16-bit big-endian samples when depth is 16. */
static bool write_png(const char *path, const unsigned char *px, int W, int H, int depth,
                      int color_type, bool is_interlaced, const png_color *palette, int n_pal) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return false;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, depth, color_type,
                 is_interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, n_pal);
    png_write_info(png, info);
    int channels = color_type == PNG_COLOR_TYPE_RGB          ? 3
                   : color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                   : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                             : 1;
    size_t rowbytes = ((size_t)W * channels * depth + 7) / 8;
    png_bytep *rows = malloc(sizeof *rows * (size_t)H);
    for (int y = 0; y < H; y++)
        rows[y] = (png_bytep)px + rowbytes * y;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f) == 0;
}

/* orientation > 0: an EXIF APP1 marker (big-endian TIFF, one IFD0 entry) giving it. */
static bool write_jpeg(const char *path, const unsigned char *px, int W, int H, int C,
                       int orientation) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)W;
    cinfo.image_height = (JDIMENSION)H;
    cinfo.input_components = C;
    cinfo.in_color_space = C == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 98, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    if (orientation > 0) {
        const unsigned char exif[32] = {
            'E',  'x',  'i', 'f', 0, 0, 'M', 'M', 0, 42,
            0,    0,    0,   8,   0, 1, /* one entry */
            0x01, 0x12, 0,   3,   0, 0, 0,   1,   0, (unsigned char)orientation,
            0,    0,    0,   0,   0, 0};
        jpeg_write_marker(&cinfo, JPEG_APP0 + 1, exif, sizeof exif);
    }
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)cinfo.next_scanline * W * C;
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return fclose(f) == 0;
}

/* A test pattern (H, W, C): smooth gradients, different per channel. */
static void pattern(unsigned char *px, int W, int H, int C) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                px[((size_t)y * W + x) * C + c] = (unsigned char)((x * 7 + y * 3 + c * 60) % 256);
}

/* ---- netpbm ---- */

static void test_pnm_binary(void) {
    /* P5 8-bit with a comment, P6 8-bit */
    unsigned char buf[256];
    int n = snprintf((char *)buf, sizeof buf, "P5\n# a comment\n3 2\n255\n");
    unsigned char gray[6] = {0, 10, 20, 30, 200, 255};
    memcpy(buf + n, gray, 6);
    CHECK(write_bytes(tmp_path("a.pgm"), buf, (size_t)n + 6));
    loom_image *img = load_expect(tmp_path("a.pgm"), LOOM_OK);
    if (img) {
        CHECK(img->W == 3 && img->H == 2 && img->C == 1);
        CHECK(memcmp(img->px, gray, 6) == 0);
    }
    loom_image_destroy(img);

    n = snprintf((char *)buf, sizeof buf, "P6 2 1 255 ");
    unsigned char rgb[6] = {1, 2, 3, 250, 251, 252};
    memcpy(buf + n, rgb, 6);
    CHECK(write_bytes(tmp_path("a.ppm"), buf, (size_t)n + 6));
    img = load_expect(tmp_path("a.ppm"), LOOM_OK);
    if (img) {
        CHECK(img->W == 2 && img->H == 1 && img->C == 3);
        CHECK(memcmp(img->px, rgb, 6) == 0);
    }
    loom_image_destroy(img);

    /* 16-bit samples, big-endian, maxval 1000: 500 -> 128 (rounded), 1000 -> 255 */
    n = snprintf((char *)buf, sizeof buf, "P5 2 1 1000\n");
    unsigned char wide[4] = {500 >> 8, 500 & 255, 1000 >> 8, 1000 & 255};
    memcpy(buf + n, wide, 4);
    CHECK(write_bytes(tmp_path("w.pgm"), buf, (size_t)n + 4));
    img = load_expect(tmp_path("w.pgm"), LOOM_OK);
    if (img)
        CHECK(img->px[0] == 128 && img->px[1] == 255);
    loom_image_destroy(img);
}

static void test_pnm_ascii(void) {
    const char *p2 = "P2\n# gray\n2 2\n15\n0 15\n# mid-data comment\n5 10\n";
    CHECK(write_bytes(tmp_path("a2.pgm"), p2, strlen(p2)));
    loom_image *img = load_expect(tmp_path("a2.pgm"), LOOM_OK);
    if (img) {
        CHECK(img->W == 2 && img->H == 2 && img->C == 1);
        CHECK(img->px[0] == 0 && img->px[1] == 255 && img->px[2] == 85 && img->px[3] == 170);
    }
    loom_image_destroy(img);
    const char *p3 = "P3 1 2 255\n255 0 0\n0 0 255\n";
    CHECK(write_bytes(tmp_path("a3.ppm"), p3, strlen(p3)));
    img = load_expect(tmp_path("a3.ppm"), LOOM_OK);
    if (img) {
        CHECK(img->W == 1 && img->H == 2 && img->C == 3);
        const unsigned char want[6] = {255, 0, 0, 0, 0, 255};
        CHECK(memcmp(img->px, want, 6) == 0);
    }
    loom_image_destroy(img);
}

static void test_pnm_malformed(void) {
    struct {
        const char *name, *text;
        size_t len; /* 0: strlen */
    } cases[] = {
        {"trunc.pgm", "P5 4 4 255\nabc", 0},            /* 3 of 16 bytes */
        {"trunc2.pgm", "P2 2 2 255\n1 2 3", 0},         /* 3 of 4 values */
        {"zero.pgm", "P5 0 10 255\n", 0},               /* zero size */
        {"huge.pgm", "P5 60000 60000 255\nxxxx", 0},    /* too large: no allocation */
        {"lying.ppm", "P6 4000 4000 255\nxxxxxxxx", 0}, /* within limits, but 8 bytes */
        {"maxval.pgm", "P5 1 1 0\nx", 0},               /* maxval 0 */
        {"over.pgm", "P2 1 1 10\n11\n", 0},             /* value > maxval */
        {"word.pgm", "P2 1 1 255\nabc\n", 0},           /* not a number */
        {"hdr.pgm", "P5 12 x 255\n", 0},                /* bad header */
        {"pbm.pbm", "P1 1 1\n1\n", 0},                  /* PBM not supported */
        {"digits.pgm", "P5 1234567890123 1 255\n", 0},  /* number too long */
        {"noeol.pgm", "P5 1 1 255", 0},                 /* no pixel data */
        {"magic.png", "GIF89a......", 0},               /* foreign */
        {"empty.pgm", "", 0},                           /* empty */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        CHECK(write_bytes(tmp_path(cases[i].name), cases[i].text, len));
        loom_image_destroy(load_expect(tmp_path(cases[i].name), LOOM_ERR_FORMAT));
    }
    loom_image_destroy(load_expect(tmp_path("no-such-file.png"), LOOM_ERR_IO));
    loom_image_destroy(load_expect(check_tmpdir(), LOOM_ERR_IO));
}

/* ---- PNG ---- */

static void test_png_kinds(void) {
    enum { W = 5, H = 4 };
    unsigned char rgb[W * H * 3], gray[W * H], rgba[W * H * 4], ga[W * H * 2];
    unsigned char g16[W * H * 2];
    pattern(rgb, W, H, 3);
    pattern(gray, W, H, 1);
    for (int i = 0; i < W * H; i++) {
        memcpy(rgba + 4 * i, rgb + 3 * i, 3);
        rgba[4 * i + 3] = (unsigned char)(i % 3 == 0 ? 0 : 255); /* transparent or opaque */
        ga[2 * i] = gray[i];
        ga[2 * i + 1] = (unsigned char)(i % 2 ? 255 : 128);
        g16[2 * i] = gray[i]; /* 16-bit value gray * 257: scales back to gray */
        g16[2 * i + 1] = gray[i];
    }
    loom_image *img;
    CHECK(write_png(tmp_path("rgb.png"), rgb, W, H, 8, PNG_COLOR_TYPE_RGB, false, NULL, 0));
    if ((img = load_expect(tmp_path("rgb.png"), LOOM_OK))) {
        CHECK(img->W == W && img->H == H && img->C == 3);
        CHECK(memcmp(img->px, rgb, sizeof rgb) == 0);
    }
    loom_image_destroy(img);
    CHECK(write_png(tmp_path("gray.png"), gray, W, H, 8, PNG_COLOR_TYPE_GRAY, true, NULL, 0));
    if ((img = load_expect(tmp_path("gray.png"), LOOM_OK))) { /* interlaced */
        CHECK(img->C == 1);
        CHECK(memcmp(img->px, gray, sizeof gray) == 0);
    }
    loom_image_destroy(img);
    CHECK(write_png(tmp_path("g16.png"), g16, W, H, 16, PNG_COLOR_TYPE_GRAY, false, NULL, 0));
    if ((img = load_expect(tmp_path("g16.png"), LOOM_OK)))
        CHECK(img->C == 1 && memcmp(img->px, gray, sizeof gray) == 0);
    loom_image_destroy(img);
    /* alpha composited on white: transparent -> 255, opaque -> the colour */
    CHECK(write_png(tmp_path("rgba.png"), rgba, W, H, 8, PNG_COLOR_TYPE_RGB_ALPHA, false, NULL, 0));
    if ((img = load_expect(tmp_path("rgba.png"), LOOM_OK))) {
        CHECK(img->C == 3);
        bool is_ok = true;
        for (int i = 0; i < W * H; i++)
            for (int c = 0; c < 3; c++)
                is_ok &= img->px[3 * i + c] == (i % 3 == 0 ? 255 : rgb[3 * i + c]);
        CHECK(is_ok);
    }
    loom_image_destroy(img);
    CHECK(write_png(tmp_path("ga.png"), ga, W, H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, false, NULL, 0));
    if ((img = load_expect(tmp_path("ga.png"), LOOM_OK))) {
        CHECK(img->C == 1);
        bool is_ok = true; /* half alpha: (v 128 + 255 127 + 127) / 255 */
        for (int i = 0; i < W * H; i++)
            is_ok &= img->px[i] == (i % 2 ? gray[i] : (gray[i] * 128 + 255 * 127 + 127) / 255);
        CHECK(is_ok);
    }
    loom_image_destroy(img);
    /* palette, 2 bits per pixel */
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    unsigned char idx[2] = {0x1b, 0xe4}; /* one row of 8 pixels: 0 1 2 3 3 2 1 0 */
    CHECK(write_png(tmp_path("pal.png"), idx, 8, 1, 2, PNG_COLOR_TYPE_PALETTE, false, pal, 4));
    if ((img = load_expect(tmp_path("pal.png"), LOOM_OK))) {
        CHECK(img->W == 8 && img->H == 1 && img->C == 3);
        const int order[8] = {0, 1, 2, 3, 3, 2, 1, 0};
        bool is_ok = true;
        for (int x = 0; x < 8; x++)
            is_ok &= img->px[3 * x] == pal[order[x]].red &&
                     img->px[3 * x + 1] == pal[order[x]].green &&
                     img->px[3 * x + 2] == pal[order[x]].blue;
        CHECK(is_ok);
    }
    loom_image_destroy(img);
    /* 1-bit gray */
    unsigned char bits[1] = {0xa0}; /* 1 0 1 */
    CHECK(write_png(tmp_path("bit.png"), bits, 3, 1, 1, PNG_COLOR_TYPE_GRAY, false, NULL, 0));
    if ((img = load_expect(tmp_path("bit.png"), LOOM_OK)))
        CHECK(img->C == 1 && img->px[0] == 255 && img->px[1] == 0 && img->px[2] == 255);
    loom_image_destroy(img);
}

static void test_png_save(void) {
    enum { W = 7, H = 3 };
    unsigned char rgb[W * H * 3], gray[W * H];
    pattern(rgb, W, H, 3);
    pattern(gray, W, H, 1);
    loom_error err = {0};
    CHECK(loom_image_save_png(tmp_path("s3.png"), rgb, W, H, 3, &err) == LOOM_OK);
    CHECK(loom_image_save_png(tmp_path("s1.png"), gray, W, H, 1, &err) == LOOM_OK);
    loom_image *img;
    if ((img = load_expect(tmp_path("s3.png"), LOOM_OK)))
        CHECK(img->C == 3 && img->W == W && memcmp(img->px, rgb, sizeof rgb) == 0);
    loom_image_destroy(img);
    if ((img = load_expect(tmp_path("s1.png"), LOOM_OK)))
        CHECK(img->C == 1 && img->H == H && memcmp(img->px, gray, sizeof gray) == 0);
    loom_image_destroy(img);
    CHECK(loom_image_save_png(tmp_path("s2.png"), gray, W, H, 2, &err) == LOOM_ERR_ARG);
    CHECK(loom_image_save_png(tmp_path("nodir/s.png"), gray, W, H, 1, &err) == LOOM_ERR_IO);
}

/* PNG chunk: sets IHDR's width and height and fixes its CRC (zlib's CRC-32). */
static void png_patch_size(unsigned char *b, uint32_t W, uint32_t H) {
    unsigned char *ihdr = b + 8; /* length (4), "IHDR", data (13), CRC */
    for (int i = 0; i < 4; i++) {
        ihdr[8 + i] = (unsigned char)(W >> (24 - 8 * i));
        ihdr[12 + i] = (unsigned char)(H >> (24 - 8 * i));
    }
    uint32_t crc = (uint32_t)crc32(0L, ihdr + 4, 17);
    for (int i = 0; i < 4; i++)
        ihdr[21 + i] = (unsigned char)(crc >> (24 - 8 * i));
}

static void test_png_malformed(void) {
    enum { W = 40, H = 30 };
    unsigned char rgb[W * H * 3];
    pattern(rgb, W, H, 3);
    CHECK(write_png(tmp_path("good.png"), rgb, W, H, 8, PNG_COLOR_TYPE_RGB, false, NULL, 0));
    size_t len = 0;
    unsigned char *b = read_bytes(tmp_path("good.png"), &len);
    CHECK(b != NULL && len > 100);
    if (!b)
        return;
    CHECK(write_bytes(tmp_path("half.png"), b, len / 2));
    loom_image_destroy(load_expect(tmp_path("half.png"), LOOM_ERR_FORMAT));
    CHECK(write_bytes(tmp_path("sig.png"), b, 8));
    loom_image_destroy(load_expect(tmp_path("sig.png"), LOOM_ERR_FORMAT));
    unsigned char *c = malloc(len);
    memcpy(c, b, len);
    c[len / 2] ^= 0x55; /* a flipped byte in the compressed data: CRC error */
    CHECK(write_bytes(tmp_path("flip.png"), c, len));
    loom_image_destroy(load_expect(tmp_path("flip.png"), LOOM_ERR_FORMAT));
    memcpy(c, b, len);
    png_patch_size(c, 0, 10);
    CHECK(write_bytes(tmp_path("zero.png"), c, len));
    loom_image_destroy(load_expect(tmp_path("zero.png"), LOOM_ERR_FORMAT));
    memcpy(c, b, len);
    png_patch_size(c, 60000, 60000); /* 3.6 G pixels: refused before allocating */
    CHECK(write_bytes(tmp_path("huge.png"), c, len));
    loom_image_destroy(load_expect(tmp_path("huge.png"), LOOM_ERR_FORMAT));
    memcpy(c, b, len);
    png_patch_size(c, 6000, 6000); /* within limits, but more than the file can hold */
    CHECK(write_bytes(tmp_path("lying.png"), c, len));
    loom_error err = {0};
    loom_image *img = NULL;
    CHECK(loom_image_load(&img, tmp_path("lying.png"), &err) == LOOM_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "can hold") != NULL, "%s", err.msg);
    loom_image_destroy(img);
    free(c);
    free(b);
}

/* ---- JPEG ---- */

static void test_jpeg(void) {
    enum { W = 33, H = 17 }; /* not multiples of the 8x8 blocks */
    unsigned char rgb[W * H * 3], gray[W * H];
    for (int i = 0; i < W * H; i++) { /* flat colours survive JPEG almost exactly */
        rgb[3 * i] = 200, rgb[3 * i + 1] = 40, rgb[3 * i + 2] = 90;
        gray[i] = 77;
    }
    CHECK(write_jpeg(tmp_path("rgb.jpg"), rgb, W, H, 3, 0));
    CHECK(write_jpeg(tmp_path("gray.jpg"), gray, W, H, 1, 0));
    loom_image *img;
    if ((img = load_expect(tmp_path("rgb.jpg"), LOOM_OK))) {
        CHECK(img->W == W && img->H == H && img->C == 3);
        int maxd = 0;
        for (int i = 0; i < W * H * 3; i++)
            maxd = abs(img->px[i] - rgb[i]) > maxd ? abs(img->px[i] - rgb[i]) : maxd;
        CHECK_MSG(maxd <= 4, "max difference %d", maxd);
    }
    loom_image_destroy(img);
    if ((img = load_expect(tmp_path("gray.jpg"), LOOM_OK))) {
        CHECK(img->W == W && img->H == H && img->C == 1);
        int maxd = 0;
        for (int i = 0; i < W * H; i++)
            maxd = abs(img->px[i] - gray[i]) > maxd ? abs(img->px[i] - gray[i]) : maxd;
        CHECK_MSG(maxd <= 2, "max difference %d", maxd);
    }
    loom_image_destroy(img);

    /* malformed: truncated, header only, SOF claiming a huge size */
    size_t len = 0;
    unsigned char *b = read_bytes(tmp_path("rgb.jpg"), &len);
    CHECK(b != NULL && len > 200);
    if (!b)
        return;
    CHECK(write_bytes(tmp_path("trunc.jpg"), b, len - 40));
    loom_image_destroy(load_expect(tmp_path("trunc.jpg"), LOOM_ERR_FORMAT));
    CHECK(write_bytes(tmp_path("head.jpg"), b, 3));
    loom_image_destroy(load_expect(tmp_path("head.jpg"), LOOM_ERR_FORMAT));
    size_t sof = 2;
    while (sof + 9 < len && !(b[sof] == 0xff && b[sof + 1] == 0xc0))
        sof++;
    CHECK(sof + 9 < len);
    if (sof + 9 < len) {
        b[sof + 5] = 0xea, b[sof + 6] = 0x60; /* height 60000 */
        b[sof + 7] = 0xea, b[sof + 8] = 0x60; /* width 60000 */
        CHECK(write_bytes(tmp_path("huge.jpg"), b, len));
        loom_image_destroy(load_expect(tmp_path("huge.jpg"), LOOM_ERR_FORMAT));
        b[sof + 5] = 0x0f, b[sof + 6] = 0xa0; /* 4000 x 4000: more than the file can hold */
        b[sof + 7] = 0x0f, b[sof + 8] = 0xa0;
        CHECK(write_bytes(tmp_path("lying.jpg"), b, len));
        loom_image_destroy(load_expect(tmp_path("lying.jpg"), LOOM_ERR_FORMAT));
    }
    free(b);
}

/* A 16x8 gray JPEG, dark left half, light right half, with EXIF orientations: each shows the
 * dark half where the orientation puts it. */
static void test_jpeg_orientation(void) {
    enum { W = 16, H = 8 };
    unsigned char px[W * H];
    for (int i = 0; i < W * H; i++)
        px[i] = (unsigned char)(i % W < W / 2 ? 20 : 230);
    struct {
        int o, W, H, dark_x, dark_y; /* size as seen, a pixel of the dark half as seen */
    } cases[] = {{1, 16, 8, 2, 4},  {2, 16, 8, 13, 4}, {3, 16, 8, 13, 4}, {6, 8, 16, 4, 2},
                 {8, 8, 16, 4, 13}, {5, 8, 16, 4, 2},  {7, 8, 16, 4, 13}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(write_jpeg(tmp_path("o.jpg"), px, W, H, 1, cases[i].o));
        loom_image *img = load_expect(tmp_path("o.jpg"), LOOM_OK);
        if (!img)
            continue;
        int dx = cases[i].dark_x, dy = cases[i].dark_y;
        CHECK_MSG(img->W == cases[i].W && img->H == cases[i].H, "orientation %d: %dx%d", cases[i].o,
                  img->W, img->H);
        CHECK_MSG(img->px[dy * img->W + dx] < 60, "orientation %d: (%d, %d) = %d", cases[i].o, dx,
                  dy, img->px[dy * img->W + dx]);
        /* the opposite point is light */
        int ox = img->W - 1 - dx, oy = img->H - 1 - dy;
        CHECK_MSG(img->px[oy * img->W + ox] > 180, "orientation %d: (%d, %d) = %d", cases[i].o, ox,
                  oy, img->px[oy * img->W + ox]);
        loom_image_destroy(img);
    }
}

/* ---- preprocessing ---- */

/* A white W x H RGB image with a dark (value 40) rectangle [x0, x0 + w) x [y0, y0 + h). */
static loom_image *white_with_box(int W, int H, int x0, int y0, int w, int h) {
    loom_image *img = malloc(sizeof *img);
    *img = (loom_image){W, H, 3, malloc((size_t)W * H * 3)};
    memset(img->px, 255, (size_t)W * H * 3);
    for (int y = y0; y < y0 + h; y++)
        memset(img->px + ((size_t)y * W + x0) * 3, 40, (size_t)w * 3);
    return img;
}

static void test_preprocess_convention(void) {
    loom_preprocess_config cfg;
    loom_preprocess_config_init(&cfg);
    loom_preprocess_info info;
    loom_error err = {0};
    uint8_t out[28 * 28];
    /* a 40x20 dark box on white -> light on black, cropped, 28 wide and 14 high, centred */
    loom_image *img = white_with_box(100, 60, 10, 15, 40, 20);
    CHECK(loom_image_preprocess(img, &cfg, 28, 28, out, &info, &err) == LOOM_OK);
    CHECK(info.is_inverted);
    CHECK(info.crop_x == 10 && info.crop_y == 15 && info.crop_w == 40 && info.crop_h == 20);
    bool is_ok = true;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            is_ok &= out[y * 28 + x] == (y >= 7 && y < 21 ? 215 : 0);
    CHECK(is_ok);
    /* no invert: the border is dark after all; no crop: the whole image is fitted */
    cfg.invert = LOOM_INVERT_NEVER;
    cfg.is_crop = false;
    CHECK(loom_image_preprocess(img, &cfg, 28, 28, out, &info, &err) == LOOM_OK);
    CHECK(!info.is_inverted && info.crop_w == 100 && info.crop_h == 60);
    CHECK(out[0] == 0);              /* the top margin: (28 - 17) / 2 rows */
    CHECK(out[14 * 28 + 27] == 255); /* white background on the right */
    /* no fit: stretched over the whole frame */
    cfg.is_fit = false;
    CHECK(loom_image_preprocess(img, &cfg, 28, 28, out, &info, &err) == LOOM_OK);
    CHECK(out[0] == 255 && out[27 * 28 + 27] == 255);
    loom_image_destroy(img);

    /* a garment touching the top and bottom edges: the background level is the border's median,
     * so the crop still finds its sides */
    loom_preprocess_config_init(&cfg);
    img = white_with_box(40, 100, 10, 0, 20, 100);
    CHECK(loom_image_preprocess(img, &cfg, 28, 28, out, &info, &err) == LOOM_OK);
    CHECK(info.is_inverted);
    CHECK_MSG(info.crop_x == 10 && info.crop_y == 0 && info.crop_w == 20 && info.crop_h == 100,
              "crop %d %d %d %d", info.crop_x, info.crop_y, info.crop_w, info.crop_h);
    CHECK(out[14 * 28 + 13] == 215 && out[14 * 28 + 10] == 0 && out[14 * 28 + 17] == 0);
    loom_image_destroy(img);

    /* already in the convention: a light object on black is not inverted */
    img = white_with_box(50, 50, 20, 5, 10, 40);
    for (size_t i = 0; i < 50 * 50 * 3; i++)
        img->px[i] = (uint8_t)(255 - img->px[i]);
    CHECK(loom_image_preprocess(img, &cfg, 28, 28, out, &info, &err) == LOOM_OK);
    CHECK(!info.is_inverted && info.crop_w == 10 && info.crop_h == 40);
    CHECK(out[14 * 28 + 14] == 215 && out[14 * 28 + 0] == 0); /* 7 wide, 28 high, centred */
    loom_image_destroy(img);
}

static void test_preprocess_area(void) {
    /* a 28x28 image enlarged 3x by repetition shrinks back exactly (box filter) */
    uint8_t small[28 * 28], out[28 * 28];
    pattern(small, 28, 28, 1);
    loom_image big = {84, 84, 1, malloc(84 * 84)};
    for (int y = 0; y < 84; y++)
        for (int x = 0; x < 84; x++)
            big.px[y * 84 + x] = small[(y / 3) * 28 + x / 3];
    loom_preprocess_config cfg;
    loom_preprocess_config_init(&cfg);
    cfg.invert = LOOM_INVERT_NEVER;
    cfg.is_crop = false;
    loom_error err = {0};
    CHECK(loom_image_preprocess(&big, &cfg, 28, 28, out, NULL, &err) == LOOM_OK);
    CHECK(memcmp(out, small, sizeof out) == 0);
    /* 2x1 blocks of 0 and 255 average to 128 (127.5 rounded to even) */
    for (int i = 0; i < 56 * 28; i++)
        big.px[i] = (uint8_t)(i % 2 ? 255 : 0);
    big.W = 56, big.H = 28;
    cfg.is_fit = false;
    CHECK(loom_image_preprocess(&big, &cfg, 28, 28, out, NULL, &err) == LOOM_OK);
    CHECK(out[0] == 128 && out[28 * 28 - 1] == 128);
    free(big.px);
    /* a blank image is not cropped; a 1x1 image fills the frame */
    loom_image one = {1, 1, 1, (uint8_t[]){200}};
    loom_preprocess_config_init(&cfg);
    loom_preprocess_info info;
    CHECK(loom_image_preprocess(&one, &cfg, 28, 28, out, &info, &err) == LOOM_OK);
    CHECK(info.is_inverted && out[0] == 55 && out[28 * 28 - 1] == 55);
    CHECK(loom_image_preprocess(&one, &cfg, 0, 28, out, &info, &err) == LOOM_ERR_ARG);
}

/* --gray: one RGB pixel (R 200, G 100, B 30) under each mode, worked by hand; no inversion, so
 * the pixel fills the frame with its gray value. A gray image ignores the mode. */
static void test_preprocess_gray(void) {
    uint8_t rgb[3] = {200, 100, 30}, out[28 * 28];
    loom_image one = {1, 1, 3, rgb};
    loom_preprocess_config cfg;
    loom_preprocess_config_init(&cfg);
    CHECK(cfg.gray == LOOM_GRAY_LUMA);
    cfg.invert = LOOM_INVERT_NEVER;
    loom_error err = {0};
    /* luma 0.299*200 + 0.587*100 + 0.114*30 = 121.92; mean 110; then each channel */
    static const struct {
        const char *name;
        int want;
    } cases[] = {{"luma", 122}, {"mean", 110}, {"red", 200}, {"g", 100}, {"blue", 30}};
    for (int i = 0; i < 5; i++) {
        CHECK(loom_gray_mode_parse(cases[i].name, &cfg.gray) && (int)cfg.gray == i);
        CHECK(loom_image_preprocess(&one, &cfg, 28, 28, out, NULL, &err) == LOOM_OK);
        CHECK_MSG(out[0] == cases[i].want && out[28 * 28 - 1] == cases[i].want, "%s: %d",
                  cases[i].name, out[0]);
    }
    loom_image gray = {1, 1, 1, (uint8_t[]){77}};
    CHECK(loom_image_preprocess(&gray, &cfg, 28, 28, out, NULL, &err) == LOOM_OK && out[5] == 77);
    loom_gray_mode keep = cfg.gray;
    CHECK(!loom_gray_mode_parse("cyan", &cfg.gray) && !loom_gray_mode_parse(NULL, &cfg.gray));
    CHECK(cfg.gray == keep);
    cfg.gray = (loom_gray_mode)9;
    CHECK(loom_image_preprocess(&one, &cfg, 28, 28, out, NULL, &err) == LOOM_ERR_ARG);
}

/* ---- the prediction API ---- */

#define CNN "conv 4 3x3 relu, batchnorm, maxpool 2, dropout 0.5, flatten, dense 10"
#define LSTM "rows, lstm 6, dense 10"
/* large enough that a batch of 48 runs on worker threads */
#define BIG_CNN "conv 32 3x3 relu, batchnorm, maxpool 2, dropout 0.5, flatten, dense 10"

static loom_model *make_model(const char *text, uint64_t seed) {
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "test", 28, 28, 1, &err) != LOOM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    loom_model_init(m, seed);
    /* non-trivial batch-norm statistics */
    float *state = loom_model_state(m);
    for (size_t i = 0; i < loom_model_n_state(m); i++)
        state[i] = 0.5f + 0.1f * (float)(i % 7);
    return m;
}

static void random_images(uint8_t *px, float *x, int n, uint64_t seed) {
    loom_rng rng;
    loom_rng_seed(&rng, seed);
    for (int i = 0; i < n * 784; i++) {
        px[i] = (uint8_t)loom_rng_below(&rng, 256);
        x[i] = (float)px[i] / 255.0f;
    }
}

static void check_against_forward(const char *text) {
    enum { N = 70 }; /* more than one internal batch of 64 */
    loom_model *m = make_model(text, 3);
    CHECK(m != NULL);
    if (!m)
        return;
    uint8_t *px = malloc(N * 784);
    float *x = malloc(sizeof(float) * N * 784), *want = malloc(sizeof(float) * N * 10);
    float *got = malloc(sizeof(float) * N * 10);
    random_images(px, x, N, 11);
    loom_error err = {0};
    CHECK(loom_model_prepare(m, N, &err) == LOOM_OK);
    const float *z = loom_model_forward(m, x, N, false, NULL);
    for (int i = 0; i < N; i++) { /* softmax in double */
        double zmax = z[i * 10], s = 0;
        for (int k = 1; k < 10; k++)
            zmax = z[i * 10 + k] > zmax ? z[i * 10 + k] : zmax;
        for (int k = 0; k < 10; k++)
            s += exp(z[i * 10 + k] - zmax);
        for (int k = 0; k < 10; k++)
            want[i * 10 + k] = (float)(exp(z[i * 10 + k] - zmax) / s);
    }
    double maxd = 0;
    CHECK(loom_predict(m, x, N, got, &err) == LOOM_OK);
    for (int i = 0; i < N * 10; i++)
        maxd = fmax(maxd, fabs(got[i] - want[i]));
    CHECK_MSG(maxd < 1e-6, "%s: float: max difference %g", text, maxd);
    maxd = 0;
    CHECK(loom_predict_u8(m, px, N, got, &err) == LOOM_OK);
    for (int i = 0; i < N * 10; i++)
        maxd = fmax(maxd, fabs(got[i] - want[i]));
    CHECK_MSG(maxd < 1e-6, "%s: uint8: max difference %g", text, maxd);
    /* a predictor with a small batch: the same numbers, in chunks */
    loom_predictor *p = NULL;
    CHECK(loom_predictor_create(&p, m, 16, &err) == LOOM_OK);
    float *again = malloc(sizeof(float) * N * 10);
    CHECK(loom_predictor_run_u8(p, px, N, again, &err) == LOOM_OK);
    maxd = 0;
    for (int i = 0; i < N * 10; i++)
        maxd = fmax(maxd, fabs(again[i] - want[i]));
    CHECK_MSG(maxd < 1e-6, "%s: predictor: max difference %g", text, maxd);
    double s = 0;
    for (int k = 0; k < 10; k++)
        s += again[k];
    CHECK_NEAR(s, 1.0, 1e-5);
    /* errors */
    CHECK(loom_predictor_run(p, x, 0, again, &err) == LOOM_ERR_ARG);
    CHECK(loom_predictor_run(p, NULL, 1, again, &err) == LOOM_ERR_ARG);
    CHECK(loom_predict(m, x, -1, again, &err) == LOOM_ERR_ARG);
    loom_predictor_destroy(p);
    CHECK(loom_predictor_create(&p, m, 0, &err) == LOOM_ERR_ARG && p == NULL);
    loom_predictor_destroy(NULL);
    free(again);
    free(px);
    free(x);
    free(want);
    free(got);
    loom_model_destroy(m);
}

static void test_predict_equals_forward(void) {
    check_against_forward(CNN);
    check_against_forward(LSTM);
}

static void test_top_k_and_names(void) {
    float p[5] = {0.1f, 0.4f, 0.05f, 0.4f, 0.05f};
    int top[5];
    CHECK(loom_top_k(p, 5, 3, top) == 3);
    CHECK(top[0] == 1 && top[1] == 3 && top[2] == 0);
    CHECK(loom_top_k(p, 5, 9, top) == 5 && top[3] == 2 && top[4] == 4);
    loom_model *m = make_model(CNN, 1);
    char buf[16];
    CHECK(m && strcmp(loom_model_class_name(m, 9, buf), "Ankle boot") == 0);
    CHECK(m && strcmp(loom_model_class_name(m, 0, buf), "T-shirt/top") == 0);
    loom_model_destroy(m);
    m = make_model("flatten, dense 3", 1);
    CHECK(m && strcmp(loom_model_class_name(m, 2, buf), "2") == 0);
    loom_model_destroy(m);
}

/* ---- two threads on one model ---- */

enum { T_N = 48, T_REPEATS = 20 };

typedef struct {
    const loom_model *m;
    const uint8_t *px;
    float *probs; /* (T_N, 10) from loom_predict_u8 */
    bool is_same; /* every repeat gave the same bytes as the first of its kind */
    bool is_ok;
} thread_job;

static void *predict_thread(void *arg) {
    thread_job *j = arg;
    loom_error err = {0};
    loom_predictor *p = NULL;
    float tmp[T_N * 10], first_p[T_N * 10]; /* first_p: the predictor's first answer */
    j->is_ok = loom_predictor_create(&p, j->m, 8, &err) == LOOM_OK;
    j->is_same = true;
    for (int r = 0; r < T_REPEATS && j->is_ok; r++) {
        /* alternate between a per-call workspace (one batch of 48) and a predictor (batches
         * of 8); each is compared with its own first answer */
        bool is_pred = r % 2;
        loom_status st = is_pred ? loom_predictor_run_u8(p, j->px, T_N, tmp, &err)
                                 : loom_predict_u8(j->m, j->px, T_N, tmp, &err);
        j->is_ok = st == LOOM_OK;
        float *first = is_pred ? first_p : j->probs;
        if (r < 2)
            memcpy(first, tmp, sizeof tmp);
        else
            j->is_same &= memcmp(first, tmp, sizeof tmp) == 0;
    }
    loom_predictor_destroy(p);
    return NULL;
}

static void test_threads(void) {
    const char *models[2] = {BIG_CNN, LSTM};
    for (int mi = 0; mi < 2; mi++) {
        loom_model *m = make_model(models[mi], 5);
        CHECK(m != NULL);
        if (!m)
            return;
        uint8_t *px = malloc(2 * T_N * 784);
        float *x = malloc(sizeof(float) * 2 * T_N * 784);
        random_images(px, x, 2 * T_N, 21);
        float one[2][T_N * 10], two[2][T_N * 10];
        /* one thread, then two threads at once, each on its own images */
        thread_job jobs[2];
        for (int t = 0; t < 2; t++) {
            jobs[t] = (thread_job){m, px + (size_t)t * T_N * 784, one[t], false, false};
            predict_thread(&jobs[t]);
            CHECK(jobs[t].is_ok && jobs[t].is_same);
        }
        pthread_t th[2];
        for (int t = 0; t < 2; t++) {
            jobs[t] = (thread_job){m, px + (size_t)t * T_N * 784, two[t], false, false};
            CHECK(pthread_create(&th[t], NULL, predict_thread, &jobs[t]) == 0);
        }
        for (int t = 0; t < 2; t++) {
            pthread_join(th[t], NULL);
            CHECK(jobs[t].is_ok && jobs[t].is_same);
            CHECK_MSG(memcmp(one[t], two[t], sizeof one[t]) == 0, "%s: thread %d differs",
                      models[mi], t);
        }
        free(px);
        free(x);
        loom_model_destroy(m);
    }
}

/* ---- loom_run_predict ---- */

static char *run_to_string(const loom_predict_config *pc, loom_status *st, loom_error *err) {
    FILE *f = fopen(tmp_path("out.txt"), "w+");
    *st = loom_run_predict(pc, f, err);
    fclose(f);
    size_t len;
    return (char *)read_bytes(tmp_path("out.txt"), &len);
}

static void test_run_predict(void) {
    loom_model *m = make_model(CNN, 7);
    loom_error err = {0};
    CHECK(m && loom_model_save(m, NULL, tmp_path("m.loom"), &err) == LOOM_OK);
    /* two images: a PNG and a PGM */
    loom_image *img = white_with_box(60, 90, 20, 10, 20, 70);
    CHECK(loom_image_save_png(tmp_path("coat.png"), img->px, img->W, img->H, 3, &err) == LOOM_OK);
    loom_image_destroy(img);
    const char *pgm = "P2 3 3 255\n0 0 0\n0 255 0\n0 0 0\n";
    CHECK(write_bytes(tmp_path("dot.pgm"), pgm, strlen(pgm)));
    /* an images-only IDX file (gzip) holding the PNG's preprocessed image twice */
    uint8_t pre[784];
    loom_preprocess_config pcfg;
    loom_preprocess_config_init(&pcfg);
    img = NULL;
    CHECK(loom_image_load(&img, tmp_path("coat.png"), &err) == LOOM_OK);
    CHECK(img && loom_image_preprocess(img, &pcfg, 28, 28, pre, NULL, &err) == LOOM_OK);
    loom_image_destroy(img);
    gzFile gz = gzopen(tmp_path("x.idx.gz"), "wb");
    const unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28};
    gzwrite(gz, head, 16);
    gzwrite(gz, pre, 784);
    gzwrite(gz, pre, 784);
    gzclose(gz);

    const char *images[2] = {tmp_path("coat.png"), tmp_path("dot.pgm")};
    loom_predict_config pc;
    loom_predict_config_init(&pc);
    pc.model_file = tmp_path("m.loom");
    pc.images = images;
    pc.n_images = 2;
    pc.idx_path = tmp_path("x.idx.gz");
    pc.top_k = 2;
    pc.save_dir = tmp_path("pre");
    loom_status st;
    char *text = run_to_string(&pc, &st, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    int n_lines = 0;
    for (char *p = text; p && *p; p++)
        n_lines += *p == '\n';
    CHECK_MSG(n_lines == 4, "%d lines:\n%s", n_lines, text ? text : "");
    CHECK(text && strstr(text, "coat.png: ") && strstr(text, "x.idx.gz[1]: "));
    /* the IDX example and the PNG give the same line after the name */
    char *a = text ? strstr(text, "coat.png: ") : NULL, *b = text ? strstr(text, "[0]: ") : NULL;
    CHECK(a && b && strncmp(a + 10, b + 5, strcspn(b + 5, "\n")) == 0);
    free(text);
    img = NULL;
    CHECK(loom_image_load(&img, tmp_path("pre/coat.png"), &err) == LOOM_OK);
    CHECK(img && img->W == 28 && img->H == 28 && img->C == 1 && memcmp(img->px, pre, 784) == 0);
    loom_image_destroy(img);
    img = NULL;
    CHECK(loom_image_load(&img, tmp_path("pre/x.idx-1.png"), &err) == LOOM_OK);
    loom_image_destroy(img);

    /* JSON, with one bad file: reported, the others go on, the status says how many failed */
    CHECK(write_bytes(tmp_path("bad.png"), "\x89PNG\r\n\x1a\nxx", 10));
    const char *three[3] = {tmp_path("coat.png"), tmp_path("bad.png"), tmp_path("dot.pgm")};
    pc.images = three;
    pc.n_images = 3;
    pc.idx_path = NULL;
    pc.save_dir = NULL;
    pc.is_json = true;
    text = run_to_string(&pc, &st, &err);
    CHECK(st == LOOM_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "1 of 3 images") && strstr(err.msg, "bad.png"), "%s", err.msg);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    CHECK(doc != NULL);
    cJSON *items = cJSON_GetObjectItem(doc, "predictions");
    CHECK(cJSON_GetArraySize(items) == 3);
    cJSON *first = cJSON_GetArrayItem(items, 0), *second = cJSON_GetArrayItem(items, 1);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(first, "class")));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(first, "top")) == 2);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(first, "inverted")));
    CHECK(cJSON_IsString(cJSON_GetObjectItem(second, "error")));
    cJSON_Delete(doc);
    free(text);

    /* argument errors */
    pc.n_images = 0;
    CHECK(loom_run_predict(&pc, stdout, &err) == LOOM_ERR_ARG);
    pc.n_images = 1;
    pc.top_k = 0;
    CHECK(loom_run_predict(&pc, stdout, &err) == LOOM_ERR_ARG);
    pc.top_k = 1;
    pc.model_file = tmp_path("none.loom");
    CHECK(loom_run_predict(&pc, stdout, &err) == LOOM_ERR_IO);
    loom_model_destroy(m);
}

int main(void) {
    loom_set_threads(2);
    RUN(test_pnm_binary);
    RUN(test_pnm_ascii);
    RUN(test_pnm_malformed);
    RUN(test_png_kinds);
    RUN(test_png_save);
    RUN(test_png_malformed);
    RUN(test_jpeg);
    RUN(test_jpeg_orientation);
    RUN(test_preprocess_convention);
    RUN(test_preprocess_area);
    RUN(test_preprocess_gray);
    RUN(test_predict_equals_forward);
    RUN(test_top_k_and_names);
    RUN(test_threads);
    RUN(test_run_predict);
    return check_report();
}
