/* dataset.c - labelled training folders, the validation split by source, and `blurd synth`,
 * which turns a folder of sharp photos into a labelled set of blurred and clear images.
 *
 * Reading DATA is a directory listing (thousands of names) run once per training or
 * evaluation.  synth decodes each photo twice (once up front to learn which are usable,
 * once to cut its samples) and spends its time in libvips' convolutions and JPEG coding:
 * seconds for the default 2 x 200 images.
 *
 * What synth makes, and why:
 * - Sample i uses photo i mod M (M usable photos, in name order) and makes one blurred and
 *   one sharp image.  The two are separate crops of the same photo rather than one crop
 *   twice (only their scale is shared: see below): the class-specific region choices below
 *   cannot share a crop, and an aligned pair would let a trainer's tiles match content
 *   across classes.  Both come from the same photo, so a split by source keeps a pair
 *   together and the photos are spread evenly over both classes.
 * - Crops are cut at the photo's native resolution, 256 to 1600 pixels on the long side
 *   (log-uniform, so small and large are equally common), aspect 1 to 1.8, a third of them
 *   portrait, never under 200 pixels (the network's input) on the short side.  A third (more
 *   for photos soft at full size, below) are then scaled down by 0.25 to 0.75 (a larger
 *   native crop shrunk to the same output range) like photos resized for the web, so the
 *   set mixes sizes and pixel scales.
 * - Blur is applied after the downscale, with its strength in the saved image's pixels:
 *   blurring first would shrink a 1.5-pixel blur to under a pixel and label a sharp-looking
 *   image as blurred.  Kernels are dealt in turn (rotating one place per round, so every
 *   photo gets every kind): Gaussian sigma 0.8..4, defocus disk radius 1..6, linear motion
 *   3..25 pixels at any angle, shaken camera 4..25 pixels of path.  Strengths are
 *   log-uniform, so barely visible blur (sigma near 1, including the 1.5 that one global
 *   threshold misses) is as common as the strong kind.
 * - Hard cases, by where the crop goes.  Blurred crops are random, or (35%) the most
 *   textured region of that size, so busy textures (foliage, gravel, fur) that stay busy
 *   when blurred are labelled blurred; a random crop too flat to show any blur (mean
 *   gradient under 4 grey levels) becomes a textured one instead, since blurring a blank
 *   sky gives an image no one could call blurred.  Sharp crops are random, the most
 *   textured (20%), or the flattest region that is not blank (25%), so low-texture scenes
 *   are labelled clear; every sharp crop contains one of the photo's most textured
 *   128-pixel windows, because the in-focus part of a photo is where its texture is and a
 *   crop of a shallow depth of field's background would be a blurred image labelled clear.
 *   Choices among near-equal regions are random, so the same region is not cut every time.
 * - Shallow depth of field: 15% of the sharp crops keep a circle around that window sharp
 *   (radius 100..200 pixels of the saved image at least) and defocus the rest (a disk of
 *   radius 2..10 pixels, fading in over the circle's radius), labelled clear with kernel
 *   "dof": a sharp subject before a soft background is a sharp photo.
 * - Every made image is checked against its label before noise and JPEG, by its fine
 *   detail (the energy of its grey Laplacian, which follows the sharpest part of an image
 *   and all but ignores smooth shading).  A clear image must lose at least 85% of it to a
 *   further Gaussian of sigma 1 px: one that loses less is soft already, a crop where the
 *   photo is out of focus (a macro's bokeh) or a photo soft all over, and labelling it
 *   clear teaches that soft is sharp (of the clear images of the recipe's held-out set
 *   as made before this check, the model then shipped misjudged 22 of the 33 over the
 *   limit and 24 of the other 267).  A blurred image's blur must have removed at least
 *   70% of its crop's: a motion blur along every edge of a crop changes it too little to
 *   be called blurred.  An image that fails is drawn again from its own stream (crop, blur
 *   and finishing), up to 8 times, a clear one shrunk for the web in the second half of
 *   them, since a soft photo shrunk is a sharp image; if none passes, the least doubtful
 *   draw is kept and counted.  A redraw can drop or gain a shallow depth of field, so their
 *   share is about 15%.  A sample's blurred image is made after its clear one and sized as
 *   that came out (full size, web size, or shrunk), every draw of it, so that scale does not
 *   give a soft photo's class away: its clear images are mostly scaled down.  Known bias:
 *   the weakest blurs that fail are replaced by stronger ones (77 of the 4500 blurred
 *   images of the recipe's training set were drawn again).
 * - Camera-like finishing, drawn the same way for both classes and independently for each
 *   image: Gaussian noise of sigma 2..12 (0..255 scale) on 40% of the images, partly shared
 *   across channels like luma noise, added after the blur as a sensor adds it; then JPEG at
 *   quality 70..95.  Neither noise nor compression can give the class away.
 * - Every random choice comes from a xoshiro256** stream seeded from (seed, sample, class),
 *   so an image depends on no other sample (a blurred one only on its clear partner's
 *   sizing) nor on the order samples are made in, and the same seed and photos give the
 *   same bytes.
 */
#include "blurd/dataset.h"

#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/log.h"
#include "blurd/progress.h"
#include "blurd/random.h"

#include <vips/vips.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const folder_names[BLURD_DATASET_CLASSES] = {"Blurred", "Undistorted"};
static const char *const label_names[BLURD_DATASET_CLASSES] = {"blurred", "clear"};
static const char *const kernel_names[BLURD_SYNTH_KERNELS] = {"none",   "gaussian", "disk",
                                                              "motion", "shake",    "dof"};

#define LABELS_FILE   "labels.csv"
#define LABELS_HEADER "file,label,source,kernel,strength,crop_w,crop_h,noise,quality,kept,softness"

/* Crop geometry, in pixels. */
#define MIN_OUTPUT_LONG   256
#define MAX_OUTPUT_LONG   1600
#define MIN_SHORT_SIDE    200 /* the network's input side: no sample needs enlarging to be judged */
#define MAX_ASPECT        1.8
#define PORTRAIT_SHARE    0.35
#define WEB_SHARE         (1.0 / 3.0)
#define WEB_SCALE_LOW     0.25
#define WEB_SCALE_HIGH    0.75
#define SHRINK_SCALE_HIGH 0.5 /* soft clear crops redrawn, and their blurred partners */

/* Texture, measured as the mean |dx| + |dy| of the grey image in grey levels per pixel, on
 * cells of CELL x CELL pixels summed into a table so any region's mean costs four reads. */
#define CELL              16
#define ANCHOR_CELLS      8 /* the in-focus windows sharp crops must contain: 128 pixels */
#define MAX_ANCHORS       8
#define BLUR_MIN_TEXTURE  4.0 /* a blurred crop flatter than this would show no blur */
#define FLAT_MIN_TEXTURE  1.0 /* a "flat" sharp crop must still show something */
#define TEXTURED_NEAR_MAX 0.85
#define FLAT_NEAR_MIN     1.25

/* Fine detail (see fine_detail()): figures leave out a border of this many pixels, and an
 * image's softness is measured against a Gaussian of this sigma. */
#define DETAIL_BORDER 4
#define SOFT_SIGMA    1.0
/* blur_grey() reaches ceil(3 sigma) pixels, clamped at the image's edge; the
 * border must cover that reach and the Laplacian's one pixel more */
_Static_assert(3 * SOFT_SIGMA + 1 <= DETAIL_BORDER, "the border must cover the blur's reach");

/* Region choices per class (the rest are random positions). */
#define BLURRED_TEXTURED_SHARE 0.35
#define SHARP_TEXTURED_SHARE   0.20
#define SHARP_FLAT_SHARE       0.25

/* Blur strengths, log-uniform between these (pixels of the saved image). */
static const double strength_low[BLURD_SYNTH_KERNELS] = {0.0, 0.8, 1.0, 3.0, 4.0, 2.0};
static const double strength_high[BLURD_SYNTH_KERNELS] = {0.0, 4.0, 6.0, 25.0, 25.0, 10.0};

/* Shallow depth of field, on this share of the sharp crops that have an in-focus window:
 * a disk of the radius above (log-uniform) defocuses all but a sharp zone around the window,
 * a circle of 0.5..1 window sizes and at least 100..200 pixels of the saved image, fading to
 * the defocus over as much again. */
#define SHARP_DOF_SHARE      0.15
#define DOF_ZONE_LOW         0.5
#define DOF_ZONE_HIGH        1.0
#define DOF_ZONE_PIXELS_LOW  100.0
#define DOF_ZONE_PIXELS_HIGH 200.0

/* Finishing, for both classes alike. */
#define NOISE_SHARE   0.4
#define NOISE_LOW     2.0
#define NOISE_HIGH    12.0
#define NOISE_SHARED  0.8 /* weight of the noise common to the three channels ... */
#define NOISE_CHANNEL 0.6 /* ... and of each channel's own: 0.8^2 + 0.6^2 = 1 keeps sigma */
#define QUALITY_LOW   70
#define QUALITY_HIGH  95

/* ---- random numbers ---------------------------------------------------------------- */

/* xoshiro256**, seeded through splitmix64: small, fast, and the same on every platform. */
struct rng {
    uint64_t s[4];
};

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* One independent stream per (seed, a, b): the three are mixed through splitmix64 in turn
 * so that nearby seeds and indices give unrelated streams. */
static void rng_seed(struct rng *rng, uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t state = seed;
    state = blurd_splitmix64(&state) ^ a;
    state = blurd_splitmix64(&state) ^ b;
    for (int i = 0; i < 4; i++)
        rng->s[i] = blurd_splitmix64(&state);
}

static uint64_t rng_next(struct rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1), 53 bits. */
static double rng_unit(struct rng *rng)
{
    return (double)(rng_next(rng) >> 11) * 0x1.0p-53;
}

static double rng_uniform(struct rng *rng, double low, double high)
{
    return low + (high - low) * rng_unit(rng);
}

static double rng_log_uniform(struct rng *rng, double low, double high)
{
    return exp(rng_uniform(rng, log(low), log(high)));
}

