/* train.c - `blurd train`: the optimizer, then the training loop.
 *
 * Expected workload of the optimizer: one Adam step per batch over the default net's 6.8 million
 * parameters: about ten flops each, small beside the 32 GFLOP of a batch of 32 forward
 * and backward; the loop is written so the compiler vectorises it. */
#include "blurd/train.h"

#include "blurd/dataset.h"
#include "blurd/error.h"
#include "blurd/files.h"
#include "blurd/image.h"
#include "blurd/kernels.h"
#include "blurd/log.h"
#include "blurd/metrics.h"
#include "blurd/model.h"
#include "blurd/net.h"
#include "blurd/pipeline.h"
#include "blurd/progress.h"
#include "blurd/random.h"
#include "blurd/team.h"

#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct blurd_adam {
    struct blurd_adam_options options;
    size_t count;
    uint64_t steps;
    float *m; /* first moments (owned) */
    float *v; /* second moments (owned) */
};

struct blurd_adam_options blurd_adam_defaults(void)
{
    return (struct blurd_adam_options){
        .learning_rate = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
}

int blurd_adam_create(blurd_adam **out, size_t count, const struct blurd_adam_options *options,
                      char *err)
{
    *out = NULL;
    if (!(options->learning_rate > 0.0f) || !(options->beta1 >= 0.0f && options->beta1 < 1.0f) ||
        !(options->beta2 >= 0.0f && options->beta2 < 1.0f) || !(options->epsilon > 0.0f))
        return blurd_error_set(err, BLURD_EINVAL,
                               "Adam: learning rate %g, betas %g and %g, epsilon %g are not "
                               "usable",
                               (double)options->learning_rate, (double)options->beta1,
                               (double)options->beta2, (double)options->epsilon);
    blurd_adam *adam = calloc(1, sizeof *adam);
    if (adam != NULL) {
        adam->m = calloc(count > 0 ? count : 1, sizeof(float));
        adam->v = calloc(count > 0 ? count : 1, sizeof(float));
    }
    if (adam == NULL || adam->m == NULL || adam->v == NULL) {
        blurd_adam_free(adam);
        return blurd_error_set(err, BLURD_ENOMEM, "Adam: out of memory for %zu parameters", count);
    }
    adam->options = *options;
    adam->count = count;
    *out = adam;
    return 0;
}

void blurd_adam_free(blurd_adam *adam)
{
    if (adam == NULL)
        return;
    free(adam->m);
    free(adam->v);
    free(adam);
}

void blurd_adam_step(blurd_adam *adam, float *restrict parameters, const float *restrict gradients)
{
    adam->steps++;
    const float beta1 = adam->options.beta1, beta2 = adam->options.beta2;
    /* The bias corrections fold into one step size, as in the paper's section 2. */
    double correction1 = 1.0 - pow((double)beta1, (double)adam->steps);
    double correction2 = 1.0 - pow((double)beta2, (double)adam->steps);
    const float step =
        (float)((double)adam->options.learning_rate * sqrt(correction2) / correction1);
    const float epsilon = adam->options.epsilon * (float)sqrt(correction2);
    float *restrict m = adam->m, *restrict v = adam->v;
    for (size_t i = 0; i < adam->count; i++) {
        float g = gradients[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        parameters[i] -= step * m[i] / (sqrtf(v[i]) + epsilon);
    }
}

uint64_t blurd_adam_steps(const blurd_adam *adam)
{
    return adam->steps;
}

void blurd_adam_set_steps(blurd_adam *adam, uint64_t steps)
{
    adam->steps = steps;
}

void blurd_adam_set_learning_rate(blurd_adam *adam, float learning_rate)
{
    adam->options.learning_rate = learning_rate;
}

float *blurd_adam_first_moments(blurd_adam *adam)
{
    return adam->m;
}

float *blurd_adam_second_moments(blurd_adam *adam)
{
    return adam->v;
}

size_t blurd_adam_count(const blurd_adam *adam)
{
    return adam->count;
}

/* ---- the training loop ------------------------------------------------------------
 *
 * Workload: a few thousand labelled images, decoded once up front (each 200x200 input kept
 * as 120 KB of bytes, so 10,000 tiles fit in 1.2 GB), then epochs of batches: about 0.6 s
 * of forward and backward per batch of 32 on two cores for the default network, against
 * which the byte-to-float copy with augmentation (4 million values per batch) and the Adam
 * step (10 ms) are small.  Validation runs the inference path on the held-out images each
 * epoch, scored exactly as `blurd classify` scores them.
 *
 * Every random choice is a pure function of the seed and where it is made (epoch, position
 * in the epoch, step), so a run resumed from a checkpoint takes the same samples, flips and
 * dropout masks as one that never stopped.
 */

/* 2: images kept whole in a step; 3: the contrast setting, which a blurd that writes 2 would
 * drop.  Version 2 checkpoints still continue, without contrast. */
#define CHECKPOINT_VERSION     "3"
#define OLD_CHECKPOINT_VERSION "2"
#define MIN_LR_SHARE           0.02 /* the cosine schedule ends at this share of the peak */

void blurd_train_defaults(struct blurd_train_options *options)
{
    *options = (struct blurd_train_options){
        .input = BLURD_INPUT_TILES,
        .epochs = BLURD_TRAIN_DEFAULT_EPOCHS,
        .batch = BLURD_TRAIN_DEFAULT_BATCH,
        .learning_rate = BLURD_TRAIN_DEFAULT_LR,
        .val_split = BLURD_TRAIN_DEFAULT_VAL_SPLIT,
        .patience = BLURD_TRAIN_DEFAULT_PATIENCE,
        .tiles_per_image = BLURD_TRAIN_DEFAULT_TILES,
        .other_tile_weight = BLURD_TRAIN_DEFAULT_OTHER_TILE_WEIGHT,
        .seed = 1,
        .threads = 1,
        .progress = -1,
    };
}

/* A well-mixed 64-bit value from any key: splitmix64's output for state x. */
static uint64_t mix64(uint64_t x)
{
    return blurd_splitmix64(&x);
}

static uint64_t key3(uint64_t seed, uint64_t a, uint64_t b)
{
    return mix64(mix64(mix64(seed) ^ a) ^ b);
}

/* A uniform integer in [0, n) from a stream state. */
static size_t next_below(uint64_t *state, size_t n)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return (size_t)(mix64(*state) % n);
}

/* Ctrl-C or SIGTERM during a run: finish the step, save a checkpoint, return.  A second
 * signal kills as usual (SA_RESETHAND), for a user who does not want to wait. */
static volatile sig_atomic_t stop_signalled;

static void on_stop_signal(int signal_number)
{
    (void)signal_number;
    stop_signalled = 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct image_slot {
    size_t first; /* index of its first input in the store */
    int capacity; /* inputs reserved for it */
    int count;    /* inputs loaded; 0 when unreadable */
    int label;
    bool validation;
};

struct sample {
    uint32_t image;
    uint32_t input; /* which of the image's inputs */
};

struct trainer {
    const struct blurd_train_options *options;
    struct blurd_train_options settings; /* options, with a checkpoint's settings on resume */
    struct blurd_dataset dataset;
    struct image_slot *images;
    size_t input_values; /* size * size * 3 */
    uint8_t *pixels;     /* every image's inputs as bytes */
    struct blurd_image_options train_image, validation_image;
    float *load_buffers; /* one per loading thread */
    size_t load_buffer_values;
    _Atomic size_t loaded;
    struct blurd_progress progress;

    blurd_model *model;
    blurd_net *net;
    size_t parameter_count;
    blurd_net_train_workspace *train_ws;
    blurd_net_workspace *infer_ws;
    blurd_adam *adam;
    float *best_parameters;
    struct sample *order;
    size_t order_count, steps_per_epoch;
    struct sample *units; /* build_order's scratch: an image and how many of its inputs */
    int *labels;
    float *weights;      /* each input's weight in the step's loss */
    size_t *batch_owner; /* the image (validation) or run (training) of each input in a batch */
    int *batch_input;    /* and which of its inputs it is */
    float *validation_scores; /* p(blurred) of each validation input, at its store index */
    struct blurd_metrics_sample *validation_samples;

    /* the loop's position and record, all saved in a checkpoint */
    int epoch;       /* 0-based epoch in progress */
    size_t step;     /* steps done in it */
    double loss_sum; /* over the samples seen in it */
    size_t correct, seen;
    double best_score; /* balanced accuracy, or -training loss without validation */
    double best_loss;
    int best_epoch, since_best;
    double seconds_before;   /* training time of earlier runs */
    bool rank_by_validation; /* both classes held out: epochs ranked by validation */
    bool saved_this_run;     /* the best model was written to the output by this run */
    uint64_t fingerprint;    /* of the data set's file names and labels */
    char resumed_data[96];   /* a resumed checkpoint's record of DATA; "" if none */
    char checkpoint_path[PATH_MAX];
    char history[4096]; /* "epoch:train_loss:val_bacc;" per epoch, for the model file */
};

static const char *input_name(int input)
{
    return input == BLURD_INPUT_RESIZE ? "resize" : "tiles";
}

/* FNV-1a over every file's name and label: a resumed run warns when DATA changed, since
 * the epoch order (and so the step it resumes at) depends on the files. */
static uint64_t dataset_fingerprint(const struct blurd_dataset *dataset)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < dataset->count; i++) {
        for (const char *c = dataset->entries[i].name; *c != '\0'; c++)
            h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
        h = (h ^ (uint64_t)(dataset->entries[i].label + 1)) * 0x100000001b3ULL;
    }
    return h;
}

