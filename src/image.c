/* image.c - libvips set-up and every decode: an untrusted file on disk becomes the network's
 * float inputs.  Called once per photo from the worker threads; the expensive part is
 * libvips' decode, which shrink-on-load keeps to a fraction of a full decode for large JPEGs.
 *
 * The file is opened once and handed to libvips as a descriptor source, so the header that
 * passed the pixel-limit check is the header of the data that is decoded: a file swapped
 * between the check and the decode cannot slip past the limit.
 */
#include "blurd/image.h"

#include "blurd/error.h"
#include "blurd/kernels.h"
#include "blurd/log.h"

#include <vips/vips.h>
/* not part of vips.h: the switch for liborc (see init_run) */
#include <vips/vector.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Formats blurd accepts, as the prefix of the libvips loader's nickname ("jpegload_source").
 * Anything else libvips happens to recognise (matrix and CSV text, PPM, SVG, PDF...) is not a
 * photo and is refused as not an image, whether or not its loader is blocked. */
static const char *const accepted_formats[] = {"jpeg", "png", "webp", "tiff", "gif", "heif"};

static const char *const image_extensions[] = {"jpg",  "jpeg", "png",  "webp", "tif",
                                               "tiff", "gif",  "heic", "heif", "avif"};

/* How much decoder trouble refuses an image, by format.  A JPEG whose compressed data is
 * damaged inside (not cut short) decodes to grey or scrambled blocks, and only libjpeg's
 * warning ("Corrupt JPEG data: ...") says so; judging those pixels would file a broken
 * photo as if it were fine, so for JPEG any warning refuses it (libvips cannot tell one
 * warning from another; rarer ones, such as odd scan parameters, refuse too).  None of the
 * 116 real photographs in JPEG blurd was measured on (the recipe's 84, the 20 independent
 * ones, the 12 samples) warns.  Other loaders warn about harmless things (libpng about
 * known-odd colour profiles) and report real damage as errors, so for them only a
 * truncated or failed read refuses.
 *
 * thumbnail_source in libvips 8.14 does not hand its own fail_on to the loader (a
 * truncated JPEG then decodes with grey rows), so the level also travels in the loader's
 * option string; later versions honour either. */
struct fail_level {
    VipsFailOn fail_on;
    const char *loader_options;
};

static struct fail_level fail_level(const struct blurd_image_info *info)
{
    if (strcmp(info->format, "jpeg") == 0)
        return (struct fail_level){VIPS_FAIL_ON_WARNING, "fail_on=warning"};
    return (struct fail_level){VIPS_FAIL_ON_TRUNCATED, "fail_on=truncated"};
}

/* The largest network input side accepted; far above any sensible model, it only keeps
 * size * size * 3 well inside int arithmetic. */
#define MAX_INPUT_SIDE 8192

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static _Atomic(const char *) init_argv0;
static int init_status;
static char init_message[BLURD_ERR_LEN];
static atomic_bool started, shut_down;

/* libvips reports recoverable decoder trouble (a corrupt JPEG marker, an odd EXIF block)
 * through GLib warnings.  Those are about the user's file, which blurd already reports
 * through error codes, so they go to the debug log instead of spamming the daemon's
 * stderr once per photo; criticals mean misuse of libvips and stay visible. */
static void log_from_glib(const gchar *domain, GLogLevelFlags level, const gchar *message,
                          gpointer user_data)
{
    (void)user_data;
    if (level & G_LOG_LEVEL_CRITICAL)
        blurd_log_warning("%s: %s", domain != NULL ? domain : "glib", message);
    else
        blurd_log_debug("%s: %s", domain != NULL ? domain : "glib", message);
}

/* The vips error buffer as one line (its lines joined with "; ", trailing blanks and
 * full stops dropped) in `out`, and the buffer cleared so the next failure starts clean.
 * The buffer is process-wide, so under concurrent failures a message may name another
 * thread's file; the path in blurd's own message is always this call's. */
static void take_vips_error(char *out, size_t n)
{
    char *text = vips_error_buffer_copy();
    size_t used = 0;
    out[0] = '\0';
    for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '.' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        int written = snprintf(out + used, n - used, "%s%s", used > 0 ? "; " : "", line);
        if (written < 0 || (size_t)written >= n - used)
            break;
        used += (size_t)written;
    }
    g_free(text);
}

