/* net.c - builds the network from its layer spec, holds its parameters in one block, plans
 * each thread's workspace once, and runs the batched forward pass and, for training, the
 * backward pass.
 *
 * Expected workload: the default 200x200 network at batches of 1 to 32 inputs, about
 * 1 GFLOP per input, 95% of it in four convolutions done as im2col + one GEMM per layer
 * per batch; training at batch 32, its backward pass two more GEMMs per convolution (weight
 * and data gradients) over the same im2col chunks.  Layers are dispatched through a table
 * indexed by kind; forward walks it up, backward walks it down; nothing on the forward or
 * backward path allocates. */
#include "blurd/net.h"

#include "blurd/error.h"
#include "blurd/kernels.h"
#include "blurd/random.h"
#include "blurd/team.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Each thread's im2col chunk: small enough to stay in its core's L2 cache between being
 * written and read by the GEMM, large enough that the GEMM's packing of the kernel matrix
 * is paid over many rows.  Measured with make bench on a 2-core machine with 1 MiB of L2
 * per core: 128 KiB to 1 MiB perform alike (within run-to-run noise) at batch 8; 2 MiB
 * loses 15% at batch 1, where too few chunks are left to balance two threads. */
#ifndef CHUNK_BYTES
#define CHUNK_BYTES (512 * 1024)
#endif
#define MIN_CHUNK_ROWS 128
/* Output rows of one max-pool task. */
#define POOL_BAND_ROWS 8
/* Below this many weights, a dense layer's backward pass and the sum of a convolution's
 * per-thread gradients are one task each: splitting them would cost more in waking threads
 * than it saves (a guess from the wake-up cost in team.c, not measured). */
#define SPLIT_MIN_WEIGHTS 16384

/* Sanity bounds on what a spec (from an untrusted model file) may ask for. */
#define MAX_SIDE       4096
#define MAX_CHANNELS   65536
#define MAX_PARAMETERS (512u * 1024u * 1024u)

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: internal error: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

struct layer {
    enum blurd_layer_kind kind;
    enum blurd_activation activation;
    int units;       /* conv filters or dense units */
    int kernel_size; /* conv K; maxpool 2 */
    float rate;      /* dropout */
    struct blurd_shape in, out;
    size_t kernel_offset, kernel_count; /* into the parameter block */
    size_t bias_offset, bias_count;
};

struct blurd_net {
    char *spec;
    int layer_count;
    struct layer layers[BLURD_NET_MAX_LAYERS];
    float *parameters;
    size_t parameter_count;
    int tensor_count;
    struct blurd_tensor tensors[2 * BLURD_NET_MAX_LAYERS];
};

struct blurd_net_workspace {
    const blurd_net *net;
    int max_batch;
    size_t bytes;
    float *activations[2]; /* ping-pong, each sized for the largest layer x max_batch */
    float *block;          /* the allocation behind both */
    blurd_team *team;      /* the threads one forward pass is spread over */
    size_t column_floats;  /* each thread's im2col chunk */
    float *columns;        /* threads x column_floats */
    /* Set only in a training workspace's copy of this struct: dropout is then active. */
    bool training;
    uint64_t dropout_seed;
};

/* The training workspace reuses the inference one's team and im2col chunks through `base`,
 * so the forward functions serve both. */
struct blurd_net_train_workspace {
    struct blurd_net_workspace base; /* activations and block unused */
    unsigned flags;
    /* Each layer's output for the batch; in-place kinds share their input's buffer, so a
     * dropout's output replaces its input (nothing needs the input again: its backward pass
     * regenerates the mask, and ReLU's backward sees zeros exactly where dropout zeroed). */
    float *outputs[BLURD_NET_MAX_LAYERS];
    float *deltas[2]; /* dLoss/dActivation, ping-pong as the backward walk goes down */
    float *gradients; /* laid out like the parameter block */
    float *partials;  /* threads x partial_floats: each thread's share of one conv's dW, db */
    size_t partial_floats;
    const float *input_gradient; /* after a backward pass with the input-gradient flag */
    int first_trainable;         /* the lowest layer with parameters */
    int batch;                   /* of the last training forward pass; 0 before one */
    float *block;                /* the allocation behind all of the above */
};

static size_t shape_size(struct blurd_shape s)
{
    return (size_t)s.height * s.width * s.channels;
}

/* ---- per-kind operations ---------------------------------------------------------- */

struct forward_args {
    const blurd_net *net;
    const struct layer *layer;
    int batch;
    const float *x; /* batch x layer->in */
    float *y;       /* batch x layer->out (may equal x for in-place kinds) */
    blurd_net_workspace *ws;
};

struct backward_args {
    const blurd_net *net;
    const struct layer *layer;
    int batch;
    const float *x; /* the layer's input as the training forward pass left it */
    const float *y; /* its output (a following dropout may have zeroed some of it) */
    float *dy;      /* dLoss/dy, batch x layer->out; the pass may overwrite it */
    float *dx;      /* dLoss/dx, batch x layer->in, all written; NULL when not wanted;
                     * dy itself for in-place kinds */
    blurd_net_train_workspace *ws;
};

/* What each kind must provide: its output shape (with a reason when impossible), its
 * parameter counts, its cost, its forward pass and its backward pass, which writes the
 * whole of its parameters' gradient. */
struct layer_ops {
    const char *name;
    bool in_place; /* output is the input buffer: no data moves */
    int (*plan)(struct layer *layer, char *why, size_t why_len);
    double (*flops)(const struct layer *layer);
    void (*forward)(const struct forward_args *args);
    void (*backward)(const struct backward_args *args);
};

static int plan_input(struct layer *layer, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    layer->out = layer->in;
    return 0;
}

static int plan_conv(struct layer *layer, char *why, size_t why_len)
{
    int k = layer->kernel_size;
    if (layer->in.height < k || layer->in.width < k) {
        snprintf(why, why_len, "%dx%d input is smaller than the %dx%d kernel", layer->in.height,
                 layer->in.width, k, k);
        return -1;
    }
    layer->out =
        (struct blurd_shape){layer->in.height - k + 1, layer->in.width - k + 1, layer->units};
    layer->kernel_count = (size_t)k * k * layer->in.channels * layer->units;
    layer->bias_count = (size_t)layer->units;
    return 0;
}

static int plan_maxpool(struct layer *layer, char *why, size_t why_len)
{
    if (layer->in.height < 2 || layer->in.width < 2) {
        snprintf(why, why_len, "%dx%d input is too small to pool", layer->in.height,
                 layer->in.width);
        return -1;
    }
    layer->out =
        (struct blurd_shape){layer->in.height / 2, layer->in.width / 2, layer->in.channels};
    return 0;
}

static int plan_flatten(struct layer *layer, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    size_t n = shape_size(layer->in);
    layer->out = (struct blurd_shape){1, 1, (int)n};
    return 0;
}

static int plan_globalavgpool(struct layer *layer, char *why, size_t why_len)
{
    (void)why;
    (void)why_len;
    layer->out = (struct blurd_shape){1, 1, layer->in.channels};
    return 0;
}

static int plan_dense(struct layer *layer, char *why, size_t why_len)
{
    if (layer->in.height != 1 || layer->in.width != 1) {
        snprintf(why, why_len, "dense needs a flat input (%dx%dx%d): add flatten first",
                 layer->in.height, layer->in.width, layer->in.channels);
        return -1;
    }
    layer->out = (struct blurd_shape){1, 1, layer->units};
    layer->kernel_count = (size_t)layer->in.channels * layer->units;
    layer->bias_count = (size_t)layer->units;
    return 0;
}

