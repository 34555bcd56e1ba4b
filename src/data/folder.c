/* folder.c - image folders as a dataset: DIR/train/CLASS/IMAGE and DIR/test/CLASS/IMAGE, the
 * layout torchvision's ImageFolder and Keras's image_dataset_from_directory read. Classes are the
 * folder names of DIR/train in sorted (byte) order, numbered from 0; a test folder must be one of
 * them. Every image is decoded (PNG, JPEG, PGM/PPM) and brought to the shape of the first training
 * image (in class, then file-name order): its size, by area averaging (a box filter; exact when
 * the sizes are equal), and its channels, gray by BT.601 luma or RGB (a gray image repeated). */
#include "../core/core.h"

#include <dirent.h>
#include <errno.h>
#include <strings.h>
#include <sys/stat.h>

static bool g_skip_bad = false;
void loom_set_skip_bad_images(bool on) { g_skip_bad = on; }

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool folder_has(const char *dir, const char *which) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, which);
    return is_dir(p);
}

static bool is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.')
        return false;
    static const char *const ext[] = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pnm"};
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (strcasecmp(dot, ext[i]) == 0)
            return true;
    return false;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names in dir that are directories (is_dirs) or image files; *out malloc'd. */
static loom_status list_names(const char *dir, bool is_dirs, char ***out, int *n_out,
                              loom_error *err) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    loom_status st = LOOM_OK;
    struct dirent *e;
    while ((e = readdir(d)) && st == LOOM_OK) {
        if (e->d_name[0] == '.')
            continue;
        char p[8400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (is_dirs ? !is_dir(p) : (!is_image_name(e->d_name) || is_dir(p)))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **t = realloc(names, sizeof *names * (size_t)cap);
            if (!t) {
                st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
            names = t;
        }
        if (!(names[n] = strdup(e->d_name)))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", dir);
        else
            n++;
    }
    closedir(d);
    if (st) {
        for (int i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return st;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    *out = names;
    *n_out = n;
    return LOOM_OK;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n && names; i++)
        free(names[i]);
    free(names);
}

/* img brought to (H, W, C) into out: each channel resized by area averaging (C 1: luma). */
static loom_status convert(const loom_image *img, int H, int W, int C, uint8_t *out, uint8_t *plane,
                           loom_error *err) {
    loom_preprocess_config pc;
    loom_preprocess_config_init(&pc);
    pc.invert = LOOM_INVERT_NEVER;
    pc.is_crop = false;
    pc.is_fit = false;
    if (C == 1)
        return loom_image_preprocess(img, &pc, H, W, out, NULL, err);
    for (int c = 0; c < 3; c++) {
        if (img->C == 3 || c == 0) {
            pc.gray = img->C == 3 ? (loom_gray_mode)(LOOM_GRAY_RED + c) : LOOM_GRAY_LUMA;
            loom_status st = loom_image_preprocess(img, &pc, H, W, plane, NULL, err);
            if (st)
                return st;
        }
        for (size_t i = 0; i < (size_t)H * W; i++)
            out[i * 3 + (size_t)c] = plane[i];
    }
    return LOOM_OK;
}

/* One image file's path by class and name. */
typedef struct {
    int label;
    char *path;
} folder_item;

/* The classes (DIR/train's folders, or DIR/which's when there is no train/), the items of
 * DIR/which in class then name order, and the target shape from the first training image. */
typedef struct {
    char **classes;
    int n_classes;
    folder_item *items;
    int n_items;
    int H, W, C;
} folder_plan;

static void plan_reset(folder_plan *p) {
    free_names(p->classes, p->n_classes);
    for (int i = 0; i < p->n_items; i++)
        free(p->items[i].path);
    free(p->items);
    memset(p, 0, sizeof *p);
}

static loom_status plan_items(folder_plan *p, const char *root, loom_error *err) {
    char **sub = NULL;
    int n_sub = 0, cap = 0;
    loom_status st = list_names(root, true, &sub, &n_sub, err);
    if (st)
        return st;
    if (n_sub == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: no class folders (expected %s/CLASS/IMAGE.png)", root, root);
    for (int s = 0; s < n_sub && !st; s++) {
        int label = -1;
        for (int k = 0; k < p->n_classes && label < 0; k++)
            if (strcmp(p->classes[k], sub[s]) == 0)
                label = k;
        char cdir[4500];
        snprintf(cdir, sizeof cdir, "%s/%s", root, sub[s]);
        if (label < 0) {
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s: class '%s' is not among the training classes", cdir, sub[s]);
            break;
        }
        char **files = NULL;
        int n_files = 0;
        if ((st = list_names(cdir, false, &files, &n_files, err)))
            break;
        if (n_files == 0)
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no images (png, jpg, pgm, ppm)", cdir);
        for (int f = 0; f < n_files && !st; f++) {
            if (p->n_items == cap) {
                cap = cap ? 2 * cap : 1024;
                folder_item *t = realloc(p->items, sizeof *t * (size_t)cap);
                if (!t) {
                    st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", cdir);
                    break;
                }
                p->items = t;
            }
            size_t len = strlen(cdir) + strlen(files[f]) + 2;
            char *path = malloc(len);
            if (!path) {
                st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", cdir);
                break;
            }
            snprintf(path, len, "%s/%s", cdir, files[f]);
            p->items[p->n_items++] = (folder_item){label, path};
        }
        free_names(files, n_files);
    }
    free_names(sub, n_sub);
    return st;
}

/* The first training image's size and channels: the shape every image is brought to. */
static loom_status plan_shape(folder_plan *p, const char *dir, loom_error *err) {
    char root[4200];
    snprintf(root, sizeof root, "%s/%s", dir, folder_has(dir, "train") ? "train" : "test");
    for (int k = 0; k < p->n_classes; k++) {
        char cdir[4500];
        snprintf(cdir, sizeof cdir, "%s/%s", root, p->classes[k]);
        char **files = NULL;
        int n_files = 0;
        loom_status st = list_names(cdir, false, &files, &n_files, err);
        if (st)
            return st;
        for (int f = 0; f < n_files; f++) {
            char path[4800];
            snprintf(path, sizeof path, "%s/%s", cdir, files[f]);
            loom_image *img = NULL;
            if (loom_image_load(&img, path, NULL) == LOOM_OK) {
                p->H = img->H, p->W = img->W, p->C = img->C;
                loom_image_destroy(img);
                free_names(files, n_files);
                return LOOM_OK;
            }
        }
        free_names(files, n_files);
    }
    return loom_error_set(err, LOOM_ERR_FORMAT, "%s: no readable image to take the size from",
                          root);
}

loom_status folder_load(loom_dataset **out, const char *dir, const char *which, loom_error *err) {
    *out = NULL;
    folder_plan p = {0};
    loom_dataset *ds = NULL;
    char root[4200], train_root[4200];
    snprintf(root, sizeof root, "%s/%s", dir, which);
    snprintf(train_root, sizeof train_root, "%s/train", dir);
    loom_status st = list_names(folder_has(dir, "train") ? train_root : root, true, &p.classes,
                                &p.n_classes, err);
    if (!st && (p.n_classes < 2 || p.n_classes > LOOM_MAX_CLASSES))
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: %d class folders, expected 2 to %d",
                            folder_has(dir, "train") ? train_root : root, p.n_classes,
                            LOOM_MAX_CLASSES);
    if (!st)
        st = plan_items(&p, root, err);
    if (!st)
        st = plan_shape(&p, dir, err);
    size_t D = (size_t)p.H * p.W * p.C;
    if (!st && (D == 0 || D > LOOM_MAX_VALUES))
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: images of %dx%dx%d: too large", root, p.H,
                            p.W, p.C);
    if (!st && !(ds = calloc(1, sizeof *ds)))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", root);
    uint8_t *plane = NULL;
    if (!st) {
        ds->H = p.H, ds->W = p.W, ds->C = p.C;
        ds->n_classes = p.n_classes;
        ds->x = malloc(D * (size_t)p.n_items);
        ds->y = malloc((size_t)p.n_items);
        ds->class_names = calloc((size_t)p.n_classes, sizeof *ds->class_names);
        plane = malloc((size_t)p.H * p.W);
        if (!ds->x || !ds->y || !ds->class_names || !plane)
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: %d images: out of memory", root,
                                p.n_items);
    }
    for (int k = 0; !st && k < p.n_classes; k++)
        if (!(ds->class_names[k] = strdup(p.classes[k])))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", root);
    for (int i = 0; !st && i < p.n_items; i++) {
        loom_image *img = NULL;
        loom_error e2 = {0};
        loom_status si = loom_image_load(&img, p.items[i].path, &e2);
        if (si == LOOM_OK)
            si = convert(img, p.H, p.W, p.C, ds->x + D * (size_t)ds->n, plane, &e2);
        loom_image_destroy(img);
        if (si == LOOM_ERR_NOMEM || (si && !g_skip_bad)) {
            st = loom_error_set(err, si, "%s", e2.msg);
            break;
        }
        if (si) {
            ds->n_skipped++;
            continue;
        }
        ds->y[ds->n++] = (uint8_t)p.items[i].label;
    }
    if (!st && ds->n == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no readable images", root);
    free(plane);
    plan_reset(&p);
    if (st) {
        loom_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return LOOM_OK;
}
