/* test.h - assertions and helpers shared by blurd's tests.
 *
 * Each test is `TEST_IMPL(name) { ...; return 0; }`, listed once in tests/test-list.h, and
 * runs in its own process (tests/runner.c forks), so a failed ASSERT simply exits that
 * process after printing file:line and the failed expression.
 */
#ifndef BLURD_TEST_H
#define BLURD_TEST_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TEST_IMPL(name)        \
    int run_test_##name(void); \
    int run_test_##name(void)

#define TEST_FAIL(...)                                  \
    do {                                                \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                   \
        fprintf(stderr, "\n");                          \
        exit(1);                                        \
    } while (0)

#define ASSERT(expr)                                  \
    do {                                              \
        if (!(expr))                                  \
            TEST_FAIL("assertion failed: %s", #expr); \
    } while (0)

#define ASSERT_INT_EQ(a, b)                                                    \
    do {                                                                       \
        long long assert_a_ = (long long)(a), assert_b_ = (long long)(b);      \
        if (assert_a_ != assert_b_)                                            \
            TEST_FAIL("%s == %s: %lld != %lld", #a, #b, assert_a_, assert_b_); \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                   \
    do {                                                                                      \
        const char *assert_a_ = (a), *assert_b_ = (b);                                        \
        if (assert_a_ == NULL || assert_b_ == NULL || strcmp(assert_a_, assert_b_) != 0)      \
            TEST_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, assert_a_ ? assert_a_ : "(null)", \
                      assert_b_ ? assert_b_ : "(null)");                                      \
    } while (0)

#define ASSERT_CONTAINS(haystack, needle)                                         \
    do {                                                                          \
        const char *assert_h_ = (haystack), *assert_n_ = (needle);                \
        if (assert_h_ == NULL || strstr(assert_h_, assert_n_) == NULL)            \
            TEST_FAIL("%s does not contain \"%s\": \"%s\"", #haystack, assert_n_, \
                      assert_h_ ? assert_h_ : "(null)");                          \
    } while (0)

#define ASSERT_NEAR(a, b, tolerance)                                                         \
    do {                                                                                     \
        double assert_a_ = (double)(a), assert_b_ = (double)(b);                             \
        if (!(fabs(assert_a_ - assert_b_) <= (double)(tolerance)))                           \
            TEST_FAIL("%s ~= %s: %.9g vs %.9g (tolerance %g)", #a, #b, assert_a_, assert_b_, \
                      (double)(tolerance));                                                  \
    } while (0)

/* A fresh directory under $TMPDIR (or /tmp), removed by the runner after the test. */
const char *test_tmpdir(void);

/* Joins test_tmpdir() and `name`.  Like every buffer these helpers return, the string lives
 * until the test process ends; tests may free it, but need not. */
char *test_path(const char *name);

/* Writes `n` bytes to `path`; fails the test on error. */
void test_write_file(const char *path, const void *data, size_t n);

/* Sets the access and modification times of `path` to `ms` milliseconds before now. */
void test_date_back(const char *path, long ms);

/* Reads a whole file into a NUL-terminated malloc'd buffer; sets *n if not NULL. */
char *test_read_file(const char *path, size_t *n);

/* The number of newline characters in `text`. */
int test_count_lines(const char *text);

/* The source tree (BLURD_SOURCE, set by `make check`) and the binary under test (BLURD). */
const char *test_source_dir(void);
const char *test_blurd_binary(void);

/* Runs `command` through /bin/sh, capturing stdout and stderr (each malloc'd, may be NULL
 * pointers when not wanted), and returns its exit status (or -1 if it did not exit). */
int test_run(const char *command, char **out, char **err);

/* A small network on the default 200x200x3 input, He-initialised from `seed` and saved as
 * `name` in the test's folder: fast to run, while everything around the network (decode,
 * tiles, output, database) is exercised for real.  Returns the path. */
#define TEST_SMALL_SPEC                                                     \
    "input 200 200 3; conv 4 3 relu; maxpool 2; conv 4 3 relu; maxpool 2; " \
    "flatten; dense 8 relu; dense 2 softmax"
char *test_small_model(const char *name, uint64_t seed);
/* The same with the layer spec `spec`, for a test of another kind of network. */
char *test_model_with_spec(const char *name, const char *spec, uint64_t seed);

/* Runs the blurd binary with `args` in the test's folder, with no default model in reach
 * (BLURD_MODEL empty); as test_run. */
int test_blurd(const char *args, char **out, char **err);

/* Deterministic pseudo-random numbers for test data. */
uint64_t test_random_next(uint64_t *state);
float test_random_uniform(uint64_t *state, float low, float high);

/* Largest |a-b| / max(1e-6, max|b|) over n values: the normalised error between an
 * optimised result `a` and its reference `b`. */
double test_normalised_error(const float *a, const float *b, size_t n);

#endif
