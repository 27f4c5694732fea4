/* test-dataset.c - the blur masks, reading labelled folders, the split by source, and
 * `blurd synth`, in process and end to end through the real binary, on the sample photos. */
#include "blurd/dataset.h"
#include "blurd/error.h"
#include "blurd/image.h"
#include "test.h"

#include <dirent.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vips/vips.h>

/* ---- helpers ----------------------------------------------------------------------- */

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0)
        TEST_FAIL("mkdir %s", path);
}

/* "a/b", living until the test process ends like test_path's strings (kept reachable, so
 * tests need not free it). */
static char *join(const char *a, const char *b)
{
    static char *kept[1024];
    static size_t kept_count;
    size_t n = strlen(a) + strlen(b) + 2;
    char *path = malloc(n);
    ASSERT(path != NULL && kept_count < sizeof kept / sizeof kept[0]);
    snprintf(path, n, "%s/%s", a, b);
    kept[kept_count++] = path;
    return path;
}

/* A folder `name` in the test's directory holding links to these sample photos. */
static char *photo_folder(const char *name, const char *const *photos, int count)
{
    char *dir = test_path(name);
    make_dir(dir);
    for (int i = 0; i < count; i++) {
        char target[4096];
        snprintf(target, sizeof target, "%s/data/samples/Undistorted/%s", test_source_dir(),
                 photos[i]);
        char *link = join(dir, photos[i]);
        if (symlink(target, link) != 0)
            TEST_FAIL("symlink %s", target);
    }
    return dir;
}

static int synth(const char *sharp, const char *out, int count, uint64_t seed,
                 struct blurd_synth_summary *summary, char *err)
{
    struct blurd_synth_options options = {sharp, out, count, seed, 0};
    return blurd_synth_run(&options, summary, err);
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        n += entry->d_name[0] != '.';
    closedir(d);
    return n;
}

/* True if every file of `a`'s class folders and labels.csv has the same bytes in `b`. */
static int same_files(const char *a, const char *b, int count)
{
    const char *names[] = {"labels.csv", NULL};
    for (int i = -1; i < 2 * count; i++) {
        char name[64];
        if (i < 0)
            snprintf(name, sizeof name, "%s", names[0]);
        else
            snprintf(name, sizeof name, "%s/%05d.jpg", i < count ? "Blurred" : "Undistorted",
                     i % count);
        char *pa = join(a, name), *pb = join(b, name);
        size_t na, nb;
        char *da = test_read_file(pa, &na), *db = test_read_file(pb, &nb);
        int same = na == nb && memcmp(da, db, na) == 0;
        free(da);
        free(db);
        if (!same)
            return 0;
    }
    return 1;
}

/* Variance of the 4-neighbour Laplacian of the image's grey version: the classical
 * sharpness measure, computed here independently of blurd's own. */
static double laplacian_variance(const char *path)
{
    VipsImage *image = vips_image_new_from_file(path, NULL), *grey = NULL;
    ASSERT(image != NULL);
    if (vips_colourspace(image, &grey, VIPS_INTERPRETATION_B_W, NULL) != 0)
        TEST_FAIL("%s: %s", path, vips_error_buffer());
    g_object_unref(image);
    size_t bytes;
    uint8_t *g = vips_image_write_to_memory(grey, &bytes);
    int w = grey->Xsize, h = grey->Ysize;
    g_object_unref(grey);
    ASSERT(g != NULL && bytes == (size_t)w * (size_t)h);
    double sum = 0.0, sum2 = 0.0;
    size_t n = 0;
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++) {
            const uint8_t *p = g + (size_t)y * (size_t)w + (size_t)x;
            double l = (double)(p[-1] + p[1] + p[-w] + p[w]) - 4.0 * p[0];
            sum += l;
            sum2 += l * l;
            n++;
        }
    g_free(g);
    double mean = sum / (double)n;
    return sum2 / (double)n - mean * mean;
}

static double mask_sum(const struct blurd_synth_mask *m)
{
    double sum = 0.0;
    for (int i = 0; i < m->width * m->height; i++)
        sum += m->weights[i];
    return sum;
}

static double tap(const struct blurd_synth_mask *m, int x, int y)
{
    return m->weights[(y + m->height / 2) * m->width + (x + m->width / 2)];
}

/* ---- masks ------------------------------------------------------------------------- */

