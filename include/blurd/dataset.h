/* dataset.h - labelled training folders (DATA/Blurred and DATA/Undistorted) as a sorted list
 * of files with their labels and source keys, the validation split by source, and the
 * synthetic-blur generator behind `blurd synth`.
 *
 * Labels follow the model's class order "blurred,clear": a file in DATA/Blurred is label 0,
 * one in DATA/Undistorted label 1.  The folder is the truth (a user corrects a label by
 * moving the file); DATA/labels.csv, written by `blurd synth`, only supplies source keys.
 */
#ifndef BLURD_DATASET_H
#define BLURD_DATASET_H

#include <stddef.h>
#include <stdint.h>

enum blurd_dataset_label {
    BLURD_DATASET_BLURRED = 0, /* DATA/Blurred */
    BLURD_DATASET_CLEAR = 1,   /* DATA/Undistorted */
};
#define BLURD_DATASET_CLASSES 2

struct blurd_dataset_entry {
    char *path;       /* "DATA/Blurred/name.jpg"; owned by the dataset */
    const char *name; /* the file name, pointing into `path` */
    char *source;     /* the split key (see blurd_dataset_read); owned by the dataset */
    int label;        /* an enum blurd_dataset_label */
};

struct blurd_dataset {
    struct blurd_dataset_entry *entries; /* owned; sorted by label, then name (strcmp) */
    size_t count;
    size_t class_count[BLURD_DATASET_CLASSES];
    size_t skipped; /* entries in the class folders that are not image files by name */
};

/* The class folder's name for `label`: "Blurred" or "Undistorted" (NULL for other values). */
const char *blurd_dataset_folder_name(int label);

/* Lists the image files (by extension: blurd_image_has_image_extension) directly inside
 * `dir`/Blurred and `dir`/Undistorted into `dataset`, which must be zeroed or cleared.
 * Hidden entries, subfolders and special files are passed over and counted as skipped.
 * Files are not opened: an unreadable or corrupt image is listed like any other, and the
 * trainer reports it when it decodes it.
 *
 * Each entry's source key groups files that must land on the same side of the validation
 * split: for a file that `dir`/labels.csv lists (as "Blurred/NAME" or "Undistorted/NAME",
 * the form `blurd synth` writes) it is that row's source photo; for any other file it is
 * the file name, so same-named files in both folders stay together.  A labels.csv that
 * cannot be parsed is warned about and ignored.
 *
 * Errors, with `err` naming the folder: BLURD_ENOENT (`dir` or a class folder missing or
 * not a folder), BLURD_EACCES (unreadable folder), BLURD_EINVAL (a class folder without any
 * image file; NULL arguments), BLURD_ENOMEM.  On failure `dataset` is left empty. */
int blurd_dataset_read(struct blurd_dataset *dataset, const char *dir, char *err);

/* Frees what the dataset owns and zeroes it; it may be read into again.  NULL is a no-op. */
void blurd_dataset_clear(struct blurd_dataset *dataset);

/* Where `source` falls in [0, 1): a hash of the string, so a source's side of the split
 * never depends on which other files exist, and adding photos moves no old one. */
double blurd_dataset_source_position(const char *source);

/* Marks the validation entries: validation[i] (an array of dataset->count bytes, written
 * entirely) becomes 1 when entry i's source position is below `fraction`, else 0.  Every
 * file of one source lands on the same side.  So that training and validation are both
 * possible whenever there are at least two sources, a fraction in (0, 1) that would leave
 * one side empty moves the single nearest source across.  Returns the number of
 * validation entries; a fraction <= 0 marks none, >= 1 all. */
size_t blurd_dataset_split(const struct blurd_dataset *dataset, double fraction,
                           unsigned char *validation);

/* ---- the synthetic-blur generator ------------------------------------------------- */

enum blurd_synth_kernel {
    BLURD_SYNTH_NONE,     /* a sharp sample */
    BLURD_SYNTH_GAUSSIAN, /* strength: sigma in pixels */
    BLURD_SYNTH_DISK,     /* defocus; strength: radius in pixels */
    BLURD_SYNTH_MOTION,   /* linear motion; strength: length in pixels */
    BLURD_SYNTH_SHAKE,    /* shaken camera; strength: length of the trajectory in pixels */
    BLURD_SYNTH_DOF,      /* a sharp sample with a shallow depth of field: sharp around its
                             in-focus window, the rest defocused; strength: that defocus's
                             disk radius in pixels */
};
#define BLURD_SYNTH_KERNELS 6

/* "none", "gaussian", "disk", "motion", "shake" or "dof" (the labels.csv spelling); NULL
 * for other values. */
const char *blurd_synth_kernel_name(int kernel);

/* A convolution mask centred on its middle element. */
struct blurd_synth_mask {
    int width, height; /* both odd; a Gaussian is one row, applied along rows then columns */
    double *weights;   /* width * height, row-major, summing to 1; owned by the mask */
};