/* ---- loading ---- */

static void load_task(void *arg, int index, int thread)
{
    struct trainer *t = arg;
    struct image_slot *slot = &t->images[index];
    const struct blurd_dataset_entry *entry = &t->dataset.entries[index];
    float *buffer = t->load_buffers + (size_t)thread * t->load_buffer_values;
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    const struct blurd_image_options *image =
        slot->validation ? &t->validation_image : &t->train_image;
    if (blurd_image_load(entry->path, image, buffer, &info, err) != 0) {
        blurd_progress_clear(&t->progress);
        blurd_log_warning("%s (skipped)", err);
        slot->count = 0;
    } else {
        slot->count = info.inputs < slot->capacity ? info.inputs : slot->capacity;
        uint8_t *out = t->pixels + slot->first * t->input_values;
        size_t values = (size_t)slot->count * t->input_values;
        /* inputs are bytes / 255 from the decoder: rounding gives the bytes back exactly */
        for (size_t i = 0; i < values; i++)
            out[i] = (uint8_t)lrintf(buffer[i] * 255.0f);
    }
    size_t done = atomic_fetch_add(&t->loaded, 1) + 1;
    if (thread == 0)
        blurd_progress_show(&t->progress, done, t->dataset.count, 0);
}

/* Decodes every image of the set once, spread over the cores. */
static int load_images(struct trainer *t, const unsigned char *validation, char *err)
{
    const struct blurd_preprocess *pre = blurd_model_preprocess(t->model);
    int tiles = t->settings.input == BLURD_INPUT_TILES;
    t->train_image = (struct blurd_image_options){
        .input = t->settings.input,
        .size = pre->tile_size,
        .tile_count = tiles ? t->settings.tiles_per_image : 1,
        .analysis_size = pre->analysis_size,
        .max_pixels = t->settings.max_pixels,
    };
    t->validation_image = t->train_image;
    t->validation_image.tile_count = tiles ? pre->tile_count : 1;
    t->input_values = (size_t)pre->tile_size * (size_t)pre->tile_size * 3;

    size_t n = t->dataset.count, inputs = 0;
    t->images = calloc(n + 1, sizeof *t->images);
    if (t->images == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory for %zu images", n);
    for (size_t i = 0; i < n; i++) {
        struct image_slot *slot = &t->images[i];
        slot->validation = validation[i] != 0;
        slot->label = t->dataset.entries[i].label;
        slot->capacity = (slot->validation ? t->validation_image : t->train_image).tile_count;
        slot->first = inputs;
        inputs += (size_t)slot->capacity;
    }
    int threads = t->settings.threads;
    t->load_buffer_values = (size_t)(t->validation_image.tile_count > t->train_image.tile_count
                                         ? t->validation_image.tile_count
                                         : t->train_image.tile_count) *
                            t->input_values;
    /* malloc, not calloc: untouched pages of images with fewer tiles cost nothing */
    t->pixels = malloc(inputs * t->input_values + 1);
    t->load_buffers = malloc((size_t)threads * t->load_buffer_values * sizeof(float));
    if (t->pixels == NULL || t->load_buffers == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory for %zu inputs of %d pixels",
                               inputs, pre->tile_size);
    blurd_team *team;
    int rc = blurd_team_create(&team, threads, err);
    if (rc != 0)
        return rc;
    fprintf(stderr, "blurd: decoding %zu images of %s (%s input)\n", n, t->settings.data_dir,
            input_name(t->settings.input));
    blurd_progress_start(&t->progress, t->settings.progress, "images");
    blurd_team_run(team, (int)n, load_task, t);
    blurd_team_free(team);
    blurd_progress_clear(&t->progress);
    free(t->load_buffers);
    t->load_buffers = NULL;
    return 0;
}

/* ---- one epoch's order ---- */

static void shuffle(struct sample *samples, size_t n, uint64_t *state)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = next_below(state, i);
        struct sample tmp = samples[i - 1];
        samples[i - 1] = samples[j];
        samples[j] = tmp;
    }
}

/* Every training image once, with its inputs side by side (a step weighs an image's tiles
 * together, as classify scores them), the smaller class's images repeated (whole shuffled
 * rounds, then a random part of one, its last image cut short) until both classes give
 * equally many inputs; the images shuffled. */
static void build_order(struct trainer *t, int epoch)
{
    uint64_t state = key3(t->settings.seed, 0x6f72646572ULL, (uint64_t)epoch);
    size_t per_class[BLURD_DATASET_CLASSES] = {0};
    for (size_t i = 0; i < t->dataset.count; i++)
        if (!t->images[i].validation)
            per_class[t->images[i].label] += (size_t)t->images[i].count;
    size_t target = per_class[0] > per_class[1] ? per_class[0] : per_class[1];
    size_t units = 0;
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++) {
        size_t start = units;
        for (size_t i = 0; i < t->dataset.count; i++) {
            const struct image_slot *slot = &t->images[i];
            if (!slot->validation && slot->label == label && slot->count > 0)
                t->units[units++] = (struct sample){(uint32_t)i, (uint32_t)slot->count};
        }
        size_t own = units - start, inputs = per_class[label];
        shuffle(t->units + start, own, &state);
        while (own > 0 && inputs < target) {
            struct sample *round = t->units + units;
            memcpy(round, t->units + start, own * sizeof *round);
            shuffle(round, own, &state);
            for (size_t k = 0; k < own && inputs < target; k++) {
                if (round[k].input > target - inputs)
                    round[k].input = (uint32_t)(target - inputs);
                inputs += round[k].input;
                units++;
            }
        }
    }
    shuffle(t->units, units, &state);
    size_t n = 0;
    for (size_t u = 0; u < units; u++)
        for (uint32_t j = 0; j < t->units[u].input; j++)
            t->order[n++] = (struct sample){t->units[u].image, j};
    t->order_count = n;
}

