/* pipeline.h - the bounded job queue and worker threads that turn image paths into
 * verdicts: each worker decodes (image), runs the network on its own planned workspace
 * (net) and combines tile scores into one image score, and/or measures the variance of the
 * Laplacian (laplacian.h) on a grey buffer of its own.
 *
 * One thread (the caller's: main loop or event loop) submits paths and collects results;
 * workers never block on collection, since a path is only accepted while a result slot is
 * free for it.  That is the back-pressure: submit fails with BLURD_EBUSY (or blocks, for
 * blurd_pipeline_submit) while `queue_depth + jobs * images_per_batch` paths are in flight.  Paths
 * and results live in slots allocated once at creation; nothing is allocated per image by the
 * pipeline itself.
 */
#ifndef BLURD_PIPELINE_H
#define BLURD_PIPELINE_H

#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/model.h"
#include "blurd/store.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

typedef struct blurd_pipeline blurd_pipeline;

/* What the workers compute for each image: a set of these bits.  Both at once (as `blurd
 * eval --compare laplacian` asks) judge the very same images with both methods: an image
 * either method cannot read fails as a whole. */
enum blurd_pipeline_score {
    BLURD_SCORE_NETWORK = 1 << 0,   /* p_blurred, from the model */
    BLURD_SCORE_LAPLACIAN = 1 << 1, /* laplacian_variance; needs no model */
};

struct blurd_pipeline_options {
    /* Borrowed; must outlive the pipeline.  May be NULL when `scores` leaves out the
     * network. */
    const blurd_model *model;
    /* enum blurd_pipeline_score bits; 0 means BLURD_SCORE_NETWORK, so callers written
     * before the Laplacian existed need not name it. */
    unsigned scores;
    struct blurd_image_options image; /* how inputs are made (from the model, overridable) */
    int jobs;                         /* worker threads, >= 1 */
    int threads_per_job;              /* threads each forward pass is spread over, >= 1 */
    /* Images a worker may judge in one forward pass when more are waiting than workers,
     * 1..32: worth it when each image is one input (resize mode); 1 for tiles. */
    int images_per_batch;
    int queue_depth; /* paths waiting beyond those being worked on, >= 1 */
    /* Called by a worker, without locks held, after it posts a result (e.g. uv_async_send
     * to wake an event loop).  May be NULL. */
    void (*notify)(void *arg);
    void *notify_arg;
};

struct blurd_result {
    uint64_t id;               /* the caller's, from submit */
    char path[PATH_MAX];       /* as submitted */
    int status;                /* 0, or a BLURD_E* code */
    char error[BLURD_ERR_LEN]; /* when status != 0: "PATH: reason" */
    struct blurd_image_info info;
    float p_blurred;           /* BLURD_SCORE_NETWORK: the image's score, combined over tiles */
    double laplacian_variance; /* BLURD_SCORE_LAPLACIAN: blurd_laplacian_variance at
                                  BLURD_LAPLACIAN_SIDE (low: blurred) */
    double decode_ms;          /* decode and input preparation (both decodes, for both scores) */
    double network_ms;         /* scoring: the forward pass and/or the variance */
};

/* Starts the workers, with every buffer they will use (network workspaces, grey images)
 * allocated here.  BLURD_EINVAL for options out of range or the network asked for without a
 * model; BLURD_ENOMEM.  On failure *out is NULL. */
int blurd_pipeline_create(blurd_pipeline **out, const struct blurd_pipeline_options *options,
                          char *err);

/* Finishes the paths already queued or running, then joins the workers and frees
 * everything.  Results not collected are discarded.  NULL is a no-op. */
void blurd_pipeline_free(blurd_pipeline *pipeline);

/* Queues a copy of `path` under `id`.  Returns BLURD_EBUSY when no slot is free,
 * BLURD_EINVAL for a path longer than PATH_MAX - 1. */
int blurd_pipeline_try_submit(blurd_pipeline *pipeline, uint64_t id, const char *path);

/* As try_submit, but waits for a free slot (the caller must be collecting results on
 * another thread, or have some in flight that `next` will return, or it waits forever). */
int blurd_pipeline_submit(blurd_pipeline *pipeline, uint64_t id, const char *path);

/* Moves the oldest finished result into `result`: returns 1 when it did, 0 when there is
 * none (at once if `wait` is 0; when nothing is in flight at all if `wait` is non-zero). */
int blurd_pipeline_next(blurd_pipeline *pipeline, struct blurd_result *result, int wait);

/* Paths submitted and not yet collected. */
size_t blurd_pipeline_in_flight(const blurd_pipeline *pipeline);

/* The image score from per-tile p(blurred): the mean of the sharpest quarter of the tiles
 * (at least one), because blur is judged where the photo is sharpest - a sharp subject in
 * front of a soft background is a clear photo - while averaging a few tiles keeps one
 * noisy tile from deciding alone. */
float blurd_pipeline_combine_tiles(const float *p_blurred, int count);

/* How many of an image's `count` tiles its score rests on: the sharpest quarter, at least
 * one (0 for none).  Training weighs tiles by the same rule. */
int blurd_pipeline_tiles_scored(int count);

/* Fills the fields of a database row that a result determines: path (`path`, borrowed),
 * size and modification time (from `st`; unknown when NULL), width, height, format,
 * p_blurred and milliseconds.  The rest (verdict, model, input mode, moved_to, error) is
 * cleared for the caller to set. */
void blurd_pipeline_row(const struct blurd_result *result, const char *path, const struct stat *st,
                        struct blurd_store_row *row);

#endif
