/* main.c - argument parsing and dispatch to blurd's commands; nothing else.
 *
 * Exit codes, for every command: 0 success, 1 some files failed, 2 usage, configuration
 * or model error, 130 interrupted. */
#include "blurd/classify.h"
#include "blurd/config.h"
#include "blurd/daemon.h"
#include "blurd/dataset.h"
#include "blurd/error.h"
#include "blurd/eval.h"
#include "blurd/image.h"
#include "blurd/inspect.h"
#include "blurd/log.h"
#include "blurd/model.h"
#include "blurd/net.h"
#include "blurd/train.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BLURD_VERSION
#define BLURD_VERSION "unknown"
#endif

enum exit_code {
    EXIT_OK = 0,
    EXIT_FILES_FAILED = 1,
    EXIT_USAGE = 2,
    EXIT_INTERRUPTED = 130,
};

static const char main_usage[] =
    "Usage: blurd COMMAND [OPTIONS]\n"
    "\n"
    "Sorts photos into blurred and clear with a convolutional network.\n"
    "\n"
    "Commands:\n"
    "  classify PATH...     judge image files and folders, print one line per image\n"
    "  daemon -c FILE       watch folders, judge and record (and sort) every new photo\n"
    "  eval DATA            measure a model on DATA/Blurred and DATA/Undistorted\n"
    "  model info FILE      show a model's layers, parameter count and metadata\n"
    "  synth SHARP OUT      make a labelled training set from a folder of sharp photos\n"
    "  train DATA -o FILE   train a model on DATA/Blurred and DATA/Undistorted\n"
    "\n"
    "Options:\n"
    "  -h, --help           show this help (or `blurd COMMAND --help`)\n"
    "  -V, --version        show the version\n"
    "\n"
    "Exit status: 0 success, 1 some files failed, 2 usage, configuration or model\n"
    "error, 130 interrupted.\n";

static const char classify_usage[] =
    "Usage: blurd classify [OPTIONS] PATH...\n"
    "\n"
    "Judges each image as blurred or clear.  Folders are read to one level, or all\n"
    "levels with -r; inside folders only image files (jpg, png, webp, tif, gif, heic,\n"
    "avif) are taken and the rest are skipped and counted.  Results go to stdout in\n"
    "the order given; errors, a progress bar (on a terminal) and a summary to stderr.\n"
    "\n"
    "Options:\n"
    "  -r, --recursive         descend into subfolders\n"
    "  -m, --model FILE        model file (default: $BLURD_MODEL, else\n"
    "                          models/default.safetensors, else the installed one)\n"
    "  -i, --input MODE        tiles | resize (default: what the model prescribes)\n"
    "  -t, --threshold T       p(blurred) at or above which an image is blurred\n"
    "                          (default: the model's, usually 0.5)\n"
    "      --method METHOD     network (default) | laplacian: the classical variance of\n"
    "                          the Laplacian of the grey image; fast, needs no model;\n"
    "                          prints it as `score` (p_blurred and p_clear stay empty)\n"
    "      --laplacian-threshold T\n"
    "                          laplacian: a variance below T is blurred (default: 100,\n"
    "                          the commonly published rule of thumb; `blurd eval\n"
    "                          --compare laplacian` fits a better one for your photos)\n"
    "  -f, --format FORMAT     table | csv | json (default: table)\n"
    "  -j, --jobs N            CPU cores to use (default: all of them)\n"
    "      --files-from FILE   also read paths from FILE, one per line (- for stdin)\n"
    "      --db FILE           also record results in this SQLite database\n"
    "      --max-megapixels N  refuse larger images before decoding (default: 100)\n"
    "      --progress          show progress even when stderr is not a terminal\n"
    "      --no-progress       never show progress\n"
    "  -q, --quiet             no summary line\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 all files judged, 1 some files failed, 2 usage, model or\n"
    "database error, 130 interrupted.\n";

static const char daemon_usage[] =
    "Usage: blurd daemon [-c FILE] [OPTIONS]\n"
    "       blurd daemon --check [-c FILE] [OPTIONS]\n"
    "\n"
    "Watches folders for new photos, judges each one when it has been written and has\n"
    "settled, records the result in the database and, with --move (or move = yes),\n"
    "moves it into Blurred/ or Undistorted/ beside it.  Runs in the foreground, as\n"
    "systemd expects (Type=notify); SIGTERM finishes the photos in flight and stops,\n"
    "SIGHUP reloads the configuration and the model.  At start it catches up on photos\n"
    "that arrived while it was stopped.\n"
    "\n"
    "Options (each overrides the file's setting):\n"
    "  -c, --config FILE       configuration file (see etc/blurd.conf)\n"
    "      --check             validate configuration, model and database, then exit\n"
    "  -w, --watch DIR         folder to watch (repeat for several)\n"
    "      --db FILE           results database\n"
    "  -m, --model FILE        model file\n"
    "      --move, --no-move   move judged photos into their verdict's folder, or not\n"
    "      --settle SECONDS    quiet time before a written file is judged\n"
    "      --workers N         photos judged at once\n"
    "  -i, --input MODE        tiles | resize | model\n"
    "  -t, --threshold T       p(blurred) at or above which a photo is blurred\n"
    "  -v, --verbose           log every photo judged (log_level = info)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 stopped cleanly (or --check passed), 2 configuration, model or\n"
    "database error.\n";

