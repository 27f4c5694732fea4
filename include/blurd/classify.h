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

struct blurd_classify_options {
    const char *const *paths; /* borrowed */
    int path_count;
    const char *files_from; /* NULL, "-" or a file of paths, one per line */
    int recursive;
    const char *model_path; /* NULL: the default model (blurd_model_find_default) */
    int input;              /* -1: the model's; else an enum blurd_input_mode */
    float threshold;        /* < 0: the model's */
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

/* Runs the batch.  Returns 0 when it ran (per-file failures are counted in `summary`, not
 * returned), or a negative code when it could not start: no or bad model (BLURD_EMODEL,
 * BLURD_ENOENT), bad database (BLURD_EDB), unreadable --files-from; `err` says which. */
int blurd_classify_run(const struct blurd_classify_options *options,
                       struct blurd_classify_summary *summary, char *err);

#endif
