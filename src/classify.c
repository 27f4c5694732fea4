/* classify.c - `blurd classify`: a batch of files through the pipeline, results in input
 * order on stdout, problems on stderr, optionally into the database.
 *
 * Expected workload: from one photo to a few hundred thousand in one run; per-file state
 * kept until its turn to print is a few dozen bytes, so the whole list fits easily. */
#include "blurd/classify.h"

#include "blurd/error.h"
#include "blurd/files.h"
#include "blurd/kernels.h"
#include "blurd/laplacian.h"
#include "blurd/log.h"
#include "blurd/model.h"
#include "blurd/pipeline.h"
#include "blurd/progress.h"
#include "blurd/store.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Rows per database transaction: large enough that commits cost little, small enough
 * that an interrupted run keeps nearly everything. */
#define ROWS_PER_TRANSACTION 256

/* What is kept of a result until it is its turn to be printed. */
struct outcome {
    bool done;
    int status;
    float p_blurred;
    double variance; /* Laplacian method */
    int width, height;
    char format[16];
    float milliseconds;
    char *error; /* malloc'd, failures only */
};

struct run {
    const struct blurd_classify_options *options;
    const blurd_model *model; /* NULL for the Laplacian method */
    bool laplacian;
    float threshold;            /* network: p(blurred) at or above it is blurred */
    double laplacian_threshold; /* Laplacian: a variance below it is blurred */
    const char *input_name;
    struct blurd_file_list files;
    struct outcome *outcomes;
    size_t next_to_print;
    blurd_store *store;
    size_t rows_in_transaction;
    struct blurd_classify_summary *summary;
    struct blurd_progress progress;
    double start;
    size_t finished;
    bool json_first;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signal_number)
{
    (void)signal_number;
    stop_requested = 1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The verdict, by the method in use. */
static bool is_blurred(const struct run *run, float p_blurred, double variance)
{
    if (run->laplacian)
        return variance < run->laplacian_threshold;
    return p_blurred >= run->threshold;
}

/* ---- output ----------------------------------------------------------------------- */

/* CSV field quoting (RFC 4180): quote when the field holds a comma, quote or line break. */
static void print_csv_field(const char *text)
{
    if (strpbrk(text, ",\"\r\n") == NULL) {
        fputs(text, stdout);
        return;
    }
    putchar('"');
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            putchar('"');
        putchar(*c);
    }
    putchar('"');
}

/* The Laplacian method's records: p_blurred and p_clear stay in their places, empty (CSV)
 * or null (JSON), so a script reading them by position or name finds no number it could
 * mistake for a probability; the variance comes in a field of its own, `score`.  The
 * table, for people, shows the score in their stead. */
static void print_laplacian_header(const struct run *run)
{
    switch (run->options->format) {
    case BLURD_FORMAT_TABLE:
        printf("%-8s %12s %6s %6s %8s  %s\n", "verdict", "score", "width", "height", "ms", "path");
        break;
    case BLURD_FORMAT_CSV:
        printf("path,verdict,p_blurred,p_clear,width,height,milliseconds,score\n");
        break;
    case BLURD_FORMAT_JSON:
        printf("[");
        break;
    }
}

/* Prints one JSON array element (and takes ownership of `record`, which may be NULL when
 * jansson ran out of memory: then nothing is printed). */
