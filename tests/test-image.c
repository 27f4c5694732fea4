/* test-image.c - the image module against real libvips on real files the tests write:
 * shapes and value range, tile choice, EXIF rotation, colour spaces, and every refusal. */
#include "blurd/error.h"
#include "blurd/image.h"
#include "test.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>
#include <vips/vector.h>

#define SENTINEL (-7.0f)

/* Like test_path, but from a small static pool rather than the heap, so that the
 * sanitizer build's leak check sees only what the module under test leaks. */
static const char *temp_path(const char *name)
{
    static char pool[8][4096];
    static int next;
    char *path = pool[next++ % 8];
    snprintf(path, sizeof pool[0], "%s/%s", test_tmpdir(), name);
    return path;
}

static void init_or_fail(void)
{
    char err[BLURD_ERR_LEN];
    int rc = blurd_image_init("blurd-test", err);
    if (rc != 0)
        TEST_FAIL("blurd_image_init: %s", err);
}

static struct blurd_image_options resize_options(int size)
{
    struct blurd_image_options options = {
        .input = BLURD_INPUT_RESIZE,
        .size = size,
        .tile_count = 1,
        .analysis_size = 0,
        .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS,
    };
    return options;
}

static struct blurd_image_options tile_options(int size, int tile_count, int analysis_size)
{
    struct blurd_image_options options = {
        .input = BLURD_INPUT_TILES,
        .size = size,
        .tile_count = tile_count,
        .analysis_size = analysis_size,
        .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS,
    };
    return options;
}

/* An input buffer for `count` inputs of size x size x 3, followed by a sentinel tail that
 * must survive the load (the module writes only what it reports). */
static float *input_buffer(int count, int size)
{
    size_t n = (size_t)count * (size_t)size * (size_t)size * 3 + 64;
    float *buffer = malloc(n * sizeof *buffer);
    if (buffer == NULL)
        TEST_FAIL("out of memory");
    for (size_t i = 0; i < n; i++)
        buffer[i] = SENTINEL;
    return buffer;
}

static void assert_tail_untouched(const float *buffer, int count, int size)
{
    size_t start = (size_t)count * (size_t)size * (size_t)size * 3;
    for (size_t i = start; i < start + 64; i++)
        ASSERT(buffer[i] == SENTINEL);
}

/* A w x h image with `bands` uchar bands from `pixels` (copied). */
static VipsImage *image_from_bytes(const uint8_t *pixels, int width, int height, int bands)
{
    VipsImage *image =
        vips_image_new_from_memory_copy(pixels, (size_t)width * (size_t)height * (size_t)bands,
                                        width, height, bands, VIPS_FORMAT_UCHAR);
    if (image == NULL)
        TEST_FAIL("vips_image_new_from_memory_copy: %s", vips_error_buffer());
    return image;
}

/* Uniform noise in every band, deterministic from `seed`. */
static VipsImage *noise_image(int width, int height, int bands, uint64_t seed)
{
    size_t n = (size_t)width * (size_t)height * (size_t)bands;
    uint8_t *pixels = malloc(n);
    if (pixels == NULL)
        TEST_FAIL("out of memory");
    for (size_t i = 0; i < n; i++)
        pixels[i] = (uint8_t)(test_random_next(&seed) >> 56);
    VipsImage *image = image_from_bytes(pixels, width, height, bands);
    free(pixels);
    return image;
}

static void save_jpeg(VipsImage *image, const char *path)
{
    if (vips_jpegsave(image, path, "Q", 90, NULL) != 0)
        TEST_FAIL("vips_jpegsave %s: %s", path, vips_error_buffer());
}

static void save_png(VipsImage *image, const char *path)
{
    if (vips_pngsave(image, path, NULL) != 0)
        TEST_FAIL("vips_pngsave %s: %s", path, vips_error_buffer());
}

/* Writes the first `keep` bytes of `from` to `to`. */
static void write_truncated(const char *from, const char *to, size_t keep)
{
    size_t n = 0;
    char *data = test_read_file(from, &n);
    ASSERT(keep < n);
    test_write_file(to, data, keep);
    free(data);
}

/* Mean of channel `channel` (or all channels when -1) over rows [y0, y1) and columns
 * [x0, x1) of one size x size x 3 input. */
static double region_mean(const float *input, int size, int x0, int x1, int y0, int y1, int channel)
{
    double sum = 0;
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < 3; c++)
                if (channel < 0 || c == channel) {
                    sum += (double)input[((size_t)y * (size_t)size + (size_t)x) * 3 + (size_t)c];
                    n++;
                }
    return sum / n;
}

