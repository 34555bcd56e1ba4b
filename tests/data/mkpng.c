/* mkpng.c - test helper for tests/data/install.sh: turns test-set images into the kind of file
 * a user would have: each 28x28 IDX image (plain or gzip) inverted (a dark garment on white),
 * enlarged 10x by pixel repetition and written as a 280x280 RGB PNG with libpng, independently
 * of libloom. Usage: mkpng IMAGES_IDX FIRST COUNT OUT_DIR  (writes OUT_DIR/test-<i>.png). */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#define SCALE 10

static int write_png(const char *path, const unsigned char *img, int H, int W) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    unsigned char *row = malloc((size_t)W * SCALE * 3);
    if (!png || !info || !row) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        free(row);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) { /* libpng failed: nothing set after here is used */
        png_destroy_write_struct(&png, &info);
        fclose(f);
        free(row);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)(W * SCALE), (png_uint_32)(H * SCALE), 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < H * SCALE; y++) {
        for (int x = 0; x < W * SCALE; x++)
            for (int c = 0; c < 3; c++)
                row[(size_t)x * 3 + c] = (unsigned char)(255 - img[(y / SCALE) * W + x / SCALE]);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return fclose(f);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: mkpng IMAGES_IDX FIRST COUNT OUT_DIR\n");
        return 2;
    }
    int first = atoi(argv[2]), count = atoi(argv[3]);
    gzFile gz = gzopen(argv[1], "rb");
    unsigned char h[16];
    if (!gz || gzread(gz, h, 16) != 16 || h[2] != 8 || h[3] != 3) {
        fprintf(stderr, "mkpng: %s: not an IDX image file\n", argv[1]);
        return 1;
    }
    int n = h[4] << 24 | h[5] << 16 | h[6] << 8 | h[7],
        H = h[8] << 24 | h[9] << 16 | h[10] << 8 | h[11];
    int W = h[12] << 24 | h[13] << 16 | h[14] << 8 | h[15];
    unsigned char *img = malloc((size_t)H * W);
    if (!img || first < 0 || count < 0 || first + count > n || H > 4096 || W > 4096)
        return 1;
    for (int i = 0; i < first + count; i++) {
        if (gzread(gz, img, (unsigned)(H * W)) != H * W) {
            fprintf(stderr, "mkpng: %s: truncated\n", argv[1]);
            return 1;
        }
        if (i < first)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/test-%d.png", argv[4], i);
        if (write_png(path, img, H, W) != 0) {
            fprintf(stderr, "mkpng: %s: cannot write\n", path);
            return 1;
        }
    }
    gzclose(gz);
    free(img);
    return 0;
}