void blurd_train_tile_weights(int n, const size_t *owner, const float *probabilities, float other,
                              float *weights)
{
    int start = 0;
    while (start < n) {
        int end = start + 1;
        while (end < n && owner[end] == owner[start])
            end++;
        int used = other < 1.0f ? blurd_pipeline_tiles_scored(end - start) : 0;
        for (int b = start; b < end; b++)
            weights[b] = other;
        for (int k = 0; k < used; k++) {
            int sharpest = -1;
            for (int b = start; b < end; b++)
                if (weights[b] != 1.0f &&
                    (sharpest < 0 || probabilities[2 * b] < probabilities[2 * sharpest]))
                    sharpest = b;
            weights[sharpest] = 1.0f;
        }
        start = end;
    }
}

/* A training input as floats, under one of the square's eight symmetries (flips and
 * transposition): none changes whether a picture is blurred, and motion blur keeps its kind
 * in any direction.  Its contrast may be lowered about its mean too (--contrast): a flat,
 * dim or hazy scene is no less sharp for it, and the clear photos models miss are mostly
 * the low-contrast ones (models/README.md measures what the option does).  Contrast is
 * only ever lowered, since raising it would clip highlights and shadows into hard edges
 * that a blurred picture does not have. */
void blurd_train_augment(const uint8_t *in, int size, unsigned symmetry, float contrast_factor,
                         float *out)
{
    const float scale = 1.0f / 255.0f;
    const size_t values = (size_t)size * (size_t)size * 3;
    float gain = scale, offset = 0.0f;
    if (contrast_factor != 1.0f) {
        uint64_t sum = 0;
        for (size_t i = 0; i < values; i++)
            sum += in[i];
        float mean = (float)((double)sum / (double)values) * scale;
        gain = contrast_factor * scale;
        offset = (1.0f - contrast_factor) * mean;
    }
    for (int y = 0; y < size; y++) {
        for (int x = 0; x < size; x++) {
            int sy = y, sx = x;
            if (symmetry & 4) {
                sy = x;
                sx = y;
            }
            if (symmetry & 1)
                sx = size - 1 - sx;
            if (symmetry & 2)
                sy = size - 1 - sy;
            const uint8_t *p = in + ((size_t)sy * (size_t)size + (size_t)sx) * 3;
            float *q = out + ((size_t)y * (size_t)size + (size_t)x) * 3;
            q[0] = p[0] * gain + offset;
            q[1] = p[1] * gain + offset;
            q[2] = p[2] * gain + offset;
        }
    }
}

/* The contrast factor of the training input at `position` of `epoch`'s order: log-uniform
 * in [1 - contrast, 1] (any two ratios within the range equally likely), and exactly 1
 * when contrast is 0. */
static float contrast_factor(const struct blurd_train_options *s, int epoch, size_t position)
{
    if (s->contrast <= 0.0f)
        return 1.0f;
    uint64_t h = key3(s->seed, 0x636f6e7472617374ULL ^ (uint64_t)epoch, position);
    double u = (double)(h >> 11) * 0x1.0p-53; /* uniform in [0, 1) */
    return (float)exp(u * log(1.0 - (double)s->contrast));
}

/* ---- validation ---- */

struct validation {
    double loss, accuracy, balanced_accuracy, auc;
    double threshold; /* the decision threshold measured at, and saved with the model */
    size_t images;
};

/* Fitted thresholds stay inside this range, so a lopsided validation set cannot make a
 * model that calls everything one way. */
#define MIN_FITTED_THRESHOLD 0.05
#define MAX_FITTED_THRESHOLD 0.95
/* The fitted threshold is the one whose neighbours within this distance do best on
 * average (blurd_metrics_steady_threshold). */
#define THRESHOLD_WINDOW 0.1

/* Scores every validation image as classify would (its tiles combined, or its resize) and
 * measures the calls at the model's threshold; the loss is the mean cross-entropy over
 * the validation inputs. */