/* Uniform in 0..n-1 (n >= 1); the modulo bias is below 2^-40 for any n used here. */
static size_t rng_below(struct rng *rng, size_t n)
{
    return (size_t)(rng_next(rng) % (uint64_t)n);
}

/* Standard normal by Box-Muller (one of the pair is dropped: simplicity over speed). */
static double rng_gauss(struct rng *rng)
{
    double u = 1.0 - rng_unit(rng); /* (0, 1]: log stays finite */
    double v = rng_unit(rng);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* ---- folder listing ---------------------------------------------------------------- */

struct name_list {
    char **names; /* owned */
    size_t count, capacity;
    size_t skipped;
};

static void name_list_clear(struct name_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->names[i]);
    free(list->names);
    memset(list, 0, sizeof *list);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "a/b" in a new string, or NULL when out of memory. */
static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (path != NULL)
        snprintf(path, n, "%s/%s", dir, name);
    return path;
}

/* Lists the regular files with an image extension directly inside `dir`, sorted; hidden
 * entries, folders and special files are counted as skipped (an image's name that cannot
 * be followed, also warned about).  stat follows symbolic links, so a link to a photo
 * counts as the photo.  `what` names the folder's role in the error message ("photo
 * folder", "class folder"). */
static int list_images(const char *dir, const char *what, struct name_list *list, char *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int saved = errno;
        if (saved == ENOENT)
            return blurd_error_set(err, BLURD_ENOENT, "%s: no such %s", dir, what);
        if (saved == ENOTDIR)
            return blurd_error_set(err, BLURD_ENOENT, "%s: not a folder (expected the %s)", dir,
                                   what);
        return blurd_error_set(err, blurd_error_from_errno(saved), "%s: cannot read the %s: %s",
                               dir, what, strerror(saved));
    }
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.') {
            if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
                list->skipped++;
            continue;
        }
        char *path = join_path(dir, entry->d_name);
        if (path == NULL) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory listing files", dir);
            break;
        }
        struct stat st;
        bool image_name = blurd_image_has_image_extension(entry->d_name);
        bool found = stat(path, &st) == 0;
        /* A photo's name that leads nowhere (a broken or looping link) is said, not just
         * counted: the user meant it to be read. */
        if (!found && image_name)
            blurd_log_warning("%s: cannot read: %s; left out", path, strerror(errno));
        bool take = found && S_ISREG(st.st_mode) && image_name;
        free(path);
        if (!take) {
            list->skipped++;
            continue;
        }
        if (list->count == list->capacity) {
            size_t capacity = list->capacity ? list->capacity * 2 : 64;
            char **grown = realloc(list->names, capacity * sizeof *grown);
            if (grown == NULL) {
                rc = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory listing files", dir);
                break;
            }
            list->names = grown;
            list->capacity = capacity;
        }
        list->names[list->count] = strdup(entry->d_name);
        if (list->names[list->count] == NULL) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory listing files", dir);
            break;
        }
        list->count++;
    }
    closedir(d);
    if (rc != 0) {
        name_list_clear(list);
        return rc;
    }
    if (list->count > 1)
        qsort(list->names, list->count, sizeof *list->names, compare_strings);
    return 0;
}

/* ---- labels.csv -------------------------------------------------------------------- */

/* Reads one CSV field (RFC 4180 quoting) at *pos, unquoting it in place and terminating it
 * with NUL; `end` must point at a writable NUL after the text.  *row_end tells whether the
 * field closed its row.  Returns the field, or NULL at the end of the text. */
static char *csv_field(char **pos, char *end, bool *row_end)
{
    char *p = *pos;
    if (p >= end)
        return NULL;
    char *start = p, *out = p;
    if (*p == '"') {
        p++;
        while (p < end) {
            if (*p == '"') {
                if (p + 1 < end && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            *out++ = *p++;
        }
        /* Anything between the closing quote and the delimiter (a CR, stray text) is
         * dropped. */
        while (p < end && *p != ',' && *p != '\n')
            p++;
    } else {
        while (p < end && *p != ',' && *p != '\n')
            p++;
        out = p;
        if (out > start && out[-1] == '\r')
            out--;
    }
    *row_end = p >= end || *p == '\n';
    if (p < end)
        p++;
    *out = '\0';
    *pos = p;
    return start;
}

struct label_row {
    const char *file, *source; /* point into the file's text */
};

struct labels {
    char *text; /* owned: the file, unquoted in place */
    struct label_row *rows;
    size_t count;
};

static void labels_clear(struct labels *labels)
{
    free(labels->text);
    free(labels->rows);
    memset(labels, 0, sizeof *labels);
}

static int compare_label_rows(const void *a, const void *b)
{
    return strcmp(((const struct label_row *)a)->file, ((const struct label_row *)b)->file);
}

/* Reads `path` into `labels`, sorted by file for lookups.  A missing file gives an empty
 * table and 0; an unreadable or malformed one -1 with `why` filled (the caller warns). */
static int labels_read(const char *path, struct labels *labels, char *why, size_t why_size)
{
    memset(labels, 0, sizeof *labels);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, why_size, "%s", strerror(errno));
        return -1;
    }
    size_t size = 0, capacity = 0;
    char *text = NULL;
    for (;;) {
        if (capacity - size < 65536) {
            capacity = capacity ? capacity * 2 : 65536;
            char *grown = realloc(text, capacity + 1);
            if (grown == NULL) {
                free(text);
                fclose(f);
                snprintf(why, why_size, "out of memory");
                return -1;
            }
            text = grown;
        }
        size_t got = fread(text + size, 1, capacity - size, f);
        size += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(text);
        snprintf(why, why_size, "read error");
        return -1;
    }
    text[size] = '\0';
    labels->text = text;

    /* The header names the columns; only "file" and "source" matter here. */
    char *pos = text, *end = text + size, *field;
    bool row_end = false;
    int column = 0, file_column = -1, source_column = -1;
    while (!row_end && (field = csv_field(&pos, end, &row_end)) != NULL) {
        if (strcmp(field, "file") == 0)
            file_column = column;
        else if (strcmp(field, "source") == 0)
            source_column = column;
        column++;
    }
    if (file_column < 0 || source_column < 0) {
        labels_clear(labels);
        snprintf(why, why_size, "no \"file\" and \"source\" columns in its header");
        return -1;
    }
    size_t capacity_rows = 0;
    while (pos < end) {
        struct label_row row = {NULL, NULL};
        column = 0;
        row_end = false;
        while (!row_end && (field = csv_field(&pos, end, &row_end)) != NULL) {
            if (column == file_column)
                row.file = field;
            else if (column == source_column)
                row.source = field;
            column++;
        }
        /* Blank lines and short rows say nothing about a file. */
        if (row.file == NULL || row.source == NULL || row.file[0] == '\0' || row.source[0] == '\0')
            continue;
        if (labels->count == capacity_rows) {
            capacity_rows = capacity_rows ? capacity_rows * 2 : 256;
            struct label_row *grown = realloc(labels->rows, capacity_rows * sizeof *grown);
            if (grown == NULL) {
                labels_clear(labels);
                snprintf(why, why_size, "out of memory");
                return -1;
            }
            labels->rows = grown;
        }
        labels->rows[labels->count++] = row;
    }
    if (labels->count > 1)
        qsort(labels->rows, labels->count, sizeof *labels->rows, compare_label_rows);
    return 0;
}

static const char *labels_find_source(const struct labels *labels, const char *file)
{
    if (labels->count == 0)
        return NULL;
    struct label_row key = {file, NULL};
    const struct label_row *row =
        bsearch(&key, labels->rows, labels->count, sizeof *labels->rows, compare_label_rows);
    return row != NULL ? row->source : NULL;
}

/* ---- reading DATA ------------------------------------------------------------------ */

const char *blurd_dataset_folder_name(int label)
{
    return label >= 0 && label < BLURD_DATASET_CLASSES ? folder_names[label] : NULL;
}

void blurd_dataset_clear(struct blurd_dataset *dataset)
{
    if (dataset == NULL)
        return;
    for (size_t i = 0; i < dataset->count; i++) {
        free(dataset->entries[i].path);
        free(dataset->entries[i].source);
    }
    free(dataset->entries);
    memset(dataset, 0, sizeof *dataset);
}

int blurd_dataset_read(struct blurd_dataset *dataset, const char *dir, char *err)
{
    if (dataset == NULL || dir == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_dataset_read: NULL argument");
    memset(dataset, 0, sizeof *dataset);

    struct stat st;
    if (stat(dir, &st) != 0) {
        int saved = errno;
        return blurd_error_set(err, blurd_error_from_errno(saved), "%s: %s", dir,
                               saved == ENOENT ? "no such data folder" : strerror(saved));
    }
    if (!S_ISDIR(st.st_mode))
        return blurd_error_set(err, BLURD_ENOENT, "%s: not a folder (expected a data folder)", dir);

    struct name_list lists[BLURD_DATASET_CLASSES];
    memset(lists, 0, sizeof lists);
    int rc = 0;
    for (int label = 0; label < BLURD_DATASET_CLASSES && rc == 0; label++) {
        char *folder = join_path(dir, folder_names[label]);
        if (folder == NULL) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
            break;
        }
        rc = list_images(folder, "class folder (a data folder holds Blurred and Undistorted)",
                         &lists[label], err);
        if (rc == 0 && lists[label].count == 0)
            rc = blurd_error_set(err, BLURD_EINVAL,
                                 "%s: no image files (jpg, jpeg, png, webp, tif, tiff, gif, heic, "
                                 "heif or avif): each class needs at least one",
                                 folder);
        free(folder);
    }
    if (rc != 0) {
        for (int label = 0; label < BLURD_DATASET_CLASSES; label++)
            name_list_clear(&lists[label]);
        return rc;
    }

    struct labels labels;
    char *labels_path = join_path(dir, LABELS_FILE);
    char why[256];
    if (labels_path == NULL) {
        memset(&labels, 0, sizeof labels);
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    } else if (labels_read(labels_path, &labels, why, sizeof why) != 0) {
        blurd_log_warning("%s: ignored (%s); each file is its own source", labels_path, why);
    }
    free(labels_path);

    size_t total = lists[0].count + lists[1].count;
    dataset->entries = rc == 0 ? calloc(total, sizeof *dataset->entries) : NULL;
    if (rc == 0 && dataset->entries == NULL)
        rc = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory listing files", dir);
    for (int label = 0; label < BLURD_DATASET_CLASSES && rc == 0; label++) {
        for (size_t i = 0; i < lists[label].count && rc == 0; i++) {
            const char *name = lists[label].names[i];
            /* "Blurred/NAME": how labels.csv names files, and a suffix of the path. */
            char *relative = join_path(folder_names[label], name);
            char *path = relative != NULL ? join_path(dir, relative) : NULL;
            const char *source = relative != NULL ? labels_find_source(&labels, relative) : NULL;
            char *source_copy = strdup(source != NULL ? source : name);
            free(relative);
            if (path == NULL || source_copy == NULL) {
                free(path);
                free(source_copy);
                rc = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory listing files", dir);
                break;
            }
            struct blurd_dataset_entry *entry = &dataset->entries[dataset->count++];
            entry->path = path;
            entry->name = path + strlen(path) - strlen(name);
            entry->source = source_copy;
            entry->label = label;
            dataset->class_count[label]++;
        }
        dataset->skipped += lists[label].skipped;
    }
    labels_clear(&labels);
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++)
        name_list_clear(&lists[label]);
    if (rc != 0)
        blurd_dataset_clear(dataset);
    return rc;
}

