/* test-backward.c - the network's training passes: gradients of every layer kind checked by
 * central differences of an independent double-precision forward pass, the same gradients on
 * one thread and two, the training forward pass against the inference one, and a tiny network
 * that plain SGD teaches a separable problem. */
#include "blurd/error.h"
#include "blurd/net.h"
#include "test.h"

#include <malloc.h>
#include <string.h>

/* Every layer kind but global average pooling and standardize (below): conv with ReLU and
 * linear, a max-pool that drops a row and a column (7x7 -> 3x3), dropout, flatten, dense
 * with ReLU and with softmax. */
#define SMALL_SPEC                                                                           \
    "input 9 9 3; conv 4 3 relu; maxpool 2; dropout 0.3; conv 3 2 linear; flatten; dense 5 " \
    "relu; dense 2 softmax"

/* Its first convolution reads 128 channels (rows of 1152 floats), so its backward pass splits
 * each image into bands of whole output rows, a forward chunk's worth each: 128 im2col rows
 * (net.c's smallest chunk) are 3 output rows of 34, and its 10 output rows make bands of 3,
 * 3, 3 and 1, exercising the two-phase col2im with an odd band that clears rows between its
 * neighbours and a short last band in the odd phase.  The max-pool drops a row and a column
 * (9x33), in the buffer that the input gradient fills with other values. */
#define BANDED_SPEC \
    "input 12 36 128; conv 1 3 relu; conv 3 2 linear; maxpool 2; flatten; dense 2 softmax"

/* Global average pooling between convolutions and dense layers: every position of a 5x5x5
 * map shares in each mean, so a wrong spread of the gradient shows at every input value. */
#define GLOBAL_POOL_SPEC                                                                    \
    "input 8 8 3; conv 4 3 relu; dropout 0.3; conv 5 2 relu; globalavgpool; dense 3 relu; " \
    "dense 2 softmax"

/* Standardize on the input (the input gradient passes through it) and again between two
 * convolutions, with a dropout after it that zeroes some of its stored output. */
#define STANDARDIZE_SPEC                                                                 \
    "input 8 8 3; standardize; conv 4 3 relu; standardize; dropout 0.3; conv 5 2 relu; " \
    "globalavgpool; dense 3 relu; dense 2 softmax"

static const int labels[3] = {0, 1, 1};

static blurd_net *make_net(const char *spec, uint64_t seed)
{
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    if (blurd_net_create(&net, spec, err) != 0)
        TEST_FAIL("%s", err);
    blurd_net_init_he(net, seed);
    /* biases too, so a missing bias gradient shows */
    uint64_t state = seed + 1;
    for (int t = 0; t < blurd_net_tensor_count(net); t++) {
        struct blurd_tensor tensor;
        blurd_net_tensor(net, t, &tensor);
        if (tensor.rank == 1)
            for (size_t i = 0; i < tensor.count; i++)
                tensor.data[i] = test_random_uniform(&state, -0.1f, 0.1f);
    }
    return net;
}

static blurd_net_train_workspace *make_workspace(const blurd_net *net, int batch, int threads,
                                                 unsigned flags)
{
    char err[BLURD_ERR_LEN];
    blurd_net_train_workspace *ws;
    if (blurd_net_train_workspace_create(&ws, net, batch, threads, flags, err) != 0)
        TEST_FAIL("%s", err);
    return ws;
}

static size_t input_size(const blurd_net *net)
{
    struct blurd_shape in = blurd_net_input_shape(net);
    return (size_t)in.height * in.width * in.channels;
}

static float *random_inputs(const blurd_net *net, int batch, uint64_t seed)
{
    size_t n = (size_t)batch * input_size(net);
    float *inputs = malloc(n * sizeof(float));
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++)
        inputs[i] = test_random_uniform(&state, 0.0f, 1.0f);
    return inputs;
}

/* ---- a double-precision reference of the training forward pass ---- */

/* The network evaluated in double with naive loops, written from the layer-spec semantics and
 * independently of net.c's im2col and kernels; dropout masks come from the net, since they
 * are its choice.  Finite differences of this loss with a tiny step are accurate to ~1e-9,
 * where float differences would be swamped by rounding or cross ReLU and max-pool switches
 * (a conv weight touches hundreds of pooling windows). */
