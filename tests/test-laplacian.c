/* test-laplacian.c - the variance of the Laplacian: a value worked out by hand, the cases
 * with nothing to measure, blur lowering it on synthetic and on real files, and the grey
 * decode it runs on (analysis size, no enlarging, errors). */
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/laplacian.h"
#include "test.h"

#include <string.h>

TEST_IMPL(laplacian_variance_by_hand)
{
    /* One bright pixel at (1,1) in a 4x4 image.  The interior responses are
     *   (1,1): -4*10 = -40   (2,1): left neighbour 10   (1,2): upper neighbour 10   (2,2): 0
     * mean -5, mean of squares (1600 + 100 + 100 + 0) / 4 = 450, variance 450 - 25 = 425. */
    const uint8_t dot[16] = {0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    ASSERT_NEAR(blurd_laplacian_variance(dot, 4, 4), 425.0, 1e-9);

    /* Flat, and a linear ramp (second differences vanish): nothing to measure. */
    uint8_t flat[6 * 5], ramp[6 * 5];
    memset(flat, 77, sizeof flat);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 6; x++)
            ramp[y * 6 + x] = (uint8_t)(10 + 20 * x + 7 * y);
    ASSERT_NEAR(blurd_laplacian_variance(flat, 6, 5), 0.0, 0.0);
    ASSERT_NEAR(blurd_laplacian_variance(ramp, 6, 5), 0.0, 0.0);

    /* Under 3x3 there is no interior; one interior pixel has no spread. */
    ASSERT_NEAR(blurd_laplacian_variance(dot, 2, 8), 0.0, 0.0);
    ASSERT_NEAR(blurd_laplacian_variance(dot, 8, 2), 0.0, 0.0);
    ASSERT_NEAR(blurd_laplacian_variance(dot, 3, 3), 0.0, 0.0);
    ASSERT_NEAR(blurd_laplacian_variance(NULL, 4, 4), 0.0, 0.0);

    /* Extremes stay exact: a checkerboard of 0 and 255 answers +-1020 everywhere. */
    uint8_t checker[8 * 8];
    for (int i = 0; i < 64; i++)
        checker[i] = ((i / 8 + i % 8) % 2) ? 255 : 0;
    ASSERT_NEAR(blurd_laplacian_variance(checker, 8, 8), 1020.0 * 1020.0, 1e-6);
    return 0;
}

/* A w x h box blur of radius r (edges clamped) from `in` into `out`. */
static void box_blur(const uint8_t *in, uint8_t *out, int w, int h, int r)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sum = 0, n = 0;
            for (int dy = -r; dy <= r; dy++)
                for (int dx = -r; dx <= r; dx++) {
                    int sx = x + dx < 0 ? 0 : x + dx >= w ? w - 1 : x + dx;
                    int sy = y + dy < 0 ? 0 : y + dy >= h ? h - 1 : y + dy;
                    sum += in[sy * w + sx];
                    n++;
                }
            out[y * w + x] = (uint8_t)((sum + n / 2) / n);
        }
}

TEST_IMPL(laplacian_blur_lowers_the_variance)
{
    /* A synthetic "photo": blocks of random grey with fine noise on top. */
    enum { W = 96, H = 64 };
    static uint8_t sharp[W * H], soft[W * H], softer[W * H];
    uint64_t state = 42;
    uint8_t blocks[12 * 8];
    for (int i = 0; i < 12 * 8; i++)
        blocks[i] = (uint8_t)test_random_uniform(&state, 30.0f, 220.0f);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            sharp[y * W + x] = (uint8_t)(blocks[(y / 8) * 12 + x / 8] +
                                         test_random_uniform(&state, -20.0f, 20.0f));
    box_blur(sharp, soft, W, H, 1);
    box_blur(sharp, softer, W, H, 3);
    double v_sharp = blurd_laplacian_variance(sharp, W, H);
    double v_soft = blurd_laplacian_variance(soft, W, H);
    double v_softer = blurd_laplacian_variance(softer, W, H);
    ASSERT(v_sharp > 100.0);
    ASSERT(v_soft < v_sharp / 4.0);
    ASSERT(v_softer < v_soft / 4.0);
    return 0;
}

static void vips_or_fail(const char *args)
{
    char command[4096], *err = NULL;
    snprintf(command, sizeof command, "vips %s", args);
    if (test_run(command, NULL, &err) != 0)
        TEST_FAIL("%s: %s", command, err);
    free(err);
}

