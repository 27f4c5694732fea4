/* bench.c - `make bench`: how fast blurd is on this machine, as ratios against references
 * measured in the same run (sgemm for the network, decode and network time for the
 * pipeline).  Prints; asserts nothing. */
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/kernels.h"
#include "blurd/model.h"
#include "blurd/net.h"

#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    static char paths[PIPELINE_IMAGES][4096];
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

int main(void)
{
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

    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    blurd_net_free(net);
    return 0;
}