/* ---- the validation split ---------------------------------------------------------- */

double blurd_dataset_source_position(const char *source)
{
    /* FNV-1a over the bytes, then splitmix64's finaliser so that similar names ("a1.jpg",
     * "a2.jpg") land far apart; the top 53 bits make the fraction. */
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const unsigned char *c = (const unsigned char *)(source != NULL ? source : ""); *c; c++)
        hash = (hash ^ *c) * 0x100000001b3ULL;
    uint64_t state = hash;
    return (double)(blurd_splitmix64(&state) >> 11) * 0x1.0p-53;
}

/* Sets every entry of `source` to `value`. */
static void mark_source(const struct blurd_dataset *dataset, const char *source,
                        unsigned char value, unsigned char *validation)
{
    for (size_t i = 0; i < dataset->count; i++)
        if (strcmp(dataset->entries[i].source, source) == 0)
            validation[i] = value;
}

size_t blurd_dataset_split(const struct blurd_dataset *dataset, double fraction,
                           unsigned char *validation)
{
    if (dataset == NULL || validation == NULL || dataset->count == 0)
        return 0;
    unsigned char all = fraction >= 1.0 ? 1 : 0;
    if (!(fraction > 0.0) || fraction >= 1.0) {
        memset(validation, all, dataset->count);
        return all ? dataset->count : 0;
    }
    /* The source just below the line and the one just above it: the candidates to move
     * across when one side would be empty. */
    const char *lowest_out = NULL, *highest_in = NULL;
    double lowest_out_position = 2.0, highest_in_position = -1.0;
    bool two_sources = false;
    for (size_t i = 0; i < dataset->count; i++) {
        const char *source = dataset->entries[i].source;
        double position = blurd_dataset_source_position(source);
        validation[i] = position < fraction;
        if (validation[i] && position > highest_in_position) {
            highest_in_position = position;
            highest_in = source;
        }
        if (!validation[i] && position < lowest_out_position) {
            lowest_out_position = position;
            lowest_out = source;
        }
        if (strcmp(source, dataset->entries[0].source) != 0)
            two_sources = true;
    }
    if (two_sources && highest_in == NULL)
        mark_source(dataset, lowest_out, 1, validation);
    else if (two_sources && lowest_out == NULL)
        mark_source(dataset, highest_in, 0, validation);
    size_t chosen = 0;
    for (size_t i = 0; i < dataset->count; i++)
        chosen += validation[i];
    return chosen;
}

/* ---- blur masks -------------------------------------------------------------------- */

const char *blurd_synth_kernel_name(int kernel)
{
    return kernel >= 0 && kernel < BLURD_SYNTH_KERNELS ? kernel_names[kernel] : NULL;
}

void blurd_synth_mask_clear(struct blurd_synth_mask *mask)
{
    if (mask == NULL)
        return;
    free(mask->weights);
    memset(mask, 0, sizeof *mask);
}

static int check_strength(double strength)
{
    return isfinite(strength) && strength >= 0.1 && strength <= 100.0 ? 0 : BLURD_EINVAL;
}

static int mask_alloc(struct blurd_synth_mask *mask, int width, int height)
{
    mask->weights = calloc((size_t)width * (size_t)height, sizeof *mask->weights);
    if (mask->weights == NULL) {
        mask->width = mask->height = 0;
        return BLURD_ENOMEM;
    }
    mask->width = width;
    mask->height = height;
    return 0;
}

static void mask_normalise(struct blurd_synth_mask *mask)
{
    size_t n = (size_t)mask->width * (size_t)mask->height;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += mask->weights[i];
    for (size_t i = 0; i < n; i++)
        mask->weights[i] /= sum;
}

/* Adds `weight` at (x, y) relative to the mask's centre, shared bilinearly among the four
 * nearest taps, so a point between taps keeps its exact position on average. */
static void splat(struct blurd_synth_mask *mask, double x, double y, double weight)
{
    double fx = x + mask->width / 2, fy = y + mask->height / 2;
    int ix = (int)floor(fx), iy = (int)floor(fy);
    double ax = fx - ix, ay = fy - iy;
    double share[2][2] = {{(1 - ax) * (1 - ay), ax * (1 - ay)}, {(1 - ax) * ay, ax * ay}};
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int tx = ix + dx, ty = iy + dy;
            if (share[dy][dx] > 0.0 && tx >= 0 && tx < mask->width && ty >= 0 && ty < mask->height)
                mask->weights[(size_t)ty * (size_t)mask->width + (size_t)tx] +=
                    weight * share[dy][dx];
        }
}

int blurd_synth_mask_gaussian(double sigma, struct blurd_synth_mask *mask)
{
    if (mask == NULL || check_strength(sigma) != 0)
        return BLURD_EINVAL;
    int radius = (int)ceil(3.0 * sigma);
    if (mask_alloc(mask, 2 * radius + 1, 1) != 0)
        return BLURD_ENOMEM;
    /* The Gaussian's integral over [i - 1/2, i + 1/2], from the normal CDF. */
    for (int i = -radius; i <= radius; i++) {
        double upper = 0.5 * erfc(-(i + 0.5) / (sigma * M_SQRT2));
        double lower = 0.5 * erfc(-(i - 0.5) / (sigma * M_SQRT2));
        mask->weights[i + radius] = upper - lower;
    }
    mask_normalise(mask);
    return 0;
}

int blurd_synth_mask_disk(double radius, struct blurd_synth_mask *mask)
{
    if (mask == NULL || check_strength(radius) != 0)
        return BLURD_EINVAL;
    /* A tap at distance R + 1 has its nearest point at R + 1/2 >= radius: outside. */
    int half = (int)ceil(radius - 0.5);
    if (half < 1)
        half = 1;
    if (mask_alloc(mask, 2 * half + 1, 2 * half + 1) != 0)
        return BLURD_ENOMEM;
    enum { SAMPLES = 16 };
    double r2 = radius * radius;
    for (int y = -half; y <= half; y++)
        for (int x = -half; x <= half; x++) {
            int inside = 0;
            for (int sy = 0; sy < SAMPLES; sy++)
                for (int sx = 0; sx < SAMPLES; sx++) {
                    double px = x - 0.5 + (sx + 0.5) / SAMPLES;
                    double py = y - 0.5 + (sy + 0.5) / SAMPLES;
                    inside += px * px + py * py <= r2;
                }
            mask->weights[(size_t)(y + half) * (size_t)mask->width + (size_t)(x + half)] =
                (double)inside / (SAMPLES * SAMPLES);
        }
    mask_normalise(mask);
    return 0;
}

int blurd_synth_mask_motion(double length, double angle, struct blurd_synth_mask *mask)
{
    if (mask == NULL || check_strength(length) != 0 || !isfinite(angle))
        return BLURD_EINVAL;
    /* Points lie within length/2 of the centre, and a splat at c reaches floor(c) + 1
     * only with weight 0 when c is whole, so ceil(length/2) holds them all. */
    int half = (int)ceil(length / 2);
    if (half < 1)
        half = 1;
    if (mask_alloc(mask, 2 * half + 1, 2 * half + 1) != 0)
        return BLURD_ENOMEM;
    double dx = cos(angle), dy = sin(angle);
    /* cos(pi/2) is 6e-17, not 0: snap so an axis-aligned line stays on one row or column. */
    if (fabs(dx) < 1e-12)
        dx = 0.0;
    if (fabs(dy) < 1e-12)
        dy = 0.0;
    /* Eight points per pixel of length, at the midpoints of equal pieces. */
    int points = (int)ceil(length * 8);
    for (int k = 0; k < points; k++) {
        double t = -length / 2 + length * (k + 0.5) / points;
        splat(mask, t * dx, t * dy, 1.0 / points);
    }
    mask_normalise(mask);
    return 0;
}

