/* pipeline.c - worker threads over a fixed set of slots: each slot carries one path from
 * submission through decode and forward pass (or Laplacian) to a collected result.
 *
 * Expected workload: a few images per second to a few hundred, each costing tens of
 * milliseconds of decode and network time, so one mutex and three condition variables
 * are nowhere near the bottleneck. */
#include "blurd/pipeline.h"

#include "blurd/laplacian.h"
#include "blurd/net.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IMAGES_PER_BATCH 32

/* A ring of slot indices. */
struct fifo {
    int *items;
    int head, count, capacity;
};

struct worker {
    blurd_pipeline *pipeline;
    pthread_t thread;
    blurd_net_workspace *workspace; /* NULL without the network */
    uint8_t *grey;                  /* BLURD_LAPLACIAN_WORK_BYTES, or NULL without it */
    bool started;
};

struct blurd_pipeline {
    struct blurd_pipeline_options options;
    bool network, laplacian; /* what options.scores asks for */
    const blurd_net *net;    /* NULL without the network */
    int max_inputs;          /* network inputs per image: tiles or 1 */

    pthread_mutex_t lock;
    pthread_cond_t work_ready;   /* a slot was queued, or stopping */
    pthread_cond_t slot_freed;   /* a result was collected */
    pthread_cond_t result_ready; /* a worker finished a slot */
    bool stopping;
    int idle_workers; /* waiting for work */

    int capacity;
    struct blurd_result *slots;
    struct fifo free_slots, queued, done;

    int worker_count;
    struct worker *workers;
};

static void fifo_push(struct fifo *f, int item)
{
    f->items[(f->head + f->count) % f->capacity] = item;
    f->count++;
}

static int fifo_pop(struct fifo *f)
{
    int item = f->items[f->head];
    f->head = (f->head + 1) % f->capacity;
    f->count--;
    return item;
}

static double milliseconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 +
           (double)(now.tv_nsec - start->tv_nsec) * 1e-6;
}

int blurd_pipeline_tiles_scored(int count)
{
    return count > 0 ? (count + 3) / 4 : 0;
}

float blurd_pipeline_combine_tiles(const float *p_blurred, int count)
{
    float sorted[64];
    int n = count < 64 ? count : 64;
    for (int i = 0; i < n; i++) {
        float v = p_blurred[i];
        int j = i;
        while (j > 0 && sorted[j - 1] > v) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = v;
    }
    int used = blurd_pipeline_tiles_scored(n);
    float sum = 0.0f;
    for (int i = 0; i < used; i++)
        sum += sorted[i];
    return n > 0 ? sum / (float)used : 0.0f;
}

/* Measures one image's variance of the Laplacian into its result (which has not failed). */
static void measure_laplacian(struct worker *worker, struct blurd_result *r)
{
    blurd_pipeline *p = worker->pipeline;
    struct blurd_image_info info;
    int width = 0, height = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    r->status = blurd_image_load_grey(r->path, BLURD_LAPLACIAN_SIDE, p->options.image.max_pixels,
                                      worker->grey, BLURD_LAPLACIAN_WORK_BYTES, &width, &height,
                                      &info, r->error);
    r->decode_ms += milliseconds_since(&start);
    if (!p->network) /* else the network's decode has filled it, with the input count */
        r->info = info;
    if (r->status != 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &start);
    r->laplacian_variance = blurd_laplacian_variance(worker->grey, width, height);
    r->network_ms += milliseconds_since(&start);
}

/* Decodes the images of `count` slots into consecutive network inputs, runs one forward
 * pass over all of them, and fills each slot's result; measures the Laplacian of each when
 * asked.  Several images share a pass only when more are waiting than workers (see
 * worker_main), so a lone photo is never delayed; in a burst the dense layer's 25.6 MB
 * kernel is then read once per batch, not per image. */