static double flops_none(const struct layer *layer)
{
    (void)layer;
    return 0.0;
}

static double flops_weighted(const struct layer *layer)
{
    /* one multiply and one add per weight per output position */
    return 2.0 * (double)layer->kernel_count * layer->out.height * layer->out.width;
}

static void forward_identity(const struct forward_args *args)
{
    (void)args; /* input and flatten move no data */
}

static void backward_identity(const struct backward_args *args)
{
    (void)args; /* dx is dy */
}

/* ---- dropout ---- */

struct dropout_plan {
    const struct layer *layer;
    uint64_t seed; /* of the training step */
    int index;     /* the layer's */
    float *values; /* batch x layer->out, masked in place */
};

/* One input's mask key: it mixes the step's seed, the layer and the input's place in the
 * batch, so masks never repeat across layers or inputs and need not be stored. */
static uint64_t dropout_key(uint64_t seed, int layer_index, int image)
{
    uint64_t state = seed ^ ((uint64_t)layer_index << 40) ^ (uint64_t)image;
    return blurd_splitmix64(&state);
}

/* Applies the mask of key `key` to one input's values of dropout `layer`. */
static void dropout_values(const struct layer *layer, uint64_t key, float *values)
{
    double threshold = (double)layer->rate * 4294967296.0;
    blurd_kernels_get()->dropout(shape_size(layer->out), key,
                                 threshold >= 4294967295.0 ? UINT32_MAX : (uint32_t)threshold,
                                 1.0f / (1.0f - layer->rate), values);
}

static void dropout_image(void *arg, int image, int thread)
{
    (void)thread;
    const struct dropout_plan *plan = arg;
    dropout_values(plan->layer, dropout_key(plan->seed, plan->index, image),
                   plan->values + (size_t)image * shape_size(plan->layer->out));
}

static void apply_dropout(blurd_team *team, const blurd_net *net, const struct layer *layer,
                          uint64_t seed, int batch, float *values)
{
    if (layer->rate == 0.0f)
        return;
    struct dropout_plan plan = {layer, seed, (int)(layer - net->layers), values};
    blurd_team_run(team, batch, dropout_image, &plan);
}

static void forward_dropout(const struct forward_args *args)
{
    /* identity at inference */
    if (args->ws->training)
        apply_dropout(args->ws->team, args->net, args->layer, args->ws->dropout_seed, args->batch,
                      args->y);
}

/* The mask is its own adjoint: the same mask applied to dy in place. */
static void backward_dropout(const struct backward_args *args)
{
    apply_dropout(args->ws->base.team, args->net, args->layer, args->ws->base.dropout_seed,
                  args->batch, args->dy);
}

static void apply_activation(const struct layer *layer, size_t rows, float *y, const float *bias)
{
    const struct blurd_kernels *k = blurd_kernels_get();
    size_t channels = (size_t)layer->out.channels;
    switch (layer->activation) {
    case BLURD_ACTIVATION_RELU:
        k->bias_relu(rows, channels, bias, y);
        break;
    case BLURD_ACTIVATION_LINEAR:
        k->bias_add(rows, channels, bias, y);
        break;
    case BLURD_ACTIVATION_SOFTMAX:
        k->bias_add(rows, channels, bias, y);
        k->softmax(rows, channels, y);
        break;
    }
}

/* Rows of the im2col matrix per chunk for a convolution with rows of `row_length`. */
static size_t chunk_rows(size_t row_length)
{
    size_t rows = CHUNK_BYTES / (row_length * sizeof(float));
    return rows < MIN_CHUNK_ROWS ? MIN_CHUNK_ROWS : rows;
}

struct conv_plan {
    const struct forward_args *args;
    size_t positions;  /* output pixels per image */
    size_t row_length; /* K = k * k * input channels */
    size_t rows_per_chunk, total_rows;
};

/* One chunk of a convolution: im2col of its rows (which may span images), one GEMM
 * against the HWIO kernel viewed as K x filters, then bias and activation while hot. */
static void conv_chunk(void *arg, int index, int thread)
{
    const struct conv_plan *plan = arg;
    const struct forward_args *args = plan->args;
    const struct layer *layer = args->layer;
    const struct blurd_kernels *k = blurd_kernels_get();
    struct blurd_kernel_shape in = {layer->in.height, layer->in.width, layer->in.channels};
    size_t first = (size_t)index * plan->rows_per_chunk;
    size_t count = plan->total_rows - first;
    if (count > plan->rows_per_chunk)
        count = plan->rows_per_chunk;
    float *columns = args->ws->columns + (size_t)thread * args->ws->column_floats;
    for (size_t done = 0; done < count;) {
        size_t row = first + done, image = row / plan->positions, p = row % plan->positions;
        size_t n = plan->positions - p;
        if (n > count - done)
            n = count - done;
        k->im2col(in, layer->kernel_size, p, n, args->x + image * shape_size(layer->in),
                  columns + done * plan->row_length);
        done += n;
    }
    float *y = args->y + first * (size_t)layer->units;
    blurd_gemm(0, 0, (int)count, layer->units, (int)plan->row_length, 1.0f, columns,
               (int)plan->row_length, args->net->parameters + layer->kernel_offset, layer->units,
               0.0f, y, layer->units);
    apply_activation(layer, count, y, args->net->parameters + layer->bias_offset);
}

static void forward_conv(const struct forward_args *args)
{
    const struct layer *layer = args->layer;
    struct conv_plan plan = {
        .args = args,
        .positions = (size_t)layer->out.height * layer->out.width,
        .row_length = (size_t)layer->kernel_size * layer->kernel_size * layer->in.channels,
    };
    plan.rows_per_chunk = chunk_rows(plan.row_length);
    plan.total_rows = plan.positions * (size_t)args->batch;
    int chunks = (int)((plan.total_rows + plan.rows_per_chunk - 1) / plan.rows_per_chunk);
    blurd_team_run(args->ws->team, chunks, conv_chunk, &plan);
}

/* Output rows per band of a convolution's backward pass: about a forward chunk's worth, and
 * at least k - 1, so that every other band's receptive fields are disjoint (see below). */
static int conv_band_rows(const struct layer *layer)
{
    size_t row_length = (size_t)layer->kernel_size * layer->kernel_size * layer->in.channels;
    int rows = (int)(chunk_rows(row_length) / (size_t)layer->out.width);
    if (rows < layer->kernel_size - 1)
        rows = layer->kernel_size - 1;
    if (rows < 1)
        rows = 1;
    return rows < layer->out.height ? rows : layer->out.height;
}

struct conv_backward_plan {
    const struct backward_args *args;
    size_t positions, row_length;
    int band_rows, bands; /* bands per image */
    int phase;            /* 0 even bands, 1 odd bands (writing dx); -1 every band (no dx) */
};

/* One band of whole output rows of one image: ReLU's backward pass on its dy rows, their
 * bias and weight gradients into this thread's partial sums (dW += columns^T dy), and, when
 * dx is wanted, dcolumns = dy W^T scattered back by col2im.  A band's dx footprint is its
 * input rows [first, last + k - 1); with bands of at least k - 1 rows, even bands' footprints
 * are disjoint, and so are odd bands', so two phases write dx without races or atomics.  Each
 * band clears the rows of dx it is first to touch: an even band its whole footprint, an odd
 * band only what lies between its even neighbours'. */
