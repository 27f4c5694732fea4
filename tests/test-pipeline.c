/* test-pipeline.c - the worker pool: every submitted path comes back exactly once, with its
 * error if it failed; a full pipeline refuses more work; tile scores combine as promised. */
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/laplacian.h"
#include "blurd/model.h"
#include "blurd/pipeline.h"
#include "test.h"

#include <string.h>

TEST_IMPL(pipeline_combines_the_sharpest_quarter_of_tiles)
{
    const float one[1] = {0.8f};
    ASSERT_NEAR(blurd_pipeline_combine_tiles(one, 1), 0.8, 1e-7);
    /* 8 tiles: the two lowest p(blurred) are averaged */
    const float eight[8] = {0.9f, 0.2f, 0.95f, 0.1f, 0.99f, 0.97f, 0.93f, 0.91f};
    ASSERT_NEAR(blurd_pipeline_combine_tiles(eight, 8), 0.15, 1e-6);
    /* 5 tiles: ceil(5/4) = 2 */
    const float five[5] = {0.5f, 0.4f, 0.3f, 0.2f, 0.6f};
    ASSERT_NEAR(blurd_pipeline_combine_tiles(five, 5), 0.25, 1e-6);
    return 0;
}

TEST_IMPL(pipeline_returns_every_path_once_and_applies_back_pressure)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_create(&model,
                                     "input 200 200 3; conv 2 3 relu; maxpool 2; flatten; "
                                     "dense 2 softmax",
                                     3, err),
                  0);
    char *good = test_path("good.png");
    char command[1024];
    snprintf(command, sizeof command, "vips gaussnoise '%s' 300 250", good);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    char *missing = test_path("missing.png");

    struct blurd_pipeline_options options = {
        .model = model,
        .image = {.input = BLURD_INPUT_TILES,
                  .size = 200,
                  .tile_count = 4,
                  .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS},
        .jobs = 2,
        .threads_per_job = 1,
        .images_per_batch = 1,
        .queue_depth = 1,
    };
    blurd_pipeline *pipeline;
    ASSERT_INT_EQ(blurd_pipeline_create(&pipeline, &options, err), 0);
    /* capacity is queue_depth + jobs = 3 paths in flight */
    ASSERT_INT_EQ(blurd_pipeline_try_submit(pipeline, 0, good), 0);
    ASSERT_INT_EQ(blurd_pipeline_try_submit(pipeline, 1, missing), 0);
    ASSERT_INT_EQ(blurd_pipeline_try_submit(pipeline, 2, good), 0);
    ASSERT_INT_EQ(blurd_pipeline_try_submit(pipeline, 3, good), BLURD_EBUSY);
    ASSERT_INT_EQ(blurd_pipeline_in_flight(pipeline), 3);

    int seen[6] = {0};
    struct blurd_result *result = malloc(sizeof *result);
    size_t submitted = 3;
    while (blurd_pipeline_next(pipeline, result, 1)) {
        ASSERT(result->id < 6);
        seen[result->id]++;
        if (result->id == 1) {
            ASSERT_INT_EQ(result->status, BLURD_ENOENT);
            ASSERT_CONTAINS(result->error, "missing.png");
        } else {
            ASSERT_INT_EQ(result->status, 0);
            ASSERT_INT_EQ(result->info.width, 300);
            ASSERT(result->info.inputs >= 1 && result->info.inputs <= 4);
            ASSERT(result->p_blurred >= 0.0f && result->p_blurred <= 1.0f);
        }
        if (submitted < 6)
            ASSERT_INT_EQ(blurd_pipeline_submit(pipeline, submitted++, good), 0);
    }
    for (int i = 0; i < 6; i++)
        ASSERT_INT_EQ(seen[i], 1);
    ASSERT_INT_EQ(blurd_pipeline_in_flight(pipeline), 0);
    ASSERT_INT_EQ(blurd_pipeline_next(pipeline, result, 0), 0);
    free(result);
    blurd_pipeline_free(pipeline);
    blurd_model_free(model);
    return 0;
}

