/* test_plot.c - the plots on a fake run directory (history, confusion, predictions, summary,
 * config pointing at a tiny generated IDX dataset, trials): every PNG is written, is a PNG and is
 * not trivially small; SVG output; overlays with +-std bands and fold directories; missing and
 * malformed inputs give LOOM_ERR_IO / LOOM_ERR_FORMAT; two threads plotting at once. */
#include "loom.h"
#include "check.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define N_TRAIN 120
#define N_TEST 60

/* PLplot, cairo and fontconfig keep caches for the life of the process: not our leaks. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig\nleak:libcairo\nleak:libpango\nleak:libplplot\nleak:libltdl\n"
           "leak:libglib\nleak:libgobject\nleak:libpixman\nleak:libfreetype\nleak:libharfbuzz\n"
           "leak:libqsastime\nleak:libcsirocsa\n";
}

/* "dir/name" in one of 16 rotating buffers: for arguments, not for keeping. */
static const char *path_in(const char *dir, const char *name) {
    static char buf[16][1024];
    static int next;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, name);
    char *p = buf[next++ % 16];
    memcpy(p, tmp, sizeof tmp);
    return p;
}

/* check_tmpdir()/name into buf (kept by the caller). */
static const char *tmp_dir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", check_tmpdir(), name);
    return buf;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    CHECK(fclose(f) == 0);
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void write_gz(const char *path, const void *data, size_t len) {
    gzFile gz = gzopen(path, "wb");
    CHECK(gz != NULL);
    if (!gz)
        return;
    CHECK(gzwrite(gz, data, (unsigned)len) == (int)len);
    CHECK(gzclose(gz) == Z_OK);
}

/* Label of image i: every class appears. */
static int label_of(int i) { return (i * 7) % 10; }

/* A tiny IDX pair: image i of class k is a blob whose place and size depend on k and i. */
static void write_idx(const char *dir, const char *prefix, int n) {
    size_t len_x = 16 + (size_t)n * 28 * 28;
    unsigned char *x = calloc(len_x, 1), *y = calloc(8 + (size_t)n, 1);
    CHECK(x && y);
    if (!x || !y) {
        free(x);
        free(y);
        return;
    }
    put_be32(x, 2051);
    put_be32(x + 4, (uint32_t)n);
    put_be32(x + 8, 28);
    put_be32(x + 12, 28);
    put_be32(y, 2049);
    put_be32(y + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int k = label_of(i);
        y[8 + i] = (unsigned char)k;
        int cr = 8 + k, cc = 6 + (i % 16), rad = 4 + k % 5;
        for (int r = 0; r < 28; r++)
            for (int c = 0; c < 28; c++) {
                int d2 = (r - cr) * (r - cr) + (c - cc) * (c - cc);
                int v = d2 < rad * rad ? 255 - d2 * 6 : (r * 5 + c * 3 + i) % 40;
                x[16 + (size_t)i * 784 + r * 28 + c] = (unsigned char)(v < 0 ? 0 : v);
            }
    }
    char name[256];
    snprintf(name, sizeof name, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    write_gz(name, x, len_x);
    snprintf(name, sizeof name, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    write_gz(name, y, 8 + (size_t)n);
    free(x);
    free(y);
}

static const char *summary_text =
    "Layer                                        Output shape             Params\n"
    "--------------------------------------------------------------------------------\n"
    "input                                        (28, 28, 1)                   0\n"
    "conv 32 3x3 relu                             (26, 26, 32)                320\n"
    "maxpool 2                                    (13, 13, 32)                  0\n"
    "dropout 0.25                                 (13, 13, 32)                  0\n"
    "flatten                                      (5408)                        0\n"
    "dense 32 relu                                (32)                    173,088\n"
    "dense 10 softmax                             (10)                        330\n"
    "--------------------------------------------------------------------------------\n"
    "Total params: 173,738\n"
    "Trainable params: 173,738\n"
    "Non-trainable params: 0\n"
    "Forward FLOPs per image: 0.78 M (training step about 2.34 M)\n";

static void write_history(const char *path, int n_epochs, double shift) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "epoch,loss,acc,val_loss,val_acc,lr,seconds\n");
    for (int e = 1; e <= n_epochs; e++) {
        double d = 1.0 / (e + 1.0);
        fprintf(f, "%d,%.5f,%.5f,%.5f,%.5f,0.001,2.5\n", e, 0.3 + d, 0.92 - d * 0.4 + shift,
                0.35 + d * 0.8 + shift, 0.9 - d * 0.35 - shift);
    }
    CHECK(fclose(f) == 0);
}