struct reference {
    const blurd_net *net;
    int batch;
    uint64_t seed;
    double *theta;  /* the parameters, in the net's layout */
    double *inputs; /* batch NHWC inputs */
    double *a, *b;  /* one input's activations, ping-pong */
    float *mask;
};

static size_t largest_activation(const blurd_net *net)
{
    size_t largest = input_size(net);
    for (int i = 0; i < blurd_net_layer_count(net); i++) {
        struct blurd_layer_info info;
        blurd_net_layer(net, i, &info);
        size_t n = (size_t)info.output.height * info.output.width * info.output.channels;
        if (n > largest)
            largest = n;
    }
    return largest;
}

static void reference_init(struct reference *r, const blurd_net *net, int batch, uint64_t seed,
                           const float *inputs)
{
    size_t parameters = blurd_net_parameter_count(net), n = (size_t)batch * input_size(net);
    size_t largest = largest_activation(net);
    *r = (struct reference){net,
                            batch,
                            seed,
                            malloc(parameters * sizeof(double)),
                            malloc(n * sizeof(double)),
                            malloc(largest * sizeof(double)),
                            malloc(largest * sizeof(double)),
                            malloc(largest * sizeof(float))};
    const float *theta = blurd_net_parameters(net);
    for (size_t i = 0; i < parameters; i++)
        r->theta[i] = theta[i];
    for (size_t i = 0; i < n; i++)
        r->inputs[i] = inputs[i];
}

static void reference_free(struct reference *r)
{
    free(r->theta), free(r->inputs), free(r->a), free(r->b), free(r->mask);
}

/* Mean softmax cross-entropy over the batch for `labels`. */
static double reference_loss(struct reference *r)
{
    const blurd_net *net = r->net;
    double loss = 0.0;
    for (int image = 0; image < r->batch; image++) {
        struct blurd_shape in = blurd_net_input_shape(net);
        memcpy(r->a, r->inputs + (size_t)image * input_size(net), input_size(net) * sizeof(double));
        double *x = r->a, *y = r->b;
        const double *theta = r->theta;
        struct blurd_layer_info info;
        for (int i = 1; i < blurd_net_layer_count(net); i++) {
            blurd_net_layer(net, i, &info);
            struct blurd_shape out = info.output;
            int relu = info.activation == BLURD_ACTIVATION_RELU;
            if (info.kind == BLURD_LAYER_CONV) {
                int k = info.kernel_size, f = out.channels;
                const double *kernel = theta, *bias = theta + (size_t)k * k * in.channels * f;
                for (int oy = 0; oy < out.height; oy++)
                    for (int ox = 0; ox < out.width; ox++)
                        for (int u = 0; u < f; u++) {
                            double sum = bias[u];
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                    for (int c = 0; c < in.channels; c++)
                                        sum +=
                                            x[((oy + ky) * in.width + ox + kx) * in.channels + c] *
                                            kernel[((ky * k + kx) * in.channels + c) * f + u];
                            y[(oy * out.width + ox) * f + u] = relu && sum < 0.0 ? 0.0 : sum;
                        }
                theta += info.parameters;
            } else if (info.kind == BLURD_LAYER_MAXPOOL) {
                for (int oy = 0; oy < out.height; oy++)
                    for (int ox = 0; ox < out.width; ox++)
                        for (int c = 0; c < out.channels; c++) {
                            double best = x[((2 * oy) * in.width + 2 * ox) * in.channels + c];
                            for (int w = 1; w < 4; w++) {
                                double v =
                                    x[((2 * oy + w / 2) * in.width + 2 * ox + w % 2) * in.channels +
                                      c];
                                if (v > best)
                                    best = v;
                            }
                            y[(oy * out.width + ox) * out.channels + c] = best;
                        }
            } else if (info.kind == BLURD_LAYER_GLOBALAVGPOOL) {
                int positions = in.height * in.width;
                for (int c = 0; c < in.channels; c++) {
                    double sum = 0.0;
                    for (int p = 0; p < positions; p++)
                        sum += x[p * in.channels + c];
                    y[c] = sum / positions;
                }
            } else if (info.kind == BLURD_LAYER_STANDARDIZE) {
                int n = in.height * in.width * in.channels;
                double mean = 0.0, variance = 0.0;
                for (int v = 0; v < n; v++)
                    mean += x[v] / n;
                for (int v = 0; v < n; v++)
                    variance += (x[v] - mean) * (x[v] - mean) / n;
                for (int v = 0; v < n; v++)
                    y[v] = (x[v] - mean) / sqrt(variance + 1e-4);
            } else if (info.kind == BLURD_LAYER_DENSE) {
                int units = out.channels;
                const double *kernel = theta, *bias = theta + (size_t)in.channels * units;
                for (int u = 0; u < units; u++) {
                    double sum = bias[u];
                    for (int c = 0; c < in.channels; c++)
                        sum += x[c] * kernel[c * units + u];
                    y[u] = relu && sum < 0.0 ? 0.0 : sum;
                }
                theta += info.parameters;
            } else {
                /* dropout, flatten: the same values, masked for dropout */
                size_t n = (size_t)out.height * out.width * out.channels;
                if (info.kind == BLURD_LAYER_DROPOUT)
                    blurd_net_dropout_mask(net, i, image, r->seed, r->mask);
                for (size_t j = 0; j < n; j++)
                    y[j] = info.kind == BLURD_LAYER_DROPOUT ? x[j] * (double)r->mask[j] : x[j];
            }
            double *t = x;
            x = y, y = t;
            in = out;
        }
        /* the last layer is dense softmax: its x holds the logits */
        double top = x[0], sum = 0.0;
        for (int c = 1; c < in.channels; c++)
            top = fmax(top, x[c]);
        for (int c = 0; c < in.channels; c++)
            sum += exp(x[c] - top);
        loss -= x[labels[image]] - top - log(sum);
    }
    return loss / r->batch;
}

