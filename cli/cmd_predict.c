/* cmd_predict.c - `loom predict MODEL_FILE IMAGE... [--idx FILE] [--top K] [--json]`: the top
 * classes of image files (PNG, JPEG, PGM/PPM, preprocessed to the dataset's convention) or of
 * the raw images of an IDX file. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
    printf("usage: loom predict MODEL_FILE [IMAGE...] [options]\n\n"
           "Prints the most likely classes of each image: PNG, JPEG, PGM or PPM files of any\n"
           "size and colour, turned into the dataset's convention (gray, a light garment on\n"
           "black, cropped, fitted into 28x28 and centred).\n\n"
           "  --top K                  classes per image (default 3)\n"
           "  --json                   one JSON document instead of one line per image\n"
           "  --idx FILE               also every image of an IDX file, used as it is\n"
           "  --save-preprocessed DIR  write the 28x28 image the model saw as DIR/NAME.png\n"
           "  --gray MODE              colour to gray: luma (default), mean, red, green, blue\n"
           "  --invert, --no-invert    always / never invert (default: when the border is light)\n"
           "  --no-crop                keep the whole image (default: crop to the object)\n"
           "  --no-fit                 stretch to 28x28 (default: keep the aspect ratio)\n"
           "  --threads N              worker threads\n");
}

int cmd_predict(int argc, char **argv) {
    static const struct option opts[] = {{"top", 1, 0, 'k'},       {"json", 0, 0, 'j'},
                                         {"idx", 1, 0, 'x'},       {"save-preprocessed", 1, 0, 's'},
                                         {"gray", 1, 0, 'g'},      {"invert", 0, 0, 'I'},
                                         {"no-invert", 0, 0, 'N'}, {"no-crop", 0, 0, 'C'},
                                         {"no-fit", 0, 0, 'F'},    {"threads", 1, 0, 't'},
                                         {"help", 0, 0, 'h'},      {0, 0, 0, 0}};
    loom_predict_config pc;
    loom_predict_config_init(&pc);
    int threads = 0, c;
    optind = 1;
    while ((c = cli_getopt("predict", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 'k':
            if (!cli_int("predict", "--top", optarg, 1, LOOM_MAX_CLASSES, &pc.top_k))
                return EXIT_USAGE;
            break;
        case 'j': pc.is_json = true; break;
        case 'x': pc.idx_path = optarg; break;
        case 's': pc.save_dir = optarg; break;
        case 'g':
            if (!loom_gray_mode_parse(optarg, &pc.pre.gray))
                return cli_usage_error(
                    "predict", "--gray expects luma, mean, red, green or blue, got '%s'", optarg);
            break;
        case 'I': pc.pre.invert = LOOM_INVERT_ALWAYS; break;
        case 'N': pc.pre.invert = LOOM_INVERT_NEVER; break;
        case 'C': pc.pre.is_crop = false; break;
        case 'F': pc.pre.is_fit = false; break;
        case 't':
            if (!cli_int("predict", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("predict", "no model file given");
    pc.model_file = argv[optind];
    pc.images = (const char *const *)argv + optind + 1;
    pc.n_images = argc - optind - 1;
    if (pc.n_images == 0 && !pc.idx_path)
        return cli_usage_error("predict", "no images given");
    pc.log = cli_log;
    cli_set_threads(threads);
    loom_error err = {0};
    if (loom_run_predict(&pc, stdout, &err))
        return cli_fail(&err);
    return 0;
}
