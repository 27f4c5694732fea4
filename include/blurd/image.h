/* image.h - libvips set-up and every decode: a file on disk becomes the network's float
 * inputs (NHWC, RGB in [0,1]), either one whole-image resize or tiles from the most
 * textured regions at the analysis resolution (or, for the Laplacian method, an 8-bit grey
 * image).
 *
 * Files are untrusted: untrusted loaders are blocked, the pixel count is checked from the
 * header before any pixel is decoded, truncated data fails, the operation cache is off
 * so a replaced file is re-read.  Images are auto-rotated from EXIF, converted from any
 * colour space to sRGB 8-bit, alpha flattened onto white, grey expanded to 3 channels.
 * Thread-safe after blurd_image_init.
 */
#ifndef BLURD_IMAGE_H
#define BLURD_IMAGE_H

#include "blurd/model.h"

#include <stddef.h>
#include <stdint.h>

#define BLURD_IMAGE_DEFAULT_MAX_PIXELS 100000000ULL /* 100 megapixels */
#define BLURD_IMAGE_MIN_SIDE           16           /* smaller images carry too little to judge */

struct blurd_image_options {
    enum blurd_input_mode input;
    int size;            /* the network's input side in pixels (e.g. 200), 2..8192 */
    int tile_count;      /* tiles mode: at most this many tiles, >= 1 */
    int analysis_size;   /* tiles mode: long side to analyse at; 0 = native */
    uint64_t max_pixels; /* width * height above this is refused before decoding;
                            0 = BLURD_IMAGE_DEFAULT_MAX_PIXELS */
};

struct blurd_image_info {
    int width, height; /* as stored, before rotation (first frame of a multi-frame file) */
    char format[16];   /* "jpeg", "png", "webp", "tiff", "gif" or "heif" (also AVIF) */
    int inputs;        /* network inputs written: 1 for resize, 1..tile_count for tiles */
};

/* Starts libvips (once per process; later calls do nothing) with untrusted loaders
 * blocked, the operation cache disabled and libvips' own threads limited to one, since
 * blurd parallelises across images.  libvips' GLib warnings (about a user's damaged file)
 * go to blurd's debug log rather than stderr.  `argv0` may be NULL.  Fails with BLURD_EIO
 * if libvips cannot start, BLURD_EINVAL after blurd_image_shutdown. */
int blurd_image_init(const char *argv0, char *err);

/* Stops libvips at the end of the process, when no load is running; every later call
 * fails, since libvips cannot be started twice.  Does nothing if it never started. */
void blurd_image_shutdown(void);

/* How strictly blurd's decodes take `path`'s content, as the libvips VipsFailOn to pass to
 * a module's own load of it (synth's source photos): a JPEG is refused on any decoder
 * warning, other formats only when truncated or unreadable (see image.c). */
int blurd_image_fail_on(const char *path);

/* True if `path`'s extension is one blurd reads (case-insensitive). */
int blurd_image_has_image_extension(const char *path);

/* Decodes `path` and writes info->inputs network inputs of size x size x 3 floats to
 * `inputs` (borrowed for the call), which must hold options->tile_count (tiles) or 1
 * (resize) inputs; nothing past info->inputs is touched.
 *
 * Resize: the whole image squashed to size x size, aspect ignored, as Keras'
 * load_img(target_size=...).  Tiles: the image scaled once so its long side is at most
 * analysis_size, unless that would leave the short side under `size` (then the short side
 * becomes `size`, enlarging if need be); then tiles on a half-tile grid, taken greedily by
 * the gradient energy of the grey image, best first, none overlapping another by more than
 * a quarter; fewer than tile_count when fewer fit.  The same file always gives the same
 * inputs.  Only JPEG, PNG, WebP, TIFF, GIF and HEIF/AVIF content is read, whatever the name.
 *
 * Initialises libvips on first use if blurd_image_init was not called.  `info` must not be
 * NULL; on failure it holds what was learnt before the failure (zeros otherwise).  Errors,
 * with `err` naming the path and the reason (with libvips' own text, on one line, where it
 * has one): BLURD_EINVAL (a NULL argument, options out of range), BLURD_ENOENT (missing or
 * vanished), BLURD_EACCES, BLURD_EISDIR, BLURD_ENOTIMAGE (zero bytes, not a regular file,
 * content not one of the formats above, or its loader blocked), BLURD_ETOOBIG (over
 * max_pixels, judged from the header alone), BLURD_ETOOSMALL (a side under
 * BLURD_IMAGE_MIN_SIDE), BLURD_EDECODE (truncated or corrupt data), BLURD_ENOMEM. */
int blurd_image_load(const char *path, const struct blurd_image_options *options, float *inputs,
                     struct blurd_image_info *info, char *err);

/* Decodes `path` with the same checks, formats, rotation and colour handling as
 * blurd_image_load into an 8-bit grey image (BT.601 luma of the sRGB pixels): *width x
 * *height bytes, row by row without padding, written to `grey` (`capacity` bytes, borrowed
 * for the call).  The image is shrunk (shrink-on-load, then a Lanczos reduce) so that its
 * long side is at most `max_side`, and never enlarged; 0 keeps the native size.  With
 * max_side > 0, max_side * max_side bytes always suffice.  `max_pixels` as in
 * blurd_image_options (0 = the default).  info->inputs is 0.  Errors as blurd_image_load,
 * and BLURD_EINVAL for max_side out of range or an image that does not fit `capacity`;
 * on failure *width and *height are 0. */
int blurd_image_load_grey(const char *path, int max_side, uint64_t max_pixels, uint8_t *grey,
                          size_t capacity, int *width, int *height, struct blurd_image_info *info,
                          char *err);

#endif