/* A run directory with every file loom_plot_run reads. Returns its path. */
static const char *make_run(const char *name, const char *model, double shift) {
    static char dirs[4][512];
    static int next;
    char *dir = dirs[next++ % 4];
    snprintf(dir, sizeof dirs[0], "%s/%s", check_tmpdir(), name);
    CHECK(mkdir(dir, 0755) == 0);
    char text[2048], data[512];
    tmp_dir(data, sizeof data, "fashion-data");
    snprintf(text, sizeof text, "model=%s\ndata_dir=%s\nseed=1\n", model, data);
    write_text(path_in(dir, "config.txt"), text);
    write_history(path_in(dir, "history.csv"), 8, shift);
    write_text(path_in(dir, "summary.txt"), summary_text);

    static const char *const names[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                          "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                          "Bag",         "Ankle boot"};
    FILE *f = fopen(path_in(dir, "confusion.csv"), "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "true\\pred");
        for (int k = 0; k < 10; k++)
            fprintf(f, ",%s", names[k]);
        fprintf(f, "\n");
        for (int t = 0; t < 10; t++) {
            fprintf(f, "%s", names[t]);
            for (int p = 0; p < 10; p++)
                fprintf(f, ",%d", t == p ? 900 - 13 * t : (t * 3 + p * 7) % 23);
            fprintf(f, "\n");
        }
        CHECK(fclose(f) == 0);
    }
    /* predictions for the tiny test set: every fourth image wrong */
    f = fopen(path_in(dir, "predictions.csv"), "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f, "index,true,pred,prob\n");
        for (int i = 0; i < N_TEST; i++) {
            int t = label_of(i), p = i % 4 == 0 ? (t + 1) % 10 : t;
            fprintf(f, "%d,%d,%d,%.4f\n", i, t, p, 0.5 + (i % 9) * 0.05);
        }
        CHECK(fclose(f) == 0);
    }
    return dir;
}

/* The file exists, starts with the PNG signature and is more than 5 KB. */
static bool is_png(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    unsigned char sig[8] = {0};
    size_t n = fread(sig, 1, 8, f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return n == 8 && memcmp(sig, png, 8) == 0 && size > 5 * 1024;
}

static bool starts_with(const char *path, const char *prefix) {
    char buf[64] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n >= strlen(prefix) && strncmp(buf, prefix, strlen(prefix)) == 0;
}

/* No out.tmp.* file was left in dir. */
static bool has_no_tmp(const char *dir) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", dir);
    return system(cmd) != 0;
}

typedef struct {
    int n_info, n_warn;
} log_count;

static void count_log(void *user, loom_log_kind kind, const char *line) {
    log_count *c = user;
    (void)line;
    if (kind == LOOM_LOG_INFO)
        c->n_info++;
    else if (kind == LOOM_LOG_WARN)
        c->n_warn++;
}

static void test_plot_run(void) {
    const char *dir = make_run("run1", "cnn1", 0.0);
    log_count lc = {0, 0};
    loom_error err = {0};
    loom_status st = loom_plot_run(dir, false, count_log, &lc, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    static const char *const files[] = {"learning_curves.png", "confusion.png",
                                        "confusion_norm.png",  "architecture.png",
                                        "samples.png",         "misclassified.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        CHECK_MSG(is_png(path_in(dir, files[i])), "%s", files[i]);
    CHECK(lc.n_info == 6);
    CHECK(lc.n_warn == 0);
    CHECK(has_no_tmp(dir));

    /* --svg: an .svg beside every .png */
    lc = (log_count){0, 0};
    st = loom_plot_run(dir, true, count_log, &lc, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(lc.n_info == 12);
    CHECK(starts_with(path_in(dir, "learning_curves.svg"), "<?xml"));
    CHECK(starts_with(path_in(dir, "confusion.svg"), "<?xml"));
}

static void test_trials(void) {
    char dir[512];
    tmp_dir(dir, sizeof dir, "tune1");
    CHECK(mkdir(dir, 0755) == 0);
    write_text(path_in(dir, "trials.csv"), "trial,score,layers,units,dropout,lr,optimizer\n"
                                           "1,0.881,2,256,0.2,0.001,adam\n"
                                           "2,0.853,4,64,0.4,0.01,adam\n"
                                           "3,0.892,3,512,0.3,0.001,sgd\n"
                                           "4,,1,128,0.1,0.01,adam\n"
                                           "5,0.886,2,512,,0.0001,rmsprop\n");
    loom_error err = {0};
    log_count lc = {0, 0};
    loom_status st = loom_plot_run(dir, false, count_log, &lc, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(is_png(path_in(dir, "trials.png")));
    CHECK(lc.n_info == 1);

    write_text(path_in(dir, "bad.csv"), "trial,accuracy\n1,0.5\n");
    CHECK(loom_plot_trials(path_in(dir, "bad.csv"), path_in(dir, "bad.png"), &err) ==
          LOOM_ERR_FORMAT);
    write_text(path_in(dir, "bad.csv"), "trial,score,lr\n1,high,0.1\n");
    CHECK(loom_plot_trials(path_in(dir, "bad.csv"), path_in(dir, "bad.png"), &err) ==
          LOOM_ERR_FORMAT);
    CHECK(strstr(err.msg, "bad.csv:2") != NULL);
}

static void test_overlay(void) {
    const char *a = make_run("run_a", "rnn", 0.02);
    const char *b = make_run("run_b", "lstm", -0.01);
    /* a CV run: fold directories with their own histories, none at the top */
    char cv[512], fd[600];
    tmp_dir(cv, sizeof cv, "cv_lstm");
    CHECK(mkdir(cv, 0755) == 0);
    for (int k = 0; k < 3; k++) {
        snprintf(fd, sizeof fd, "%s/fold%d", cv, k + 1);
        CHECK(mkdir(fd, 0755) == 0);
        write_history(path_in(fd, "history.csv"), 6 + k, 0.01 * k);
        write_text(path_in(fd, "config.txt"), "model=lstm\n");
    }
    const char *runs[3] = {a, b, cv};
    loom_error err = {0};
    char out[512];
    tmp_dir(out, sizeof out, "overlay.png");
    loom_status st = loom_plot_overlay_runs(out, runs, 3, NULL, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(is_png(out));
    st = loom_plot_overlay_runs(out, runs, 3, "val_loss", &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(loom_plot_overlay_runs(out, runs, 3, "f1", &err) == LOOM_ERR_ARG);
    /* learning curves of the CV directory: mean +- std */
    st = loom_plot_history(cv, path_in(cv, "learning_curves.png"), &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(is_png(path_in(cv, "learning_curves.png")));

    /* the general function: series with and without a band */
    double x[20], y1[20], y2[20], sd[20];
    for (int i = 0; i < 20; i++) {
        x[i] = i + 1;
        y1[i] = 80 + 10 * (1 - 1.0 / (i + 1));
        y2[i] = 75 + 12 * (1 - 1.0 / (i + 1));
        sd[i] = 1.0 + 0.1 * i;
    }
    loom_plot_series s[2] = {{"rnn", x, y1, NULL, 20}, {"lstm (5 folds)", x, y2, sd, 20}};
    tmp_dir(out, sizeof out, "overlay2.svg");
    st = loom_plot_overlay(out, "Validation accuracy", "epoch", "accuracy (%)", s, 2, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(starts_with(out, "<?xml"));
    CHECK(loom_plot_overlay(out, "t", "x", "y", s, 0, &err) == LOOM_ERR_ARG);
}

static void test_errors(void) {
    loom_error err = {0};
    char dir[512], out[600], data[512];
    tmp_dir(dir, sizeof dir, "broken");
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(out, sizeof out, "%s/out.png", dir);

    /* missing files */
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_IO);
    CHECK(strstr(err.msg, "history.csv") != NULL);
    CHECK(loom_plot_confusion(path_in(dir, "confusion.csv"), false, out, &err) == LOOM_ERR_IO);
    CHECK(loom_plot_run(dir, false, NULL, NULL, &err) == LOOM_ERR_IO);
    CHECK(loom_plot_run(path_in(dir, "nope"), false, NULL, NULL, &err) == LOOM_ERR_IO);

    /* malformed history.csv: a word for a number, a ragged row, no epochs, no column */
    write_text(path_in(dir, "history.csv"), "epoch,loss,acc,val_loss,val_acc\n1,0.5,abc,0.4,0.8\n");
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_FORMAT);
    CHECK(strstr(err.msg, "history.csv:2") != NULL);
    write_text(path_in(dir, "history.csv"), "epoch,loss,acc,val_loss,val_acc\n1,0.5,0.8\n");
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_FORMAT);
    write_text(path_in(dir, "history.csv"), "epoch,loss,acc,val_loss,val_acc\n");
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_FORMAT);
    write_text(path_in(dir, "history.csv"), "epoch,acc\n1,0.5\n");
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_FORMAT);
    write_text(path_in(dir, "history.csv"), "");
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_FORMAT);
    write_text(path_in(dir, "history.csv"), "epoch,loss,\"acc\n1,2,3\n");
    CHECK(loom_plot_history(dir, out, &err) == LOOM_ERR_FORMAT);
    CHECK(access(out, F_OK) != 0);

    /* malformed confusion.csv: too few rows, a negative count */
    write_text(path_in(dir, "confusion.csv"), "true\\pred,a,b,c\na,1,2,3\nb,4,5,6\n");
    CHECK(loom_plot_confusion(path_in(dir, "confusion.csv"), true, out, &err) == LOOM_ERR_FORMAT);
    write_text(path_in(dir, "confusion.csv"), "true\\pred,a,b\na,1,-2\nb,4,5\n");
    CHECK(loom_plot_confusion(path_in(dir, "confusion.csv"), false, out, &err) == LOOM_ERR_FORMAT);
    /* a quoted class name with a comma is fine */
    write_text(path_in(dir, "confusion.csv"), "true\\pred,\"a, b\",c\n\"a, b\",7,1\nc,2,9\n");
    CHECK(loom_plot_confusion(path_in(dir, "confusion.csv"), false, out, &err) == LOOM_OK);
    CHECK(is_png(out));

    /* summary without a layer table */
    write_text(path_in(dir, "summary.txt"), "nothing here\n");
    CHECK(loom_plot_architecture(dir, out, &err) == LOOM_ERR_FORMAT);

    /* loom_plot_run carries on past a corrupt file and returns its error */
    log_count lc = {0, 0};
    write_history(path_in(dir, "history.csv"), 3, 0.0);
    CHECK(loom_plot_run(dir, false, count_log, &lc, &err) == LOOM_ERR_FORMAT);
    CHECK(is_png(path_in(dir, "learning_curves.png")));
    CHECK(lc.n_info == 3); /* learning curves, confusion, confusion_norm; not architecture */
    CHECK(strstr(err.msg, "summary.txt") != NULL);

    /* predictions that do not match the test set */
    loom_dataset *ds = NULL;
    CHECK(loom_dataset_load_dir(&ds, tmp_dir(data, sizeof data, "fashion-data"), "test", &err) ==
          LOOM_OK);
    write_text(path_in(dir, "predictions.csv"), "index,true,pred,prob\n0,5,1,0.9\n");
    CHECK(loom_plot_misclassified(ds, path_in(dir, "predictions.csv"), 10, out, &err) ==
          LOOM_ERR_FORMAT);
    write_text(path_in(dir, "predictions.csv"), "index,true,pred,prob\n999,0,1,0.9\n");
    CHECK(loom_plot_misclassified(ds, path_in(dir, "predictions.csv"), 10, out, &err) ==
          LOOM_ERR_FORMAT);
    CHECK(loom_plot_samples(ds, 0, out, &err) == LOOM_ERR_ARG);
    loom_dataset_destroy(ds);

    /* an output directory that does not exist */
    write_history(path_in(dir, "history.csv"), 3, 0.0);
    CHECK(loom_plot_history(dir, path_in(dir, "no/such/dir/x.png"), &err) == LOOM_ERR_IO);
    CHECK(has_no_tmp(dir));
}

typedef struct {
    const char *src, *out;
    loom_status st;
} thread_job;

static void *plot_thread(void *arg) {
    thread_job *j = arg;
    loom_error err = {0};
    for (int i = 0; i < 3 && j->st == LOOM_OK; i++)
        j->st = loom_plot_history(j->src, j->out, &err);
    return NULL;
}

/* Whether a pixel of img near (x, y) (within 2 pixels) is not the white background. */
static bool is_inked(const loom_image *img, int x, int y) {
    for (int dy = -2; dy <= 2; dy++)
        for (int dx = -2; dx <= 2; dx++) {
            int xx = x + dx, yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= img->W || yy >= img->H)
                continue;
            const uint8_t *p = img->px + ((size_t)yy * img->W + xx) * img->C;
            if (p[0] < 200)
                return true;
        }
    return false;
}

/* A residual block that wraps into the next column keeps its shortcut: a line down the left of
 * the head's column below the head, and from the top of the next column into the addition. */
static void test_arch_wrapped_shortcut(void) {
    char dir[1024];
    tmp_dir(dir, sizeof dir, "arch-wrap");
    mkdir(dir, 0755);
    const char *rows[] = {
        "input",  "conv 8 3x3 same",   "residual {",  "  conv 8 3x3 same", "  batchnorm",
        "  relu", "  conv 8 3x3 same", "  batchnorm", "} + input, relu",   "conv 8 3x3 same",
        "relu",   "flatten",           "dense 32",    "dense 10 softmax"};
    char text[4096];
    int len = snprintf(text, sizeof text, "%-44s %-16s %10s\n%s\n", "Layer", "Output shape",
                       "Params", "----------------------------------------------------------");
    for (int i = 0; i < 14; i++)
        len += snprintf(text + len, sizeof text - len, "%-44s %-16s %10s\n", rows[i],
                        i == 8 ? "" : "(28, 28, 8)", i == 8 ? "" : "80");
    snprintf(text + len, sizeof text - len, "%s\nTotal params: 1,000\n",
             "----------------------------------------------------------");
    write_text(path_in(dir, "summary.txt"), text);
    char out[1100];
    snprintf(out, sizeof out, "%s/arch.png", dir);
    loom_error err = {0};
    CHECK_MSG(loom_plot_architecture(dir, out, &err) == LOOM_OK, "%s", err.msg);
    loom_image *img = NULL;
    CHECK_MSG(loom_image_load(&img, out, &err) == LOOM_OK, "%s", err.msg);
    if (!img)
        return;
    /* the layout (plot_arch.c): 14 boxes in 2 columns of 7, 580 wide, 90 apart, margin 50; the
     * first box's top 160 pixels down, boxes 44 high, 24 apart; the shortcut runs 14 pixels left
     * of a top-level column */
    CHECK(img->W == 2 * 50 + 2 * 580 + 90);
    int x_col0 = 50 - 14, x_col1 = 50 + 580 + 90 - 14;
    int y_below_head = 160 + 3 * 68 + 10, y_col_top = 160 - 4;
    CHECK_MSG(is_inked(img, x_col0, y_below_head), "no shortcut below the head's box");
    CHECK_MSG(is_inked(img, x_col0, 160 + 7 * 68 - 14), "no shortcut at the column's bottom");
    CHECK_MSG(is_inked(img, x_col1, y_col_top), "no shortcut at the next column's top");
    /* and none left of the first column above its head box */
    CHECK(!is_inked(img, x_col0, 160 + 22));
    loom_image_destroy(img);
}

static void test_threads(void) {
    char dir[512], t1[512], t2[512];
    thread_job jobs[2] = {
        {tmp_dir(dir, sizeof dir, "run1"), tmp_dir(t1, sizeof t1, "t1.png"), LOOM_OK},
        {dir, tmp_dir(t2, sizeof t2, "t2.svg"), LOOM_OK}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, plot_thread, &jobs[i]) == 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(jobs[0].st == LOOM_OK && jobs[1].st == LOOM_OK);
    CHECK(is_png(jobs[0].out));
    CHECK(starts_with(jobs[1].out, "<?xml"));
}

int main(void) {
    char data[512];
    CHECK(mkdir(tmp_dir(data, sizeof data, "fashion-data"), 0755) == 0);
    write_idx(data, "train", N_TRAIN);
    write_idx(data, "t10k", N_TEST);
    RUN(test_plot_run);
    RUN(test_trials);
    RUN(test_overlay);
    RUN(test_errors);
    RUN(test_arch_wrapped_shortcut);
    RUN(test_threads);
    return check_report();
}
