/* progress.h - the one-line progress bar blurd draws on stderr during long runs (classify,
 * synth, and later train): done/total, a bar, percentage, rate and time left, redrawn at
 * most ten times a second, only when wanted (by default: when stderr is a terminal). */
#ifndef BLURD_PROGRESS_H
#define BLURD_PROGRESS_H

#include <stddef.h>

struct blurd_progress {
    int enabled;
    const char *unit;  /* "images", ... (borrowed, static) */
    const char *label; /* printed first, e.g. "epoch 3/30"; NULL for none (borrowed) */
    double start, last_drawn;
};

/* `mode`: -1 draw when stderr is a terminal, 0 never, 1 always.  Starts the clock. */
void blurd_progress_start(struct blurd_progress *progress, int mode, const char *unit);

/* Redraws the line if enabled and a tenth of a second has passed (or `force`). */
void blurd_progress_show(struct blurd_progress *progress, size_t done, size_t total, int force);

/* Erases the line, so other output can follow on a clean line. */
void blurd_progress_clear(const struct blurd_progress *progress);

#endif
