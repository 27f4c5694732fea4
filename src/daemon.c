/* daemon.c - `blurd daemon`: the event loop that ties watch, pipeline, store and sort
 * together, with systemd's notify protocol and signal handling.
 *
 * Everything but the workers' decode and forward passes runs on the libuv loop thread:
 * files reported by the watch wait in a FIFO (deduplicated, and skipped when the database
 * already has them unchanged), enter the bounded pipeline as slots free up (the
 * back-pressure), and come back through a uv_async wake-up to be recorded, then moved.
 * Expected workload: a trickle of uploads with bursts of thousands (a card dumped into
 * the inbox).  During a burst rows are committed in batches (every 200 ms or 256 rows);
 * when the pipeline runs dry the batch is committed at once, so a single upload's row is
 * visible as soon as it is judged. */
#include "blurd/daemon.h"

#include "blurd/config.h"
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/kernels.h"
#include "blurd/log.h"
#include "blurd/model.h"
#include "blurd/pipeline.h"
#include "blurd/sort.h"
#include "blurd/store.h"
#include "blurd/watch.h"

#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#ifdef BLURD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
/* Without libsystemd there is no service manager to tell anything. */
static int sd_notify(int unset_environment, const char *state)
{
    (void)unset_environment;
    (void)state;
    return 0;
}
static int sd_notifyf(int unset_environment, const char *format, ...)
{
    (void)unset_environment;
    (void)format;
    return 0;
}
static int sd_watchdog_enabled(int unset_environment, uint64_t *usec)
{
    (void)unset_environment;
    (void)usec;
    return 0;
}
#endif

#define ROWS_PER_TRANSACTION 256
#define COMMIT_INTERVAL_MS   200
#define STATUS_INTERVAL_MS   5000

/* A watched root and where its judged files go. */
struct root {
    char *path;    /* absolute (owned) */
    char *blurred; /* absolute destination folders (owned) */
    char *clear;
};

struct counts {
    uint64_t judged, blurred, clear, failed, moved, skipped;
};

struct daemon {
    const struct blurd_daemon_options *options;
    uv_loop_t loop;
    struct blurd_config config;
    struct root *roots;
    int root_count;
    blurd_model *model;
    blurd_store *store;
    blurd_pipeline *pipeline;
    blurd_watch *watch;
    struct blurd_result *result; /* where results are collected (owned) */

    uv_async_t results_ready;
    uv_signal_t signals[3];
    uv_timer_t commit_timer, status_timer, watchdog_timer;

    GQueue *waiting;   /* paths not yet in the pipeline (owned strings) */
    GHashTable *known; /* paths waiting or in the pipeline: reported once (owned keys) */
    uint64_t next_id;
    size_t rows_in_transaction;
    struct counts counts;
    uint64_t skipped_before_scan; /* counts.skipped when the running scan began */

    bool stopping;         /* SIGTERM/SIGINT: finishing what is in flight */
    bool failed;           /* stopping because it cannot go on (exit with an error) */
    bool watch_restarting; /* the watch is closing, to be started again (reload) */
    bool reload_requested; /* SIGHUP: draining the pipeline to swap configuration */
    bool handles_closed;
};

/* What a file looked like when it was queued: a result is only recorded if the file is
 * still the same, since a verdict describes the content that was judged. */
struct stamp {
    int64_t size, mtime_ns;
};