/* Scores of `count` paths through a resize-mode pipeline, by id. */
static void score_all(blurd_model *model, char **paths, int count, int images_per_batch,
                      float *p_blurred, int *status)
{
    char err[BLURD_ERR_LEN];
    struct blurd_pipeline_options options = {
        .model = model,
        .image = {.input = BLURD_INPUT_RESIZE,
                  .size = 200,
                  .tile_count = 1,
                  .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS},
        .jobs = 1,
        .threads_per_job = 1,
        .images_per_batch = images_per_batch,
        .queue_depth = count,
    };
    blurd_pipeline *pipeline;
    ASSERT_INT_EQ(blurd_pipeline_create(&pipeline, &options, err), 0);
    for (int i = 0; i < count; i++)
        ASSERT_INT_EQ(blurd_pipeline_try_submit(pipeline, (uint64_t)i, paths[i]), 0);
    struct blurd_result *result = malloc(sizeof *result);
    int seen = 0;
    while (blurd_pipeline_next(pipeline, result, 1)) {
        p_blurred[result->id] = result->p_blurred;
        status[result->id] = result->status;
        seen++;
    }
    ASSERT_INT_EQ(seen, count);
    free(result);
    blurd_pipeline_free(pipeline);
}

TEST_IMPL(pipeline_batches_in_resize_mode_score_as_alone)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_create(&model,
                                     "input 200 200 3; conv 2 3 relu; maxpool 2; flatten; "
                                     "dense 8 relu; dense 2 softmax",
                                     5, err),
                  0);
    enum { COUNT = 9 };
    char *paths[COUNT];
    for (int i = 0; i < COUNT; i++) {
        char name[32], command[1024];
        snprintf(name, sizeof name, "%d.png", i);
        paths[i] = test_path(name);
        if (i == 4) {
            test_write_file(paths[i], "broken", 6); /* a failure in the middle of a batch */
            continue;
        }
        snprintf(command, sizeof command, "vips gaussnoise '%s' %d 120 --mean %d", paths[i],
                 100 + 10 * i, 60 + 15 * i);
        ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    }
    float alone[COUNT], batched[COUNT];
    int alone_status[COUNT], batched_status[COUNT];
    score_all(model, paths, COUNT, 1, alone, alone_status);
    score_all(model, paths, COUNT, 4, batched, batched_status);
    for (int i = 0; i < COUNT; i++) {
        ASSERT_INT_EQ(batched_status[i], alone_status[i]);
        if (alone_status[i] == 0)
            ASSERT_NEAR(batched[i], alone[i], 1e-5);
    }
    ASSERT(alone_status[4] != 0);
    blurd_model_free(model);
    return 0;
}

/* Every path through a pipeline made from `options`, results by id. */
static void run_all(const struct blurd_pipeline_options *options, char **paths, int count,
                    float *p_blurred, double *variance, int *status)
{
    char err[BLURD_ERR_LEN];
    blurd_pipeline *pipeline;
    ASSERT_INT_EQ(blurd_pipeline_create(&pipeline, options, err), 0);
    struct blurd_result *result = malloc(sizeof *result);
    int seen = 0, submitted = 0;
    for (;;) {
        /* submit what fits, then collect one: a full pipeline is never waited on */
        while (submitted < count &&
               blurd_pipeline_try_submit(pipeline, (uint64_t)submitted, paths[submitted]) == 0)
            submitted++;
        if (!blurd_pipeline_next(pipeline, result, 1))
            break;
        p_blurred[result->id] = result->p_blurred;
        variance[result->id] = result->laplacian_variance;
        status[result->id] = result->status;
        seen++;
    }
    ASSERT_INT_EQ(seen, count);
    free(result);
    blurd_pipeline_free(pipeline);
}