int blurd_synth_mask_shake(double length, uint64_t seed, struct blurd_synth_mask *mask)
{
    if (mask == NULL || check_strength(length) != 0)
        return BLURD_EINVAL;
    enum { STEPS = 64 };
    struct rng rng;
    rng_seed(&rng, seed, 0x5348414b45ULL /* "SHAKE" */, 0);
    double px[STEPS + 1], py[STEPS + 1], path = 0.0;
    double heading = rng_uniform(&rng, 0.0, 2.0 * M_PI), turn = 0.0;
    px[0] = py[0] = 0.0;
    for (int i = 1; i <= STEPS; i++) {
        /* The turn rate has momentum (0.9 of it carries over), so the path curves smoothly
         * over several steps; a rare jerk turns it at once, as a hand's tremor does. */
        turn = 0.9 * turn + 0.08 * rng_gauss(&rng);
        if (rng_unit(&rng) < 0.04)
            heading += rng_gauss(&rng);
        heading += turn;
        double speed = rng_uniform(&rng, 0.2, 1.2);
        px[i] = px[i - 1] + speed * cos(heading);
        py[i] = py[i - 1] + speed * sin(heading);
        path += speed;
    }
    /* Scale to the requested path length; each step lasts the same time, so its centre of
     * mass is its midpoint and the whole path's is the mean of the midpoints. */
    double scale = length / path, cx = 0.0, cy = 0.0;
    for (int i = 1; i <= STEPS; i++) {
        cx += (px[i] + px[i - 1]) * 0.5 * scale / STEPS;
        cy += (py[i] + py[i - 1]) * 0.5 * scale / STEPS;
    }
    double reach = 0.0;
    for (int i = 0; i <= STEPS; i++) {
        px[i] = px[i] * scale - cx;
        py[i] = py[i] * scale - cy;
        reach = fmax(reach, fmax(fabs(px[i]), fabs(py[i])));
    }
    int half = (int)ceil(reach); /* as for motion: the splats stay within it */
    if (half < 1)
        half = 1;
    if (mask_alloc(mask, 2 * half + 1, 2 * half + 1) != 0)
        return BLURD_ENOMEM;
    for (int i = 1; i <= STEPS; i++) {
        double sx = px[i] - px[i - 1], sy = py[i] - py[i - 1];
        int points = (int)ceil(hypot(sx, sy) * 8);
        if (points < 1)
            points = 1;
        /* Equal time per step: a slow step packs its weight into few pixels. */
        for (int k = 0; k < points; k++) {
            double t = (k + 0.5) / points;
            splat(mask, px[i - 1] + t * sx, py[i - 1] + t * sy, 1.0 / ((double)STEPS * points));
        }
    }
    mask_normalise(mask);
    return 0;
}

/* ---- source photos ----------------------------------------------------------------- */

/* The vips error buffer's first line in `out`, and the buffer cleared. */
static void take_vips_reason(char *out, size_t n)
{
    snprintf(out, n, "%s", vips_error_buffer());
    vips_error_clear();
    out[strcspn(out, "\n")] = '\0';
    if (out[0] == '\0')
        snprintf(out, n, "libvips failed");
}

/* A photo decoded to 8-bit sRGB, with its texture map. */
struct photo {
    uint8_t *rgb; /* width * height * 3, g_malloc'd by libvips */
    int width, height;
    VipsImage *image; /* wraps rgb */
    int cells_x, cells_y;
    uint64_t *table; /* (cells_x + 1) * (cells_y + 1) summed-area table of texture */
    int anchors;
    int anchor_x[MAX_ANCHORS], anchor_y[MAX_ANCHORS]; /* top-left corners, pixels */
};

static void photo_free(struct photo *photo)
{
    if (photo->image != NULL)
        g_object_unref(photo->image);
    g_free(photo->rgb);
    free(photo->table);
    memset(photo, 0, sizeof *photo);
}

/* Replaces *image by *next when the operation that made it (returning `rc`) succeeded.
 * *next is read only here, after the operation has run. */
static int step(VipsImage **image, VipsImage **next, int rc)
{
    if (rc != 0)
        return rc;
    g_object_unref(*image);
    *image = *next;
    *next = NULL;
    return 0;
}

/* Decodes `path` as the classifier would see it: rotated upright, sRGB, 8 bits, alpha on
 * white (like image.c, so cut-outs look the same in training as when judged), grey as
 * three equal channels.  Only the pixels are kept. */
static int photo_decode(const char *path, struct photo *photo, char *err)
{
    memset(photo, 0, sizeof *photo);
    char reason[BLURD_ERR_LEN];
    /* said plainly, as classify says it, rather than as libvips' "not a known format" */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
        return blurd_error_set(err, BLURD_ENOTIMAGE, "%s: empty file (0 bytes)", path);
    /* as strict as classify's decode: a damaged JPEG would give made-up crops */
    VipsImage *image = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, "fail_on",
                                                (VipsFailOn)blurd_image_fail_on(path), NULL);
    if (image == NULL) {
        take_vips_reason(reason, sizeof reason);
        return blurd_error_set(err, BLURD_EDECODE, "%s: cannot read: %s", path, reason);
    }
    uint64_t pixels = (uint64_t)image->Xsize * (uint64_t)image->Ysize;
    if (pixels > BLURD_IMAGE_DEFAULT_MAX_PIXELS) {
        g_object_unref(image);
        return blurd_error_set(err, BLURD_ETOOBIG, "%s: %llu pixels, over the limit of %llu", path,
                               (unsigned long long)pixels,
                               (unsigned long long)BLURD_IMAGE_DEFAULT_MAX_PIXELS);
    }
    VipsImage *next = NULL;
    int rc = step(&image, &next, vips_autorot(image, &next, NULL));
    if (rc == 0 && (image->Coding != VIPS_CODING_NONE ||
                    vips_image_guess_interpretation(image) != VIPS_INTERPRETATION_sRGB ||
                    image->BandFmt != VIPS_FORMAT_UCHAR))
        rc = step(&image, &next, vips_colourspace(image, &next, VIPS_INTERPRETATION_sRGB, NULL));
    if (rc == 0 && image->Bands == 4) {
        VipsArrayDouble *white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
        rc = step(&image, &next,
                  vips_flatten(image, &next, "background", white, "max_alpha", 255.0, NULL));
        vips_area_unref(VIPS_AREA(white));
    }
    if (rc == 0 && image->Bands > 3)
        rc = step(&image, &next, vips_extract_band(image, &next, 0, "n", 3, NULL));
    if (rc == 0 && image->BandFmt != VIPS_FORMAT_UCHAR)
        rc = step(&image, &next, vips_cast_uchar(image, &next, NULL));
    if (rc == 0 && image->Bands != 3) {
        int bands = image->Bands;
        g_object_unref(image);
        return blurd_error_set(err, BLURD_EDECODE, "%s: %d bands after conversion to sRGB", path,
                               bands);
    }
    size_t bytes = 0;
    if (rc == 0) {
        photo->width = image->Xsize;
        photo->height = image->Ysize;
        photo->rgb = vips_image_write_to_memory(image, &bytes);
    }
    g_object_unref(image);
    if (rc != 0 || photo->rgb == NULL) {
        take_vips_reason(reason, sizeof reason);
        g_free(photo->rgb);
        memset(photo, 0, sizeof *photo);
        return blurd_error_set(err, BLURD_EDECODE, "%s: cannot decode: %s", path, reason);
    }
    if (photo->width < MIN_SHORT_SIDE || photo->height < MIN_SHORT_SIDE) {
        int w = photo->width, h = photo->height;
        photo_free(photo);
        return blurd_error_set(err, BLURD_ETOOSMALL,
                               "%s: %dx%d is too small (synth needs %d pixels on each side)", path,
                               w, h, MIN_SHORT_SIDE);
    }
    return 0;
}

static inline int grey(const uint8_t *rgb)
{
    return (77 * rgb[0] + 150 * rgb[1] + 29 * rgb[2] + 128) >> 8;
}

/* Sum of texture over cells [x0, x1) x [y0, y1). */
static uint64_t cell_sum(const struct photo *photo, int x0, int y0, int x1, int y1)
{
    size_t stride = (size_t)photo->cells_x + 1;
    const uint64_t *t = photo->table;
    return t[(size_t)y1 * stride + (size_t)x1] - t[(size_t)y0 * stride + (size_t)x1] -
           t[(size_t)y1 * stride + (size_t)x0] + t[(size_t)y0 * stride + (size_t)x0];
}

/* Mean texture (grey levels per pixel) of the region, judged by the whole cells it holds
 * (at least one). */
static double region_texture(const struct photo *photo, int x, int y, int w, int h)
{
    int x0 = x / CELL, y0 = y / CELL;
    int x1 = (x + w) / CELL, y1 = (y + h) / CELL;
    if (x1 > photo->cells_x)
        x1 = photo->cells_x;
    if (y1 > photo->cells_y)
        y1 = photo->cells_y;
    if (x0 >= x1)
        x0 = x1 - 1;
    if (y0 >= y1)
        y0 = y1 - 1;
    uint64_t sum = cell_sum(photo, x0, y0, x1, y1);
    return (double)sum / ((double)(x1 - x0) * (double)(y1 - y0) * CELL * CELL);
}

/* Builds the texture table and picks the anchors: the most textured windows of
 * ANCHOR_CELLS cells on a half-window grid, best first, none overlapping another. */
