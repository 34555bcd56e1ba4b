/* main.c - the loom command: dispatches to one cmd_<name>.c per subcommand. */
#include "cli.h"
#include "../src/core/core.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"study", cmd_study, "run every study and write the report (the main job)"},
    {"train", cmd_train, "train a model and write a run directory"},
    {"eval", cmd_eval, "evaluate a model file (test set by default)"},
    {"summary", cmd_summary, "layer table, parameter counts and FLOPs of a model"},
    {"models", cmd_models, "list the built-in model zoo (-v: training defaults)"},
    {"report", cmd_report, "the study report (REPORT.md + pictures) of run directories"},
    {"bench", cmd_bench, "training and inference images/s and GFLOP/s"},
    {"cv", cmd_cv, "stratified k-fold cross-validation of a model (mean ± std)"},
    {"tune", cmd_tune, "hyperparameter search over a search-space file (random, hyperband)"},
    {"compare", cmd_compare, "compare run directories in one table, with McNemar's test"},
    {"plot", cmd_plot, "PNG/SVG plots of a run directory (or --overlay of several runs)"},
    {"predict", cmd_predict, "top classes of PNG/JPEG/PGM/PPM images or IDX images"},
    {"export", cmd_export, "write a model file as ONNX, safetensors or standalone C"},
    {"quantize", cmd_quantize, "an int8 copy of a model file (post-training quantization)"},
    {"import", cmd_import, "a model from ONNX, or safetensors weights, as a loom model file"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof *commands))

static void usage(FILE *f) {
    fprintf(f, "usage: loom COMMAND [options]   (loom COMMAND --help for its options)\n\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f,
            "\nData: --data DIR or $LOOM_DATA (default %s): IDX files, or image folders\n"
            "DIR/train/CLASS/*.png|jpg and DIR/test/CLASS/*; --skip-bad-images (any command)\n"
            "leaves unreadable images out instead of stopping.\n",
            loom_default_data_dir());
}

/* GNU OpenMP lets an idle worker spin for about 300,000 iterations before it sleeps. On a quiet
 * machine that saves a wake-up per parallel region; on a busy one (another job on a core) the
 * spinning workers take the time the working thread needs: training ran 1.5 to 2x slower here
 * than with workers that sleep at once (OMP_WAIT_POLICY=passive), which on a quiet machine cost
 * lstm 38% and conv-maxpool 9% when measured (docs/BENCHMARKS.md; lstm then still opened a
 * parallel region per time step), and mlp 40% (a region every few microseconds). So loom
 * looks at the number of runnable tasks (/proc/loadavg, five samples over 20 ms) less its own
 * (OpenBLAS starts a thread that spins for its first tens of milliseconds: counted as another
 * job, it made every start look busy): when something else keeps a core busy and the user has
 * set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, it asks for passive workers and runs itself
 * again, since libgomp reads its settings before main. Once: LOOM_REEXEC guards it; on any
 * failure loom goes on as it is; never under valgrind. */
static int running_tasks(void) {
    FILE *f = fopen("/proc/loadavg", "r");
    int running = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%*s %*s %*s %d/", &running) != 1)
        running = -1;
    fclose(f);
    return running;
}

/* Threads of this process that are running or runnable (state R in /proc/self/task/N/stat). */
static int own_running_threads(void) {
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return 1;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[len] = '\0';
        const char *paren = strrchr(line, ')'); /* the name in (...) may hold spaces */
        if (paren && paren[1] == ' ' && paren[2] == 'R')
            n++;
    }
    closedir(d);
    return n > 0 ? n : 1;
}

static bool is_machine_busy(void) {
    int busy_samples = 0;
    for (int i = 0; i < 5; i++) {
        int running = running_tasks();
        if (running < 0)
            return false;
        if (running > own_running_threads())
            busy_samples++;
        if (i < 4)
            usleep(5000);
    }
    return busy_samples >= 3; /* another task running in most samples */
}

/* Commands whose work is a few milliseconds (one image's prediction, a listing, a file
 * written): the wait policy cannot matter to them, and the check (20 ms) and a second start
 * (tens of ms more on a busy machine) would be most of their time. `loom predict` of image files
 * only: with --idx it runs batches for as long as the file takes. */
static bool is_short_command(char **argv) {
    static const char *const names[] = {"predict", "models", "summary", "export", "--version"};
    if (!argv[0] || !argv[1])
        return true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(argv[1], names[i]) == 0) {
            for (int a = 2; argv[a] && i == 0; a++)
                if (strncmp(argv[a], "--idx", 5) == 0)
                    return false;
            return true;
        }
    return false;
}

