/* classify.h - the batch face of blurd (`blurd classify`): collects the files, runs them
 * through the pipeline, prints one record per image in input order (table, CSV or JSON)
 * to stdout, per-file errors and a closing summary to stderr, a progress bar on a
 * terminal, and optionally writes every result into the SQLite store.
 */
#ifndef BLURD_CLASSIFY_H
#define BLURD_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

enum blurd_output_format {
    BLURD_FORMAT_TABLE,
    BLURD_FORMAT_CSV,
    BLURD_FORMAT_JSON,
};

/* How images are judged. */
enum blurd_classify_method {
    BLURD_METHOD_NETWORK,   /* the model's p(blurred) against its threshold */
    BLURD_METHOD_LAPLACIAN, /* the variance of the Laplacian (laplacian.h); no model loaded */
};

struct blurd_classify_options {
    const char *const *paths; /* borrowed */
    int path_count;
    const char *files_from; /* NULL, "-" or a file of paths, one per line */
    int recursive;
    enum blurd_classify_method method;
    const char *model_path; /* NULL: the default model (blurd_model_find_default) */
    int input;              /* -1: the model's; else an enum blurd_input_mode */
    float threshold;        /* < 0: the model's */
    /* Laplacian method: a variance below this is blurred; < 0 means
     * BLURD_LAPLACIAN_DEFAULT_THRESHOLD. */
    double laplacian_threshold;
    enum blurd_output_format format;
    int jobs;            /* >= 1 */
    const char *db_path; /* NULL: no database */
    uint64_t max_pixels;
    int progress; /* -1: when stderr is a terminal; 0 never; 1 always */
};

struct blurd_classify_summary {
    size_t total; /* files attempted */
    size_t blurred, clear;
    size_t failed;   /* decode or I/O errors on files meant to be images */
    size_t skipped;  /* not images (by extension in folders, or by content) */
    int interrupted; /* stopped early by SIGINT/SIGTERM */
    double seconds;
};

/* Runs the batch.  Records are path, verdict, p_blurred, p_clear, width, height and
 * milliseconds; with the Laplacian method p_blurred and p_clear are empty (CSV), null
 * (JSON) or left out (table, for people), and a `score` field (the variance) is added, so
 * a script tells the methods apart by the header or the keys, never by guessing a number's
 * meaning.  Database rows of the Laplacian method have a verdict, p_blurred NULL (there is
 * no probability), model_name 'laplacian', model_hash NULL and input_mode 'laplacian'.
 *
 * Returns 0 when it ran (per-file failures are counted in `summary`, not
 * returned), or a negative code when it could not start: no or bad model (BLURD_EMODEL,
 * BLURD_ENOENT), bad database (BLURD_EDB), unreadable --files-from; `err` says which. */
int blurd_classify_run(const struct blurd_classify_options *options,
                       struct blurd_classify_summary *summary, char *err);

#endif
