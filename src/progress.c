/* progress.c - the progress line on stderr. */
#include "blurd/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void blurd_progress_start(struct blurd_progress *progress, int mode, const char *unit)
{
    progress->enabled = mode > 0 || (mode < 0 && isatty(STDERR_FILENO));
    progress->unit = unit;
    progress->label = NULL;
    progress->start = now_seconds();
    progress->last_drawn = 0.0;
}

void blurd_progress_show(struct blurd_progress *progress, size_t done, size_t total, int force)
{
    if (!progress->enabled)
        return;
    double t = now_seconds();
    if (!force && t - progress->last_drawn < 0.1)
        return;
    progress->last_drawn = t;
    double elapsed = t - progress->start, rate = elapsed > 0.0 ? (double)done / elapsed : 0.0;
    int width = 30, filled = total ? (int)((double)width * (double)done / (double)total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    long eta = rate > 0.0 && total >= done ? (long)((double)(total - done) / rate + 0.5) : 0;
    fprintf(stderr, "\r\033[K%s%s%zu/%zu [%s] %3.0f%%  %.1f %s/s  ETA %ld:%02ld",
            progress->label ? progress->label : "", progress->label ? ": " : "", done, total, bar,
            total ? 100.0 * (double)done / (double)total : 100.0, rate, progress->unit, eta / 60,
            eta % 60);
    fflush(stderr);
}

void blurd_progress_clear(const struct blurd_progress *progress)
{
    if (progress->enabled)
        fputs("\r\033[K", stderr);
}