static void conv_backward_band(void *arg, int index, int thread)
{
    const struct conv_backward_plan *plan = arg;
    const struct backward_args *args = plan->args;
    const struct layer *layer = args->layer;
    const struct blurd_kernels *k = blurd_kernels_get();
    blurd_net_train_workspace *ws = args->ws;
    int per_image = plan->phase < 0 ? plan->bands : (plan->bands + 1 - plan->phase) / 2;
    int image = index / per_image, band = index % per_image;
    if (plan->phase >= 0)
        band = 2 * band + plan->phase;
    int first_row = band * plan->band_rows, end_row = first_row + plan->band_rows;
    if (end_row > layer->out.height)
        end_row = layer->out.height;
    size_t filters = (size_t)layer->units, out_width = (size_t)layer->out.width;
    size_t first = (size_t)first_row * out_width, count = (size_t)(end_row - first_row) * out_width;
    size_t offset = ((size_t)image * plan->positions + first) * filters;
    float *dy = args->dy + offset;
    if (layer->activation == BLURD_ACTIVATION_RELU)
        k->relu_backward(count * filters, args->y + offset, dy);

    float *partial = ws->partials + (size_t)thread * ws->partial_floats;
    k->bias_gradient(count, filters, dy, partial + layer->kernel_count);
    struct blurd_kernel_shape in = {layer->in.height, layer->in.width, layer->in.channels};
    float *columns = ws->base.columns + (size_t)thread * ws->base.column_floats;
    k->im2col(in, layer->kernel_size, first, count, args->x + (size_t)image * shape_size(layer->in),
              columns);
    blurd_gemm(1, 0, (int)plan->row_length, (int)filters, (int)count, 1.0f, columns,
               (int)plan->row_length, dy, (int)filters, 1.0f, partial, (int)filters);
    if (args->dx == NULL)
        return;

    /* the columns are spent: their chunk takes dcolumns */
    blurd_gemm(0, 1, (int)count, (int)plan->row_length, (int)filters, 1.0f, dy, (int)filters,
               args->net->parameters + layer->kernel_offset, (int)filters, 0.0f, columns,
               (int)plan->row_length);
    float *dx = args->dx + (size_t)image * shape_size(layer->in);
    int reach = layer->kernel_size - 1;
    int clear_from = plan->phase == 0 ? first_row : first_row + reach;
    int clear_to = plan->phase == 0 || end_row == layer->out.height ? end_row + reach : end_row;
    if (clear_to > clear_from) {
        size_t in_row = (size_t)layer->in.width * layer->in.channels;
        memset(dx + (size_t)clear_from * in_row, 0,
               (size_t)(clear_to - clear_from) * in_row * sizeof(float));
    }
    k->col2im(in, layer->kernel_size, first, count, columns, dx);
}

struct reduce_plan {
    float *partials;
    size_t partial_floats, count;
    int threads, slices;
    float *sums;
};

/* One slice of the sum over threads of their partial gradients, clearing the partials for
 * the next layer as it goes. */
static void reduce_slice(void *arg, int index, int thread)
{
    (void)thread;
    const struct reduce_plan *plan = arg;
    size_t width =
        ((plan->count + (size_t)plan->slices - 1) / (size_t)plan->slices + 15) & ~(size_t)15;
    size_t first = (size_t)index * width;
    if (first >= plan->count)
        return;
    size_t end = first + width < plan->count ? first + width : plan->count;
    float *sums = plan->sums;
    for (int t = 0; t < plan->threads; t++) {
        float *partial = plan->partials + (size_t)t * plan->partial_floats;
        for (size_t i = first; i < end; i++) {
            sums[i] = t == 0 ? partial[i] : sums[i] + partial[i];
            partial[i] = 0.0f;
        }
    }
}

static void backward_conv(const struct backward_args *args)
{
    const struct layer *layer = args->layer;
    blurd_net_train_workspace *ws = args->ws;
    blurd_team *team = ws->base.team;
    struct conv_backward_plan plan = {
        .args = args,
        .positions = (size_t)layer->out.height * layer->out.width,
        .row_length = (size_t)layer->kernel_size * layer->kernel_size * layer->in.channels,
        .band_rows = conv_band_rows(layer),
    };
    plan.bands = (layer->out.height + plan.band_rows - 1) / plan.band_rows;
    if (args->dx == NULL) {
        plan.phase = -1;
        blurd_team_run(team, plan.bands * args->batch, conv_backward_band, &plan);
    } else {
        plan.phase = 0;
        blurd_team_run(team, (plan.bands + 1) / 2 * args->batch, conv_backward_band, &plan);
        plan.phase = 1;
        blurd_team_run(team, plan.bands / 2 * args->batch, conv_backward_band, &plan);
    }
    /* kernel and bias are adjacent, in the partials as in the gradient block */
    int threads = blurd_team_threads(team);
    struct reduce_plan reduce = {
        .partials = ws->partials,
        .partial_floats = ws->partial_floats,
        .count = layer->kernel_count + layer->bias_count,
        .threads = threads,
        .slices = layer->kernel_count >= SPLIT_MIN_WEIGHTS ? threads : 1,
        .sums = ws->gradients + layer->kernel_offset,
    };
    blurd_team_run(team, reduce.slices, reduce_slice, &reduce);
}

/* One band of POOL_BAND_ROWS output rows of one image. */
static void maxpool_band(void *arg, int index, int thread)
{
    (void)thread;
    const struct forward_args *args = arg;
    const struct layer *layer = args->layer;
    int bands = (layer->out.height + POOL_BAND_ROWS - 1) / POOL_BAND_ROWS;
    int image = index / bands, first = (index % bands) * POOL_BAND_ROWS;
    int rows =
        layer->out.height - first < POOL_BAND_ROWS ? layer->out.height - first : POOL_BAND_ROWS;
    /* Output rows [first, first+rows) depend only on input rows [2*first, 2*(first+rows)). */
    struct blurd_kernel_shape band = {2 * rows, layer->in.width, layer->in.channels};
    size_t in_row = (size_t)layer->in.width * layer->in.channels;
    size_t out_row = (size_t)layer->out.width * layer->out.channels;
    blurd_kernels_get()->maxpool2(
        band, args->x + (size_t)image * shape_size(layer->in) + (size_t)(2 * first) * in_row,
        args->y + (size_t)image * shape_size(layer->out) + (size_t)first * out_row);
}

static void forward_maxpool(const struct forward_args *args)
{
    int bands = (args->layer->out.height + POOL_BAND_ROWS - 1) / POOL_BAND_ROWS;
    blurd_team_run(args->ws->team, bands * args->batch, maxpool_band, (void *)args);
}

/* The backward pass of maxpool_band's band; the last band also clears the input row that
 * floor semantics dropped. */
static void maxpool_backward_band(void *arg, int index, int thread)
{
    (void)thread;
    const struct backward_args *args = arg;
    const struct layer *layer = args->layer;
    int bands = (layer->out.height + POOL_BAND_ROWS - 1) / POOL_BAND_ROWS;
    int image = index / bands, first = (index % bands) * POOL_BAND_ROWS;
    int rows =
        layer->out.height - first < POOL_BAND_ROWS ? layer->out.height - first : POOL_BAND_ROWS;
    int height = first + rows == layer->out.height ? layer->in.height - 2 * first : 2 * rows;
    struct blurd_kernel_shape band = {height, layer->in.width, layer->in.channels};
    size_t in_row = (size_t)layer->in.width * layer->in.channels;
    size_t out_row = (size_t)layer->out.width * layer->out.channels;
    size_t in_at = (size_t)image * shape_size(layer->in) + (size_t)(2 * first) * in_row;
    blurd_kernels_get()->maxpool2_backward(band, args->x + in_at,
                                           args->dy + (size_t)image * shape_size(layer->out) +
                                               (size_t)first * out_row,
                                           args->dx + in_at);
}