/* Fills `err` with "PATH: WHAT: libvips' reason" and returns `code`. */
static int vips_failure(char *err, int code, const char *path, const char *what)
{
    char reason[BLURD_ERR_LEN];
    take_vips_error(reason, sizeof reason);
    if (reason[0] == '\0')
        return blurd_error_set(err, code, "%s: %s", path, what);
    return blurd_error_set(err, code, "%s: %s: %s", path, what, reason);
}

static void init_run(void)
{
    const char *argv0 = atomic_load(&init_argv0);

    /* Installed before VIPS_INIT so warnings from start-up are routed too. */
    g_log_set_handler("VIPS",
                      G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE |
                          G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
                      log_from_glib, NULL);

    if (VIPS_INIT(argv0 != NULL ? argv0 : "blurd") != 0) {
        char reason[BLURD_ERR_LEN];
        take_vips_error(reason, sizeof reason);
        init_status = blurd_error_set(init_message, BLURD_EIO, "cannot start libvips: %s",
                                      reason[0] != '\0' ? reason : "vips_init failed");
        return;
    }
    /* Files come from anywhere: loaders libvips has not fuzzed stay off. */
    vips_block_untrusted_set(TRUE);
    /* The cache would keep decoded images and open files alive, and hand back a stale
     * result for a file replaced under the same name. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    /* blurd runs one decode per worker thread; libvips' own pool would only compete. */
    vips_concurrency_set(1);
    /* libvips compiles its vector paths with liborc at run time. Debian 12's liborc
     * (0.4.33) hands out and frees code memory outside its lock, so two workers building
     * pipelines at once can corrupt its chunk list and crash (seen as a SEGV in
     * orc_code_allocate_codemem). The plain C paths cost 14% in `classify --method
     * laplacian` (decode only) and nothing measurable with the network (164 photos). */
    vips_vector_set_enabled(FALSE);
    init_status = 0;
    atomic_store(&started, true);
}

int blurd_image_init(const char *argv0, char *err)
{
    const char *expected = NULL;
    atomic_compare_exchange_strong(&init_argv0, &expected, argv0);
    pthread_once(&init_once, init_run);
    if (init_status != 0)
        return blurd_error_set(err, init_status, "%s", init_message);
    if (atomic_load(&shut_down))
        return blurd_error_set(err, BLURD_EINVAL, "libvips has been shut down");
    return 0;
}

void blurd_image_shutdown(void)
{
    /* Only a started libvips is shut down, and only once; pthread_once cannot run init
     * again, so later loads fail instead of using a stopped library. */
    if (!atomic_load(&started) || atomic_exchange(&shut_down, true))
        return;
    vips_shutdown();
}

int blurd_image_has_image_extension(const char *path)
{
    if (path == NULL)
        return 0;
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    /* ".jpg" alone is a hidden file's name, not an extension. */
    if (dot == NULL || dot == base)
        return 0;
    for (size_t i = 0; i < sizeof image_extensions / sizeof image_extensions[0]; i++)
        if (strcasecmp(dot + 1, image_extensions[i]) == 0)
            return 1;
    return 0;
}

/* Opens `path` for reading after checking it is a non-empty regular file.  stat comes
 * first so a FIFO or device is never opened (opening a FIFO would block the worker); the
 * fstat after open checks the file actually opened, in case the name was replaced. */
static int open_image_file(const char *path, int *out_fd, char *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int saved = errno;
        return blurd_error_set(err, blurd_error_from_errno(saved), "%s: %s", path, strerror(saved));
    }
    if (S_ISDIR(st.st_mode))
        return blurd_error_set(err, BLURD_EISDIR, "%s: is a directory", path);
    if (!S_ISREG(st.st_mode))
        return blurd_error_set(err, BLURD_ENOTIMAGE, "%s: not a regular file", path);
    if (st.st_size == 0)
        return blurd_error_set(err, BLURD_ENOTIMAGE, "%s: empty file (0 bytes)", path);

    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int saved = errno;
        return blurd_error_set(err, blurd_error_from_errno(saved), "%s: %s", path, strerror(saved));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
        int is_dir = S_ISDIR(st.st_mode);
        close(fd);
        if (is_dir)
            return blurd_error_set(err, BLURD_EISDIR, "%s: is a directory", path);
        return blurd_error_set(err, BLURD_ENOTIMAGE,
                               "%s: changed while being opened (no longer a non-empty file)", path);
    }
    *out_fd = fd;
    return 0;
}