static void print_json_record(struct run *run, json_t *record)
{
    char *text = record ? json_dumps(record, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (text != NULL) {
        printf("%s\n%s", run->json_first ? "" : ",", text);
        run->json_first = false;
    }
    free(text);
    json_decref(record);
}

static void print_laplacian_record(struct run *run, const char *path, const struct outcome *o)
{
    const char *verdict = is_blurred(run, 0.0f, o->variance) ? "blurred" : "clear";
    switch (run->options->format) {
    case BLURD_FORMAT_TABLE:
        printf("%-8s %12.2f %6d %6d %8.1f  %s\n", verdict, o->variance, o->width, o->height,
               (double)o->milliseconds, path);
        break;
    case BLURD_FORMAT_CSV:
        print_csv_field(path);
        printf(",%s,,,%d,%d,%.1f,%.6g\n", verdict, o->width, o->height, (double)o->milliseconds,
               o->variance);
        break;
    case BLURD_FORMAT_JSON: {
        char *name = blurd_files_utf8_path(path);
        json_t *record =
            json_pack("{s:s, s:s, s:n, s:n, s:i, s:i, s:f, s:f}", "path", name, "verdict", verdict,
                      "p_blurred", "p_clear", "width", o->width, "height", o->height,
                      "milliseconds", (double)o->milliseconds, "score", o->variance);
        free(name);
        print_json_record(run, record);
        break;
    }
    }
}

static void print_header(const struct run *run)
{
    if (run->laplacian) {
        print_laplacian_header(run);
        return;
    }
    switch (run->options->format) {
    case BLURD_FORMAT_TABLE:
        printf("%-8s %9s %8s %6s %6s %8s  %s\n", "verdict", "p_blurred", "p_clear", "width",
               "height", "ms", "path");
        break;
    case BLURD_FORMAT_CSV:
        printf("path,verdict,p_blurred,p_clear,width,height,milliseconds\n");
        break;
    case BLURD_FORMAT_JSON:
        printf("[");
        break;
    }
}

static void print_record(struct run *run, const char *path, const struct outcome *o)
{
    if (run->laplacian) {
        print_laplacian_record(run, path, o);
        return;
    }
    const char *verdict = o->p_blurred >= run->threshold ? "blurred" : "clear";
    double p = (double)o->p_blurred, q = 1.0 - p;
    switch (run->options->format) {
    case BLURD_FORMAT_TABLE:
        printf("%-8s %9.4f %8.4f %6d %6d %8.1f  %s\n", verdict, p, q, o->width, o->height,
               (double)o->milliseconds, path);
        break;
    case BLURD_FORMAT_CSV:
        print_csv_field(path);
        printf(",%s,%.6f,%.6f,%d,%d,%.1f\n", verdict, p, q, o->width, o->height,
               (double)o->milliseconds);
        break;
    case BLURD_FORMAT_JSON: {
        char *name = blurd_files_utf8_path(path);
        json_t *record = json_pack("{s:s, s:s, s:f, s:f, s:i, s:i, s:f}", "path", name, "verdict",
                                   verdict, "p_blurred", p, "p_clear", q, "width", o->width,
                                   "height", o->height, "milliseconds", (double)o->milliseconds);
        free(name);
        print_json_record(run, record);
        break;
    }
    }
}

static void print_footer(const struct run *run)
{
    if (run->options->format == BLURD_FORMAT_JSON)
        printf("\n]\n");
    fflush(stdout);
}

/* Prints, in input order, every finished outcome whose predecessors are all printed. */
static void print_ready(struct run *run)
{
    bool printed = false;
    while (run->next_to_print < run->files.count && run->outcomes[run->next_to_print].done) {
        struct outcome *o = &run->outcomes[run->next_to_print];
        const char *path = run->files.paths[run->next_to_print];
        if (!printed)
            blurd_progress_clear(&run->progress);
        printed = true;
        if (o->status == 0)
            print_record(run, path, o);
        else if (o->error != NULL)
            blurd_log_error("%s", o->error);
        free(o->error);
        o->error = NULL;
        run->next_to_print++;
    }
    if (printed)
        fflush(stdout);
}

/* ---- database --------------------------------------------------------------------- */

/* The path a row records: the file's real path, as for the images judged; for one that
 * is gone or cannot be resolved (a vanished file, a symlink loop), its folder's real path
 * and its own name (a bare name's folder is the working one), or failing that the path as
 * given. */
static void absolute_path(const char *path, char out[PATH_MAX])
{
    if (realpath(path, out) != NULL)
        return;
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    char given[PATH_MAX], folder[PATH_MAX];
    blurd_files_parent(path, given);
    bool have_folder = realpath(given, folder) != NULL;
    /* in "/" the name joins as "/name", not "//name" */
    size_t folder_length = have_folder && strcmp(folder, "/") != 0 ? strlen(folder) : 0;
    size_t name_length = strlen(name);
    if (!have_folder || name[0] == '\0' || folder_length + 1 + name_length >= PATH_MAX) {
        snprintf(out, PATH_MAX, "%s", path);
        return;
    }
    memcpy(out, folder, folder_length);
    out[folder_length] = '/';
    memcpy(out + folder_length + 1, name, name_length + 1);
}

static int store_result(struct run *run, const struct blurd_result *r, char *err)
{
    char absolute[PATH_MAX];
    absolute_path(r->path, absolute);
    struct stat st;
    bool have_stat = stat(r->path, &st) == 0;
    const char *verdict = NULL;
    if (r->status == 0)
        verdict = is_blurred(run, r->p_blurred, r->laplacian_variance) ? "blurred" : "clear";
    struct blurd_store_row row;
    blurd_pipeline_row(r, absolute, have_stat ? &st : NULL, &row);
    /* The Laplacian's variance is no probability: NULL (NaN), not a number a query on
     * p_blurred would misread.  The schema has no column for it. */
    if (run->laplacian)
        row.p_blurred = (double)NAN;
    row.verdict = verdict;
    row.model_hash = run->laplacian ? NULL : blurd_model_hash(run->model);
    row.model_name = run->laplacian ? "laplacian" : blurd_model_name(run->model);
    row.input_mode = run->input_name;
    row.error = r->status != 0 ? r->error : NULL;
    int rc = 0;
    if (run->rows_in_transaction == 0)
        rc = blurd_store_begin(run->store, err);
    if (rc == 0)
        rc = blurd_store_put(run->store, &row, err);
    if (rc == 0 && ++run->rows_in_transaction >= ROWS_PER_TRANSACTION) {
        rc = blurd_store_commit(run->store, err);
        run->rows_in_transaction = 0;
    }
    return rc;
}

/* ---- the run ---------------------------------------------------------------------- */

static void record_result(struct run *run, const struct blurd_result *r)
{
    struct outcome *o = &run->outcomes[r->id];
    o->done = true;
    o->status = r->status;
    o->p_blurred = r->p_blurred;
    o->variance = r->laplacian_variance;
    o->width = r->info.width;
    o->height = r->info.height;
    snprintf(o->format, sizeof o->format, "%s", r->info.format);
    o->milliseconds = (float)(r->decode_ms + r->network_ms);
    run->finished++;

    struct blurd_classify_summary *s = run->summary;
    if (r->status == 0) {
        if (is_blurred(run, r->p_blurred, r->laplacian_variance))
            s->blurred++;
        else
            s->clear++;
    } else if (r->status == BLURD_ENOTIMAGE && !blurd_image_has_image_extension(r->path)) {
        /* named explicitly but neither called nor shaped like an image: not a failure */
        s->skipped++;
    } else {
        s->failed++;
        o->error = strdup(r->error[0] ? r->error : blurd_strerror(r->status));
    }
    if (run->store != NULL) {
        char err[BLURD_ERR_LEN];
        if (store_result(run, r, err) != 0) {
            blurd_log_error("%s", err);
            /* a database that fails once will keep failing: stop writing, keep judging */
            blurd_store_close(run->store);
            run->store = NULL;
            s->failed++;
        }
    }
}

int blurd_classify_run(const struct blurd_classify_options *options,
                       struct blurd_classify_summary *summary, char *err)
{
    *summary = (struct blurd_classify_summary){0};
    struct run run = {.options = options, .summary = summary, .json_first = true};
    blurd_model *model = NULL;
    blurd_pipeline *pipeline = NULL;
    int rc = 0;
    struct blurd_image_options image = {.max_pixels = options->max_pixels};
    run.laplacian = options->method == BLURD_METHOD_LAPLACIAN;
    if (run.laplacian) {
        /* The classical measure needs no model: none is looked for, loaded or hashed. */
        run.laplacian_threshold = options->laplacian_threshold >= 0.0
                                      ? options->laplacian_threshold
                                      : BLURD_LAPLACIAN_DEFAULT_THRESHOLD;
        run.input_name = "laplacian";
    } else {
        if ((rc = blurd_model_load_or_default(&model, options->model_path, err)) != 0)
            return rc;
        run.model = model;
        const struct blurd_preprocess *pre = blurd_model_preprocess(model);
        image.input = options->input >= 0 ? (enum blurd_input_mode)options->input : pre->input;
        image.size = pre->tile_size;
        image.tile_count = pre->tile_count;
        image.analysis_size = pre->analysis_size;
        run.threshold = options->threshold >= 0.0f ? options->threshold : pre->threshold;
        run.input_name = image.input == BLURD_INPUT_TILES ? "tiles" : "resize";
    }

    if (options->db_path != NULL && (rc = blurd_store_open(&run.store, options->db_path, err)) != 0)
        goto done;
    if ((rc = blurd_files_collect(&run.files, options->paths, options->path_count,
                                  options->files_from, options->recursive, err)) != 0)
        goto done;
    summary->skipped = run.files.skipped;
    summary->failed = run.files.unreadable;
    summary->total = run.files.count;
    run.outcomes = calloc(run.files.count ? run.files.count : 1, sizeof *run.outcomes);
    if (run.outcomes == NULL) {
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory for %zu files", run.files.count);
        goto done;
    }

    /* --jobs is the number of cores to use.  Images in parallel use them best (each image
     * is decoded by one thread); with fewer files than jobs, each forward pass is spread
     * over the spare cores instead.  OpenBLAS itself stays single-threaded: blurd splits
     * the work (see team.h). */
    int workers = options->jobs;
    if ((size_t)workers > run.files.count && run.files.count > 0)
        workers = (int)run.files.count;
    blurd_gemm_set_threads(1);
    /* In resize mode each image is one input, so a burst is judged in batches of 8. */
    int batch = !run.laplacian && image.input == BLURD_INPUT_RESIZE ? 8 : 1;
    struct blurd_pipeline_options pipeline_options = {
        .model = model,
        .scores = run.laplacian ? BLURD_SCORE_LAPLACIAN : BLURD_SCORE_NETWORK,
        .image = image,
        .jobs = workers,
        .threads_per_job = options->jobs / workers,
        .images_per_batch = batch,
        .queue_depth = 2 * workers * batch,
    };
    if ((rc = blurd_pipeline_create(&pipeline, &pipeline_options, err)) != 0)
        goto done;

    blurd_progress_start(&run.progress, options->progress, "images");
    struct sigaction action = {.sa_handler = on_stop_signal}, old_int, old_term;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int);
    sigaction(SIGTERM, &action, &old_term);
    stop_requested = 0;

    run.start = now_seconds();
    print_header(&run);
    size_t submitted = 0;
    struct blurd_result *result = malloc(sizeof *result);
    if (result == NULL) {
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
        goto restore;
    }
    for (;;) {
        while (!stop_requested && submitted < run.files.count) {
            int s = blurd_pipeline_try_submit(pipeline, submitted, run.files.paths[submitted]);
            if (s == BLURD_EBUSY)
                break;
            if (s != 0) { /* a path too long to be a file: judge it failed right here */
                struct blurd_result *r = result;
                memset(r, 0, sizeof *r);
                r->id = submitted;
                snprintf(r->path, sizeof r->path, "%.100s...", run.files.paths[submitted]);
                r->status = s;
                snprintf(r->error, sizeof r->error, "%.100s...: path too long",
                         run.files.paths[submitted]);
                record_result(&run, r);
            }
            submitted++;
        }
        if (!blurd_pipeline_next(pipeline, result, 1))
            break; /* nothing in flight: all submitted work is collected */
        record_result(&run, result);
        print_ready(&run);
        blurd_progress_show(&run.progress, run.finished, run.files.count, 0);
    }
    /* Interrupted runs leave the unsubmitted files unprinted; mark them so order holds. */
    summary->interrupted = submitted < run.files.count;
    print_ready(&run);
    blurd_progress_clear(&run.progress);
    print_footer(&run);
    free(result);

restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
done:
    summary->seconds = run.start > 0.0 ? now_seconds() - run.start : 0.0;
    blurd_pipeline_free(pipeline);
    if (run.store != NULL) {
        char close_err[BLURD_ERR_LEN];
        if (run.rows_in_transaction > 0 && blurd_store_commit(run.store, close_err) != 0) {
            blurd_log_error("%s", close_err);
            summary->failed++;
        }
        blurd_store_close(run.store);
    }
    for (size_t i = 0; run.outcomes != NULL && i < run.files.count; i++)
        free(run.outcomes[i].error);
    free(run.outcomes);
    blurd_files_clear(&run.files);
    blurd_model_free(model);
    return rc;
}
