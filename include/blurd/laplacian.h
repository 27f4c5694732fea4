/* laplacian.h - the classical sharpness measure: the variance of the Laplacian of the grey
 * image, the baseline blurd's network is measured against (`blurd eval --compare
 * laplacian`) and a fast mode that needs no model (`blurd classify --method laplacian`).
 *
 * The Laplacian responds to edges and fine texture; blur removes both, so a blurred photo
 * has a low variance.  Its weakness, and the reason blurd has a network, is that one global
 * threshold cannot serve all scenes: a blurred crop of gravel can score above a sharp
 * photo of a foggy sky.
 *
 * Scale matters (shrinking an image sharpens it), so files are always measured at the same
 * analysis size: decoded with libvips' shrink-on-load so that the long side is at most
 * BLURD_LAPLACIAN_SIDE pixels, never enlarged.  That keeps scores comparable between a
 * web-size image and a 24-megapixel one, and the decode cheap (JPEG DCT scaling).
 */
#ifndef BLURD_LAPLACIAN_H
#define BLURD_LAPLACIAN_H

#include "blurd/image.h"

#include <stddef.h>
#include <stdint.h>

/* The long side, in pixels, of the grey image a file is measured on. */
#define BLURD_LAPLACIAN_SIDE 1024

/* Bytes of work buffer blurd_laplacian_score_file needs: the largest grey image. */
#define BLURD_LAPLACIAN_WORK_BYTES ((size_t)BLURD_LAPLACIAN_SIDE * BLURD_LAPLACIAN_SIDE)

/* The commonly published rule of thumb: variance below 100 is blurred.  It was never tuned
 * for blurd's analysis size or any particular camera; `blurd eval --compare laplacian`
 * fits a better one for a given set of photos. */
#define BLURD_LAPLACIAN_DEFAULT_THRESHOLD 100.0

/* The population variance of the 3x3 Laplacian [0 1 0; 1 -4 1; 0 1 0] of `grey` (width x
 * height bytes, rows without padding, borrowed for the call), taken over the interior
 * pixels only: the one-pixel border has no full neighbourhood, and inventing one (by
 * reflection) would add edges the photo does not have.  Exact integer sums, so the result
 * does not depend on the order of the pixels' evaluation.  0 for an image under 3x3 or a
 * NULL `grey`.  Pure and thread-safe. */
double blurd_laplacian_variance(const uint8_t *grey, int width, int height);

/* Decodes `path` (blurd_image_load_grey: every untrusted-file check of image.h, refused
 * above `max_pixels`, 0 = the default) at BLURD_LAPLACIAN_SIDE and writes its variance of
 * the Laplacian to *variance.  `work` is BLURD_LAPLACIAN_WORK_BYTES bytes borrowed for the
 * call (so a worker can reuse one), or NULL to have one allocated and freed here.  `info`
 * (may be NULL) receives what blurd_image_load_grey learnt.  Errors as
 * blurd_image_load_grey, with `err` naming the path; BLURD_ENOMEM if `work` is NULL and
 * cannot be allocated. */
int blurd_laplacian_score_file(const char *path, uint64_t max_pixels, uint8_t *work,
                               double *variance, struct blurd_image_info *info, char *err);

#endif