/* Opens `path` as in open_image_file and wraps it in a libvips source (owned by the
 * caller: g_object_unref). */
static int open_image_source(const char *path, VipsSource **out, char *err)
{
    int fd = -1;
    int rc = open_image_file(path, &fd, err);
    if (rc != 0)
        return rc;
    /* The source works on its own dup of the descriptor. */
    *out = vips_source_new_from_descriptor(fd);
    close(fd);
    if (*out == NULL)
        return vips_failure(err, BLURD_EIO, path, "cannot read");
    return 0;
}

/* From the loader's class name (as vips_foreign_find_load_source returns it) to blurd's
 * format name in `format`.  Returns 0, or BLURD_ENOTIMAGE with `err` filled when the
 * format is not one blurd accepts or its loader is blocked. */
static int accepted_format(const char *class_name, const char *path, char *format, size_t n,
                           char *err)
{
    GType type = g_type_from_name(class_name);
    if (type == 0)
        return blurd_error_set(err, BLURD_ENOTIMAGE, "%s: unknown loader %s", path, class_name);
    gpointer klass = g_type_class_ref(type);
    const char *nickname = VIPS_OBJECT_CLASS(klass)->nickname;
    VipsOperationFlags flags = VIPS_OPERATION_CLASS(klass)->flags;

    const char *end = strstr(nickname, "load");
    size_t len = end != NULL ? (size_t)(end - nickname) : strlen(nickname);
    if (len >= n)
        len = n - 1;
    memcpy(format, nickname, len);
    format[len] = '\0';
    g_type_class_unref(klass);

    bool accepted = false;
    for (size_t i = 0; i < sizeof accepted_formats / sizeof accepted_formats[0]; i++)
        if (strcmp(format, accepted_formats[i]) == 0)
            accepted = true;
    if (!accepted)
        return blurd_error_set(err, BLURD_ENOTIMAGE,
                               "%s: %s data is not a photo format blurd reads", path, format);
    if (flags & VIPS_OPERATION_BLOCKED)
        return blurd_error_set(err, BLURD_ENOTIMAGE, "%s: the %s loader is blocked as untrusted",
                               path, format);
    return 0;
}

/* Any interpretation, depth and alpha to 8-bit sRGB with exactly three bands, alpha
 * composited onto white.  Takes ownership of `in` (unref'd, also on failure). */
static int to_srgb8(VipsImage *in, VipsImage **out, const char *path, char *err)
{
    VipsImage *image = in, *next = NULL;

    /* colourspace knows CMYK, 16-bit, grey and (coded) Lab; an alpha band rides along. */
    if (image->Coding != VIPS_CODING_NONE ||
        vips_image_guess_interpretation(image) != VIPS_INTERPRETATION_sRGB ||
        image->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_colourspace(image, &next, VIPS_INTERPRETATION_sRGB, NULL) != 0)
            goto fail;
        g_object_unref(image);
        image = next;
    }
    if (image->Bands > 3) {
        /* After the conversion to sRGB, band 4 is alpha (0..255).  Flatten's result is
         * not necessarily uchar; the cast below restores it. */
        VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
        int rc = image->Bands == 4
                     ? vips_flatten(image, &next, "background", white, "max_alpha", 255.0, NULL)
                     : vips_extract_band(image, &next, 0, "n", 3, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (rc != 0)
            goto fail;
        g_object_unref(image);
        image = next;
    }
    if (image->Bands != 3) {
        blurd_error_set(err, BLURD_EDECODE, "%s: %d bands after conversion to sRGB", path,
                        image->Bands);
        g_object_unref(image);
        return BLURD_EDECODE;
    }
    if (image->BandFmt != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(image, &next, NULL) != 0)
            goto fail;
        g_object_unref(image);
        image = next;
    }
    *out = image;
    return 0;

fail:
    g_object_unref(image);
    return vips_failure(err, BLURD_EDECODE, path, "cannot convert to sRGB");
}

/* Rescales `*image` (replacing it) by independent horizontal and vertical factors. */
static int rescale(VipsImage **image, double hscale, double vscale, const char *path, char *err)
{
    VipsImage *next = NULL;
    if (vips_resize(*image, &next, hscale, "vscale", vscale, NULL) != 0)
        return vips_failure(err, BLURD_EDECODE, path, "cannot resize");
    g_object_unref(*image);
    *image = next;
    return 0;
}

