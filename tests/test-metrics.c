/* test-metrics.c - the classification metrics against examples worked out by hand: a
 * plain set, tied scores, perfect and inverted separation, one class only, nothing, and
 * the steady threshold's choice of a broad good range over a narrow best cut. */
#include "blurd/metrics.h"
#include "test.h"

#include <math.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

TEST_IMPL(metrics_confusion_accuracy_balanced_accuracy)
{
    /* positives 0.35 and 0.8, negatives 0.1 and 0.4 (scikit-learn's roc_auc_score example) */
    const struct blurd_metrics_sample samples[] = {{0.1, 0}, {0.4, 0}, {0.35, 1}, {0.8, 1}};
    struct blurd_confusion c = blurd_metrics_confusion(samples, COUNT(samples), 0.5);
    ASSERT_INT_EQ(c.true_positive, 1);
    ASSERT_INT_EQ(c.false_negative, 1);
    ASSERT_INT_EQ(c.false_positive, 0);
    ASSERT_INT_EQ(c.true_negative, 2);
    ASSERT_NEAR(blurd_metrics_accuracy(&c), 0.75, 1e-12);
    ASSERT_NEAR(blurd_metrics_balanced_accuracy(&c), 0.5 * (0.5 + 1.0), 1e-12);

    /* "at or above": a score equal to the threshold is positive */
    c = blurd_metrics_confusion(samples, COUNT(samples), 0.4);
    ASSERT_INT_EQ(c.true_positive, 1);
    ASSERT_INT_EQ(c.false_positive, 1);

    /* unbalanced: 1 of 4 positives called right, 96 of 96 negatives */
    struct blurd_confusion unbalanced = {
        .true_positive = 1, .false_negative = 3, .false_positive = 0, .true_negative = 96};
    ASSERT_NEAR(blurd_metrics_accuracy(&unbalanced), 0.97, 1e-12);
    ASSERT_NEAR(blurd_metrics_balanced_accuracy(&unbalanced), 0.5 * (0.25 + 1.0), 1e-12);
    return 0;
}

TEST_IMPL(metrics_auc_by_hand_with_ties)
{
    struct blurd_metrics_sample plain[] = {{0.1, 0}, {0.4, 0}, {0.35, 1}, {0.8, 1}};
    /* pairs (positive, negative): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4: 3 of 4 */
    ASSERT_NEAR(blurd_metrics_auc(plain, COUNT(plain)), 0.75, 1e-12);

    /* positives 0.5 0.5 0.9, negatives 0.5 0.1: each 0.5 positive beats 0.1 and ties 0.5
     * (1.5 each), 0.9 beats both (2): 5 of 6.  By ranks: 0.1 is 1, the three 0.5s share
     * (2+3+4)/3 = 3, 0.9 is 5; the positives' ranks sum to 11, U = 11 - 3*4/2 = 5. */
    struct blurd_metrics_sample ties[] = {{0.5, 1}, {0.5, 0}, {0.9, 1}, {0.1, 0}, {0.5, 1}};
    ASSERT_NEAR(blurd_metrics_auc(ties, COUNT(ties)), 5.0 / 6.0, 1e-12);

    /* every score the same: no information, one half */
    struct blurd_metrics_sample flat[] = {{2.0, 1}, {2.0, 0}, {2.0, 0}};
    ASSERT_NEAR(blurd_metrics_auc(flat, COUNT(flat)), 0.5, 1e-12);

    struct blurd_metrics_sample perfect[] = {{3, 1}, {1, 0}, {4, 1}, {2, 0}};
    ASSERT_NEAR(blurd_metrics_auc(perfect, COUNT(perfect)), 1.0, 1e-12);
    struct blurd_metrics_sample inverted[] = {{3, 0}, {1, 1}, {4, 0}, {2, 1}};
    ASSERT_NEAR(blurd_metrics_auc(inverted, COUNT(inverted)), 0.0, 1e-12);
    return 0;
}

