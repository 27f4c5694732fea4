/* bench.c - `make bench`: how fast blurd is on this machine, as ratios against references
 * measured in the same run (sgemm for the network, decode and network time for the
 * pipeline).  Prints; asserts nothing. */
#include "blurd/error.h"
#include "blurd/kernels.h"
#include "blurd/net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
static double forward_seconds(const blurd_net *net, int batch, int repeats, double *layer_seconds)
{
    char err[BLURD_ERR_LEN];
    blurd_net_workspace *ws;
    if (blurd_net_workspace_create(&ws, net, batch, err) != 0) {
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
    blurd_gemm_set_threads(2);
    forward_seconds(net, 8, 9, layer_seconds);
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
            blurd_gemm_set_threads(threads);
            double s = forward_seconds(net, batch, batch == 1 ? 21 : 7, NULL);
            double gflops = flops * batch / s / 1e9;
            printf("  batch %d, %d thread(s): %7.1f images/s  %6.1f GFLOP/s = %3.0f%% of sgemm\n",
                   batch, threads, batch / s, gflops, 100.0 * gflops / sgemm[threads]);
        }
    blurd_net_free(net);
    return 0;
}