static int photo_analyse(struct photo *photo, char *err)
{
    photo->cells_x = photo->width / CELL;
    photo->cells_y = photo->height / CELL;
    size_t stride = (size_t)photo->cells_x + 1;
    photo->table = calloc(stride * ((size_t)photo->cells_y + 1), sizeof *photo->table);
    uint64_t *row_sums = calloc((size_t)photo->cells_x, sizeof *row_sums);
    if (photo->table == NULL || row_sums == NULL) {
        free(row_sums);
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory measuring texture");
    }
    size_t row_bytes = (size_t)photo->width * 3;
    for (int cy = 0; cy < photo->cells_y; cy++) {
        memset(row_sums, 0, (size_t)photo->cells_x * sizeof *row_sums);
        for (int y = cy * CELL; y < (cy + 1) * CELL; y++) {
            const uint8_t *row = photo->rgb + (size_t)y * row_bytes;
            const uint8_t *below = y + 1 < photo->height ? row + row_bytes : row;
            for (int x = 0; x < photo->cells_x * CELL; x++) {
                int here = grey(row + 3 * x);
                int right = x + 1 < photo->width ? grey(row + 3 * (x + 1)) : here;
                row_sums[x / CELL] +=
                    (uint64_t)(abs(right - here) + abs(grey(below + 3 * x) - here));
            }
        }
        /* Summed-area table: each entry is the sum of all cells above and left of it. */
        uint64_t running = 0;
        uint64_t *above = photo->table + (size_t)cy * stride, *out = above + stride;
        for (int cx = 0; cx < photo->cells_x; cx++) {
            running += row_sums[cx];
            out[cx + 1] = above[cx + 1] + running;
        }
    }
    free(row_sums);

    int half = ANCHOR_CELLS / 2;
    int candidates_x = (photo->cells_x - ANCHOR_CELLS) / half + 1;
    int candidates_y = (photo->cells_y - ANCHOR_CELLS) / half + 1;
    photo->anchors = 0;
    while (photo->anchors < MAX_ANCHORS) {
        int best_x = -1, best_y = -1;
        uint64_t best = 0;
        for (int gy = 0; gy < candidates_y; gy++)
            for (int gx = 0; gx < candidates_x; gx++) {
                int x = gx * half, y = gy * half;
                uint64_t sum = cell_sum(photo, x, y, x + ANCHOR_CELLS, y + ANCHOR_CELLS);
                if (best_x >= 0 && sum <= best)
                    continue;
                bool overlaps = false;
                for (int a = 0; a < photo->anchors; a++)
                    if (abs(x * CELL - photo->anchor_x[a]) < ANCHOR_CELLS * CELL &&
                        abs(y * CELL - photo->anchor_y[a]) < ANCHOR_CELLS * CELL)
                        overlaps = true;
                if (overlaps)
                    continue;
                best_x = x;
                best_y = y;
                best = sum;
            }
        if (best_x < 0)
            break;
        photo->anchor_x[photo->anchors] = best_x * CELL;
        photo->anchor_y[photo->anchors] = best_y * CELL;
        photo->anchors++;
    }
    return 0;
}

/* Decodes and analyses a photo, and wraps its pixels for libvips. */
static int photo_load(const char *path, struct photo *photo, char *err)
{
    int rc = photo_decode(path, photo, err);
    if (rc == 0)
        rc = photo_analyse(photo, err);
    if (rc == 0) {
        photo->image =
            vips_image_new_from_memory(photo->rgb, (size_t)photo->width * (size_t)photo->height * 3,
                                       photo->width, photo->height, 3, VIPS_FORMAT_UCHAR);
        if (photo->image == NULL)
            rc = blurd_error_set(err, BLURD_ENOMEM, "%s: cannot wrap the decoded pixels", path);
    }
    if (rc != 0)
        photo_free(photo);
    return rc;
}

/* ---- planning one image ------------------------------------------------------------ */

enum region { REGION_RANDOM, REGION_TEXTURED, REGION_FLAT };

/* How an image's scale is chosen: drawn (full size, or web size for WEB_SHARE of the
 * images), or set to full size, web size, or shrunk further (a clear image drawn again
 * for looking soft, and its blurred partner: see make_image()). */
enum sizing { SIZING_DRAWN, SIZING_FULL, SIZING_WEB, SIZING_SHRUNK };

/* What a made image's pixels say of it, before noise and JPEG: see render(). */
struct measures {
    double kept;     /* the share of the crop's fine detail its blur kept; 1 without one */
    double softness; /* the share of the image's own fine detail a further blur keeps */
};

struct plan {
    int label;
    int kernel;
    double strength, angle; /* angle: motion only */
    uint64_t shake_seed;
    double focus_x, focus_y, focus_r;   /* dof: the sharp zone's centre and radius, native */
    int crop_x, crop_y, crop_w, crop_h; /* at native resolution */
    double scale;                       /* 1, or the web-size downscale */
    enum sizing sizing;                 /* how the scale was chosen */
    double noise;                       /* sigma, 0..255 scale; 0: none */
    int quality;
    uint64_t noise_seed;
};

/* Crop size and scale (see the top of the file); the crop always fits the photo.  A
 * web-size crop has its scale drawn from WEB_SCALE_LOW..WEB_SCALE_HIGH, or up to
 * SHRINK_SCALE_HIGH when SIZING_SHRUNK, but raised as far as the photo needs to hold the
 * native crop: a small photo's crop may not shrink that far.  plan->sizing says which of
 * full size, web size or shrunk it became. */
static void plan_size(struct rng *rng, int width, int height, enum sizing sizing, struct plan *plan)
{
    double aspect = rng_uniform(rng, 1.0, MAX_ASPECT);
    bool portrait = rng_unit(rng) < PORTRAIT_SHARE;
    int along = portrait ? height : width, across = portrait ? width : height;
    /* The short side must stay at least MIN_SHORT_SIDE even when the long one is cut to
     * the room there is. */
    if (aspect > (double)along / MIN_SHORT_SIDE)
        aspect = fmax(1.0, (double)along / MIN_SHORT_SIDE);
    double max_long = fmin(along, across * aspect);
    double low = fmax(MIN_OUTPUT_LONG, MIN_SHORT_SIDE * aspect);
    double high = fmin(MAX_OUTPUT_LONG, max_long);
    if (low > high)
        low = high;
    double out_long = rng_log_uniform(rng, low, high);
    double scale = 1.0;
    /* Drawn even when the sizing is set, so the rest of the stream stays the same. */
    bool drawn_web = rng_unit(rng) < WEB_SHARE;
    if (sizing == SIZING_DRAWN)
        sizing = drawn_web ? SIZING_WEB : SIZING_FULL;
    if (sizing != SIZING_FULL) {
        double scale_high = sizing == SIZING_SHRUNK ? SHRINK_SCALE_HIGH : WEB_SCALE_HIGH;
        scale = rng_uniform(rng, WEB_SCALE_LOW, scale_high);
        if (out_long / scale > max_long)
            scale = out_long / max_long;
    }
    plan->sizing = sizing;
    double native_long = out_long / scale;
    int long_side = (int)fmin(along, floor(native_long + 0.5));
    int short_side = (int)fmin(across, floor(native_long / aspect + 0.5));
    plan->crop_w = portrait ? short_side : long_side;
    plan->crop_h = portrait ? long_side : short_side;
    plan->scale = scale;
}

/* A position for a w x h crop with its corner in [x_lo, x_hi] x [y_lo, y_hi].  Random, or
 * among the positions on a CELL grid (and the range's far ends) a random one of those
 * near the most textured (TEXTURED) or the least textured that is not blank (FLAT). */
static void choose_position(const struct photo *photo, enum region region, int w, int h, int x_lo,
                            int x_hi, int y_lo, int y_hi, struct rng *rng, int *out_x, int *out_y)
{
    if (region == REGION_RANDOM) {
        *out_x = x_lo + (int)rng_below(rng, (size_t)(x_hi - x_lo + 1));
        *out_y = y_lo + (int)rng_below(rng, (size_t)(y_hi - y_lo + 1));
        return;
    }
    /* Pass 0 finds the extreme, pass 1 counts the positions near it, pass 2 takes one. */
    double best = region == REGION_TEXTURED ? -1.0 : (double)INFINITY, fallback = -1.0;
    size_t near = 0, pick = 0, seen = 0;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1 && region == REGION_FLAT && isinf(best)) {
            /* Every region is blank: any will do, so take the least blank. */
            region = REGION_TEXTURED;
            best = fallback;
        }
        if (pass == 2)
            pick = rng_below(rng, near > 0 ? near : 1);
        for (int y = y_lo;; y = y + CELL < y_hi ? y + CELL : y_hi) {
            for (int x = x_lo;; x = x + CELL < x_hi ? x + CELL : x_hi) {
                double t = region_texture(photo, x, y, w, h);
                if (pass == 0) {
                    if (region == REGION_TEXTURED)
                        best = fmax(best, t);
                    else if (t >= FLAT_MIN_TEXTURE)
                        best = fmin(best, t);
                    fallback = fmax(fallback, t);
                } else {
                    bool is_near = region == REGION_TEXTURED
                                       ? t >= TEXTURED_NEAR_MAX * best
                                       : t >= FLAT_MIN_TEXTURE && t <= FLAT_NEAR_MIN * best;
                    if (is_near && pass == 1)
                        near++;
                    if (is_near && pass == 2 && seen++ == pick) {
                        *out_x = x;
                        *out_y = y;
                        return;
                    }
                }
                if (x == x_hi)
                    break;
            }
            if (y == y_hi)
                break;
        }
    }
    /* Not reached: the extreme itself is always near. */
    *out_x = x_lo;
    *out_y = y_lo;
}

/* Draws everything about one image from its own stream. */
static void plan_image(const struct photo *photo, int label, int kernel, enum sizing sizing,
                       struct rng *rng, struct plan *plan)
{
    memset(plan, 0, sizeof *plan);
    plan->label = label;
    plan->kernel = label == BLURD_DATASET_BLURRED ? kernel : BLURD_SYNTH_NONE;
    if (plan->kernel != BLURD_SYNTH_NONE) {
        plan->strength =
            rng_log_uniform(rng, strength_low[plan->kernel], strength_high[plan->kernel]);
        plan->angle = rng_uniform(rng, 0.0, M_PI);
        plan->shake_seed = rng_next(rng);
    }
    plan_size(rng, photo->width, photo->height, sizing, plan);
    int w = plan->crop_w, h = plan->crop_h;

