/* test-train.c - the optimizer against a plain double-precision transcription of the
 * paper's Algorithm 1, and on a problem whose minimum is known; the training loop on a
 * trivially separable set, its checkpoints and resume, the training inputs' augmentation,
 * and `blurd train` on bad data. */
#include "blurd/dataset.h"
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/model.h"
#include "blurd/net.h"
#include "blurd/random.h"
#include "blurd/train.h"
#include "test.h"

#include <vips/vips.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

TEST_IMPL(adam_matches_the_papers_algorithm)
{
    enum { N = 37, STEPS = 25 };
    struct blurd_adam_options options = {
        .learning_rate = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
    char err[BLURD_ERR_LEN];
    blurd_adam *adam;
    ASSERT_INT_EQ(blurd_adam_create(&adam, N, &options, err), 0);
    float params[N];
    double ref[N], m[N] = {0}, v[N] = {0};
    uint64_t state = 9;
    for (int i = 0; i < N; i++)
        ref[i] = params[i] = test_random_uniform(&state, -1.0f, 1.0f);
    for (int t = 1; t <= STEPS; t++) {
        float grads[N];
        for (int i = 0; i < N; i++)
            grads[i] = test_random_uniform(&state, -2.0f, 2.0f);
        blurd_adam_step(adam, params, grads);
        for (int i = 0; i < N; i++) {
            double g = grads[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            double m_hat = m[i] / (1.0 - pow(0.9, t)), v_hat = v[i] / (1.0 - pow(0.999, t));
            ref[i] -= 0.01 * m_hat / (sqrt(v_hat) + 1e-7);
        }
    }
    for (int i = 0; i < N; i++)
        ASSERT_NEAR(params[i], ref[i], 1e-5);
    ASSERT_INT_EQ(blurd_adam_steps(adam), STEPS);
    blurd_adam_free(adam);
    return 0;
}

TEST_IMPL(adam_first_step_and_convergence)
{
    char err[BLURD_ERR_LEN];
    struct blurd_adam_options options = blurd_adam_defaults();
    options.learning_rate = 0.05f;
    blurd_adam *adam;
    ASSERT_INT_EQ(blurd_adam_create(&adam, 3, &options, err), 0);
    /* the first step moves every parameter by the learning rate against its gradient's sign */
    float params[3] = {1.0f, -2.0f, 3.0f};
    const float grads[3] = {0.5f, -1e-3f, 40.0f};
    blurd_adam_step(adam, params, grads);
    ASSERT_NEAR(params[0], 0.95, 1e-5);
    ASSERT_NEAR(params[1], -1.95, 1e-4);
    ASSERT_NEAR(params[2], 2.95, 1e-5);
    /* f(x) = sum (x - c)^2 is minimised at c */
    const float target[3] = {0.25f, -0.5f, 1.5f};
    for (int t = 0; t < 2000; t++) {
        float g[3];
        for (int i = 0; i < 3; i++)
            g[i] = 2.0f * (params[i] - target[i]);
        blurd_adam_step(adam, params, g);
    }
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(params[i], target[i], 1e-2);
    blurd_adam_free(adam);

    options.beta1 = 1.0f;
    ASSERT_INT_EQ(blurd_adam_create(&adam, 3, &options, err), BLURD_EINVAL);
    ASSERT(adam == NULL);
    return 0;
}

/* ---- the training loop ------------------------------------------------------------ */

#define TRAIN_SPEC                                                          \
    "input 200 200 3; conv 4 3 relu; maxpool 2; conv 4 3 relu; maxpool 2; " \
    "flatten; dense 8 relu; dropout 0.25; dense 2 softmax"

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (path == NULL)
        TEST_FAIL("out of memory");
    snprintf(path, n, "%s/%s", dir, name);
    return path; /* the caller frees it */
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        TEST_FAIL("mkdir %s: %s", path, strerror(errno));
}

/* A set no network can fail to separate: noise for Undistorted, the same kind of noise
 * blurred away (sigma 4) for Blurred; side x side PNGs (200: one input per image in either
 * mode).  Returns the DATA folder. */
static char *make_sized_set(const char *name, const int per_class[2], int side, uint64_t seed)
{
    char *data = test_path(name);
    make_dir(data);
    for (int label = 0; label < 2; label++) {
        char *dir = join(data, label == 0 ? "Blurred" : "Undistorted");
        make_dir(dir);
        for (int i = 0; i < per_class[label]; i++) {
            size_t bytes = (size_t)side * (size_t)side * 3;
            uint8_t *pixels = malloc(bytes);
            if (pixels == NULL)
                TEST_FAIL("out of memory");
            for (size_t k = 0; k < bytes; k++)
                pixels[k] = (uint8_t)(test_random_next(&seed) >> 56);
            VipsImage *noise =
                vips_image_new_from_memory_copy(pixels, bytes, side, side, 3, VIPS_FORMAT_UCHAR);
            free(pixels);
            VipsImage *out = NULL;
            if (noise == NULL || (label == 0 ? vips_gaussblur(noise, &out, 4.0, "precision",
                                                              VIPS_PRECISION_INTEGER, NULL)
                                             : vips_copy(noise, &out, NULL)) != 0)
                TEST_FAIL("vips: %s", vips_error_buffer());
            char file[32];
            snprintf(file, sizeof file, "%02d.png", i);
            char *path = join(dir, file);
            if (vips_pngsave(out, path, NULL) != 0)
                TEST_FAIL("vips_pngsave %s: %s", path, vips_error_buffer());
            free(path);
            g_object_unref(out);
            g_object_unref(noise);
        }
        free(dir);
    }
    return data;
}

static char *make_separable_set(const char *name, int per_class, uint64_t seed)
{
    const int counts[2] = {per_class, per_class};
    return make_sized_set(name, counts, 200, seed);
}

static struct blurd_train_options small_options(const char *data, const char *output)
{
    struct blurd_train_options options;
    blurd_train_defaults(&options);
    options.data_dir = data;
    options.output = output;
    options.spec = TRAIN_SPEC;
    options.input = BLURD_INPUT_RESIZE;
    options.batch = 4;
    options.learning_rate = 3e-3f;
    options.val_split = 0.25;
    options.patience = 0;
    options.progress = 0;
    options.threads = 1; /* one thread: every run of the same seed gives the same bits */
    return options;
}

static double meta_double(const blurd_model *model, const char *key)
{
    const char *text = blurd_model_meta_get(model, key);
    if (text == NULL)
        TEST_FAIL("model has no %s", key);
    return strtod(text, NULL);
}

/* An image's tiles are weighed by the sharpest quarter its score rests on: 4 tiles give one,
 * 8 give two, a lone tile (or the part of an image the batch's edge cut off) its own one. */
TEST_IMPL(train_tile_weights_follow_the_sharpest_quarter)
{
    enum { N = 15 };
    const size_t owner[N] = {5, 5, 5, 5, 9, 9, 9, 9, 9, 9, 9, 9, 2, 5, 5};
    const float p_blurred[N] = {0.9f,  0.2f, 0.7f,  0.4f, 0.6f,  0.1f, 0.8f, 0.3f,
                                0.95f, 0.5f, 0.05f, 0.7f, 0.99f, 0.6f, 0.4f};
    float probabilities[2 * N], weights[N];
    for (int b = 0; b < N; b++) {
        probabilities[2 * b] = p_blurred[b];
        probabilities[2 * b + 1] = 1.0f - p_blurred[b];
    }
    blurd_train_tile_weights(N, owner, probabilities, 0.25f, weights);
    const float expected[N] = {0.25f, 1,     0.25f, 0.25f, 0.25f, 1,     0.25f, 0.25f,
                               0.25f, 0.25f, 1,     0.25f, 1,     0.25f, 1};
    for (int b = 0; b < N; b++)
        ASSERT_NEAR(weights[b], expected[b], 0.0);
    /* weight 1: every tile alike, as a plain mean */
    blurd_train_tile_weights(N, owner, probabilities, 1.0f, weights);
    for (int b = 0; b < N; b++)
        ASSERT_NEAR(weights[b], 1.0, 0.0);
    /* weight 0: only the decisive tiles count */
    blurd_train_tile_weights(N, owner, probabilities, 0.0f, weights);
    int counted = 0;
    for (int b = 0; b < N; b++)
        counted += weights[b] > 0.0f;
    ASSERT_INT_EQ(counted, 5);
    return 0;
}

TEST_IMPL(train_augment_turns_and_lowers_contrast_about_the_mean)
{
    enum { SIZE = 6, VALUES = SIZE * SIZE * 3 };
    uint8_t in[VALUES];
    uint64_t state = 7;
    for (int i = 0; i < VALUES; i++)
        in[i] = (uint8_t)(blurd_splitmix64(&state) & 0xff);
    float out[VALUES];
    /* factor 1: the bytes / 255, exactly; transposed then mirrored (symmetry 5), the
     * output's (y, x) is the input's (x, size - 1 - y) */
    blurd_train_augment(in, SIZE, 5, 1.0f, out);
    for (int y = 0; y < SIZE; y++)
        for (int x = 0; x < SIZE; x++)
            for (int ch = 0; ch < 3; ch++)
                ASSERT(out[(y * SIZE + x) * 3 + ch] ==
                       in[(x * SIZE + (SIZE - 1 - y)) * 3 + ch] * (1.0f / 255.0f));

    /* factor 0.25: the same mean, a quarter of the spread, inside [0, 1] */
    blurd_train_augment(in, SIZE, 0, 0.25f, out);
    double in_mean = 0, out_mean = 0;
    for (int i = 0; i < VALUES; i++) {
        in_mean += in[i] / 255.0 / VALUES;
        out_mean += (double)out[i] / VALUES;
    }
    ASSERT_NEAR(out_mean, in_mean, 1e-6);
    for (int i = 0; i < VALUES; i++) {
        ASSERT(out[i] >= 0.0f && out[i] <= 1.0f);
        ASSERT_NEAR((double)out[i] - out_mean, 0.25 * (in[i] / 255.0 - in_mean), 1e-6);
    }
    return 0;
}

TEST_IMPL(train_separable_set_to_full_accuracy_and_saved_model_scores_the_same)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *data = make_separable_set("data", 12, 7);
    char *output = test_path("model.safetensors");
    struct blurd_train_options options = small_options(data, output);
    options.epochs = 12;
    struct blurd_train_summary summary;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_FINISHED);
    ASSERT_INT_EQ(summary.epochs, 12);
    ASSERT_INT_EQ(summary.skipped, 0);
    ASSERT(summary.validation[0] > 0 && summary.validation[1] > 0);
    ASSERT_INT_EQ(summary.training[0] + summary.training[1] + summary.validation[0] +
                      summary.validation[1],
                  24);
    ASSERT(summary.last_training_loss < 0.5 * summary.first_training_loss);
    ASSERT_NEAR(summary.best_balanced_accuracy, 1.0, 1e-9);

    /* The saved model judges every training image right (the epoch's running accuracy is
     * taken with dropout on, so it is measured here without), and it is the model that
     * validation measured: its validation inputs, scored after loading, give the loss
     * recorded in it. */
    blurd_model *model;
    if (blurd_model_load(&model, output, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.input"), "resize");
    ASSERT_STR_EQ(blurd_model_meta_get(model, "train.data"), data);
    struct blurd_dataset dataset = {0};
    ASSERT_INT_EQ(blurd_dataset_read(&dataset, data, err), 0);
    unsigned char validation[24];
    ASSERT_INT_EQ(blurd_dataset_split(&dataset, 0.25, validation),
                  summary.validation[0] + summary.validation[1]);
    blurd_net_workspace *ws;
    ASSERT_INT_EQ(blurd_net_workspace_create(&ws, blurd_model_net(model), 1, 1, err), 0);
    struct blurd_image_options image = {.input = BLURD_INPUT_RESIZE, .size = 200, .tile_count = 1};
    /* the threshold was fitted on the validation images, within 0.05..0.95 */
    float threshold = blurd_model_preprocess(model)->threshold;
    ASSERT(threshold >= 0.05f && threshold <= 0.95f);
    ASSERT_STR_EQ(blurd_model_meta_get(model, "train.threshold_fit"),
                  "steady on the validation images, window 0.1");
    double loss = 0.0;
    size_t n = 0;
    for (size_t i = 0; i < dataset.count; i++) {
        struct blurd_image_info info;
        ASSERT_INT_EQ(blurd_image_load(dataset.entries[i].path, &image,
                                       blurd_net_workspace_input(ws), &info, err),
                      0);
        const float *p = blurd_net_forward(blurd_model_net(model), ws, 1, NULL);
        int called =
            p[BLURD_DATASET_BLURRED] >= threshold ? BLURD_DATASET_BLURRED : BLURD_DATASET_CLEAR;
        ASSERT_INT_EQ(called, dataset.entries[i].label);
        if (validation[i]) {
            loss -= log((double)p[dataset.entries[i].label]);
            n++;
        }
    }
    ASSERT_NEAR(loss / (double)n, meta_double(model, "train.val_loss"), 1e-4);
    ASSERT_NEAR(meta_double(model, "train.val_balanced_accuracy"), 1.0, 1e-9);
    blurd_net_workspace_free(ws);
    blurd_dataset_clear(&dataset);
    blurd_model_free(model);

    /* The checkpoint beside it is no model to classify with, but loads as a checkpoint. */
    char *checkpoint = test_path("model.safetensors.ckpt");
    ASSERT_INT_EQ(blurd_model_load(&model, checkpoint, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "a training checkpoint, not a model");
    /* and a model is no checkpoint to resume */
    options.resume = output;
    options.output = test_path("other.safetensors");
    ASSERT_INT_EQ(blurd_train_run(&options, &summary, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "not a training checkpoint");
    return 0;
}

/* Stopped after 4 steps (mid-epoch: 3 steps make an epoch) and resumed, a run ends with the very
 * same weights as one that never stopped. */
TEST_IMPL(train_resumed_run_matches_an_uninterrupted_one)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *data = make_separable_set("data", 8, 11);
    char *whole = test_path("whole.safetensors"), *sliced = test_path("sliced.safetensors");
    struct blurd_train_options options = small_options(data, whole);
    options.epochs = 2;
    options.seed = 5;
    struct blurd_train_summary summary;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);

    options.output = sliced;
    options.max_steps = 4;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_BUDGET_SPENT);
    ASSERT_INT_EQ(summary.epochs, 1);
    char *checkpoint = test_path("sliced.safetensors.ckpt");
    options.max_steps = 0;
    options.resume = checkpoint;
    options.seed = 999; /* ignored: the checkpoint's settings rule */
    options.batch = 7;
    options.epochs = 0; /* not given: the checkpoint's 2, so the same schedule */
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_FINISHED);
    ASSERT_INT_EQ(summary.epochs, 2);

    /* the last checkpoints hold the weights after epoch 2 (whichever epoch was best) and
     * the optimizer's moments: all the same bits */
    blurd_model *a, *b;
    struct blurd_model_extra ea[3] = {
        {"adam.m", NULL, 0}, {"adam.v", NULL, 0}, {"best.parameters", NULL, 0}};
    struct blurd_model_extra eb[3] = {
        {"adam.m", NULL, 0}, {"adam.v", NULL, 0}, {"best.parameters", NULL, 0}};
    if (blurd_model_load_extras(&a, test_path("whole.safetensors.ckpt"), ea, 3, err) != 0 ||
        blurd_model_load_extras(&b, test_path("sliced.safetensors.ckpt"), eb, 3, err) != 0)
        TEST_FAIL("%s", err);
    size_t count = blurd_net_parameter_count(blurd_model_net(a));
    ASSERT_INT_EQ(count, blurd_net_parameter_count(blurd_model_net(b)));
    ASSERT(memcmp(blurd_net_parameters(blurd_model_net(a)),
                  blurd_net_parameters(blurd_model_net(b)), count * sizeof(float)) == 0);
    for (int e = 0; e < 3; e++) {
        ASSERT_INT_EQ(ea[e].count, count);
        ASSERT(memcmp(ea[e].data, eb[e].data, count * sizeof(float)) == 0);
        free(ea[e].data);
        free(eb[e].data);
    }
    blurd_model_free(a);
    blurd_model_free(b);
    ASSERT_INT_EQ(blurd_model_load(&a, whole, err), 0);
    ASSERT_INT_EQ(blurd_model_load(&b, sliced, err), 0);
    ASSERT_STR_EQ(blurd_model_meta_get(a, "train.val_loss"),
                  blurd_model_meta_get(b, "train.val_loss"));
    blurd_model_free(a);
    blurd_model_free(b);

    /* a damaged checkpoint is refused with its name */
    char *bad = test_path("bad.ckpt");
    test_write_file(bad, "not a checkpoint", 16);
    options.resume = bad;
    ASSERT_INT_EQ(blurd_train_run(&options, &summary, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "bad.ckpt");
    return 0;
}

