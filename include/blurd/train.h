/* train.h - training the network: the optimizer now; the training loop (`blurd train`:
 * batches, augmentation, validation split, early stopping, checkpoints) is built on it and
 * on the net's backward pass.
 *
 * Adam (Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015) with bias
 * correction, over the flat parameter block of a net (blurd_net_parameters) and a gradient
 * block laid out the same way.
 */
#ifndef BLURD_TRAIN_H
#define BLURD_TRAIN_H

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
float *blurd_adam_first_moments(blurd_adam *adam);
float *blurd_adam_second_moments(blurd_adam *adam);
size_t blurd_adam_count(const blurd_adam *adam);

#endif