/* |analytic - numeric| / max(|analytic| + |numeric|, 1e-3) for one value, by central
 * differences of the reference loss. */
static double check_one(struct reference *r, double *value, float analytic)
{
    const double eps = 1e-6;
    double saved = *value;
    *value = saved + eps;
    double up = reference_loss(r);
    *value = saved - eps;
    double down = reference_loss(r);
    *value = saved;
    double numeric = (up - down) / (2.0 * eps);
    double scale = fabs((double)analytic) + fabs(numeric);
    return fabs((double)analytic - numeric) / (scale > 1e-3 ? scale : 1e-3);
}

/* Checks blurd's float gradient of every parameter and input value, or of `samples` of each
 * chosen at random, against central differences of the reference; every parameter tensor
 * must have a gradient that is not zero, so that the check is not vacuous. */
static void gradient_check(const char *spec, size_t samples)
{
    const int batch = 3;
    const uint64_t seed = 77;
    blurd_net *net = make_net(spec, 5);
    blurd_net_train_workspace *ws = make_workspace(net, batch, 1, BLURD_NET_TRAIN_INPUT_GRADIENT);
    float *inputs = random_inputs(net, batch, 9);
    size_t parameters = blurd_net_parameter_count(net), input_n = (size_t)batch * input_size(net);

    /* A first step on other data leaves stale values in every buffer, so that a region
     * the real step fails to write or clear shows. */
    for (size_t i = 0; i < input_n; i++)
        blurd_net_train_input(ws)[i] = 5.0f - 3.0f * inputs[i];
    blurd_net_train_forward(net, ws, batch, seed + 1);
    const int other_labels[3] = {1, 0, 0};
    blurd_net_train_backward(net, ws, batch, other_labels);

    memcpy(blurd_net_train_input(ws), inputs, input_n * sizeof(float));
    blurd_net_train_forward(net, ws, batch, seed);
    double loss = blurd_net_train_backward(net, ws, batch, labels);
    const float *gradients = blurd_net_train_gradients(ws);
    const float *input_gradient = blurd_net_train_input_gradient(ws);
    ASSERT(input_gradient != NULL);
    struct reference r;
    reference_init(&r, net, batch, seed, inputs);
    double reference = reference_loss(&r);
    fprintf(stderr, "loss %.9f, reference %.9f\n", loss, reference);
    ASSERT_NEAR(loss, reference, 1e-5 * reference);

    for (int t = 0; t < blurd_net_tensor_count(net); t++) {
        struct blurd_tensor tensor;
        blurd_net_tensor(net, t, &tensor);
        const float *g = gradients + (tensor.data - blurd_net_parameters(net));
        double largest = 0.0;
        for (size_t i = 0; i < tensor.count; i++)
            largest = fmax(largest, fabs((double)g[i]));
        if (!(largest > 1e-4))
            TEST_FAIL("%s has no gradient (largest %g)", tensor.name, largest);
    }

    uint64_t state = 3;
    double worst_parameter = 0.0, worst_input = 0.0;
    size_t count = samples == 0 || samples > parameters ? parameters : samples;
    for (size_t s = 0; s < count; s++) {
        size_t i = count == parameters ? s : test_random_next(&state) % parameters;
        double e = check_one(&r, r.theta + i, gradients[i]);
        if (e > 1e-2)
            fprintf(stderr, "parameter %zu: analytic %.6g, relative error %.3g\n", i,
                    (double)gradients[i], e);
        worst_parameter = fmax(worst_parameter, e);
    }
    count = samples == 0 || samples > input_n ? input_n : samples;
    for (size_t s = 0; s < count; s++) {
        size_t i = count == input_n ? s : test_random_next(&state) % input_n;
        double e = check_one(&r, r.inputs + i, input_gradient[i]);
        if (e > 1e-2)
            fprintf(stderr, "input %zu: analytic %.6g, relative error %.3g\n", i,
                    (double)input_gradient[i], e);
        worst_input = fmax(worst_input, e);
    }
    fprintf(stderr, "worst relative error: parameters %.3g, inputs %.3g\n", worst_parameter,
            worst_input);
    ASSERT(worst_parameter <= 1e-2);
    ASSERT(worst_input <= 1e-2);
    reference_free(&r);
    free(inputs);
    blurd_net_train_workspace_free(ws);
    blurd_net_free(net);
}