static double region_variance(const float *input, int size, int x0, int x1, int y0, int y1)
{
    double mean = region_mean(input, size, x0, x1, y0, y1, -1), sum = 0;
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            for (int c = 0; c < 3; c++) {
                double d =
                    (double)input[((size_t)y * (size_t)size + (size_t)x) * 3 + (size_t)c] - mean;
                sum += d * d;
                n++;
            }
    return sum / n;
}

static void assert_load_fails(const char *path, const struct blurd_image_options *options,
                              int expected)
{
    char err[BLURD_ERR_LEN] = "";
    struct blurd_image_info info;
    int count = options->input == BLURD_INPUT_TILES ? options->tile_count : 1;
    float *inputs = input_buffer(count, options->size);
    int rc = blurd_image_load(path, options, inputs, &info, err);
    if (rc != expected)
        TEST_FAIL("%s: got %s (%s), expected %s", path, blurd_error_name(rc), err,
                  blurd_error_name(expected));
    ASSERT_CONTAINS(err, path);
    ASSERT(strchr(err, '\n') == NULL);
    free(inputs);
}

TEST_IMPL(image_has_image_extension)
{
    ASSERT(blurd_image_has_image_extension("a.jpg"));
    ASSERT(blurd_image_has_image_extension("/x/y/IMG_0001.JPG"));
    ASSERT(blurd_image_has_image_extension("b.JpEg"));
    ASSERT(blurd_image_has_image_extension("c.png"));
    ASSERT(blurd_image_has_image_extension("d.webp"));
    ASSERT(blurd_image_has_image_extension("e.tif"));
    ASSERT(blurd_image_has_image_extension("f.TIFF"));
    ASSERT(blurd_image_has_image_extension("g.gif"));
    ASSERT(blurd_image_has_image_extension("h.heic"));
    ASSERT(blurd_image_has_image_extension("i.HEIF"));
    ASSERT(blurd_image_has_image_extension("j.avif"));
    ASSERT(!blurd_image_has_image_extension("notes.txt"));
    ASSERT(!blurd_image_has_image_extension("jpg"));
    ASSERT(!blurd_image_has_image_extension(".jpg"));
    ASSERT(!blurd_image_has_image_extension("dir.jpg/file"));
    ASSERT(!blurd_image_has_image_extension("photo.jpg.part"));
    ASSERT(!blurd_image_has_image_extension("photo."));
    ASSERT(!blurd_image_has_image_extension(""));
    ASSERT(!blurd_image_has_image_extension(NULL));
    return 0;
}

TEST_IMPL(image_resize_shape_and_range)
{
    init_or_fail();
    const char *path = temp_path("noise.jpg");
    VipsImage *image = noise_image(640, 480, 3, 1);
    save_jpeg(image, path);
    g_object_unref(image);

    struct blurd_image_options options = resize_options(64);
    float *inputs = input_buffer(1, 64);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, 1);
    ASSERT_INT_EQ(info.width, 640);
    ASSERT_INT_EQ(info.height, 480);
    ASSERT_STR_EQ(info.format, "jpeg");
    float low = 1, high = 0;
    for (size_t i = 0; i < 64 * 64 * 3; i++) {
        ASSERT(inputs[i] >= 0.0f && inputs[i] <= 1.0f);
        low = inputs[i] < low ? inputs[i] : low;
        high = inputs[i] > high ? inputs[i] : high;
    }
    ASSERT(high - low > 0.1f); /* noise survives the shrink as some spread */
    assert_tail_untouched(inputs, 1, 64);

    /* A constant colour comes out as value / 255, in RGB order, at any input size. */
    const char *flat = temp_path("flat.png");
    uint8_t *pixels = malloc(300 * 200 * 3);
    ASSERT(pixels != NULL);
    for (size_t i = 0; i < 300 * 200; i++) {
        pixels[3 * i] = 10;
        pixels[3 * i + 1] = 128;
        pixels[3 * i + 2] = 250;
    }
    image = image_from_bytes(pixels, 300, 200, 3);
    save_png(image, flat);
    g_object_unref(image);
    free(pixels);
    free(inputs);
    options = resize_options(37);
    inputs = input_buffer(1, 37);
    ASSERT_INT_EQ(blurd_image_load(flat, &options, inputs, &info, err), 0);
    ASSERT_STR_EQ(info.format, "png");
    for (size_t i = 0; i < 37 * 37; i++) {
        ASSERT_NEAR(inputs[3 * i], 10.0 / 255, 1.01 / 255);
        ASSERT_NEAR(inputs[3 * i + 1], 128.0 / 255, 1.01 / 255);
        ASSERT_NEAR(inputs[3 * i + 2], 250.0 / 255, 1.01 / 255);
    }
    assert_tail_untouched(inputs, 1, 37);
    free(inputs);
    return 0;
}