/* Mask builders: each fills `mask` (its old weights are not freed: clear it first) and
 * returns 0, BLURD_EINVAL for a strength outside 0.1..100 pixels, or BLURD_ENOMEM.
 *
 * Gaussian: one row of 2*ceil(3 sigma)+1 taps, each the Gaussian's integral over its
 * pixel, so a small sigma keeps its true width instead of collapsing onto the centre tap.
 * Disk: the fraction of each pixel inside a circle of `radius` (16x16 samples per pixel),
 * an out-of-focus lens's aperture; 2*ceil(radius-0.5)+1 wide, the smallest square that
 * holds every pixel the circle touches.
 * Motion: a straight segment of `length` pixels through the centre at `angle` radians
 * (0 is along rows, increasing clockwise in image coordinates), drawn with bilinear
 * splats, so a fractional length or any angle gives a smooth, exact-length line.
 * Shake: a hand-held camera's path during the exposure, a random walk whose heading turns
 * with momentum (smooth curves) and now and then jerks, moving at varying speed (slow
 * stretches dwell and weigh more), scaled to `length` pixels of path and centred on its
 * centre of mass so the image is not shifted; the same `seed` gives the same path. */
int blurd_synth_mask_gaussian(double sigma, struct blurd_synth_mask *mask);
int blurd_synth_mask_disk(double radius, struct blurd_synth_mask *mask);
int blurd_synth_mask_motion(double length, double angle, struct blurd_synth_mask *mask);
int blurd_synth_mask_shake(double length, uint64_t seed, struct blurd_synth_mask *mask);

/* Frees the weights and zeroes the mask.  NULL is a no-op. */
void blurd_synth_mask_clear(struct blurd_synth_mask *mask);

struct blurd_synth_options {
    const char *sharp_dir; /* borrowed: folder of sharp photos, read to one level */
    const char *out_dir;   /* borrowed: created if missing; its class folders must be empty */
    int count;             /* images per class, 1..BLURD_SYNTH_MAX_COUNT */
    uint64_t seed;
    int progress; /* -1: when stderr is a terminal; 0 never; 1 always */
};
#define BLURD_SYNTH_DEFAULT_COUNT 200
#define BLURD_SYNTH_MAX_COUNT     1000000

/* What a made image must look like, measured on its pixels before noise and JPEG: a clear
 * one must lose at least 1 - BLURD_SYNTH_CLEAR_SOFTNESS_MAX of its fine detail (the
 * energy of its Laplacian) to a further Gaussian blur of sigma 1 px, so that it is not soft
 * already, and a blurred one's blur must have removed at least 1 -
 * BLURD_SYNTH_BLURRED_KEPT_MAX of the crop's.  An image that does not is drawn again, up
 * to BLURD_SYNTH_MAX_ATTEMPTS times. */
#define BLURD_SYNTH_CLEAR_SOFTNESS_MAX 0.15
#define BLURD_SYNTH_BLURRED_KEPT_MAX   0.30 /* 0.15, with 6750 images: worse, models/README.md */
#define BLURD_SYNTH_MAX_ATTEMPTS       8

struct blurd_synth_summary {
    size_t photos;     /* source photos used */
    size_t unreadable; /* source photos that could not be read, or are too small (warned) */
    size_t written[BLURD_DATASET_CLASSES];
    size_t kernels[BLURD_SYNTH_KERNELS];    /* images written per kernel */
    size_t redrawn[BLURD_DATASET_CLASSES];  /* images whose first draw did not pass its check */
    size_t doubtful[BLURD_DATASET_CLASSES]; /* images kept though no draw passed */
    double seconds;
};

/* Writes options->count blurred and options->count sharp images into out_dir/Blurred and
 * out_dir/Undistorted as NNNNN.jpg, and out_dir/labels.csv (header
 * "file,label,source,kernel,strength,crop_w,crop_h,noise,quality,kept,softness", one row
 * per image, sorted by file) describing each: its source photo, blur kernel and strength
 * (in the saved image's pixels), native crop size, added noise sigma (0..255 scale; 0 for
 * none), JPEG quality, the share of the crop's fine detail its blur kept (1 for none) and
 * its softness (the share of its own fine detail a further 1-px blur keeps), both measured
 * before noise and JPEG.  What the images are made of, and why, is told at the top of
 * dataset.c.
 *
 * Deterministic: the same photos, count and seed give byte-identical files (with the same
 * libvips and libjpeg).  Never overwrites: refuses to start when out_dir/Blurred or
 * out_dir/Undistorted holds any entry or out_dir/labels.csv exists, and creates every file
 * exclusively.  Photos that cannot be decoded or are under 200 pixels on the short side are
 * warned about, counted in summary->unreadable and left out; the others are used in turn.
 *
 * Returns 0 when the set was written (some photos may have been left out), or, with `err`
 * saying why: BLURD_EINVAL (bad options; out_dir not empty, or not a folder), BLURD_ENOENT
 * (sharp_dir missing, or holding no image file, or none usable; out_dir's parent missing),
 * BLURD_EACCES, BLURD_EIO (writing failed; the files already written stay, labels.csv is not
 * written), BLURD_ENOMEM.  `summary` may be NULL; it is filled as far as the run got. */
int blurd_synth_run(const struct blurd_synth_options *options, struct blurd_synth_summary *summary,
                    char *err);

#endif
