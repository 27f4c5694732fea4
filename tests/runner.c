/* runner.c - runs every test listed in test-list.h, each in its own process and its own
 * temporary directory, and closes with "N passed, N failed".
 *
 *   runner            run all tests
 *   runner NAME...    run the named tests only
 *   runner --list     print the test names
 */
#include "test-list.h"
#include "test.h"

#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DECLARE_TEST(name) int run_test_##name(void);
BLURD_TEST_LIST(DECLARE_TEST)

struct test_entry {
    const char *name;
    int (*run)(void);
};

#define TEST_ENTRY(name) {#name, run_test_##name},
static const struct test_entry tests[] = {BLURD_TEST_LIST(TEST_ENTRY)};
#define TEST_COUNT (sizeof tests / sizeof tests[0])

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs one test in a child process with a fresh temporary directory. Returns true on pass. */
static bool run_one(const struct test_entry *test)
{
    const char *base = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/blurd-test-%s-XXXXXX", base ? base : "/tmp", test->name);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return false;
    }
    fflush(stdout);
    double start = now_seconds();
    pid_t pid = fork();
    if (pid == 0) {
        setenv("BLURD_TEST_TMP", dir, 1);
        int rc = test->run();
        /* exit, not _exit: LeakSanitizer checks for leaks in exit handlers */
        exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    bool passed = false;
    if (pid > 0 && waitpid(pid, &status, 0) == pid)
        passed = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    double elapsed = now_seconds() - start;
    if (passed)
        printf("ok   %-44s %7.2f s\n", test->name, elapsed);
    else if (pid > 0 && WIFSIGNALED(status))
        printf("FAIL %-44s (signal %d)\n", test->name, WTERMSIG(status));
    else
        printf("FAIL %-44s\n", test->name);

    /* Keep a failed test's files for inspection; remove a passed one's. */
    if (passed) {
        char command[8400];
        /* make tests' read-only files removable too */
        snprintf(command, sizeof command, "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", dir, dir);
        if (system(command) != 0)
            fprintf(stderr, "runner: could not remove %s\n", dir);
    } else {
        printf("     files kept in %s\n", dir);
    }
    return passed;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < TEST_COUNT; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    int passed = 0, failed = 0;
    for (int a = 1; a < argc; a++) {
        bool found = false;
        for (size_t i = 0; i < TEST_COUNT; i++)
            if (strcmp(argv[a], tests[i].name) == 0)
                found = true;
        if (!found) {
            fprintf(stderr, "runner: no test named %s (see --list)\n", argv[a]);
            return 2;
        }
    }
    for (size_t i = 0; i < TEST_COUNT; i++) {
        bool selected = argc == 1;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], tests[i].name) == 0)
                selected = true;
        if (!selected)
            continue;
        if (run_one(&tests[i]))
            passed++;
        else
            failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
