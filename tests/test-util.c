/* test-util.c - temporary directories, files and subprocesses for the tests. */
#include "test.h"

#include "blurd/error.h"
#include "blurd/model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[4096];

/* Everything the helpers below hand out stays reachable from here until the test process
 * exits, so tests need not free it and LeakSanitizer does not count it as leaked. */
static void **kept;
static size_t kept_count, kept_capacity;

static void *keep(void *p)
{
    if (p == NULL)
        TEST_FAIL("out of memory");
    if (kept_count == kept_capacity) {
        kept_capacity = kept_capacity ? 2 * kept_capacity : 256;
        void **grown = realloc(kept, kept_capacity * sizeof *kept);
        if (grown == NULL)
            TEST_FAIL("out of memory");
        kept = grown;
    }
    kept[kept_count++] = p;
    return p;
}

const char *test_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        const char *base = getenv("BLURD_TEST_TMP");
        if (base == NULL)
            TEST_FAIL("BLURD_TEST_TMP is not set: run tests through tests/runner");
        snprintf(tmpdir, sizeof tmpdir, "%s", base);
    }
    return tmpdir;
}

char *test_path(const char *name)
{
    size_t n = strlen(test_tmpdir()) + strlen(name) + 2;
    char *path = keep(malloc(n));
    snprintf(path, n, "%s/%s", test_tmpdir(), name);
    return path;
}

void test_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        TEST_FAIL("cannot create %s: %s", path, strerror(errno));
    if (n > 0 && fwrite(data, 1, n, f) != n)
        TEST_FAIL("cannot write %s: %s", path, strerror(errno));
    if (fclose(f) != 0)
        TEST_FAIL("cannot close %s: %s", path, strerror(errno));
}

void test_date_back(const char *path, long ms)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        TEST_FAIL("clock_gettime: %s", strerror(errno));
    int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - (int64_t)ms * 1000000;
    struct timespec times[2] = {{(time_t)(ns / 1000000000), (long)(ns % 1000000000)}};
    times[1] = times[0];
    if (utimensat(AT_FDCWD, path, times, 0) != 0)
        TEST_FAIL("cannot date %s back: %s", path, strerror(errno));
}

int test_count_lines(const char *text)
{
    int n = 0;
    for (const char *c = text; *c != '\0'; c++)
        n += *c == '\n';
    return n;
}

char *test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        TEST_FAIL("cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        TEST_FAIL("out of memory");
    for (;;) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        cap *= 2;
        char *grown = realloc(buf, cap);
        if (grown == NULL)
            TEST_FAIL("out of memory");
        buf = grown;
    }
    fclose(f);
    keep(buf);
    buf[len] = '\0';
    if (n != NULL)
        *n = len;
    return buf;
}

const char *test_source_dir(void)
{
    const char *dir = getenv("BLURD_SOURCE");
    return dir != NULL ? dir : ".";
}

const char *test_blurd_binary(void)
{
    const char *bin = getenv("BLURD");
    if (bin == NULL)
        TEST_FAIL("BLURD (the binary under test) is not set: run tests through make check");
    return bin;
}

int test_run(const char *command, char **out, char **err)
{
    char *out_path = test_path(".run-stdout");
    char *err_path = test_path(".run-stderr");
    size_t n = strlen(command) + strlen(out_path) + strlen(err_path) + 32;
    char *full = malloc(n);
    if (full == NULL)
        TEST_FAIL("out of memory");
    snprintf(full, n, "(%s) >'%s' 2>'%s' </dev/null", command, out_path, err_path);
    int status = system(full);
    free(full);
    if (out != NULL)
        *out = test_read_file(out_path, NULL);
    if (err != NULL)
        *err = test_read_file(err_path, NULL);
    if (status == -1 || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

uint64_t test_random_next(uint64_t *state)
{
    /* splitmix64: small, fast, and good enough for test data */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float test_random_uniform(uint64_t *state, float low, float high)
{
    double unit = (double)(test_random_next(state) >> 11) / 9007199254740992.0;
    return low + (float)unit * (high - low);
}

double test_normalised_error(const float *a, const float *b, size_t n)
{
    double scale = 1e-6, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)b[i]) > scale)
            scale = fabs((double)b[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) /* also catches NaN */
            worst = isnan(d) ? (double)INFINITY : d;
    }
    return worst / scale;
}

char *test_small_model(const char *name, uint64_t seed)
{
    return test_model_with_spec(name, TEST_SMALL_SPEC, seed);
}

char *test_model_with_spec(const char *name, const char *spec, uint64_t seed)
{
    char *path = test_path(name);
    char err[BLURD_ERR_LEN];
    blurd_model *model;
    if (blurd_model_create(&model, spec, seed, err) != 0 ||
        blurd_model_save(model, path, 0, err) != 0)
        TEST_FAIL("cannot make a test model: %s", err);
    blurd_model_free(model);
    return path;
}

int test_blurd(const char *args, char **out, char **err)
{
    size_t n = strlen(args) + strlen(test_tmpdir()) + strlen(test_blurd_binary()) + 64;
    char *command = malloc(n);
    if (command == NULL)
        TEST_FAIL("out of memory");
    snprintf(command, n, "cd '%s' && BLURD_MODEL= '%s' %s", test_tmpdir(), test_blurd_binary(),
             args);
    int status = test_run(command, out, err);
    free(command);
    return status;
}
