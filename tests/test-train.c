/* test-train.c - the optimizer against a plain double-precision transcription of the
 * paper's Algorithm 1, and on a problem whose minimum is known. */
#include "blurd/error.h"
#include "blurd/train.h"
#include "test.h"

TEST_IMPL(adam_matches_the_papers_algorithm)
{
    enum { N = 37, STEPS = 25 };
    struct blurd_adam_options options = {
        .learning_rate = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
    char err[BLURD_ERR_LEN];
    blurd_adam *adam;
    ASSERT_INT_EQ(blurd_adam_create(&adam, N, &options, err), 0);
    float params[N];
    double ref[N], m[N] = {0}, v[N] = {0};
    uint64_t state = 9;
    for (int i = 0; i < N; i++)
        ref[i] = params[i] = test_random_uniform(&state, -1.0f, 1.0f);
    for (int t = 1; t <= STEPS; t++) {
        float grads[N];
        for (int i = 0; i < N; i++)
            grads[i] = test_random_uniform(&state, -2.0f, 2.0f);
        blurd_adam_step(adam, params, grads);
        for (int i = 0; i < N; i++) {
            double g = grads[i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            double m_hat = m[i] / (1.0 - pow(0.9, t)), v_hat = v[i] / (1.0 - pow(0.999, t));
            ref[i] -= 0.01 * m_hat / (sqrt(v_hat) + 1e-7);
        }
    }
    for (int i = 0; i < N; i++)
        ASSERT_NEAR(params[i], ref[i], 1e-5);
    ASSERT_INT_EQ(blurd_adam_steps(adam), STEPS);
    blurd_adam_free(adam);
    return 0;
}

TEST_IMPL(adam_first_step_and_convergence)
{
    char err[BLURD_ERR_LEN];
    struct blurd_adam_options options = blurd_adam_defaults();
    options.learning_rate = 0.05f;
    blurd_adam *adam;
    ASSERT_INT_EQ(blurd_adam_create(&adam, 3, &options, err), 0);
    /* the first step moves every parameter by the learning rate against its gradient's sign */
    float params[3] = {1.0f, -2.0f, 3.0f};
    const float grads[3] = {0.5f, -1e-3f, 40.0f};
    blurd_adam_step(adam, params, grads);
    ASSERT_NEAR(params[0], 0.95, 1e-5);
    ASSERT_NEAR(params[1], -1.95, 1e-4);
    ASSERT_NEAR(params[2], 2.95, 1e-5);
    /* f(x) = sum (x - c)^2 is minimised at c */
    const float target[3] = {0.25f, -0.5f, 1.5f};
    for (int t = 0; t < 2000; t++) {
        float g[3];
        for (int i = 0; i < 3; i++)
            g[i] = 2.0f * (params[i] - target[i]);
        blurd_adam_step(adam, params, g);
    }
    for (int i = 0; i < 3; i++)
        ASSERT_NEAR(params[i], target[i], 1e-2);
    blurd_adam_free(adam);

    options.beta1 = 1.0f;
    ASSERT_INT_EQ(blurd_adam_create(&adam, 3, &options, err), BLURD_EINVAL);
    ASSERT(adam == NULL);
    return 0;
}
