/* bench.c - `make bench`: how fast blurd is on this machine, as ratios against references
 * measured in the same run (sgemm for the network, decode and network time for the
 * pipeline).  Prints; asserts nothing. */
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/kernels.h"
#include "blurd/model.h"
#include "blurd/net.h"
#include "blurd/train.h"

#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIPELINE_IMAGES 24

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best-of GFLOP/s of one square sgemm of side n. */
static double sgemm_gflops(int n, int repeats)
{
    size_t count = (size_t)n * n;
    float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float)),
          *c = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
        c[i] = 0.0f;
    }
    blurd_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t = now();
        blurd_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = now() - t;
        if (t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * (double)n * n * n / best / 1e9;
}

/* Median seconds of a forward pass at `batch`, and per-layer medians into layer_seconds. */
static double forward_seconds(const blurd_net *net, int batch, int threads, int repeats,
                              double *layer_seconds)
{
    char err[BLURD_ERR_LEN];
    blurd_net_workspace *ws;
    if (blurd_net_workspace_create(&ws, net, batch, threads, err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    struct blurd_shape in = blurd_net_input_shape(net);
    size_t n = (size_t)batch * in.height * in.width * in.channels;
    float *input = blurd_net_workspace_input(ws);
    for (size_t i = 0; i < n; i++)
        input[i] = (float)(i % 251) / 251.0f;
    int layers = blurd_net_layer_count(net);
    double *all = calloc((size_t)repeats * (size_t)(layers + 1), sizeof(double));
    blurd_net_forward(net, ws, batch, NULL); /* warm-up */
    for (int r = 0; r < repeats; r++) {
        double t = now();
        blurd_net_forward(net, ws, batch, all + (size_t)r * (layers + 1) + 1);
        all[(size_t)r * (layers + 1)] = now() - t;
    }
    /* median per column, by insertion sort of a small array */
    double medians[BLURD_NET_MAX_LAYERS + 1];
    for (int col = 0; col <= layers; col++) {
        double v[64];
        int m = repeats < 64 ? repeats : 64;
        for (int r = 0; r < m; r++) {
            double x = all[(size_t)r * (layers + 1) + col];
            int j = r;
            while (j > 0 && v[j - 1] > x) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        medians[col] = v[m / 2];
    }
    if (layer_seconds != NULL)
        memcpy(layer_seconds, medians + 1, (size_t)layers * sizeof(double));
    free(all);
    blurd_net_workspace_free(ws);
    return medians[0];
}

/* ---- training: one step of the default network ------------------------------------ */

#define TRAIN_BATCH   32
#define TRAIN_THREADS 2
#define TRAIN_STEPS   5

static double median_of(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[n / 2];
}

/* Training images/s at batch 32 on 2 threads, the share of a step in forward, backward and
 * the Adam update `blurd train` uses, and the step's cost against an inference forward pass
 * of the same batch (target: at most 3.5x). */
static void bench_training(void)
{
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    blurd_net_train_workspace *ws;
    if (blurd_net_create(&net, BLURD_DEFAULT_SPEC, err) != 0 ||
        blurd_net_train_workspace_create(&ws, net, TRAIN_BATCH, TRAIN_THREADS, 0, err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    blurd_net_init_he(net, 1);
    blurd_gemm_set_threads(1);
    struct blurd_shape in = blurd_net_input_shape(net);
    size_t n = (size_t)TRAIN_BATCH * in.height * in.width * in.channels;
    float *images = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        images[i] = (float)(i % 251) / 251.0f;
    int labels[TRAIN_BATCH];
    for (int b = 0; b < TRAIN_BATCH; b++)
        labels[b] = b % 2;
    float *theta = blurd_net_parameters(net), *gradients = blurd_net_train_gradients(ws);
    size_t parameters = blurd_net_parameter_count(net);
    blurd_adam *adam;
    struct blurd_adam_options adam_options = blurd_adam_defaults();
    if (blurd_adam_create(&adam, parameters, &adam_options, err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }

    double forward[TRAIN_STEPS], backward[TRAIN_STEPS], update[TRAIN_STEPS], step[TRAIN_STEPS];
    for (int s = -1; s < TRAIN_STEPS; s++) { /* step -1 warms up */
        memcpy(blurd_net_train_input(ws), images, n * sizeof(float));
        double t0 = now();
        blurd_net_train_forward(net, ws, TRAIN_BATCH, (uint64_t)(s + 1));
        double t1 = now();
        blurd_net_train_backward(net, ws, TRAIN_BATCH, labels);
        double t2 = now();
        blurd_adam_step(adam, theta, gradients);
        double t3 = now();
        if (s >= 0) {
            forward[s] = t1 - t0;
            backward[s] = t2 - t1;
            update[s] = t3 - t2;
            step[s] = t3 - t0;
        }
    }
    double workspace_mib = (double)blurd_net_train_workspace_bytes(ws) / 1048576.0;
    blurd_net_train_workspace_free(ws);
    blurd_adam_free(adam);
    free(images);
    double f = median_of(forward, TRAIN_STEPS), b = median_of(backward, TRAIN_STEPS),
           u = median_of(update, TRAIN_STEPS), total = median_of(step, TRAIN_STEPS);
    double inference = forward_seconds(net, TRAIN_BATCH, TRAIN_THREADS, 3, NULL);
    printf("\n== training step, batch %d, %d threads (workspace %.0f MiB) ==\n", TRAIN_BATCH,
           TRAIN_THREADS, workspace_mib);
    printf("%.1f training images/s (PyTorch tuned: 35); step %.0f ms = forward %.0f ms (%.0f%%) "
           "+ backward %.0f ms (%.0f%%) + Adam update %.1f ms (%.1f%%)\n",
           TRAIN_BATCH / total, total * 1e3, f * 1e3, 100.0 * f / total, b * 1e3, 100.0 * b / total,
           u * 1e3, 100.0 * u / total);
    printf("step / inference forward of the same batch (%.0f ms): %.2fx (target <= 3.5x)\n",
           inference * 1e3, total / inference);
    blurd_net_free(net);
}

/* Makes PIPELINE_IMAGES 12-megapixel JPEGs in `dir` by enlarging the sample photos. */
static int make_camera_jpegs(const char *dir, const char *source_dir, char paths[][4096])
{
    char pattern[8192];
    snprintf(pattern, sizeof pattern, "%s/data/samples/*/*.jpg", source_dir);
    glob_t found;
    if (glob(pattern, 0, NULL, &found) != 0 || found.gl_pathc == 0) {
        fprintf(stderr, "bench: no sample photos match %s\n", pattern);
        return -1;
    }
    for (int i = 0; i < PIPELINE_IMAGES; i++) {
        snprintf(paths[i], 4096, "%s/camera-%02d.jpg", dir, i);
        char command[24576];
        snprintf(command, sizeof command,
                 "vips thumbnail '%.4000s' '%.4000s[Q=90]' 4000 --height 3000 --size force",
                 found.gl_pathv[(size_t)i % found.gl_pathc], paths[i]);
        if (system(command) != 0) {
            fprintf(stderr, "bench: failed: %s\n", command);
            globfree(&found);
            return -1;
        }
    }
    globfree(&found);
    return 0;
}

/* The 12-megapixel JPEGs the pipeline section makes, reused by the daemon section. */
static char pipeline_photos[PIPELINE_IMAGES][4096];

struct decode_job {
    char (*paths)[4096];
    const struct blurd_image_options *options;
    double seconds;
};

static void *decode_all(void *arg)
{
    struct decode_job *job = arg;
    struct blurd_image_info info;
    char err[BLURD_ERR_LEN];
    float *inputs = malloc((size_t)8 * 200 * 200 * 3 * sizeof(float));
    double t = now();
    for (int i = 0; i < PIPELINE_IMAGES && inputs != NULL; i++)
        blurd_image_load(job->paths[i], job->options, inputs, &info, err);
    job->seconds = now() - t;
    free(inputs);
    return NULL;
}

/* Throughput of two threads decoding at once over one thread alone: how far this machine
 * lets decoding scale, the ceiling for --jobs 2 over --jobs 1 when decoding dominates. */
static double decode_scaling(char (*paths)[4096], const struct blurd_image_options *options)
{
    struct decode_job alone = {paths, options, 0.0}, pair[2] = {alone, alone};
    decode_all(&alone);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&threads[i], NULL, decode_all, &pair[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    double slower = pair[0].seconds > pair[1].seconds ? pair[0].seconds : pair[1].seconds;
    return 2.0 * alone.seconds / slower;
}

/* Seconds for `blurd classify` over the generated images, best of `repeats` runs. */
static double classify_seconds(const char *binary, const char *model, const char *dir,
                               const char *input, int jobs, int repeats)
{
    char command[16384];
    snprintf(command, sizeof command,
             "'%s' classify -q --no-progress -m '%s' -i %s -j %d '%s' > /dev/null", binary, model,
             input, jobs, dir);
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t = now();
        if (system(command) != 0) {
            fprintf(stderr, "bench: failed: %s\n", command);
            exit(1);
        }
        t = now() - t;
        if (t < best)
            best = t;
    }
    return best;
}

static void bench_pipeline(const blurd_net *net, const char *model_path, const char *dir)
{
    const char *binary = getenv("BLURD");
    const char *source_dir = getenv("BLURD_SOURCE");
    if (binary == NULL || source_dir == NULL) {
        printf("(set BLURD and BLURD_SOURCE, as make bench does, for the pipeline figures)\n");
        return;
    }
    char(*paths)[4096] = pipeline_photos;
    if (make_camera_jpegs(dir, source_dir, paths) != 0)
        return;
    /* Start-up (process, libvips, model, memory plan) is measured on one tiny image. */
    char tiny_dir[4096], command[16384];
    snprintf(tiny_dir, sizeof tiny_dir, "%s/tiny", dir);
    snprintf(command, sizeof command, "mkdir '%s' && vips black '%s/tiny.png' 64 64", tiny_dir,
             tiny_dir);
    if (system(command) != 0) {
        fprintf(stderr, "bench: failed: %s\n", command);
        return;
    }
    char err[BLURD_ERR_LEN];
    if (blurd_image_init(NULL, err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return;
    }
    printf("\n== end to end: blurd classify on %d JPEGs of 4000x3000 ==\n", PIPELINE_IMAGES);
    const char *modes[2] = {"tiles", "resize"};
    struct blurd_shape in = blurd_net_input_shape(net);
    for (int m = 0; m < 2; m++) {
        struct blurd_image_options options = {
            .input = m == 0 ? BLURD_INPUT_TILES : BLURD_INPUT_RESIZE,
            .size = in.height,
            .tile_count = 8,
            .analysis_size = 0,
            .max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS,
        };
        int max_inputs = m == 0 ? options.tile_count : 1;
        float *inputs =
            malloc((size_t)max_inputs * in.height * in.width * in.channels * sizeof(float));
        /* decode alone, one thread, as a worker does it */
        double decode = 0.0;
        int total_inputs = 0;
        for (int i = 0; i < PIPELINE_IMAGES; i++) {
            struct blurd_image_info info;
            double t = now();
            if (blurd_image_load(paths[i], &options, inputs, &info, err) != 0) {
                fprintf(stderr, "bench: %s\n", err);
                exit(1);
            }
            decode += now() - t;
            total_inputs += info.inputs;
        }
        decode /= PIPELINE_IMAGES;
        free(inputs);
        /* the network alone on one thread, at the batch this mode makes per image */
        int batch = (total_inputs + PIPELINE_IMAGES / 2) / PIPELINE_IMAGES;
        double network = forward_seconds(net, batch, 1, 9, NULL);
        double bound = 1.0 / (decode + network);
        printf("%-6s: decode %.1f ms + network %.1f ms (batch %d, 1 thread) per image -> "
               "bound %.1f images/s\n",
               modes[m], decode * 1e3, network * 1e3, batch, bound);
        double rate[3], steady[3];
        for (int jobs = 1; jobs <= 2; jobs++) {
            double all = classify_seconds(binary, model_path, dir, modes[m], jobs, 3);
            double startup = classify_seconds(binary, model_path, tiny_dir, modes[m], jobs, 3);
            rate[jobs] = PIPELINE_IMAGES / all;
            steady[jobs] = PIPELINE_IMAGES / (all - startup);
            printf("        --jobs %d: %5.1f images/s = %3.0f%% of the bound; without the "
                   "%.0f ms start-up %5.1f images/s = %3.0f%%\n",
                   jobs, rate[jobs], 100.0 * rate[jobs] / bound, startup * 1e3, steady[jobs],
                   100.0 * steady[jobs] / bound);
        }
        printf("        --jobs 2 / --jobs 1: %.2fx (without start-up %.2fx); two decoders at "
               "once: %.2fx one\n",
               rate[2] / rate[1], steady[2] / steady[1], decode_scaling(paths, &options));
    }
    printf("(bound: one core's decode + network time, measured in-process above; start-up:\n"
           " process start, libvips and model loading, memory planning, one 64x64 image)\n");
}

/* ---- the daemon: latency at a trickle, throughput of a burst ------------------------ */

#define TRICKLE_FILES 20
#define BURST_FILES   1000

static void sleep_seconds(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

static pid_t start_daemon(const char *binary, const char *model, const char *inbox, const char *db,
                          const char *log)
{
    char command[16384];
    snprintf(command, sizeof command,
             "exec '%s' daemon --model '%s' --watch '%s' --db '%s' --settle 0 2>'%s' >/dev/null",
             binary, model, inbox, db, log);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    /* ready once it logs that it watches */
    for (int i = 0; i < 6000; i++) {
        char grep[8192];
        snprintf(grep, sizeof grep, "grep -qs 'watching ' '%s'", log);
        if (system(grep) == 0)
            return pid;
        sleep_seconds(0.01);
    }
    fprintf(stderr, "bench: the daemon did not start (see %s)\n", log);
    exit(1);
}

/* Peak resident memory of a process, in MiB, from /proc. */
static double peak_rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    double kib = 0.0;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmHWM: %lf kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib / 1024.0;
}

static long long count_rows(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    long long n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW)
            n = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    return n;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void copy_file(const char *from, const char *to)
{
    char command[16384];
    snprintf(command, sizeof command, "cp '%s' '%s'", from, to);
    if (system(command) != 0) {
        fprintf(stderr, "bench: failed: %s\n", command);
        exit(1);
    }
}

static void bench_daemon(const char *model_path, const char *dir, char (*photos)[4096])
{
    const char *binary = getenv("BLURD");
    if (binary == NULL)
        return;
    printf("\n== blurd daemon ==\n");
    char inbox[4096], db_path[4096], log[4096], command[16384];
    snprintf(inbox, sizeof inbox, "%s/inbox", dir);
    snprintf(db_path, sizeof db_path, "%s/daemon.db", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    snprintf(command, sizeof command, "mkdir -p '%s'", inbox);
    if (system(command) != 0)
        return;

    /* Trickle: one 12-megapixel JPEG at a time; latency from its close to its row. */
    pid_t pid = start_daemon(binary, model_path, inbox, db_path, log);
    sqlite3 *db;
    sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_busy_timeout(db, 1000);
    double latency[TRICKLE_FILES], judged[TRICKLE_FILES];
    for (int i = 0; i < TRICKLE_FILES; i++) {
        char staged[8192], target[8192];
        snprintf(staged, sizeof staged, "%s/staged-%02d.jpg", dir, i);
        snprintf(target, sizeof target, "%s/trickle-%02d.jpg", inbox, i);
        copy_file(photos[i % PIPELINE_IMAGES], staged);
        /* written the way an uploader does: into the folder, closed */
        FILE *in = fopen(staged, "rb"), *out = fopen(target, "wb");
        char buffer[1 << 16];
        size_t n;
        while (in != NULL && out != NULL && (n = fread(buffer, 1, sizeof buffer, in)) > 0)
            fwrite(buffer, 1, n, out);
        if (in != NULL)
            fclose(in);
        double closed = 0.0;
        if (out != NULL) {
            fclose(out);
            closed = now();
        }
        char sql[16384];
        snprintf(sql, sizeof sql, "select count(*) from images where path = '%s'", target);
        while (count_rows(db, sql) != 1)
            sleep_seconds(0.001);
        latency[i] = now() - closed;
        snprintf(sql, sizeof sql,
                 "select cast(milliseconds as integer) from images where path = '%s'", target);
        judged[i] = (double)count_rows(db, sql) / 1e3;
        sleep_seconds(0.2);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    sqlite3_close(db);
    qsort(latency, TRICKLE_FILES, sizeof latency[0], compare_doubles);
    qsort(judged, TRICKLE_FILES, sizeof judged[0], compare_doubles);
    double median = latency[TRICKLE_FILES / 2], p99 = latency[TRICKLE_FILES - 1];
    double classify = judged[TRICKLE_FILES / 2];
    printf("trickle of %d 12-MP JPEGs: close -> row median %.0f ms, p99 (max of %d) %.0f ms; "
           "one image's decode + network %.0f ms; median overhead %+.0f ms (target <= +50)\n",
           TRICKLE_FILES, median * 1e3, TRICKLE_FILES, p99 * 1e3, classify * 1e3,
           (median - classify) * 1e3);

    /* Burst: BURST_FILES camera-phone-sized JPEGs at once, against classify on the same. */
    char burst[4096];
    snprintf(burst, sizeof burst, "%s/burst-source", dir);
    snprintf(command, sizeof command,
             "mkdir -p '%s' && for f in '%s'/camera-*.jpg; do "
             "vips thumbnail \"$f\" \"%s/$(basename \"$f\")\"[Q=85] 1024; done",
             burst, dir, burst);
    if (system(command) != 0)
        return;
    snprintf(command, sizeof command,
             "cd '%s' && i=0; while [ $i -lt %d ]; do for f in camera-*.jpg; do "
             "[ $i -lt %d ] && ln \"$f\" \"copy-$i.jpg\"; i=$((i+1)); done; done; rm camera-*.jpg",
             burst, BURST_FILES, BURST_FILES);
    if (system(command) != 0)
        return;
    double classify_seconds_burst = classify_seconds(binary, model_path, burst, "tiles", 2, 1);

    char burst_inbox[4096], burst_db[4096];
    snprintf(burst_inbox, sizeof burst_inbox, "%s/burst-inbox", dir);
    snprintf(burst_db, sizeof burst_db, "%s/burst.db", dir);
    snprintf(command, sizeof command, "mkdir -p '%s'", burst_inbox);
    if (system(command) != 0)
        return;
    snprintf(log, sizeof log, "%s/burst-daemon.log", dir);
    pid = start_daemon(binary, model_path, burst_inbox, burst_db, log);
    double start = now();
    /* copied in as from a memory card */
    snprintf(command, sizeof command, "cp '%s'/*.jpg '%s/'", burst, burst_inbox);
    if (system(command) != 0)
        return;
    sqlite3_open_v2(burst_db, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_busy_timeout(db, 1000);
    while (count_rows(db, "select count(*) from images") < BURST_FILES)
        sleep_seconds(0.01);
    double daemon_seconds = now() - start;
    sqlite3_close(db);
    double rss = peak_rss_mib(pid);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    printf("burst of %d JPEGs (1024 px): daemon %.1f files/s, peak RSS %.0f MiB; "
           "classify -j 2 on the same files %.1f files/s; ratio %.2f (target >= 0.90)\n",
           BURST_FILES, BURST_FILES / daemon_seconds, rss, BURST_FILES / classify_seconds_burst,
           classify_seconds_burst / daemon_seconds);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* each figure shows as soon as it is measured */
    char err[BLURD_ERR_LEN];
    blurd_net *net;
    if (blurd_net_create(&net, BLURD_DEFAULT_SPEC, err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    blurd_net_init_he(net, 1);
    double flops = blurd_net_flops(net);
    printf("blurd bench: kernels %s, default network %.1f MFLOP per input\n\n",
           blurd_kernels_get()->name, flops / 1e6);

    printf("== network forward pass ==\n");
    double sgemm[3] = {0};
    for (int threads = 1; threads <= 2; threads++) {
        blurd_gemm_set_threads(threads);
        sgemm[threads] = sgemm_gflops(2048, 5);
        printf("sgemm 2048^3, %d thread(s): %.1f GFLOP/s\n", threads, sgemm[threads]);
    }
    int layers = blurd_net_layer_count(net);
    double layer_seconds[BLURD_NET_MAX_LAYERS];
    /* blurd spreads a forward pass over its own threads, each calling OpenBLAS alone */
    blurd_gemm_set_threads(1);
    forward_seconds(net, 8, 2, 9, layer_seconds);
    printf("\nper layer, batch 8, 2 threads:\n");
    for (int i = 0; i < layers; i++) {
        struct blurd_layer_info info;
        blurd_net_layer(net, i, &info);
        if (layer_seconds[i] < 1e-6 && info.flops == 0.0)
            continue;
        printf("  %2d %-8s %3dx%3dx%-5d %8.2f ms", i, info.kind_name, info.output.height,
               info.output.width, info.output.channels, layer_seconds[i] * 1e3);
        if (info.flops > 0.0)
            printf("  %6.1f GFLOP/s", info.flops * 8 / layer_seconds[i] / 1e9);
        printf("\n");
    }
    printf("\nforward images/s:\n");
    for (int threads = 1; threads <= 2; threads++)
        for (int batch = 1; batch <= 8; batch += 7) {
            double s = forward_seconds(net, batch, threads, batch == 1 ? 21 : 7, NULL);
            double gflops = flops * batch / s / 1e9;
            printf("  batch %d, %d thread(s): %7.1f images/s  %6.1f GFLOP/s = %3.0f%% of sgemm\n",
                   batch, threads, batch / s, gflops, 100.0 * gflops / sgemm[threads]);
        }

    bench_training();

    char dir[] = "/tmp/blurd-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("bench: mkdtemp");
        return 1;
    }
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s/default-architecture.safetensors", dir);
    blurd_model *model;
    if (blurd_model_create(&model, BLURD_DEFAULT_SPEC, 1, err) != 0 ||
        blurd_model_save(model, model_path, 0, err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    blurd_model_free(model);
    bench_pipeline(net, model_path, dir);
    bench_daemon(model_path, dir, pipeline_photos);

    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    blurd_net_free(net);
    return 0;
}