/* Tiles mode, where a step weighs an image's tiles together: 3 tiles per image in steps of
 * 4 (so images straddle steps) and fewer blurred images than clear (so some are repeated and
 * one cut short); stopped mid-epoch and resumed, the run ends with the same bits, and it
 * learns the set. */
TEST_IMPL(train_tiles_run_with_contrast_resumes_identically)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    const int counts[2] = {4, 7};
    char *data = make_sized_set("data", counts, 400, 17);
    /* each image gives the 3 tiles asked for */
    struct blurd_image_options image = {.input = BLURD_INPUT_TILES, .size = 200, .tile_count = 3};
    struct blurd_image_info info;
    float *inputs = malloc(3 * 200 * 200 * 3 * sizeof(float));
    char *first = test_path("data/Undistorted/00.png");
    ASSERT_INT_EQ(blurd_image_load(first, &image, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, 3);
    free(inputs);
    char *whole = test_path("whole.safetensors"), *sliced = test_path("sliced.safetensors");
    struct blurd_train_options options = small_options(data, whole);
    options.input = BLURD_INPUT_TILES;
    options.tiles_per_image = 3;
    options.val_split = 0.0;
    options.epochs = 3;
    options.contrast = 0.5f;
    struct blurd_train_summary summary;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.training[0], 4);
    ASSERT_INT_EQ(summary.training[1], 7);
    ASSERT(summary.last_training_loss < summary.first_training_loss);

    options.output = sliced;
    options.max_steps = 7; /* 7 clear images x 3 tiles x 2 classes / 4 = 11 steps an epoch */
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_BUDGET_SPENT);
    options.max_steps = 0;
    options.contrast = 0.0f; /* the checkpoint's contrast is the one used */
    options.resume = test_path("sliced.safetensors.ckpt");
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_FINISHED);

    /* the same run without the contrast augmentation learns other weights */
    char *plain = test_path("plain.safetensors");
    options = small_options(data, plain);
    options.input = BLURD_INPUT_TILES;
    options.tiles_per_image = 3;
    options.val_split = 0.0;
    options.epochs = 3;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);

    blurd_model *a, *b, *c;
    if (blurd_model_load(&a, whole, err) != 0 || blurd_model_load(&b, sliced, err) != 0 ||
        blurd_model_load(&c, plain, err) != 0)
        TEST_FAIL("%s", err);
    size_t count = blurd_net_parameter_count(blurd_model_net(a));
    ASSERT(memcmp(blurd_net_parameters(blurd_model_net(a)),
                  blurd_net_parameters(blurd_model_net(b)), count * sizeof(float)) == 0);
    ASSERT(memcmp(blurd_net_parameters(blurd_model_net(a)),
                  blurd_net_parameters(blurd_model_net(c)), count * sizeof(float)) != 0);
    ASSERT_STR_EQ(blurd_model_meta_get(a, "blurd.input"), "tiles");
    ASSERT_CONTAINS(blurd_model_meta_get(a, "train.settings"), "other-tile-weight 0.25");
    ASSERT_CONTAINS(blurd_model_meta_get(b, "train.settings"), "contrast 0.5,");
    ASSERT_CONTAINS(blurd_model_meta_get(c, "train.settings"), "contrast 0,");
    blurd_model_free(a);
    blurd_model_free(b);
    blurd_model_free(c);
    free(data);
    return 0;
}