    int x_lo = 0, x_hi = photo->width - w, y_lo = 0, y_hi = photo->height - h;
    int anchor = -1; /* sharp crops: the in-focus window they hold */
    enum region region = REGION_RANDOM;
    double u = rng_unit(rng);
    if (label == BLURD_DATASET_BLURRED) {
        if (u < BLURRED_TEXTURED_SHARE)
            region = REGION_TEXTURED;
    } else {
        if (u < SHARP_TEXTURED_SHARE)
            region = REGION_TEXTURED;
        else if (u < SHARP_TEXTURED_SHARE + SHARP_FLAT_SHARE)
            region = REGION_FLAT;
        /* Keep one in-focus window inside the crop (crops are at least 200 pixels, anchors
         * 128, so the range is never empty). */
        if (photo->anchors > 0) {
            int a = (int)rng_below(rng, (size_t)photo->anchors);
            int size = ANCHOR_CELLS * CELL;
            anchor = a;
            x_lo = photo->anchor_x[a] + size - w > 0 ? photo->anchor_x[a] + size - w : 0;
            x_hi = photo->anchor_x[a] < x_hi ? photo->anchor_x[a] : x_hi;
            y_lo = photo->anchor_y[a] + size - h > 0 ? photo->anchor_y[a] + size - h : 0;
            y_hi = photo->anchor_y[a] < y_hi ? photo->anchor_y[a] : y_hi;
            if (x_lo > x_hi)
                x_lo = x_hi;
            if (y_lo > y_hi)
                y_lo = y_hi;
        }
    }
    choose_position(photo, region, w, h, x_lo, x_hi, y_lo, y_hi, rng, &plan->crop_x, &plan->crop_y);
    if (label == BLURD_DATASET_BLURRED && region == REGION_RANDOM &&
        region_texture(photo, plan->crop_x, plan->crop_y, w, h) < BLUR_MIN_TEXTURE)
        choose_position(photo, REGION_TEXTURED, w, h, x_lo, x_hi, y_lo, y_hi, rng, &plan->crop_x,
                        &plan->crop_y);

    plan->noise = rng_unit(rng) < NOISE_SHARE ? rng_uniform(rng, NOISE_LOW, NOISE_HIGH) : 0.0;
    plan->quality = QUALITY_LOW + (int)rng_below(rng, QUALITY_HIGH - QUALITY_LOW + 1);
    plan->noise_seed = rng_next(rng);

    /* Drawn last from the image's own stream, so the rest of a crop's plan is the same
     * whether or not it gets a shallow depth of field. */
    if (anchor >= 0 && rng_unit(rng) < SHARP_DOF_SHARE) {
        int size = ANCHOR_CELLS * CELL;
        plan->kernel = BLURD_SYNTH_DOF;
        plan->strength =
            rng_log_uniform(rng, strength_low[BLURD_SYNTH_DOF], strength_high[BLURD_SYNTH_DOF]);
        plan->focus_x = photo->anchor_x[anchor] + size / 2.0;
        plan->focus_y = photo->anchor_y[anchor] + size / 2.0;
        /* at least the window, and DOF_ZONE_PIXELS in the saved image, so that a tile of it
         * is sharp even in a web-size crop */
        plan->focus_r =
            fmax(size * rng_uniform(rng, DOF_ZONE_LOW, DOF_ZONE_HIGH),
                 rng_uniform(rng, DOF_ZONE_PIXELS_LOW, DOF_ZONE_PIXELS_HIGH) / plan->scale);
    }
}

static int build_mask(const struct plan *plan, struct blurd_synth_mask *mask)
{
    switch (plan->kernel) {
    case BLURD_SYNTH_GAUSSIAN:
        return blurd_synth_mask_gaussian(plan->strength, mask);
    case BLURD_SYNTH_DISK:
    case BLURD_SYNTH_DOF:
        return blurd_synth_mask_disk(plan->strength, mask);
    case BLURD_SYNTH_MOTION:
        return blurd_synth_mask_motion(plan->strength, plan->angle, mask);
    case BLURD_SYNTH_SHAKE:
        return blurd_synth_mask_shake(plan->strength, plan->shake_seed, mask);
    default:
        return 0;
    }
}

/* ---- making one image -------------------------------------------------------------- */

/* Shallow depth of field: `sharp` within `radius` of (cx, cy), fading linearly to
 * `defocused` at twice that distance, into *out. */
static int blend_focus(VipsImage *sharp, VipsImage *defocused, double cx, double cy, double radius,
                       VipsImage **out)
{
    int w = sharp->Xsize, h = sharp->Ysize;
    uint8_t *weights = g_malloc((size_t)w * (size_t)h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double d = hypot(x + 0.5 - cx, y + 0.5 - cy);
            double keep = d <= radius ? 1.0 : fmax(0.0, 2.0 - d / radius);
            weights[(size_t)y * (size_t)w + (size_t)x] = (uint8_t)lrint(255.0 * keep);
        }
    VipsImage *condition =
        vips_image_new_from_memory_copy(weights, (size_t)w * (size_t)h, w, h, 1, VIPS_FORMAT_UCHAR);
    g_free(weights);
    if (condition == NULL)
        return -1;
    int rc = vips_ifthenelse(condition, sharp, defocused, out, "blend", TRUE, NULL);
    g_object_unref(condition);
    return rc;
}

/* The grey values of a w x h x 3 float image, into `g`. */
static void grey_of(const float *rgb, size_t n, float *g)
{
    for (size_t i = 0; i < n; i++)
        g[i] = 0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2];
}

/* Fine detail of a w x h grey image: the mean square of its Laplacian (four neighbours).
 * Squares weigh the strongest detail most, so a crop's figure follows its sharpest part,
 * and second differences all but ignore smooth shading, so a sharp subject before a soft
 * background still measures sharp.  The outer DETAIL_BORDER pixels are left out, where a
 * filter would read past the image. */
static double fine_detail(const float *g, int w, int h)
{
    double total = 0.0;
    size_t count = 0;
    for (int y = DETAIL_BORDER; y < h - DETAIL_BORDER - 1; y++)
        for (int x = DETAIL_BORDER; x < w - DETAIL_BORDER - 1; x++) {
            size_t i = (size_t)y * (size_t)w + (size_t)x;
            double lap = (double)g[i + 1] + (double)g[i - 1] + (double)g[i + (size_t)w] +
                         (double)g[i - (size_t)w] - 4.0 * (double)g[i];
            total += lap * lap;
            count++;
        }
    return count > 0 ? total / (double)count : 0.0;
}

/* A Gaussian of sigma `sigma` on the w x h grey image `g`, in place (`scratch` as large):
 * separable, taps to 3 sigma, clamped at the edges (only fine_detail()'s border reads
 * them). */
static void blur_grey(float *g, float *scratch, int w, int h, double sigma)
{
    int r = (int)ceil(3.0 * sigma);
    double taps[16], sum = 0.0;
    r = r > 15 ? 15 : r;
    for (int k = 0; k <= r; k++) {
        taps[k] = exp(-0.5 * k * k / (sigma * sigma));
        sum += k == 0 ? taps[k] : 2.0 * taps[k];
    }
    for (int pass = 0; pass < 2; pass++) {
        const float *src = pass == 0 ? g : scratch;
        float *dst = pass == 0 ? scratch : g;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = 0.0;
                for (int k = -r; k <= r; k++) {
                    int xx = pass == 0 ? x + k : x, yy = pass == 0 ? y : y + k;
                    xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
                    yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
                    v += taps[abs(k)] * (double)src[(size_t)yy * (size_t)w + (size_t)xx];
                }
                dst[(size_t)y * (size_t)w + (size_t)x] = (float)(v / sum);
            }
    }
}

/* a / b for two fine-detail figures: 1 when there is nothing to compare */
static double detail_ratio(double a, double b)
{
    return b <= 0.0 ? 1.0 : a / b;
}

/* Crop (with a margin of real pixels for the filters to read), scale, blur, cut the crop
 * out: `*pixels` (g_malloc'd) gets *width x *height x 3 floats on the 0..255 scale.
 * `measures` gets how much of the crop's fine detail the blur kept, and how much of the
 * result's a further SOFT_SIGMA blur would keep (near 1: soft already). */
static int render(const struct photo *photo, const struct plan *plan,
                  const struct blurd_synth_mask *mask, float **pixels, int *width, int *height,
                  struct measures *measures, char *err)
{
    /* The blur reaches half the mask; Lanczos 3 reads 3 output pixels around each. */
    int reach =
        mask->weights != NULL ? (mask->width > mask->height ? mask->width : mask->height) / 2 : 0;
    int margin = (int)ceil((reach + 4) / plan->scale);
    int x0 = plan->crop_x - margin > 0 ? plan->crop_x - margin : 0;
    int y0 = plan->crop_y - margin > 0 ? plan->crop_y - margin : 0;
    int x1 = plan->crop_x + plan->crop_w + margin;
    int y1 = plan->crop_y + plan->crop_h + margin;
    if (x1 > photo->width)
        x1 = photo->width;
    if (y1 > photo->height)
        y1 = photo->height;

