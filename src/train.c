/* train.c - the optimizer behind `blurd train`.
 *
 * Expected workload: one Adam step per batch over the default net's 6.8 million
 * parameters: about ten flops each, small beside the 32 GFLOP of a batch of 32 forward
 * and backward; the loop is written so the compiler vectorises it. */
#include "blurd/train.h"

#include "blurd/error.h"

#include <math.h>
#include <stdlib.h>

struct blurd_adam {
    struct blurd_adam_options options;
    size_t count;
    uint64_t steps;
    float *m; /* first moments (owned) */
    float *v; /* second moments (owned) */
};

struct blurd_adam_options blurd_adam_defaults(void)
{
    return (struct blurd_adam_options){
        .learning_rate = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
}

int blurd_adam_create(blurd_adam **out, size_t count, const struct blurd_adam_options *options,
                      char *err)
{
    *out = NULL;
    if (!(options->learning_rate > 0.0f) || !(options->beta1 >= 0.0f && options->beta1 < 1.0f) ||
        !(options->beta2 >= 0.0f && options->beta2 < 1.0f) || !(options->epsilon > 0.0f))
        return blurd_error_set(err, BLURD_EINVAL,
                               "Adam: learning rate %g, betas %g and %g, epsilon %g are not "
                               "usable",
                               (double)options->learning_rate, (double)options->beta1,
                               (double)options->beta2, (double)options->epsilon);
    blurd_adam *adam = calloc(1, sizeof *adam);
    if (adam != NULL) {
        adam->m = calloc(count > 0 ? count : 1, sizeof(float));
        adam->v = calloc(count > 0 ? count : 1, sizeof(float));
    }
    if (adam == NULL || adam->m == NULL || adam->v == NULL) {
        blurd_adam_free(adam);
        return blurd_error_set(err, BLURD_ENOMEM, "Adam: out of memory for %zu parameters", count);
    }
    adam->options = *options;
    adam->count = count;
    *out = adam;
    return 0;
}

void blurd_adam_free(blurd_adam *adam)
{
    if (adam == NULL)
        return;
    free(adam->m);
    free(adam->v);
    free(adam);
}

void blurd_adam_step(blurd_adam *adam, float *restrict parameters, const float *restrict gradients)
{
    adam->steps++;
    const float beta1 = adam->options.beta1, beta2 = adam->options.beta2;
    /* The bias corrections fold into one step size, as in the paper's section 2. */
    double correction1 = 1.0 - pow((double)beta1, (double)adam->steps);
    double correction2 = 1.0 - pow((double)beta2, (double)adam->steps);
    const float step =
        (float)((double)adam->options.learning_rate * sqrt(correction2) / correction1);
    const float epsilon = adam->options.epsilon * (float)sqrt(correction2);
    float *restrict m = adam->m, *restrict v = adam->v;
    for (size_t i = 0; i < adam->count; i++) {
        float g = gradients[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        parameters[i] -= step * m[i] / (sqrtf(v[i]) + epsilon);
    }
}

uint64_t blurd_adam_steps(const blurd_adam *adam)
{
    return adam->steps;
}

void blurd_adam_set_steps(blurd_adam *adam, uint64_t steps)
{
    adam->steps = steps;
}

float *blurd_adam_first_moments(blurd_adam *adam)
{
    return adam->m;
}

float *blurd_adam_second_moments(blurd_adam *adam)
{
    return adam->v;
}

size_t blurd_adam_count(const blurd_adam *adam)
{
    return adam->count;
}