TEST_IMPL(backward_gradient_check_every_layer_kind)
{
    gradient_check(SMALL_SPEC, 0);
    return 0;
}

TEST_IMPL(backward_gradient_check_global_average_pool)
{
    gradient_check(GLOBAL_POOL_SPEC, 0);
    return 0;
}

TEST_IMPL(backward_gradient_check_standardize)
{
    gradient_check(STANDARDIZE_SPEC, 0);
    return 0;
}

TEST_IMPL(backward_gradient_check_banded_convolution)
{
    gradient_check(BANDED_SPEC, 200);
    return 0;
}

/* The gradients (and input gradient) of one step on `threads` threads. */
static float *step_gradients(const blurd_net *net, int threads, unsigned flags, const float *inputs,
                             double *loss)
{
    const int batch = 3;
    blurd_net_train_workspace *ws = make_workspace(net, batch, threads, flags);
    size_t input_n = (size_t)batch * input_size(net), parameters = blurd_net_parameter_count(net);
    memcpy(blurd_net_train_input(ws), inputs, input_n * sizeof(float));
    blurd_net_train_forward(net, ws, batch, 1234);
    *loss = blurd_net_train_backward(net, ws, batch, labels);
    float *result = calloc(parameters + input_n, sizeof(float));
    memcpy(result, blurd_net_train_gradients(ws), parameters * sizeof(float));
    if (flags & BLURD_NET_TRAIN_INPUT_GRADIENT)
        memcpy(result + parameters, blurd_net_train_input_gradient(ws), input_n * sizeof(float));
    else
        ASSERT(blurd_net_train_input_gradient(ws) == NULL);
    blurd_net_train_workspace_free(ws);
    return result;
}

