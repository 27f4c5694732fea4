/* kernels.c - the scalar reference kernels, the run-time choice among kernel sets, and the
 * single GEMM wrapper.  The scalar set is written for clarity, not speed: it is what the
 * SIMD sets are tested against, and what runs on CPUs without AVX2. */
#include "blurd/kernels.h"

#include "kernels_internal.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void scalar_u8_to_float(size_t n, const uint8_t *restrict x, float *restrict y, float scale)
{
    for (size_t i = 0; i < n; i++)
        y[i] = (float)x[i] * scale;
}

static void scalar_bias_relu(size_t rows, size_t channels, const float *restrict bias,
                             float *restrict y)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < channels; c++) {
            float v = y[r * channels + c] + bias[c];
            y[r * channels + c] = v > 0.0f ? v : 0.0f;
        }
}

static void scalar_bias_add(size_t rows, size_t channels, const float *restrict bias,
                            float *restrict y)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < channels; c++)
            y[r * channels + c] += bias[c];
}

static void scalar_maxpool2(struct blurd_kernel_shape in, const float *restrict x,
                            float *restrict y)
{
    int out_h = in.height / 2, out_w = in.width / 2, ch = in.channels;
    for (int oy = 0; oy < out_h; oy++)
        for (int ox = 0; ox < out_w; ox++)
            for (int c = 0; c < ch; c++) {
                float best = -INFINITY;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        float v = x[((size_t)(2 * oy + dy) * in.width + (2 * ox + dx)) * ch + c];
                        if (v > best)
                            best = v;
                    }
                y[((size_t)oy * out_w + ox) * ch + c] = best;
            }
}

static void scalar_im2col(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                          const float *restrict x, float *restrict columns)
{
    int out_w = in.width - k + 1, ch = in.channels;
    size_t row_length = (size_t)k * k * ch;
    for (size_t p = first; p < first + count; p++) {
        int oy = (int)(p / (size_t)out_w), ox = (int)(p % (size_t)out_w);
        float *row = columns + (p - first) * row_length;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int c = 0; c < ch; c++)
                    row[((size_t)ky * k + kx) * ch + c] =
                        x[((size_t)(oy + ky) * in.width + (ox + kx)) * ch + c];
    }
}

void blurd_kernels_softmax_rows(size_t rows, size_t n, float *restrict y)
{
    /* Rows are short (one per class), so the exponentials dominate and a vector body
     * would gain nothing; every kernel set shares this one. */
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * n;
        float top = row[0];
        for (size_t i = 1; i < n; i++)
            if (row[i] > top)
                top = row[i];
        float sum = 0.0f;
        for (size_t i = 0; i < n; i++) {
            row[i] = expf(row[i] - top);
            sum += row[i];
        }
        for (size_t i = 0; i < n; i++)
            row[i] /= sum;
    }
}

void blurd_kernels_im2col_copy(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                               const float *restrict x, float *restrict columns)
{
    /* In NHWC the k inputs under one kernel row are k*channels contiguous floats, so each
     * im2col row is k block copies; memcpy is already vectorised by the C library. */
    size_t out_w = (size_t)(in.width - k + 1);
    size_t run = (size_t)k * in.channels, row_length = run * k;
    for (size_t p = first; p < first + count; p++) {
        size_t oy = p / out_w, ox = p % out_w;
        float *row = columns + (p - first) * row_length;
        for (int ky = 0; ky < k; ky++)
            memcpy(row + ky * run, x + ((oy + (size_t)ky) * (size_t)in.width + ox) * in.channels,
                   run * sizeof(float));
    }
}

static void scalar_relu_backward(size_t n, const float *restrict y, float *restrict dy)
{
    for (size_t i = 0; i < n; i++)
        if (!(y[i] > 0.0f))
            dy[i] = 0.0f;
}