/* Left half noise, right half flat grey: every tile must come from the noise, and the same
 * file must give the same tiles every time. */
TEST_IMPL(image_tiles_come_from_texture)
{
    init_or_fail();
    enum { W = 800, H = 400, SIZE = 100, COUNT = 8 };
    uint8_t *pixels = malloc((size_t)W * H * 3);
    ASSERT(pixels != NULL);
    uint64_t seed = 7;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                pixels[((size_t)y * W + (size_t)x) * 3 + (size_t)c] =
                    x < W / 2 ? (uint8_t)(test_random_next(&seed) >> 56) : 128;
    VipsImage *image = image_from_bytes(pixels, W, H, 3);
    free(pixels);
    const char *path = temp_path("half.png");
    save_png(image, path);
    g_object_unref(image);

    struct blurd_image_options options = tile_options(SIZE, COUNT, 0);
    float *inputs = input_buffer(COUNT, SIZE);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, COUNT);
    assert_tail_untouched(inputs, COUNT, SIZE);
    for (int t = 0; t < COUNT; t++) {
        const float *tile = inputs + (size_t)t * SIZE * SIZE * 3;
        /* Every quarter of the tile is noisy (uniform noise: variance ~0.083; flat: 0). */
        for (int qy = 0; qy < 2; qy++)
            for (int qx = 0; qx < 2; qx++) {
                double variance = region_variance(tile, SIZE, qx * SIZE / 2, (qx + 1) * SIZE / 2,
                                                  qy * SIZE / 2, (qy + 1) * SIZE / 2);
                if (variance < 0.04)
                    TEST_FAIL("tile %d quarter (%d,%d) is flat: variance %g", t, qx, qy, variance);
            }
    }

    float *again = input_buffer(COUNT, SIZE);
    ASSERT_INT_EQ(blurd_image_load(path, &options, again, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, COUNT);
    ASSERT(memcmp(inputs, again, (size_t)COUNT * SIZE * SIZE * 3 * sizeof(float)) == 0);
    free(inputs);
    free(again);
    return 0;
}

/* Fewer tiles than asked when fewer fit; small images are enlarged to hold one tile; the
 * analysis size caps how many tiles a large image offers. */