    VipsImage *image = NULL, *next = NULL, *matrix = NULL;
    int rc = vips_extract_area(photo->image, &image, x0, y0, x1 - x0, y1 - y0, NULL);
    if (rc == 0)
        rc = step(&image, &next, vips_cast_float(image, &next, NULL));
    int inner_x = plan->crop_x - x0, inner_y = plan->crop_y - y0;
    int inner_w = plan->crop_w, inner_h = plan->crop_h;
    if (rc == 0 && plan->scale < 1.0) {
        rc = step(&image, &next, vips_resize(image, &next, plan->scale, NULL));
        inner_x = (int)floor(inner_x * plan->scale + 0.5);
        inner_y = (int)floor(inner_y * plan->scale + 0.5);
        inner_w = (int)floor(inner_w * plan->scale + 0.5);
        inner_h = (int)floor(inner_h * plan->scale + 0.5);
    }
    VipsImage *sharp = NULL; /* the image before its blur */
    if (rc == 0 && mask->weights != NULL) {
        sharp = image;
        g_object_ref(sharp);
        matrix = vips_image_new_matrix_from_array(mask->width, mask->height, mask->weights,
                                                  mask->width * mask->height);
        if (matrix == NULL) {
            rc = -1;
        } else {
            /* Weights already sum to 1: no scaling, no offset. */
            vips_image_set_double(matrix, "scale", 1.0);
            vips_image_set_double(matrix, "offset", 0.0);
            /* A one-row mask is a separable Gaussian: rows, then columns. */
            if (mask->height == 1)
                rc = step(
                    &image, &next,
                    vips_convsep(image, &next, matrix, "precision", VIPS_PRECISION_FLOAT, NULL));
            else
                rc = step(&image, &next,
                          vips_conv(image, &next, matrix, "precision", VIPS_PRECISION_FLOAT, NULL));
        }
    }
    if (rc == 0 && sharp != NULL && plan->kernel == BLURD_SYNTH_DOF) {
        double scale = plan->scale;
        rc = step(&image, &next,
                  blend_focus(sharp, image, (plan->focus_x - x0) * scale,
                              (plan->focus_y - y0) * scale, plan->focus_r * scale, &next));
    }
    if (rc == 0) {
        /* Rounding in the resize may leave the scaled crop a pixel short. */
        if (inner_x + inner_w > image->Xsize)
            inner_w = image->Xsize - inner_x;
        if (inner_y + inner_h > image->Ysize)
            inner_h = image->Ysize - inner_y;
        rc = step(&image, &next,
                  vips_extract_area(image, &next, inner_x, inner_y, inner_w, inner_h, NULL));
    }
    float *before = NULL;
    size_t bytes = 0, before_bytes = 0;
    if (rc == 0 && sharp != NULL) {
        rc = vips_extract_area(sharp, &next, inner_x, inner_y, inner_w, inner_h, NULL);
        if (rc == 0) {
            before = vips_image_write_to_memory(next, &before_bytes);
            g_object_unref(next);
            next = NULL;
            if (before == NULL)
                rc = -1;
        }
    }
    if (sharp != NULL)
        g_object_unref(sharp);
    *pixels = NULL;
    if (rc == 0) {
        *width = image->Xsize;
        *height = image->Ysize;
        *pixels = vips_image_write_to_memory(image, &bytes);
    }
    if (image != NULL)
        g_object_unref(image);
    size_t expected = rc == 0 ? (size_t)*width * (size_t)*height * 3 * sizeof(float) : 0;
    if (matrix != NULL)
        g_object_unref(matrix);
    if (rc != 0 || *pixels == NULL || bytes != expected ||
        (before != NULL && before_bytes != expected)) {
        char reason[BLURD_ERR_LEN];
        take_vips_reason(reason, sizeof reason);
        g_free(before);
        g_free(*pixels);
        *pixels = NULL;
        return blurd_error_set(err, BLURD_EIO, "cannot make an image: %s", reason);
    }
    /* Out of memory in a measure must fail the image, not pass it as doubtful: which draw
     * is kept would then depend on the memory free.  Two grey buffers serve all three
     * figures: the image's own, then the unblurred crop's in the second, which is then the
     * blur's scratch. */
    size_t n = (size_t)*width * (size_t)*height;
    float *grey = malloc(n * sizeof *grey), *second = malloc(n * sizeof *second);
    if (grey == NULL || second == NULL) {
        free(grey);
        free(second);
        g_free(before);
        g_free(*pixels);
        *pixels = NULL;
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory measuring an image");
    }
    grey_of(*pixels, n, grey);
    double detail = fine_detail(grey, *width, *height);
    bool blurred = before != NULL;
    double unblurred = detail;
    if (blurred) {
        grey_of(before, n, second);
        unblurred = fine_detail(second, *width, *height);
    }
    g_free(before);
    blur_grey(grey, second, *width, *height, SOFT_SIGMA);
    double softened = fine_detail(grey, *width, *height);
    free(grey);
    free(second);
    measures->kept = blurred ? detail_ratio(detail, unblurred) : 1.0;
    measures->softness = detail_ratio(softened, detail);
    return 0;
}

/* Adds the planned noise and rounds to 8 bits, in place (the floats' buffer is reused). */
static uint8_t *finish(float *pixels, size_t count, const struct plan *plan)
{
    uint8_t *out = (uint8_t *)pixels;
    struct rng rng;
    rng_seed(&rng, plan->noise_seed, 0x4e4f495345ULL /* "NOISE" */, 0);
    /* Reading index i and writing byte i never overtakes: byte i lies at or below float i. */
    for (size_t i = 0; i < count; i += 3) {
        double shared = plan->noise > 0.0 ? NOISE_SHARED * rng_gauss(&rng) : 0.0;
        for (size_t c = 0; c < 3; c++) {
            double v = (double)pixels[i + c];
            if (plan->noise > 0.0)
                v += plan->noise * (shared + NOISE_CHANNEL * rng_gauss(&rng));
            v = floor(v + 0.5);
            out[i + c] = (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
        }
    }
    return out;
}

static int encode_jpeg(const uint8_t *rgb, int width, int height, int quality, void **jpeg,
                       size_t *jpeg_size, char *err)
{
    VipsImage *image = vips_image_new_from_memory(rgb, (size_t)width * (size_t)height * 3, width,
                                                  height, 3, VIPS_FORMAT_UCHAR);
    int rc = image != NULL ? 0 : -1;
    if (rc == 0) {
        image->Type = VIPS_INTERPRETATION_sRGB;
        rc = vips_jpegsave_buffer(image, jpeg, jpeg_size, "Q", quality, "strip", TRUE,
                                  "optimize_coding", TRUE, NULL);
    }
    if (image != NULL)
        g_object_unref(image);
    if (rc != 0) {
        char reason[BLURD_ERR_LEN];
        take_vips_reason(reason, sizeof reason);
        return blurd_error_set(err, BLURD_EIO, "cannot encode JPEG: %s", reason);
    }
    return 0;
}

/* Creates `path` (never replacing anything) holding `data`; removes it again on failure. */
static int write_new_file(const char *path, const void *data, size_t size, char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int saved = errno;
        return blurd_error_set(err, saved == EEXIST ? BLURD_EINVAL : BLURD_EIO,
                               "%s: cannot create: %s", path, strerror(saved));
    }
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : EIO;
            close(fd);
            unlink(path);
            return blurd_error_set(err, BLURD_EIO, "%s: cannot write: %s", path, strerror(saved));
        }
        p += n;
        size -= (size_t)n;
    }
    if (close(fd) != 0) {
        int saved = errno;
        unlink(path);
        return blurd_error_set(err, BLURD_EIO, "%s: cannot write: %s", path, strerror(saved));
    }
    return 0;
}

/* ---- the run ----------------------------------------------------------------------- */

struct row {
    bool written;
    size_t source; /* index into the photo names */
    int kernel;
    double strength;
    int crop_w, crop_h;
    double noise;
    int quality;
    double kept, softness;
};

struct synth {
    const struct blurd_synth_options *options;
    struct blurd_synth_summary *summary;
    struct name_list photos;
    char *folders[BLURD_DATASET_CLASSES];
    int digits;
    struct row *rows; /* [label * count + sample] */
    struct blurd_progress progress;
    size_t done;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* How far a made image is from what its label claims: a clear image's softness, or the
 * share of fine detail a blurred one's blur kept.  Lower is better; at most the limit
 * passes. */
static double label_doubt(int label, const struct measures *measures)
{
    return label == BLURD_DATASET_CLEAR ? measures->softness : measures->kept;
}

static double doubt_limit(int label)
{
    return label == BLURD_DATASET_CLEAR ? BLURD_SYNTH_CLEAR_SOFTNESS_MAX
                                        : BLURD_SYNTH_BLURRED_KEPT_MAX;
}

/* Makes, encodes and writes image (sample, label) from `photo`.  A made image that does
 * not look like its label (label_doubt()) is drawn again from the same stream, a new crop
 * and blur, up to BLURD_SYNTH_MAX_ATTEMPTS times, a clear one shrunk for the web in the
 * second half of them; if none passes, the least doubtful is kept.  Every draw is sized
 * by `sizing` (a clear image's first half: SIZING_DRAWN), and `*kept_sizing` (unless NULL)
 * says how the kept one was: that is how a sample's blurred image follows its clear one
 * (see make_sample()). */
static int make_image(struct synth *run, const struct photo *photo, size_t photo_index,
                      size_t sample, int label, int kernel, enum sizing sizing,
                      enum sizing *kept_sizing, char *err)
{
    struct rng rng;
    rng_seed(&rng, run->options->seed, sample, (uint64_t)label);
    struct plan plan = {0};
    struct measures measures = {1.0, 1.0};
    float *pixels = NULL;
    int width = 0, height = 0, attempts = 0;
    while (attempts < BLURD_SYNTH_MAX_ATTEMPTS) {
        struct plan next_plan;
        /* A photo soft at full size still makes a sharp image shrunk for the web. */
        enum sizing draw_sizing = sizing;
        if (label == BLURD_DATASET_CLEAR && attempts >= BLURD_SYNTH_MAX_ATTEMPTS / 2)
            draw_sizing = SIZING_SHRUNK;
        plan_image(photo, label, kernel, draw_sizing, &rng, &next_plan);
        struct blurd_synth_mask mask = {0, 0, NULL};
        if (build_mask(&next_plan, &mask) != 0) {
            g_free(pixels);
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory building a blur mask");
        }
        float *next_pixels = NULL;
        int next_width = 0, next_height = 0;
        struct measures next_measures = {1.0, 1.0};
        int rc = render(photo, &next_plan, &mask, &next_pixels, &next_width, &next_height,
                        &next_measures, err);
        blurd_synth_mask_clear(&mask);
        if (rc != 0) {
            g_free(pixels);
            return rc;
        }
        attempts++;
        if (pixels == NULL || label_doubt(label, &next_measures) < label_doubt(label, &measures)) {
            g_free(pixels);
            pixels = next_pixels;
            width = next_width;
            height = next_height;
            plan = next_plan;
            measures = next_measures;
        } else {
            g_free(next_pixels);
        }
        if (label_doubt(label, &measures) <= doubt_limit(label))
            break;
    }
    if (attempts > 1)
        run->summary->redrawn[label]++;
    if (label_doubt(label, &measures) > doubt_limit(label))
        run->summary->doubtful[label]++;
    if (kept_sizing != NULL)
        *kept_sizing = plan.sizing;
    uint8_t *rgb = finish(pixels, (size_t)width * (size_t)height * 3, &plan);
    void *jpeg = NULL;
    size_t jpeg_size = 0;
    int rc = encode_jpeg(rgb, width, height, plan.quality, &jpeg, &jpeg_size, err);
    g_free(pixels);
    if (rc != 0)
        return rc;

    char name[32];
    snprintf(name, sizeof name, "%0*zu.jpg", run->digits, sample);
    char *path = join_path(run->folders[label], name);
    rc = path != NULL ? write_new_file(path, jpeg, jpeg_size, err)
                      : blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    free(path);
    g_free(jpeg);
    if (rc != 0)
        return rc;

