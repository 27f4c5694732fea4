/* test-kernels.c - every SIMD kernel set against the scalar reference on odd shapes, the
 * scalar reference against hand-written expectations, and the GEMM wrapper against a
 * naive triple loop. */
#include "blurd/kernels.h"
#include "test.h"

#include <string.h>

static const char *const set_names[] = {"avx2", "avx512"};

static float *random_floats(size_t n, uint64_t *state)
{
    float *v = malloc(n * sizeof(float) + 1);
    ASSERT(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = test_random_uniform(state, -2.0f, 2.0f);
    return v;
}

TEST_IMPL(kernels_scalar_reference_by_hand)
{
    const struct blurd_kernels *k = blurd_kernels_scalar();
    /* maxpool of a 3x5x1 image: floor semantics drop the last row and column */
    float x[15] = {1, 9, 2, 3, 7, 4, 5, 8, 6, 0, 9, 9, 9, 9, 9};
    float y[2];
    k->maxpool2((struct blurd_kernel_shape){3, 5, 1}, x, y);
    ASSERT_NEAR(y[0], 9.0f, 0);
    ASSERT_NEAR(y[1], 8.0f, 0);

    float row[4] = {-1.0f, 0.5f, 2.0f, -3.0f};
    float bias[2] = {0.25f, -1.0f};
    k->bias_relu(2, 2, bias, row);
    ASSERT_NEAR(row[0], 0.0f, 0);
    ASSERT_NEAR(row[1], 0.0f, 0);
    ASSERT_NEAR(row[2], 2.25f, 0);
    ASSERT_NEAR(row[3], 0.0f, 0);

    float logits[2] = {1.0f, 3.0f};
    k->softmax(1, 2, logits);
    ASSERT_NEAR(logits[1], 1.0 / (1.0 + exp(-2.0)), 1e-6);
    ASSERT_NEAR(logits[0] + logits[1], 1.0, 1e-6);

    /* im2col of a 3x3x2 image with k=2: row 0 is the top-left 2x2 window, channels inner */
    float img[18];
    for (int i = 0; i < 18; i++)
        img[i] = (float)i;
    float columns[4 * 8];
    k->im2col((struct blurd_kernel_shape){3, 3, 2}, 2, 0, 4, img, columns);
    const float expected_row3[8] = {8, 9, 10, 11, 14, 15, 16, 17};
    ASSERT(memcmp(columns + 3 * 8, expected_row3, sizeof expected_row3) == 0);
    /* a range: rows 3..3 alone land at the start */
    k->im2col((struct blurd_kernel_shape){3, 3, 2}, 2, 3, 1, img, columns);
    ASSERT(memcmp(columns, expected_row3, sizeof expected_row3) == 0);

    uint8_t bytes[3] = {0, 128, 255};
    float converted[3];
    k->u8_to_float(3, bytes, converted, 1.0f / 255.0f);
    ASSERT_NEAR(converted[2], 1.0, 1e-7);
    ASSERT_NEAR(converted[1], 128.0 / 255.0, 1e-7);
    return 0;
}

TEST_IMPL(kernels_simd_match_scalar_on_odd_shapes)
{
    const struct blurd_kernels *ref = blurd_kernels_scalar();
    uint64_t state = 42;
    int tested = 0;
    for (size_t s = 0; s < sizeof set_names / sizeof set_names[0]; s++) {
        const struct blurd_kernels *k = blurd_kernels_by_name(set_names[s]);
        if (k == NULL) {
            fprintf(stderr, "kernel set %s not supported here, skipped\n", set_names[s]);
            continue;
        }
        tested++;
        const size_t lengths[] = {1, 7, 15, 16, 17, 31, 33, 1001};
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            size_t n = lengths[li];
            uint8_t *bytes = malloc(n);
            for (size_t i = 0; i < n; i++)
                bytes[i] = (uint8_t)test_random_next(&state);
            float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
            k->u8_to_float(n, bytes, a, 1.0f / 255.0f);
            ref->u8_to_float(n, bytes, b, 1.0f / 255.0f);
            ASSERT(test_normalised_error(a, b, n) <= 1e-7);
            free(bytes);
            free(a);
            free(b);
        }
        const size_t channel_counts[] = {1, 3, 17, 32, 37, 250};
        for (size_t ci = 0; ci < sizeof channel_counts / sizeof channel_counts[0]; ci++) {
            size_t ch = channel_counts[ci], rows = 13, n = rows * ch;
            float *bias = random_floats(ch, &state);
            float *x = random_floats(n, &state);
            float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
            memcpy(a, x, n * sizeof(float));
            memcpy(b, x, n * sizeof(float));
            k->bias_relu(rows, ch, bias, a);
            ref->bias_relu(rows, ch, bias, b);
            ASSERT(test_normalised_error(a, b, n) == 0.0);
            memcpy(a, x, n * sizeof(float));
            memcpy(b, x, n * sizeof(float));
            k->bias_add(rows, ch, bias, a);
            ref->bias_add(rows, ch, bias, b);
            ASSERT(test_normalised_error(a, b, n) == 0.0);

            struct blurd_kernel_shape shape = {7, 9, (int)ch};
            size_t in_n = 7 * 9 * ch, out_n = 3 * 4 * ch;
            float *img = random_floats(in_n, &state);
            float *pa = malloc(out_n * sizeof(float)), *pb = malloc(out_n * sizeof(float));
            k->maxpool2(shape, img, pa);
            ref->maxpool2(shape, img, pb);
            ASSERT(test_normalised_error(pa, pb, out_n) == 0.0);

            size_t col_n = 5 * 7 * 9 * ch;
            float *ca = malloc(col_n * sizeof(float)), *cb = malloc(col_n * sizeof(float));
            k->im2col(shape, 3, 0, 35, img, ca);
            ref->im2col(shape, 3, 0, 35, img, cb);
            ASSERT(memcmp(ca, cb, col_n * sizeof(float)) == 0);
            /* an odd range in the middle */
            k->im2col(shape, 3, 11, 13, img, ca);
            ref->im2col(shape, 3, 11, 13, img, cb);
            ASSERT(memcmp(ca, cb, 13 * 9 * ch * sizeof(float)) == 0);
            free(bias), free(x), free(a), free(b), free(img), free(pa), free(pb), free(ca),
                free(cb);
        }
        float logits[3 * 5], logits_ref[3 * 5];
        for (int i = 0; i < 15; i++)
            logits[i] = logits_ref[i] = test_random_uniform(&state, -30.0f, 30.0f);
        k->softmax(3, 5, logits);
        ref->softmax(3, 5, logits_ref);
        ASSERT(test_normalised_error(logits, logits_ref, 15) <= 1e-6);
    }
    fprintf(stderr, "compared %d SIMD kernel set(s); chosen here: %s\n", tested,
            blurd_kernels_get()->name);
    return 0;
}