/* Rewrites checkpoint `from` as `to` with one metadata value changed (NULL removes it). */
static void rewrite_checkpoint(const char *from, const char *to, const char *key, const char *value)
{
    char err[BLURD_ERR_LEN];
    blurd_model *model;
    struct blurd_model_extra extras[3] = {
        {"adam.m", NULL, 0}, {"adam.v", NULL, 0}, {"best.parameters", NULL, 0}};
    if (blurd_model_load_extras(&model, from, extras, 3, err) != 0 ||
        blurd_model_meta_set(model, key, value, err) != 0 ||
        blurd_model_save_extras(model, to, extras, 3, err) != 0)
        TEST_FAIL("%s", err);
    blurd_model_free(model);
    for (int e = 0; e < 3; e++)
        free(extras[e].data);
}

/* Resuming from `checkpoint` with `key` set to `value` fails as a model error whose text
 * names the rewritten file and `why`. */
static void expect_refused(struct blurd_train_options *options, const char *checkpoint,
                           const char *key, const char *value, const char *why)
{
    char err[BLURD_ERR_LEN];
    struct blurd_train_summary summary;
    char *rewritten = test_path("rewritten.ckpt");
    rewrite_checkpoint(checkpoint, rewritten, key, value);
    options->resume = rewritten;
    options->output = test_path("rewritten.safetensors");
    ASSERT_INT_EQ(blurd_train_run(options, &summary, err), BLURD_EMODEL);
    ASSERT_CONTAINS(err, "rewritten.ckpt");
    ASSERT_CONTAINS(err, why);
}