static void backward_maxpool(const struct backward_args *args)
{
    /* it has no parameters, so the walk stops above it when dx is not wanted */
    CHECK(args->dx != NULL);
    int bands = (args->layer->out.height + POOL_BAND_ROWS - 1) / POOL_BAND_ROWS;
    blurd_team_run(args->ws->base.team, bands * args->batch, maxpool_backward_band, (void *)args);
}

/* The mean over positions is one add per input value (25,600 an image after the default
 * convolutions), too little to spread over threads. */
static void forward_globalavgpool(const struct forward_args *args)
{
    const struct layer *layer = args->layer;
    size_t positions = (size_t)layer->in.height * layer->in.width;
    size_t channels = (size_t)layer->in.channels;
    for (int image = 0; image < args->batch; image++) {
        const float *x = args->x + (size_t)image * positions * channels;
        float *y = args->y + (size_t)image * channels;
        memset(y, 0, channels * sizeof(float));
        for (size_t p = 0; p < positions; p++)
            for (size_t c = 0; c < channels; c++)
                y[c] += x[p * channels + c];
        for (size_t c = 0; c < channels; c++)
            y[c] /= (float)positions;
    }
}

/* Every position had an equal share in the mean, so each gets dy / positions. */
static void backward_globalavgpool(const struct backward_args *args)
{
    /* it has no parameters, so the walk stops above it when dx is not wanted */
    CHECK(args->dx != NULL);
    const struct layer *layer = args->layer;
    size_t positions = (size_t)layer->in.height * layer->in.width;
    size_t channels = (size_t)layer->in.channels;
    for (int image = 0; image < args->batch; image++) {
        const float *dy = args->dy + (size_t)image * channels;
        float *dx = args->dx + (size_t)image * positions * channels;
        for (size_t p = 0; p < positions; p++)
            for (size_t c = 0; c < channels; c++)
                dx[p * channels + c] = dy[c] / (float)positions;
    }
}

/* ---- standardize ---- */

/* The floor under an image's variance: a standard deviation of 0.01 (about 2.5 of 255
 * levels), so a flat tile's noise is not stretched to the contrast of a real edge. */
#define STANDARDIZE_EPSILON 1e-4

/* Mean and 1/sqrt(variance + epsilon) of one image's n values, summed in double. */
static void standardize_moments(const float *x, size_t n, float *mean, float *inv_std)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)x[i];
    double m = sum / (double)n, squares = 0.0;
    for (size_t i = 0; i < n; i++)
        squares += ((double)x[i] - m) * ((double)x[i] - m);
    *mean = (float)m;
    *inv_std = (float)(1.0 / sqrt(squares / (double)n + STANDARDIZE_EPSILON));
}

/* Each image's values over its own mean and spread: what is left of a tile is the shape
 * of its detail, not its contrast, which says little about focus.  Cheap beside any
 * convolution, so it runs on one thread. */
static void forward_standardize(const struct forward_args *args)
{
    size_t n = shape_size(args->layer->in);
    for (int image = 0; image < args->batch; image++) {
        const float *x = args->x + (size_t)image * n;
        float *y = args->y + (size_t)image * n, mean, inv_std;
        standardize_moments(x, n, &mean, &inv_std);
        for (size_t i = 0; i < n; i++)
            y[i] = (x[i] - mean) * inv_std;
    }
}

/* With y = (x - mean) / s: dx = (dy - mean(dy) - y mean(dy y)) / s.  y is recomputed from
 * x, since a dropout after this layer may have zeroed some of the stored output. */
static void backward_standardize(const struct backward_args *args)
{
    /* it has no parameters, so the walk stops above it when dx is not wanted */
    CHECK(args->dx != NULL);
    size_t n = shape_size(args->layer->in);
    for (int image = 0; image < args->batch; image++) {
        const float *x = args->x + (size_t)image * n, *dy = args->dy + (size_t)image * n;
        float *dx = args->dx + (size_t)image * n, mean, inv_std;
        standardize_moments(x, n, &mean, &inv_std);
        double dy_sum = 0.0, dy_y_sum = 0.0;
        for (size_t i = 0; i < n; i++) {
            dy_sum += (double)dy[i];
            dy_y_sum += (double)dy[i] * (double)((x[i] - mean) * inv_std);
        }
        float dy_mean = (float)(dy_sum / (double)n), dy_y_mean = (float)(dy_y_sum / (double)n);
        for (size_t i = 0; i < n; i++)
            dx[i] = (dy[i] - dy_mean - (x[i] - mean) * inv_std * dy_y_mean) * inv_std;
    }
}

struct dense_plan {
    const struct forward_args *args;
    int blocks;
};

/* One block of a dense layer's output columns for the whole batch: each thread reads only
 * its share of the (large) kernel, which is what bounds this layer. */
static void dense_block(void *arg, int index, int thread)
{
    (void)thread;
    const struct dense_plan *plan = arg;
    const struct forward_args *args = plan->args;
    const struct layer *layer = args->layer;
    /* blocks of whole 16-float vectors, the last one taking the remainder */
    int width = ((layer->units + plan->blocks - 1) / plan->blocks + 15) & ~15;
    int first = index * width;
    if (first >= layer->units)
        return;
    if (first + width > layer->units)
        width = layer->units - first;
    blurd_gemm(0, 0, args->batch, width, layer->in.channels, 1.0f, args->x, layer->in.channels,
               args->net->parameters + layer->kernel_offset + first, layer->units, 0.0f,
               args->y + first, layer->units);
}

static void forward_dense(const struct forward_args *args)
{
    const struct layer *layer = args->layer;
    struct dense_plan plan = {args, layer->units >= 64 ? blurd_team_threads(args->ws->team) : 1};
    blurd_team_run(args->ws->team, plan.blocks, dense_block, &plan);
    /* softmax needs whole rows, so the activation waits for every block */
    apply_activation(layer, (size_t)args->batch, args->y,
                     args->net->parameters + layer->bias_offset);
}

struct dense_backward_plan {
    const struct backward_args *args;
    int blocks;
};

/* One block of a dense layer's input rows i: rows i of dW = x^T dy and columns i of
 * dx = dy W^T, so blocks write disjoint memory and each reads only its rows of W. */
static void dense_backward_block(void *arg, int index, int thread)
{
    (void)thread;
    const struct dense_backward_plan *plan = arg;
    const struct backward_args *args = plan->args;
    const struct layer *layer = args->layer;
    int inputs = layer->in.channels, units = layer->units;
    int height = ((inputs + plan->blocks - 1) / plan->blocks + 15) & ~15;
    int first = index * height;
    if (first >= inputs)
        return;
    if (first + height > inputs)
        height = inputs - first;
    blurd_gemm(1, 0, height, units, args->batch, 1.0f, args->x + first, inputs, args->dy, units,
               0.0f, args->ws->gradients + layer->kernel_offset + (size_t)first * units, units);
    if (args->dx != NULL)
        blurd_gemm(0, 1, args->batch, height, units, 1.0f, args->dy, units,
                   args->net->parameters + layer->kernel_offset + (size_t)first * units, units,
                   0.0f, args->dx + first, inputs);
}