TEST_IMPL(kernels_gemm_matches_naive_product)
{
    uint64_t state = 7;
    const int m = 13, n = 11, k = 17;
    float *a = random_floats((size_t)m * k, &state);
    float *b = random_floats((size_t)k * n, &state);
    float c[13 * 11], expected[13 * 11];
    for (int transpose = 0; transpose < 4; transpose++) {
        int ta = transpose & 1, tb = transpose >> 1;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double sum = 0.0;
                for (int p = 0; p < k; p++) {
                    float av = ta ? a[p * m + i] : a[i * k + p];
                    float bv = tb ? b[j * k + p] : b[p * n + j];
                    sum += (double)av * (double)bv;
                }
                expected[i * n + j] = (float)(0.5 * sum + 2.0);
                c[i * n + j] = 1.0f;
            }
        blurd_gemm(ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n, 2.0f, c, n);
        ASSERT(test_normalised_error(c, expected, (size_t)m * n) <= 1e-5);
    }
    free(a);
    free(b);
    return 0;
}

TEST_IMPL(kernels_backward_scalar_reference_by_hand)
{
    const struct blurd_kernels *k = blurd_kernels_scalar();

    float y[4] = {-1.0f, 0.0f, 2.0f, 3.0f}, dy[4] = {5.0f, 6.0f, 7.0f, 8.0f};
    k->relu_backward(4, y, dy);
    ASSERT(dy[0] == 0.0f && dy[1] == 0.0f && dy[2] == 7.0f && dy[3] == 8.0f);

    /* the 3x5x1 image of the forward test: maxima 9 at (0,1) and 8 at (1,2); the last row
     * and column, dropped by floor semantics, get zeros like every other position */
    float x[15] = {1, 9, 2, 3, 7, 4, 5, 8, 6, 0, 9, 9, 9, 9, 9};
    float pooled_grad[2] = {10.0f, 20.0f}, dx[15];
    for (int i = 0; i < 15; i++)
        dx[i] = NAN;
    k->maxpool2_backward((struct blurd_kernel_shape){3, 5, 1}, x, pooled_grad, dx);
    for (int i = 0; i < 15; i++)
        ASSERT_NEAR(dx[i], i == 1 ? 10.0f : i == 7 ? 20.0f : 0.0f, 0);
    /* a tie goes to the first maximum in row-major order, as the forward pass takes it */
    float tie[8] = {1, 3, 3, 0,
                    3, 3, 3, 2}; /* 2x2x2: channel 0 ties three ways, channel 1 two ways */
    float tie_grad[2] = {1.0f, 2.0f}, tie_dx[8];
    k->maxpool2_backward((struct blurd_kernel_shape){2, 2, 2}, tie, tie_grad, tie_dx);
    const float expected_tie[8] = {0, 2, 1, 0, 0, 0, 0, 0};
    ASSERT(memcmp(tie_dx, expected_tie, sizeof tie_dx) == 0);

    /* col2im of all-ones columns counts how many 2x2 windows cover each pixel of a 3x3x2
     * image: corners 1, edges 2, the centre 4 */
    float ones[4 * 8], counts[18] = {0};
    for (int i = 0; i < 32; i++)
        ones[i] = 1.0f;
    k->col2im((struct blurd_kernel_shape){3, 3, 2}, 2, 0, 4, ones, counts);
    const float expected_counts[9] = {1, 2, 1, 2, 4, 2, 1, 2, 1};
    for (int p = 0; p < 9; p++)
        for (int c = 0; c < 2; c++)
            ASSERT_NEAR(counts[p * 2 + c], expected_counts[p], 0);
    /* a range accumulates onto what is there: row 3 alone adds the bottom-right window */
    k->col2im((struct blurd_kernel_shape){3, 3, 2}, 2, 3, 1, ones, counts);
    ASSERT_NEAR(counts[4 * 2], 5.0f, 0);
    ASSERT_NEAR(counts[8 * 2 + 1], 2.0f, 0);
    ASSERT_NEAR(counts[0], 1.0f, 0);

    float rows[6] = {1, 2, 3, 4, 5, 6}, db[2] = {0.5f, -1.0f};
    k->bias_gradient(3, 2, rows, db);
    ASSERT_NEAR(db[0], 9.5f, 0);
    ASSERT_NEAR(db[1], 11.0f, 0);

    /* dropout at rate 0.25 keeps about 3/4, scaled by 4/3; threshold 0 keeps everything */
    enum { N = 100000 };
    float *values = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        values[i] = 3.0f;
    k->dropout(N, 12345, 1u << 30, 4.0f / 3.0f, values);
    int kept = 0;
    for (int i = 0; i < N; i++) {
        ASSERT(values[i] == 0.0f || values[i] == 4.0f);
        kept += values[i] != 0.0f;
    }
    ASSERT_NEAR((double)kept / N, 0.75, 0.01);
    k->dropout(N, 999, 0, 1.0f, values);
    int still = 0;
    for (int i = 0; i < N; i++)
        still += values[i] != 0.0f;
    ASSERT_INT_EQ(still, kept);
    /* another key, another mask: the two agree about as often as independent masks do */
    for (int i = 0; i < N; i++)
        values[i] = 1.0f;
    k->dropout(N, 12346, 1u << 31, 1.0f, values);
    float *again = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        again[i] = 1.0f;
    k->dropout(N, 12345, 1u << 31, 1.0f, again);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += values[i] == again[i];
    ASSERT_NEAR((double)same / N, 0.5, 0.01);
    free(values);
    free(again);

    /* col2im is im2col's adjoint: <im2col(x), C> = <x, col2im(C)> for a row range */
    uint64_t state = 11;
    struct blurd_kernel_shape shape = {7, 9, 3};
    size_t first = 5, count = 20, row_length = 3 * 3 * 3;
    float *image = random_floats(7 * 9 * 3, &state);
    float *columns = random_floats(count * row_length, &state);
    float *unrolled = malloc(count * row_length * sizeof(float));
    float *back = calloc(7 * 9 * 3, sizeof(float));
    k->im2col(shape, 3, first, count, image, unrolled);
    k->col2im(shape, 3, first, count, columns, back);
    double left = 0.0, right = 0.0;
    for (size_t i = 0; i < count * row_length; i++)
        left += (double)unrolled[i] * (double)columns[i];
    for (size_t i = 0; i < 7 * 9 * 3; i++)
        right += (double)image[i] * (double)back[i];
    ASSERT_NEAR(left, right, 1e-5 * fabs(left));
    free(image);
    free(columns);
    free(unrolled);
    free(back);
    return 0;
}

