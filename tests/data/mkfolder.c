/* mkfolder.c - test helper for tests/data/folder.sh: writes the first N images of an IDX pair
 * (plain or gzip) as an image folder, OUT/PART/c<label>/<index>.png (8-bit gray PNG, libpng), and
 * the same images as an IDX pair in the order an image-folder reader takes them (class, then file
 * name), IDX_DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte: the two must train alike.
 * Independent of libloom. Usage: mkfolder IMAGES LABELS N PART OUT IDX_DIR */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static unsigned char *read_all(const char *path, long *n) {
    gzFile g = gzopen(path, "rb");
    if (!g)
        return NULL;
    long cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    int r;
    while (buf && (r = gzread(g, buf + len, (unsigned)(cap - len))) > 0) {
        len += r;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    gzclose(g);
    *n = len;
    return buf;
}

static unsigned be32(const unsigned char *p) {
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

static int write_png(const char *path, const unsigned char *img, int H, int W) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < H; y++)
        png_write_row(png, (png_bytep)(img + (size_t)y * W));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f);
}

static void put_be32(FILE *f, unsigned v) {
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: mkfolder IMAGES LABELS N PART OUT IDX_DIR\n");
        return 2;
    }
    long nx, ny;
    unsigned char *X = read_all(argv[1], &nx), *Y = read_all(argv[2], &ny);
    int N = atoi(argv[3]);
    if (!X || !Y || nx < 16 || ny < 8 || be32(X) != 2051 || be32(Y) != 2049) {
        fprintf(stderr, "mkfolder: cannot read the IDX pair\n");
        return 1;
    }
    int H = (int)be32(X + 8), W = (int)be32(X + 12);
    if (N > (int)be32(X + 4))
        N = (int)be32(X + 4);
    const char *part = argv[4], *out = argv[5], *idx = argv[6];
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out, part);
    mkdir(out, 0755);
    mkdir(path, 0755);
    mkdir(idx, 0755);
    const char *pre = strcmp(part, "train") == 0 ? "train" : "t10k";
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", idx, pre);
    FILE *fx = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", idx, pre);
    FILE *fy = fopen(path, "wb");
    if (!fx || !fy)
        return 1;
    put_be32(fx, 2051), put_be32(fx, (unsigned)N), put_be32(fx, (unsigned)H),
        put_be32(fx, (unsigned)W);
    put_be32(fy, 2049), put_be32(fy, (unsigned)N);
    for (int c = 0; c < 256; c++)
        for (int i = 0; i < N; i++) {
            if (Y[8 + i] != c)
                continue;
            const unsigned char *img = X + 16 + (size_t)i * H * W;
            snprintf(path, sizeof path, "%s/%s/c%d", out, part, c);
            mkdir(path, 0755);
            snprintf(path, sizeof path, "%s/%s/c%d/%05d.png", out, part, c, i);
            if (write_png(path, img, H, W) != 0)
                return 1;
            fwrite(img, 1, (size_t)H * W, fx);
            fputc(c, fy);
        }
    fclose(fx);
    fclose(fy);
    free(X);
    free(Y);
    return 0;
}