TEST_IMPL(metrics_best_threshold_by_hand)
{
    double threshold, balanced;
    /* sorted: 0.1-, 0.35+, 0.4-, 0.8+.  Cuts: all positive 0.5; above 0.1: 0.75; above
     * 0.35: 0.5; above 0.4: 0.75 again (the lower threshold wins); all negative 0.5. */
    struct blurd_metrics_sample plain[] = {{0.1, 0}, {0.4, 0}, {0.35, 1}, {0.8, 1}};
    blurd_metrics_best_threshold(plain, COUNT(plain), &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.225, 1e-12); /* midway between 0.1 and 0.35 */
    ASSERT_NEAR(balanced, 0.75, 1e-12);

    /* ties move together: sorted 0.1-, {0.5+ 0.5+ 0.5-}, 0.9+ (3 positives, 2 negatives).
     * Above 0.1: TPR 1, TNR 1/2 -> 0.75; above the 0.5s: TPR 1/3, TNR 1 -> 2/3. */
    struct blurd_metrics_sample ties[] = {{0.5, 1}, {0.5, 0}, {0.9, 1}, {0.1, 0}, {0.5, 1}};
    blurd_metrics_best_threshold(ties, COUNT(ties), &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.3, 1e-12);
    ASSERT_NEAR(balanced, 0.75, 1e-12);

    struct blurd_metrics_sample perfect[] = {{3, 1}, {1, 0}, {4, 1}, {2, 0}};
    blurd_metrics_best_threshold(perfect, COUNT(perfect), &threshold, &balanced);
    ASSERT_NEAR(threshold, 2.5, 1e-12);
    ASSERT_NEAR(balanced, 1.0, 1e-12);

    /* inverted: no cut beats calling everything one class (0.5); the lowest such
     * threshold, the lowest score (all positive), is returned */
    struct blurd_metrics_sample inverted[] = {{3, 0}, {1, 1}, {4, 0}, {2, 1}};
    blurd_metrics_best_threshold(inverted, COUNT(inverted), &threshold, &balanced);
    ASSERT_NEAR(threshold, 1.0, 1e-12);
    ASSERT_NEAR(balanced, 0.5, 1e-12);

    /* neighbouring doubles: the threshold still separates them under ">=" */
    double low = 1.0, high = nextafter(1.0, 2.0);
    struct blurd_metrics_sample close[] = {{low, 0}, {high, 1}};
    blurd_metrics_best_threshold(close, COUNT(close), &threshold, &balanced);
    ASSERT(threshold > low && threshold <= high);
    ASSERT_NEAR(balanced, 1.0, 0.0);
    return 0;
}