TEST_IMPL(train_checkpoint_versions_and_contrast_value)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *data = make_separable_set("data", 6, 13);
    struct blurd_train_options options = small_options(data, test_path("m.safetensors"));
    options.epochs = 2;
    options.contrast = 0.5f;
    options.max_steps = 2;
    struct blurd_train_summary summary;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_BUDGET_SPENT);
    char *checkpoint = test_path("m.safetensors.ckpt");
    options.max_steps = 0;

    /* as a blurd from before the contrast setting wrote it: version 2, no contrast key,
     * which continues without contrast */
    char *old = test_path("old.ckpt");
    rewrite_checkpoint(checkpoint, old, "checkpoint.contrast", NULL);
    rewrite_checkpoint(old, old, "checkpoint.version", "2");
    options.resume = old;
    options.output = test_path("old.safetensors");
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.end, BLURD_TRAIN_FINISHED);
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_load(&model, test_path("old.safetensors"), err), 0);
    ASSERT_CONTAINS(blurd_model_meta_get(model, "train.settings"), "contrast 0,");
    blurd_model_free(model);

    /* an unknown version and a contrast out of range are refused, naming the file */
    expect_refused(&options, checkpoint, "checkpoint.version", "1", "version 1");
    expect_refused(&options, checkpoint, "checkpoint.contrast", "1.5", "checkpoint.contrast");
    expect_refused(&options, checkpoint, "checkpoint.epochs", "2.5", "checkpoint.epochs");
    expect_refused(&options, checkpoint, "checkpoint.epochs", "0", "checkpoint.epochs");

    /* epochs not given: the checkpoint's plan, or, for a checkpoint of an older blurd that
     * did not keep it, the default (warned about); the resumed run's checkpoint says which */
    static const char *const planned[] = {"2", "30"}; /* kept, and not kept */
    for (int k = 0; k < 2; k++) {
        char *resumed = test_path(k == 0 ? "planned.ckpt" : "unplanned.ckpt");
        rewrite_checkpoint(checkpoint, resumed, "checkpoint.epochs", k == 0 ? planned[0] : NULL);
        options.resume = resumed;
        options.output = test_path(k == 0 ? "planned.safetensors" : "unplanned.safetensors");
        options.epochs = 0;
        options.max_steps = 1;
        if (blurd_train_run(&options, &summary, err) != 0)
            TEST_FAIL("%s", err);
        ASSERT_INT_EQ(summary.end, BLURD_TRAIN_BUDGET_SPENT);
        struct blurd_model_extra extras[3] = {
            {"adam.m", NULL, 0}, {"adam.v", NULL, 0}, {"best.parameters", NULL, 0}};
        if (blurd_model_load_extras(&model, resumed, extras, 3, err) != 0)
            TEST_FAIL("%s", err);
        ASSERT_STR_EQ(blurd_model_meta_get(model, "checkpoint.epochs"), planned[k]);
        blurd_model_free(model);
        for (int e = 0; e < 3; e++)
            free(extras[e].data);
    }
    options.epochs = 2;
    options.max_steps = 0;

    /* the checkpoint as written continues with its contrast */
    options.resume = checkpoint;
    options.output = test_path("m.safetensors");
    options.contrast = 0.0f;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(blurd_model_load(&model, test_path("m.safetensors"), err), 0);
    ASSERT_CONTAINS(blurd_model_meta_get(model, "train.settings"), "contrast 0.5,");
    blurd_model_free(model);
    free(data);
    return 0;
}