TEST_IMPL(dataset_masks_normalised_with_the_right_support)
{
    struct blurd_synth_mask m = {0, 0, NULL};

    /* Gaussian: one row of 2*ceil(3 sigma)+1 taps, symmetric, variance sigma^2 + 1/12 (the
     * Gaussian integrated over each pixel), short of it only by the cut at 3 sigma. */
    const double sigmas[] = {0.8, 1.5, 4.0};
    for (int i = 0; i < 3; i++) {
        double s = sigmas[i];
        ASSERT_INT_EQ(blurd_synth_mask_gaussian(s, &m), 0);
        ASSERT_INT_EQ(m.height, 1);
        ASSERT_INT_EQ(m.width, 2 * (int)ceil(3 * s) + 1);
        ASSERT_NEAR(mask_sum(&m), 1.0, 1e-12);
        double variance = 0.0;
        for (int x = -m.width / 2; x <= m.width / 2; x++) {
            ASSERT_NEAR(tap(&m, x, 0), tap(&m, -x, 0), 1e-15);
            ASSERT(tap(&m, x, 0) <= tap(&m, 0, 0));
            variance += tap(&m, x, 0) * x * x;
        }
        ASSERT_NEAR(variance, s * s + 1.0 / 12, 0.05 * s * s);
        blurd_synth_mask_clear(&m);
    }

    /* Disk: taps wholly inside the circle all weigh the most, taps wholly outside nothing. */
    const double radii[] = {1.0, 2.5, 6.0};
    for (int i = 0; i < 3; i++) {
        double r = radii[i];
        ASSERT_INT_EQ(blurd_synth_mask_disk(r, &m), 0);
        ASSERT_INT_EQ(m.width, 2 * (int)ceil(r - 0.5) + 1);
        ASSERT_INT_EQ(m.height, m.width);
        ASSERT_NEAR(mask_sum(&m), 1.0, 1e-12);
        double peak = tap(&m, 0, 0);
        for (int y = -m.height / 2; y <= m.height / 2; y++)
            for (int x = -m.width / 2; x <= m.width / 2; x++) {
                double farthest = hypot(abs(x) + 0.5, abs(y) + 0.5);
                double nearest = hypot(fmax(0.0, abs(x) - 0.5), fmax(0.0, abs(y) - 0.5));
                if (farthest <= r)
                    ASSERT_NEAR(tap(&m, x, y), peak, 1e-12);
                if (nearest >= r)
                    ASSERT(tap(&m, x, y) == 0.0);
                ASSERT(tap(&m, x, y) <= peak + 1e-15);
            }
        blurd_synth_mask_clear(&m);
    }

    /* Motion: along a row at angle 0, a column at pi/2, near the diagonal at pi/4; the
     * weight spans the length (give or take the bilinear ends) and balances on the centre. */
    const double lengths[] = {3.0, 9.0, 25.0};
    for (int i = 0; i < 3; i++) {
        double length = lengths[i];
        ASSERT_INT_EQ(blurd_synth_mask_motion(length, 0.0, &m), 0);
        ASSERT_NEAR(mask_sum(&m), 1.0, 1e-12);
        int first = 1000, last = -1000;
        double moment = 0.0;
        for (int y = -m.height / 2; y <= m.height / 2; y++)
            for (int x = -m.width / 2; x <= m.width / 2; x++) {
                if (tap(&m, x, y) == 0.0)
                    continue;
                ASSERT_INT_EQ(y, 0);
                first = x < first ? x : first;
                last = x > last ? x : last;
                moment += x * tap(&m, x, y);
            }
        ASSERT(last - first + 1 >= length - 1 && last - first + 1 <= length + 2);
        ASSERT_NEAR(moment, 0.0, 1e-12);
        blurd_synth_mask_clear(&m);

        ASSERT_INT_EQ(blurd_synth_mask_motion(length, M_PI / 2, &m), 0);
        for (int y = -m.height / 2; y <= m.height / 2; y++)
            for (int x = -m.width / 2; x <= m.width / 2; x++)
                if (tap(&m, x, y) != 0.0)
                    ASSERT_INT_EQ(x, 0);
        blurd_synth_mask_clear(&m);

        ASSERT_INT_EQ(blurd_synth_mask_motion(length, M_PI / 4, &m), 0);
        ASSERT_NEAR(mask_sum(&m), 1.0, 1e-12);
        for (int y = -m.height / 2; y <= m.height / 2; y++)
            for (int x = -m.width / 2; x <= m.width / 2; x++)
                if (tap(&m, x, y) != 0.0) {
                    ASSERT(fabs((double)(x - y)) / M_SQRT2 <= 1.0); /* near the line y = x */
                    ASSERT(hypot(x, y) <= length / 2 + 1.5);
                }
        blurd_synth_mask_clear(&m);
    }

    /* Shake: normalised, centred on its centre of mass, spread over both axes, within
     * its path length; the seed alone decides the path. */
    struct blurd_synth_mask again = {0, 0, NULL};
    for (uint64_t seed = 1; seed <= 4; seed++) {
        ASSERT_INT_EQ(blurd_synth_mask_shake(20.0, seed, &m), 0);
        ASSERT_NEAR(mask_sum(&m), 1.0, 1e-12);
        double mx = 0.0, my = 0.0;
        int rows = 0, columns = 0;
        for (int y = -m.height / 2; y <= m.height / 2; y++)
            for (int x = -m.width / 2; x <= m.width / 2; x++) {
                mx += x * tap(&m, x, y);
                my += y * tap(&m, x, y);
                ASSERT(tap(&m, x, y) >= 0.0);
                ASSERT(tap(&m, x, y) == 0.0 || hypot(x, y) <= 20.0 / 2 + 2);
            }
        for (int y = -m.height / 2; y <= m.height / 2; y++) {
            double row = 0.0;
            for (int x = -m.width / 2; x <= m.width / 2; x++)
                row += tap(&m, x, y);
            rows += row > 0.0;
        }
        for (int x = -m.width / 2; x <= m.width / 2; x++) {
            double column = 0.0;
            for (int y = -m.height / 2; y <= m.height / 2; y++)
                column += tap(&m, x, y);
            columns += column > 0.0;
        }
        ASSERT_NEAR(mx, 0.0, 1e-9);
        ASSERT_NEAR(my, 0.0, 1e-9);
        ASSERT(rows >= 3 || columns >= 3);
        ASSERT_INT_EQ(blurd_synth_mask_shake(20.0, seed, &again), 0);
        ASSERT_INT_EQ(again.width, m.width);
        ASSERT(memcmp(again.weights, m.weights, sizeof(double) * (size_t)m.width * m.height) == 0);
        blurd_synth_mask_clear(&again);
        ASSERT_INT_EQ(blurd_synth_mask_shake(20.0, seed + 100, &again), 0);
        ASSERT(again.width != m.width ||
               memcmp(again.weights, m.weights, sizeof(double) * (size_t)m.width * m.height) != 0);
        blurd_synth_mask_clear(&again);
        blurd_synth_mask_clear(&m);
    }

    /* Strengths outside 0.1..100 pixels are refused. */
    ASSERT_INT_EQ(blurd_synth_mask_gaussian(0.0, &m), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_synth_mask_disk(-1.0, &m), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_synth_mask_motion(NAN, 0.0, &m), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_synth_mask_motion(5.0, INFINITY, &m), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_synth_mask_shake(1000.0, 1, &m), BLURD_EINVAL);
    blurd_synth_mask_clear(NULL);
    return 0;
}