/* Each of n floats quantised to a quarter in [-1, 1], so 2x2 windows often hold ties. */
static float *tied_floats(size_t n, uint64_t *state)
{
    float *v = malloc(n * sizeof(float) + 1);
    ASSERT(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(int)(test_random_uniform(state, -4.0f, 4.0f)) / 4.0f;
    return v;
}

TEST_IMPL(kernels_backward_simd_match_scalar_on_odd_shapes)
{
    const struct blurd_kernels *ref = blurd_kernels_scalar();
    uint64_t state = 43;
    int tested = 0;
    for (size_t s = 0; s < sizeof set_names / sizeof set_names[0]; s++) {
        const struct blurd_kernels *k = blurd_kernels_by_name(set_names[s]);
        if (k == NULL) {
            fprintf(stderr, "kernel set %s not supported here, skipped\n", set_names[s]);
            continue;
        }
        tested++;
        const size_t lengths[] = {1, 7, 15, 16, 17, 31, 33, 1001};
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            size_t n = lengths[li];
            float *y = tied_floats(n, &state), *values = random_floats(n, &state);
            float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
            memcpy(a, values, n * sizeof(float));
            memcpy(b, values, n * sizeof(float));
            k->relu_backward(n, y, a);
            ref->relu_backward(n, y, b);
            ASSERT(memcmp(a, b, n * sizeof(float)) == 0);
            uint64_t key = test_random_next(&state);
            uint32_t threshold = (uint32_t)test_random_next(&state);
            memcpy(a, values, n * sizeof(float));
            memcpy(b, values, n * sizeof(float));
            k->dropout(n, key, threshold, 1.7f, a);
            ref->dropout(n, key, threshold, 1.7f, b);
            ASSERT(memcmp(a, b, n * sizeof(float)) == 0);
            free(y), free(values), free(a), free(b);
        }
        const size_t channel_counts[] = {1, 3, 17, 32, 37, 250};
        for (size_t ci = 0; ci < sizeof channel_counts / sizeof channel_counts[0]; ci++) {
            size_t ch = channel_counts[ci];
            /* odd and even sides, so the dropped row and column are covered */
            const struct blurd_kernel_shape shapes[] = {
                {7, 9, (int)ch}, {6, 8, (int)ch}, {5, 4, (int)ch}};
            for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                struct blurd_kernel_shape shape = shapes[si];
                size_t in_n = (size_t)shape.height * shape.width * ch;
                size_t out_n = (size_t)(shape.height / 2) * (shape.width / 2) * ch;
                float *x = tied_floats(in_n, &state), *g = random_floats(out_n, &state);
                float *a = malloc(in_n * sizeof(float)), *b = malloc(in_n * sizeof(float));
                for (size_t i = 0; i < in_n; i++)
                    a[i] = b[i] = NAN; /* every position must be written */
                k->maxpool2_backward(shape, x, g, a);
                ref->maxpool2_backward(shape, x, g, b);
                ASSERT(memcmp(a, b, in_n * sizeof(float)) == 0);
                free(x), free(g), free(a), free(b);
            }

            struct blurd_kernel_shape shape = {7, 9, (int)ch};
            size_t in_n = 7 * 9 * ch, row_length = 3 * 3 * ch;
            float *start = random_floats(in_n, &state);
            float *columns = random_floats(35 * row_length, &state);
            float *a = malloc(in_n * sizeof(float)), *b = malloc(in_n * sizeof(float));
            memcpy(a, start, in_n * sizeof(float));
            memcpy(b, start, in_n * sizeof(float));
            k->col2im(shape, 3, 0, 35, columns, a);
            ref->col2im(shape, 3, 0, 35, columns, b);
            ASSERT(memcmp(a, b, in_n * sizeof(float)) == 0);
            /* an odd range in the middle, accumulating onto the last result */
            k->col2im(shape, 3, 11, 13, columns, a);
            ref->col2im(shape, 3, 11, 13, columns, b);
            ASSERT(memcmp(a, b, in_n * sizeof(float)) == 0);

            size_t rows = 13;
            float *dy = random_floats(rows * ch, &state);
            memcpy(a, start, ch * sizeof(float));
            memcpy(b, start, ch * sizeof(float));
            k->bias_gradient(rows, ch, dy, a);
            ref->bias_gradient(rows, ch, dy, b);
            ASSERT(memcmp(a, b, ch * sizeof(float)) == 0);
            free(start), free(columns), free(a), free(b), free(dy);
        }
    }
    fprintf(stderr, "compared %d SIMD kernel set(s) on the backward kernels\n", tested);
    return 0;
}