/* Sources named in labels.csv so that the validation split (0.25) takes one clear photo
 * and no blurred one: epochs are then ranked by training loss, the threshold stays 0.5,
 * and the model records no balanced accuracy or AUC, which one class does not have. */
TEST_IMPL(train_validation_of_one_class_records_no_balanced_figures)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *data = make_separable_set("data", 4, 3);
    /* names whose split position falls out of validation, and one that falls in */
    char out_names[7][16], in_name[16] = "";
    int outs = 0;
    for (int n = 0; n < 1000 && (outs < 7 || in_name[0] == '\0'); n++) {
        char name[16];
        snprintf(name, sizeof name, "photo-%d", n);
        if (blurd_dataset_source_position(name) >= 0.25) {
            if (outs < 7)
                snprintf(out_names[outs++], sizeof out_names[0], "%s", name);
        } else if (in_name[0] == '\0') {
            snprintf(in_name, sizeof in_name, "%s", name);
        }
    }
    ASSERT(outs == 7 && in_name[0] != '\0');
    char labels[1024];
    snprintf(labels, sizeof labels,
             "file,source\nBlurred/00.png,%s\nBlurred/01.png,%s\nBlurred/02.png,%s\n"
             "Blurred/03.png,%s\nUndistorted/00.png,%s\nUndistorted/01.png,%s\n"
             "Undistorted/02.png,%s\nUndistorted/03.png,%s\n",
             out_names[0], out_names[1], out_names[2], out_names[3], in_name, out_names[4],
             out_names[5], out_names[6]);
    test_write_file(test_path("data/labels.csv"), labels, strlen(labels));

    char *output = test_path("one-class.safetensors");
    struct blurd_train_options options = small_options(data, output);
    options.epochs = 2;
    struct blurd_train_summary summary;
    if (blurd_train_run(&options, &summary, err) != 0)
        TEST_FAIL("%s", err);
    ASSERT_INT_EQ(summary.validation[0], 0);
    ASSERT_INT_EQ(summary.validation[1], 1);
    ASSERT(isnan(summary.best_balanced_accuracy));
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_load(&model, output, err), 0);
    ASSERT_STR_EQ(blurd_model_meta_get(model, "blurd.threshold"), "0.5000");
    ASSERT(blurd_model_meta_get(model, "train.val_loss") != NULL);
    ASSERT(blurd_model_meta_get(model, "train.val_balanced_accuracy") == NULL);
    ASSERT(blurd_model_meta_get(model, "train.val_auc") == NULL);
    blurd_model_free(model);

    /* the command says so, and its epoch line shows no balanced accuracy or AUC */
    char args[1024], *out, *log;
    snprintf(args, sizeof args,
             "train data -o cli.safetensors --spec '%s' --input resize --epochs 1 --batch 4 "
             "--val-split 0.25 -j 1",
             TRAIN_SPEC);
    ASSERT_INT_EQ(test_blurd(args, &out, &log), 0);
    ASSERT_CONTAINS(log, "the validation photos hold only clear images");
    ASSERT_CONTAINS(log, "accuracy 100.0% (one class)");
    ASSERT(strstr(log, "AUC") == NULL && strstr(log, "balanced") == NULL);
    return 0;
}

