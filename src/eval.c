/* eval.c - `blurd eval`: a labelled set through the pipeline, then the metrics of the model
 * (and of the Laplacian, to compare) as a table or JSON on stdout.
 *
 * Expected workload: an evaluation set of a few hundred to some tens of thousands of
 * images, judged once each; per image only two scores are kept, so the report is computed
 * after the pipeline has drained.
 *
 * The labelled set is read by the dataset module, as training reads it, so that train and
 * eval can never disagree about what a set holds. */
#include "blurd/eval.h"

#include "blurd/dataset.h"
#include "blurd/error.h"
#include "blurd/files.h"
#include "blurd/kernels.h"
#include "blurd/laplacian.h"
#include "blurd/log.h"
#include "blurd/metrics.h"
#include "blurd/model.h"
#include "blurd/pipeline.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What is kept of each image until the report. */
struct item {
    bool judged;  /* false: skipped (unreadable, corrupt, vanished) */
    bool blurred; /* the truth, from its folder */
    float p_blurred;
    double variance;
};

/* One method's column of the report. */
struct report {
    double threshold; /* the one the figures below are taken at */
    bool fitted;      /* threshold fitted on this data (the Laplacian) */
    struct blurd_confusion confusion;
    double accuracy, balanced_accuracy, auc;
    double best_threshold, best_balanced_accuracy;
};