static struct stamp stamp_of(const struct stat *st)
{
    return (struct stamp){(int64_t)st->st_size,
                          (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec};
}

/* Images in the pipeline; 0 when there is none (after a failed reload). */
static size_t in_flight(const struct daemon *d)
{
    return d->pipeline != NULL ? blurd_pipeline_in_flight(d->pipeline) : 0;
}

/* The watch's candidate filter takes no context; the daemon is one per process. */
static const struct blurd_config *candidate_config;

static int is_candidate(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    const char *dot = strrchr(name, '.');
    if (dot == NULL || dot == name)
        return 0;
    for (int i = 0; i < candidate_config->extension_count; i++)
        if (g_ascii_strcasecmp(dot + 1, candidate_config->extensions[i]) == 0)
            return 1;
    return 0;
}

/* ---- configuration ---------------------------------------------------------------- */

static int load_configuration(const struct blurd_daemon_options *options,
                              struct blurd_config *config, char *err)
{
    int rc = blurd_config_init(config, err);
    if (rc == 0 && options->config_path != NULL)
        rc = blurd_config_load(config, options->config_path, err);
    for (int i = 0; rc == 0 && i < options->override_count; i++) {
        const struct blurd_daemon_override *o = &options->overrides[i];
        rc = blurd_config_set(config, o->section, o->key, o->value, err);
    }
    if (rc == 0)
        rc = blurd_config_finish(config, err);
    if (rc != 0)
        blurd_config_free(config);
    return rc;
}

static char *destination(const char *root, const char *folder)
{
    if (folder[0] == '/')
        return g_strdup(folder);
    return g_build_filename(root, folder, NULL);
}

static void free_roots(struct root *roots, int count)
{
    for (int i = 0; roots != NULL && i < count; i++) {
        g_free(roots[i].path);
        g_free(roots[i].blurred);
        g_free(roots[i].clear);
    }
    g_free(roots);
}

static struct root *make_roots(const struct blurd_config *config)
{
    struct root *roots = g_new0(struct root, (size_t)config->folder_count);
    for (int i = 0; i < config->folder_count; i++) {
        roots[i].path = g_strdup(config->folders[i]);
        roots[i].blurred = destination(config->folders[i], config->blurred_folder);
        roots[i].clear = destination(config->folders[i], config->clear_folder);
    }
    return roots;
}

static const struct root *root_of(const struct daemon *d, const char *path)
{
    const struct root *best = NULL;
    size_t best_len = 0;
    for (int i = 0; i < d->root_count; i++) {
        size_t len = strlen(d->roots[i].path);
        if (strncmp(path, d->roots[i].path, len) == 0 && path[len] == '/' && len > best_len) {
            best = &d->roots[i];
            best_len = len;
        }
    }
    return best;
}

/* ---- recording and sorting results ------------------------------------------------ */

static void commit(struct daemon *d)
{
    if (d->rows_in_transaction == 0)
        return;
    char err[BLURD_ERR_LEN];
    if (blurd_store_commit(d->store, err) != 0)
        blurd_log_error("%s", err);
    d->rows_in_transaction = 0;
}

/* The input mode in force: the configuration's, else the model's. */
static enum blurd_input_mode input_mode(const struct daemon *d)
{
    return d->config.input >= 0 ? (enum blurd_input_mode)d->config.input
                                : blurd_model_preprocess(d->model)->input;
}

static void put_row(struct daemon *d, const struct blurd_result *r, const char *verdict,
                    const struct stat *st, const char *error)
{
    char err[BLURD_ERR_LEN];
    struct blurd_store_row row;
    blurd_pipeline_row(r, r->path, st, &row);
    row.verdict = verdict;
    row.model_hash = blurd_model_hash(d->model);
    row.model_name = blurd_model_name(d->model);
    row.input_mode = input_mode(d) == BLURD_INPUT_TILES ? "tiles" : "resize";
    row.error = error;
    /* A failed begin (a commit that failed left its transaction open, say) must not cost
     * the row: the put then joins the open transaction or commits on its own. */
    if (d->rows_in_transaction == 0 && blurd_store_begin(d->store, err) != 0)
        blurd_log_error("%s", err);
    if (blurd_store_put(d->store, &row, err) != 0)
        blurd_log_error("%s", err);
    if (++d->rows_in_transaction >= ROWS_PER_TRANSACTION)
        commit(d);
}

static float threshold(const struct daemon *d)
{
    return d->config.threshold >= 0.0f ? d->config.threshold
                                       : blurd_model_preprocess(d->model)->threshold;
}

/* Records (and sorts) one result.  Returns true when the file changed while it was being
 * judged (an upload still going on, a rewrite): then nothing is recorded and it is to be
 * queued again. */
static bool handle_result(struct daemon *d, const struct blurd_result *r)
{
    struct stat st;
    bool have_stat = stat(r->path, &st) == 0;
    const struct stamp *queued = g_hash_table_lookup(d->known, r->path);
    if (have_stat && queued != NULL) {
        struct stamp now = stamp_of(&st);
        if (now.size != queued->size || now.mtime_ns != queued->mtime_ns) {
            blurd_log_info("%s: changed while being judged; judging it again", r->path);
            return true;
        }
    }
    if (r->status != 0) {
        d->counts.failed++;
        blurd_log_warning("%s", r->error);
        put_row(d, r, NULL, have_stat ? &st : NULL, r->error);
        return false;
    }
    bool blurred = r->p_blurred >= threshold(d);
    const char *verdict = blurred ? "blurred" : "clear";
    d->counts.judged++;
    if (blurred)
        d->counts.blurred++;
    else
        d->counts.clear++;
    /* The row goes in before the move, so the move's record can point at it. */
    put_row(d, r, verdict, have_stat ? &st : NULL, NULL);
    blurd_log_info("%s: %s (p_blurred %.3f)", r->path, verdict, (double)r->p_blurred);
    if (!d->config.move)
        return false;
    const struct root *root = root_of(d, r->path);
    if (root == NULL)
        return false; /* watched folders changed by a reload while it was in flight */
    char moved_to[PATH_MAX], err[BLURD_ERR_LEN];
    int rc = blurd_sort_move_recorded(d->store, r->path, blurred ? root->blurred : root->clear,
                                      moved_to, err);
    /* a move commits the open batch first; one whose file had already vanished does not */
    if (!blurd_store_in_transaction(d->store))
        d->rows_in_transaction = 0;
    if (rc == 0) {
        d->counts.moved++;
        blurd_log_info("%s: moved to %s", r->path, moved_to);
    } else if (rc == BLURD_ENOENT) {
        put_row(d, r, verdict, NULL, "vanished before it could be moved");
        blurd_log_warning("%s: vanished before it could be moved", r->path);
    } else {
        blurd_log_error("%s", err);
    }
    return false;
}

/* ---- feeding the pipeline --------------------------------------------------------- */

static void finish_stop(struct daemon *d);
static void on_file(void *arg, const char *path);
static void do_reload(struct daemon *d);

/* Moves waiting paths into the pipeline while it has room. */
static void pump(struct daemon *d)
{
    if (d->stopping || d->reload_requested)
        return;
    while (!g_queue_is_empty(d->waiting)) {
        const char *path = g_queue_peek_head(d->waiting);
        int rc = blurd_pipeline_try_submit(d->pipeline, d->next_id, path);
        if (rc == BLURD_EBUSY)
            return;
        char *taken = g_queue_pop_head(d->waiting);
        if (rc != 0) {
            blurd_log_warning("%s: path too long, skipped", taken);
            g_hash_table_remove(d->known, taken);
        } else {
            blurd_log_debug("%s: judging", taken);
        }
        d->next_id++;
        g_free(taken);
    }
}

static void on_results_ready(uv_async_t *handle)
{
    struct daemon *d = handle->data;
    while (d->pipeline != NULL && blurd_pipeline_next(d->pipeline, d->result, 0)) {
        bool changed = handle_result(d, d->result);
        g_hash_table_remove(d->known, d->result->path);
        if (changed)
            on_file(d, d->result->path);
    }
    if (d->pipeline != NULL && in_flight(d) == 0) {
        if (d->stopping) {
            finish_stop(d);
            return;
        }
        if (d->reload_requested)
            do_reload(d);
    }
    pump(d);
    if (d->pipeline != NULL && in_flight(d) == 0)
        commit(d); /* idle: nothing to batch with */
}

/* The pipeline's notify hook: called on a worker thread. */
static void wake_loop(void *arg)
{
    uv_async_send(arg);
}

/* A settled or scanned file: queue it unless it is queued already or the database has it
 * unchanged (same size and modification time). */
static void on_file(void *arg, const char *path)
{
    struct daemon *d = arg;
    if (d->stopping || g_hash_table_contains(d->known, path))
        return;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    struct stamp now = stamp_of(&st);
    int64_t size = 0, mtime_ns = 0;
    int found = 0;
    char err[BLURD_ERR_LEN];
    if (blurd_store_lookup(d->store, path, &size, &mtime_ns, &found, err) != 0)
        blurd_log_error("%s", err);
    else if (found && size == now.size && mtime_ns == now.mtime_ns) {
        d->counts.skipped++;
        return;
    }
    struct stamp *queued = g_new(struct stamp, 1);
    *queued = now;
    g_hash_table_insert(d->known, g_strdup(path), queued);
    g_queue_push_tail(d->waiting, g_strdup(path));
    pump(d);
}

static void on_rescan(void *arg, const char *root, const char *reason)
{
    (void)arg;
    blurd_log_notice("%s: rescanning (%s)", root, reason);
}

/* `settling`: files the scan found modified within the settle time and left to settle; on
 * a long scan some of them may have settled, and be counted in the others, by now. */
static void on_scan_done(void *arg, size_t settling)
{
    struct daemon *d = arg;
    blurd_log_notice("scan finished: %u files waiting, %zu recently modified (taken once they "
                     "settle), %llu already judged and unchanged",
                     g_queue_get_length(d->waiting) + (unsigned)in_flight(d), settling,
                     (unsigned long long)(d->counts.skipped - d->skipped_before_scan));
}

static int start_watch(struct daemon *d, char *err)
{
    const char **roots = g_new0(const char *, (size_t)d->root_count);
    const char **excluded = g_new0(const char *, 2 * (size_t)d->root_count);
    for (int i = 0; i < d->root_count; i++) {
        roots[i] = d->roots[i].path;
        excluded[2 * i] = d->roots[i].blurred;
        excluded[2 * i + 1] = d->roots[i].clear;
    }
    candidate_config = &d->config;
    struct blurd_watch_options options = {
        .loop = &d->loop,
        .roots = roots,
        .root_count = d->root_count,
        .recursive = d->config.recursive,
        .settle_seconds = d->config.settle_seconds,
        .excluded = excluded,
        .excluded_count = 2 * d->root_count,
        .is_candidate = is_candidate,
        .on_file = on_file,
        .on_rescan = on_rescan,
        .arg = d,
    };
    int rc = blurd_watch_start(&d->watch, &options, err);
    g_free(roots);
    g_free(excluded);
    if (rc == 0) {
        /* this scan's count, not the run's: a reload scans again */
        d->skipped_before_scan = d->counts.skipped;
        blurd_watch_scan(d->watch, on_scan_done, d); /* catch up on what arrived while down */
    }
    return rc;
}

static int start_pipeline(struct daemon *d, char *err)
{
    const struct blurd_preprocess *pre = blurd_model_preprocess(d->model);
    enum blurd_input_mode input = input_mode(d);
    /* resize mode: one input per image, so bursts are judged in batches of 8 */
    int batch = input == BLURD_INPUT_RESIZE ? 8 : 1;
    struct blurd_pipeline_options options = {
        .model = d->model,
        .image =
            {
                .input = input,
                .size = pre->tile_size,
                .tile_count = pre->tile_count,
                .analysis_size = pre->analysis_size,
                .max_pixels = d->config.max_pixels,
            },
        .jobs = d->config.workers,
        .threads_per_job = 1,
        .images_per_batch = batch,
        .queue_depth = 2 * d->config.workers * batch,
        .notify = wake_loop,
        .notify_arg = &d->results_ready,
    };
    return blurd_pipeline_create(&d->pipeline, &options, err);
}

/* ---- status, signals, reload, stop ------------------------------------------------ */

static void on_status_timer(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    sd_notifyf(0,
               "STATUS=%llu judged (%llu blurred, %llu clear), %llu failed, %llu moved; %u "
               "waiting",
               (unsigned long long)d->counts.judged, (unsigned long long)d->counts.blurred,
               (unsigned long long)d->counts.clear, (unsigned long long)d->counts.failed,
               (unsigned long long)d->counts.moved, g_queue_get_length(d->waiting));
}

static void on_watchdog_timer(uv_timer_t *timer)
{
    (void)timer;
    sd_notify(0, "WATCHDOG=1");
}

static void on_commit_timer(uv_timer_t *timer)
{
    commit(timer->data);
}

static void close_handle(uv_handle_t *handle)
{
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Called once nothing is in flight any more: record, close every handle, let uv_run end. */
static void finish_stop(struct daemon *d)
{
    if (d->handles_closed)
        return;
    d->handles_closed = true;
    commit(d);
    blurd_pipeline_free(d->pipeline);
    d->pipeline = NULL;
    close_handle((uv_handle_t *)&d->results_ready);
    for (int i = 0; i < 3; i++)
        close_handle((uv_handle_t *)&d->signals[i]);
    close_handle((uv_handle_t *)&d->commit_timer);
    close_handle((uv_handle_t *)&d->status_timer);
    close_handle((uv_handle_t *)&d->watchdog_timer);
}

static void begin_stop(struct daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    sd_notify(0, "STOPPING=1");
    blurd_log_notice("stopping: finishing %zu images in flight; %u waiting are left for the "
                     "next start",
                     in_flight(d), g_queue_get_length(d->waiting));
    if (d->watch != NULL) {
        blurd_watch_stop(d->watch, NULL, NULL);
        d->watch = NULL;
    }
    if (in_flight(d) == 0)
        finish_stop(d);
}

/* A daemon that watches nothing would sit idle and look healthy: stop, with an error, so
 * that the service manager restarts it (Restart=on-failure) or someone notices. */
static void fail_and_stop(struct daemon *d, const char *what, const char *err)
{
    blurd_log_error("%s: %s; stopping", what, err);
    d->failed = true;
    begin_stop(d);
}

static void on_watch_closed_for_reload(void *arg)
{
    struct daemon *d = arg;
    char err[BLURD_ERR_LEN];
    d->watch_restarting = false;
    if (!d->stopping && start_watch(d, err) != 0)
        fail_and_stop(d, "reload: cannot watch", err);
}

/* Swaps in a new configuration and model once the pipeline is empty; on any error the
 * old ones stay.  Files waiting in the queue stay queued. */
/* A reload that cannot be done leaves the running configuration in force; systemd is told
 * the reload is over either way. */
static void refuse_reload(const char *err)
{
    blurd_log_error("reload: %s; keeping the running configuration", err);
    sd_notify(0, "READY=1");
}

static void do_reload(struct daemon *d)
{
    d->reload_requested = false;
    char err[BLURD_ERR_LEN];
    struct blurd_config config;
    blurd_model *model = NULL;
    if (load_configuration(d->options, &config, err) != 0) {
        refuse_reload(err);
        return;
    }
    if (blurd_model_load_or_default(&model, config.model_path, err) != 0) {
        refuse_reload(err);
        blurd_config_free(&config);
        return;
    }
    blurd_store *store = NULL;
    if (strcmp(config.database, d->config.database) != 0 &&
        blurd_store_open(&store, config.database, err) != 0) {
        refuse_reload(err);
        blurd_model_free(model);
        blurd_config_free(&config);
        return;
    }
    commit(d);
    blurd_pipeline_free(d->pipeline);
    d->pipeline = NULL;
    blurd_model_free(d->model);
    d->model = model;
    if (store != NULL) {
        blurd_store_close(d->store);
        d->store = store;
    }
    blurd_config_free(&d->config);
    d->config = config;
    free_roots(d->roots, d->root_count);
    d->roots = make_roots(&d->config);
    d->root_count = d->config.folder_count;
    blurd_log_set_level((enum blurd_log_level)d->config.log_level);
    if (start_pipeline(d, err) != 0) {
        /* the new configuration asked for what cannot be had: nothing left to judge with */
        fail_and_stop(d, "reload", err);
        return;
    }
    /* Folders may have changed: watch afresh (the scan skips what is already judged).  A
     * watch lost by an earlier reload is started again here. */
    if (d->watch != NULL) {
        blurd_watch_stop(d->watch, on_watch_closed_for_reload, d);
        d->watch = NULL;
        d->watch_restarting = true;
    } else if (!d->watch_restarting && start_watch(d, err) != 0) {
        fail_and_stop(d, "reload: cannot watch", err);
        return;
    }
    blurd_log_notice("reloaded: model %s, %d folder(s)", blurd_model_name(d->model), d->root_count);
    sd_notify(0, "READY=1");
}

static void on_signal(uv_signal_t *handle, int signal_number)
{
    struct daemon *d = handle->data;
    if (signal_number == SIGHUP) {
        if (d->stopping)
            return;
        blurd_log_notice("reloading configuration and model");
        sd_notify(0, "RELOADING=1");
        d->reload_requested = true;
        if (in_flight(d) == 0) {
            do_reload(d);
            pump(d);
        }
        return;
    }
    begin_stop(d);
}

/* ---- start and run ---------------------------------------------------------------- */

static int open_everything(struct daemon *d, char *err)
{
    int rc = load_configuration(d->options, &d->config, err);
    if (rc != 0)
        return rc;
    blurd_log_set_level((enum blurd_log_level)d->config.log_level);
    if ((rc = blurd_image_init("blurd", err)) != 0)
        return rc;
    if ((rc = blurd_model_load_or_default(&d->model, d->config.model_path, err)) != 0)
        return rc;
    if ((rc = blurd_store_open(&d->store, d->config.database, err)) != 0)
        return rc;
    d->roots = make_roots(&d->config);
    d->root_count = d->config.folder_count;
    return 0;
}

static void close_everything(struct daemon *d)
{
    blurd_pipeline_free(d->pipeline);
    blurd_store_close(d->store);
    blurd_model_free(d->model);
    free_roots(d->roots, d->root_count);
    blurd_config_free(&d->config);
    if (d->waiting != NULL)
        g_queue_free_full(d->waiting, g_free);
    if (d->known != NULL)
        g_hash_table_destroy(d->known);
    free(d->result);
}

int blurd_daemon_check(const struct blurd_daemon_options *options, char *err)
{
    struct daemon d = {.options = options};
    int rc = open_everything(&d, err);
    close_everything(&d);
    return rc;
}

int blurd_daemon_run(const struct blurd_daemon_options *options, char *err)
{
    struct daemon d = {.options = options};
    int rc = open_everything(&d, err);
    if (rc == 0) {
        d.result = malloc(sizeof *d.result);
        d.waiting = g_queue_new();
        d.known = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        if (d.result == NULL)
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        char recover_err[BLURD_ERR_LEN];
        int resolved = blurd_sort_recover(d.store, recover_err);
        if (resolved < 0)
            blurd_log_error("%s", recover_err);
        else if (resolved > 0)
            blurd_log_notice("resolved %d interrupted move(s)", resolved);
    }
    if (rc == 0 && uv_loop_init(&d.loop) != 0)
        rc = blurd_error_set(err, BLURD_EIO, "cannot start the event loop");
    if (rc != 0) {
        close_everything(&d);
        return rc;
    }
    blurd_gemm_set_threads(1);
    uv_async_init(&d.loop, &d.results_ready, on_results_ready);
    d.results_ready.data = &d;
    rc = start_pipeline(&d, err);
    const int signal_numbers[3] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&d.loop, &d.signals[i]);
        d.signals[i].data = &d;
        uv_signal_start(&d.signals[i], on_signal, signal_numbers[i]);
    }
    uv_timer_init(&d.loop, &d.commit_timer);
    uv_timer_init(&d.loop, &d.status_timer);
    uv_timer_init(&d.loop, &d.watchdog_timer);
    d.commit_timer.data = d.status_timer.data = d.watchdog_timer.data = &d;
    if (rc == 0)
        rc = start_watch(&d, err);
    if (rc != 0) {
        d.stopping = true;
        finish_stop(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        uv_loop_close(&d.loop);
        close_everything(&d);
        return rc;
    }
    uv_timer_start(&d.commit_timer, on_commit_timer, COMMIT_INTERVAL_MS, COMMIT_INTERVAL_MS);
    uv_timer_start(&d.status_timer, on_status_timer, STATUS_INTERVAL_MS, STATUS_INTERVAL_MS);
    uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) > 0 && watchdog_usec >= 2000)
        uv_timer_start(&d.watchdog_timer, on_watchdog_timer, watchdog_usec / 2000,
                       watchdog_usec / 2000);

    /* The start-up scan is under way: from here on nothing that arrives is missed. */
    sd_notify(0, "READY=1");
    blurd_log_notice("watching %d folder(s) with model %s (%s), %d worker(s)%s", d.root_count,
                     blurd_model_name(d.model), blurd_model_hash(d.model), d.config.workers,
                     d.config.move ? ", moving judged files" : "");
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    blurd_log_notice("stopped: %llu judged (%llu blurred, %llu clear), %llu failed, %llu moved",
                     (unsigned long long)d.counts.judged, (unsigned long long)d.counts.blurred,
                     (unsigned long long)d.counts.clear, (unsigned long long)d.counts.failed,
                     (unsigned long long)d.counts.moved);
    bool failed = d.failed;
    close_everything(&d);
    if (failed)
        return blurd_error_set(err, BLURD_EIO, "stopped after the error above");
    return 0;
}