TEST_IMPL(pipeline_laplacian_alone_and_beside_the_network)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    blurd_model *model;
    ASSERT_INT_EQ(blurd_model_create(&model,
                                     "input 200 200 3; conv 2 3 relu; maxpool 2; flatten; "
                                     "dense 2 softmax",
                                     9, err),
                  0);
    enum { COUNT = 6 };
    char *paths[COUNT];
    for (int i = 0; i < COUNT; i++) {
        char name[32], command[2048];
        snprintf(name, sizeof name, "%d.png", i);
        paths[i] = test_path(name);
        if (i == 2) {
            test_write_file(paths[i], "broken", 6);
            continue;
        }
        /* the same noise, blurred more and more */
        snprintf(command, sizeof command,
                 "vips gaussnoise '%s.v' 300 220 --seed 5 && vips gaussblur '%s.v' '%s' %g",
                 paths[i], paths[i], paths[i], 0.3 + i);
        ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    }

    /* the Laplacian alone needs no model, and scores as blurd_laplacian_score_file */
    struct blurd_pipeline_options options = {
        .model = NULL,
        .scores = BLURD_SCORE_LAPLACIAN,
        .image = {.max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS},
        .jobs = 2,
        .threads_per_job = 1,
        .images_per_batch = 1,
        .queue_depth = 1,
    };
    float p_alone[COUNT], p_both[COUNT];
    double v_alone[COUNT], v_both[COUNT], v_unused[COUNT];
    int s_alone[COUNT], s_both[COUNT], s_network[COUNT];
    run_all(&options, paths, COUNT, p_alone, v_alone, s_alone);
    for (int i = 0; i < COUNT; i++) {
        double expected = -1.0;
        ASSERT_INT_EQ(s_alone[i],
                      blurd_laplacian_score_file(paths[i], 0, NULL, &expected, NULL, err));
        if (s_alone[i] == 0)
            ASSERT_NEAR(v_alone[i], expected, 0.0);
    }
    ASSERT(s_alone[2] != 0);
    for (int i = 1; i < COUNT; i++)
        if (i != 2 && i != 3)
            ASSERT(v_alone[i] < v_alone[i - 1]); /* more blur, lower variance */

    /* both at once, in resize batches: each score as its method alone gives it */
    options.model = model;
    options.scores = BLURD_SCORE_NETWORK | BLURD_SCORE_LAPLACIAN;
    options.image = (struct blurd_image_options){.input = BLURD_INPUT_RESIZE,
                                                 .size = 200,
                                                 .tile_count = 1,
                                                 .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS};
    options.jobs = 1;
    options.images_per_batch = 4;
    options.queue_depth = COUNT;
    run_all(&options, paths, COUNT, p_both, v_both, s_both);
    options.scores = 0; /* the network alone, as callers before the Laplacian ask for it */
    run_all(&options, paths, COUNT, p_alone, v_unused, s_network);
    for (int i = 0; i < COUNT; i++) {
        ASSERT_INT_EQ(s_both[i], s_alone[i]);
        ASSERT_INT_EQ(s_network[i], s_alone[i]);
        if (s_both[i] == 0) {
            ASSERT_NEAR(v_both[i], v_alone[i], 0.0);
            ASSERT_NEAR(p_both[i], p_alone[i], 1e-6);
        }
    }

    /* the network without a model, and unknown scores, are refused */
    blurd_pipeline *pipeline = NULL;
    options.model = NULL;
    options.scores = BLURD_SCORE_NETWORK;
    ASSERT_INT_EQ(blurd_pipeline_create(&pipeline, &options, err), BLURD_EINVAL);
    ASSERT(pipeline == NULL);
    options.scores = 0;
    ASSERT_INT_EQ(blurd_pipeline_create(&pipeline, &options, err), BLURD_EINVAL);
    options.model = model;
    options.scores = 4;
    ASSERT_INT_EQ(blurd_pipeline_create(&pipeline, &options, err), BLURD_EINVAL);
    blurd_model_free(model);
    return 0;
}