TEST_IMPL(laplacian_score_file_blurred_is_lower)
{
    char err[BLURD_ERR_LEN], args[4096];
    const char *dir = test_tmpdir();
    /* 3000 x 2000: measured at 1024 x 683, shrunk on load */
    snprintf(args, sizeof args, "gaussnoise '%s/noise.v' 3000 2000 --mean 128 --sigma 30", dir);
    vips_or_fail(args);
    snprintf(args, sizeof args, "gaussblur '%s/noise.v' '%s/sharp.jpg[Q=95]' 0.5", dir, dir);
    vips_or_fail(args);
    snprintf(args, sizeof args, "gaussblur '%s/noise.v' '%s/blurred.jpg[Q=95]' 8", dir, dir);
    vips_or_fail(args);

    uint8_t *work = malloc(BLURD_LAPLACIAN_WORK_BYTES);
    double sharp = -1.0, blurred = -1.0;
    struct blurd_image_info info;
    ASSERT_INT_EQ(blurd_laplacian_score_file(test_path("sharp.jpg"), 0, work, &sharp, &info, err),
                  0);
    ASSERT_INT_EQ(info.width, 3000);
    ASSERT_STR_EQ(info.format, "jpeg");
    /* no work buffer: one is allocated for the call */
    ASSERT_INT_EQ(
        blurd_laplacian_score_file(test_path("blurred.jpg"), 0, NULL, &blurred, NULL, err), 0);
    ASSERT(blurred < sharp / 10.0);

    /* the same file always scores the same */
    double again = -1.0;
    ASSERT_INT_EQ(blurd_laplacian_score_file(test_path("sharp.jpg"), 0, work, &again, NULL, err),
                  0);
    ASSERT_NEAR(again, sharp, 0.0);

    /* refused like every decode, with the path named */
    ASSERT_INT_EQ(blurd_laplacian_score_file(test_path("missing.jpg"), 0, work, &again, NULL, err),
                  BLURD_ENOENT);
    ASSERT_CONTAINS(err, "missing.jpg");
    ASSERT_INT_EQ(
        blurd_laplacian_score_file(test_path("sharp.jpg"), 1000000, work, &again, NULL, err),
        BLURD_ETOOBIG);
    free(work);
    return 0;
}

TEST_IMPL(laplacian_grey_decode_size_and_values)
{
    char err[BLURD_ERR_LEN], args[4096];
    const char *dir = test_tmpdir();
    static uint8_t grey[BLURD_LAPLACIAN_WORK_BYTES];
    struct blurd_image_info info;
    int width, height;

    /* large: the long side shrunk to the analysis size, the aspect kept */
    snprintf(args, sizeof args, "gaussnoise '%s/tall.png' 1500 3000", dir);
    vips_or_fail(args);
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("tall.png"), BLURD_LAPLACIAN_SIDE, 0, grey,
                                        sizeof grey, &width, &height, &info, err),
                  0);
    ASSERT_INT_EQ(height, 1024);
    ASSERT_INT_EQ(width, 512);
    ASSERT_INT_EQ(info.width, 1500);
    ASSERT_INT_EQ(info.height, 3000);
    ASSERT_INT_EQ(info.inputs, 0);

    /* small: never enlarged; a uniform grey keeps its value exactly */
    snprintf(args, sizeof args, "black '%s/black.v' 300 200", dir);
    vips_or_fail(args);
    snprintf(args, sizeof args, "linear '%s/black.v' '%s/grey.png' 1 77 --uchar", dir, dir);
    vips_or_fail(args);
    memset(grey, 0, 300 * 200);
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("grey.png"), BLURD_LAPLACIAN_SIDE, 0, grey,
                                        sizeof grey, &width, &height, &info, err),
                  0);
    ASSERT_INT_EQ(width, 300);
    ASSERT_INT_EQ(height, 200);
    for (int i = 0; i < 300 * 200; i++)
        ASSERT_INT_EQ(grey[i], 77);

    /* native size on request; a buffer too small is refused, not overrun */
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("tall.png"), 0, 0, grey, sizeof grey, &width,
                                        &height, &info, err),
                  BLURD_EINVAL);
    ASSERT_CONTAINS(err, "tall.png");
    ASSERT_INT_EQ(width, 0);
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("grey.png"), 0, 0, grey, 300 * 200, &width,
                                        &height, &info, err),
                  0);
    ASSERT_INT_EQ(width, 300);
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("grey.png"), -1, 0, grey, sizeof grey, &width,
                                        &height, &info, err),
                  BLURD_EINVAL);

    /* untrusted-file checks as for the network's decode */
    test_write_file(test_path("text.jpg"), "not a picture\n", 14);
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("text.jpg"), BLURD_LAPLACIAN_SIDE, 0, grey,
                                        sizeof grey, &width, &height, &info, err),
                  BLURD_ENOTIMAGE);
    snprintf(args, sizeof args, "black '%s/tiny.png' 10 40", dir);
    vips_or_fail(args);
    ASSERT_INT_EQ(blurd_image_load_grey(test_path("tiny.png"), BLURD_LAPLACIAN_SIDE, 0, grey,
                                        sizeof grey, &width, &height, &info, err),
                  BLURD_ETOOSMALL);
    return 0;
}
