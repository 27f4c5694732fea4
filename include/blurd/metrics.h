/* metrics.h - how well a score separates two classes: the confusion matrix at a threshold,
 * accuracy, balanced accuracy, ROC AUC, the threshold with the best balanced accuracy and a
 * steadier one for probabilities.
 * Used by `blurd eval` (and training's validation) for the network's p(blurred) and for
 * the Laplacian's variance alike.
 *
 * Conventions: a sample is positive (for blurd: blurred) or negative, and a threshold t
 * calls a sample positive when its score >= t, so a higher score must mean "more
 * positive"; a score that works the other way round (the Laplacian's variance: low is
 * blurred) is passed negated.  Scores must be finite (NaN has no order).  Nothing here
 * allocates; the functions that need order sort the caller's array in place.
 */
#ifndef BLURD_METRICS_H
#define BLURD_METRICS_H

#include <stddef.h>

struct blurd_metrics_sample {
    double score;
    int positive; /* non-zero: the sample truly is positive */
};

/* Counts at one threshold; "called" is the prediction, the first word the truth. */
struct blurd_confusion {
    size_t true_positive;  /* positive, called positive */
    size_t false_negative; /* positive, called negative */
    size_t false_positive; /* negative, called positive */
    size_t true_negative;  /* negative, called negative */
};

/* The confusion matrix of `samples` (n of them, borrowed, not reordered) when scores at or
 * above `threshold` are called positive. */
struct blurd_confusion blurd_metrics_confusion(const struct blurd_metrics_sample *samples, size_t n,
                                               double threshold);

/* Correct calls over all samples; NaN for an empty matrix. */
double blurd_metrics_accuracy(const struct blurd_confusion *confusion);

/* The mean of the recall of each class (true positive rate and true negative rate), so a
 * rare class counts as much as a common one.  When only one class is present, its recall
 * alone (as scikit-learn does, where the other class's recall is undefined); NaN for an
 * empty matrix. */
double blurd_metrics_balanced_accuracy(const struct blurd_confusion *confusion);

/* The area under the ROC curve: the probability that a random positive scores above a
 * random negative, ties counting one half, computed from ranks (Mann-Whitney U) with tied
 * scores given their average rank.  Sorts `samples` by score.  NaN when either class is
 * absent (there is no pair to compare). */
double blurd_metrics_auc(struct blurd_metrics_sample *samples, size_t n);

/* The threshold at which blurd_metrics_balanced_accuracy is highest on `samples`, into
 * *threshold, and that balanced accuracy into *balanced_accuracy.  Every distinct cut is
 * tried: all positive, all negative, and each one between two neighbouring distinct
 * scores, where the threshold returned is the midpoint of the two (robust to rounding,
 * and fair to both sides); all positive returns the lowest score, all negative the next
 * double above the highest.  Of equally good cuts, the one with the lowest threshold wins.
 * Sorts `samples` by score.  With n == 0, *threshold and *balanced_accuracy are NaN. */
void blurd_metrics_best_threshold(struct blurd_metrics_sample *samples, size_t n, double *threshold,
                                  double *balanced_accuracy);

/* The grid the steady threshold is sought on: thresholds k / BLURD_METRICS_GRID_STEPS. */
#define BLURD_METRICS_GRID_STEPS 1000

/* A threshold for scores that are probabilities, chosen for a good neighbourhood rather
 * than the single best cut.  The balanced accuracy is measured at every grid threshold
 * k / BLURD_METRICS_GRID_STEPS, k = 1 .. BLURD_METRICS_GRID_STEPS - 1; each grid threshold
 * from `low` to `high` (clamped to the grid) is rated by the mean of the balanced
 * accuracies of the grid thresholds within `window` of it (fewer near the ends of the
 * grid), and the best rated wins, the lowest of equals.  On a set from a few photos the
 * best cut sits on the edge of whatever those photos happen to do, and moves on new
 * photos; a threshold whose neighbours also do well moves less.  window 0 gives the best
 * grid threshold in [low, high].  Into *threshold the threshold, into *balanced_accuracy
 * the balanced accuracy at it (not the mean).  Sorts `samples` by score.  Both are NaN
 * when n == 0, when low > high or window < 0 (or any of them is NaN), and when [low, high]
 * holds no grid threshold. */
void blurd_metrics_steady_threshold(struct blurd_metrics_sample *samples, size_t n, double window,
                                    double low, double high, double *threshold,
                                    double *balanced_accuracy);

#endif