TEST_IMPL(train_command_bad_data_and_usage)
{
    char err_text[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err_text), 0);
    char *out, *err;
    ASSERT_INT_EQ(test_blurd("train --help", &out, &err), 0);
    ASSERT_CONTAINS(out, "--resume");
    ASSERT_INT_EQ(test_blurd("train missing -o m.safetensors", &out, &err), 2);
    ASSERT_CONTAINS(err, "missing");
    ASSERT_INT_EQ(test_blurd("train missing", &out, &err), 2);
    ASSERT_CONTAINS(err, "-o FILE");
    ASSERT_INT_EQ(test_blurd("train missing -o m --batch 0", &out, &err), 2);
    ASSERT_CONTAINS(err, "--batch");
    ASSERT_INT_EQ(test_blurd("train missing -o m --contrast 0.95", &out, &err), 2);
    ASSERT_CONTAINS(err, "--contrast must be a number from 0 to 0.9");

    /* a class folder without images, and a set of one image */
    make_separable_set("data", 1, 3);
    ASSERT(rename(test_path("data/Blurred/00.png"), test_path("aside.png")) == 0);
    ASSERT_INT_EQ(test_blurd("train data -o m.safetensors", &out, &err), 2);
    ASSERT_CONTAINS(err, "Blurred");

    /* unreadable images are skipped, warned about and counted; the rest trains (exit 1) */
    make_separable_set("set", 6, 9);
    test_write_file(test_path("set/Blurred/empty.jpg"), "", 0);
    test_write_file(test_path("set/Undistorted/corrupt.png"), "\x89PNG\r\n\x1a\n garbage", 16);
    char args[512];
    snprintf(args, sizeof args,
             "train set -o m.safetensors --spec '%s' --input resize --epochs 2 --batch 4 "
             "--val-split 0.3 -j 1",
             TRAIN_SPEC);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 1);
    ASSERT_CONTAINS(err, "empty.jpg");
    ASSERT_CONTAINS(err, "corrupt.png");
    ASSERT_CONTAINS(err, "2 skipped");
    ASSERT_CONTAINS(err, "epoch 2/2");
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_load(&model, test_path("m.safetensors"), err_text), 0);
    ASSERT_STR_EQ(blurd_model_meta_get(model, "train.skipped"), "2");
    blurd_model_free(model);

    /* nothing is overwritten: the same output again is refused, naming it */
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 2);
    ASSERT_CONTAINS(err, "m.safetensors: already exists");

    /* an output or checkpoint whose folder is missing is refused before any image is
     * decoded or epoch trained, naming the folder */
    snprintf(args, sizeof args,
             "train set -o nowhere/m.safetensors --spec '%s' --input resize --epochs 1 "
             "--batch 4 --val-split 0.3 -j 1",
             TRAIN_SPEC);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 2);
    ASSERT_CONTAINS(err, "nowhere/m.safetensors: cannot write there: nowhere: No such file");
    ASSERT(strstr(err, "decoding") == NULL && strstr(err, "epoch 1") == NULL);
    snprintf(args, sizeof args,
             "train set -o m2.safetensors --checkpoint set/Blurred/00.png/c.ckpt --spec '%s' "
             "--input resize --epochs 1 --batch 4 --val-split 0.3 -j 1",
             TRAIN_SPEC);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 2);
    ASSERT_CONTAINS(err, "cannot write there: set/Blurred/00.png is not a folder");
    ASSERT(strstr(err, "epoch 1") == NULL);
    return 0;
}