    struct row *row = &run->rows[(size_t)label * (size_t)run->options->count + sample];
    *row = (struct row){true,        photo_index, plan.kernel,  plan.strength, plan.crop_w,
                        plan.crop_h, plan.noise,  plan.quality, measures.kept, measures.softness};
    run->summary->written[label]++;
    run->summary->kernels[plan.kernel]++;
    return 0;
}

/* Makes sample `sample`'s two images, the clear one first, and sizes the blurred one as
 * the clear one came out: full size, web size, or shrunk further.  Drawn on its own, a
 * photo soft at full size would give clear images mostly shrunk (only those look sharp)
 * and blurred ones mostly at full size, and a network could learn "this photo at full
 * size" as blurred: in a training set made so, 23 of one ocean photo's 23 clear images
 * were scaled down against 8 of its 23 blurred. */
static int make_sample(struct synth *run, const struct photo *photo, size_t photo_index,
                       size_t sample, int kernel, char *err)
{
    size_t total = 2 * (size_t)run->options->count;
    enum sizing clear_sizing = SIZING_DRAWN;
    int rc = make_image(run, photo, photo_index, sample, BLURD_DATASET_CLEAR, kernel, SIZING_DRAWN,
                        &clear_sizing, err);
    run->done++;
    blurd_progress_show(&run->progress, run->done, total, 0);
    if (rc != 0)
        return rc;
    rc = make_image(run, photo, photo_index, sample, BLURD_DATASET_BLURRED, kernel, clear_sizing,
                    NULL, err);
    run->done++;
    blurd_progress_show(&run->progress, run->done, total, 0);
    return rc;
}

/* Writes a CSV field, quoted when it holds a delimiter, quote or line break. */
static void write_csv_field(FILE *f, const char *text)
{
    if (strpbrk(text, ",\"\r\n") == NULL) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            fputc('"', f);
        fputc(*c, f);
    }
    fputc('"', f);
}

static int write_labels(struct synth *run, char *err)
{
    char *path = join_path(run->options->out_dir, LABELS_FILE);
    if (path == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        int saved = errno;
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        blurd_error_set(err, BLURD_EIO, "%s: cannot create: %s", path, strerror(saved));
        free(path);
        return BLURD_EIO;
    }
    fprintf(f, "%s\n", LABELS_HEADER);
    size_t count = (size_t)run->options->count;
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++)
        for (size_t i = 0; i < count; i++) {
            const struct row *row = &run->rows[(size_t)label * count + i];
            if (!row->written)
                continue;
            fprintf(f, "%s/%0*zu.jpg,%s,", folder_names[label], run->digits, i, label_names[label]);
            write_csv_field(f, run->photos.names[row->source]);
            fprintf(f, ",%s,%.2f,%d,%d,%.1f,%d,%.3f,%.3f\n", kernel_names[row->kernel],
                    row->strength, row->crop_w, row->crop_h, row->noise, row->quality, row->kept,
                    row->softness);
        }
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0)
        failed = true;
    if (failed) {
        unlink(path);
        blurd_error_set(err, BLURD_EIO, "%s: cannot write", path);
    }
    free(path);
    return failed ? BLURD_EIO : 0;
}

/* 0 when `path` is missing or an empty folder; else an error saying synth will not
 * write there. */
static int check_empty_folder(const char *path, char *err)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        int saved = errno;
        if (saved == ENOENT)
            return 0;
        return blurd_error_set(err, saved == ENOTDIR ? BLURD_EINVAL : blurd_error_from_errno(saved),
                               "%s: %s", path,
                               saved == ENOTDIR ? "exists and is not a folder" : strerror(saved));
    }
    struct dirent *entry;
    bool empty = true;
    while (empty && (entry = readdir(d)) != NULL)
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            empty = false;
    closedir(d);
    if (!empty)
        return blurd_error_set(err, BLURD_EINVAL,
                               "%s: already holds files; synth never overwrites, so give it a new "
                               "or empty output folder",
                               path);
    return 0;
}

static int make_folder(const char *path, char *err)
{
    if (mkdir(path, 0777) == 0)
        return 0;
    int saved = errno;
    struct stat st;
    if (saved == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    return blurd_error_set(err, saved == EEXIST ? BLURD_EINVAL : blurd_error_from_errno(saved),
                           "%s: cannot create the folder: %s", path,
                           saved == EEXIST ? "a file has that name" : strerror(saved));
}

/* Refuses an output folder synth could overwrite anything in, before any work is done. */
static int check_output(struct synth *run, char *err)
{
    const char *out = run->options->out_dir;
    struct stat st;
    if (stat(out, &st) == 0 && !S_ISDIR(st.st_mode))
        return blurd_error_set(err, BLURD_EINVAL, "%s: exists and is not a folder", out);
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++) {
        run->folders[label] = join_path(out, folder_names[label]);
        if (run->folders[label] == NULL)
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
        int rc = check_empty_folder(run->folders[label], err);
        if (rc != 0)
            return rc;
    }
    char *labels = join_path(out, LABELS_FILE);
    if (labels == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    bool exists = lstat(labels, &st) == 0;
    int rc = exists ? blurd_error_set(err, BLURD_EINVAL,
                                      "%s: already exists; synth never overwrites, so give it a "
                                      "new or empty output folder",
                                      labels)
                    : 0;
    free(labels);
    return rc;
}

static int run_synth(struct synth *run, char *err)
{
    const struct blurd_synth_options *options = run->options;
    struct blurd_synth_summary *summary = run->summary;
    int rc = list_images(options->sharp_dir, "photo folder", &run->photos, err);
    if (rc != 0)
        return rc;
    if (run->photos.count == 0)
        return blurd_error_set(err, BLURD_ENOENT,
                               "%s: no image files (jpg, jpeg, png, webp, tif, tiff, gif, heic, "
                               "heif or avif) to make samples from",
                               options->sharp_dir);
    rc = check_output(run, err);
    if (rc != 0)
        return rc;

    /* Which photos can be used decides which photo each sample comes from, so every photo
     * is decoded once before the first sample is made. */
    size_t *usable = malloc(run->photos.count * sizeof *usable);
    if (usable == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    size_t usable_count = 0;
    for (size_t p = 0; p < run->photos.count; p++) {
        char *path = join_path(options->sharp_dir, run->photos.names[p]);
        struct photo photo;
        char why[BLURD_ERR_LEN];
        int check = path != NULL ? photo_decode(path, &photo, why) : BLURD_ENOMEM;
        if (check == BLURD_ENOMEM) {
            free(path);
            free(usable);
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
        }
        if (check == 0) {
            usable[usable_count++] = p;
            photo_free(&photo);
        } else {
            blurd_log_warning("%s; left out", why);
            summary->unreadable++;
        }
        free(path);
    }
    if (usable_count == 0) {
        free(usable);
        return blurd_error_set(err, BLURD_ENOENT, "%s: none of the %zu photos could be used",
                               options->sharp_dir, run->photos.count);
    }

    for (int label = 0; label < BLURD_DATASET_CLASSES && rc == 0; label++) {
        if (label == 0)
            rc = make_folder(options->out_dir, err);
        if (rc == 0)
            rc = make_folder(run->folders[label], err);
    }
    size_t count = (size_t)options->count;
    run->rows = rc == 0 ? calloc(2 * count, sizeof *run->rows) : NULL;
    if (rc == 0 && run->rows == NULL)
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    run->digits = 5;
    for (size_t limit = 100000; limit < count; limit *= 10)
        run->digits++;

    /* Photo u makes samples u, u + M, u + 2M...; each photo is decoded once for all of
     * them.  Kernels rotate one place per round so each photo gets each kind. */
    blurd_progress_show(&run->progress, run->done, 2 * (size_t)run->options->count, 1);
    for (size_t u = 0; u < usable_count && u < count && rc == 0; u++) {
        size_t p = usable[u];
        char *path = join_path(options->sharp_dir, run->photos.names[p]);
        struct photo photo;
        char why[BLURD_ERR_LEN];
        int loaded = path != NULL ? photo_load(path, &photo, why) : BLURD_ENOMEM;
        free(path);
        if (loaded == BLURD_ENOMEM) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
            break;
        }
        if (loaded != 0) {
            /* Changed since it was checked: its samples are missing, the rest go on. */
            blurd_log_warning("%s; its samples are left out", why);
            summary->unreadable++;
            continue;
        }
        summary->photos++;
        for (size_t i = u; i < count && rc == 0; i += usable_count) {
            int kernel = BLURD_SYNTH_GAUSSIAN + (int)((i / usable_count + u) % 4);
            rc = make_sample(run, &photo, p, i, kernel, err);
        }
        photo_free(&photo);
    }
    free(usable);
    blurd_progress_clear(&run->progress);
    if (rc == 0)
        rc = write_labels(run, err);
    return rc;
}

int blurd_synth_run(const struct blurd_synth_options *options, struct blurd_synth_summary *summary,
                    char *err)
{
    struct blurd_synth_summary ignored;
    if (summary == NULL)
        summary = &ignored;
    memset(summary, 0, sizeof *summary);
    if (options == NULL || options->sharp_dir == NULL || options->out_dir == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_synth_run: NULL argument");
    if (options->count < 1 || options->count > BLURD_SYNTH_MAX_COUNT)
        return blurd_error_set(err, BLURD_EINVAL, "count %d is outside 1..%d", options->count,
                               BLURD_SYNTH_MAX_COUNT);
    int rc = blurd_image_init(NULL, err);
    if (rc != 0)
        return rc;

    struct synth run;
    memset(&run, 0, sizeof run);
    run.options = options;
    run.summary = summary;
    blurd_progress_start(&run.progress, options->progress, "images");
    rc = run_synth(&run, err);
    name_list_clear(&run.photos);
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++)
        free(run.folders[label]);
    free(run.rows);
    summary->seconds = now_seconds() - run.progress.start;
    return rc;
}