struct eval {
    const struct blurd_eval_options *options;
    struct blurd_eval_summary *summary;
    char data_dir[PATH_MAX]; /* options->data_dir without trailing slashes */
    struct blurd_dataset dataset;
    struct item *items; /* one per dataset entry */
    blurd_model *model;
    const char *input_name;
    float threshold;
    bool progress;
    double last_progress;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- judging ---------------------------------------------------------------------- */

static void clear_progress(struct eval *e)
{
    if (e->progress)
        fputs("\r\033[K", stderr);
}

static void show_progress(struct eval *e, size_t done)
{
    double t = now_seconds();
    if (!e->progress || t - e->last_progress < 0.1)
        return;
    e->last_progress = t;
    fprintf(stderr, "\r\033[Kjudged %zu/%zu", done, e->dataset.count);
    fflush(stderr);
}

static void record(struct eval *e, const struct blurd_result *r)
{
    struct item *item = &e->items[r->id];
    if (r->status != 0) {
        clear_progress(e);
        blurd_log_warning("%s (skipped)", r->error[0] ? r->error : blurd_strerror(r->status));
        e->summary->skipped++;
        return;
    }
    item->judged = true;
    item->p_blurred = r->p_blurred;
    item->variance = r->laplacian_variance;
    if (item->blurred)
        e->summary->blurred++;
    else
        e->summary->clear++;
}

/* Every file through one pipeline; returns 0 or a code from creating it. */
static int judge(struct eval *e, const struct blurd_image_options *image, char *err)
{
    const struct blurd_eval_options *options = e->options;
    int workers = options->jobs;
    if ((size_t)workers > e->dataset.count)
        workers = (int)e->dataset.count;
    /* As classify: images in parallel, OpenBLAS single-threaded, spare cores spread over
     * each forward pass; in resize mode a burst is judged in batches of 8. */
    blurd_gemm_set_threads(1);
    int batch = image->input == BLURD_INPUT_RESIZE ? 8 : 1;
    struct blurd_pipeline_options pipeline_options = {
        .model = e->model,
        .scores = BLURD_SCORE_NETWORK | (options->compare_laplacian ? BLURD_SCORE_LAPLACIAN : 0u),
        .image = *image,
        .jobs = workers,
        .threads_per_job = options->jobs / workers,
        .images_per_batch = batch,
        .queue_depth = 2 * workers * batch,
    };
    blurd_pipeline *pipeline = NULL;
    int rc = blurd_pipeline_create(&pipeline, &pipeline_options, err);
    if (rc != 0)
        return rc;
    struct blurd_result *result = malloc(sizeof *result);
    if (result == NULL) {
        blurd_pipeline_free(pipeline);
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    }
    size_t submitted = 0, done = 0;
    for (;;) {
        while (submitted < e->dataset.count) {
            int s =
                blurd_pipeline_try_submit(pipeline, submitted, e->dataset.entries[submitted].path);
            if (s == BLURD_EBUSY)
                break;
            if (s != 0) { /* a path too long to be a file */
                memset(result, 0, sizeof *result);
                result->id = submitted;
                result->status = s;
                snprintf(result->error, sizeof result->error, "%.100s...: path too long",
                         e->dataset.entries[submitted].path);
                record(e, result);
                done++;
            }
            submitted++;
        }
        if (!blurd_pipeline_next(pipeline, result, 1))
            break; /* everything submitted has been collected */
        record(e, result);
        show_progress(e, ++done);
    }
    clear_progress(e);
    free(result);
    blurd_pipeline_free(pipeline);
    return 0;
}

/* ---- metrics ---------------------------------------------------------------------- */

/* The judged images as samples, scored by the model (`laplacian` false) or by the negated
 * variance (true: low variance means blurred, and metrics want high to mean positive). */
static size_t make_samples(const struct eval *e, bool laplacian, struct blurd_metrics_sample *out)
{
    size_t n = 0;
    for (size_t i = 0; i < e->dataset.count; i++) {
        const struct item *item = &e->items[i];
        if (!item->judged)
            continue;
        out[n].score = laplacian ? -item->variance : (double)item->p_blurred;
        out[n].positive = item->blurred;
        n++;
    }
    return n;
}

/* The model's column: every figure at its own threshold. */
static void report_model(const struct eval *e, struct blurd_metrics_sample *samples,
                         struct report *r)
{
    size_t n = make_samples(e, false, samples);
    r->threshold = (double)e->threshold;
    r->fitted = false;
    r->confusion = blurd_metrics_confusion(samples, n, r->threshold);
    r->accuracy = blurd_metrics_accuracy(&r->confusion);
    r->balanced_accuracy = blurd_metrics_balanced_accuracy(&r->confusion);
    r->auc = blurd_metrics_auc(samples, n);
    blurd_metrics_best_threshold(samples, n, &r->best_threshold, &r->best_balanced_accuracy);
}

/* The Laplacian's column, in variance units ("blurred when the variance is below T", as
 * `blurd classify --method laplacian --laplacian-threshold T` applies it), every figure at
 * the threshold fitted here. */
static void report_laplacian(const struct eval *e, struct blurd_metrics_sample *samples,
                             struct report *r)
{
    size_t n = make_samples(e, true, samples);
    r->auc = blurd_metrics_auc(samples, n);
    double negated, best;
    blurd_metrics_best_threshold(samples, n, &negated, &best);
    /* On the negated scores "called blurred" is -variance >= t, that is variance <= -t;
     * classify's rule is variance < T.  They differ only for a variance equal to T, which
     * only the all-blurred cut (t = the lowest score) can produce: move T just above it. */
    double threshold = -negated;
    for (size_t i = 0; i < n; i++)
        if (-samples[i].score == threshold) {
            threshold = nextafter(threshold, INFINITY);
            break;
        }
    r->threshold = r->best_threshold = threshold;
    r->fitted = true;
    r->confusion = blurd_metrics_confusion(samples, n, -threshold);
    r->accuracy = blurd_metrics_accuracy(&r->confusion);
    r->balanced_accuracy = blurd_metrics_balanced_accuracy(&r->confusion);
    r->best_balanced_accuracy = r->balanced_accuracy;
}

/* ---- output ----------------------------------------------------------------------- */

#define LABEL_WIDTH  26
#define COLUMN_WIDTH 24
#define CELL_BYTES   64

/* The table's rows; format_column fills one cell per row. */
static const char *const row_labels[] = {
    "",
    "score",
    "called blurred when",
    "threshold",
    "accuracy",
    "balanced accuracy",
    "ROC AUC",
    "blurred called blurred",
    "blurred called clear",
    "clear called blurred",
    "clear called clear",
    "best threshold here",
    "balanced accuracy there",
};
#define ROWS (sizeof row_labels / sizeof row_labels[0])

static void format_percent(char *cell, double value)
{
    if (isnan(value))
        snprintf(cell, CELL_BYTES, "n/a");
    else
        snprintf(cell, CELL_BYTES, "%.1f%%", 100.0 * value);
}

/* One method's column: a probability's thresholds to 4 places, a variance's to 2. */
static void format_column(const struct report *r, bool laplacian, char cells[][CELL_BYTES])
{
    const char *threshold_format = laplacian ? "%.2f" : "%.4f";
    snprintf(cells[0], CELL_BYTES, "%s", laplacian ? "laplacian" : "model");
    snprintf(cells[1], CELL_BYTES, "%s", laplacian ? "variance of the Laplacian" : "p(blurred)");
    snprintf(cells[2], CELL_BYTES, "%s", laplacian ? "variance < threshold" : "p >= threshold");
    snprintf(cells[3], CELL_BYTES, threshold_format, r->threshold);
    strcat(cells[3], r->fitted ? " (fitted here)" : " (the model's)");
    format_percent(cells[4], r->accuracy);
    format_percent(cells[5], r->balanced_accuracy);
    if (isnan(r->auc))
        snprintf(cells[6], CELL_BYTES, "n/a (one class)");
    else
        snprintf(cells[6], CELL_BYTES, "%.4f", r->auc);
    snprintf(cells[7], CELL_BYTES, "%zu", r->confusion.true_positive);
    snprintf(cells[8], CELL_BYTES, "%zu", r->confusion.false_negative);
    snprintf(cells[9], CELL_BYTES, "%zu", r->confusion.false_positive);
    snprintf(cells[10], CELL_BYTES, "%zu", r->confusion.true_negative);
    snprintf(cells[11], CELL_BYTES, threshold_format, r->best_threshold);
    format_percent(cells[12], r->best_balanced_accuracy);
}

static void print_table(const struct eval *e, const struct report *model,
                        const struct report *laplacian)
{
    const struct blurd_eval_summary *s = e->summary;
    bool compare = laplacian != NULL;
    printf("data:   %s\n", e->data_dir);
    printf("images: %zu judged (%zu blurred, %zu clear), %zu skipped as unreadable\n",
           s->blurred + s->clear, s->blurred, s->clear, s->skipped);
    printf("model:  %s (input %s)\n\n", blurd_model_name(e->model), e->input_name);

    char model_cells[ROWS][CELL_BYTES], laplacian_cells[ROWS][CELL_BYTES];
    format_column(model, false, model_cells);
    if (compare)
        format_column(laplacian, true, laplacian_cells);
    for (size_t i = 0; i < ROWS; i++) {
        if (compare)
            printf("%-*s %-*s %s\n", LABEL_WIDTH, row_labels[i], COLUMN_WIDTH, model_cells[i],
                   laplacian_cells[i]);
        else
            printf("%-*s %s\n", LABEL_WIDTH, row_labels[i], model_cells[i]);
    }

    if (compare)
        printf(
            "\nnote: the Laplacian's threshold was fitted on this same data (the best balanced\n"
            "accuracy), so its figures are optimistic; the model's threshold is its own, not\n"
            "fitted here.  `blurd classify --method laplacian --laplacian-threshold T` applies a\n"
            "fitted threshold (its default, %.0f, is the published rule of thumb).\n",
            BLURD_LAPLACIAN_DEFAULT_THRESHOLD);

    size_t misjudged = model->confusion.false_negative + model->confusion.false_positive;
    printf("\nmisjudged by the model at threshold %.4f: %zu\n", model->threshold, misjudged);
    if (misjudged == 0)
        return;
    if (compare)
        printf("%-8s %9s %12s  %s\n", "truth", "p_blurred", "laplacian", "path");
    else
        printf("%-8s %9s  %s\n", "truth", "p_blurred", "path");
    for (size_t i = 0; i < e->dataset.count; i++) {
        const struct item *item = &e->items[i];
        if (!item->judged || ((double)item->p_blurred >= model->threshold) == item->blurred)
            continue;
        const char *truth = item->blurred ? "blurred" : "clear";
        if (compare)
            printf("%-8s %9.4f %12.2f  %s\n", truth, (double)item->p_blurred, item->variance,
                   e->dataset.entries[i].path);
        else
            printf("%-8s %9.4f  %s\n", truth, (double)item->p_blurred, e->dataset.entries[i].path);
    }
}

/* A JSON number, or null for NaN (JSON has no NaN). */
static json_t *number(double value)
{
    return isfinite(value) ? json_real(value) : json_null();
}

static json_t *report_json(const char *name, const char *score, const struct report *r)
{
    const struct blurd_confusion *c = &r->confusion;
    return json_pack("{s:s, s:s, s:o, s:b, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:o, s:o}",
                     "method", name, "score", score, "threshold", number(r->threshold),
                     "threshold_fitted_on_this_data", r->fitted, "accuracy", number(r->accuracy),
                     "balanced_accuracy", number(r->balanced_accuracy), "roc_auc", number(r->auc),
                     "confusion", "blurred_called_blurred", (json_int_t)c->true_positive,
                     "blurred_called_clear", (json_int_t)c->false_negative, "clear_called_blurred",
                     (json_int_t)c->false_positive, "clear_called_clear",
                     (json_int_t)c->true_negative, "best_threshold", number(r->best_threshold),
                     "best_balanced_accuracy", number(r->best_balanced_accuracy));
}

static int print_json(const struct eval *e, const struct report *model,
                      const struct report *laplacian, char *err)
{
    const struct blurd_eval_summary *s = e->summary;
    json_t *methods = json_array();
    json_t *misjudged = json_array();
    /* the model's name is its file's when it records none: a file name too */
    char *data_name = blurd_files_utf8_path(e->data_dir);
    char *model_name = blurd_files_utf8_path(blurd_model_name(e->model));
    json_t *root = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I}, s:o, s:o}", "data", data_name,
                             "model", model_name, "input", e->input_name, "images", "blurred",
                             (json_int_t)s->blurred, "clear", (json_int_t)s->clear, "skipped",
                             (json_int_t)s->skipped, "methods", methods, "misjudged", misjudged);
    free(data_name);
    free(model_name);
    if (root == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory for the JSON report");
    json_array_append_new(methods, report_json("model", "p_blurred", model));
    if (laplacian != NULL)
        json_array_append_new(methods, report_json("laplacian", "variance", laplacian));
    for (size_t i = 0; i < e->dataset.count; i++) {
        const struct item *item = &e->items[i];
        if (!item->judged || ((double)item->p_blurred >= model->threshold) == item->blurred)
            continue;
        char *name = blurd_files_utf8_path(e->dataset.entries[i].path);
        json_t *entry =
            json_pack("{s:s, s:s, s:f}", "path", name, "truth", item->blurred ? "blurred" : "clear",
                      "p_blurred", (double)item->p_blurred);
        free(name);
        if (entry != NULL && laplacian != NULL)
            json_object_set_new(entry, "laplacian_variance", json_real(item->variance));
        json_array_append_new(misjudged, entry);
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (text == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory for the JSON report");
    printf("%s\n", text);
    free(text);
    return 0;
}

/* ---- the run ---------------------------------------------------------------------- */

/* Every class judged at least once, else an error naming the folder whose images all
 * failed. */
static int check_judged(const struct eval *e, char *err)
{
    size_t judged[BLURD_DATASET_CLASSES] = {e->summary->blurred, e->summary->clear};
    for (int label = 0; label < BLURD_DATASET_CLASSES; label++)
        if (judged[label] == 0)
            return blurd_error_set(err, BLURD_EINVAL, "%s/%s: no image could be read (%zu tried)",
                                   e->data_dir, blurd_dataset_folder_name(label),
                                   e->dataset.class_count[label]);
    return 0;
}

int blurd_eval_run(const struct blurd_eval_options *options, struct blurd_eval_summary *summary,
                   char *err)
{
    *summary = (struct blurd_eval_summary){0};
    if (options->format != BLURD_FORMAT_TABLE && options->format != BLURD_FORMAT_JSON)
        return blurd_error_set(err, BLURD_EINVAL, "eval prints a table or JSON");
    if (options->jobs < 1)
        return blurd_error_set(err, BLURD_EINVAL, "eval: %d jobs", options->jobs);
    struct eval e = {.options = options, .summary = summary};
    struct blurd_metrics_sample *samples = NULL;
    /* Without trailing slashes, so messages name "DATA/Blurred", not "DATA//Blurred". */
    size_t len = strlen(options->data_dir);
    while (len > 1 && options->data_dir[len - 1] == '/')
        len--;
    if (len >= sizeof e.data_dir)
        return blurd_error_set(err, BLURD_EINVAL, "%s: path too long", options->data_dir);
    memcpy(e.data_dir, options->data_dir, len);
    e.data_dir[len] = '\0';
    /* The data first: a missing folder is the likelier mistake, and costs nothing to find. */
    int rc = blurd_dataset_read(&e.dataset, e.data_dir, err);
    if (rc == 0)
        rc = blurd_model_load_or_default(&e.model, options->model_path, err);
    if (rc != 0)
        goto done;

    const struct blurd_preprocess *pre = blurd_model_preprocess(e.model);
    struct blurd_image_options image = {
        .input = options->input >= 0 ? (enum blurd_input_mode)options->input : pre->input,
        .size = pre->tile_size,
        .tile_count = pre->tile_count,
        .analysis_size = pre->analysis_size,
        .max_pixels = options->max_pixels,
    };
    e.input_name = image.input == BLURD_INPUT_TILES ? "tiles" : "resize";
    e.threshold = pre->threshold;
    e.items = calloc(e.dataset.count, sizeof *e.items);
    samples = calloc(e.dataset.count, sizeof *samples);
    if (e.items == NULL || samples == NULL) {
        rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory for %zu images", e.dataset.count);
        goto done;
    }
    for (size_t i = 0; i < e.dataset.count; i++)
        e.items[i].blurred = e.dataset.entries[i].label == BLURD_DATASET_BLURRED;
    e.progress = options->progress > 0 || (options->progress < 0 && isatty(STDERR_FILENO));

    if ((rc = judge(&e, &image, err)) != 0 || (rc = check_judged(&e, err)) != 0)
        goto done;

    struct report model, laplacian;
    report_model(&e, samples, &model);
    if (options->compare_laplacian)
        report_laplacian(&e, samples, &laplacian);
    const struct report *compared = options->compare_laplacian ? &laplacian : NULL;
    if (options->format == BLURD_FORMAT_JSON)
        rc = print_json(&e, &model, compared, err);
    else
        print_table(&e, &model, compared);
    fflush(stdout);

done:
    free(samples);
    free(e.items);
    blurd_dataset_clear(&e.dataset);
    blurd_model_free(e.model);
    return rc;
}
