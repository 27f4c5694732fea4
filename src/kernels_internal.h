/* kernels_internal.h - what the kernel-set files share with kernels.c; not a public API. */
#ifndef BLURD_KERNELS_INTERNAL_H
#define BLURD_KERNELS_INTERNAL_H

#include "blurd/kernels.h"

#include <stdint.h>

#if defined(__x86_64__)
extern const struct blurd_kernels blurd_kernels_avx2;
extern const struct blurd_kernels blurd_kernels_avx512;
#endif

/* Shared by every set: see kernels.c for why these need no per-ISA body. */
void blurd_kernels_softmax_rows(size_t rows, size_t n, float *restrict y);
void blurd_kernels_im2col_copy(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                               const float *restrict x, float *restrict columns);

/* The integer hash behind dropout's mask (Chris Wellons' "lowbias32", a bijection on 32 bits
 * with low bias): cheap in vector registers, where its multiplies are 32-bit lane products.
 * The SIMD sets compute the same function lane by lane. */
static inline uint32_t blurd_kernels_hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* keep(key, i) of dropout: two rounds, so both halves of the 64-bit key reach every bit. */
static inline uint32_t blurd_kernels_dropout_hash(uint64_t key, uint32_t i)
{
    return blurd_kernels_hash32(blurd_kernels_hash32(i + (uint32_t)key) ^ (uint32_t)(key >> 32));
}

#endif
