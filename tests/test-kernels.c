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
