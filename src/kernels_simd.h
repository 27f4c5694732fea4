/* kernels_simd.h - the body of one SIMD kernel set, written once over a small vector
 * vocabulary and compiled twice: by kernels_avx2.c (8 floats) and kernels_avx512.c
 * (16 floats).  Each kernel runs its vector body, then a scalar tail. */
#include "kernels_internal.h"

#include <immintrin.h>
#include <math.h>

#if SIMD_WIDTH == 16
typedef __m512 vfloat;
#define vf_load _mm512_loadu_ps
#define vf_store _mm512_storeu_ps
#define vf_set1 _mm512_set1_ps
#define vf_zero _mm512_setzero_ps
#define vf_add _mm512_add_ps
#define vf_mul _mm512_mul_ps
#define vf_max _mm512_max_ps
/* 16 bytes -> 16 int32 -> 16 floats */
#define vf_from_u8(p) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#elif SIMD_WIDTH == 8
typedef __m256 vfloat;
#define vf_load _mm256_loadu_ps
#define vf_store _mm256_storeu_ps
#define vf_set1 _mm256_set1_ps
#define vf_zero _mm256_setzero_ps
#define vf_add _mm256_add_ps
#define vf_mul _mm256_mul_ps
#define vf_max _mm256_max_ps
/* 8 bytes -> 8 int32 -> 8 floats */
#define vf_from_u8(p) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#else
#error "SIMD_WIDTH must be 8 or 16"
#endif

static void simd_u8_to_float(size_t n, const uint8_t *restrict x, float *restrict y, float scale)
{
    vfloat s = vf_set1(scale);
    size_t i = 0;
    for (; i + SIMD_WIDTH <= n; i += SIMD_WIDTH)
        vf_store(y + i, vf_mul(vf_from_u8(x + i), s));
    for (; i < n; i++)
        y[i] = (float)x[i] * scale;
}

static void simd_bias_relu(size_t rows, size_t channels, const float *restrict bias,
                           float *restrict y)
{
    vfloat zero = vf_zero();
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * channels;
        size_t c = 0;
        for (; c + SIMD_WIDTH <= channels; c += SIMD_WIDTH)
            vf_store(row + c, vf_max(vf_add(vf_load(row + c), vf_load(bias + c)), zero));
        for (; c < channels; c++) {
            float v = row[c] + bias[c];
            row[c] = v > 0.0f ? v : 0.0f;
        }
    }
}

static void simd_bias_add(size_t rows, size_t channels, const float *restrict bias,
                          float *restrict y)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = y + r * channels;
        size_t c = 0;
        for (; c + SIMD_WIDTH <= channels; c += SIMD_WIDTH)
            vf_store(row + c, vf_add(vf_load(row + c), vf_load(bias + c)));
        for (; c < channels; c++)
            row[c] += bias[c];
    }
}

static void simd_maxpool2(struct blurd_kernel_shape in, const float *restrict x,
                          float *restrict y)
{
    int out_h = in.height / 2, out_w = in.width / 2;
    size_t ch = (size_t)in.channels, stride = (size_t)in.width * ch;
    for (int oy = 0; oy < out_h; oy++)
        for (int ox = 0; ox < out_w; ox++) {
            const float *a = x + (size_t)(2 * oy) * stride + (size_t)(2 * ox) * ch;
            const float *b = a + ch, *c2 = a + stride, *d = c2 + ch;
            float *out = y + ((size_t)oy * out_w + ox) * ch;
            size_t c = 0;
            for (; c + SIMD_WIDTH <= ch; c += SIMD_WIDTH)
                vf_store(out + c, vf_max(vf_max(vf_load(a + c), vf_load(b + c)),
                                         vf_max(vf_load(c2 + c), vf_load(d + c))));
            for (; c < ch; c++) {
                float m = fmaxf(fmaxf(a[c], b[c]), fmaxf(c2[c], d[c]));
                out[c] = m;
            }
        }
}

const struct blurd_kernels SIMD_SET_NAME = {
    .name = SIMD_NAME_STRING,
    .u8_to_float = simd_u8_to_float,
    .bias_relu = simd_bias_relu,
    .bias_add = simd_bias_add,
    .maxpool2 = simd_maxpool2,
    .im2col = blurd_kernels_im2col_copy,
    .softmax = blurd_kernels_softmax_rows,
};