static void backward_dense(const struct backward_args *args)
{
    const struct layer *layer = args->layer;
    const struct blurd_kernels *k = blurd_kernels_get();
    size_t units = (size_t)layer->units;
    /* A softmax layer's dy is already dLoss/dlogits: blurd_net_train_backward starts from
     * the softmax cross-entropy gradient, and softmax is refused anywhere but last. */
    if (layer->activation == BLURD_ACTIVATION_RELU)
        k->relu_backward((size_t)args->batch * units, args->y, args->dy);
    float *bias_gradient = args->ws->gradients + layer->bias_offset;
    memset(bias_gradient, 0, units * sizeof(float));
    k->bias_gradient((size_t)args->batch, units, args->dy, bias_gradient);
    blurd_team *team = args->ws->base.team;
    struct dense_backward_plan plan = {
        .args = args,
        .blocks = layer->kernel_count >= SPLIT_MIN_WEIGHTS ? blurd_team_threads(team) : 1,
    };
    blurd_team_run(team, plan.blocks, dense_backward_block, &plan);
}

static const struct layer_ops layer_ops[] = {
    [BLURD_LAYER_INPUT] = {"input", true, plan_input, flops_none, forward_identity,
                           backward_identity},
    [BLURD_LAYER_CONV] = {"conv", false, plan_conv, flops_weighted, forward_conv, backward_conv},
    [BLURD_LAYER_MAXPOOL] = {"maxpool", false, plan_maxpool, flops_none, forward_maxpool,
                             backward_maxpool},
    [BLURD_LAYER_DROPOUT] = {"dropout", true, plan_input, flops_none, forward_dropout,
                             backward_dropout},
    [BLURD_LAYER_FLATTEN] = {"flatten", true, plan_flatten, flops_none, forward_identity,
                             backward_identity},
    [BLURD_LAYER_DENSE] = {"dense", false, plan_dense, flops_weighted, forward_dense,
                           backward_dense},
    [BLURD_LAYER_GLOBALAVGPOOL] = {"globalavgpool", false, plan_globalavgpool, flops_none,
                                   forward_globalavgpool, backward_globalavgpool},
    [BLURD_LAYER_STANDARDIZE] = {"standardize", false, plan_input, flops_none, forward_standardize,
                                 backward_standardize},
};

static const char *const activation_names[] = {
    [BLURD_ACTIVATION_LINEAR] = "linear",
    [BLURD_ACTIVATION_RELU] = "relu",
    [BLURD_ACTIVATION_SOFTMAX] = "softmax",
};

/* ---- spec parsing ----------------------------------------------------------------- */