/* SIGTERM (or Ctrl-C) during training finishes the step, saves a checkpoint and exits 130;
 * the checkpoint resumes.  (SIGTERM here because a script's background job ignores SIGINT,
 * which blurd then leaves ignored.) */
TEST_IMPL(train_interrupt_saves_a_checkpoint)
{
    char err_text[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err_text), 0);
    make_separable_set("set", 6, 13);
    char command[1024];
    snprintf(command, sizeof command,
             "cd '%s' && { '%s' train set -o m.safetensors --spec '%s' --input resize "
             "--epochs 100000 --patience 0 --batch 2 -j 1 & pid=$!; "
             "while kill -0 $pid 2>/dev/null && [ ! -f m.safetensors.ckpt ]; do sleep 0.05; done; "
             "kill -TERM $pid; wait $pid; echo \"status $?\"; }",
             test_tmpdir(), test_blurd_binary(), TRAIN_SPEC);
    char *out, *err;
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    ASSERT_CONTAINS(out, "status 130");
    ASSERT_CONTAINS(err, "interrupted at epoch");
    ASSERT_CONTAINS(err, "--resume m.safetensors.ckpt");
    ASSERT_INT_EQ(test_blurd("train set -o m.safetensors --resume m.safetensors.ckpt "
                             "--epochs 100000 --max-steps 1 --seed 4 -j 1",
                             &out, &err),
                  0);
    ASSERT_CONTAINS(err, "resuming m.safetensors.ckpt");
    ASSERT_CONTAINS(err, "the ones given are ignored");
    ASSERT_CONTAINS(err, "budget spent at epoch");
    /* resumed again without --epochs: the run still plans the 100000 it started with */
    ASSERT_INT_EQ(
        test_blurd("train set -o m.safetensors --resume m.safetensors.ckpt --max-steps 1 -j 1",
                   &out, &err),
        0);
    ASSERT_CONTAINS(err, "budget spent at epoch");
    struct blurd_model_extra extras[3] = {
        {"adam.m", NULL, 0}, {"adam.v", NULL, 0}, {"best.parameters", NULL, 0}};
    blurd_model *checkpoint;
    if (blurd_model_load_extras(&checkpoint, test_path("m.safetensors.ckpt"), extras, 3,
                                err_text) != 0)
        TEST_FAIL("%s", err_text);
    ASSERT_STR_EQ(blurd_model_meta_get(checkpoint, "checkpoint.epochs"), "100000");
    blurd_model_free(checkpoint);
    for (int e = 0; e < 3; e++)
        free(extras[e].data);

    /* a resumed run writes its own model or a new file, never another that exists */
    test_write_file(test_path("precious.safetensors"), "keep", 4);
    ASSERT_INT_EQ(test_blurd("train set -o precious.safetensors --resume m.safetensors.ckpt -j 1",
                             &out, &err),
                  2);
    ASSERT_CONTAINS(err, "precious.safetensors: already exists and is not the model of");
    ASSERT_STR_EQ(test_read_file(test_path("precious.safetensors"), NULL), "keep");
    /* nor can the checkpoint be the model */
    ASSERT_INT_EQ(
        test_blurd("train set -o x.safetensors --checkpoint x.safetensors -j 1", &out, &err), 2);
    ASSERT_CONTAINS(err, "the checkpoint cannot be the model itself");
    return 0;
}