TEST_IMPL(backward_threads_agree)
{
    const char *specs[] = {SMALL_SPEC, BANDED_SPEC, GLOBAL_POOL_SPEC, STANDARDIZE_SPEC};
    for (int s = 0; s < (int)(sizeof specs / sizeof specs[0]); s++) {
        blurd_net *net = make_net(specs[s], 8);
        float *inputs = random_inputs(net, 3, 10);
        size_t n = blurd_net_parameter_count(net) + 3 * input_size(net);
        for (unsigned flags = 0; flags <= BLURD_NET_TRAIN_INPUT_GRADIENT; flags++) {
            double loss1, loss2;
            float *one = step_gradients(net, 1, flags, inputs, &loss1);
            float *two = step_gradients(net, 2, flags, inputs, &loss2);
            ASSERT(loss1 == loss2); /* the forward pass does not depend on threads */
            ASSERT(test_normalised_error(two, one, n) <= 1e-5);
            free(one);
            free(two);
        }
        /* the parameter gradients do not depend on whether the input gradient is wanted
         * (beyond rounding: with it, a convolution's bands are summed even ones first) */
        double loss;
        float *without = step_gradients(net, 1, 0, inputs, &loss);
        float *with = step_gradients(net, 1, BLURD_NET_TRAIN_INPUT_GRADIENT, inputs, &loss);
        ASSERT(test_normalised_error(with, without, blurd_net_parameter_count(net)) <= 1e-6);
        free(without);
        free(with);
        free(inputs);
        blurd_net_free(net);
    }
    return 0;
}

/* `spec` (3 outputs, no dropout rate) gives the same outputs in training as in inference. */
static void expect_train_forward_equals_inference(const char *spec)
{
    const int batch = 4;
    char err[BLURD_ERR_LEN];
    blurd_net *net = make_net(spec, 21);
    blurd_net_workspace *inference;
    ASSERT_INT_EQ(blurd_net_workspace_create(&inference, net, batch, 2, err), 0);
    blurd_net_train_workspace *ws = make_workspace(net, batch, 2, 0);
    float *inputs = random_inputs(net, batch, 22);
    size_t input_n = (size_t)batch * input_size(net);
    memcpy(blurd_net_workspace_input(inference), inputs, input_n * sizeof(float));
    memcpy(blurd_net_train_input(ws), inputs, input_n * sizeof(float));
    const float *expected = blurd_net_forward(net, inference, batch, NULL);
    const float *got = blurd_net_train_forward(net, ws, batch, 5);
    ASSERT(memcmp(got, expected, (size_t)batch * 3 * sizeof(float)) == 0);
    free(inputs);
    blurd_net_train_workspace_free(ws);
    blurd_net_workspace_free(inference);
    blurd_net_free(net);
}

TEST_IMPL(backward_train_forward_matches_inference)
{
    /* dropout 0 is the identity in training too; with a rate, masks follow the seed */
    expect_train_forward_equals_inference(
        "input 20 20 3; conv 6 3 relu; maxpool 2; dropout 0; conv 5 3 linear; flatten; "
        "dense 7 relu; dense 3 softmax");
    expect_train_forward_equals_inference(
        "input 20 20 3; conv 6 3 relu; maxpool 2; dropout 0; conv 5 3 linear; globalavgpool; "
        "dense 7 relu; dense 3 softmax");
    expect_train_forward_equals_inference(
        "input 20 20 3; standardize; conv 6 3 relu; maxpool 2; conv 5 3 linear; globalavgpool; "
        "dense 7 relu; dense 3 softmax");

    /* with dropout: the same seed gives the same output, another seed another */
    char err[BLURD_ERR_LEN];
    blurd_net *net = make_net(SMALL_SPEC, 23);
    blurd_net_train_workspace *ws = make_workspace(net, 3, 2, 0);
    blurd_net_workspace *inference;
    ASSERT_INT_EQ(blurd_net_workspace_create(&inference, net, 3, 1, err), 0);
    float *inputs = random_inputs(net, 3, 24);
    size_t input_n = 3 * input_size(net);
    memcpy(blurd_net_workspace_input(inference), inputs, input_n * sizeof(float));
    float plain[6], first[6], again[6], other[6];
    memcpy(plain, blurd_net_forward(net, inference, 3, NULL), sizeof plain);
    memcpy(blurd_net_train_input(ws), inputs, input_n * sizeof(float));
    memcpy(first, blurd_net_train_forward(net, ws, 3, 100), sizeof first);
    memcpy(again, blurd_net_train_forward(net, ws, 3, 100), sizeof again);
    memcpy(other, blurd_net_train_forward(net, ws, 3, 101), sizeof other);
    ASSERT(memcmp(first, again, sizeof first) == 0);
    ASSERT(memcmp(first, other, sizeof first) != 0);
    ASSERT(memcmp(first, plain, sizeof first) != 0);

    /* after a warm-up step, training steps allocate nothing */
    int step_labels[3] = {1, 0, 1};
    blurd_net_train_backward(net, ws, 3, step_labels);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 10; i++) {
        blurd_net_train_forward(net, ws, 1 + i % 3, (uint64_t)i);
        blurd_net_train_backward(net, ws, 1 + i % 3, step_labels);
    }
    struct mallinfo2 after = mallinfo2();
    ASSERT_INT_EQ(after.uordblks, before.uordblks);
    ASSERT_INT_EQ(after.hblkhd, before.hblkhd);
    free(inputs);
    blurd_net_train_workspace_free(ws);
    blurd_net_workspace_free(inference);
    blurd_net_free(net);
    return 0;
}

