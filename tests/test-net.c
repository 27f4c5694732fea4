/* test-net.c - the network: spec parsing and shapes, the default architecture's size, the
 * batched forward pass against a direct (non-im2col) convolution reference, and the
 * promise that the forward path allocates nothing. */
#include "blurd/error.h"
#include "blurd/kernels.h"
#include "blurd/net.h"
#include "test.h"

#include <malloc.h>
#include <string.h>

TEST_IMPL(net_default_architecture)
{
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    ASSERT_INT_EQ(blurd_net_create(&net, BLURD_DEFAULT_SPEC, err), 0);
    ASSERT_INT_EQ(blurd_net_parameter_count(net), 6789168);
    ASSERT_INT_EQ(blurd_net_layer_count(net), 17);
    ASSERT_INT_EQ(blurd_net_output_count(net), 2);
    ASSERT_INT_EQ(blurd_net_tensor_count(net), 12);
    struct blurd_layer_info info;
    blurd_net_layer(net, 12, &info); /* the last dropout before flatten */
    ASSERT_STR_EQ(info.kind_name, "dropout");
    ASSERT_INT_EQ(info.output.height, 10);
    ASSERT_INT_EQ(info.output.width, 10);
    ASSERT_INT_EQ(info.output.channels, 256);
    blurd_net_layer(net, 13, &info);
    ASSERT_STR_EQ(info.kind_name, "flatten");
    ASSERT_INT_EQ(info.output.channels, 25600);
    /* DESIGN.md: 999.5 MFLOP per input */
    ASSERT_NEAR(blurd_net_flops(net) / 1e6, 999.5, 0.5);
    struct blurd_tensor t;
    blurd_net_tensor(net, 2, &t);
    ASSERT_STR_EQ(t.name, "layers.4.kernel");
    ASSERT_INT_EQ(t.rank, 4);
    ASSERT_INT_EQ(t.dims[2], 32);
    ASSERT_INT_EQ(t.dims[3], 64);

    /* The canonical spec parses to the same network. */
    blurd_net *again;
    ASSERT_INT_EQ(blurd_net_create(&again, blurd_net_spec(net), err), 0);
    ASSERT_STR_EQ(blurd_net_spec(again), blurd_net_spec(net));
    blurd_net_free(again);
    blurd_net_free(net);
    return 0;
}

TEST_IMPL(net_rejects_bad_specs)
{
    static const struct {
        const char *spec, *reason;
    } cases[] = {
        {"", "empty"},
        {"conv 8 3 relu; dense 2 softmax", "first layer"},
        {"input 10 10 3; pool 2; flatten; dense 2 softmax", "unknown layer kind"},
        {"input 10 10 3; conv 8 3 relu; dense 2 softmax", "flatten first"},
        {"input 4 4 3; conv 8 5 relu; flatten; dense 2 softmax", "smaller than"},
        {"input 10 10 3; conv 8 3 sigmoid; flatten; dense 2 softmax", "conv FILTERS"},
        {"input 10 10 3; conv -8 3 relu; flatten; dense 2 softmax", "conv FILTERS"},
        {"input 10 10 3; maxpool 3; flatten; dense 2 softmax", "maxpool 2"},
        {"input 10 10 3; dropout 1.5; flatten; dense 2 softmax", "dropout RATE"},
        {"input 10 10 3; globalavgpool 2; dense 2 softmax", "globalavgpool takes no arguments"},
        {"input 10 10 3; standardize on; flatten; dense 2 softmax",
         "standardize takes no arguments"},
        {"input 10 10 3; flatten; dense 2 softmax; input 1 1 1", "first layer and appear once"},
        {"input 10 10 3; conv 8 3 relu", "last layer must be dense"},
        {"input 10 10 3;; flatten; dense 2 softmax", "empty"},
        {"input 200 200 64; flatten; dense 65536 relu; dense 2 softmax", "parameters"},
        {"input 100000 100000 3; flatten; dense 2 softmax", "sides 1 to 4096"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[BLURD_ERR_LEN] = "";
        blurd_net *net = (blurd_net *)1;
        if (blurd_net_create(&net, cases[i].spec, err) != BLURD_ESPEC)
            TEST_FAIL("accepted \"%s\"", cases[i].spec);
        ASSERT(net == NULL);
        ASSERT_CONTAINS(err, cases[i].reason);
    }
    return 0;
}

/* Direct convolution + ReLU, NHWC / HWIO, written independently of im2col. */
static void naive_conv_relu(int h, int w, int c, int k, int filters, const float *x,
                            const float *kernel, const float *bias, float *y)
{
    int oh = h - k + 1, ow = w - k + 1;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int f = 0; f < filters; f++) {
                double sum = bias[f];
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++)
                        for (int ci = 0; ci < c; ci++)
                            sum += (double)x[((oy + ky) * w + ox + kx) * c + ci] *
                                   (double)kernel[((ky * k + kx) * c + ci) * filters + f];
                y[(oy * ow + ox) * filters + f] = sum > 0.0 ? (float)sum : 0.0f;
            }
}

