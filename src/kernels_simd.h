/* kernels_simd.h - the body of one SIMD kernel set, written once over a small vector
 * vocabulary and compiled twice: by kernels_avx2.c (8 floats) and kernels_avx512.c
 * (16 floats).  Each kernel runs its vector body, then a scalar tail. */
#include "kernels_internal.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#if SIMD_WIDTH == 16
typedef __m512 vfloat;
typedef __m512i vint;    /* 32-bit lanes */
typedef __mmask16 vmask; /* one bit per lane */
#define vf_load  _mm512_loadu_ps
#define vf_store _mm512_storeu_ps
#define vf_set1  _mm512_set1_ps
#define vf_zero  _mm512_setzero_ps
#define vf_add   _mm512_add_ps
#define vf_mul   _mm512_mul_ps
#define vf_max   _mm512_max_ps
/* 16 bytes -> 16 int32 -> 16 floats */
#define vf_from_u8(p) \
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define vf_masked(m, v) _mm512_maskz_mov_ps((m), (v)) /* v where m, else 0 */
#define vm_eq(a, b)     _mm512_cmp_ps_mask((a), (b), _CMP_EQ_OQ)
#define vm_gt(a, b)     _mm512_cmp_ps_mask((a), (b), _CMP_GT_OQ)
#define vm_or(a, b)     ((vmask)((a) | (b)))
#define vm_andnot(a, b) ((vmask)(~(a) & (b))) /* b and not a */
#define vi_set1         _mm512_set1_epi32
#define vi_add          _mm512_add_epi32
#define vi_xor          _mm512_xor_si512
#define vi_mul          _mm512_mullo_epi32
#define vi_srl          _mm512_srli_epi32
#define vi_iota()       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define vm_ge_u32(a, b) _mm512_cmp_epu32_mask((a), (b), _MM_CMPINT_NLT)
#elif SIMD_WIDTH == 8
typedef __m256 vfloat;
typedef __m256i vint; /* 32-bit lanes */
typedef __m256 vmask; /* all ones or all zeros per lane */
#define vf_load  _mm256_loadu_ps
#define vf_store _mm256_storeu_ps
#define vf_set1  _mm256_set1_ps
#define vf_zero  _mm256_setzero_ps
#define vf_add   _mm256_add_ps
#define vf_mul   _mm256_mul_ps
#define vf_max   _mm256_max_ps
                      /* 8 bytes -> 8 int32 -> 8 floats */
#define vf_from_u8(p) \
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#define vf_masked(m, v) _mm256_and_ps((m), (v)) /* v where m, else 0 */
#define vm_eq(a, b)     _mm256_cmp_ps((a), (b), _CMP_EQ_OQ)
#define vm_gt(a, b)     _mm256_cmp_ps((a), (b), _CMP_GT_OQ)
#define vm_or           _mm256_or_ps
#define vm_andnot       _mm256_andnot_ps /* b and not a */
#define vi_set1         _mm256_set1_epi32
#define vi_add          _mm256_add_epi32
#define vi_xor          _mm256_xor_si256
#define vi_mul          _mm256_mullo_epi32
#define vi_srl          _mm256_srli_epi32
#define vi_iota()       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
                      /* AVX2 has no unsigned compare: a >= b exactly when max(a, b) == a */
#define vm_ge_u32(a, b) _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32((a), (b)), (a)))
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

static void simd_maxpool2(struct blurd_kernel_shape in, const float *restrict x, float *restrict y)
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

static void simd_relu_backward(size_t n, const float *restrict y, float *restrict dy)
{
    vfloat zero = vf_zero();
    size_t i = 0;
    for (; i + SIMD_WIDTH <= n; i += SIMD_WIDTH)
        vf_store(dy + i, vf_masked(vm_gt(vf_load(y + i), zero), vf_load(dy + i)));
    for (; i < n; i++)
        if (!(y[i] > 0.0f))
            dy[i] = 0.0f;
}

static void simd_maxpool2_backward(struct blurd_kernel_shape in, const float *restrict x,
                                   const float *restrict dy, float *restrict dx)
{
    int out_h = in.height / 2, out_w = in.width / 2;
    size_t ch = (size_t)in.channels, stride = (size_t)in.width * ch;
    for (int oy = 0; oy < out_h; oy++) {
        for (int ox = 0; ox < out_w; ox++) {
            size_t at = (size_t)(2 * oy) * stride + (size_t)(2 * ox) * ch;
            const float *a = x + at, *b = a + ch, *c2 = a + stride, *d = c2 + ch;
            float *ga = dx + at, *gb = ga + ch, *gc = ga + stride, *gd = gc + ch;
            const float *g = dy + ((size_t)oy * out_w + ox) * ch;
            size_t c = 0;
            for (; c + SIMD_WIDTH <= ch; c += SIMD_WIDTH) {
                vfloat va = vf_load(a + c), vb = vf_load(b + c), vc = vf_load(c2 + c),
                       vd = vf_load(d + c), vg = vf_load(g + c);
                vfloat m = vf_max(vf_max(va, vb), vf_max(vc, vd));
                /* each window position takes dy only if no earlier position holds the max */
                vmask ka = vm_eq(va, m);
                vmask kb = vm_andnot(ka, vm_eq(vb, m));
                vmask taken = vm_or(ka, kb);
                vmask kc = vm_andnot(taken, vm_eq(vc, m));
                vmask kd = vm_andnot(vm_or(taken, kc), vm_eq(vd, m));
                vf_store(ga + c, vf_masked(ka, vg));
                vf_store(gb + c, vf_masked(kb, vg));
                vf_store(gc + c, vf_masked(kc, vg));
                vf_store(gd + c, vf_masked(kd, vg));
            }
            for (; c < ch; c++) {
                const float *window[4] = {a + c, b + c, c2 + c, d + c};
                float *grad[4] = {ga + c, gb + c, gc + c, gd + c};
                int best = 0;
                for (int w = 1; w < 4; w++)
                    if (*window[w] > *window[best])
                        best = w;
                for (int w = 0; w < 4; w++)
                    *grad[w] = w == best ? g[c] : 0.0f;
            }
        }
        if (in.width % 2 != 0) { /* the column floor semantics dropped */
            size_t last = (size_t)(2 * oy) * stride + (size_t)(in.width - 1) * ch;
            memset(dx + last, 0, ch * sizeof(float));
            memset(dx + last + stride, 0, ch * sizeof(float));
        }
    }
    if (in.height % 2 != 0) /* the row floor semantics dropped */
        memset(dx + (size_t)(in.height - 1) * stride, 0, stride * sizeof(float));
}