static void validate(struct trainer *t, struct validation *v)
{
    *v = (struct validation){.loss = NAN, .accuracy = NAN, .balanced_accuracy = NAN, .auc = NAN};
    int max_batch = blurd_net_workspace_max_batch(t->infer_ws);
    float *input = blurd_net_workspace_input(t->infer_ws);
    size_t *owner = t->batch_owner;
    int *which = t->batch_input;
    double loss = 0.0;
    size_t inputs = 0;
    int batch = 0;
    for (size_t i = 0; i <= t->dataset.count; i++) {
        const struct image_slot *slot = i < t->dataset.count ? &t->images[i] : NULL;
        int count = slot && slot->validation ? slot->count : 0;
        for (int j = 0; j <= count; j++) {
            bool flush = batch == max_batch || (slot == NULL && j == count && batch > 0);
            if (flush) {
                const float *p = blurd_net_forward(t->net, t->infer_ws, batch, NULL);
                for (int b = 0; b < batch; b++) {
                    const struct image_slot *o = &t->images[owner[b]];
                    float p_true = p[2 * b + o->label];
                    loss -= log(p_true > 1e-7f ? (double)p_true : 1e-7);
                    t->validation_scores[o->first + (size_t)which[b]] = p[2 * b];
                }
                inputs += (size_t)batch;
                batch = 0;
            }
            if (j == count)
                break;
            const uint8_t *src = t->pixels + (slot->first + (size_t)j) * t->input_values;
            float *dst = input + (size_t)batch * t->input_values;
            for (size_t k = 0; k < t->input_values; k++)
                dst[k] = src[k] * (1.0f / 255.0f);
            owner[batch] = i;
            which[batch] = j;
            batch++;
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < t->dataset.count; i++) {
        const struct image_slot *slot = &t->images[i];
        if (!slot->validation || slot->count == 0)
            continue;
        const float *scores = t->validation_scores + slot->first;
        float score = t->settings.input == BLURD_INPUT_TILES
                          ? blurd_pipeline_combine_tiles(scores, slot->count)
                          : scores[0];
        t->validation_samples[n++] = (struct blurd_metrics_sample){
            .score = score, .positive = slot->label == BLURD_DATASET_BLURRED};
    }
    v->images = n;
    if (n == 0)
        return;
    v->loss = loss / (double)inputs;
    /* The threshold is fitted to the images, not taken as 0.5: training balances the
     * classes per input, but an image's score combines its sharpest tiles, which moves
     * the scores of whole images toward "clear".  It is the steady threshold rather than
     * the best cut: the recipe's validation images come from some 20 photos, and the
     * best cut on them sat 0.05 to 0.19 above the best on the photos the recipe holds out
     * in 11 of 12 measurements (6 models, 2 held-out sets); the steady one did better there
     * in 10 of 12 (models/README.md, "The threshold"). */
    v->threshold = t->settings.threshold;
    if (!(v->threshold > 0.0)) {
        double at_threshold;
        blurd_metrics_steady_threshold(t->validation_samples, n, THRESHOLD_WINDOW,
                                       MIN_FITTED_THRESHOLD, MAX_FITTED_THRESHOLD, &v->threshold,
                                       &at_threshold);
    }
    struct blurd_confusion confusion =
        blurd_metrics_confusion(t->validation_samples, n, v->threshold);
    v->accuracy = blurd_metrics_accuracy(&confusion);
    v->balanced_accuracy = blurd_metrics_balanced_accuracy(&confusion);
    v->auc = blurd_metrics_auc(t->validation_samples, n);
}

/* ---- metadata and files ---- */

static int set_meta(struct trainer *t, const char *key, char *err, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

static int set_meta(struct trainer *t, const char *key, char *err, const char *format, ...)
{
    char value[4096];
    va_list args;
    va_start(args, format);
    vsnprintf(value, sizeof value, format, args);
    va_end(args);
    return blurd_model_meta_set(t->model, key, value, err);
}

/* A path as metadata, which must be UTF-8: bytes that are not are shown as U+FFFD. */
static int set_display_meta(struct trainer *t, const char *key, const char *path, char *err)
{
    char *valid = blurd_files_utf8_path(path);
    int rc = valid ? blurd_model_meta_set(t->model, key, valid, err)
                   : blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    free(valid);
    return rc;
}

/* The checkpoint's record of the settings and the loop's position, as metadata. */
static const char *const checkpoint_keys[] = {
    "checkpoint.version",    "checkpoint.epoch",
    "checkpoint.step",       "checkpoint.loss_sum",
    "checkpoint.correct",    "checkpoint.seen",
    "checkpoint.best",       "checkpoint.best_loss",
    "checkpoint.best_epoch", "checkpoint.since_best",
    "checkpoint.seconds",    "checkpoint.adam_steps",
    "checkpoint.seed",       "checkpoint.batch",
    "checkpoint.val_split",  "checkpoint.tiles",
    "checkpoint.lr",         "checkpoint.history",
    "checkpoint.threshold",  "checkpoint.data",
    "checkpoint.output",     "checkpoint.other_tile_weight",
    "checkpoint.contrast",   "checkpoint.epochs",
};

static int save_checkpoint(struct trainer *t, double seconds, char *err)
{
    const struct blurd_train_options *s = &t->settings;
    int rc = 0;
    rc = rc ? rc : set_meta(t, "checkpoint.version", err, "%s", CHECKPOINT_VERSION);
    rc = rc ? rc : set_meta(t, "checkpoint.epoch", err, "%d", t->epoch);
    rc = rc ? rc : set_meta(t, "checkpoint.step", err, "%zu", t->step);
    rc = rc ? rc : set_meta(t, "checkpoint.loss_sum", err, "%.17g", t->loss_sum);
    rc = rc ? rc : set_meta(t, "checkpoint.correct", err, "%zu", t->correct);
    rc = rc ? rc : set_meta(t, "checkpoint.seen", err, "%zu", t->seen);
    rc = rc ? rc : set_meta(t, "checkpoint.best", err, "%.17g", t->best_score);
    rc = rc ? rc : set_meta(t, "checkpoint.best_loss", err, "%.17g", t->best_loss);
    rc = rc ? rc : set_meta(t, "checkpoint.best_epoch", err, "%d", t->best_epoch);
    rc = rc ? rc : set_meta(t, "checkpoint.since_best", err, "%d", t->since_best);
    rc = rc ? rc : set_meta(t, "checkpoint.seconds", err, "%.3f", seconds);
    rc = rc ? rc
            : set_meta(t, "checkpoint.adam_steps", err, "%llu",
                       (unsigned long long)blurd_adam_steps(t->adam));
    rc = rc ? rc : set_meta(t, "checkpoint.seed", err, "%llu", (unsigned long long)s->seed);
    rc = rc ? rc : set_meta(t, "checkpoint.batch", err, "%d", s->batch);
    rc = rc ? rc : set_meta(t, "checkpoint.val_split", err, "%.17g", s->val_split);
    rc = rc ? rc : set_meta(t, "checkpoint.tiles", err, "%d", s->tiles_per_image);
    rc =
        rc ? rc
           : set_meta(t, "checkpoint.other_tile_weight", err, "%.9g", (double)s->other_tile_weight);
    rc = rc ? rc : set_meta(t, "checkpoint.contrast", err, "%.9g", (double)s->contrast);
    rc = rc ? rc : set_meta(t, "checkpoint.epochs", err, "%d", s->epochs);
    rc = rc ? rc : set_meta(t, "checkpoint.lr", err, "%.9g", (double)s->learning_rate);
    rc = rc ? rc : set_meta(t, "checkpoint.threshold", err, "%.9g", (double)s->threshold);
    rc = rc ? rc : set_meta(t, "checkpoint.history", err, "%s", t->history);
    rc = rc ? rc
            : set_meta(t, "checkpoint.data", err, "%zu files, fingerprint %016llx",
                       t->dataset.count, (unsigned long long)t->fingerprint);
    rc = rc ? rc : set_display_meta(t, "checkpoint.output", s->output, err);
    struct blurd_model_extra extras[] = {
        {"adam.m", blurd_adam_first_moments(t->adam), t->parameter_count},
        {"adam.v", blurd_adam_second_moments(t->adam), t->parameter_count},
        {"best.parameters", t->best_parameters, t->parameter_count},
    };
    if (rc == 0)
        rc = blurd_model_save_extras(t->model, t->checkpoint_path, extras, 3, err);
    /* the model itself carries no checkpoint state */
    for (size_t k = 0; k < sizeof checkpoint_keys / sizeof *checkpoint_keys; k++)
        blurd_model_meta_set(t->model, checkpoint_keys[k], NULL, NULL);
    return rc;
}

static int meta_number(const blurd_model *model, const char *key, double *out)
{
    const char *text = blurd_model_meta_get(model, key);
    char *end;
    if (text == NULL)
        return -1;
    *out = strtod(text, &end);
    return *end == '\0' && end != text ? 0 : -1;
}

/* Restores the settings and position from a checkpoint's metadata. */
static int read_checkpoint_state(struct trainer *t, char *err)
{
    static const char *const numbers[] = {
        "checkpoint.epoch",
        "checkpoint.step",
        "checkpoint.loss_sum",
        "checkpoint.correct",
        "checkpoint.seen",
        "checkpoint.best",
        "checkpoint.best_loss",
        "checkpoint.best_epoch",
        "checkpoint.since_best",
        "checkpoint.seconds",
        "checkpoint.adam_steps",
        "checkpoint.seed",
        "checkpoint.batch",
        "checkpoint.val_split",
        "checkpoint.tiles",
        "checkpoint.lr",
        "checkpoint.other_tile_weight",
    };
    double v[sizeof numbers / sizeof *numbers];
    const char *version = blurd_model_meta_get(t->model, "checkpoint.version");
    if (version == NULL ||
        (strcmp(version, CHECKPOINT_VERSION) != 0 && strcmp(version, OLD_CHECKPOINT_VERSION) != 0))
        return blurd_error_set(err, BLURD_EMODEL,
                               "%s: not a training checkpoint this blurd can continue (version "
                               "%s, this blurd writes %s)",
                               t->settings.resume, version ? version : "missing",
                               CHECKPOINT_VERSION);
    for (size_t k = 0; k < sizeof numbers / sizeof *numbers; k++)
        if (meta_number(t->model, numbers[k], &v[k]) != 0)
            return blurd_error_set(err, BLURD_EMODEL, "%s: checkpoint value %s missing or bad",
                                   t->settings.resume, numbers[k]);
    /* NaN best scores (no validation) are written as "nan" and read back by strtod */
    /* every count within what a run can reach, so no cast below is out of range */
    bool counts_ok = true;
    const int counts[] = {0, 1, 3, 4, 7, 8, 10};
    for (size_t k = 0; k < sizeof counts / sizeof *counts; k++)
        counts_ok = counts_ok && v[counts[k]] >= 0 && v[counts[k]] <= 1e15;
    if (!counts_ok ||
        !(v[0] < 1e6 && v[7] <= v[0] && v[12] >= 1 && v[12] <= BLURD_TRAIN_MAX_BATCH &&
          v[13] >= 0 && v[13] < 1 && v[14] >= 1 && v[14] <= 64 && v[15] > 0 && v[15] <= 1 &&
          v[16] >= 0 && v[16] <= 1 && isfinite(v[2]) && isfinite(v[9]) && v[9] >= 0))
        return blurd_error_set(err, BLURD_EMODEL, "%s: checkpoint values out of range",
                               t->settings.resume);
    t->epoch = (int)v[0];
    t->step = (size_t)v[1];
    t->loss_sum = v[2];
    t->correct = (size_t)v[3];
    t->seen = (size_t)v[4];
    t->best_score = v[5];
    t->best_loss = v[6];
    t->best_epoch = (int)v[7];
    t->since_best = (int)v[8];
    t->seconds_before = v[9];
    t->settings.batch = (int)v[12];
    t->settings.val_split = v[13];
    t->settings.tiles_per_image = (int)v[14];
    t->settings.learning_rate = (float)v[15];
    t->settings.other_tile_weight = (float)v[16];
    /* checkpoints from before the threshold was a setting fit it */
    double threshold;
    t->settings.threshold = meta_number(t->model, "checkpoint.threshold", &threshold) == 0 &&
                                    threshold > 0 && threshold < 1
                                ? (float)threshold
                                : 0.0f;
    /* version 2 checkpoints, from before contrast was a setting, trained without it */
    double contrast = 0.0;
    if (blurd_model_meta_get(t->model, "checkpoint.contrast") != NULL &&
        (meta_number(t->model, "checkpoint.contrast", &contrast) != 0 ||
         !(contrast >= 0.0 && contrast < 1.0)))
        return blurd_error_set(err, BLURD_EMODEL, "%s: checkpoint value checkpoint.contrast bad",
                               t->settings.resume);
    t->settings.contrast = (float)contrast;
    /* epochs not given: the planned length the run started with, so the learning rate's
     * schedule goes on as planned (checkpoints from before it was kept: the default) */
    double epochs = BLURD_TRAIN_DEFAULT_EPOCHS;
    bool epochs_kept = blurd_model_meta_get(t->model, "checkpoint.epochs") != NULL;
    if (epochs_kept && (meta_number(t->model, "checkpoint.epochs", &epochs) != 0 ||
                        !(epochs >= 1 && epochs <= 1e6) || epochs != floor(epochs)))
        return blurd_error_set(err, BLURD_EMODEL, "%s: checkpoint value checkpoint.epochs bad",
                               t->settings.resume);
    if (t->settings.epochs == 0 && !epochs_kept)
        blurd_log_warning("%s: the checkpoint does not say how many epochs its run planned "
                          "(an older blurd wrote it): going on to %d, the default; give "
                          "--epochs to keep its learning-rate schedule",
                          t->settings.resume, BLURD_TRAIN_DEFAULT_EPOCHS);
    if (t->settings.epochs == 0)
        t->settings.epochs = (int)epochs;
    t->settings.input = blurd_model_preprocess(t->model)->input;
    const char *data = blurd_model_meta_get(t->model, "checkpoint.data");
    snprintf(t->resumed_data, sizeof t->resumed_data, "%s", data ? data : "");
    /* a resumed run writes its own model, or a new file: never another file that exists */
    const char *output = blurd_model_meta_get(t->model, "checkpoint.output");
    struct stat st;
    if (output != NULL && strcmp(output, t->settings.output) != 0 &&
        stat(t->settings.output, &st) == 0)
        return blurd_error_set(err, BLURD_EINVAL,
                               "%s: already exists and is not the model of %s (that is %s): "
                               "choose another -o",
                               t->settings.output, t->settings.resume, output);
    const char *history = blurd_model_meta_get(t->model, "checkpoint.history");
    snprintf(t->history, sizeof t->history, "%s", history ? history : "");
    /* a double cannot hold every 64-bit seed: parsed as an integer */
    t->settings.seed = strtoull(blurd_model_meta_get(t->model, "checkpoint.seed"), NULL, 10);
    blurd_adam_set_steps(t->adam, (uint64_t)v[10]);
    for (size_t k = 0; k < sizeof checkpoint_keys / sizeof *checkpoint_keys; k++)
        blurd_model_meta_set(t->model, checkpoint_keys[k], NULL, NULL);
    return 0;
}

/* Saves the best weights as the model, with what it was trained on and how it did. */
static int save_best(struct trainer *t, const struct validation *v, double train_loss,
                     double train_accuracy, double seconds, char *err)
{
    const struct blurd_train_options *s = &t->settings;
    size_t count[2][2] = {{0}};
    for (size_t i = 0; i < t->dataset.count; i++)
        if (t->images[i].count > 0)
            count[t->images[i].validation][t->images[i].label]++;
    time_t now = time(NULL);
    struct tm tm;
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    int rc = 0;
    rc = rc ? rc : set_display_meta(t, "train.data", s->data_dir, err);
    rc = rc ? rc
            : set_meta(t, "train.images", err, "%zu blurred, %zu clear", count[0][0], count[0][1]);
    rc = rc ? rc
            : set_meta(t, "train.validation_images", err, "%zu blurred, %zu clear", count[1][0],
                       count[1][1]);
    rc = rc ? rc
            : set_meta(t, "train.skipped", err, "%zu",
                       t->dataset.count - count[0][0] - count[0][1] - count[1][0] - count[1][1]);
    rc = rc ? rc
            : set_meta(t, "train.settings", err,
                       "input %s, batch %d, lr %g, val-split %g, tiles %d, other-tile-weight "
                       "%g, contrast %g, seed %llu",
                       input_name(s->input), s->batch, (double)s->learning_rate, s->val_split,
                       s->tiles_per_image, (double)s->other_tile_weight, (double)s->contrast,
                       (unsigned long long)s->seed);
    rc = rc ? rc : set_meta(t, "train.epoch", err, "%d", t->best_epoch);
    rc = rc ? rc : set_meta(t, "train.loss", err, "%.4f", train_loss);
    rc = rc ? rc : set_meta(t, "train.accuracy", err, "%.4f", train_accuracy);
    rc = rc ? rc : set_meta(t, "train.seconds", err, "%.0f", seconds);
    rc = rc ? rc : set_meta(t, "train.date", err, "%s", date);
    /* with both classes held out the threshold is the one validation measured at */
    double threshold = s->threshold > 0 ? (double)s->threshold : 0.5;
    if (v->images > 0 && t->rank_by_validation)
        threshold = v->threshold;
    rc = rc ? rc : set_meta(t, "blurd.threshold", err, "%.4f", threshold);
    if (s->threshold > 0)
        rc = rc ? rc : set_meta(t, "train.threshold_fit", err, "given (--threshold)");
    else if (v->images > 0 && t->rank_by_validation)
        rc = rc ? rc
                : set_meta(t, "train.threshold_fit", err,
                           "steady on the validation images, window %g", THRESHOLD_WINDOW);
    else
        rc = rc ? rc
                : set_meta(t, "train.threshold_fit", err,
                           "none: 0.5 (no validation images of both classes)");
    if (v->images > 0) {
        rc = rc ? rc : set_meta(t, "train.val_loss", err, "%.4f", v->loss);
        rc = rc ? rc : set_meta(t, "train.val_accuracy", err, "%.4f", v->accuracy);
        /* with one class held out these figures do not exist (a recall of one class, an
         * AUC of nothing): left out rather than written as 0 or nan */
        if (t->rank_by_validation) {
            rc = rc ? rc
                    : set_meta(t, "train.val_balanced_accuracy", err, "%.4f", v->balanced_accuracy);
            rc = rc ? rc : set_meta(t, "train.val_auc", err, "%.4f", v->auc);
        } else {
            /* nor kept from a checkpoint's model of other data */
            blurd_model_meta_set(t->model, "train.val_balanced_accuracy", NULL, NULL);
            blurd_model_meta_set(t->model, "train.val_auc", NULL, NULL);
        }
    }
    return rc ? rc : blurd_model_save(t->model, s->output, s->half, err);
}

/* ---- the run ---- */

/* The step size at `step` of `total`: a cosine from the peak down to MIN_LR_SHARE of it. */
static float scheduled_rate(float peak, uint64_t step, uint64_t total)
{
    double progress = total > 0 ? (double)step / (double)total : 1.0;
    if (progress > 1.0)
        progress = 1.0;
    double share = MIN_LR_SHARE + (1.0 - MIN_LR_SHARE) * 0.5 * (1.0 + cos(M_PI * progress));
    return (float)((double)peak * share);
}

static int check_options(const struct blurd_train_options *o, char *err)
{
    if (o->data_dir == NULL || o->output == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "train: DATA and an output model are needed");
    if (o->epochs < (o->resume != NULL ? 0 : 1) || o->batch < 1 ||
        o->batch > BLURD_TRAIN_MAX_BATCH || !(o->learning_rate > 0.0f) ||
        !(o->val_split >= 0.0 && o->val_split < 1.0) || o->patience < 0 || o->tiles_per_image < 1 ||
        o->tiles_per_image > 64 || o->threads < 1 ||
        !(o->other_tile_weight >= 0.0f && o->other_tile_weight <= 1.0f) ||
        !(o->contrast >= 0.0f && o->contrast < 1.0f) || !(o->max_seconds >= 0.0) ||
        !(o->threshold >= 0.0f && o->threshold < 1.0f) ||
        (o->input != BLURD_INPUT_TILES && o->input != BLURD_INPUT_RESIZE))
        return blurd_error_set(err, BLURD_EINVAL, "train: options out of range");
    return 0;
}

/* Creates or restores the model, optimizer and best weights. */
static int start_model(struct trainer *t, char *err)
{
    const struct blurd_train_options *o = t->options;
    struct blurd_model_extra extras[3] = {
        {"adam.m", NULL, 0}, {"adam.v", NULL, 0}, {"best.parameters", NULL, 0}};
    int rc;
    if (o->resume != NULL) {
        rc = blurd_model_load_extras(&t->model, o->resume, extras, 3, err);
        if (rc == BLURD_EMODEL && strstr(err, "missing tensor adam.") != NULL)
            return blurd_error_set(err, rc,
                                   "%s: not a training checkpoint (no optimizer state): a model "
                                   "cannot be resumed",
                                   o->resume);
        if (rc != 0)
            return rc;
    } else {
        rc = blurd_model_create(&t->model, o->spec ? o->spec : BLURD_DEFAULT_SPEC, o->seed, err);
        if (rc != 0)
            return rc;
        rc = blurd_model_meta_set(t->model, "blurd.input", input_name(o->input), err);
        if (rc != 0)
            return rc;
    }
    t->net = blurd_model_net(t->model);
    t->parameter_count = blurd_net_parameter_count(t->net);
    struct blurd_adam_options adam = blurd_adam_defaults();
    adam.learning_rate = o->learning_rate;
    rc = blurd_adam_create(&t->adam, t->parameter_count, &adam, err);
    if (rc == 0 && o->resume != NULL) {
        memcpy(blurd_adam_first_moments(t->adam), extras[0].data,
               t->parameter_count * sizeof(float));
        memcpy(blurd_adam_second_moments(t->adam), extras[1].data,
               t->parameter_count * sizeof(float));
        t->best_parameters = extras[2].data;
        extras[2].data = NULL;
        rc = read_checkpoint_state(t, err);
    } else if (rc == 0) {
        t->best_parameters = malloc(t->parameter_count * sizeof(float) + 1);
        if (t->best_parameters == NULL)
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
        else
            memcpy(t->best_parameters, blurd_net_parameters(t->net),
                   t->parameter_count * sizeof(float));
        t->best_score = NAN;
        t->best_loss = NAN;
    }
    free(extras[0].data);
    free(extras[1].data);
    free(extras[2].data);
    return rc;
}

static void trainer_free(struct trainer *t)
{
    blurd_dataset_clear(&t->dataset);
    free(t->images);
    free(t->pixels);
    free(t->load_buffers);
    blurd_net_train_workspace_free(t->train_ws);
    blurd_net_workspace_free(t->infer_ws);
    blurd_adam_free(t->adam);
    free(t->best_parameters);
    free(t->order);
    free(t->units);
    free(t->weights);
    free(t->labels);
    free(t->batch_owner);
    free(t->batch_input);
    free(t->validation_scores);
    free(t->validation_samples);
    blurd_model_free(t->model);
}

/* Allocates the epoch order, validation buffers and workspaces once the data is loaded. */
static int prepare(struct trainer *t, struct blurd_train_summary *summary, char *err)
{
    size_t per_class[2] = {0}, validation_images = 0;
    for (size_t i = 0; i < t->dataset.count; i++) {
        const struct image_slot *slot = &t->images[i];
        if (slot->count == 0) {
            summary->skipped++;
        } else if (slot->validation) {
            summary->validation[slot->label]++;
            validation_images++;
        } else {
            summary->training[slot->label]++;
            per_class[slot->label] += (size_t)slot->count;
        }
    }
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++)
        if (summary->training[label] == 0)
            return blurd_error_set(err, BLURD_EINVAL,
                                   "%s/%s: no readable image left for training (%zu held out "
                                   "for validation; %zu unreadable images in DATA)",
                                   t->settings.data_dir, blurd_dataset_folder_name(label),
                                   summary->validation[label], summary->skipped);
    /* with one class held out, balanced accuracy is that class's recall alone, which a
     * network calling everything that class maximises: rank by training loss instead */
    t->rank_by_validation = summary->validation[0] > 0 && summary->validation[1] > 0;
    if (validation_images > 0 && !t->rank_by_validation)
        blurd_log_warning("%s: the validation photos hold only %s images: epochs are ranked by "
                          "training loss (try another --val-split or --seed)",
                          t->settings.data_dir, summary->validation[0] > 0 ? "blurred" : "clear");
    size_t most = per_class[0] > per_class[1] ? per_class[0] : per_class[1];
    t->order = malloc(2 * most * sizeof *t->order);
    /* a repeated round is written whole before it is cut short */
    t->units = malloc((2 * most + t->dataset.count) * sizeof *t->units);
    t->labels = malloc((size_t)t->settings.batch * sizeof *t->labels);
    t->weights = malloc((size_t)t->settings.batch * sizeof *t->weights);
    t->batch_owner = malloc((size_t)t->settings.batch * sizeof *t->batch_owner);
    t->batch_input = malloc((size_t)t->settings.batch * sizeof *t->batch_input);
    /* indexed like the input store (by image slot), so sized for every input */
    const struct image_slot *last = &t->images[t->dataset.count - 1];
    size_t store_inputs = last->first + (size_t)last->capacity;
    t->validation_scores = malloc((store_inputs + 1) * sizeof *t->validation_scores);
    t->validation_samples = malloc((validation_images + 1) * sizeof *t->validation_samples);
    if (t->order == NULL || t->units == NULL || t->labels == NULL || t->weights == NULL ||
        t->batch_owner == NULL || t->batch_input == NULL || t->validation_scores == NULL ||
        t->validation_samples == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    t->steps_per_epoch = (2 * most + (size_t)t->settings.batch - 1) / (size_t)t->settings.batch;
    int rc = blurd_net_train_workspace_create(&t->train_ws, t->net, t->settings.batch,
                                              t->settings.threads, 0, err);
    if (rc == 0)
        rc = blurd_net_workspace_create(&t->infer_ws, t->net, t->settings.batch,
                                        t->settings.threads, err);
    return rc;
}

static void append_history(struct trainer *t, double train_loss, const struct validation *v)
{
    size_t used = strlen(t->history);
    if (used + 64 < sizeof t->history)
        snprintf(t->history + used, sizeof t->history - used, "%s%d:%.4f:%.4f", used ? ";" : "",
                 t->epoch + 1, train_loss, v->balanced_accuracy);
}

/* On resume: warns when DATA is not the checkpoint's (the epoch's order then differs, so
 * the epoch in progress is cut short rather than resumed at a step that means nothing). */
static int check_resumed_data(struct trainer *t, char *err)
{
    (void)err;
    t->fingerprint = dataset_fingerprint(&t->dataset);
    if (t->options->resume == NULL)
        return 0;
    char expected[96];
    snprintf(expected, sizeof expected, "%zu files, fingerprint %016llx", t->dataset.count,
             (unsigned long long)t->fingerprint);
    const char *recorded = t->resumed_data;
    if (recorded[0] != '\0' && strcmp(recorded, expected) != 0) {
        blurd_log_warning("%s: DATA differs from the checkpoint's (%s, now %s): the epoch in "
                          "progress ends here",
                          t->settings.data_dir, recorded, expected);
        if (t->step > 0)
            t->step = t->steps_per_epoch;
    }
    if (t->step > t->steps_per_epoch)
        t->step = t->steps_per_epoch;
    return 0;
}

/* Refuses, before any image is decoded, an output the run could not write: a model or
 * checkpoint is written as a temporary file beside it and renamed, so its folder must
 * exist and take new files.  Otherwise the failure would show only after the first
 * epoch, which on a real data set can be hours. */
static int check_writable_folder(const char *path, char *err)
{
    char folder[PATH_MAX];
    blurd_files_parent(path, folder);
    struct stat st;
    if (stat(folder, &st) != 0)
        return blurd_error_set(err, BLURD_EINVAL, "%s: cannot write there: %s: %s", path, folder,
                               strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return blurd_error_set(err, BLURD_EINVAL, "%s: cannot write there: %s is not a folder",
                               path, folder);
    if (access(folder, W_OK | X_OK) != 0)
        return blurd_error_set(err, BLURD_EINVAL, "%s: cannot write there: %s: %s", path, folder,
                               strerror(errno));
    return 0;
}

int blurd_train_run(const struct blurd_train_options *options, struct blurd_train_summary *summary,
                    char *err)
{
    struct blurd_train_summary ignored;
    if (summary == NULL)
        summary = &ignored;
    *summary = (struct blurd_train_summary){.best_balanced_accuracy = NAN,
                                            .best_validation_loss = NAN,
                                            .first_training_loss = NAN,
                                            .last_training_loss = NAN,
                                            .last_training_accuracy = NAN};
    int rc = check_options(options, err);
    if (rc != 0)
        return rc;
    struct trainer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    t->options = options;
    t->settings = *options;
    /* a resumed run goes on writing the checkpoint it came from */
    const char *checkpoint = options->checkpoint ? options->checkpoint : options->resume;
    int length =
        checkpoint
            ? snprintf(t->checkpoint_path, sizeof t->checkpoint_path, "%s", checkpoint)
            : snprintf(t->checkpoint_path, sizeof t->checkpoint_path, "%s.ckpt", options->output);
    if (length < 0 || (size_t)length >= sizeof t->checkpoint_path ||
        strcmp(t->checkpoint_path, options->output) == 0) {
        free(t);
        return blurd_error_set(
            err, BLURD_EINVAL, "%s: the checkpoint cannot be %s", options->output,
            length >= 0 && (size_t)length < PATH_MAX ? "the model itself"
                                                     : "named: the path is too long");
    }
    /* a fresh run never replaces a model or checkpoint; a resumed one continues its own */
    const char *own_files[] = {options->output, t->checkpoint_path};
    for (size_t i = 0; options->resume == NULL && i < 2; i++) {
        struct stat st;
        if (lstat(own_files[i], &st) == 0) {
            free(t);
            return blurd_error_set(err, BLURD_EINVAL,
                                   "%s: already exists; choose another -o (or --checkpoint), "
                                   "remove it, or continue with --resume",
                                   own_files[i]);
        }
    }

    for (size_t i = 0; i < 2 && rc == 0; i++)
        rc = check_writable_folder(own_files[i], err);
    if (rc != 0) {
        free(t);
        return rc;
    }

    unsigned char *validation = NULL;
    rc = start_model(t, err);
    if (rc == 0)
        rc = blurd_dataset_read(&t->dataset, t->settings.data_dir, err);
    if (rc == 0) {
        validation = malloc(t->dataset.count + 1);
        if (validation == NULL)
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        blurd_dataset_split(&t->dataset, t->settings.val_split, validation);
        rc = load_images(t, validation, err);
    }
    free(validation);
    if (rc == 0)
        rc = prepare(t, summary, err);
    if (rc == 0)
        rc = check_resumed_data(t, err);
    if (rc != 0) {
        trainer_free(t);
        free(t);
        return rc;
    }
    const struct blurd_train_options *s = &t->settings;
    blurd_gemm_set_threads(1); /* the workspaces spread each layer over the cores */
    stop_signalled = 0;
    struct sigaction action = {.sa_handler = on_stop_signal, .sa_flags = SA_RESETHAND};
    struct sigaction old_int, old_term;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);
    /* a SIGINT ignored by whoever started blurd (a background job of a script) stays ignored */
    if (old_int.sa_handler == SIG_IGN)
        sigaction(SIGINT, &old_int, NULL);
    fprintf(stderr,
            "blurd: training on %zu blurred and %zu clear images, validating on %zu and %zu "
            "(%zu skipped); %zu steps of %d per epoch%s\n",
            summary->training[0], summary->training[1], summary->validation[0],
            summary->validation[1], summary->skipped, t->steps_per_epoch, s->batch,
            options->resume ? ", resumed" : "");
    if (options->resume != NULL)
        fprintf(stderr, "blurd: resuming %s at epoch %d, step %zu (seed %llu, batch %d, lr %g)\n",
                options->resume, t->epoch + 1, t->step, (unsigned long long)s->seed, s->batch,
                (double)s->learning_rate);

    float *parameters = blurd_net_parameters(t->net);
    float *input = blurd_net_train_input(t->train_ws);
    int size = blurd_model_preprocess(t->model)->tile_size;
    uint64_t total_steps = (uint64_t)s->epochs * t->steps_per_epoch;
    double run_start = now_seconds();
    uint64_t steps_run = 0;
    enum blurd_train_end end = BLURD_TRAIN_FINISHED;

    while (rc == 0 && t->epoch < s->epochs) {
        build_order(t, t->epoch);
        char label[96];
        snprintf(label, sizeof label, "epoch %d/%d", t->epoch + 1, s->epochs);
        blurd_progress_start(&t->progress, s->progress, "inputs");
        t->progress.label = label;
        double epoch_start = now_seconds();
        size_t first_step = t->step;
        for (; t->step < t->steps_per_epoch; t->step++) {
            double elapsed = t->seconds_before + (now_seconds() - run_start);
            bool stop =
                stop_signalled || (options->stop_requested != NULL && *options->stop_requested);
            bool out_of_time = (options->max_seconds > 0 && elapsed >= options->max_seconds) ||
                               (options->max_steps > 0 && steps_run >= options->max_steps);
            if (stop || out_of_time) {
                blurd_progress_clear(&t->progress);
                end = stop ? BLURD_TRAIN_INTERRUPTED : BLURD_TRAIN_BUDGET_SPENT;
                break;
            }
            size_t begin = t->step * (size_t)s->batch;
            int n = (int)(t->order_count - begin < (size_t)s->batch ? t->order_count - begin
                                                                    : (size_t)s->batch);
            for (int b = 0; b < n; b++) {
                const struct sample *sample = &t->order[begin + (size_t)b];
                const struct image_slot *slot = &t->images[sample->image];
                unsigned symmetry =
                    (unsigned)(key3(s->seed, (uint64_t)t->epoch, begin + (size_t)b) & 7);
                blurd_train_augment(t->pixels + (slot->first + sample->input) * t->input_values,
                                    size, symmetry, contrast_factor(s, t->epoch, begin + (size_t)b),
                                    input + (size_t)b * t->input_values);
                t->labels[b] = slot->label;
            }
            uint64_t global = blurd_adam_steps(t->adam);
            blurd_adam_set_learning_rate(t->adam,
                                         scheduled_rate(s->learning_rate, global, total_steps));
            const float *p = blurd_net_train_forward(t->net, t->train_ws, n,
                                                     key3(s->seed, 0x64726f70ULL, global));
            for (int b = 0; b < n; b++)
                t->correct += (p[2 * b + t->labels[b]] >= p[2 * b + 1 - t->labels[b]]);
            /* An image's run of inputs is told by where it starts, so two copies of one image
             * side by side stay two.  Which tiles look sharpest is judged by this pass, with
             * its dropout: a noisier choice than classify's, but one forward pass, not two. */
            const float *weights = NULL;
            if (s->input == BLURD_INPUT_TILES) {
                for (int b = 0; b < n; b++)
                    t->batch_owner[b] = begin + (size_t)b - t->order[begin + (size_t)b].input;
                blurd_train_tile_weights(n, t->batch_owner, p, s->other_tile_weight, t->weights);
                weights = t->weights;
            }
            double loss =
                blurd_net_train_backward_weighted(t->net, t->train_ws, n, t->labels, weights);
            if (!isfinite(loss)) {
                blurd_progress_clear(&t->progress);
                rc = blurd_error_set(err, BLURD_EINVAL,
                                     "training diverged at epoch %d, step %zu (loss %g): start "
                                     "again with a lower --lr than %g",
                                     t->epoch + 1, t->step + 1, loss, (double)s->learning_rate);
                break;
            }
            t->loss_sum += loss * n;
            t->seen += (size_t)n;
            blurd_adam_step(t->adam, parameters, blurd_net_train_gradients(t->train_ws));
            steps_run++;
            snprintf(label, sizeof label, "epoch %d/%d, loss %.4f, accuracy %.1f%%", t->epoch + 1,
                     s->epochs, t->loss_sum / (double)t->seen,
                     100.0 * (double)t->correct / (double)t->seen);
            blurd_progress_show(&t->progress, (t->step + 1 - first_step) * (size_t)s->batch,
                                (t->steps_per_epoch - first_step) * (size_t)s->batch, 0);
        }
        if (rc != 0 || end != BLURD_TRAIN_FINISHED)
            break;
        blurd_progress_clear(&t->progress);

        double train_loss = t->seen ? t->loss_sum / (double)t->seen : (double)NAN;
        double train_accuracy = t->seen ? (double)t->correct / (double)t->seen : (double)NAN;
        struct validation v;
        validate(t, &v);
        double score = t->rank_by_validation ? v.balanced_accuracy : -train_loss;
        double loss = t->rank_by_validation ? v.loss : train_loss;
        bool improved = isnan(t->best_score) || score > t->best_score + 1e-9 ||
                        (score > t->best_score - 1e-9 && loss < t->best_loss);
        const char *saved_note = improved ? " | best, saved" : "";
        double seconds = t->seconds_before + (now_seconds() - run_start);
        append_history(t, train_loss, &v);
        if (improved) {
            t->best_score = score;
            t->best_loss = loss;
            t->best_epoch = t->epoch + 1;
            t->since_best = 0;
            memcpy(t->best_parameters, parameters, t->parameter_count * sizeof(float));
            rc = save_best(t, &v, train_loss, train_accuracy, seconds, err);
            t->saved_this_run = rc == 0;
            if (rc != 0)
                saved_note = " | best, NOT saved";
        } else {
            t->since_best++;
        }
        /* validation's part of the line: none, one class (no balanced accuracy or AUC to
         * show), or both classes */
        char validation_text[160] = "";
        if (v.images > 0 && !t->rank_by_validation)
            snprintf(validation_text, sizeof validation_text,
                     " | validation loss %.4f, accuracy %.1f%% (one class)", v.loss,
                     100.0 * v.accuracy);
        else if (v.images > 0)
            snprintf(validation_text, sizeof validation_text,
                     " | validation loss %.4f, accuracy %.1f%%, balanced %.1f%% at %.3f, AUC %.4f",
                     v.loss, 100.0 * v.accuracy, 100.0 * v.balanced_accuracy, v.threshold, v.auc);
        fprintf(stderr, "blurd: epoch %d/%d: loss %.4f, accuracy %.1f%%%s | %.0f s%s\n",
                t->epoch + 1, s->epochs, train_loss, 100.0 * train_accuracy, validation_text,
                now_seconds() - epoch_start, saved_note);
        if (isnan(summary->first_training_loss))
            summary->first_training_loss = train_loss;
        summary->last_training_loss = train_loss;
        summary->last_training_accuracy = train_accuracy;
        t->epoch++;
        t->step = 0;
        t->loss_sum = 0.0;
        t->correct = t->seen = 0;
        /* the epoch is kept even if the model could not be written, whose reason stays
         * the one reported */
        char checkpoint_err[BLURD_ERR_LEN];
        int checkpoint_rc = save_checkpoint(t, seconds, rc == 0 ? err : checkpoint_err);
        if (rc == 0)
            rc = checkpoint_rc;
        else if (checkpoint_rc != 0)
            blurd_log_error("%s", checkpoint_err);
        if (rc == 0 && s->patience > 0 && t->since_best >= s->patience) {
            end = BLURD_TRAIN_EARLY_STOP;
            fprintf(stderr, "blurd: no better validation for %d epochs: stopping early\n",
                    s->patience);
            break;
        }
    }
    double seconds = t->seconds_before + (now_seconds() - run_start);
    if (rc == 0 && (end == BLURD_TRAIN_INTERRUPTED || end == BLURD_TRAIN_BUDGET_SPENT)) {
        rc = save_checkpoint(t, seconds, err);
        if (rc == 0)
            fprintf(stderr,
                    "blurd: %s at epoch %d, step %zu: checkpoint saved to %s (continue "
                    "with --resume %s)\n",
                    end == BLURD_TRAIN_INTERRUPTED ? "interrupted" : "budget spent", t->epoch + 1,
                    t->step, t->checkpoint_path, t->checkpoint_path);
    }
    /* a run that never improved on a resumed best (or stopped before its first epoch ended)
     * still leaves the best model at the output */
    if (rc == 0 && t->best_epoch > 0 && !t->saved_this_run) {
        memcpy(parameters, t->best_parameters, t->parameter_count * sizeof(float));
        rc = blurd_model_save(t->model, s->output, s->half, err);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (t->best_epoch > 0 && t->rank_by_validation) {
        summary->best_balanced_accuracy = t->best_score;
        summary->best_validation_loss = t->best_loss;
    }
    summary->epochs = t->epoch;
    summary->best_epoch = t->best_epoch;
    summary->seconds = seconds;
    summary->end = end;
    trainer_free(t);
    free(t);
    return rc;
}
