/* eval.h - `blurd eval`: how well a model (and, to compare, the variance of the Laplacian)
 * tells the blurred from the clear in a labelled set laid out as training reads it:
 * DATA/Blurred and DATA/Undistorted.
 *
 * Every image goes through the pipeline once (both scores from the same worker when the
 * Laplacian is compared, so both methods are judged on exactly the same images); then the
 * report on stdout: the counts, accuracy and balanced accuracy at the model's own threshold,
 * ROC AUC, the confusion matrix, the threshold that would have been best on this data and
 * the balanced accuracy there, and the files the model misjudged.  The Laplacian has no
 * threshold of its own worth measuring, so its threshold is fitted on this same data (the
 * best balanced accuracy), which the report says: its figures are optimistic.
 */
#ifndef BLURD_EVAL_H
#define BLURD_EVAL_H

#include "blurd/classify.h"

#include <stddef.h>
#include <stdint.h>

struct blurd_eval_options {
    const char *data_dir;            /* holds Blurred/ and Undistorted/; borrowed */
    const char *model_path;          /* NULL: the default model (blurd_model_find_default) */
    int input;                       /* -1: the model's; else an enum blurd_input_mode */
    int compare_laplacian;           /* non-zero: also score with the Laplacian, side by side */
    enum blurd_output_format format; /* BLURD_FORMAT_TABLE or BLURD_FORMAT_JSON */
    int jobs;                        /* CPU cores, >= 1 */
    uint64_t max_pixels;             /* as for classify; 0 = the default */
    int progress;                    /* -1: when stderr is a terminal; 0 never; 1 always */
};

struct blurd_eval_summary {
    size_t blurred, clear; /* images judged, by their true class */
    size_t skipped;        /* unreadable or corrupt images (each warned on stderr) */
};

/* Reads the labelled set with blurd_dataset_read (the image files directly inside each
 * class folder, as training reads them), judges every image and prints the report in
 * options->format.  Returns 0 when the report was printed, or a negative code with `err`
 * naming the cause and nothing on stdout: blurd_dataset_read's errors (BLURD_ENOENT for a
 * missing DATA or class folder, BLURD_EINVAL for a class folder without image files),
 * BLURD_EINVAL for a class none of whose images could be read and for a format other than
 * table or JSON, the model errors of blurd_model_load and blurd_model_find_default,
 * BLURD_ENOMEM. */
int blurd_eval_run(const struct blurd_eval_options *options, struct blurd_eval_summary *summary,
                   char *err);

#endif