/* Parses a positive integer token within [1, max]. */
static bool parse_count(const char *token, int max, int *out)
{
    char *end;
    long v = strtol(token, &end, 10);
    if (*token == '\0' || *end != '\0' || v < 1 || v > max)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_activation(const char *token, bool allow_softmax, enum blurd_activation *out)
{
    for (int a = 0; a < (int)(sizeof activation_names / sizeof activation_names[0]); a++)
        if (strcmp(token, activation_names[a]) == 0) {
            if (a == BLURD_ACTIVATION_SOFTMAX && !allow_softmax)
                return false;
            *out = (enum blurd_activation)a;
            return true;
        }
    return false;
}

/* Splits `text` (modified in place) into at most `max` whitespace-separated tokens. */
static int tokenize(char *text, char **tokens, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(text, " \t\r\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max)
            return max + 1;
        tokens[n++] = t;
    }
    return n;
}

/* Fills `layer` from one spec entry's tokens; on failure writes the reason to `why`. */
static int parse_layer(char **tokens, int count, bool first, struct layer *layer, char *why,
                       size_t why_len)
{
    const char *kind = tokens[0];
    memset(layer, 0, sizeof *layer);
    if (strcmp(kind, "input") == 0) {
        layer->kind = BLURD_LAYER_INPUT;
        if (!first) {
            snprintf(why, why_len, "input must be the first layer and appear once");
            return -1;
        }
        if (count != 4 || !parse_count(tokens[1], MAX_SIDE, &layer->in.height) ||
            !parse_count(tokens[2], MAX_SIDE, &layer->in.width) ||
            !parse_count(tokens[3], MAX_CHANNELS, &layer->in.channels)) {
            snprintf(why, why_len,
                     "expected \"input HEIGHT WIDTH CHANNELS\" (sides 1 to %d, channels 1 to %d)",
                     MAX_SIDE, MAX_CHANNELS);
            return -1;
        }
        return 0;
    }
    if (first) {
        snprintf(why, why_len, "the first layer must be \"input H W C\"");
        return -1;
    }
    if (strcmp(kind, "conv") == 0) {
        layer->kind = BLURD_LAYER_CONV;
        if (count != 4 || !parse_count(tokens[1], MAX_CHANNELS, &layer->units) ||
            !parse_count(tokens[2], 15, &layer->kernel_size) ||
            !parse_activation(tokens[3], false, &layer->activation)) {
            snprintf(why, why_len, "expected \"conv FILTERS K relu|linear\" (K up to 15)");
            return -1;
        }
    } else if (strcmp(kind, "maxpool") == 0) {
        layer->kind = BLURD_LAYER_MAXPOOL;
        if (count != 2 || strcmp(tokens[1], "2") != 0) {
            snprintf(why, why_len, "expected \"maxpool 2\" (only 2x2 pooling is supported)");
            return -1;
        }
        layer->kernel_size = 2;
    } else if (strcmp(kind, "dropout") == 0) {
        layer->kind = BLURD_LAYER_DROPOUT;
        char *end = NULL;
        double rate = count == 2 ? strtod(tokens[1], &end) : -1.0;
        if (count != 2 || *end != '\0' || !(rate >= 0.0 && rate < 1.0)) {
            snprintf(why, why_len, "expected \"dropout RATE\" with 0 <= RATE < 1");
            return -1;
        }
        layer->rate = (float)rate;
    } else if (strcmp(kind, "flatten") == 0) {
        layer->kind = BLURD_LAYER_FLATTEN;
        if (count != 1) {
            snprintf(why, why_len, "flatten takes no arguments");
            return -1;
        }
    } else if (strcmp(kind, "globalavgpool") == 0) {
        layer->kind = BLURD_LAYER_GLOBALAVGPOOL;
        if (count != 1) {
            snprintf(why, why_len, "globalavgpool takes no arguments");
            return -1;
        }
    } else if (strcmp(kind, "standardize") == 0) {
        layer->kind = BLURD_LAYER_STANDARDIZE;
        if (count != 1) {
            snprintf(why, why_len, "standardize takes no arguments");
            return -1;
        }
    } else if (strcmp(kind, "dense") == 0) {
        layer->kind = BLURD_LAYER_DENSE;
        if (count != 3 || !parse_count(tokens[1], MAX_CHANNELS, &layer->units) ||
            !parse_activation(tokens[2], true, &layer->activation)) {
            snprintf(why, why_len, "expected \"dense UNITS relu|linear|softmax\"");
            return -1;
        }
    } else {
        snprintf(why, why_len, "unknown layer kind \"%s\"", kind);
        return -1;
    }
    return 0;
}

/* Appends one layer's canonical text to `out`. */
static void describe_layer(const struct layer *layer, char *out, size_t out_len)
{
    const char *name = layer_ops[layer->kind].name;
    switch (layer->kind) {
    case BLURD_LAYER_INPUT:
        snprintf(out, out_len, "%s %d %d %d", name, layer->in.height, layer->in.width,
                 layer->in.channels);
        break;
    case BLURD_LAYER_CONV:
        snprintf(out, out_len, "%s %d %d %s", name, layer->units, layer->kernel_size,
                 activation_names[layer->activation]);
        break;
    case BLURD_LAYER_MAXPOOL:
        snprintf(out, out_len, "%s 2", name);
        break;
    case BLURD_LAYER_DROPOUT:
        snprintf(out, out_len, "%s %g", name, (double)layer->rate);
        break;
    case BLURD_LAYER_FLATTEN:
    case BLURD_LAYER_GLOBALAVGPOOL:
    case BLURD_LAYER_STANDARDIZE:
        snprintf(out, out_len, "%s", name);
        break;
    case BLURD_LAYER_DENSE:
        snprintf(out, out_len, "%s %d %s", name, layer->units, activation_names[layer->activation]);
        break;
    }
}

static void add_tensor(blurd_net *net, int layer_index, const char *role, size_t count, int rank,
                       const int *dims)
{
    struct blurd_tensor *t = &net->tensors[net->tensor_count++];
    snprintf(t->name, sizeof t->name, "layers.%d.%s", layer_index, role);
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->count = count;
    t->data = NULL; /* pointed into the block once it exists */
}

int blurd_net_create(blurd_net **out, const char *spec, char *err)
{
    *out = NULL;
    if (spec == NULL || *spec == '\0')
        return blurd_error_set(err, BLURD_ESPEC, "empty layer spec");
    blurd_net *net = calloc(1, sizeof *net);
    char *copy = strdup(spec);
    size_t canonical_len = strlen(spec) * 2 + 256;
    char *canonical = calloc(1, canonical_len);
    if (net == NULL || copy == NULL || canonical == NULL) {
        free(net);
        free(copy);
        free(canonical);
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory building the network");
    }

    int rc = 0;
    char why[256];
    size_t parameters = 0;
    char *rest = copy;
    int index = 0;
    /* strsep, unlike strtok, reports the empty entry in "a;;b" so it can be refused. */
    for (char *entry = strsep(&rest, ";"); entry != NULL; entry = strsep(&rest, ";"), index++) {
        char *tokens[8];
        int count = tokenize(entry, tokens, 7);
        if (count == 0) {
            rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: layer %d is empty", index);
            goto fail;
        }
        if (count > 7) {
            rc =
                blurd_error_set(err, BLURD_ESPEC, "layer spec: layer %d has too many words", index);
            goto fail;
        }
        if (net->layer_count == BLURD_NET_MAX_LAYERS) {
            rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: more than %d layers",
                                 BLURD_NET_MAX_LAYERS);
            goto fail;
        }
        struct layer *layer = &net->layers[net->layer_count];
        if (parse_layer(tokens, count, index == 0, layer, why, sizeof why) != 0) {
            rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: layer %d (%s): %s", index,
                                 tokens[0], why);
            goto fail;
        }
        if (index > 0)
            layer->in = net->layers[index - 1].out;
        if (layer_ops[layer->kind].plan(layer, why, sizeof why) != 0) {
            rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: layer %d (%s): %s", index,
                                 tokens[0], why);
            goto fail;
        }
        if (shape_size(layer->out) > (size_t)MAX_SIDE * MAX_SIDE * 64) {
            rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: layer %d output is too large",
                                 index);
            goto fail;
        }
        if (layer->kernel_count > 0) {
            layer->kernel_offset = parameters;
            layer->bias_offset = parameters + layer->kernel_count;
            parameters += layer->kernel_count + layer->bias_count;
            if (parameters > MAX_PARAMETERS) {
                rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: more than %u parameters",
                                     MAX_PARAMETERS);
                goto fail;
            }
            if (layer->kind == BLURD_LAYER_CONV) {
                int dims[4] = {layer->kernel_size, layer->kernel_size, layer->in.channels,
                               layer->units};
                add_tensor(net, index, "kernel", layer->kernel_count, 4, dims);
            } else {
                int dims[2] = {layer->in.channels, layer->units};
                add_tensor(net, index, "kernel", layer->kernel_count, 2, dims);
            }
            int bias_dims[1] = {layer->units};
            add_tensor(net, index, "bias", layer->bias_count, 1, bias_dims);
        }
        char text[128];
        describe_layer(layer, text, sizeof text);
        if (index > 0)
            strcat(canonical, "; ");
        strcat(canonical, text);
        net->layer_count++;
    }
    if (net->layer_count < 2) {
        rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: needs an input and at least one layer");
        goto fail;
    }
    const struct layer *last = &net->layers[net->layer_count - 1];
    if (last->out.height != 1 || last->out.width != 1) {
        rc = blurd_error_set(err, BLURD_ESPEC, "layer spec: the last layer must be dense");
        goto fail;
    }

    net->parameter_count = parameters;
    net->parameters = calloc(parameters > 0 ? parameters : 1, sizeof(float));
    if (net->parameters == NULL) {
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory for %zu parameters", parameters);
        goto fail;
    }
    /* Tensors were recorded in spec order, kernel then bias, as the block is laid out. */
    size_t offset = 0;
    for (int i = 0; i < net->tensor_count; i++) {
        net->tensors[i].data = net->parameters + offset;
        offset += net->tensors[i].count;
    }
    CHECK(offset == parameters);
    free(copy);
    net->spec = canonical;
    *out = net;
    return 0;

fail:
    free(copy);
    free(canonical);
    free(net->parameters);
    free(net);
    return rc;
}

void blurd_net_free(blurd_net *net)
{
    if (net == NULL)
        return;
    free(net->parameters);
    free(net->spec);
    free(net);
}

const char *blurd_net_spec(const blurd_net *net)
{
    return net->spec;
}

int blurd_net_layer_count(const blurd_net *net)
{
    return net->layer_count;
}

void blurd_net_layer(const blurd_net *net, int index, struct blurd_layer_info *info)
{
    CHECK(index >= 0 && index < net->layer_count);
    const struct layer *layer = &net->layers[index];
    *info = (struct blurd_layer_info){
        .kind = layer->kind,
        .kind_name = layer_ops[layer->kind].name,
        .activation = layer->activation,
        .activation_name = activation_names[layer->activation],
        .units = layer->units,
        .kernel_size = layer->kernel_size,
        .rate = layer->rate,
        .output = layer->out,
        .parameters = layer->kernel_count + layer->bias_count,
        .flops = layer_ops[layer->kind].flops(layer),
    };
}

struct blurd_shape blurd_net_input_shape(const blurd_net *net)
{
    return net->layers[0].in;
}

int blurd_net_output_count(const blurd_net *net)
{
    return net->layers[net->layer_count - 1].out.channels;
}

size_t blurd_net_parameter_count(const blurd_net *net)
{
    return net->parameter_count;
}

double blurd_net_flops(const blurd_net *net)
{
    double total = 0.0;
    for (int i = 0; i < net->layer_count; i++)
        total += layer_ops[net->layers[i].kind].flops(&net->layers[i]);
    return total;
}

int blurd_net_tensor_count(const blurd_net *net)
{
    return net->tensor_count;
}

void blurd_net_tensor(const blurd_net *net, int index, struct blurd_tensor *tensor)
{
    CHECK(index >= 0 && index < net->tensor_count);
    *tensor = net->tensors[index];
}

float *blurd_net_parameters(const blurd_net *net)
{
    return net->parameters;
}