static void scalar_maxpool2_backward(struct blurd_kernel_shape in, const float *restrict x,
                                     const float *restrict dy, float *restrict dx)
{
    int out_h = in.height / 2, out_w = in.width / 2, ch = in.channels;
    memset(dx, 0, (size_t)in.height * in.width * ch * sizeof(float));
    for (int oy = 0; oy < out_h; oy++)
        for (int ox = 0; ox < out_w; ox++)
            for (int c = 0; c < ch; c++) {
                /* a strict comparison keeps the first maximum, as the forward pass found it */
                size_t best = ((size_t)(2 * oy) * in.width + (size_t)(2 * ox)) * ch + c;
                for (int wy = 0; wy < 2; wy++)
                    for (int wx = 0; wx < 2; wx++) {
                        size_t at = ((size_t)(2 * oy + wy) * in.width + (2 * ox + wx)) * ch + c;
                        if (x[at] > x[best])
                            best = at;
                    }
                dx[best] = dy[((size_t)oy * out_w + ox) * ch + c];
            }
}

static void scalar_col2im(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                          const float *restrict columns, float *restrict dx)
{
    int out_w = in.width - k + 1, ch = in.channels;
    size_t row_length = (size_t)k * k * ch;
    for (size_t p = first; p < first + count; p++) {
        int oy = (int)(p / (size_t)out_w), ox = (int)(p % (size_t)out_w);
        const float *row = columns + (p - first) * row_length;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
                for (int c = 0; c < ch; c++)
                    dx[((size_t)(oy + ky) * in.width + (ox + kx)) * ch + c] +=
                        row[((size_t)ky * k + kx) * ch + c];
    }
}

static void scalar_bias_gradient(size_t rows, size_t channels, const float *restrict dy,
                                 float *restrict db)
{
    for (size_t c = 0; c < channels; c++) {
        float sum = db[c];
        for (size_t r = 0; r < rows; r++)
            sum += dy[r * channels + c];
        db[c] = sum;
    }
}

static void scalar_dropout(size_t n, uint64_t key, uint32_t threshold, float scale,
                           float *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = blurd_kernels_dropout_hash(key, (uint32_t)i) >= threshold ? y[i] * scale : 0.0f;
}

static const struct blurd_kernels scalar_kernels = {
    .name = "scalar",
    .u8_to_float = scalar_u8_to_float,
    .bias_relu = scalar_bias_relu,
    .bias_add = scalar_bias_add,
    .maxpool2 = scalar_maxpool2,
    .im2col = scalar_im2col,
    .softmax = blurd_kernels_softmax_rows,
    .relu_backward = scalar_relu_backward,
    .maxpool2_backward = scalar_maxpool2_backward,
    .col2im = scalar_col2im,
    .bias_gradient = scalar_bias_gradient,
    .dropout = scalar_dropout,
};

const struct blurd_kernels *blurd_kernels_scalar(void)
{
    return &scalar_kernels;
}

const struct blurd_kernels *blurd_kernels_by_name(const char *name)
{
    if (strcmp(name, "scalar") == 0)
        return &scalar_kernels;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return &blurd_kernels_avx2;
    if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return &blurd_kernels_avx512;
#endif
    return NULL;
}

static const struct blurd_kernels *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose_kernels(void)
{
    const char *forced = getenv("BLURD_KERNELS");
    if (forced != NULL && blurd_kernels_by_name(forced) != NULL) {
        chosen = blurd_kernels_by_name(forced);
        return;
    }
    static const char *const preference[] = {"avx512", "avx2", "scalar"};
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++) {
        chosen = blurd_kernels_by_name(preference[i]);
        if (chosen != NULL)
            return;
    }
}

const struct blurd_kernels *blurd_kernels_get(void)
{
    pthread_once(&chosen_once, choose_kernels);
    return chosen;
}

void blurd_gemm(int transpose_a, int transpose_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
                transpose_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

void blurd_gemm_set_threads(int threads)
{
    openblas_set_num_threads(threads < 1 ? 1 : threads);
}

int blurd_gemm_get_threads(void)
{
    return openblas_get_num_threads();
}