/* Texture scores for tiles mode.  The image is cut into square cells of `stride` (half a
 * tile) on a grid centred in the image; a candidate tile is a 2x2 block of cells, so
 * neighbouring candidates sit half a tile apart.  A cell's score is the sum of |dx| + |dy|
 * of the grey value at every second pixel of every second row: blur shows where there are
 * edges, and flat sky or wall says nothing either way.  Sampling a quarter of the pixels
 * ranks cells of 100x100 pixels just as well and cut tiles-mode decoding of 12-megapixel
 * JPEGs from 137 to about 95 ms per image (the scoring had been a third of it). */
struct tile_grid {
    int stride;
    int cells_x, cells_y;   /* cells in the grid */
    int margin_x, margin_y; /* pixels left of and above the grid */
};

static void plan_grid(int width, int height, int size, struct tile_grid *grid)
{
    int stride = size / 2;
    /* An odd size is one pixel wider than two cells; keep room for that pixel. */
    int extra = size - 2 * stride;
    grid->stride = stride;
    grid->cells_x = (width - extra) / stride;
    grid->cells_y = (height - extra) / stride;
    grid->margin_x = (width - extra - grid->cells_x * stride) / 2;
    grid->margin_y = (height - extra - grid->cells_y * stride) / 2;
}

static inline int grey(const uint8_t *rgb)
{
    /* BT.601 luma in 8.8 fixed point; the exact weights barely matter for ranking. */
    return (77 * rgb[0] + 150 * rgb[1] + 29 * rgb[2] + 128) >> 8;
}

static void score_cells(const uint8_t *rgb, int width, int height, const struct tile_grid *grid,
                        uint64_t *cells)
{
    memset(cells, 0, (size_t)grid->cells_x * (size_t)grid->cells_y * sizeof *cells);
    int rows = grid->cells_y * grid->stride;
    size_t row_bytes = (size_t)width * 3;
    for (int y = 0; y < rows; y += 2) {
        int image_y = grid->margin_y + y;
        const uint8_t *row = rgb + (size_t)image_y * row_bytes;
        /* The last image row has no row below: its vertical gradient counts as zero. */
        const uint8_t *below = image_y + 1 < height ? row + row_bytes : row;
        uint64_t *cell_row = cells + (size_t)(y / grid->stride) * (size_t)grid->cells_x;
        for (int cell = 0; cell < grid->cells_x; cell++) {
            uint64_t sum = 0;
            int x0 = grid->margin_x + cell * grid->stride;
            for (int x = x0; x < x0 + grid->stride; x += 2) {
                int here = grey(row + 3 * x);
                int right = x + 1 < width ? grey(row + 3 * (x + 1)) : here;
                int down = grey(below + 3 * x);
                sum += (uint64_t)(abs(right - here) + abs(down - here));
            }
            cell_row[cell] += sum;
        }
    }
}

/* True if a tile at (x, y) overlaps an already chosen one by more than a quarter of its
 * area: diagonal neighbours on the half-tile grid (exactly a quarter) are allowed, side
 * neighbours (a half) are not, so tiles stay mostly distinct evidence. */
static bool overlaps_chosen(int x, int y, int size, const int *chosen_x, const int *chosen_y,
                            int chosen)
{
    for (int i = 0; i < chosen; i++) {
        long ox = size - labs((long)x - chosen_x[i]);
        long oy = size - labs((long)y - chosen_y[i]);
        if (ox > 0 && oy > 0 && 4 * ox * oy > (long)size * size)
            return true;
    }
    return false;
}

/* Chooses up to `max_tiles` tiles, best-scoring first, writing their top-left corners.
 * Greedy and deterministic: ties go to the earlier candidate in raster order.  Returns the
 * number chosen, or BLURD_ENOMEM. */