TEST_IMPL(image_tiles_count_and_scale)
{
    init_or_fail();
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];

    /* 250x120 with 100-pixel tiles: candidates at x = 0, 50, 100, 150 overlap by half when
     * adjacent, so only two can be taken. */
    const char *narrow = temp_path("narrow.png");
    VipsImage *image = noise_image(250, 120, 3, 2);
    save_png(image, narrow);
    g_object_unref(image);
    struct blurd_image_options options = tile_options(100, 8, 0);
    float *inputs = input_buffer(8, 100);
    ASSERT_INT_EQ(blurd_image_load(narrow, &options, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, 2);
    /* What was not reported stays as it was. */
    ASSERT(inputs[(size_t)2 * 100 * 100 * 3] == SENTINEL);
    assert_tail_untouched(inputs, 8, 100);
    free(inputs);

    /* 300x50 with 100-pixel tiles: enlarged to 600x100, one row of tiles. */
    const char *strip = temp_path("strip.png");
    image = noise_image(300, 50, 3, 3);
    save_png(image, strip);
    g_object_unref(image);
    options = tile_options(100, 4, 0);
    inputs = input_buffer(4, 100);
    ASSERT_INT_EQ(blurd_image_load(strip, &options, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, 4);
    ASSERT_INT_EQ(info.width, 300);
    ASSERT_INT_EQ(info.height, 50);
    for (size_t i = 0; i < (size_t)4 * 100 * 100 * 3; i++)
        ASSERT(inputs[i] >= 0.0f && inputs[i] <= 1.0f);
    free(inputs);

    /* 512x384 natively offers far more than 64 distinct 32-pixel tiles; analysed at 128x96
     * there are only 7 x 5 candidates in all. */
    const char *large = temp_path("large.jpg");
    image = noise_image(512, 384, 3, 4);
    save_jpeg(image, large);
    g_object_unref(image);
    options = tile_options(32, 64, 0);
    inputs = input_buffer(64, 32);
    ASSERT_INT_EQ(blurd_image_load(large, &options, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.inputs, 64);
    options.analysis_size = 128;
    ASSERT_INT_EQ(blurd_image_load(large, &options, inputs, &info, err), 0);
    ASSERT(info.inputs >= 6 && info.inputs <= 35);
    ASSERT_INT_EQ(info.width, 512);
    free(inputs);
    return 0;
}

/* Stored 96x48 with the left half black, tagged orientation 6 (rotate 90 degrees clockwise
 * to display): upright it is 48x96 with the black half on top. */
TEST_IMPL(image_exif_orientation_applied)
{
    init_or_fail();
    enum { W = 96, H = 48 };
    uint8_t pixels[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            memset(pixels + ((size_t)y * W + (size_t)x) * 3, x < W / 2 ? 0 : 255, 3);
    VipsImage *image = image_from_bytes(pixels, W, H, 3);
    vips_image_set_int(image, VIPS_META_ORIENTATION, 6);
    const char *path = temp_path("rotated.jpg");
    save_jpeg(image, path);
    g_object_unref(image);

    VipsImage *check = vips_image_new_from_file(path, NULL);
    ASSERT(check != NULL);
    ASSERT_INT_EQ(vips_image_get_orientation(check), 6);
    g_object_unref(check);

    struct blurd_image_options options = resize_options(32);
    float *inputs = input_buffer(1, 32);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    ASSERT_INT_EQ(info.width, W); /* reported as stored */
    ASSERT_INT_EQ(info.height, H);
    ASSERT(region_mean(inputs, 32, 0, 32, 0, 12, -1) < 0.1);
    ASSERT(region_mean(inputs, 32, 0, 32, 20, 32, -1) > 0.9);
    /* Unrotated, left and right would differ; upright they match. */
    ASSERT_NEAR(region_mean(inputs, 32, 0, 12, 0, 32, -1),
                region_mean(inputs, 32, 20, 32, 0, 32, -1), 0.05);
    free(inputs);
    return 0;
}

TEST_IMPL(image_grey_becomes_three_equal_channels)
{
    init_or_fail();
    enum { W = 64, H = 64 };
    uint8_t pixels[W * H];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            pixels[y * W + x] = (uint8_t)(x * 4);
    VipsImage *image = image_from_bytes(pixels, W, H, 1);
    const char *png = temp_path("grey.png"), *jpeg = temp_path("grey.jpg");
    save_png(image, png);
    save_jpeg(image, jpeg);
    g_object_unref(image);

    const char *paths[] = {png, jpeg};
    for (int p = 0; p < 2; p++) {
        struct blurd_image_options options = resize_options(32);
        float *inputs = input_buffer(1, 32);
        struct blurd_image_info info;
        char err[BLURD_ERR_LEN];
        ASSERT_INT_EQ(blurd_image_load(paths[p], &options, inputs, &info, err), 0);
        for (size_t i = 0; i < 32 * 32; i++) {
            ASSERT(inputs[3 * i] == inputs[3 * i + 1]);
            ASSERT(inputs[3 * i] == inputs[3 * i + 2]);
        }
        ASSERT(region_mean(inputs, 32, 0, 4, 0, 32, 0) < 0.15);
        ASSERT(region_mean(inputs, 32, 28, 32, 0, 32, 0) > 0.85);
        free(inputs);
    }
    return 0;
}

/* Left half transparent red, right half opaque blue: the transparent half shows white. */
TEST_IMPL(image_alpha_flattened_on_white)
{
    init_or_fail();
    enum { W = 64, H = 64 };
    uint8_t pixels[W * H * 4];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = pixels + ((size_t)y * W + (size_t)x) * 4;
            p[0] = x < W / 2 ? 255 : 0;
            p[1] = 0;
            p[2] = x < W / 2 ? 0 : 255;
            p[3] = x < W / 2 ? 0 : 255;
        }
    VipsImage *image = image_from_bytes(pixels, W, H, 4);
    const char *path = temp_path("alpha.png");
    save_png(image, path);
    g_object_unref(image);

    struct blurd_image_options options = resize_options(32);
    float *inputs = input_buffer(1, 32);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    for (int c = 0; c < 3; c++)
        ASSERT_NEAR(region_mean(inputs, 32, 0, 12, 0, 32, c), 1.0, 0.02);
    ASSERT_NEAR(region_mean(inputs, 32, 20, 32, 0, 32, 0), 0.0, 0.02);
    ASSERT_NEAR(region_mean(inputs, 32, 20, 32, 0, 32, 1), 0.0, 0.02);
    ASSERT_NEAR(region_mean(inputs, 32, 20, 32, 0, 32, 2), 1.0, 0.02);
    free(inputs);
    return 0;
}

TEST_IMPL(image_16bit_png)
{
    init_or_fail();
    enum { W = 48, H = 48 };
    uint16_t pixels[W * H * 3];
    for (size_t i = 0; i < W * H; i++) {
        pixels[3 * i] = 65535;
        pixels[3 * i + 1] = 32896; /* 128 * 257 */
        pixels[3 * i + 2] = 2570;  /* 10 * 257 */
    }
    VipsImage *image =
        vips_image_new_from_memory_copy(pixels, sizeof pixels, W, H, 3, VIPS_FORMAT_USHORT);
    ASSERT(image != NULL);
    VipsImage *tagged = NULL;
    ASSERT_INT_EQ(vips_copy(image, &tagged, "interpretation", VIPS_INTERPRETATION_RGB16, NULL), 0);
    const char *path = temp_path("deep.png");
    if (vips_pngsave(tagged, path, "bitdepth", 16, NULL) != 0)
        TEST_FAIL("vips_pngsave: %s", vips_error_buffer());
    g_object_unref(tagged);
    g_object_unref(image);

    VipsImage *check = vips_image_new_from_file(path, NULL);
    ASSERT(check != NULL);
    ASSERT_INT_EQ(check->BandFmt, VIPS_FORMAT_USHORT);
    g_object_unref(check);

    struct blurd_image_options options = resize_options(24);
    float *inputs = input_buffer(1, 24);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    ASSERT_NEAR(region_mean(inputs, 24, 0, 24, 0, 24, 0), 1.0, 1.5 / 255);
    ASSERT_NEAR(region_mean(inputs, 24, 0, 24, 0, 24, 1), 128.0 / 255, 1.5 / 255);
    ASSERT_NEAR(region_mean(inputs, 24, 0, 24, 0, 24, 2), 10.0 / 255, 1.5 / 255);
    free(inputs);
    return 0;
}

/* A CMYK JPEG (as print workflows leave them) of pure magenta + yellow: red on screen. */
TEST_IMPL(image_cmyk_jpeg)
{
    init_or_fail();
    enum { W = 48, H = 48 };
    uint8_t pixels[W * H * 4];
    for (size_t i = 0; i < W * H; i++) {
        pixels[4 * i] = 0;
        pixels[4 * i + 1] = 255;
        pixels[4 * i + 2] = 255;
        pixels[4 * i + 3] = 0;
    }
    VipsImage *image = image_from_bytes(pixels, W, H, 4), *tagged = NULL;
    ASSERT_INT_EQ(vips_copy(image, &tagged, "interpretation", VIPS_INTERPRETATION_CMYK, NULL), 0);
    const char *path = temp_path("cmyk.jpg");
    if (vips_jpegsave(tagged, path, NULL) != 0) {
        fprintf(stderr, "skipped: libvips cannot write a CMYK JPEG: %s\n", vips_error_buffer());
        return 0;
    }
    g_object_unref(tagged);
    g_object_unref(image);
    VipsImage *check = vips_image_new_from_file(path, NULL);
    ASSERT(check != NULL);
    if (check->Bands != 4 || check->Type != VIPS_INTERPRETATION_CMYK) {
        fprintf(stderr, "skipped: the JPEG libvips wrote is not CMYK\n");
        g_object_unref(check);
        return 0;
    }
    g_object_unref(check);

    struct blurd_image_options options = resize_options(24);
    float *inputs = input_buffer(1, 24);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    ASSERT(region_mean(inputs, 24, 0, 24, 0, 24, 0) > 0.7);
    ASSERT(region_mean(inputs, 24, 0, 24, 0, 24, 1) < 0.35);
    ASSERT(region_mean(inputs, 24, 0, 24, 0, 24, 2) < 0.35);
    free(inputs);
    return 0;
}

/* An animated GIF is judged by its first frame (black here; the second is white). */
TEST_IMPL(image_gif_first_frame)
{
    init_or_fail();
    enum { W = 32, H = 32 };
    uint8_t pixels[W * H * 2 * 3];
    memset(pixels, 0, W * H * 3);
    memset(pixels + W * H * 3, 255, W * H * 3);
    VipsImage *image = image_from_bytes(pixels, W, 2 * H, 3);
    vips_image_set_int(image, VIPS_META_PAGE_HEIGHT, H);
    const char *path = temp_path("anim.gif");
    if (vips_gifsave(image, path, NULL) != 0) {
        fprintf(stderr, "skipped: libvips cannot write GIF: %s\n", vips_error_buffer());
        g_object_unref(image);
        return 0;
    }
    g_object_unref(image);

    struct blurd_image_options options = resize_options(16);
    float *inputs = input_buffer(1, 16);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    ASSERT_STR_EQ(info.format, "gif");
    ASSERT_INT_EQ(info.width, W);
    ASSERT_INT_EQ(info.height, H);
    ASSERT(region_mean(inputs, 16, 0, 16, 0, 16, -1) < 0.05);
    free(inputs);
    return 0;
}

TEST_IMPL(image_error_missing_file)
{
    init_or_fail();
    struct blurd_image_options options = resize_options(32);
    assert_load_fails(temp_path("nothing-here.jpg"), &options, BLURD_ENOENT);
    assert_load_fails(temp_path("no-such-dir/x.jpg"), &options, BLURD_ENOENT);
    return 0;
}

TEST_IMPL(image_error_empty_file)
{
    init_or_fail();
    const char *path = temp_path("empty.jpg");
    test_write_file(path, "", 0);
    struct blurd_image_options options = resize_options(32);
    assert_load_fails(path, &options, BLURD_ENOTIMAGE);
    return 0;
}

TEST_IMPL(image_error_text_named_jpg)
{
    init_or_fail();
    const char *path = temp_path("notes.jpg");
    const char text[] = "Shopping list: bread, milk, a better camera.\n";
    test_write_file(path, text, sizeof text - 1);
    struct blurd_image_options options = resize_options(32);
    assert_load_fails(path, &options, BLURD_ENOTIMAGE);
    return 0;
}

/* Saves a noise image with `save`, keeps its first half, and expects both input modes to
 * refuse the cut file as undecodable. */
static void assert_truncated_refused(const char *whole, const char *cut, int seed,
                                     void (*save)(VipsImage *, const char *))
{
    init_or_fail();
    VipsImage *image = noise_image(512, 512, 3, seed);
    save(image, whole);
    g_object_unref(image);
    size_t n = 0;
    free(test_read_file(whole, &n));
    write_truncated(whole, cut, n / 2);

    struct blurd_image_options resize = resize_options(64), tiles = tile_options(64, 4, 0);
    assert_load_fails(cut, &resize, BLURD_EDECODE);
    assert_load_fails(cut, &tiles, BLURD_EDECODE);
}

TEST_IMPL(image_error_truncated_jpeg)
{
    assert_truncated_refused(temp_path("whole.jpg"), temp_path("cut.jpg"), 5, save_jpeg);
    return 0;
}

TEST_IMPL(image_error_truncated_png)
{
    assert_truncated_refused(temp_path("whole.png"), temp_path("cut.png"), 6, save_png);
    return 0;
}

/* A JPEG as long as it should be, its end marker in place, but with stray markers written
 * over its compressed data a third of the way in: libjpeg decodes the rest as flat blocks
 * and only warns.  All three decodes (both input modes and the grey one for the Laplacian)
 * must refuse it and say why, not judge the broken pixels. */
TEST_IMPL(image_error_damaged_jpeg_data)
{
    init_or_fail();
    const char *whole = temp_path("whole.jpg"), *damaged = temp_path("damaged.jpg");
    VipsImage *image = noise_image(512, 512, 3, 7);
    save_jpeg(image, whole);
    g_object_unref(image);
    size_t n = 0;
    char *data = test_read_file(whole, &n);
    ASSERT((unsigned char)data[n - 2] == 0xff && (unsigned char)data[n - 1] == 0xd9);
    for (size_t i = 0; i < 64; i += 2) {
        data[n / 3 + i] = (char)0xff;
        data[n / 3 + i + 1] = (char)0xd4; /* a restart marker where none belongs */
    }
    test_write_file(damaged, data, n);

    struct blurd_image_options resize = resize_options(64), tiles = tile_options(64, 4, 0);
    assert_load_fails(damaged, &resize, BLURD_EDECODE);
    assert_load_fails(damaged, &tiles, BLURD_EDECODE);

    char err[BLURD_ERR_LEN] = "";
    static uint8_t grey[512 * 512];
    int width = -1, height = -1;
    struct blurd_image_info info;
    ASSERT_INT_EQ(
        blurd_image_load_grey(damaged, 0, 0, grey, sizeof grey, &width, &height, &info, err),
        BLURD_EDECODE);
    ASSERT_CONTAINS(err, damaged);
    ASSERT_CONTAINS(err, "Corrupt JPEG data");

    /* The undamaged file still loads: the refusal is the damage's, not the format's. */
    float *inputs = input_buffer(4, 64);
    ASSERT_INT_EQ(blurd_image_load(whole, &tiles, inputs, &info, err), 0);
    free(inputs);
    return 0;
}

static uint32_t crc32_of(const uint8_t *data, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static size_t put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

/* Appends a PNG chunk (length, type, data, CRC over type and data) at `p`. */
static size_t put_chunk(uint8_t *p, const char *type, const uint8_t *data, uint32_t n)
{
    size_t used = put_be32(p, n);
    memcpy(p + used, type, 4);
    if (n > 0)
        memcpy(p + used + 4, data, n);
    used += 4 + n;
    used += put_be32(p + used, crc32_of(p + 4, 4 + (size_t)n));
    return used;
}

/* A valid 60000x60000 1-bit PNG header followed by a zlib stream holding only the first
 * row: a few KB on disk, 3.6 gigapixels if decoded. */
TEST_IMPL(image_error_decompression_bomb)
{
    init_or_fail();
    enum { SIDE = 60000, ROW = 1 + SIDE / 8 };
    static uint8_t file[ROW + 256];
    static uint8_t idat[ROW + 16];
    size_t used = 0;
    memcpy(file, "\x89PNG\r\n\x1a\n", 8);
    used += 8;

    uint8_t ihdr[13];
    put_be32(ihdr, SIDE);
    put_be32(ihdr + 4, SIDE);
    ihdr[8] = 1;  /* bit depth */
    ihdr[9] = 0;  /* greyscale */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* not interlaced */
    used += put_chunk(file + used, "IHDR", ihdr, sizeof ihdr);

    /* zlib header, one stored deflate block of ROW zero bytes, Adler-32 of those bytes. */
    size_t n = 0;
    idat[n++] = 0x78;
    idat[n++] = 0x01;
    idat[n++] = 0x01; /* final block, stored */
    idat[n++] = ROW & 0xff;
    idat[n++] = ROW >> 8;
    idat[n++] = (uint8_t)(~ROW & 0xff);
    idat[n++] = (uint8_t)((~ROW >> 8) & 0xff);
    memset(idat + n, 0, ROW);
    n += ROW;
    n += put_be32(idat + n, ((uint32_t)(ROW % 65521) << 16) | 1u);
    used += put_chunk(file + used, "IDAT", idat, (uint32_t)n);
    used += put_chunk(file + used, "IEND", NULL, 0);

    const char *path = temp_path("bomb.png");
    test_write_file(path, file, used);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct blurd_image_options resize = resize_options(200), tiles = tile_options(200, 8, 0);
    assert_load_fails(path, &resize, BLURD_ETOOBIG);
    assert_load_fails(path, &tiles, BLURD_ETOOBIG);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds =
        (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) * 1e-9;
    if (seconds > 1.0)
        TEST_FAIL("refusing the bomb took %.2f s: pixels were decoded", seconds);

    /* The limit is the caller's: a lower one refuses an ordinary image too. */
    const char *small = temp_path("small.png");
    VipsImage *image = noise_image(100, 100, 3, 8);
    save_png(image, small);
    g_object_unref(image);
    resize.max_pixels = 100 * 100 - 1;
    assert_load_fails(small, &resize, BLURD_ETOOBIG);
    resize.max_pixels = 100 * 100;
    float *inputs = input_buffer(1, 200);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(small, &resize, inputs, &info, err), 0);
    free(inputs);
    return 0;
}

TEST_IMPL(image_error_too_small)
{
    init_or_fail();
    uint8_t pixel[3] = {1, 2, 3};
    VipsImage *image = image_from_bytes(pixel, 1, 1, 3);
    const char *dot = temp_path("dot.png");
    save_png(image, dot);
    g_object_unref(image);
    image = noise_image(BLURD_IMAGE_MIN_SIDE - 1, 100, 3, 9);
    const char *sliver = temp_path("sliver.png");
    save_png(image, sliver);
    g_object_unref(image);

    struct blurd_image_options resize = resize_options(32), tiles = tile_options(32, 2, 0);
    assert_load_fails(dot, &resize, BLURD_ETOOSMALL);
    assert_load_fails(dot, &tiles, BLURD_ETOOSMALL);
    assert_load_fails(sliver, &resize, BLURD_ETOOSMALL);
    return 0;
}

TEST_IMPL(image_error_directory)
{
    init_or_fail();
    const char *path = temp_path("folder.jpg");
    ASSERT_INT_EQ(mkdir(path, 0755), 0);
    struct blurd_image_options options = resize_options(32);
    assert_load_fails(path, &options, BLURD_EISDIR);
    return 0;
}

/* Root reads any file, so as root the test drops to nobody (this process is the test's
 * alone) before trying; where that is impossible the check is skipped. */
TEST_IMPL(image_error_unreadable)
{
    init_or_fail();
    const char *path = temp_path("secret.png");
    VipsImage *image = noise_image(32, 32, 3, 10);
    save_png(image, path);
    g_object_unref(image);
    ASSERT_INT_EQ(chmod(path, 0), 0);
    if (geteuid() == 0) {
        ASSERT_INT_EQ(chmod(test_tmpdir(), 0755), 0);
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
            fprintf(stderr, "skipped: running as root and cannot drop privileges: %s\n",
                    strerror(errno));
            return 0;
        }
    }
    struct blurd_image_options options = resize_options(32);
    assert_load_fails(path, &options, BLURD_EACCES);
    return 0;
}

TEST_IMPL(image_rejects_bad_options)
{
    init_or_fail();
    const char *path = temp_path("ok.png");
    VipsImage *image = noise_image(64, 64, 3, 11);
    save_png(image, path);
    g_object_unref(image);
    float *inputs = input_buffer(1, 64);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    struct blurd_image_options options = resize_options(1);
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), BLURD_EINVAL);
    options = tile_options(32, 0, 0);
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), BLURD_EINVAL);
    options = resize_options(32);
    ASSERT_INT_EQ(blurd_image_load(NULL, &options, inputs, &info, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_image_load(path, &options, NULL, &info, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_image_load(path, &options, inputs, &info, err), 0);
    free(inputs);
    return 0;
}

/* Worker threads share libvips: loads running at once give the same inputs as alone, and a
 * failing file next to them still fails with its own path. */
struct concurrent_job {
    const char *good, *bad;
    const float *expected;
    int expected_inputs;
    int mismatches;
};

static void *concurrent_worker(void *arg)
{
    struct concurrent_job *job = arg;
    struct blurd_image_options options = tile_options(64, 4, 256);
    float *inputs = input_buffer(4, 64);
    for (int i = 0; i < 6; i++) {
        struct blurd_image_info info;
        char err[BLURD_ERR_LEN];
        if (blurd_image_load(job->good, &options, inputs, &info, err) != 0 ||
            info.inputs != job->expected_inputs ||
            memcmp(inputs, job->expected, (size_t)info.inputs * 64 * 64 * 3 * sizeof(float)) != 0)
            job->mismatches++;
        if (blurd_image_load(job->bad, &options, inputs, &info, err) != BLURD_EDECODE ||
            strstr(err, job->bad) == NULL)
            job->mismatches++;
    }
    free(inputs);
    return NULL;
}

TEST_IMPL(image_concurrent_loads_agree)
{
    init_or_fail();
    /* liborc's run-time compiler is not thread-safe in the libvips this runs on */
    ASSERT(!vips_vector_isenabled());
    const char *good = temp_path("good.jpg"), *bad = temp_path("bad.jpg");
    VipsImage *image = noise_image(600, 400, 3, 12);
    save_jpeg(image, good);
    g_object_unref(image);
    size_t n = 0;
    free(test_read_file(good, &n));
    write_truncated(good, bad, n / 3);

    struct blurd_image_options options = tile_options(64, 4, 256);
    float *expected = input_buffer(4, 64);
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_load(good, &options, expected, &info, err), 0);

    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    struct concurrent_job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct concurrent_job){good, bad, expected, info.inputs, 0};
        ASSERT_INT_EQ(pthread_create(&threads[t], NULL, concurrent_worker, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        ASSERT_INT_EQ(pthread_join(threads[t], NULL), 0);
        ASSERT_INT_EQ(jobs[t].mismatches, 0);
    }
    free(expected);
    return 0;
}