/* A weighted batch's gradient is the weighted mean of its entries' own gradients, each taken
 * alone (no dropout, so an entry's pass does not depend on its place in the batch), and its
 * loss the weighted mean of their losses; a weight of 0 leaves an entry out. */
TEST_IMPL(backward_weighted_loss_is_the_weighted_mean)
{
    const char *spec = "input 10 10 3; conv 4 3 relu; maxpool 2; conv 3 2 linear; flatten; "
                       "dense 5 relu; dense 2 softmax";
    const int batch = 3;
    const float weights[3] = {2.0f, 0.0f, 0.5f};
    blurd_net *net = make_net(spec, 31);
    size_t parameters = blurd_net_parameter_count(net), one = input_size(net);
    float *inputs = random_inputs(net, batch, 32);

    blurd_net_train_workspace *ws = make_workspace(net, batch, 1, 0);
    double expected_loss = 0.0;
    double *expected = calloc(parameters, sizeof(double));
    for (int b = 0; b < batch; b++) {
        memcpy(blurd_net_train_input(ws), inputs + (size_t)b * one, one * sizeof(float));
        blurd_net_train_forward(net, ws, 1, 7);
        double loss = blurd_net_train_backward(net, ws, 1, &labels[b]);
        const float *g = blurd_net_train_gradients(ws);
        expected_loss += (double)weights[b] / 2.5 * loss;
        for (size_t i = 0; i < parameters; i++)
            expected[i] += (double)weights[b] / 2.5 * (double)g[i];
    }
    memcpy(blurd_net_train_input(ws), inputs, (size_t)batch * one * sizeof(float));
    blurd_net_train_forward(net, ws, batch, 7);
    double loss = blurd_net_train_backward_weighted(net, ws, batch, labels, weights);
    ASSERT_NEAR(loss, expected_loss, 1e-6);
    const float *g = blurd_net_train_gradients(ws);
    double largest = 0.0;
    for (size_t i = 0; i < parameters; i++) {
        ASSERT_NEAR((double)g[i], expected[i], 1e-5 + 1e-4 * fabs(expected[i]));
        largest = fmax(largest, fabs(expected[i]));
    }
    ASSERT(largest > 1e-3); /* the comparison was not of zeros */

    /* equal weights, whatever their size, are the plain mean */
    const float equal[3] = {4.0f, 4.0f, 4.0f};
    blurd_net_train_forward(net, ws, batch, 7);
    double plain = blurd_net_train_backward(net, ws, batch, labels);
    float *plain_gradients = malloc(parameters * sizeof(float));
    memcpy(plain_gradients, blurd_net_train_gradients(ws), parameters * sizeof(float));
    blurd_net_train_forward(net, ws, batch, 7);
    ASSERT_NEAR(blurd_net_train_backward_weighted(net, ws, batch, labels, equal), plain, 1e-9);
    ASSERT(memcmp(plain_gradients, blurd_net_train_gradients(ws), parameters * sizeof(float)) == 0);

    free(plain_gradients);
    free(expected);
    free(inputs);
    blurd_net_train_workspace_free(ws);
    blurd_net_free(net);
    return 0;
}