static const char model_usage[] =
    "Usage: blurd model info FILE\n"
    "       blurd model info --arch default\n"
    "\n"
    "Shows a model's layers with their output shapes and parameter counts, the totals,\n"
    "and the metadata it carries (preprocessing, classes, threshold, provenance).\n"
    "With --arch default, describes the built-in default architecture (no file needed).\n";

static const char eval_usage[] =
    "Usage: blurd eval DATA [OPTIONS]\n"
    "\n"
    "Measures how well a model tells blurred from clear photos in a labelled set: the\n"
    "images directly inside DATA/Blurred and DATA/Undistorted, the layout `blurd train`\n"
    "reads.  Prints the counts, accuracy and balanced accuracy at the model's threshold,\n"
    "ROC AUC, the confusion matrix, the threshold that would be best on this data (and the\n"
    "balanced accuracy there) and the files the model misjudged.  Unreadable or corrupt\n"
    "images are skipped with a warning and counted.\n"
    "\n"
    "Options:\n"
    "  -m, --model FILE        model file (default: $BLURD_MODEL, else\n"
    "                          models/default.safetensors, else the installed one)\n"
    "  -i, --input MODE        tiles | resize (default: what the model prescribes)\n"
    "      --compare laplacian also score every image with the variance of the\n"
    "                          Laplacian, in a column beside the model's; its threshold\n"
    "                          is fitted on this same data (the best balanced accuracy)\n"
    "  -j, --jobs N            CPU cores to use (default: all of them)\n"
    "  -f, --format FORMAT     table | json (default: table)\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: 0 report printed, 2 usage, model or data error (DATA or a class folder\n"
    "missing, or a class without a readable image).\n";

static int usage_error(const char *usage_hint, const char *format, const char *detail)
{
    fprintf(stderr, "blurd: ");
    fprintf(stderr, format, detail);
    fprintf(stderr, "\nTry '%s --help'.\n", usage_hint);
    return EXIT_USAGE;
}

static int parse_float(const char *text, float *out)
{
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0')
        return -1;
    *out = (float)v;
    return 0;
}

static int parse_int(const char *text, long low, long high, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < low || v > high)
        return -1;
    *out = v;
    return 0;
}

/* "tiles" or "resize", the option shared by classify and eval, into an input mode. */
static int parse_input(const char *text, int *out)
{
    if (strcmp(text, "tiles") == 0)
        *out = BLURD_INPUT_TILES;
    else if (strcmp(text, "resize") == 0)
        *out = BLURD_INPUT_RESIZE;
    else
        return -1;
    return 0;
}

/* --seed: a whole number from 0 to 2^64-1, plain digits only (strtoull would take "-1"
 * as 2^64-1). */
