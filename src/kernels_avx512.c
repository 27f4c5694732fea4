/* kernels_avx512.c - the kernel set for AVX-512 (F, BW, DQ, VL) CPUs, chosen at run time
 * only where the CPU has them. */
#if defined(__x86_64__)
#define SIMD_WIDTH       16
#define SIMD_SET_NAME    blurd_kernels_avx512
#define SIMD_NAME_STRING "avx512"
#include "kernels_simd.h"
#else
typedef int blurd_kernels_avx512_unused; /* ISO C wants a non-empty translation unit */
#endif