/* ---- reading DATA ------------------------------------------------------------------ */

TEST_IMPL(dataset_read_lists_labels_and_sources)
{
    char *data = test_path("DATA");
    char *blurred = join(data, "Blurred"), *clear = join(data, "Undistorted");
    make_dir(data);
    make_dir(blurred);
    make_dir(clear);
    const char *jpeg = "\xff\xd8\xff\xe0 not really a jpeg";
    const char *files[] = {"Blurred/b.jpg",       "Blurred/a.PNG",         "Blurred/notes.txt",
                           "Blurred/.hidden.jpg", "Undistorted/c.webp",    "Undistorted/b.jpg",
                           "Undistorted/x.tif",   "Undistorted/locked.jpg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = join(data, files[i]);
        test_write_file(path, jpeg, strlen(jpeg));
    }
    char *sub = join(blurred, "sub.jpg"); /* a folder with an image's name is no image */
    make_dir(sub);
    char *locked = join(clear, "locked.jpg");
    ASSERT(chmod(locked, 0) == 0);

    /* Corrupt, unreadable and misnamed images are listed all the same: decoding is for the
     * trainer, which reports them. */
    char err[BLURD_ERR_LEN];
    struct blurd_dataset d;
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), 0);
    ASSERT_INT_EQ(d.count, 6);
    ASSERT_INT_EQ(d.class_count[BLURD_DATASET_BLURRED], 2);
    ASSERT_INT_EQ(d.class_count[BLURD_DATASET_CLEAR], 4);
    ASSERT_INT_EQ(d.skipped, 3);
    const char *names[] = {"a.PNG", "b.jpg", "b.jpg", "c.webp", "locked.jpg", "x.tif"};
    for (size_t i = 0; i < 6; i++) {
        ASSERT_STR_EQ(d.entries[i].name, names[i]);
        ASSERT_STR_EQ(d.entries[i].source, names[i]); /* no labels.csv: the file name */
        ASSERT_INT_EQ(d.entries[i].label, i < 2 ? BLURD_DATASET_BLURRED : BLURD_DATASET_CLEAR);
        char expected[4096];
        snprintf(expected, sizeof expected, "%s/%s/%s", data,
                 blurd_dataset_folder_name(d.entries[i].label), names[i]);
        ASSERT_STR_EQ(d.entries[i].path, expected);
    }
    blurd_dataset_clear(&d);
    ASSERT_INT_EQ(d.count, 0);
    blurd_dataset_clear(NULL);

    /* labels.csv names the sources (quoted fields, CRLF, columns in any order); files it
     * does not list keep their own names. */
    char *labels = join(data, "labels.csv");
    const char *csv = "label,file,source\r\n"
                      "blurred,Blurred/b.jpg,\"beach, \"\"north\"\".jpg\"\r\n"
                      "clear,Undistorted/x.tif,beach.jpg\r\n"
                      "\r\n"
                      "clear,Undistorted/gone.jpg,other.jpg\r\n";
    test_write_file(labels, csv, strlen(csv));
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), 0);
    ASSERT_STR_EQ(d.entries[0].source, "a.PNG");
    ASSERT_STR_EQ(d.entries[1].source, "beach, \"north\".jpg");
    ASSERT_STR_EQ(d.entries[2].source, "b.jpg");
    ASSERT_STR_EQ(d.entries[5].source, "beach.jpg");
    blurd_dataset_clear(&d);

    /* A labels.csv without the columns is ignored (with a warning), not fatal. */
    test_write_file(labels, "garbage\n1,2\n", 12);
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), 0);
    ASSERT_STR_EQ(d.entries[1].source, "b.jpg");
    blurd_dataset_clear(&d);
    return 0;
}