static void process_batch(struct worker *worker, const int *slots, int count)
{
    blurd_pipeline *p = worker->pipeline;
    size_t input_floats = 0;
    float *inputs = NULL;
    if (p->network) {
        struct blurd_shape shape = blurd_net_input_shape(p->net);
        input_floats = (size_t)shape.height * shape.width * shape.channels;
        inputs = blurd_net_workspace_input(worker->workspace);
    }
    int first_input[MAX_IMAGES_PER_BATCH], total_inputs = 0;
    struct timespec start;
    for (int i = 0; i < count; i++) {
        struct blurd_result *r = &p->slots[slots[i]];
        if (p->network) {
            clock_gettime(CLOCK_MONOTONIC, &start);
            r->status =
                blurd_image_load(r->path, &p->options.image,
                                 inputs + (size_t)total_inputs * input_floats, &r->info, r->error);
            r->decode_ms = milliseconds_since(&start);
        }
        if (p->laplacian && r->status == 0)
            measure_laplacian(worker, r);
        /* A failed image's inputs, if any, are overwritten by the next image's. */
        first_input[i] = total_inputs;
        if (p->network && r->status == 0)
            total_inputs += r->info.inputs;
    }
    if (total_inputs == 0)
        return;

    clock_gettime(CLOCK_MONOTONIC, &start);
    const float *probabilities = blurd_net_forward(p->net, worker->workspace, total_inputs, NULL);
    double network_ms = milliseconds_since(&start);
    int outputs = blurd_net_output_count(p->net);
    for (int i = 0; i < count; i++) {
        struct blurd_result *r = &p->slots[slots[i]];
        if (r->status != 0)
            continue;
        float p_blurred[64];
        /* class order is "blurred,clear": column 0 is p(blurred) */
        for (int t = 0; t < r->info.inputs && t < 64; t++)
            p_blurred[t] = probabilities[(size_t)(first_input[i] + t) * (size_t)outputs];
        r->p_blurred = blurd_pipeline_combine_tiles(p_blurred, r->info.inputs);
        /* each image is charged its share of the pass */
        r->network_ms += network_ms * r->info.inputs / total_inputs;
    }
}

static void *worker_main(void *arg)
{
    struct worker *worker = arg;
    blurd_pipeline *p = worker->pipeline;
    int slots[MAX_IMAGES_PER_BATCH];
    for (;;) {
        pthread_mutex_lock(&p->lock);
        p->idle_workers++;
        while (p->queued.count == 0 && !p->stopping)
            pthread_cond_wait(&p->work_ready, &p->lock);
        p->idle_workers--;
        if (p->queued.count == 0) { /* stopping, and nothing left to finish */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        /* A fair share of what waits, so the other idle workers get some too. */
        int share = p->queued.count / (p->idle_workers + 1);
        int count = share < 1 ? 1 : share;
        if (count > p->options.images_per_batch)
            count = p->options.images_per_batch;
        for (int i = 0; i < count; i++)
            slots[i] = fifo_pop(&p->queued);
        pthread_mutex_unlock(&p->lock);

        process_batch(worker, slots, count);

        pthread_mutex_lock(&p->lock);
        for (int i = 0; i < count; i++)
            fifo_push(&p->done, slots[i]);
        pthread_cond_signal(&p->result_ready);
        pthread_mutex_unlock(&p->lock);
        if (p->options.notify != NULL)
            p->options.notify(p->options.notify_arg);
    }
}

void blurd_pipeline_row(const struct blurd_result *result, const char *path, const struct stat *st,
                        struct blurd_store_row *row)
{
    *row = (struct blurd_store_row){
        .path = path,
        .size = st != NULL ? (int64_t)st->st_size : -1,
        .mtime_ns = st != NULL ? (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec : 0,
        .width = result->info.width,
        .height = result->info.height,
        .format = result->info.format[0] ? result->info.format : NULL,
        .p_blurred = (double)result->p_blurred,
        .milliseconds = result->decode_ms + result->network_ms,
    };
}

static int fifo_init(struct fifo *f, int capacity)
{
    f->items = calloc((size_t)capacity, sizeof(int));
    f->head = f->count = 0;
    f->capacity = capacity;
    return f->items != NULL ? 0 : -1;
}

int blurd_pipeline_create(blurd_pipeline **out, const struct blurd_pipeline_options *options,
                          char *err)
{
    *out = NULL;
    if ((options->scores & ~(unsigned)(BLURD_SCORE_NETWORK | BLURD_SCORE_LAPLACIAN)) != 0)
        return blurd_error_set(err, BLURD_EINVAL, "pipeline: unknown scores 0x%x", options->scores);
    if (options->model == NULL &&
        (options->scores == 0 || (options->scores & BLURD_SCORE_NETWORK) != 0))
        return blurd_error_set(err, BLURD_EINVAL, "pipeline: the network needs a model");
    if (options->images_per_batch < 1 || options->images_per_batch > MAX_IMAGES_PER_BATCH)
        return blurd_error_set(err, BLURD_EINVAL, "pipeline: %d images per batch is out of range",
                               options->images_per_batch);
    if (options->jobs < 1 || options->jobs > 256 || options->threads_per_job < 1 ||
        options->threads_per_job > 256 || options->queue_depth < 1 ||
        options->queue_depth > 1 << 20)
        return blurd_error_set(err, BLURD_EINVAL,
                               "pipeline: %d jobs and queue depth %d are out of range",
                               options->jobs, options->queue_depth);
    blurd_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    p->options = *options;
    unsigned scores = options->scores != 0 ? options->scores : BLURD_SCORE_NETWORK;
    p->network = (scores & BLURD_SCORE_NETWORK) != 0;
    p->laplacian = (scores & BLURD_SCORE_LAPLACIAN) != 0;
    p->net = p->network ? blurd_model_net(options->model) : NULL;
    p->max_inputs = options->image.input == BLURD_INPUT_TILES ? options->image.tile_count : 1;
    /* every worker may hold a whole batch while the queue is full */
    p->capacity = options->queue_depth + options->jobs * options->images_per_batch;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work_ready, NULL);
    pthread_cond_init(&p->slot_freed, NULL);
    pthread_cond_init(&p->result_ready, NULL);

    int rc = 0;
    p->slots = calloc((size_t)p->capacity, sizeof *p->slots);
    p->workers = calloc((size_t)options->jobs, sizeof *p->workers);
    if (p->slots == NULL || p->workers == NULL || fifo_init(&p->free_slots, p->capacity) != 0 ||
        fifo_init(&p->queued, p->capacity) != 0 || fifo_init(&p->done, p->capacity) != 0) {
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory for %d pipeline slots", p->capacity);
        goto fail;
    }
    for (int i = 0; i < p->capacity; i++)
        fifo_push(&p->free_slots, i);

    for (int i = 0; i < options->jobs; i++) {
        struct worker *w = &p->workers[i];
        w->pipeline = p;
        if (p->network) {
            rc = blurd_net_workspace_create(&w->workspace, p->net,
                                            p->max_inputs * options->images_per_batch,
                                            options->threads_per_job, err);
            if (rc != 0)
                goto fail;
        }
        if (p->laplacian && (w->grey = malloc(BLURD_LAPLACIAN_WORK_BYTES)) == NULL) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory for worker %d's grey image", i);
            goto fail;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "cannot start worker thread %d", i);
            goto fail;
        }
        w->started = true;
        p->worker_count = i + 1;
    }
    *out = p;
    return 0;

