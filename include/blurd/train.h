/* train.h - training the network (`blurd train`): the optimizer, and the loop built on it
 * and on the net's backward pass: data loading with augmentation and class balancing, the
 * validation split by source, per-epoch metrics, the best model kept, early stopping,
 * checkpoints and resume.
 *
 * Adam (Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015) with bias
 * correction, over the flat parameter block of a net (blurd_net_parameters) and a gradient
 * block laid out the same way.
 */
#ifndef BLURD_TRAIN_H
#define BLURD_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct blurd_adam blurd_adam;

struct blurd_adam_options {
    float learning_rate; /* the paper's alpha; 1e-3 is its suggested default */
    float beta1, beta2;  /* moment decay rates; 0.9 and 0.999 */
    float epsilon;       /* 1e-7 as Keras uses (the paper's 1e-8) */
};

/* The defaults above. */
struct blurd_adam_options blurd_adam_defaults(void);

/* An optimizer for `count` parameters with zeroed moments.  BLURD_EINVAL for options
 * outside 0 < learning_rate, 0 <= beta < 1, epsilon > 0. */
int blurd_adam_create(blurd_adam **out, size_t count, const struct blurd_adam_options *options,
                      char *err);
void blurd_adam_free(blurd_adam *adam); /* NULL is a no-op */

/* One update: parameters -= lr * m_hat / (sqrt(v_hat) + epsilon), after folding
 * `gradients` into the moments.  Both arrays hold the count given at creation. */
void blurd_adam_step(blurd_adam *adam, float *parameters, const float *gradients);

/* Steps taken so far, and the moment arrays (owned by the optimizer), so a checkpoint can
 * save them and a resumed run restore them (blurd_adam_set_steps after writing them). */
uint64_t blurd_adam_steps(const blurd_adam *adam);
void blurd_adam_set_steps(blurd_adam *adam, uint64_t steps);
/* Changes the step size from the next step on (a learning-rate schedule); must be > 0. */
void blurd_adam_set_learning_rate(blurd_adam *adam, float learning_rate);
float *blurd_adam_first_moments(blurd_adam *adam);
float *blurd_adam_second_moments(blurd_adam *adam);
size_t blurd_adam_count(const blurd_adam *adam);

/* ---- the training loop ------------------------------------------------------------ */

#define BLURD_TRAIN_DEFAULT_EPOCHS            30
#define BLURD_TRAIN_DEFAULT_BATCH             32
#define BLURD_TRAIN_MAX_BATCH                 256
#define BLURD_TRAIN_DEFAULT_LR                5e-4f
#define BLURD_TRAIN_DEFAULT_VAL_SPLIT         0.15
#define BLURD_TRAIN_DEFAULT_PATIENCE          6
#define BLURD_TRAIN_DEFAULT_TILES             4
#define BLURD_TRAIN_DEFAULT_OTHER_TILE_WEIGHT 0.25f

struct blurd_train_options {
    const char *data_dir;    /* holds Blurred/ and Undistorted/ (borrowed) */
    const char *output;      /* the best model is saved here whenever it improves (borrowed) */
    const char *checkpoint;  /* NULL: OUTPUT.ckpt, or `resume` when resuming (borrowed) */
    const char *resume;      /* NULL, or a checkpoint to continue from (borrowed) */
    const char *spec;        /* layer spec; NULL: BLURD_DEFAULT_SPEC (borrowed) */
    int input;               /* an enum blurd_input_mode */
    int epochs;              /* at most this many epochs, >= 1; 0 with `resume`: the checkpoint's */
    int batch;               /* 1..BLURD_TRAIN_MAX_BATCH */
    float learning_rate;     /* Adam's peak step size, cosine-decayed over `epochs` */
    float threshold;         /* the model's decision threshold; 0: fitted on validation */
    double val_split;        /* share of the sources held out for validation, [0, 1) */
    int patience;            /* stop after this many epochs without a better validation; 0 never */
    int tiles_per_image;     /* tiles mode: a training image's most textured tiles kept */
    float other_tile_weight; /* tiles mode: the loss weight, in [0, 1], of the tiles an image's
                                score does not rest on (its score rests on its sharpest
                                quarter, weight 1); 1 weighs every tile alike */
    float contrast;          /* [0, 1): each training input's contrast (its values' spread
                                about their mean) scaled by a factor drawn log-uniformly from
                                [1 - contrast, 1]; 0 leaves inputs as decoded */
    int half;                /* non-zero: save the model in F16 */
    uint64_t seed;           /* initial weights, sample order, augmentation, dropout */
    int threads;             /* cores, >= 1 */
    uint64_t max_pixels;     /* as for classify; 0 = the default */
    double max_seconds;      /* stop with a checkpoint once training (counting the runs a
                                checkpoint continues) has taken this long; 0 = no limit */
    uint64_t max_steps; /* stop with a checkpoint after this many steps in this run; 0 = none */
    int progress;       /* -1: when stderr is a terminal; 0 never; 1 always */
    /* Set (from a signal handler) to stop at the next step with a checkpoint; may be NULL. */
    volatile sig_atomic_t *stop_requested;
};

