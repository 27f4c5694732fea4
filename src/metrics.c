/* metrics.c - classification metrics over (score, truth) pairs for `blurd eval`.
 *
 * Expected workload: one evaluation set of up to some hundred thousand images, each
 * metric a sort and one pass; exact counts, double precision for the ratios. */
#include "blurd/metrics.h"

#include <math.h>
#include <stdlib.h>

struct blurd_confusion blurd_metrics_confusion(const struct blurd_metrics_sample *samples, size_t n,
                                               double threshold)
{
    struct blurd_confusion c = {0};
    for (size_t i = 0; i < n; i++) {
        int called_positive = samples[i].score >= threshold;
        if (samples[i].positive) {
            if (called_positive)
                c.true_positive++;
            else
                c.false_negative++;
        } else {
            if (called_positive)
                c.false_positive++;
            else
                c.true_negative++;
        }
    }
    return c;
}

double blurd_metrics_accuracy(const struct blurd_confusion *c)
{
    size_t total = c->true_positive + c->false_negative + c->false_positive + c->true_negative;
    if (total == 0)
        return NAN;
    return (double)(c->true_positive + c->true_negative) / (double)total;
}

/* The balanced accuracy from the four counts; shared with the threshold search. */
static double balanced(size_t true_positive, size_t positives, size_t true_negative,
                       size_t negatives)
{
    if (positives == 0 && negatives == 0)
        return NAN;
    if (positives == 0)
        return (double)true_negative / (double)negatives;
    if (negatives == 0)
        return (double)true_positive / (double)positives;
    return 0.5 *
           ((double)true_positive / (double)positives + (double)true_negative / (double)negatives);
}

double blurd_metrics_balanced_accuracy(const struct blurd_confusion *c)
{
    return balanced(c->true_positive, c->true_positive + c->false_negative, c->true_negative,
                    c->true_negative + c->false_positive);
}

static int by_score(const void *a, const void *b)
{
    double x = ((const struct blurd_metrics_sample *)a)->score;
    double y = ((const struct blurd_metrics_sample *)b)->score;
    return (x > y) - (x < y);
}

/* Sorts `samples` by score (the threshold searches sweep them in order) and counts the
 * positives among them. */
static size_t sort_and_count_positives(struct blurd_metrics_sample *samples, size_t n)
{
    qsort(samples, n, sizeof *samples, by_score);
    size_t positives = 0;
    for (size_t i = 0; i < n; i++)
        positives += samples[i].positive != 0;
    return positives;
}

double blurd_metrics_auc(struct blurd_metrics_sample *samples, size_t n)
{
    if (n == 0)
        return NAN; /* and samples may be NULL, which qsort must not see */
    qsort(samples, n, sizeof *samples, by_score);
    size_t positives = 0;
    /* The sum of the positives' ranks (1-based), each group of tied scores sharing the
     * average of the ranks it spans: i+1 .. j, averaging (i + 1 + j) / 2. */
    double rank_sum = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && samples[j].score == samples[i].score)
            j++;
        size_t group_positives = 0;
        for (size_t k = i; k < j; k++)
            group_positives += samples[k].positive != 0;
        rank_sum += (double)group_positives * 0.5 * (double)(i + 1 + j);
        positives += group_positives;
        i = j;
    }
    size_t negatives = n - positives;
    if (positives == 0 || negatives == 0)
        return NAN;
    double u = rank_sum - 0.5 * (double)positives * (double)(positives + 1);
    return u / ((double)positives * (double)negatives);
}

void blurd_metrics_best_threshold(struct blurd_metrics_sample *samples, size_t n, double *threshold,
                                  double *balanced_accuracy)
{
    *threshold = *balanced_accuracy = NAN;
    if (n == 0)
        return;
    size_t positives = sort_and_count_positives(samples, n);
    size_t negatives = n - positives;

    /* Cut k calls samples[k..n) positive: start with k = 0 (all positive) and move the cut
     * up one group of tied scores at a time, ending with k = n (all negative).  Only
     * strictly better cuts replace the best, so the lowest threshold wins ties. */
    size_t true_positive = positives, true_negative = 0;
    double best = balanced(true_positive, positives, true_negative, negatives);
    double best_threshold = samples[0].score;
    for (size_t k = 0; k < n;) {
        size_t j = k;
        while (j < n && samples[j].score == samples[k].score) {
            if (samples[j].positive)
                true_positive--;
            else
                true_negative++;
            j++;
        }
        double value = balanced(true_positive, positives, true_negative, negatives);
        if (value > best) {
            best = value;
            if (j == n) {
                best_threshold = nextafter(samples[n - 1].score, INFINITY);
            } else {
                double low = samples[j - 1].score, high = samples[j].score;
                double middle = low / 2.0 + high / 2.0; /* no overflow, unlike (low + high) / 2 */
                /* Neighbouring doubles have no double between them: take the upper one,
                 * which still separates them under "score >= threshold". */
                best_threshold = middle > low ? middle : high;
            }
        }
        k = j;
    }
    *threshold = best_threshold;
    *balanced_accuracy = best;
}

void blurd_metrics_steady_threshold(struct blurd_metrics_sample *samples, size_t n, double window,
                                    double low, double high, double *threshold,
                                    double *balanced_accuracy)
{
    enum { STEPS = BLURD_METRICS_GRID_STEPS };
    *threshold = *balanced_accuracy = NAN;
    if (n == 0 || !(low <= high) || !(window >= 0.0))
        return;
    size_t positives = sort_and_count_positives(samples, n);
    size_t negatives = n - positives;

    /* at[k]: the balanced accuracy at threshold k / STEPS, by one sweep up the sorted
     * scores; sum[k]: at[1] + ... + at[k], so a window's mean is one subtraction. */
    double at[STEPS], sum[STEPS];
    size_t below = 0, positives_below = 0; /* samples scoring under the threshold */
    sum[0] = at[0] = 0.0;
    for (int k = 1; k < STEPS; k++) {
        double t = (double)k / STEPS;
        while (below < n && samples[below].score < t)
            positives_below += samples[below++].positive != 0;
        size_t true_negative = below - positives_below;
        at[k] = balanced(positives - positives_below, positives, true_negative, negatives);
        sum[k] = sum[k - 1] + at[k];
    }

    /* Clamped in double before converting, so no input can overflow an int; the 1e-9
     * keeps a bound or window given as a decimal (0.05, 0.1) on its grid point. */
    int reach = (int)fmin(floor(window * STEPS + 1e-9), STEPS);
    int first = (int)fmin(fmax(ceil(low * STEPS - 1e-9), 1.0), STEPS);
    int last = (int)fmax(fmin(floor(high * STEPS + 1e-9), STEPS - 1.0), 0.0);
    double best_mean = -1.0;
    int best = 0;
    for (int k = first; k <= last; k++) {
        int from = k - reach < 1 ? 1 : k - reach;
        int to = k + reach > STEPS - 1 ? STEPS - 1 : k + reach;
        double mean = (sum[to] - sum[from - 1]) / (double)(to - from + 1);
        /* means equal in exact arithmetic differ here by rounding in the running sums:
         * only a clear gain counts, so the lowest of equals wins as promised */
        if (mean > best_mean + 1e-9) {
            best_mean = mean;
            best = k;
        }
    }
    if (best == 0)
        return; /* [low, high] holds no grid threshold */
    *threshold = (double)best / STEPS;
    *balanced_accuracy = at[best];
}
