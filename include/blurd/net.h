/* net.h - the convolutional network: built from a layer-spec string, its parameters held
 * in one contiguous block, a batched forward pass over a workspace planned once, and the
 * training passes (forward with dropout, softmax cross-entropy, backward) over another.
 *
 * A blurd_net (architecture + parameters) is read-only during inference and may be
 * shared by many threads; each thread owns a blurd_net_workspace holding the activations
 * and im2col scratch for up to `max_batch` inputs, so the per-image path allocates nothing.
 *
 * Layer spec: layers separated by ';', each "kind arg...":
 *   input H W C            first and only once: input shape (RGB in [0,1], NHWC)
 *   conv FILTERS K ACT     K x K stride-1 valid convolution, ACT = relu | linear
 *   maxpool 2              2 x 2 max-pool, stride 2, floor
 *   dropout RATE           identity at inference (training scales by 1/(1-RATE))
 *   flatten                H,W,C order, as Keras flattens NHWC
 *   globalavgpool          each channel's mean over all positions (1 x 1 x C), as Keras'
 *                          GlobalAveragePooling2D
 *   standardize            each image's values minus their mean, over sqrt(variance +
 *                          1e-4): its contrast removed, the shape of its detail kept
 *   dense UNITS ACT        ACT = relu | linear | softmax
 * Parameters are named "layers.I.kernel" (HWIO for conv, IO for dense) and "layers.I.bias",
 * I being the layer's index in the spec (input is 0).
 */
#ifndef BLURD_NET_H
#define BLURD_NET_H

#include <stddef.h>
#include <stdint.h>

/* The original project's network (DESIGN.md): 6,789,168 parameters. */
#define BLURD_DEFAULT_SPEC                       \
    "input 200 200 3; "                          \
    "conv 32 3 relu; maxpool 2; dropout 0.25; "  \
    "conv 64 3 relu; maxpool 2; dropout 0.25; "  \
    "conv 128 3 relu; maxpool 2; dropout 0.25; " \
    "conv 256 3 relu; maxpool 2; dropout 0.25; " \
    "flatten; dense 250 relu; dropout 0.5; dense 2 softmax"

#define BLURD_NET_MAX_LAYERS 64

typedef struct blurd_net blurd_net;
typedef struct blurd_net_workspace blurd_net_workspace;
typedef struct blurd_net_train_workspace blurd_net_train_workspace;

enum blurd_layer_kind {
    BLURD_LAYER_INPUT,
    BLURD_LAYER_CONV,
    BLURD_LAYER_MAXPOOL,
    BLURD_LAYER_DROPOUT,
    BLURD_LAYER_FLATTEN,
    BLURD_LAYER_DENSE,
    BLURD_LAYER_GLOBALAVGPOOL,
    BLURD_LAYER_STANDARDIZE,
};

enum blurd_activation {
    BLURD_ACTIVATION_LINEAR,
    BLURD_ACTIVATION_RELU,
    BLURD_ACTIVATION_SOFTMAX,
};

/* One input's activation shape; dense, flatten and globalavgpool outputs have
 * height = width = 1. */
struct blurd_shape {
    int height, width, channels;
};

struct blurd_layer_info {
    enum blurd_layer_kind kind;
    const char *kind_name; /* "conv", "dense", ... (static) */
    enum blurd_activation activation;
    const char *activation_name; /* "relu", ... (static) */
    int units;                   /* conv filters or dense units; 0 otherwise */
    int kernel_size;             /* conv K, maxpool 2; 0 otherwise */
    float rate;                  /* dropout rate; 0 otherwise */
    struct blurd_shape output;
    size_t parameters; /* weights + biases */
    double flops;      /* multiply-adds x 2, per input */
};

/* A named parameter tensor; `data` points into the net's parameter block (owned by the
 * net, valid until blurd_net_free). */
struct blurd_tensor {
    char name[48];
    int rank;
    int dims[4];
    size_t count;
    float *data;
};