static void simd_col2im(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                        const float *restrict columns, float *restrict dx)
{
    /* As in im2col, the k inputs under one kernel row are k*channels contiguous floats. */
    size_t out_w = (size_t)(in.width - k + 1);
    size_t run = (size_t)k * in.channels, row_length = run * k;
    for (size_t p = first; p < first + count; p++) {
        size_t oy = p / out_w, ox = p % out_w;
        const float *row = columns + (p - first) * row_length;
        for (int ky = 0; ky < k; ky++) {
            float *to = dx + ((oy + (size_t)ky) * (size_t)in.width + ox) * in.channels;
            const float *from = row + ky * run;
            size_t i = 0;
            for (; i + SIMD_WIDTH <= run; i += SIMD_WIDTH)
                vf_store(to + i, vf_add(vf_load(to + i), vf_load(from + i)));
            for (; i < run; i++)
                to[i] += from[i];
        }
    }
}

static void simd_bias_gradient(size_t rows, size_t channels, const float *restrict dy,
                               float *restrict db)
{
    /* Four vector accumulators per pass over the rows; each lane adds its rows in order, as
     * the scalar reference does, so the sums agree bit for bit. */
    size_t c = 0;
    for (; c + 4 * SIMD_WIDTH <= channels; c += 4 * SIMD_WIDTH) {
        vfloat s0 = vf_load(db + c), s1 = vf_load(db + c + SIMD_WIDTH),
               s2 = vf_load(db + c + 2 * SIMD_WIDTH), s3 = vf_load(db + c + 3 * SIMD_WIDTH);
        for (size_t r = 0; r < rows; r++) {
            const float *row = dy + r * channels + c;
            s0 = vf_add(s0, vf_load(row));
            s1 = vf_add(s1, vf_load(row + SIMD_WIDTH));
            s2 = vf_add(s2, vf_load(row + 2 * SIMD_WIDTH));
            s3 = vf_add(s3, vf_load(row + 3 * SIMD_WIDTH));
        }
        vf_store(db + c, s0);
        vf_store(db + c + SIMD_WIDTH, s1);
        vf_store(db + c + 2 * SIMD_WIDTH, s2);
        vf_store(db + c + 3 * SIMD_WIDTH, s3);
    }
    for (; c + SIMD_WIDTH <= channels; c += SIMD_WIDTH) {
        vfloat s = vf_load(db + c);
        for (size_t r = 0; r < rows; r++)
            s = vf_add(s, vf_load(dy + r * channels + c));
        vf_store(db + c, s);
    }
    for (; c < channels; c++) {
        float sum = db[c];
        for (size_t r = 0; r < rows; r++)
            sum += dy[r * channels + c];
        db[c] = sum;
    }
}

static inline vint vi_hash32(vint x)
{
    x = vi_xor(x, vi_srl(x, 16));
    x = vi_mul(x, vi_set1(0x7feb352d));
    x = vi_xor(x, vi_srl(x, 15));
    x = vi_mul(x, vi_set1((int)0x846ca68bU));
    return vi_xor(x, vi_srl(x, 16));
}

static void simd_dropout(size_t n, uint64_t key, uint32_t threshold, float scale, float *restrict y)
{
    /* blurd_kernels_dropout_hash, sixteen or eight indices at a time */
    vint low = vi_set1((int)(uint32_t)key), high = vi_set1((int)(uint32_t)(key >> 32));
    vint limit = vi_set1((int)threshold), step = vi_set1(SIMD_WIDTH), index = vi_iota();
    vfloat s = vf_set1(scale);
    size_t i = 0;
    for (; i + SIMD_WIDTH <= n; i += SIMD_WIDTH) {
        vint h = vi_hash32(vi_xor(vi_hash32(vi_add(index, low)), high));
        vf_store(y + i, vf_masked(vm_ge_u32(h, limit), vf_mul(vf_load(y + i), s)));
        index = vi_add(index, step);
    }
    for (; i < n; i++)
        y[i] = blurd_kernels_dropout_hash(key, (uint32_t)i) >= threshold ? y[i] * scale : 0.0f;
}

const struct blurd_kernels SIMD_SET_NAME = {
    .name = SIMD_NAME_STRING,
    .u8_to_float = simd_u8_to_float,
    .bias_relu = simd_bias_relu,
    .bias_add = simd_bias_add,
    .maxpool2 = simd_maxpool2,
    .im2col = blurd_kernels_im2col_copy,
    .softmax = blurd_kernels_softmax_rows,
    .relu_backward = simd_relu_backward,
    .maxpool2_backward = simd_maxpool2_backward,
    .col2im = simd_col2im,
    .bias_gradient = simd_bias_gradient,
    .dropout = simd_dropout,
};