static int choose_tiles(const uint8_t *rgb, int width, int height, int size, int max_tiles,
                        int *tile_x, int *tile_y)
{
    struct tile_grid grid;
    plan_grid(width, height, size, &grid);
    int candidates_x = grid.cells_x - 1, candidates_y = grid.cells_y - 1;
    if (candidates_x < 1 || candidates_y < 1)
        return 0;
    uint64_t *cells = malloc((size_t)grid.cells_x * (size_t)grid.cells_y * sizeof *cells);
    if (cells == NULL)
        return BLURD_ENOMEM;
    score_cells(rgb, width, height, &grid, cells);

    int chosen = 0;
    while (chosen < max_tiles) {
        int best_x = -1, best_y = -1;
        uint64_t best_score = 0;
        for (int cy = 0; cy < candidates_y; cy++) {
            const uint64_t *top = cells + (size_t)cy * (size_t)grid.cells_x;
            const uint64_t *bottom = top + grid.cells_x;
            for (int cx = 0; cx < candidates_x; cx++) {
                uint64_t score = top[cx] + top[cx + 1] + bottom[cx] + bottom[cx + 1];
                if (best_x >= 0 && score <= best_score)
                    continue;
                int x = grid.margin_x + cx * grid.stride, y = grid.margin_y + cy * grid.stride;
                if (overlaps_chosen(x, y, size, tile_x, tile_y, chosen))
                    continue;
                best_x = x;
                best_y = y;
                best_score = score;
            }
        }
        if (best_x < 0)
            break;
        tile_x[chosen] = best_x;
        tile_y[chosen] = best_y;
        chosen++;
    }
    free(cells);
    return chosen;
}

/* Writes the chosen tiles of the w x h x 3 uint8 image as float NHWC inputs. */
static void write_tiles(const uint8_t *rgb, int width, int size, const int *tile_x,
                        const int *tile_y, int count, float *inputs)
{
    const struct blurd_kernels *kernels = blurd_kernels_get();
    size_t row_values = (size_t)size * 3;
    for (int t = 0; t < count; t++) {
        float *tile = inputs + (size_t)t * row_values * (size_t)size;
        for (int r = 0; r < size; r++) {
            const uint8_t *src =
                rgb + ((size_t)(tile_y[t] + r) * (size_t)width + (size_t)tile_x[t]) * 3;
            kernels->u8_to_float(row_values, src, tile + (size_t)r * row_values, 1.0f / 255.0f);
        }
    }
}

static int check_options(const struct blurd_image_options *options, char *err)
{
    if (options->size < 2 || options->size > MAX_INPUT_SIDE)
        return blurd_error_set(err, BLURD_EINVAL, "image input size %d is outside 2..%d",
                               options->size, MAX_INPUT_SIDE);
    if (options->input == BLURD_INPUT_TILES) {
        if (options->tile_count < 1)
            return blurd_error_set(err, BLURD_EINVAL, "tile count %d is below 1",
                                   options->tile_count);
        if (options->analysis_size < 0)
            return blurd_error_set(err, BLURD_EINVAL, "analysis size %d is negative",
                                   options->analysis_size);
    } else if (options->input != BLURD_INPUT_RESIZE) {
        return blurd_error_set(err, BLURD_EINVAL, "unknown input mode %d", (int)options->input);
    }
    return 0;
}

int blurd_image_fail_on(const char *path)
{
    struct blurd_image_info info = {0};
    char ignored[BLURD_ERR_LEN];
    const char *class_name = vips_foreign_find_load(path);
    if (class_name == NULL)
        vips_error_clear();
    else
        (void)accepted_format(class_name, path, info.format, sizeof info.format, ignored);
    return (int)fail_level(&info).fail_on;
}

/* The checks every decode starts with, before any pixel is decoded: the content is one
 * of the accepted formats, and the stored size (filled into `info`) is within
 * `max_pixels` (0 = the default) and at least BLURD_IMAGE_MIN_SIDE on each side. */
static int check_header(VipsSource *source, const char *path, uint64_t max_pixels,
                        struct blurd_image_info *info, char *err)
{
    const char *class_name = vips_foreign_find_load_source(source);
    if (class_name == NULL) {
        vips_error_clear();
        return blurd_error_set(err, BLURD_ENOTIMAGE, "%s: not an image format libvips reads", path);
    }
    int rc = accepted_format(class_name, path, info->format, sizeof info->format, err);
    if (rc != 0)
        return rc;