static void set_wait_policy(char **argv) {
    if (getenv("LOOM_REEXEC")) {
        /* child processes (study steps) decide for themselves: libgomp has read the policy */
        unsetenv("LOOM_REEXEC");
        unsetenv("OMP_WAIT_POLICY");
        cli_is_passive_auto = true;
        return;
    }
    /* under valgrind /proc/self/exe is valgrind's tool, and a new image would escape it */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        return;
    if (is_short_command(argv) || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") ||
        !is_machine_busy())
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) || setenv("LOOM_REEXEC", "1", 1))
        return;
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY"); /* not run again: leave the environment as it was */
    unsetenv("LOOM_REEXEC");
}

/* The commands that a job of several processes shares (the others run in one process). */
static bool is_job_command(const char *cmd) {
    return strcmp(cmd, "train") == 0 || strcmp(cmd, "cv") == 0 || strcmp(cmd, "tune") == 0 ||
           strcmp(cmd, "study") == 0;
}

static int run(int argc, char **argv);

/* Every process of a job must run the same loom with the same arguments: a CRC-32 of the
 * program's file and of argv, compared with rank 0's. False (rank 0 printed why) when they
 * differ anywhere. */
static bool is_same_command(int argc, char **argv) {
    uint32_t mine[2] = {0, 0};
    char *exe = NULL;
    size_t len = 0;
    loom_error e = {0};
    if (loom_file_read_all("/proc/self/exe", &exe, &len, &e) == LOOM_OK)
        mine[0] = loom_crc32(0, exe, len);
    free(exe);
    for (int i = 1; i < argc; i++)
        mine[1] = loom_crc32(mine[1], argv[i], strlen(argv[i]) + 1);
    int n = loom_dist_size();
    uint32_t *all = calloc((size_t)n * 2, sizeof *all);
    if (!all)
        return false; /* every process fails alike, or the job ends */
    loom_dist_allgather(mine, sizeof mine, all);
    int differs = -1;
    for (int i = 1; i < n && differs < 0; i++)
        if (all[2 * i] != all[0] || all[2 * i + 1] != all[1])
            differs = i;
    if (differs > 0 && loom_dist_rank() == 0)
        fprintf(stderr,
                "loom: error: process %d runs %s than process 0: start every process with the same "
                "loom and the same command\n",
                differs, all[2 * differs] != all[0] ? "another loom binary" : "other arguments");
    free(all);
    return differs < 0;
}

int main(int argc, char **argv) {
    set_wait_policy(argv);
    loom_error err = {0};
    if (loom_dist_init(&argc, &argv, &err)) {
        fprintf(stderr, "loom: error: %s\n", err.msg);
        return EXIT_RUN;
    }
    int code;
    if (loom_dist_size() > 1 && argc >= 2 && !is_job_command(argv[1]) && argv[1][0] != '-') {
        /* every process decides alike: rank 0 says it */
        if (loom_dist_rank() == 0)
            fprintf(stderr,
                    "loom: error: 'loom %s' runs in one process: run it without mpirun (train, "
                    "cv, tune and study share their work over the processes)\n",
                    argv[1]);
        code = EXIT_USAGE;
    } else if (loom_dist_size() > 1 && !is_same_command(argc, argv)) {
        code = EXIT_USAGE;
    } else {
        /* rank 0 speaks for the job: the others keep only their own error messages */
        if (loom_dist_rank() > 0 && !freopen("/dev/null", "w", stdout))
            return EXIT_RUN;
        code = run(argc, argv);
        /* a process failing alone (its disk, its data) would leave the others waiting */
        if (code != 0 && !loom_dist_is_agreed())
            loom_dist_abort(code);
    }
    loom_dist_finalize();
    return code;
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("loom %s\n", LOOM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3 || strcmp(argv[2], "help") == 0) {
            usage(stdout);
            return 0;
        }
        for (int i = 0; i < N_COMMANDS; i++)
            if (strcmp(argv[2], commands[i].name) == 0) {
                /* commands read argv[-1] (the program) for their recorded command line */
                char *hargv[] = {argv[0], argv[2], "--help", NULL};
                return commands[i].run(2, hargv + 1);
            }
        fprintf(stderr, "loom: error: unknown command '%s' (see 'loom --help')\n", argv[2]);
        return EXIT_USAGE;
    }
    bool is_plotting =
        strcmp(cmd, "train") == 0 || strcmp(cmd, "cv") == 0 || strcmp(cmd, "tune") == 0;
    /* --no-plots: the commands that end by drawing their run's plots; --skip-bad-images: every
     * command that reads data (image folders) */
    int j = 1;
    for (int i = 1; i < argc; i++) {
        if (is_plotting && strcmp(argv[i], "--no-plots") == 0)
            cli_is_plots = false;
        else if (strcmp(argv[i], "--skip-bad-images") == 0)
            loom_set_skip_bad_images(true);
        else
            argv[j++] = argv[i];
    }
    argc = j;
    argv[argc] = NULL;
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "loom: error: unknown command '%s' (see 'loom --help')\n", cmd);
    return EXIT_USAGE;
}