/* Parses `spec` and allocates zeroed parameters.  Returns BLURD_ESPEC (with the offending
 * layer named in `err`) for an unknown kind, bad argument or impossible shape. */
int blurd_net_create(blurd_net **out, const char *spec, char *err);
void blurd_net_free(blurd_net *net); /* NULL is a no-op */

/* The spec in canonical form (owned by the net). */
const char *blurd_net_spec(const blurd_net *net);
int blurd_net_layer_count(const blurd_net *net);
void blurd_net_layer(const blurd_net *net, int index, struct blurd_layer_info *info);
struct blurd_shape blurd_net_input_shape(const blurd_net *net);
int blurd_net_output_count(const blurd_net *net);
size_t blurd_net_parameter_count(const blurd_net *net);
double blurd_net_flops(const blurd_net *net); /* per input */

/* Parameter tensors, in spec order (kernel before bias). */
int blurd_net_tensor_count(const blurd_net *net);
void blurd_net_tensor(const blurd_net *net, int index, struct blurd_tensor *tensor);
/* The whole parameter block (blurd_net_parameter_count floats, owned by the net). */
float *blurd_net_parameters(const blurd_net *net);

/* He-normal kernels (std sqrt(2 / fan_in)) and zero biases, reproducible from `seed`. */
void blurd_net_init_he(blurd_net *net, uint64_t seed);

/* Plans and allocates (touching every page once) the activations for up to `max_batch`
 * inputs, and starts `threads` - 1 helper threads with a cache-sized im2col chunk each:
 * a forward pass is spread over `threads` cores.  Each thread calls OpenBLAS, which should
 * then be single-threaded (blurd_gemm_set_threads(1)) to avoid oversubscribing the cores.
 * The net must outlive the workspace. */
int blurd_net_workspace_create(blurd_net_workspace **out, const blurd_net *net, int max_batch,
                               int threads, char *err);
void blurd_net_workspace_free(blurd_net_workspace *ws); /* NULL is a no-op */
size_t blurd_net_workspace_bytes(const blurd_net_workspace *ws);
int blurd_net_workspace_max_batch(const blurd_net_workspace *ws);

/* Where the caller writes `batch` NHWC inputs (owned by the workspace). */
float *blurd_net_workspace_input(blurd_net_workspace *ws);

/* Runs the forward pass over the first `batch` inputs (the caller's thread takes part) and returns
 * batch x outputs values (owned by the workspace, valid until the next call).  If `layer_seconds`
 * is not NULL it receives each layer's wall time (blurd_net_layer_count entries).  Aborts with
 * file:line if batch exceeds the workspace's max_batch: that is a programming error. */
const float *blurd_net_forward(const blurd_net *net, blurd_net_workspace *ws, int batch,
                               double *layer_seconds);

/* ---- training ----------------------------------------------------------------------
 *
 * A training step is blurd_net_train_forward, then blurd_net_train_backward on the same
 * batch, which leaves dLoss/dParameters in blurd_net_train_gradients (laid out exactly like
 * blurd_net_parameters, so an optimizer runs over two flat arrays of
 * blurd_net_parameter_count floats), then the caller's update of the parameters.  Training
 * needs a last layer "dense N softmax" (the loss is softmax cross-entropy) and no softmax
 * before it.  A training workspace keeps every layer's output for the batch and two gradient
 * buffers (about 17 MiB per input for the default network, 570 MiB at batch 32), so it is far
 * larger than an inference workspace; like one, it allocates nothing after creation. */

/* Also compute dLoss/dInput (blurd_net_train_input_gradient).  Training itself does not
 * need it, and it costs the first convolution's whole data gradient: a GEMM as large as
 * that layer's forward one (68 MFLOP per input in the default network) and its col2im. */
#define BLURD_NET_TRAIN_INPUT_GRADIENT 1u