    /* Header only: libvips loaders are lazy, no pixel is decoded until one is asked for. */
    VipsImage *header = vips_image_new_from_source(source, "", "access", VIPS_ACCESS_SEQUENTIAL,
                                                   "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
    if (header == NULL)
        return vips_failure(err, BLURD_EDECODE, path, "cannot read the header");
    info->width = header->Xsize;
    info->height = header->Ysize; /* one page: loaders read the first frame by default */
    g_object_unref(header);

    if (max_pixels == 0)
        max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS;
    uint64_t pixels = (uint64_t)info->width * (uint64_t)info->height;
    if (pixels > max_pixels)
        return blurd_error_set(
            err, BLURD_ETOOBIG, "%s: %dx%d is %llu pixels, over the limit of %llu", path,
            info->width, info->height, (unsigned long long)pixels, (unsigned long long)max_pixels);
    if (info->width < BLURD_IMAGE_MIN_SIDE || info->height < BLURD_IMAGE_MIN_SIDE)
        return blurd_error_set(err, BLURD_ETOOSMALL, "%s: %dx%d is under %d pixels on a side", path,
                               info->width, info->height, BLURD_IMAGE_MIN_SIDE);
    return 0;
}

/* The whole decode from an open source: loader, header checks, shrink-on-load, colour. */
static int decode(VipsSource *source, const char *path, const struct blurd_image_options *options,
                  float *inputs, struct blurd_image_info *info, char *err)
{
    int rc = check_header(source, path, options->max_pixels, info, err);
    if (rc != 0)
        return rc;

    int size = options->size;
    struct fail_level level = fail_level(info);
    VipsImage *image = NULL;
    if (options->input == BLURD_INPUT_RESIZE) {
        /* Squashed to size x size like Keras' load_img(target_size=...); thumbnail picks
         * the JPEG DCT scaling from the less-shrunk axis, then reduces to the exact size. */
        rc = vips_thumbnail_source(source, &image, size, "height", size, "size", VIPS_SIZE_FORCE,
                                   "option_string", level.loader_options, "fail_on", level.fail_on,
                                   NULL);
    } else {
        /* One scale from the stored size: down to the analysis size if larger, but never
         * so far that the short side falls under a tile; up if the image is that small.
         * Rotation swaps sides, so only the long and short sides matter. */
        int long_side = info->width > info->height ? info->width : info->height;
        int short_side = info->width > info->height ? info->height : info->width;
        double scale = 1.0;
        if (options->analysis_size > 0 && long_side > options->analysis_size)
            scale = (double)options->analysis_size / long_side;
        if (short_side * scale < size)
            scale = (double)size / short_side;
        double target = ceil(long_side * scale - 1e-9);
        int box = target > VIPS_MAX_COORD ? VIPS_MAX_COORD : (int)target;
        rc = vips_thumbnail_source(source, &image, box, "height", box, "size", VIPS_SIZE_BOTH,
                                   "option_string", level.loader_options, "fail_on", level.fail_on,
                                   NULL);
    }
    if (rc != 0)
        return vips_failure(err, BLURD_EDECODE, path, "cannot decode");

    rc = to_srgb8(image, &image, path, err);
    if (rc != 0)
        return rc;

    /* Rounding in the shrink can leave a pixel too few; correct it here. */
    if (options->input == BLURD_INPUT_RESIZE) {
        if (image->Xsize != size || image->Ysize != size)
            rc = rescale(&image, (double)size / image->Xsize, (double)size / image->Ysize, path,
                         err);
    } else {
        int short_side = image->Xsize < image->Ysize ? image->Xsize : image->Ysize;
        if (short_side < size) {
            double scale = (size + 0.5) / short_side;
            rc = rescale(&image, scale, scale, path, err);
        }
    }
    if (rc != 0) {
        g_object_unref(image);
        return rc;
    }

    /* The decode happens here, pulled through the pipeline into one buffer. */
    size_t bytes = 0;
    uint8_t *rgb = vips_image_write_to_memory(image, &bytes);
    int width = image->Xsize, height = image->Ysize;
    g_object_unref(image);
    if (rgb == NULL)
        return vips_failure(err, BLURD_EDECODE, path, "cannot decode");
    if (bytes != (size_t)width * (size_t)height * 3 || width < size || height < size) {
        g_free(rgb);
        return blurd_error_set(err, BLURD_EDECODE, "%s: decoded to an unexpected %dx%d", path,
                               width, height);
    }

    if (options->input == BLURD_INPUT_RESIZE) {
        blurd_kernels_get()->u8_to_float(bytes, rgb, inputs, 1.0f / 255.0f);
        info->inputs = 1;
    } else {
        int *corners = malloc(2 * (size_t)options->tile_count * sizeof *corners);
        int count = corners != NULL ? choose_tiles(rgb, width, height, size, options->tile_count,
                                                   corners, corners + options->tile_count)
                                    : BLURD_ENOMEM;
        if (count > 0)
            write_tiles(rgb, width, size, corners, corners + options->tile_count, count, inputs);
        free(corners);
        if (count < 0) {
            g_free(rgb);
            return blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory choosing tiles", path);
        }
        info->inputs = count;
    }
    g_free(rgb);
    if (info->inputs < 1)
        return blurd_error_set(err, BLURD_EDECODE, "%s: no %dx%d tile fits", path, size, size);
    return 0;
}

int blurd_image_load(const char *path, const struct blurd_image_options *options, float *inputs,
                     struct blurd_image_info *info, char *err)
{
    if (path == NULL || options == NULL || inputs == NULL || info == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_image_load: NULL argument");
    memset(info, 0, sizeof *info);
    int rc = check_options(options, err);
    if (rc != 0)
        return rc;
    rc = blurd_image_init(NULL, err);
    if (rc != 0)
        return rc;

    VipsSource *source;
    if ((rc = open_image_source(path, &source, err)) != 0)
        return rc;
    rc = decode(source, path, options, inputs, info, err);
    g_object_unref(source);
    return rc;
}

/* The grey decode from an open source: header checks, shrink-on-load to `max_side`, colour
 * as for the network, then luma into the caller's buffer. */
static int decode_grey(VipsSource *source, const char *path, int max_side, uint64_t max_pixels,
                       uint8_t *luma, size_t capacity, int *width, int *height,
                       struct blurd_image_info *info, char *err)
{
    int rc = check_header(source, path, max_pixels, info, err);
    if (rc != 0)
        return rc;