TEST_IMPL(dataset_read_errors_name_the_folder)
{
    char err[BLURD_ERR_LEN];
    struct blurd_dataset d;
    char *data = test_path("DATA");

    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, data);
    ASSERT_INT_EQ(d.count, 0);

    test_write_file(data, "x", 1);
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, "not a folder");
    ASSERT(unlink(data) == 0);

    make_dir(data);
    char *blurred = join(data, "Blurred"), *clear = join(data, "Undistorted");
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, blurred);

    make_dir(blurred);
    char *photo = join(blurred, "a.jpg");
    test_write_file(photo, "x", 1);
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, clear);

    /* A class folder with only non-images is empty: an error naming it. */
    make_dir(clear);
    char *notes = join(clear, "notes.txt");
    test_write_file(notes, "x", 1);
    ASSERT_INT_EQ(blurd_dataset_read(&d, data, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, clear);
    ASSERT_CONTAINS(err, "no image files");
    ASSERT_INT_EQ(d.count, 0);

    ASSERT_INT_EQ(blurd_dataset_read(&d, NULL, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_dataset_read(NULL, data, err), BLURD_EINVAL);
    return 0;
}

TEST_IMPL(dataset_split_by_source)
{
    /* 200 files from 50 sources, 4 each, alternating between the classes. */
    enum { SOURCES = 50, PER_SOURCE = 4 };
    struct blurd_dataset d = {0};
    d.entries = calloc(SOURCES * PER_SOURCE, sizeof *d.entries);
    ASSERT(d.entries != NULL);
    char sources[SOURCES][32];
    for (int s = 0; s < SOURCES; s++) {
        snprintf(sources[s], sizeof sources[s], "photo-%02d.jpg", s);
        for (int k = 0; k < PER_SOURCE; k++) {
            struct blurd_dataset_entry *e = &d.entries[d.count++];
            e->source = sources[s];
            e->label = k % 2;
        }
    }
    unsigned char validation[SOURCES * PER_SOURCE], again[SOURCES * PER_SOURCE];
    size_t chosen = blurd_dataset_split(&d, 0.2, validation);
    ASSERT(chosen > 0 && chosen < d.count);
    ASSERT_INT_EQ(chosen % PER_SOURCE, 0);
    for (int s = 0; s < SOURCES; s++)
        for (int k = 1; k < PER_SOURCE; k++)
            ASSERT_INT_EQ(validation[s * PER_SOURCE + k], validation[s * PER_SOURCE]);
    /* About a fifth of the sources: 10 expected, and far from 0 or 50. */
    ASSERT(chosen / PER_SOURCE >= 3 && chosen / PER_SOURCE <= 20);
    ASSERT_INT_EQ(blurd_dataset_split(&d, 0.2, again), chosen);
    ASSERT(memcmp(validation, again, d.count) == 0);
    /* A larger fraction only adds sources: a source's side depends on its name alone. */
    ASSERT(blurd_dataset_split(&d, 0.5, again) > chosen);
    for (size_t i = 0; i < d.count; i++)
        ASSERT(!validation[i] || again[i]);
    ASSERT_INT_EQ(blurd_dataset_split(&d, 0.0, again), 0);
    ASSERT_INT_EQ(blurd_dataset_split(&d, 1.0, again), d.count);
    for (size_t i = 0; i < d.count; i++)
        ASSERT_INT_EQ(again[i], 1);
    double p = blurd_dataset_source_position("photo-01.jpg");
    ASSERT(p >= 0.0 && p < 1.0);
    ASSERT(p != blurd_dataset_source_position("photo-02.jpg"));

    /* With two sources, a tiny or huge fraction still leaves both sides one source. */
    d.count = 2 * PER_SOURCE;
    ASSERT_INT_EQ(blurd_dataset_split(&d, 1e-12, again), PER_SOURCE);
    ASSERT_INT_EQ(blurd_dataset_split(&d, 1.0 - 1e-12, again), PER_SOURCE);
    /* One source cannot be split: it goes where its position says. */
    d.count = PER_SOURCE;
    size_t one = blurd_dataset_split(&d, 0.5, again);
    ASSERT(one == 0 || one == PER_SOURCE);
    free(d.entries);
    return 0;
}

/* ---- synth ------------------------------------------------------------------------- */

static const char *const sample_photos[] = {"astronaut.jpg", "rocket.jpg", "wood.jpg"};

TEST_IMPL(dataset_synth_is_deterministic_by_seed)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *sharp = photo_folder("sharp", sample_photos, 2);
    char *a = test_path("a"), *b = test_path("b"), *c = test_path("c");
    struct blurd_synth_summary summary;
    ASSERT_INT_EQ(synth(sharp, a, 3, 11, &summary, err), 0);
    ASSERT_INT_EQ(synth(sharp, b, 3, 11, NULL, err), 0);
    ASSERT_INT_EQ(synth(sharp, c, 3, 12, NULL, err), 0);
    ASSERT(same_files(a, b, 3));
    ASSERT(!same_files(a, c, 3));
    /* Every image differs under another seed, not just some. */
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "Blurred/%05d.jpg", i);
        char *pa = join(a, name), *pc = join(c, name);
        size_t na, nc;
        char *da = test_read_file(pa, &na), *dc = test_read_file(pc, &nc);
        ASSERT(na != nc || memcmp(da, dc, na) != 0);
        free(da);
        free(dc);
    }
    ASSERT_INT_EQ(summary.photos, 2);
    ASSERT_INT_EQ(summary.unreadable, 0);
    return 0;
}