TEST_IMPL(metrics_steady_threshold_prefers_a_broad_good_range)
{
    double threshold, balanced;
    /* negatives 0.1 0.2 0.7, positives 0.4 0.71 0.72 0.73.  Balanced accuracy by threshold
     * t (called blurred at t and above): t <= 0.1: 0.5; to 0.2: 2/3; to 0.4: 5/6, a broad
     * range; to 0.7: 17/24; to 0.71: 7/8, the best cut, 0.01 wide; then 3/4, 5/8, 1/2. */
    struct blurd_metrics_sample set[] = {{0.1, 0},  {0.2, 0},  {0.7, 0}, {0.4, 1},
                                         {0.71, 1}, {0.72, 1}, {0.73, 1}};
    blurd_metrics_best_threshold(set, COUNT(set), &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.705, 1e-12);
    ASSERT_NEAR(balanced, 7.0 / 8.0, 1e-12);

    /* window 0: the best grid threshold, the lowest of the spike's */
    blurd_metrics_steady_threshold(set, COUNT(set), 0.0, 0.05, 0.95, &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.701, 1e-12);
    ASSERT_NEAR(balanced, 7.0 / 8.0, 1e-12);

    /* window 0 across the broad range: 0.201 to 0.400 all give 5/6, and the lowest wins
     * (whatever the rounding of the sums behind the means) */
    blurd_metrics_steady_threshold(set, COUNT(set), 0.0, 0.2, 0.4, &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.201, 1e-12);
    ASSERT_NEAR(balanced, 5.0 / 6.0, 1e-12);

    /* window 0.1: the broad range wins.  Centred on 0.300 the window [0.2, 0.4] holds 0.2
     * (2/3) and 200 thresholds at 5/6; centred on 0.301 it holds those 200 and 0.401
     * (17/24), a better mean; further up more of 17/24 comes in. */
    blurd_metrics_steady_threshold(set, COUNT(set), 0.1, 0.05, 0.95, &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.301, 1e-12);
    ASSERT_NEAR(balanced, 5.0 / 6.0, 1e-12);

    /* kept inside [low, high]: below 0.25 every step up trades a worse neighbour for 5/6 */
    blurd_metrics_steady_threshold(set, COUNT(set), 0.1, 0.05, 0.25, &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.25, 1e-12);
    ASSERT_NEAR(balanced, 5.0 / 6.0, 1e-12);

    /* nothing to fit, or a range or window that makes no sense */
    blurd_metrics_steady_threshold(NULL, 0, 0.1, 0.05, 0.95, &threshold, &balanced);
    ASSERT(isnan(threshold) && isnan(balanced));
    blurd_metrics_steady_threshold(set, COUNT(set), 0.1, 0.9, 0.1, &threshold, &balanced);
    ASSERT(isnan(threshold) && isnan(balanced));
    blurd_metrics_steady_threshold(set, COUNT(set), -0.1, 0.05, 0.95, &threshold, &balanced);
    ASSERT(isnan(threshold) && isnan(balanced));
    blurd_metrics_steady_threshold(set, COUNT(set), 0.1, 0.4001, 0.4009, &threshold, &balanced);
    ASSERT(isnan(threshold) && isnan(balanced)); /* no grid threshold in the range */
    /* out-of-range bounds and an endless window are clamped, not overflowed: every window
     * then spans the whole grid, all rate alike, and the lowest threshold wins */
    blurd_metrics_steady_threshold(set, COUNT(set), INFINITY, -1e300, 1e300, &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.001, 1e-12);
    ASSERT_NEAR(balanced, 0.5, 1e-12);

    /* one class only: its recall, which calling everything blurred makes whole */
    struct blurd_metrics_sample blurred_only[] = {{0.3, 1}, {0.6, 1}};
    blurd_metrics_steady_threshold(blurred_only, 2, 0.1, 0.05, 0.95, &threshold, &balanced);
    ASSERT(threshold <= 0.3);
    ASSERT_NEAR(balanced, 1.0, 0.0);
    return 0;
}

TEST_IMPL(metrics_degenerate_sets)
{
    double threshold, balanced;
    /* one class only: balanced accuracy is that class's recall; AUC undefined */
    struct blurd_metrics_sample positives[] = {{0.2, 1}, {0.7, 1}};
    struct blurd_confusion c = blurd_metrics_confusion(positives, 2, 0.5);
    ASSERT_INT_EQ(c.true_positive, 1);
    ASSERT_INT_EQ(c.false_negative, 1);
    ASSERT_NEAR(blurd_metrics_accuracy(&c), 0.5, 1e-12);
    ASSERT_NEAR(blurd_metrics_balanced_accuracy(&c), 0.5, 1e-12);
    ASSERT(isnan(blurd_metrics_auc(positives, 2)));
    blurd_metrics_best_threshold(positives, 2, &threshold, &balanced);
    ASSERT_NEAR(threshold, 0.2, 0.0); /* all positive */
    ASSERT_NEAR(balanced, 1.0, 0.0);

    struct blurd_metrics_sample negatives[] = {{0.6, 0}, {0.3, 0}};
    blurd_metrics_best_threshold(negatives, 2, &threshold, &balanced);
    ASSERT(threshold > 0.6 && threshold < 0.6 + 1e-12); /* all negative: just above the top */
    ASSERT_NEAR(balanced, 1.0, 0.0);
    c = blurd_metrics_confusion(negatives, 2, threshold);
    ASSERT_INT_EQ(c.true_negative, 2);

    /* a single sample */
    struct blurd_metrics_sample one[] = {{0.9, 1}};
    ASSERT(isnan(blurd_metrics_auc(one, 1)));
    blurd_metrics_best_threshold(one, 1, &threshold, &balanced);
    ASSERT_NEAR(balanced, 1.0, 0.0);

    /* nothing at all */
    struct blurd_confusion empty = {0};
    ASSERT(isnan(blurd_metrics_accuracy(&empty)));
    ASSERT(isnan(blurd_metrics_balanced_accuracy(&empty)));
    ASSERT(isnan(blurd_metrics_auc(NULL, 0)));
    blurd_metrics_best_threshold(NULL, 0, &threshold, &balanced);
    ASSERT(isnan(threshold) && isnan(balanced));
    return 0;
}