fail:
    blurd_pipeline_free(p);
    return rc;
}

void blurd_pipeline_free(blurd_pipeline *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; p->workers != NULL && i < p->options.jobs; i++) {
        if (p->workers[i].started)
            pthread_join(p->workers[i].thread, NULL);
        blurd_net_workspace_free(p->workers[i].workspace);
        free(p->workers[i].grey);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->work_ready);
    pthread_cond_destroy(&p->slot_freed);
    pthread_cond_destroy(&p->result_ready);
    free(p->free_slots.items);
    free(p->queued.items);
    free(p->done.items);
    free(p->workers);
    free(p->slots);
    free(p);
}

/* Queues `path` in a free slot; the lock is held. */
static void queue_locked(blurd_pipeline *p, uint64_t id, const char *path)
{
    int slot = fifo_pop(&p->free_slots);
    struct blurd_result *r = &p->slots[slot];
    r->id = id;
    strcpy(r->path, path);
    r->status = 0;
    r->error[0] = '\0';
    memset(&r->info, 0, sizeof r->info);
    r->p_blurred = 0.0f;
    r->laplacian_variance = 0.0;
    r->decode_ms = r->network_ms = 0.0;
    fifo_push(&p->queued, slot);
    pthread_cond_signal(&p->work_ready);
}

static int submit(blurd_pipeline *p, uint64_t id, const char *path, bool wait)
{
    if (strlen(path) >= PATH_MAX)
        return BLURD_EINVAL;
    pthread_mutex_lock(&p->lock);
    while (p->free_slots.count == 0) {
        if (!wait) {
            pthread_mutex_unlock(&p->lock);
            return BLURD_EBUSY;
        }
        pthread_cond_wait(&p->slot_freed, &p->lock);
    }
    queue_locked(p, id, path);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int blurd_pipeline_try_submit(blurd_pipeline *p, uint64_t id, const char *path)
{
    return submit(p, id, path, false);
}

int blurd_pipeline_submit(blurd_pipeline *p, uint64_t id, const char *path)
{
    return submit(p, id, path, true);
}

int blurd_pipeline_next(blurd_pipeline *p, struct blurd_result *result, int wait)
{
    pthread_mutex_lock(&p->lock);
    while (p->done.count == 0) {
        bool idle = p->free_slots.count == p->capacity;
        if (!wait || idle) {
            pthread_mutex_unlock(&p->lock);
            return 0;
        }
        pthread_cond_wait(&p->result_ready, &p->lock);
    }
    int slot = fifo_pop(&p->done);
    *result = p->slots[slot];
    fifo_push(&p->free_slots, slot);
    pthread_cond_signal(&p->slot_freed);
    pthread_mutex_unlock(&p->lock);
    return 1;
}

size_t blurd_pipeline_in_flight(const blurd_pipeline *p)
{
    pthread_mutex_t *lock = (pthread_mutex_t *)&p->lock;
    pthread_mutex_lock(lock);
    size_t n = (size_t)(p->capacity - p->free_slots.count);
    pthread_mutex_unlock(lock);
    return n;
}