/* The content decides, not the name: each format reports itself, even misnamed. */
TEST_IMPL(image_formats_named_by_content)
{
    init_or_fail();
    VipsImage *image = noise_image(64, 48, 3, 13);
    struct {
        const char *name, *saver_options, *format;
    } cases[] = {
        {"a.webp", "[lossless=true]", "webp"},
        {"b.tif", "", "tiff"},
        {"c.png.jpg", "", "png"}, /* saved by the name below, then renamed */
        {"d.avif", "", "heif"},   /* AVIF: the HEVC encoder leaks under LeakSanitizer */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = temp_path(cases[i].name);
        char target[4200];
        if (i == 2)
            snprintf(target, sizeof target, "%s", temp_path("c.png"));
        else
            snprintf(target, sizeof target, "%s%s", path, cases[i].saver_options);
        if (vips_image_write_to_file(image, target, NULL) != 0) {
            fprintf(stderr, "skipped %s: libvips cannot write it: %s\n", cases[i].format,
                    vips_error_buffer());
            vips_error_clear();
            continue;
        }
        if (i == 2)
            ASSERT_INT_EQ(rename(target, path), 0);
        struct blurd_image_options options = resize_options(32);
        float *inputs = input_buffer(1, 32);
        struct blurd_image_info info;
        char err[BLURD_ERR_LEN];
        int rc = blurd_image_load(path, &options, inputs, &info, err);
        if (rc != 0)
            TEST_FAIL("%s: %s", blurd_error_name(rc), err);
        ASSERT_STR_EQ(info.format, cases[i].format);
        ASSERT_INT_EQ(info.width, 64);
        ASSERT_INT_EQ(info.height, 48);
        assert_tail_untouched(inputs, 1, 32);
        free(inputs);
    }
    g_object_unref(image);
    return 0;
}