/* Plans and allocates (touching every page once) a training workspace for up to `max_batch`
 * inputs, spread over `threads` cores as blurd_net_workspace_create describes (OpenBLAS
 * should be single-threaded).  `flags` is 0 or BLURD_NET_TRAIN_INPUT_GRADIENT.  Returns
 * BLURD_EINVAL for a net that cannot be trained (see above), a bad batch, thread count or
 * flag, BLURD_ENOMEM when memory runs out.  The net must outlive the workspace. */
int blurd_net_train_workspace_create(blurd_net_train_workspace **out, const blurd_net *net,
                                     int max_batch, int threads, unsigned flags, char *err);
void blurd_net_train_workspace_free(blurd_net_train_workspace *ws); /* NULL is a no-op */
size_t blurd_net_train_workspace_bytes(const blurd_net_train_workspace *ws);
int blurd_net_train_workspace_max_batch(const blurd_net_train_workspace *ws);

/* Where the caller writes `batch` NHWC inputs (owned by the workspace).  A dropout layer
 * placed directly after the input would overwrite them in place during the forward pass. */
float *blurd_net_train_input(blurd_net_train_workspace *ws);

/* The forward pass with dropout active, keeping every layer's output for the backward pass:
 * inverted dropout keeps each value with probability 1 - RATE and scales it by
 * 1 / (1 - RATE), the masks being a pure function of `dropout_seed`, the layer and the
 * position in the batch (the same seed gives the same masks, on any thread count and kernel
 * set).  With no dropout (or rate 0) the result equals blurd_net_forward's.  Returns batch x
 * outputs probabilities (owned by the workspace, valid until the next call).  Aborts with
 * file:line if batch is out of [1, max_batch] or `net` is not the workspace's. */
const float *blurd_net_train_forward(const blurd_net *net, blurd_net_train_workspace *ws, int batch,
                                     uint64_t dropout_seed);

/* The multipliers blurd_net_train_forward with `dropout_seed` applies to the values of the
 * input at place `image` of its batch in dropout layer `layer`: 0 or 1 / (1 - RATE) for each
 * of that layer's output values, written to `mask`.  For reproducing a step outside the net,
 * as the gradient-check tests do.  Aborts with file:line if `layer` is not a dropout layer. */
void blurd_net_dropout_mask(const blurd_net *net, int layer, int image, uint64_t dropout_seed,
                            float *mask);

/* The backward pass of the last blurd_net_train_forward (same net, same batch, and the
 * parameters unchanged in between): returns the mean softmax cross-entropy loss over the
 * batch for the true classes `labels` (batch entries in [0, outputs)), and overwrites every
 * entry of the gradient block with the gradient of that mean.  Threads never race: each sums
 * its share of a convolution's weight gradient apart, and the shares are added at the end;
 * with more than one thread, which bands a thread took (so the rounding) may vary from run to
 * run in the last bits.  Aborts with file:line on a label out of range, a batch other than the
 * forward pass's, or no forward pass. */
double blurd_net_train_backward(const blurd_net *net, blurd_net_train_workspace *ws, int batch,
                                const int *labels);

/* As blurd_net_train_backward, with the batch entries weighted: the loss is
 * sum(w[b] * loss[b]) / sum(w), and the gradient is that weighted mean's.  A weight of 0 leaves
 * an entry out; NULL weighs all alike.  Aborts with file:line on a negative weight or weights
 * that sum to 0. */
double blurd_net_train_backward_weighted(const blurd_net *net, blurd_net_train_workspace *ws,
                                         int batch, const int *labels, const float *weights);

/* The gradient block (blurd_net_parameter_count floats laid out like blurd_net_parameters,
 * owned by the workspace; valid after blurd_net_train_backward). */
float *blurd_net_train_gradients(blurd_net_train_workspace *ws);

/* dLoss/dInput, batch NHWC inputs, after blurd_net_train_backward in a workspace created with
 * BLURD_NET_TRAIN_INPUT_GRADIENT (owned by the workspace, valid until the next call); NULL
 * otherwise. */
const float *blurd_net_train_input_gradient(const blurd_net_train_workspace *ws);

#endif