TEST_IMPL(dataset_synth_writes_labelled_blurred_and_sharp_sets)
{
    enum { COUNT = 12 };
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *sharp = photo_folder("sharp", sample_photos, 3);
    char *out = test_path("out");
    struct blurd_synth_summary summary;
    ASSERT_INT_EQ(synth(sharp, out, COUNT, 5, &summary, err), 0);
    ASSERT_INT_EQ(summary.photos, 3);
    ASSERT_INT_EQ(summary.written[BLURD_DATASET_BLURRED], COUNT);
    ASSERT_INT_EQ(summary.written[BLURD_DATASET_CLEAR], COUNT);
    ASSERT_INT_EQ(summary.kernels[BLURD_SYNTH_NONE] + summary.kernels[BLURD_SYNTH_DOF], COUNT);
    for (int k = BLURD_SYNTH_GAUSSIAN; k <= BLURD_SYNTH_SHAKE; k++)
        ASSERT(summary.kernels[k] >= 1);
    ASSERT(summary.kernels[BLURD_SYNTH_DOF] >=
           1); /* 15% of the sharp ones: one at least, by seed 5 */

    /* labels.csv: the header, then one row per image sorted by file, each naming a real
     * photo, a kernel that matches the class, a strength in its range, a crop at least 200
     * pixels on each side, noise 0 or 2..12, quality 70..95, the share of detail its blur
     * kept (1 for a sharp image without a defocused background) and its softness, each in
     * 0..1; how many of each class passed their check agrees with the summary. */
    char *labels_path = join(out, "labels.csv");
    char *labels = test_read_file(labels_path, NULL);
    char *line = strtok(labels, "\n");
    ASSERT_STR_EQ(line,
                  "file,label,source,kernel,strength,crop_w,crop_h,noise,quality,kept,softness");
    int rows = 0, kinds[BLURD_SYNTH_KERNELS] = {0};
    size_t doubtful_at_least[2] = {0, 0}, doubtful_at_most[2] = {0, 0};
    double noises[2 * COUNT];
    while ((line = strtok(NULL, "\n")) != NULL) {
        char file[64], label[16], source[64], kernel[16];
        double strength, noise, kept, softness;
        int crop_w, crop_h, quality;
        ASSERT_INT_EQ(sscanf(line, "%63[^,],%15[^,],%63[^,],%15[^,],%lf,%d,%d,%lf,%d,%lf,%lf", file,
                             label, source, kernel, &strength, &crop_w, &crop_h, &noise, &quality,
                             &kept, &softness),
                      11);
        int blurred = rows < COUNT;
        char expected[64];
        snprintf(expected, sizeof expected, "%s/%05d.jpg", blurred ? "Blurred" : "Undistorted",
                 rows % COUNT);
        ASSERT_STR_EQ(file, expected);
        ASSERT_STR_EQ(label, blurred ? "blurred" : "clear");
        ASSERT_STR_EQ(source, sample_photos[(rows % COUNT) % 3]);
        int kind = -1;
        for (int k = 0; k < BLURD_SYNTH_KERNELS; k++)
            if (strcmp(kernel, blurd_synth_kernel_name(k)) == 0)
                kind = k;
        ASSERT(blurred ? kind >= BLURD_SYNTH_GAUSSIAN && kind <= BLURD_SYNTH_SHAKE
                       : kind == BLURD_SYNTH_NONE || kind == BLURD_SYNTH_DOF);
        kinds[kind]++;
        if (kind == BLURD_SYNTH_GAUSSIAN)
            ASSERT(strength >= 0.79 && strength <= 4.01);
        else if (kind == BLURD_SYNTH_DISK)
            ASSERT(strength >= 0.99 && strength <= 6.01);
        else if (kind == BLURD_SYNTH_DOF)
            ASSERT(strength >= 1.99 && strength <= 10.01);
        else if (kind != BLURD_SYNTH_NONE)
            ASSERT(strength >= 2.99 && strength <= 25.01);
        ASSERT(crop_w >= 200 && crop_h >= 200 && crop_w <= 1600 * 4 && crop_h <= 1600 * 4);
        ASSERT(noise == 0.0 || (noise >= 2.0 && noise <= 12.0));
        noises[rows] = noise;
        ASSERT(quality >= 70 && quality <= 95);
        ASSERT(kept > 0.0 && kept <= 1.0 && softness > 0.0 && softness < 1.0);
        if (kind == BLURD_SYNTH_NONE)
            ASSERT(kept == 1.0);
        else
            ASSERT(kept < 1.0);
        /* labels.csv rounds to 3 decimals: a figure within that of the limit may be
         * either side of it */
        double doubt = blurred ? kept - BLURD_SYNTH_BLURRED_KEPT_MAX
                               : softness - BLURD_SYNTH_CLEAR_SOFTNESS_MAX;
        int label_index = blurred ? BLURD_DATASET_BLURRED : BLURD_DATASET_CLEAR;
        doubtful_at_least[label_index] += doubt > 0.0005;
        doubtful_at_most[label_index] += doubt > -0.0005;

        /* The file exists, is a JPEG of the recorded crop or smaller (scaled down). */
        char *path = join(out, file);
        VipsImage *image = vips_image_new_from_file(path, NULL);
        ASSERT(image != NULL);
        ASSERT(image->Xsize <= crop_w && image->Ysize <= crop_h);
        ASSERT(image->Xsize >= 190 && image->Ysize >= 190);
        g_object_unref(image);
        rows++;
    }
    ASSERT_INT_EQ(rows, 2 * COUNT);
    for (int k = 0; k < BLURD_SYNTH_KERNELS; k++)
        ASSERT_INT_EQ(kinds[k], summary.kernels[k]);
    for (int label = 0; label < 2; label++) {
        ASSERT(doubtful_at_least[label] <= summary.doubtful[label] &&
               summary.doubtful[label] <= doubtful_at_most[label]);
        ASSERT(summary.redrawn[label] >= summary.doubtful[label]);
    }
    free(labels);

    /* The blurred class is measurably less sharp, by the classical measure.  Both classes
     * get the same noise, and the Laplacian's variance counts noise as sharpness (the very
     * weakness of the classical method), so the comparison is made on the images without
     * added noise, where only the blur differs. */
    double sharpness[2] = {0.0, 0.0};
    int measured[2] = {0, 0};
    for (int label = 0; label < 2; label++)
        for (int i = 0; i < COUNT; i++) {
            if (noises[label * COUNT + i] != 0.0)
                continue;
            char name[64];
            snprintf(name, sizeof name, "%s/%05d.jpg", blurd_dataset_folder_name(label), i);
            char *path = join(out, name);
            sharpness[label] += laplacian_variance(path);
            measured[label]++;
        }
    ASSERT(measured[0] >= 2 && measured[1] >= 2);
    sharpness[0] /= measured[0];
    sharpness[1] /= measured[1];
    if (!(sharpness[BLURD_DATASET_BLURRED] < 0.7 * sharpness[BLURD_DATASET_CLEAR]))
        TEST_FAIL("mean Laplacian variance: blurred %.1f, sharp %.1f",
                  sharpness[BLURD_DATASET_BLURRED], sharpness[BLURD_DATASET_CLEAR]);

    /* Read back as training data: the sources come from labels.csv. */
    struct blurd_dataset d;
    ASSERT_INT_EQ(blurd_dataset_read(&d, out, err), 0);
    ASSERT_INT_EQ(d.count, 2 * COUNT);
    for (size_t i = 0; i < d.count; i++)
        ASSERT_STR_EQ(d.entries[i].source, sample_photos[(i % COUNT) % 3]);
    blurd_dataset_clear(&d);
    return 0;
}

