/* kernels.h - the network's inner loops (im2col, bias+ReLU, max-pool, softmax, uint8 to
 * float, dropout) and their backward passes, with SIMD variants chosen once from the CPU's
 * features, a scalar reference that is always compiled for the tests, and the one wrapper
 * through which every GEMM goes.
 *
 * All activations are NHWC and contiguous.  Kernels never allocate and never fail;
 * shapes are the caller's responsibility.
 */
#ifndef BLURD_KERNELS_H
#define BLURD_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* One image's NHWC shape as seen by a kernel. */
struct blurd_kernel_shape {
    int height, width, channels;
};

struct blurd_kernels {
    const char *name; /* "avx512", "avx2" or "scalar" */

    /* y[i] = x[i] * scale, for n values. */
    void (*u8_to_float)(size_t n, const uint8_t *restrict x, float *restrict y, float scale);

    /* In place over `rows` rows of `channels` values: y = max(0, y + bias[channel]). */
    void (*bias_relu)(size_t rows, size_t channels, const float *restrict bias, float *restrict y);

    /* In place over `rows` rows of `channels` values: y = y + bias[channel]. */
    void (*bias_add)(size_t rows, size_t channels, const float *restrict bias, float *restrict y);

    /* 2x2 max-pool with stride 2, floor semantics (Keras "valid"), for one image of
     * shape `in`; y has (in.height/2) x (in.width/2) x in.channels values. */
    void (*maxpool2)(struct blurd_kernel_shape in, const float *restrict x, float *restrict y);

    /* im2col for a k x k stride-1 "valid" convolution of one NHWC image, rows
     * [first, first + count) only: row p of the full matrix (p = oy * out_width + ox) holds
     * the k*k*channels inputs under output pixel p in (ky, kx, channel) order, which
     * matches HWIO kernels; `columns` receives `count` such rows.  Computing a range lets
     * the caller keep each chunk small enough to stay in cache for its GEMM. */
    void (*im2col)(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                   const float *restrict x, float *restrict columns);

    /* In place, a numerically stable softmax over each of `rows` rows of n values. */
    void (*softmax)(size_t rows, size_t n, float *restrict y);

    /* ---- backward passes and training ---- */

    /* ReLU's backward pass in place over n values, given the layer's output y:
     * dy[i] = y[i] > 0 ? dy[i] : 0. */
    void (*relu_backward)(size_t n, const float *restrict y, float *restrict dy);

    /* maxpool2's backward pass for one image of shape `in`: writes all of dx (in's shape),
     * routing each dy value to the maximum of its 2x2 window of x (the forward input; the
     * first maximum in row-major order wins a tie) and 0 everywhere else, including the last
     * row or column that floor semantics dropped.  dy has maxpool2's output shape. */
    void (*maxpool2_backward)(struct blurd_kernel_shape in, const float *restrict x,
                              const float *restrict dy, float *restrict dx);

    /* The adjoint of im2col: adds `count` rows of columns, rows [first, first + count) of the
     * full matrix laid out as im2col writes them, back into the image gradient dx (shape `in`)
     * under the k x k window each row came from.  Accumulates: dx is not cleared first. */
    void (*col2im)(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                   const float *restrict columns, float *restrict dx);

    /* Accumulates the column sums of `rows` rows of `channels` values:
     * db[c] += sum over r of dy[r * channels + c], adding the rows in order. */
    void (*bias_gradient)(size_t rows, size_t channels, const float *restrict dy,
                          float *restrict db);

    /* Inverted dropout in place over n < 2^32 values: y[i] = keep(key, i) ? y[i] * scale : 0.
     * keep(key, i) is a fixed hash of (key, i) (kernels_internal.h), at least `threshold` in 32
     * bits, identical in every set: a value is kept with probability 1 - threshold / 2^32.  Being
     * a mask, it is its own backward pass: applying it with the same key to dL/dy gives dL/dx. */
    void (*dropout)(size_t n, uint64_t key, uint32_t threshold, float scale, float *restrict y);
};

/* The fastest set this CPU supports, chosen on the first call (thread-safe); setting
 * BLURD_KERNELS=scalar|avx2|avx512 in the environment forces one (if supported). */
const struct blurd_kernels *blurd_kernels_get(void);

/* The plain C reference, always available. */
const struct blurd_kernels *blurd_kernels_scalar(void);

/* The set called `name`, or NULL if unknown or not supported by this CPU or build. */
const struct blurd_kernels *blurd_kernels_by_name(const char *name);

/* C[m x n] = alpha * op(A) * op(B) + beta * C, row-major, through cblas_sgemm.
 * op(A) is m x k (A is k x m when transpose_a), op(B) is k x n (n x k when transpose_b). */
void blurd_gemm(int transpose_a, int transpose_b, int m, int n, int k, float alpha, const float *a,
                int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Threads OpenBLAS may use for each GEMM issued from now on (process-wide). */
void blurd_gemm_set_threads(int threads);
int blurd_gemm_get_threads(void);

#endif
