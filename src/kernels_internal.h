/* kernels_internal.h - what the kernel-set files share with kernels.c; not a public API. */
#ifndef BLURD_KERNELS_INTERNAL_H
#define BLURD_KERNELS_INTERNAL_H

#include "blurd/kernels.h"

#if defined(__x86_64__)
extern const struct blurd_kernels blurd_kernels_avx2;
extern const struct blurd_kernels blurd_kernels_avx512;
#endif

/* Shared by every set: see kernels.c for why these need no per-ISA body. */
void blurd_kernels_softmax_rows(size_t rows, size_t n, float *restrict y);
void blurd_kernels_im2col_copy(struct blurd_kernel_shape in, int k, size_t first, size_t count,
                               const float *restrict x, float *restrict columns);

#endif
