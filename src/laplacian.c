/* laplacian.c - the variance of the Laplacian: the classical blur score, computed on a grey
 * image of at most BLURD_LAPLACIAN_SIDE pixels on the long side.
 *
 * Expected workload: one call per photo from the pipeline's workers; at 1024 x 768 the
 * arithmetic is about a millisecond, far below the decode, so the loop is kept plain
 * (the compiler vectorises it) and exact. */
#include "blurd/laplacian.h"

#include "blurd/error.h"

#include <stdlib.h>

double blurd_laplacian_variance(const uint8_t *grey, int width, int height)
{
    if (grey == NULL || width < 3 || height < 3)
        return 0.0;
    size_t w = (size_t)width;
    /* Each response is within [-1020, 1020]: 64-bit sums are exact for any image libvips
     * would decode (2^63 / 1020^2 is far above the largest pixel count). */
    int64_t sum = 0;
    uint64_t sum_squares = 0;
    for (int y = 1; y < height - 1; y++) {
        const uint8_t *above = grey + (size_t)(y - 1) * w;
        const uint8_t *row = above + w;
        const uint8_t *below = row + w;
        int64_t row_sum = 0;
        uint64_t row_squares = 0;
        for (size_t x = 1; x < w - 1; x++) {
            int response = above[x] + below[x] + row[x - 1] + row[x + 1] - 4 * (int)row[x];
            row_sum += response;
            row_squares += (uint64_t)(response * response);
        }
        sum += row_sum;
        sum_squares += row_squares;
    }
    double n = (double)(width - 2) * (double)(height - 2);
    double mean = (double)sum / n;
    double variance = (double)sum_squares / n - mean * mean;
    /* Rounding can take a perfectly flat image a hair below zero. */
    return variance > 0.0 ? variance : 0.0;
}

int blurd_laplacian_score_file(const char *path, uint64_t max_pixels, uint8_t *work,
                               double *variance, struct blurd_image_info *info, char *err)
{
    struct blurd_image_info local;
    if (info == NULL)
        info = &local;
    if (variance == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_laplacian_score_file: NULL argument");
    *variance = 0.0;
    uint8_t *buffer = work != NULL ? work : malloc(BLURD_LAPLACIAN_WORK_BYTES);
    if (buffer == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory for the grey image",
                               path != NULL ? path : "(null)");
    int width = 0, height = 0;
    int rc = blurd_image_load_grey(path, BLURD_LAPLACIAN_SIDE, max_pixels, buffer,
                                   BLURD_LAPLACIAN_WORK_BYTES, &width, &height, info, err);
    if (rc == 0)
        *variance = blurd_laplacian_variance(buffer, width, height);
    if (buffer != work)
        free(buffer);
    return rc;
}
