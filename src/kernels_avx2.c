/* kernels_avx2.c - the kernel set for AVX2 + FMA CPUs (built with -mavx2 -mfma; chosen at
 * run time only where the CPU has them). */
#if defined(__x86_64__)
#define SIMD_WIDTH       8
#define SIMD_SET_NAME    blurd_kernels_avx2
#define SIMD_NAME_STRING "avx2"
#include "kernels_simd.h"
#else
typedef int blurd_kernels_avx2_unused; /* ISO C wants a non-empty translation unit */
#endif