TEST_IMPL(net_forward_matches_direct_convolution)
{
    /* conv -> maxpool -> flatten -> dense linear: compare the pre-softmax chain against
     * direct loops, for batch 3 at once. */
    const char *spec = "input 11 9 3; conv 5 3 relu; maxpool 2; flatten; dense 4 linear";
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    ASSERT_INT_EQ(blurd_net_create(&net, spec, err), 0);
    blurd_net_init_he(net, 99);
    /* give the biases values too, so a missing bias add shows */
    struct blurd_tensor kernel1, bias1, kernel2, bias2;
    blurd_net_tensor(net, 0, &kernel1);
    blurd_net_tensor(net, 1, &bias1);
    blurd_net_tensor(net, 2, &kernel2);
    blurd_net_tensor(net, 3, &bias2);
    uint64_t state = 3;
    for (size_t i = 0; i < bias1.count; i++)
        bias1.data[i] = test_random_uniform(&state, -0.5f, 0.5f);
    for (size_t i = 0; i < bias2.count; i++)
        bias2.data[i] = test_random_uniform(&state, -0.5f, 0.5f);

    const int batch = 3, in_size = 11 * 9 * 3;
    blurd_net_workspace *ws;
    ASSERT_INT_EQ(blurd_net_workspace_create(&ws, net, batch, 1, err), 0);
    float *input = blurd_net_workspace_input(ws);
    float images[3][11 * 9 * 3];
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < in_size; i++)
            images[b][i] = input[b * in_size + i] = test_random_uniform(&state, 0.0f, 1.0f);
    const float *out = blurd_net_forward(net, ws, batch, NULL);

    for (int b = 0; b < batch; b++) {
        float conv[9 * 7 * 5], pooled[4 * 3 * 5], expected[4];
        naive_conv_relu(11, 9, 3, 3, 5, images[b], kernel1.data, bias1.data, conv);
        for (int oy = 0; oy < 4; oy++)
            for (int ox = 0; ox < 3; ox++)
                for (int c = 0; c < 5; c++) {
                    float m = -INFINITY;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++)
                            m = fmaxf(m, conv[((2 * oy + dy) * 7 + 2 * ox + dx) * 5 + c]);
                    pooled[(oy * 3 + ox) * 5 + c] = m;
                }
        for (int u = 0; u < 4; u++) {
            double sum = bias2.data[u];
            for (int i = 0; i < 60; i++)
                sum += (double)pooled[i] * (double)kernel2.data[i * 4 + u];
            expected[u] = (float)sum;
        }
        ASSERT(test_normalised_error(out + b * 4, expected, 4) <= 1e-5);
    }
    blurd_net_workspace_free(ws);
    blurd_net_free(net);
    return 0;
}

TEST_IMPL(net_batch_equals_single_and_allocates_nothing)
{
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    ASSERT_INT_EQ(blurd_net_create(&net,
                                   "input 40 40 3; conv 8 3 relu; maxpool 2; dropout 0.5; "
                                   "conv 16 3 relu; maxpool 2; flatten; dense 10 relu; "
                                   "dense 2 softmax",
                                   err),
                  0);
    blurd_net_init_he(net, 1);
    blurd_net_workspace *batch_ws, *single_ws;
    ASSERT_INT_EQ(blurd_net_workspace_create(&batch_ws, net, 4, 2, err), 0);
    ASSERT_INT_EQ(blurd_net_workspace_create(&single_ws, net, 1, 1, err), 0);
    /* planned: two ping-pong buffers for 4 x 38x38x8 activations, and for each of the 2
     * threads one im2col chunk of whole rows filling 512 KiB, for the layer (conv1, rows of
     * 3*3*3 floats, or conv2, rows of 3*3*8) that needs more */
    size_t conv1_chunk = (512 * 1024 / (27 * 4)) * 27, conv2_chunk = (512 * 1024 / (72 * 4)) * 72;
    size_t chunk_floats = conv1_chunk > conv2_chunk ? conv1_chunk : conv2_chunk;
    size_t expected_floats = 2 * (((size_t)38 * 38 * 8 * 4 + 15) & ~(size_t)15) +
                             2 * ((chunk_floats + 15) & ~(size_t)15);
    ASSERT_INT_EQ(blurd_net_workspace_bytes(batch_ws), expected_floats * sizeof(float));

    uint64_t state = 5;
    const size_t in_size = 40 * 40 * 3;
    float *input = blurd_net_workspace_input(batch_ws);
    for (size_t i = 0; i < 4 * in_size; i++)
        input[i] = test_random_uniform(&state, 0.0f, 1.0f);
    float inputs_copy[4 * 40 * 40 * 3];
    memcpy(inputs_copy, input, sizeof inputs_copy);
    const float *batch_out = blurd_net_forward(net, batch_ws, 4, NULL);
    float batch_probs[8];
    memcpy(batch_probs, batch_out, sizeof batch_probs);
    for (int b = 0; b < 4; b++) {
        memcpy(blurd_net_workspace_input(single_ws), inputs_copy + b * in_size,
               in_size * sizeof(float));
        const float *single = blurd_net_forward(net, single_ws, 1, NULL);
        ASSERT(test_normalised_error(single, batch_probs + 2 * b, 2) <= 1e-5);
        ASSERT_NEAR(single[0] + single[1], 1.0, 1e-6);
    }

    /* After a warm-up call, further forward passes must not grow the heap. */
    struct mallinfo2 before = mallinfo2();
    double seconds[16];
    for (int i = 0; i < 20; i++)
        blurd_net_forward(net, batch_ws, 1 + i % 4, seconds);
    struct mallinfo2 after = mallinfo2();
    ASSERT_INT_EQ(after.uordblks, before.uordblks);
    ASSERT_INT_EQ(after.hblkhd, before.hblkhd);

    blurd_net_workspace_free(batch_ws);
    blurd_net_workspace_free(single_ws);
    blurd_net_free(net);
    return 0;
}