TEST_IMPL(backward_refuses_untrainable_nets)
{
    static const struct {
        const char *spec;
        unsigned flags;
        const char *reason;
    } cases[] = {
        {"input 4 4 1; flatten; dense 2 linear", 0, "softmax"},
        {"input 4 4 1; flatten; dense 3 softmax; dense 2 softmax", 0, "only in the last"},
        {"input 4 4 1; flatten; dense 2 softmax", 2, "flags"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[BLURD_ERR_LEN] = "";
        blurd_net *net;
        ASSERT_INT_EQ(blurd_net_create(&net, cases[i].spec, err), 0);
        blurd_net_train_workspace *ws = (blurd_net_train_workspace *)1;
        ASSERT_INT_EQ(blurd_net_train_workspace_create(&ws, net, 2, 1, cases[i].flags, err),
                      BLURD_EINVAL);
        ASSERT(ws == NULL);
        ASSERT_CONTAINS(err, cases[i].reason);
        blurd_net_free(net);
    }
    blurd_net_train_workspace_free(NULL);
    return 0;
}

TEST_IMPL(backward_sgd_learns_a_separable_problem)
{
    /* class 0: noise; class 1: one grey level over the whole image */
    const char *spec = "input 12 12 3; conv 4 3 relu; maxpool 2; dropout 0.25; flatten; "
                       "dense 8 relu; dense 2 softmax";
    enum { IMAGES = 16, STEPS = 200 };
    const float rate = 0.05f;
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    ASSERT_INT_EQ(blurd_net_create(&net, spec, err), 0);
    blurd_net_init_he(net, 31);
    blurd_net_train_workspace *ws = make_workspace(net, IMAGES, 1, 0);
    size_t size = input_size(net), parameters = blurd_net_parameter_count(net);
    float *images = malloc(IMAGES * size * sizeof(float));
    int classes[IMAGES];
    uint64_t state = 32;
    for (int b = 0; b < IMAGES; b++) {
        classes[b] = b % 2;
        float grey = test_random_uniform(&state, 0.2f, 0.8f);
        for (size_t i = 0; i < size; i++)
            images[b * size + i] = classes[b] == 0 ? test_random_uniform(&state, 0.0f, 1.0f) : grey;
    }

    float *theta = blurd_net_parameters(net), *gradients = blurd_net_train_gradients(ws);
    double first_losses = 0.0, last_losses = 0.0;
    for (int step = 0; step < STEPS; step++) {
        memcpy(blurd_net_train_input(ws), images, IMAGES * size * sizeof(float));
        blurd_net_train_forward(net, ws, IMAGES, (uint64_t)step);
        double loss = blurd_net_train_backward(net, ws, IMAGES, classes);
        if (step < 10)
            first_losses += loss;
        if (step >= STEPS - 10)
            last_losses += loss;
        for (size_t i = 0; i < parameters; i++)
            theta[i] -= rate * gradients[i];
    }
    fprintf(stderr, "mean loss over the first 10 steps %.4f, the last 10 %.4f\n", first_losses / 10,
            last_losses / 10);
    ASSERT(last_losses < 0.25 * first_losses);

    blurd_net_workspace *inference;
    ASSERT_INT_EQ(blurd_net_workspace_create(&inference, net, IMAGES, 1, err), 0);
    memcpy(blurd_net_workspace_input(inference), images, IMAGES * size * sizeof(float));
    const float *p = blurd_net_forward(net, inference, IMAGES, NULL);
    int correct = 0;
    for (int b = 0; b < IMAGES; b++)
        correct += (p[2 * b + 1] > p[2 * b]) == (classes[b] == 1);
    ASSERT_INT_EQ(correct, IMAGES);
    free(images);
    blurd_net_workspace_free(inference);
    blurd_net_train_workspace_free(ws);
    blurd_net_free(net);
    return 0;
}