/* The mean of labels.csv's `softness` over the clear rows of `dir`'s set. */
static double mean_clear_softness(const char *dir)
{
    char *labels = test_read_file(join(dir, "labels.csv"), NULL);
    double sum = 0.0;
    int n = 0;
    for (char *line = strtok(labels, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        const char *last = strrchr(line, ',');
        if (strstr(line, ",clear,") != NULL && last != NULL) {
            sum += strtod(last + 1, NULL);
            n++;
        }
    }
    free(labels);
    ASSERT(n > 0);
    return sum / n;
}

/* Marks in shrunk[sample][label] the images of `dir`'s set that were scaled down: saved
 * smaller than the crop labels.csv says they were cut as. */
static void find_shrunk(const char *dir, int count, bool shrunk[][BLURD_DATASET_CLASSES])
{
    char *labels = test_read_file(join(dir, "labels.csv"), NULL);
    int rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(labels, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char file[64], label[16];
        int sample, crop_w, crop_h;
        /* file,label,source,kernel,strength,crop_w,crop_h,... (sources here have no comma) */
        if (sscanf(line, "%63[^,],%15[^,],%*[^,],%*[^,],%*[^,],%d,%d", file, label, &crop_w,
                   &crop_h) != 4)
            continue; /* the header */
        const char *digits = strchr(file, '/');
        ASSERT(digits != NULL && sscanf(digits + 1, "%d", &sample) == 1);
        ASSERT(sample >= 0 && sample < count);
        VipsImage *image = vips_image_new_from_file(join(dir, file), NULL);
        ASSERT(image != NULL);
        int saved_long = MAX(vips_image_get_width(image), vips_image_get_height(image));
        g_object_unref(image);
        ASSERT(strcmp(label, "clear") == 0 || strcmp(label, "blurred") == 0);
        int which = strcmp(label, "clear") == 0 ? BLURD_DATASET_CLEAR : BLURD_DATASET_BLURRED;
        shrunk[sample][which] = saved_long < MAX(crop_w, crop_h);
        rows++;
    }
    free(labels);
    ASSERT_INT_EQ(rows, 2 * count);
}

TEST_IMPL(dataset_synth_draws_again_images_unlike_their_label)
{
    enum { COUNT = 8 };
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    /* The same photo sharp, and soft all over (a Gaussian of sigma 2.5 px, saved losslessly):
     * a photo no clear image should be cut from at full size. */
    static const char *const ladybird[] = {"ladybird.jpg"};
    char *sharp = photo_folder("sharp", ladybird, 1);
    char *soft = test_path("soft");
    make_dir(soft);
    VipsImage *photo = vips_image_new_from_file(join(sharp, "ladybird.jpg"), NULL), *blurred = NULL;
    ASSERT(photo != NULL);
    ASSERT_INT_EQ(vips_gaussblur(photo, &blurred, 2.5, NULL), 0);
    ASSERT_INT_EQ(vips_image_write_to_file(blurred, join(soft, "ladybird.png"), NULL), 0);
    g_object_unref(blurred);
    g_object_unref(photo);

    struct blurd_synth_summary from_sharp, from_soft;
    char *a = test_path("a"), *b = test_path("b");
    ASSERT_INT_EQ(synth(sharp, a, COUNT, 5, &from_sharp, err), 0);
    ASSERT_INT_EQ(synth(soft, b, COUNT, 5, &from_soft, err), 0);
    /* Both sets are whole: a draw that does not pass is replaced, not dropped. */
    ASSERT_INT_EQ(from_soft.written[BLURD_DATASET_CLEAR], COUNT);
    ASSERT_INT_EQ(from_soft.written[BLURD_DATASET_BLURRED], COUNT);
    /* The soft photo's full-size crops look soft, so its clear images are drawn again, and
     * most redraws find one that passes; the sharp photo's (a subject before a smooth
     * background) pass as they are. */
    ASSERT(from_soft.redrawn[BLURD_DATASET_CLEAR] >= COUNT / 2);
    ASSERT(from_soft.doubtful[BLURD_DATASET_CLEAR] < from_soft.redrawn[BLURD_DATASET_CLEAR]);
    ASSERT(from_sharp.redrawn[BLURD_DATASET_CLEAR] < from_soft.redrawn[BLURD_DATASET_CLEAR]);
    ASSERT(from_sharp.doubtful[BLURD_DATASET_CLEAR] <= 1);
    /* Blurring what is soft already takes little away: some of those are drawn again too. */
    ASSERT(from_soft.redrawn[BLURD_DATASET_BLURRED] >= 1);
    ASSERT(from_sharp.redrawn[BLURD_DATASET_BLURRED] <= from_soft.redrawn[BLURD_DATASET_BLURRED]);
    /* and the measure itself tells them apart, after the redraws too */
    ASSERT(mean_clear_softness(b) > 1.5 * mean_clear_softness(a));
    /* A sample's blurred image is scaled down when its clear one is and only then: most
     * of the soft photo's clear images are, to look sharp, and scale must not tell its
     * classes apart. */
    bool shrunk[COUNT][BLURD_DATASET_CLASSES] = {{false}};
    find_shrunk(b, COUNT, shrunk);
    int clear_shrunk = 0;
    for (int i = 0; i < COUNT; i++) {
        clear_shrunk += shrunk[i][BLURD_DATASET_CLEAR];
        if (shrunk[i][BLURD_DATASET_CLEAR] != shrunk[i][BLURD_DATASET_BLURRED])
            TEST_FAIL("sample %d: its clear image is %sscaled down, its blurred one %s", i,
                      shrunk[i][BLURD_DATASET_CLEAR] ? "" : "not ",
                      shrunk[i][BLURD_DATASET_BLURRED] ? "is" : "is not");
    }
    ASSERT(clear_shrunk >= COUNT / 2);
    /* Redraws come from each image's own stream: the same seed gives the same files. */
    char *again = test_path("b-again");
    ASSERT_INT_EQ(synth(soft, again, COUNT, 5, NULL, err), 0);
    ASSERT(same_files(b, again, COUNT));
    return 0;
}

TEST_IMPL(dataset_synth_refuses_to_overwrite_and_bad_sources)
{
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_image_init(NULL, err), 0);
    char *sharp = photo_folder("sharp", sample_photos, 1);
    char *out = test_path("out"), *blurred = join(out, "Blurred");
    make_dir(out);
    make_dir(blurred);
    char *kept = join(blurred, "mine.txt");
    test_write_file(kept, "keep", 4);

    ASSERT_INT_EQ(synth(sharp, out, 2, 1, NULL, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, blurred);
    ASSERT_CONTAINS(err, "never overwrites");
    ASSERT_INT_EQ(count_entries(blurred), 1);
    ASSERT_INT_EQ(count_entries(out), 1); /* nothing else created */

    ASSERT(unlink(kept) == 0);
    char *labels = join(out, "labels.csv");
    test_write_file(labels, "x", 1);
    ASSERT_INT_EQ(synth(sharp, out, 2, 1, NULL, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "labels.csv");
    ASSERT(unlink(labels) == 0);

    char *file = test_path("file");
    test_write_file(file, "x", 1);
    ASSERT_INT_EQ(synth(sharp, file, 2, 1, NULL, err), BLURD_EINVAL);
    ASSERT_INT_EQ(synth(test_path("missing"), out, 2, 1, NULL, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, "missing");
    ASSERT_INT_EQ(synth(sharp, out, 0, 1, NULL, err), BLURD_EINVAL);

    /* Photos that cannot be used are counted and left out; none usable is an error. */
    char *bad = test_path("bad");
    make_dir(bad);
    char *corrupt = join(bad, "corrupt.jpg"), *tiny = join(bad, "tiny.png");
    test_write_file(corrupt, "\xff\xd8\xff\xe0 garbage", 12);
    VipsImage *small = NULL;
    ASSERT(vips_black(&small, 150, 300, "bands", 3, NULL) == 0);
    ASSERT(vips_pngsave(small, tiny, NULL) == 0);
    g_object_unref(small);
    struct blurd_synth_summary summary;
    ASSERT_INT_EQ(synth(bad, out, 2, 1, &summary, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, "none of the 2 photos");
    ASSERT_INT_EQ(summary.unreadable, 2);
    ASSERT_INT_EQ(count_entries(blurred), 0);

    char *empty = test_path("empty");
    make_dir(empty);
    ASSERT_INT_EQ(synth(empty, out, 2, 1, NULL, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, "no image files");
    return 0;
}

/* ---- end to end -------------------------------------------------------------------- */

static int run_blurd(const char *args, char **out, char **err)
{
    char command[8192];
    snprintf(command, sizeof command, "cd '%s' && '%s' %s", test_tmpdir(), test_blurd_binary(),
             args);
    return test_run(command, out, err);
}

TEST_IMPL(dataset_cli_synth_end_to_end)
{
    photo_folder("sharp", sample_photos, 3);
    char *out, *err;
    ASSERT_INT_EQ(run_blurd("synth sharp set --count 6 --seed 3", &out, &err), 0);
    ASSERT_CONTAINS(err, "wrote 6 blurred and 6 clear images");
    ASSERT_INT_EQ(count_entries(test_path("set/Blurred")), 6);
    ASSERT_INT_EQ(count_entries(test_path("set/Undistorted")), 6);
    char *labels = test_read_file(test_path("set/labels.csv"), NULL);
    ASSERT_INT_EQ(test_count_lines(labels), 13);
    ASSERT_CONTAINS(labels, "Blurred/00005.jpg,blurred,wood.jpg,");
    ASSERT_CONTAINS(labels, "Undistorted/00000.jpg,clear,astronaut.jpg,none,0.00,");
    free(labels);
    free(out);
    free(err);

    /* Run again into the same folder: refused, exit 2, nothing touched. */
    ASSERT_INT_EQ(run_blurd("synth sharp set --count 6", &out, &err), 2);
    ASSERT_CONTAINS(err, "never overwrites");
    ASSERT_INT_EQ(count_entries(test_path("set/Blurred")), 6);
    free(out);
    free(err);

    /* A photo that cannot be read is named, left out, and makes the exit status 1. */
    char *broken = test_path("sharp/broken.jpg");
    test_write_file(broken, "\xff\xd8\xff\xe0 garbage", 12);
    test_write_file(test_path("sharp/zero.jpg"), "", 0);
    /* a JPEG damaged inside, whole in length: refused as classify refuses it, not cut into
     * crops of made-up blocks */
    char source[4096];
    snprintf(source, sizeof source, "%s/data/samples/Undistorted/dune.jpg", test_source_dir());
    size_t n = 0;
    char *bytes = test_read_file(source, &n);
    for (size_t i = 0; i < 64; i += 2) {
        bytes[n / 3 + i] = (char)0xff;
        bytes[n / 3 + i + 1] = (char)0xd4; /* a restart marker where none belongs */
    }
    test_write_file(test_path("sharp/damaged.jpg"), bytes, n);
    ASSERT_INT_EQ(run_blurd("synth sharp other -n 2 -q", &out, &err), 1);
    ASSERT_CONTAINS(err, "broken.jpg");
    ASSERT_CONTAINS(err, "zero.jpg: empty file (0 bytes)");
    ASSERT_CONTAINS(err, "damaged.jpg: cannot decode: VipsJpeg: Corrupt JPEG data");
    ASSERT_INT_EQ(count_entries(test_path("other/Blurred")), 2);
    free(out);
    free(err);

    ASSERT_INT_EQ(run_blurd("synth --help", &out, &err), 0);
    ASSERT_CONTAINS(out, "Usage: blurd synth SHARP_DIR OUT_DIR");
    free(out);
    free(err);
    ASSERT_INT_EQ(run_blurd("--help", &out, &err), 0);
    ASSERT_CONTAINS(out, "synth SHARP OUT");
    free(out);
    free(err);
    ASSERT_INT_EQ(run_blurd("synth sharp x --count 0", &out, &err), 2);
    ASSERT_CONTAINS(err, "--count");
    free(out);
    free(err);
    ASSERT_INT_EQ(run_blurd("synth sharp x --seed -1", &out, &err), 2);
    ASSERT_CONTAINS(err, "--seed");
    free(out);
    free(err);
    ASSERT_INT_EQ(run_blurd("synth sharp", &out, &err), 2);
    free(out);
    free(err);
    ASSERT_INT_EQ(run_blurd("synth nowhere y", &out, &err), 2);
    ASSERT_CONTAINS(err, "nowhere");
    ASSERT(access(test_path("y"), F_OK) != 0);
    free(out);
    free(err);
    return 0;
}