static int parse_seed(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* --jobs: a whole number of cores from 1 to 256. */
static int parse_jobs(const char *text, int *out)
{
    long number;
    if (parse_int(text, 1, 256, &number) != 0)
        return -1;
    *out = (int)number;
    return 0;
}

static int command_classify(int argc, char **argv)
{
    enum {
        OPT_FILES_FROM = 256,
        OPT_DB,
        OPT_MAX_MEGAPIXELS,
        OPT_PROGRESS,
        OPT_NO_PROGRESS,
        OPT_METHOD,
        OPT_LAPLACIAN_THRESHOLD,
    };
    static const struct option long_options[] = {
        {"recursive", no_argument, NULL, 'r'},
        {"method", required_argument, NULL, OPT_METHOD},
        {"laplacian-threshold", required_argument, NULL, OPT_LAPLACIAN_THRESHOLD},
        {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},
        {"threshold", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"jobs", required_argument, NULL, 'j'},
        {"files-from", required_argument, NULL, OPT_FILES_FROM},
        {"db", required_argument, NULL, OPT_DB},
        {"max-megapixels", required_argument, NULL, OPT_MAX_MEGAPIXELS},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct blurd_classify_options options = {
        .input = -1,
        .threshold = -1.0f,
        .format = BLURD_FORMAT_TABLE,
        .jobs = cores > 0 ? (int)cores : 1,
        .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS,
        .progress = -1,
        .laplacian_threshold = -1.0,
    };
    int quiet = 0, c;
    float laplacian_threshold;
    const char *hint = "blurd classify";
    while ((c = getopt_long(argc, argv, "rm:i:t:f:j:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 'r':
            options.recursive = 1;
            break;
        case 'm':
            options.model_path = optarg;
            break;
        case 'i':
            if (parse_input(optarg, &options.input) != 0)
                return usage_error(hint, "--input must be tiles or resize, not '%s'", optarg);
            break;
        case 't':
            if (parse_float(optarg, &options.threshold) != 0 || !(options.threshold > 0.0f) ||
                !(options.threshold < 1.0f))
                return usage_error(hint, "--threshold must be a number between 0 and 1, not '%s'",
                                   optarg);
            break;
        case 'f':
            if (strcmp(optarg, "table") == 0)
                options.format = BLURD_FORMAT_TABLE;
            else if (strcmp(optarg, "csv") == 0)
                options.format = BLURD_FORMAT_CSV;
            else if (strcmp(optarg, "json") == 0)
                options.format = BLURD_FORMAT_JSON;
            else
                return usage_error(hint, "--format must be table, csv or json, not '%s'", optarg);
            break;
        case 'j':
            if (parse_jobs(optarg, &options.jobs) != 0)
                return usage_error(hint, "--jobs must be a whole number from 1 to 256, not '%s'",
                                   optarg);
            break;
        case OPT_FILES_FROM:
            options.files_from = optarg;
            break;
        case OPT_DB:
            options.db_path = optarg;
            break;
        case OPT_MAX_MEGAPIXELS:
            /* read as the configuration's max_megapixels is: 0.26 is 260000 pixels */
            if (blurd_config_parse_megapixels(optarg, &options.max_pixels) != 0)
                return usage_error(
                    hint, "--max-megapixels must be a number above 0 and at most 10000, not '%s'",
                    optarg);
            break;
        case OPT_PROGRESS:
            options.progress = 1;
            break;
        case OPT_NO_PROGRESS:
            options.progress = 0;
            break;
        case OPT_METHOD:
            if (strcmp(optarg, "network") == 0)
                options.method = BLURD_METHOD_NETWORK;
            else if (strcmp(optarg, "laplacian") == 0)
                options.method = BLURD_METHOD_LAPLACIAN;
            else
                return usage_error(hint, "--method must be network or laplacian, not '%s'", optarg);
            break;
        case OPT_LAPLACIAN_THRESHOLD:
            if (parse_float(optarg, &laplacian_threshold) != 0 || !(laplacian_threshold >= 0.0f) ||
                laplacian_threshold > 1e9f)
                return usage_error(
                    hint, "--laplacian-threshold must be a number from 0 to 1e9, not '%s'", optarg);
            options.laplacian_threshold = (double)laplacian_threshold;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(classify_usage, stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'blurd classify --help'.\n");
            return EXIT_USAGE;
        }
    }
    options.paths = (const char *const *)argv + optind;
    options.path_count = argc - optind;
    if (options.path_count == 0 && options.files_from == NULL)
        return usage_error(hint, "%s", "classify needs at least one PATH or --files-from");
    /* Options of the other method would be silently ignored: say so instead. */
    if (options.method == BLURD_METHOD_LAPLACIAN &&
        (options.model_path != NULL || options.input >= 0 || options.threshold >= 0.0f))
        return usage_error(hint, "%s",
                           "--model, --input and --threshold are the network's; --method "
                           "laplacian takes --laplacian-threshold");
    if (options.method == BLURD_METHOD_NETWORK && options.laplacian_threshold >= 0.0)
        return usage_error(hint, "%s", "--laplacian-threshold needs --method laplacian");

    char err[BLURD_ERR_LEN];
    if (blurd_image_init(argv[0], err) != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    struct blurd_classify_summary summary;
    int rc = blurd_classify_run(&options, &summary, err);
    if (rc != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    if (!quiet) {
        double rate = summary.seconds > 0.0
                          ? (double)(summary.blurred + summary.clear) / summary.seconds
                          : 0.0;
        fprintf(stderr,
                "blurd: %zu judged (%zu blurred, %zu clear), %zu failed, %zu skipped in %.1f s "
                "(%.1f images/s)%s\n",
                summary.blurred + summary.clear, summary.blurred, summary.clear, summary.failed,
                summary.skipped, summary.seconds, rate, summary.interrupted ? ", interrupted" : "");
    }
    if (summary.interrupted)
        return EXIT_INTERRUPTED;
    return summary.failed > 0 ? EXIT_FILES_FAILED : EXIT_OK;
}

static int command_daemon(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_DB, OPT_MOVE, OPT_NO_MOVE, OPT_SETTLE, OPT_WORKERS };
    static const struct option long_options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, OPT_CHECK},
        {"watch", required_argument, NULL, 'w'},
        {"db", required_argument, NULL, OPT_DB},
        {"model", required_argument, NULL, 'm'},
        {"move", no_argument, NULL, OPT_MOVE},
        {"no-move", no_argument, NULL, OPT_NO_MOVE},
        {"settle", required_argument, NULL, OPT_SETTLE},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"input", required_argument, NULL, 'i'},
        {"threshold", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Every option is a configuration override, validated by the config module. */
    struct blurd_daemon_override *overrides = calloc((size_t)argc + 1, sizeof *overrides);
    if (overrides == NULL)
        return EXIT_USAGE;
    struct blurd_daemon_options options = {.overrides = overrides};
    int check = 0, c;
    while ((c = getopt_long(argc, argv, "c:w:m:i:t:vh", long_options, NULL)) != -1) {
        struct blurd_daemon_override *o = &overrides[options.override_count];
        switch (c) {
        case 'c':
            options.config_path = optarg;
            continue;
        case OPT_CHECK:
            check = 1;
            continue;
        case 'h':
            fputs(daemon_usage, stdout);
            free(overrides);
            return EXIT_OK;
        case 'w':
            *o = (struct blurd_daemon_override){"watch", "folder", optarg};
            break;
        case OPT_DB:
            *o = (struct blurd_daemon_override){"daemon", "database", optarg};
            break;
        case 'm':
            *o = (struct blurd_daemon_override){"model", "path", optarg};
            break;
        case OPT_MOVE:
            *o = (struct blurd_daemon_override){"sort", "move", "yes"};
            break;
        case OPT_NO_MOVE:
            *o = (struct blurd_daemon_override){"sort", "move", "no"};
            break;
        case OPT_SETTLE:
            *o = (struct blurd_daemon_override){"watch", "settle", optarg};
            break;
        case OPT_WORKERS:
            *o = (struct blurd_daemon_override){"daemon", "workers", optarg};
            break;
        case 'i':
            *o = (struct blurd_daemon_override){"model", "input", optarg};
            break;
        case 't':
            *o = (struct blurd_daemon_override){"model", "threshold", optarg};
            break;
        case 'v':
            *o = (struct blurd_daemon_override){"daemon", "log_level", "info"};
            break;
        default:
            fprintf(stderr, "Try 'blurd daemon --help'.\n");
            free(overrides);
            return EXIT_USAGE;
        }
        options.override_count++;
    }
    if (optind < argc) {
        free(overrides);
        return usage_error("blurd daemon", "unexpected argument '%s'", argv[optind]);
    }
    char err[BLURD_ERR_LEN];
    int rc = check ? blurd_daemon_check(&options, err) : blurd_daemon_run(&options, err);
    free(overrides);
    if (rc != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    if (check)
        printf("%s: configuration, model and database are usable\n",
               options.config_path != NULL ? options.config_path : "blurd daemon");
    return EXIT_OK;
}

static int command_model(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(model_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(argv[1], "info") != 0)
        return usage_error("blurd model", "unknown model command '%s'", argv[1]);
    if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        fputs(model_usage, stdout);
        return EXIT_OK;
    }
    char err[BLURD_ERR_LEN];
    blurd_model *model = NULL;
    int rc;
    if (argc == 4 && strcmp(argv[2], "--arch") == 0) {
        if (strcmp(argv[3], "default") != 0)
            return usage_error("blurd model", "unknown architecture '%s' (known: default)",
                               argv[3]);
        rc = blurd_model_create(&model, BLURD_DEFAULT_SPEC, 0, err);
    } else if (argc == 3 && strcmp(argv[2], "--arch") == 0) {
        return usage_error("blurd model", "%s",
                           "model info --arch needs an architecture (known: default)");
    } else if (argc == 3 && argv[2][0] == '-' && argv[2][1] != '\0') {
        /* A file whose name starts with '-' is still reachable as ./-name. */
        return usage_error("blurd model", "model info: unrecognized option '%s'", argv[2]);
    } else if (argc == 3) {
        rc = blurd_model_load(&model, argv[2], err);
    } else {
        return usage_error("blurd model", "%s", "model info takes one FILE or --arch default");
    }
    if (rc != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    blurd_inspect_print(stdout, model, argc == 3);
    blurd_model_free(model);
    return EXIT_OK;
}

static int command_eval(int argc, char **argv)
{
    enum { OPT_COMPARE = 256 };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},
        {"compare", required_argument, NULL, OPT_COMPARE},
        {"jobs", required_argument, NULL, 'j'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    struct blurd_eval_options options = {
        .input = -1,
        .format = BLURD_FORMAT_TABLE,
        .jobs = cores > 0 ? (int)cores : 1,
        .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS,
        .progress = -1,
    };
    const char *hint = "blurd eval";
    int c;
    while ((c = getopt_long(argc, argv, "m:i:j:f:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm':
            options.model_path = optarg;
            break;
        case 'i':
            if (parse_input(optarg, &options.input) != 0)
                return usage_error(hint, "--input must be tiles or resize, not '%s'", optarg);
            break;
        case OPT_COMPARE:
            if (strcmp(optarg, "laplacian") != 0)
                return usage_error(hint, "--compare knows only laplacian, not '%s'", optarg);
            options.compare_laplacian = 1;
            break;
        case 'j':
            if (parse_jobs(optarg, &options.jobs) != 0)
                return usage_error(hint, "--jobs must be a whole number from 1 to 256, not '%s'",
                                   optarg);
            break;
        case 'f':
            if (strcmp(optarg, "table") == 0)
                options.format = BLURD_FORMAT_TABLE;
            else if (strcmp(optarg, "json") == 0)
                options.format = BLURD_FORMAT_JSON;
            else
                return usage_error(hint, "--format must be table or json, not '%s'", optarg);
            break;
        case 'h':
            fputs(eval_usage, stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'blurd eval --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return usage_error(hint, "%s", "eval needs exactly one DATA folder");
    options.data_dir = argv[optind];

    char err[BLURD_ERR_LEN];
    struct blurd_eval_summary summary;
    if (blurd_image_init(argv[0], err) != 0 || blurd_eval_run(&options, &summary, err) != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static const char synth_usage[] =
    "Usage: blurd synth SHARP_DIR OUT_DIR [--count N] [--seed S]\n"
    "\n"
    "Makes a labelled training set from a folder of sharp photos: N blurred images in\n"
    "OUT_DIR/Blurred, N clear ones in OUT_DIR/Undistorted (the folders `blurd train`\n"
    "and `blurd eval` read) and OUT_DIR/labels.csv describing each one.  Every image is\n"
    "a crop of one of the photos (taken in turn), 256 to 1600 pixels on the long side,\n"
    "some scaled down like web images.  Blurred ones get a Gaussian, defocus, linear\n"
    "motion or shaken-camera blur, from barely visible to strong; busy textures are\n"
    "blurred and low-texture scenes kept sharp, so that texture alone tells nothing;\n"
    "about 15% of the clear ones keep a sharp subject before a defocused background\n"
    "(kernel dof in labels.csv), since a shallow depth of field is a sharp photo.  An image\n"
    "that does not look like its label is cut and blurred again (up to 8 draws): a\n"
    "clear one that is soft already (a photo out of focus there), or a blurred one\n"
    "whose blur took away too little; labels.csv records both measures (kept,\n"
    "softness), and the summary says how many were drawn again.\n"
    "Both classes get the same camera-like noise and JPEG quality (70-95).  The same\n"
    "photos and seed give the same files.  Nothing is overwritten: OUT_DIR may exist,\n"
    "but not with files in Blurred/ or Undistorted/, nor a labels.csv.\n"
    "\n"
    "Options:\n"
    "  -n, --count N     images per class (default: 200)\n"
    "  -s, --seed S      seed for every random choice (default: 1)\n"
    "      --progress    show progress even when stderr is not a terminal\n"
    "      --no-progress never show progress\n"
    "  -q, --quiet       no summary line\n"
    "  -h, --help        show this help\n"
    "\n"
    "Exit status: 0 done, 1 done but some photos could not be read (left out, each\n"
    "named on stderr), 2 usage error or nothing made (missing SHARP_DIR, no usable\n"
    "photo, OUT_DIR not empty, a write failure).\n";

static int command_synth(int argc, char **argv)
{
    enum { OPT_PROGRESS = 256, OPT_NO_PROGRESS };
    static const struct option long_options[] = {
        {"count", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct blurd_synth_options options = {
        .count = BLURD_SYNTH_DEFAULT_COUNT,
        .seed = 1,
        .progress = -1,
    };
    const char *hint = "blurd synth";
    int quiet = 0, c;
    long number;
    while ((c = getopt_long(argc, argv, "n:s:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_int(optarg, 1, BLURD_SYNTH_MAX_COUNT, &number) != 0)
                return usage_error(
                    hint, "--count must be a whole number from 1 to 1000000, not '%s'", optarg);
            options.count = (int)number;
            break;
        case 's':
            if (parse_seed(optarg, &options.seed) != 0)
                return usage_error(hint, "--seed must be a whole number from 0 to 2^64-1, not '%s'",
                                   optarg);
            break;
        case OPT_PROGRESS:
            options.progress = 1;
            break;
        case OPT_NO_PROGRESS:
            options.progress = 0;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(synth_usage, stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'blurd synth --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 2)
        return usage_error(hint, "%s", "synth needs a SHARP_DIR and an OUT_DIR");
    options.sharp_dir = argv[optind];
    options.out_dir = argv[optind + 1];

    char err[BLURD_ERR_LEN];
    struct blurd_synth_summary summary;
    if (blurd_image_init(argv[0], err) != 0 || blurd_synth_run(&options, &summary, err) != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    if (!quiet)
        fprintf(stderr,
                "blurd: wrote %zu blurred and %zu clear images (gaussian %zu, disk %zu, motion "
                "%zu, shake %zu; %zu clear with a shallow depth of field) from %zu photos into "
                "%s in %.1f s; drawn again: %zu blurred whose blur hid too little, %zu clear "
                "that looked soft; still so after %d draws, kept as the best of them: %zu "
                "blurred, %zu clear%s\n",
                summary.written[BLURD_DATASET_BLURRED], summary.written[BLURD_DATASET_CLEAR],
                summary.kernels[BLURD_SYNTH_GAUSSIAN], summary.kernels[BLURD_SYNTH_DISK],
                summary.kernels[BLURD_SYNTH_MOTION], summary.kernels[BLURD_SYNTH_SHAKE],
                summary.kernels[BLURD_SYNTH_DOF], summary.photos, options.out_dir, summary.seconds,
                summary.redrawn[BLURD_DATASET_BLURRED], summary.redrawn[BLURD_DATASET_CLEAR],
                BLURD_SYNTH_MAX_ATTEMPTS, summary.doubtful[BLURD_DATASET_BLURRED],
                summary.doubtful[BLURD_DATASET_CLEAR],
                summary.unreadable > 0 ? "; some photos could not be read" : "");
    return summary.unreadable > 0 ? EXIT_FILES_FAILED : EXIT_OK;
}

static const char train_usage[] =
    "Usage: blurd train DATA -o FILE [OPTIONS]\n"
    "\n"
    "Trains a model on the images directly inside DATA/Blurred and DATA/Undistorted (the\n"
    "folders the daemon sorts into, so moving a misjudged photo to the other folder\n"
    "corrects the next model; `blurd synth` makes such a set from sharp photos).  Every\n"
    "image is decoded once; each epoch then shows the network every training input once,\n"
    "flipped or turned at random, the smaller class repeated to match the larger.  An\n"
    "image's tiles are weighed together as classify scores them: its sharpest quarter\n"
    "counts fully, the rest at --other-tile-weight.  A share of the source photos is\n"
    "held out for validation, scored as `blurd classify` would.\n"
    "After each epoch a line reports loss and accuracy; whenever the validation balanced\n"
    "accuracy improves the model is saved to FILE, with its training data, settings,\n"
    "validation metrics and fitted threshold in its metadata.  A checkpoint (FILE.ckpt)\n"
    "is written after each epoch and on Ctrl-C, SIGTERM or the time limit; --resume\n"
    "continues from the step where it stopped.  Unreadable images are skipped with a\n"
    "warning and counted.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE      the model to write (required; not overwritten unless resuming)\n"
    "  -e, --epochs N         at most N epochs (default: 30; resuming, the checkpoint's)\n"
    "  -b, --batch N          inputs per step, 1-256 (default: 32)\n"
    "      --lr X             Adam's peak learning rate, cosine-decayed (default: 0.0005)\n"
    "      --val-split F      share of source photos held out, 0 to 0.9 (default: 0.15)\n"
    "      --threshold T      the model's p(blurred) threshold (default: of 0.05..0.95,\n"
    "                         the one whose thresholds within 0.1 have the best mean\n"
    "                         balanced accuracy on the validation images)\n"
    "      --patience N       stop after N epochs without a better validation; 0 never\n"
    "                         (default: 6)\n"
    "  -i, --input MODE       tiles | resize (default: tiles)\n"
    "      --tiles N          tiles mode: most textured tiles kept per training image\n"
    "                         (default: 4)\n"
    "      --other-tile-weight W\n"
    "                         tiles mode: loss weight, 0 to 1, of the tiles an image's\n"
    "                         score does not rest on; 1 weighs all alike (default: 0.25)\n"
    "      --contrast C       lower each training input's contrast about its mean by a\n"
    "                         factor drawn from 1-C to 1; C from 0 to 0.9; meant to keep\n"
    "                         low contrast from being learnt as blur (default: 0, off)\n"
    "      --spec SPEC        layer spec (default: the original network)\n"
    "  -s, --seed S           seed for weights, order, flips, contrast and dropout\n"
    "                         (default: 1)\n"
    "      --resume CKPT      continue from a checkpoint, with its settings\n"
    "      --checkpoint FILE  where to write checkpoints (default: FILE.ckpt)\n"
    "      --max-minutes M    stop with a checkpoint after M minutes of training\n"
    "      --max-steps N      stop with a checkpoint after N steps (training in slices)\n"
    "      --half             save the model in half precision (half the size)\n"
    "  -j, --jobs N           CPU cores to use (default: all of them)\n"
    "      --progress         show progress even when stderr is not a terminal\n"
    "      --no-progress      never show progress\n"
    "  -h, --help             show this help\n"
    "\n"
    "Exit status: 0 trained (all epochs, early stop, or --max-minutes/--max-steps spent),\n"
    "1 trained but some images could not be read, 2 usage, data or model error (missing\n"
    "folder, a class without a readable image, FILE already there), 130 interrupted\n"
    "(checkpoint saved).\n";

static int command_train(int argc, char **argv)
{
    enum {
        OPT_LR = 256,
        OPT_THRESHOLD,
        OPT_VAL_SPLIT,
        OPT_PATIENCE,
        OPT_TILES,
        OPT_OTHER_TILE_WEIGHT,
        OPT_CONTRAST,
        OPT_SPEC,
        OPT_RESUME,
        OPT_CHECKPOINT,
        OPT_MAX_MINUTES,
        OPT_MAX_STEPS,
        OPT_HALF,
        OPT_PROGRESS,
        OPT_NO_PROGRESS,
    };
    static const struct option long_options[] = {
        {"output", required_argument, NULL, 'o'},
        {"epochs", required_argument, NULL, 'e'},
        {"batch", required_argument, NULL, 'b'},
        {"lr", required_argument, NULL, OPT_LR},
        {"threshold", required_argument, NULL, OPT_THRESHOLD},
        {"val-split", required_argument, NULL, OPT_VAL_SPLIT},
        {"patience", required_argument, NULL, OPT_PATIENCE},
        {"input", required_argument, NULL, 'i'},
        {"tiles", required_argument, NULL, OPT_TILES},
        {"other-tile-weight", required_argument, NULL, OPT_OTHER_TILE_WEIGHT},
        {"contrast", required_argument, NULL, OPT_CONTRAST},
        {"spec", required_argument, NULL, OPT_SPEC},
        {"seed", required_argument, NULL, 's'},
        {"resume", required_argument, NULL, OPT_RESUME},
        {"checkpoint", required_argument, NULL, OPT_CHECKPOINT},
        {"max-minutes", required_argument, NULL, OPT_MAX_MINUTES},
        {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
        {"half", no_argument, NULL, OPT_HALF},
        {"jobs", required_argument, NULL, 'j'},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct blurd_train_options options;
    blurd_train_defaults(&options);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    options.threads = cores > 0 ? (int)cores : 1;
    options.max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS;
    const char *hint = "blurd train";
    bool settings_given = false; /* an option that --resume overrides */
    bool epochs_given = false;
    int c;
    long number;
    float value;
    while ((c = getopt_long(argc, argv, "o:e:b:i:s:j:h", long_options, NULL)) != -1) {
        if (c == 'b' || c == OPT_LR || c == OPT_VAL_SPLIT || c == 'i' || c == OPT_TILES ||
            c == OPT_OTHER_TILE_WEIGHT || c == OPT_CONTRAST || c == OPT_SPEC || c == 's' ||
            c == OPT_THRESHOLD)
            settings_given = true;
        switch (c) {
        case 'o':
            options.output = optarg;
            break;
        case 'e':
            if (parse_int(optarg, 1, 100000, &number) != 0)
                return usage_error(hint, "--epochs must be a whole number from 1, not '%s'",
                                   optarg);
            options.epochs = (int)number;
            epochs_given = true;
            break;
        case 'b':
            if (parse_int(optarg, 1, BLURD_TRAIN_MAX_BATCH, &number) != 0)
                return usage_error(hint, "--batch must be a whole number from 1 to 256, not '%s'",
                                   optarg);
            options.batch = (int)number;
            break;
        case OPT_LR:
            if (parse_float(optarg, &value) != 0 || !(value > 0.0f && value <= 1.0f))
                return usage_error(hint, "--lr must be a number above 0, at most 1, not '%s'",
                                   optarg);
            options.learning_rate = value;
            break;
        case OPT_THRESHOLD:
            if (parse_float(optarg, &value) != 0 || !(value > 0.0f && value < 1.0f))
                return usage_error(hint, "--threshold must be a number between 0 and 1, not '%s'",
                                   optarg);
            options.threshold = value;
            break;
        case OPT_VAL_SPLIT:
            if (parse_float(optarg, &value) != 0 || !(value >= 0.0f && value <= 0.9f))
                return usage_error(hint, "--val-split must be a number from 0 to 0.9, not '%s'",
                                   optarg);
            options.val_split = (double)value;
            break;
        case OPT_PATIENCE:
            if (parse_int(optarg, 0, 100000, &number) != 0)
                return usage_error(hint, "--patience must be a whole number from 0, not '%s'",
                                   optarg);
            options.patience = (int)number;
            break;
        case 'i':
            if (parse_input(optarg, &options.input) != 0)
                return usage_error(hint, "--input must be tiles or resize, not '%s'", optarg);
            break;
        case OPT_TILES:
            if (parse_int(optarg, 1, 64, &number) != 0)
                return usage_error(hint, "--tiles must be a whole number from 1 to 64, not '%s'",
                                   optarg);
            options.tiles_per_image = (int)number;
            break;
        case OPT_OTHER_TILE_WEIGHT:
            if (parse_float(optarg, &value) != 0 || !(value >= 0.0f && value <= 1.0f))
                return usage_error(
                    hint, "--other-tile-weight must be a number from 0 to 1, not '%s'", optarg);
            options.other_tile_weight = value;
            break;
        case OPT_CONTRAST:
            if (parse_float(optarg, &value) != 0 || !(value >= 0.0f && value <= 0.9f))
                return usage_error(hint, "--contrast must be a number from 0 to 0.9, not '%s'",
                                   optarg);
            options.contrast = value;
            break;
        case OPT_SPEC:
            options.spec = optarg;
            break;
        case 's':
            if (parse_seed(optarg, &options.seed) != 0)
                return usage_error(hint, "--seed must be a whole number from 0 to 2^64-1, not '%s'",
                                   optarg);
            break;
        case OPT_RESUME:
            options.resume = optarg;
            break;
        case OPT_CHECKPOINT:
            options.checkpoint = optarg;
            break;
        case OPT_MAX_MINUTES:
            if (parse_float(optarg, &value) != 0 || !(value > 0.0f))
                return usage_error(hint, "--max-minutes must be a number above 0, not '%s'",
                                   optarg);
            options.max_seconds = 60.0 * (double)value;
            break;
        case OPT_MAX_STEPS:
            if (parse_int(optarg, 1, 1000000000, &number) != 0)
                return usage_error(hint, "--max-steps must be a whole number from 1, not '%s'",
                                   optarg);
            options.max_steps = (uint64_t)number;
            break;
        case OPT_HALF:
            options.half = 1;
            break;
        case 'j':
            if (parse_jobs(optarg, &options.threads) != 0)
                return usage_error(hint, "--jobs must be a whole number from 1 to 256, not '%s'",
                                   optarg);
            break;
        case OPT_PROGRESS:
            options.progress = 1;
            break;
        case OPT_NO_PROGRESS:
            options.progress = 0;
            break;
        case 'h':
            fputs(train_usage, stdout);
            return EXIT_OK;
        default:
            fprintf(stderr, "Try 'blurd train --help'.\n");
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1)
        return usage_error(hint, "%s", "train needs exactly one DATA folder");
    if (options.output == NULL)
        return usage_error(hint, "%s", "train needs -o FILE, the model to write");
    options.data_dir = argv[optind];
    /* resumed without --epochs: the checkpoint's plan, not the default's */
    if (options.resume != NULL && !epochs_given)
        options.epochs = 0;
    if (options.resume != NULL && settings_given)
        blurd_log_warning("resuming: the checkpoint's spec, input, batch, learning rate, seed, "
                          "split, tiles, tile weight, contrast and threshold are used; the ones "
                          "given are ignored");
    char err[BLURD_ERR_LEN];
    struct blurd_train_summary summary;
    if (blurd_image_init(argv[0], err) != 0 || blurd_train_run(&options, &summary, err) != 0) {
        blurd_log_error("%s", err);
        return EXIT_USAGE;
    }
    if (summary.end == BLURD_TRAIN_INTERRUPTED)
        return EXIT_INTERRUPTED;
    const char *how = summary.end == BLURD_TRAIN_EARLY_STOP     ? "stopped early"
                      : summary.end == BLURD_TRAIN_BUDGET_SPENT ? "budget spent"
                                                                : "trained";
    if (summary.best_epoch > 0)
        fprintf(stderr, "blurd: %s after %d epochs in %.0f s; best epoch %d, saved to %s\n", how,
                summary.epochs, summary.seconds, summary.best_epoch, options.output);
    else
        fprintf(stderr, "blurd: %s before the first epoch ended: no model saved yet\n", how);
    return summary.skipped > 0 ? EXIT_FILES_FAILED : EXIT_OK;
}

/* Results go to stdout through stdio's buffer, so a full disk or a closed pipe shows only
 * at the last flush; a run whose results were lost must not exit as if they were written. */
static int check_stdout(int status)
{
    if (fflush(stdout) != 0)
        blurd_log_error("cannot write the results to standard output: %s", strerror(errno));
    else if (ferror(stdout))
        blurd_log_error("%s", "cannot write the results to standard output: a write failed");
    else
        return status;
    return status == EXIT_INTERRUPTED ? status : EXIT_USAGE;
}

static int run_command(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main_usage, stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "help") == 0) {
        fputs(main_usage, stdout);
        return EXIT_OK;
    }
    if (strcmp(command, "-V") == 0 || strcmp(command, "--version") == 0) {
        printf("blurd %s\n", BLURD_VERSION);
        return EXIT_OK;
    }
    if (strcmp(command, "classify") == 0)
        return command_classify(argc - 1, argv + 1);
    if (strcmp(command, "model") == 0)
        return command_model(argc - 1, argv + 1);
    if (strcmp(command, "daemon") == 0)
        return command_daemon(argc - 1, argv + 1);
    if (strcmp(command, "eval") == 0)
        return command_eval(argc - 1, argv + 1);
    if (strcmp(command, "synth") == 0)
        return command_synth(argc - 1, argv + 1);
    if (strcmp(command, "train") == 0)
        return command_train(argc - 1, argv + 1);
    fprintf(stderr, "blurd: unknown command '%s'\nTry 'blurd --help'.\n", command);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    return check_stdout(run_command(argc, argv));
}