    /* Fit in a max_side square, shrinking only: enlarging would interpolate, which is blur
     * of its own.  Rotation swaps sides, so the square box is right either way. */
    int long_side = info->width > info->height ? info->width : info->height;
    int box = max_side > 0 && long_side > max_side ? max_side : long_side;
    struct fail_level level = fail_level(info);
    VipsImage *image = NULL;
    rc = vips_thumbnail_source(source, &image, box, "height", box, "size", VIPS_SIZE_DOWN,
                               "option_string", level.loader_options, "fail_on", level.fail_on,
                               NULL);
    if (rc != 0)
        return vips_failure(err, BLURD_EDECODE, path, "cannot decode");
    /* Through sRGB, as for the network, so alpha, CMYK and 16-bit images give the grey a
     * viewer would see. */
    rc = to_srgb8(image, &image, path, err);
    if (rc != 0)
        return rc;

    size_t bytes = 0;
    uint8_t *rgb = vips_image_write_to_memory(image, &bytes);
    int w = image->Xsize, h = image->Ysize;
    g_object_unref(image);
    if (rgb == NULL)
        return vips_failure(err, BLURD_EDECODE, path, "cannot decode");
    size_t pixels = (size_t)w * (size_t)h;
    if (bytes != pixels * 3) {
        g_free(rgb);
        return blurd_error_set(err, BLURD_EDECODE, "%s: decoded to an unexpected %dx%d", path, w,
                               h);
    }
    if (pixels > capacity) {
        g_free(rgb);
        return blurd_error_set(err, BLURD_EINVAL,
                               "%s: %dx%d grey image does not fit a buffer of %zu bytes", path, w,
                               h, capacity);
    }
    for (size_t i = 0; i < pixels; i++)
        luma[i] = (uint8_t)grey(rgb + 3 * i);
    g_free(rgb);
    *width = w;
    *height = h;
    return 0;
}

int blurd_image_load_grey(const char *path, int max_side, uint64_t max_pixels, uint8_t *luma,
                          size_t capacity, int *width, int *height, struct blurd_image_info *info,
                          char *err)
{
    if (path == NULL || luma == NULL || width == NULL || height == NULL || info == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_image_load_grey: NULL argument");
    memset(info, 0, sizeof *info);
    *width = *height = 0;
    if (max_side < 0 || max_side > VIPS_MAX_COORD)
        return blurd_error_set(err, BLURD_EINVAL, "grey image side %d is outside 0..%d", max_side,
                               VIPS_MAX_COORD);
    int rc = blurd_image_init(NULL, err);
    if (rc != 0)
        return rc;

    VipsSource *source;
    if ((rc = open_image_source(path, &source, err)) != 0)
        return rc;
    rc = decode_grey(source, path, max_side, max_pixels, luma, capacity, width, height, info, err);
    g_object_unref(source);
    return rc;
}