/* A standard normal deviate by the Box-Muller transform. */
static double normal(uint64_t *state)
{
    double u1 = ((double)(blurd_splitmix64(state) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (double)(blurd_splitmix64(state) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void blurd_net_init_he(blurd_net *net, uint64_t seed)
{
    uint64_t state = seed;
    for (int i = 0; i < net->layer_count; i++) {
        const struct layer *layer = &net->layers[i];
        if (layer->kernel_count == 0)
            continue;
        size_t fan_in = layer->kernel_count / (size_t)layer->units;
        double std = sqrt(2.0 / (double)fan_in);
        float *kernel = net->parameters + layer->kernel_offset;
        for (size_t j = 0; j < layer->kernel_count; j++)
            kernel[j] = (float)(normal(&state) * std);
        memset(net->parameters + layer->bias_offset, 0, layer->bias_count * sizeof(float));
    }
}

/* ---- workspace and forward pass --------------------------------------------------- */

int blurd_net_workspace_create(blurd_net_workspace **out, const blurd_net *net, int max_batch,
                               int threads, char *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > 4096)
        return blurd_error_set(err, BLURD_EINVAL, "batch size %d is out of range", max_batch);
    size_t largest_activation = shape_size(net->layers[0].in);
    size_t column_floats = 0;
    for (int i = 0; i < net->layer_count; i++) {
        const struct layer *layer = &net->layers[i];
        if (shape_size(layer->out) > largest_activation)
            largest_activation = shape_size(layer->out);
        if (layer->kind == BLURD_LAYER_CONV) {
            size_t row_length =
                (size_t)layer->kernel_size * layer->kernel_size * layer->in.channels;
            if (chunk_rows(row_length) * row_length > column_floats)
                column_floats = chunk_rows(row_length) * row_length;
        }
    }
    /* Pad each region to a 64-byte multiple so every buffer starts cache-line aligned. */
    size_t activation_floats = (largest_activation * (size_t)max_batch + 15) & ~(size_t)15;
    column_floats = (column_floats + 15) & ~(size_t)15;

    blurd_net_workspace *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    int rc = blurd_team_create(&ws->team, threads, err);
    if (rc != 0) {
        free(ws);
        return rc;
    }
    size_t total = 2 * activation_floats + (size_t)threads * column_floats;
    if (posix_memalign((void **)&ws->block, 64, total * sizeof(float)) != 0) {
        blurd_net_workspace_free(ws);
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory for a %.1f MiB workspace",
                               (double)total * 4.0 / 1048576.0);
    }
    /* Touch every page now, so the first image does not pay for faulting them in. */
    memset(ws->block, 0, total * sizeof(float));
    ws->net = net;
    ws->max_batch = max_batch;
    ws->activations[0] = ws->block;
    ws->activations[1] = ws->block + activation_floats;
    ws->column_floats = column_floats;
    ws->columns = ws->block + 2 * activation_floats;
    ws->bytes = total * sizeof(float);
    *out = ws;
    return 0;
}

void blurd_net_workspace_free(blurd_net_workspace *ws)
{
    if (ws == NULL)
        return;
    blurd_team_free(ws->team);
    free(ws->block);
    free(ws);
}

size_t blurd_net_workspace_bytes(const blurd_net_workspace *ws)
{
    return ws->bytes;
}

int blurd_net_workspace_max_batch(const blurd_net_workspace *ws)
{
    return ws->max_batch;
}

float *blurd_net_workspace_input(blurd_net_workspace *ws)
{
    return ws->activations[0];
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const float *blurd_net_forward(const blurd_net *net, blurd_net_workspace *ws, int batch,
                               double *layer_seconds)
{
    CHECK(ws->net == net);
    CHECK(batch >= 1 && batch <= ws->max_batch);
    int current = 0;
    for (int i = 0; i < net->layer_count; i++) {
        const struct layer *layer = &net->layers[i];
        const struct layer_ops *ops = &layer_ops[layer->kind];
        double start = layer_seconds != NULL ? seconds_now() : 0.0;
        int next = ops->in_place ? current : 1 - current;
        struct forward_args args = {
            net, layer, batch, ws->activations[current], ws->activations[next], ws};
        ops->forward(&args);
        current = next;
        if (layer_seconds != NULL)
            layer_seconds[i] = seconds_now() - start;
    }
    return ws->activations[current];
}

/* ---- training workspace, forward and backward passes ------------------------------ */

static size_t pad_floats(size_t n)
{
    /* a 64-byte multiple, so every region of a block starts cache-line aligned */
    return (n + 15) & ~(size_t)15;
}

/* Why `net` cannot be trained, or NULL if it can. */
static const char *untrainable(const blurd_net *net)
{
    const struct layer *last = &net->layers[net->layer_count - 1];
    if (last->kind != BLURD_LAYER_DENSE || last->activation != BLURD_ACTIVATION_SOFTMAX)
        return "training needs a last layer \"dense N softmax\" (the loss is softmax "
               "cross-entropy)";
    for (int i = 0; i < net->layer_count - 1; i++)
        if (net->layers[i].kind == BLURD_LAYER_DENSE &&
            net->layers[i].activation == BLURD_ACTIVATION_SOFTMAX)
            return "training supports softmax only in the last layer";
    return NULL;
}

int blurd_net_train_workspace_create(blurd_net_train_workspace **out, const blurd_net *net,
                                     int max_batch, int threads, unsigned flags, char *err)
{
    *out = NULL;
    if (max_batch < 1 || max_batch > 4096)
        return blurd_error_set(err, BLURD_EINVAL, "batch size %d is out of range", max_batch);
    if ((flags & ~BLURD_NET_TRAIN_INPUT_GRADIENT) != 0)
        return blurd_error_set(err, BLURD_EINVAL, "unknown training flags 0x%x", flags);
    const char *why = untrainable(net);
    if (why != NULL)
        return blurd_error_set(err, BLURD_EINVAL, "%s", why);
    size_t batch = (size_t)max_batch;

    /* Every layer that moves data keeps its output; in-place kinds alias their input's. */
    size_t output_at[BLURD_NET_MAX_LAYERS];
    size_t activation_floats = 0;
    for (int i = 0; i < net->layer_count; i++) {
        const struct layer *layer = &net->layers[i];
        if (i > 0 && layer_ops[layer->kind].in_place) {
            output_at[i] = output_at[i - 1];
            continue;
        }
        output_at[i] = activation_floats;
        activation_floats += pad_floats(shape_size(layer->out) * batch);
    }

    int first_trainable = 1;
    while (net->layers[first_trainable].kernel_count == 0)
        first_trainable++;
    bool input_gradient = (flags & BLURD_NET_TRAIN_INPUT_GRADIENT) != 0;
    int stop = input_gradient ? 1 : first_trainable;

    /* The two delta buffers, sized by walking the backward pass: each holds only what the
     * walk puts in it (for the default network, the large conv1 delta lands in one). */
    size_t delta_floats[2] = {shape_size(net->layers[net->layer_count - 1].out), 0};
    int current = 0;
    for (int i = net->layer_count - 1; i >= stop; i--) {
        const struct layer *layer = &net->layers[i];
        if (shape_size(layer->out) > delta_floats[current])
            delta_floats[current] = shape_size(layer->out);
        if (layer_ops[layer->kind].in_place)
            continue;
        if ((i > first_trainable || input_gradient) &&
            shape_size(layer->in) > delta_floats[1 - current])
            delta_floats[1 - current] = shape_size(layer->in);
        current = 1 - current;
    }
    for (int b = 0; b < 2; b++)
        delta_floats[b] = pad_floats(delta_floats[b] * batch);

    /* Per thread: an im2col chunk for the forward chunks and the backward bands, and partial
     * sums for the largest convolution's parameters. */
    size_t column_floats = 0, partial_floats = 0;
    for (int i = 0; i < net->layer_count; i++) {
        const struct layer *layer = &net->layers[i];
        if (layer->kind != BLURD_LAYER_CONV)
            continue;
        size_t row_length = (size_t)layer->kernel_size * layer->kernel_size * layer->in.channels;
        size_t forward = chunk_rows(row_length) * row_length;
        size_t backward = (size_t)conv_band_rows(layer) * layer->out.width * row_length;
        if (forward > column_floats)
            column_floats = forward;
        if (backward > column_floats)
            column_floats = backward;
        if (layer->kernel_count + layer->bias_count > partial_floats)
            partial_floats = layer->kernel_count + layer->bias_count;
    }
    column_floats = pad_floats(column_floats);
    partial_floats = pad_floats(partial_floats);
    size_t gradient_floats = pad_floats(net->parameter_count);

    blurd_net_train_workspace *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    int rc = blurd_team_create(&ws->base.team, threads, err);
    if (rc != 0) {
        free(ws);
        return rc;
    }
    size_t total = activation_floats + delta_floats[0] + delta_floats[1] +
                   (size_t)threads * (column_floats + partial_floats) + gradient_floats;
    if (posix_memalign((void **)&ws->block, 64, total * sizeof(float)) != 0) {
        blurd_net_train_workspace_free(ws);
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory for a %.1f MiB training workspace",
                               (double)total * 4.0 / 1048576.0);
    }
    /* Touch every page now, so the first step does not pay for faulting them in; the
     * partial sums must start at zero anyway. */
    memset(ws->block, 0, total * sizeof(float));
    float *at = ws->block;
    for (int i = 0; i < net->layer_count; i++)
        ws->outputs[i] = at + output_at[i];
    at += activation_floats;
    ws->deltas[0] = at;
    at += delta_floats[0];
    ws->deltas[1] = at;
    at += delta_floats[1];
    ws->base.columns = at;
    ws->base.column_floats = column_floats;
    at += (size_t)threads * column_floats;
    ws->partials = at;
    ws->partial_floats = partial_floats;
    at += (size_t)threads * partial_floats;
    ws->gradients = at;
    ws->base.net = net;
    ws->base.max_batch = max_batch;
    ws->base.bytes = total * sizeof(float);
    ws->base.training = true;
    ws->flags = flags;
    ws->first_trainable = first_trainable;
    *out = ws;
    return 0;
}

void blurd_net_train_workspace_free(blurd_net_train_workspace *ws)
{
    if (ws == NULL)
        return;
    blurd_team_free(ws->base.team);
    free(ws->block);
    free(ws);
}

size_t blurd_net_train_workspace_bytes(const blurd_net_train_workspace *ws)
{
    return ws->base.bytes;
}

int blurd_net_train_workspace_max_batch(const blurd_net_train_workspace *ws)
{
    return ws->base.max_batch;
}

float *blurd_net_train_input(blurd_net_train_workspace *ws)
{
    return ws->outputs[0];
}

float *blurd_net_train_gradients(blurd_net_train_workspace *ws)
{
    return ws->gradients;
}

const float *blurd_net_train_input_gradient(const blurd_net_train_workspace *ws)
{
    return ws->input_gradient;
}

const float *blurd_net_train_forward(const blurd_net *net, blurd_net_train_workspace *ws, int batch,
                                     uint64_t dropout_seed)
{
    CHECK(ws->base.net == net);
    CHECK(batch >= 1 && batch <= ws->base.max_batch);
    ws->base.dropout_seed = dropout_seed;
    for (int i = 1; i < net->layer_count; i++) {
        const struct layer *layer = &net->layers[i];
        struct forward_args args = {
            .net = net,
            .layer = layer,
            .batch = batch,
            .x = ws->outputs[i - 1],
            .y = ws->outputs[i],
            .ws = &ws->base,
        };
        layer_ops[layer->kind].forward(&args);
    }
    ws->batch = batch;
    ws->input_gradient = NULL;
    return ws->outputs[net->layer_count - 1];
}

double blurd_net_train_backward(const blurd_net *net, blurd_net_train_workspace *ws, int batch,
                                const int *labels)
{
    return blurd_net_train_backward_weighted(net, ws, batch, labels, NULL);
}

double blurd_net_train_backward_weighted(const blurd_net *net, blurd_net_train_workspace *ws,
                                         int batch, const int *labels, const float *weights)
{
    CHECK(ws->base.net == net);
    CHECK(batch >= 1 && batch == ws->batch);
    int last = net->layer_count - 1;
    int classes = net->layers[last].out.channels;
    double weight_sum = batch;
    if (weights != NULL) {
        weight_sum = 0.0;
        for (int b = 0; b < batch; b++) {
            CHECK(weights[b] >= 0.0f);
            weight_sum += (double)weights[b];
        }
        CHECK(weight_sum > 0.0);
    }

    /* Softmax and cross-entropy together: dLoss/dlogits = w (p - onehot) / sum(w). */
    const float *probabilities = ws->outputs[last];
    float *delta = ws->deltas[0];
    double loss = 0.0;
    for (int b = 0; b < batch; b++) {
        CHECK(labels[b] >= 0 && labels[b] < classes);
        const float *p = probabilities + (size_t)b * classes;
        float *d = delta + (size_t)b * classes;
        double share = (weights != NULL ? (double)weights[b] : 1.0) / weight_sum;
        for (int j = 0; j < classes; j++)
            d[j] = (p[j] - (j == labels[b] ? 1.0f : 0.0f)) * (float)share;
        /* a probability that underflowed to 0 would make the loss infinite; a NaN (a
         * diverged net) stays NaN, so the caller sees it */
        double truth = (double)p[labels[b]];
        loss -= share * log(isnan(truth) ? truth : fmax(truth, (double)FLT_MIN));
    }

    bool input_gradient = (ws->flags & BLURD_NET_TRAIN_INPUT_GRADIENT) != 0;
    int stop = input_gradient ? 1 : ws->first_trainable;
    int current = 0;
    for (int i = last; i >= stop; i--) {
        const struct layer *layer = &net->layers[i];
        const struct layer_ops *ops = &layer_ops[layer->kind];
        float *dy = ws->deltas[current], *dx = dy;
        if (!ops->in_place)
            dx = i > ws->first_trainable || input_gradient ? ws->deltas[1 - current] : NULL;
        struct backward_args args = {
            .net = net,
            .layer = layer,
            .batch = batch,
            .x = ws->outputs[i - 1],
            .y = ws->outputs[i],
            .dy = dy,
            .dx = dx,
            .ws = ws,
        };
        ops->backward(&args);
        if (!ops->in_place)
            current = 1 - current;
    }
    ws->input_gradient = input_gradient ? ws->deltas[current] : NULL;
    return loss;
}

void blurd_net_dropout_mask(const blurd_net *net, int layer, int image, uint64_t dropout_seed,
                            float *mask)
{
    CHECK(layer > 0 && layer < net->layer_count);
    const struct layer *dropout = &net->layers[layer];
    CHECK(dropout->kind == BLURD_LAYER_DROPOUT);
    size_t n = shape_size(dropout->out);
    for (size_t i = 0; i < n; i++)
        mask[i] = 1.0f;
    if (dropout->rate > 0.0f)
        dropout_values(dropout, dropout_key(dropout_seed, layer, image), mask);
}