/* The loss weights of a training step's inputs, weighed as classify scores an image: the
 * inputs of one image (a run of equal `owner` entries) rest on their sharpest quarter (the
 * lowest p(blurred), probabilities[2 * b]), which gets weight 1, and the rest get `other`.
 * An image cut by the batch's edge counts as two. */
void blurd_train_tile_weights(int n, const size_t *owner, const float *probabilities, float other,
                              float *weights);

/* Writes a training input, `size` x `size` x 3 bytes, as floats in [0, 1] (to rounding)
 * under one of the square's eight symmetries (bit 2: transpose, bit 0: mirror left-right,
 * bit 1: upside down), with its values' spread about their mean scaled by
 * `contrast_factor` in (0, 1] (1: the bytes / 255 exactly). */
void blurd_train_augment(const uint8_t *in, int size, unsigned symmetry, float contrast_factor,
                         float *out);

/* Fills `options` with the defaults above (input tiles, seed 1, one thread). */
void blurd_train_defaults(struct blurd_train_options *options);

enum blurd_train_end {
    BLURD_TRAIN_FINISHED,     /* every epoch ran */
    BLURD_TRAIN_EARLY_STOP,   /* `patience` epochs without improvement */
    BLURD_TRAIN_BUDGET_SPENT, /* max_seconds or max_steps reached; the checkpoint resumes it */
    BLURD_TRAIN_INTERRUPTED,  /* stop_requested; the checkpoint resumes it */
};

struct blurd_train_summary {
    size_t training[2], validation[2]; /* readable images by class (blurred, clear) */
    size_t skipped;                    /* unreadable or corrupt images (each warned) */
    int epochs;                        /* epochs completed, counting resumed ones */
    int best_epoch;                    /* 1-based; 0 if none completed */
    double best_balanced_accuracy;     /* validation, at the model's threshold; NaN if none */
    double best_validation_loss;       /* NaN if no validation */
    double first_training_loss;        /* of the first epoch this run completed */
    double last_training_loss, last_training_accuracy;
    double seconds; /* training time, counting resumed runs */
    enum blurd_train_end end;
};

/* Trains a network on options->data_dir and saves the best model (by validation balanced
 * accuracy, ties going to the lower validation loss; by training loss when validation
 * lacks a class) to options->output, with metadata recording the data, settings and
 * validation metrics, and as its threshold options->threshold or, when that is 0, the one
 * with the best balanced accuracy on the validation images (within 0.05..0.95).  The checkpoint
 * (current weights, Adam's moments, the best weights and the loop's position) is written after
 * every epoch and when stopped; resuming continues from the step where it stopped, with the
 * checkpoint's settings (spec, input, batch, seed, split, tiles, tile weight, contrast,
 * learning rate, and epochs unless `options` gives them); patience and the budgets come from
 * `options` (a different `epochs` reshapes the rest of the learning-rate schedule).  A fresh run
 * refuses an output or checkpoint that exists (BLURD_EINVAL, writing nothing); a resumed run
 * refuses an output that exists but is not its checkpoint's model, and warns when DATA is not the
 * checkpoint's.  At the end the output holds the best weights.  A line per epoch goes to stderr,
 * and a progress line when enabled.
 *
 * Returns 0 when training ended (see summary->end; the model and checkpoint are saved), or,
 * with `err` saying why: blurd_dataset_read's errors, BLURD_EINVAL (bad options; a class
 * with no readable image; training diverged), the model errors (a bad checkpoint or spec),
 * write errors for the model or checkpoint, BLURD_ENOMEM. */
int blurd_train_run(const struct blurd_train_options *options, struct blurd_train_summary *summary,
                    char *err);

#endif
