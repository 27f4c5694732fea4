/* test-daemon.c - end-to-end runs of the real `blurd daemon` process: files arriving in
 * every way a photo arrives, bursts, restarts, kill -9 in the middle of sorting, signals,
 * and bad configurations, checked through the real SQLite database and the files on disk.
 * Waits are polls with generous limits, never timing assertions. */
#include "blurd/error.h"
#include "blurd/model.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <signal.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Generous: a loaded CI machine may be slow, and a poll ends as soon as it can. */
#define WAIT_SECONDS 120.0

struct daemon_process {
    pid_t pid;
    char *log;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pause_seconds(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

static char *make_dir(const char *name)
{
    char *path = test_path(name);
    ASSERT(mkdir(path, 0755) == 0);
    return path;
}

/* A small PNG's bytes, made once with the vips tool; `seed` varies its content. */
static char *photo_bytes(int seed, size_t *n)
{
    char *path = test_path(".photo.png"), command[4096];
    snprintf(command, sizeof command, "vips gaussnoise '%s' %d %d --mean %d --sigma 30", path,
             64 + seed % 7, 64 + seed % 5, 60 + seed % 120);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    char *bytes = test_read_file(path, n);
    unlink(path);
    return bytes;
}

/* Writes a file the way an uploader does: create, write, close. */
static void put_file(const char *path, const char *bytes, size_t n)
{
    test_write_file(path, bytes, n);
}

/* The same, dated an hour back: a photo that arrived long ago, which a start-up scan takes
 * at once (one modified within the settle time, plus 2 s, waits for it first). */
static void put_old_file(const char *path, const char *bytes, size_t n)
{
    put_file(path, bytes, n);
    test_date_back(path, 3600 * 1000L);
}

/* The daemon a test started last; killed at exit if the test failed with it running, so
 * no daemon outlives its test. */
static pid_t running_daemon;

static void kill_running_daemon(void)
{
    if (running_daemon > 0) {
        kill(running_daemon, SIGKILL);
        waitpid(running_daemon, NULL, 0);
    }
}

/* Starts `blurd daemon ARGS`, its stderr going to a log; waits until it says it watches. */
static struct daemon_process start_daemon(const char *args)
{
    struct daemon_process d = {0, test_path("daemon.log")};
    char command[8192];
    snprintf(command, sizeof command, "exec '%s' daemon %s 2>>'%s' >/dev/null </dev/null",
             test_blurd_binary(), args, d.log);
    d.pid = fork();
    ASSERT(d.pid >= 0);
    if (d.pid == 0) {
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    if (running_daemon == 0)
        atexit(kill_running_daemon);
    running_daemon = d.pid;
    return d;
}

/* How many times the daemon has logged `text` so far. */
static int log_count(const struct daemon_process *d, const char *text)
{
    if (access(d->log, F_OK) != 0)
        return 0;
    int count = 0;
    for (const char *at = test_read_file(d->log, NULL); (at = strstr(at, text)) != NULL;
         at += strlen(text))
        count++;
    return count;
}

static int log_contains(const struct daemon_process *d, const char *text)
{
    return log_count(d, text) > 0;
}

/* Polls until the daemon has logged `text`; fails the test if it exits first. */
static void wait_for_log(const struct daemon_process *d, const char *text)
{
    double deadline = now() + WAIT_SECONDS;
    while (!log_contains(d, text)) {
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid)
            TEST_FAIL("daemon exited (status %d) before logging \"%s\": %s", status, text,
                      test_read_file(d->log, NULL));
        if (now() > deadline)
            TEST_FAIL("daemon did not log \"%s\" in time: %s", text, test_read_file(d->log, NULL));
        pause_seconds(0.05);
    }
}

static void wait_ready(const struct daemon_process *d)
{
    wait_for_log(d, "watching ");
}

/* SIGTERM, then waits for the exit and returns its status (fails after WAIT_SECONDS). */
static int stop_daemon(struct daemon_process *d)
{
    kill(d->pid, SIGTERM);
    double deadline = now() + WAIT_SECONDS;
    int status;
    while (waitpid(d->pid, &status, WNOHANG) != d->pid) {
        if (now() > deadline) {
            kill(d->pid, SIGKILL);
            TEST_FAIL("daemon did not stop after SIGTERM");
        }
        pause_seconds(0.05);
    }
    d->pid = 0;
    running_daemon = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* One integer from a query on the database, read the way `sqlite3` users read it. */
static long long query_number(const char *db_path, const char *sql)
{
    sqlite3 *db;
    long long value = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK) {
        if (sqlite3_step(stmt) == SQLITE_ROW)
            value = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    sqlite3_close(db);
    return value;
}

/* Polls until `sql` yields `expected`; fails with the last value seen otherwise. */
static void wait_for_number(const struct daemon_process *d, const char *db, const char *sql,
                            long long expected)
{
    double deadline = now() + WAIT_SECONDS;
    long long value;
    while ((value = query_number(db, sql)) != expected) {
        if (now() > deadline)
            TEST_FAIL("\"%s\" is %lld, expected %lld; daemon log: %s", sql, value, expected,
                      d != NULL ? test_read_file(d->log, NULL) : "");
        pause_seconds(0.1);
    }
}

/* A one-worker daemon configuration watching INBOX, written to CONFIG; its text stays in
 * TEXT so a test can add to it. */
static void write_config(const char *config, char *text, size_t size, const char *inbox,
                         const char *model, const char *db, const char *log_level)
{
    snprintf(text, size,
             "[watch]\nfolder = %s\nsettle = 0.3\n[model]\npath = %s\n[daemon]\ndatabase = "
             "%s\nworkers = 1\nlog_level = %s\n",
             inbox, model, db, log_level);
    test_write_file(config, text, strlen(text));
}

/* Starts `blurd daemon -c CONFIG` and waits until it watches. */
static struct daemon_process start_daemon_ready_with(const char *config)
{
    char args[4096];
    snprintf(args, sizeof args, "-c '%s'", config);
    struct daemon_process d = start_daemon(args);
    wait_ready(&d);
    return d;
}

/* Puts a photo called NAME into INBOX and waits for its row with that verdict. */
static void put_and_expect(const struct daemon_process *d, const char *db, const char *inbox,
                           const char *name, const char *bytes, size_t n, const char *verdict)
{
    char path[4096], sql[4096];
    snprintf(path, sizeof path, "%s/%s", inbox, name);
    put_file(path, bytes, n);
    snprintf(sql, sizeof sql,
             "select count(*) from images where path like '%%/%s' and verdict = '%s'", name,
             verdict);
    wait_for_number(d, db, sql, 1);
}

/* The common daemon arguments; the result lives until the next call. */
static const char *daemon_args(const char *model, const char *inbox, const char *db,
                               const char *more)
{
    static char args[8192];
    snprintf(args, sizeof args,
             "--model '%s' --watch '%s' --db '%s' --settle 0.3 --workers 2 -v %s", model, inbox, db,
             more);
    return args;
}

TEST_IMPL(daemon_judges_copies_moves_and_renamed_uploads)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *outside = make_dir("outside");
    char *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(1, &n);
    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);

    char path[4096], final_path[4096];
    snprintf(path, sizeof path, "%s/copied.png", inbox);
    put_file(path, bytes, n);
    /* mv from outside the tree */
    snprintf(path, sizeof path, "%s/moved.png", outside);
    put_file(path, bytes, n);
    snprintf(final_path, sizeof final_path, "%s/moved.png", inbox);
    ASSERT(rename(path, final_path) == 0);
    /* a browser-style upload: written under a temporary name, then renamed */
    snprintf(path, sizeof path, "%s/upload.png.part", inbox);
    put_file(path, bytes, n);
    pause_seconds(0.5);
    snprintf(final_path, sizeof final_path, "%s/upload.png", inbox);
    ASSERT(rename(path, final_path) == 0);

    wait_for_number(&d, db, "select count(*) from images where verdict is not null", 3);
    pause_seconds(1.0); /* anything reported twice would show up now */
    ASSERT_INT_EQ(query_number(db, "select count(*) from images"), 3);
    ASSERT_INT_EQ(query_number(db, "select count(*) from images where path like '%.part'"), 0);
    ASSERT_INT_EQ(query_number(db, "select count(*) from images where moved_to is not null"), 0);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    ASSERT(log_contains(&d, "stopped: 3 judged"));
    return 0;
}

TEST_IMPL(daemon_scores_a_global_average_pooling_model_as_classify_does)
{
    /* A network of another layout than the default one (globalavgpool in place of flatten)
     * is loaded by the daemon from its file and judges a photo with the same score as
     * `blurd classify` gives it. */
    char *model = test_model_with_spec("pooled.safetensors",
                                       "input 200 200 3; conv 4 3 relu; maxpool 2; conv 6 3 relu; "
                                       "maxpool 2; globalavgpool; dense 8 relu; dense 2 softmax",
                                       13);
    char *inbox = make_dir("inbox"), *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(3, &n);
    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);
    char path[4096];
    snprintf(path, sizeof path, "%s/pooled.png", inbox);
    put_file(path, bytes, n);
    wait_for_number(&d, db, "select count(*) from images where verdict is not null", 1);
    ASSERT_INT_EQ(stop_daemon(&d), 0);

    char args[8192], *out, *err;
    snprintf(args, sizeof args, "classify -m '%s' -f csv -q '%s'", model, path);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 0);
    /* path,verdict,p_blurred,...: the third field of the one result line */
    const char *line = strchr(out, '\n');
    ASSERT(line != NULL);
    const char *field = strchr(line + 1, ',');
    ASSERT(field != NULL && (field = strchr(field + 1, ',')) != NULL);
    double p_classify = strtod(field + 1, NULL);
    ASSERT(p_classify > 0.0 && p_classify < 1.0);
    /* classify prints six decimals */
    char sql[512];
    snprintf(sql, sizeof sql,
             "select count(*) from images where path like '%%/pooled.png' and "
             "abs(p_blurred - %.6f) <= 1e-6",
             p_classify);
    ASSERT_INT_EQ(query_number(db, sql), 1);
    free(bytes);
    return 0;
}

TEST_IMPL(daemon_slow_writer_is_judged_once_after_close)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(2, &n);
    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);
    /* the start-up scan reports what it finds at once, so a file it met half written would
     * be judged then: this test is of the events, so the file comes after the scan */
    wait_for_log(&d, "scan finished");

    char path[4096];
    snprintf(path, sizeof path, "%s/slow.png", inbox);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT(fd >= 0);
    /* 4 chunks over 2 seconds, the file open all the while */
    size_t chunk = (n + 3) / 4;
    for (size_t written = 0; written < n; written += chunk) {
        size_t part = n - written < chunk ? n - written : chunk;
        ASSERT(write(fd, bytes + written, part) == (ssize_t)part);
        pause_seconds(0.5);
        ASSERT_INT_EQ(query_number(db, "select count(*) from images"), 0);
    }
    ASSERT(close(fd) == 0);
    wait_for_number(&d, db, "select count(*) from images where verdict is not null", 1);
    pause_seconds(1.0);
    ASSERT_INT_EQ(query_number(db, "select count(*) from images"), 1);
    char sql[256];
    snprintf(sql, sizeof sql, "select size from images");
    ASSERT_INT_EQ(query_number(db, sql), (long long)n);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    return 0;
}

TEST_IMPL(daemon_file_half_written_at_start_up_waits_for_its_close)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(3, &n);
    char path[4096];
    snprintf(path, sizeof path, "%s/early.png", inbox);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT(fd >= 0);
    /* the file is being written while the daemon starts and its start-up scan meets it:
     * its first part is rewritten every 0.2 s, well inside the 2 s settle time, until the
     * scan has finished without taking it; then the rest comes in parts as often */
    size_t chunk = (n + 9) / 10, written = chunk;
    ASSERT(write(fd, bytes, chunk) == (ssize_t)chunk);
    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, "--settle 2"));
    double deadline = now() + WAIT_SECONDS;
    while (!log_contains(&d, "scan finished")) {
        if (now() > deadline)
            TEST_FAIL("daemon did not finish its start-up scan in time");
        pause_seconds(0.2);
        ASSERT(pwrite(fd, bytes, chunk, 0) == (ssize_t)chunk);
    }
    ASSERT(log_contains(&d, "scan finished: 0 files waiting, 1 recently modified"));
    while (written < n) {
        pause_seconds(0.2);
        size_t part = n - written < chunk ? n - written : chunk;
        ASSERT(write(fd, bytes + written, part) == (ssize_t)part);
        written += part;
        ASSERT_INT_EQ(query_number(db, "select count(*) from images"), 0);
    }
    ASSERT(close(fd) == 0);
    wait_for_number(&d, db, "select count(*) from images where verdict is not null", 1);
    ASSERT_INT_EQ(query_number(db, "select count(*) from images"), 1);
    ASSERT_INT_EQ(query_number(db, "select size from images"), (long long)n);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    free(bytes);
    return 0;
}

TEST_IMPL(daemon_burst_of_1000_files_and_nested_folders)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(3, &n);
    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);

    char path[4096];
    for (int i = 0; i < 1000; i++) {
        snprintf(path, sizeof path, "%s/burst-%04d.png", inbox, i);
        put_file(path, bytes, n);
    }
    /* a new nested folder with files already in it before any watch could exist */
    snprintf(path, sizeof path,
             "mkdir -p '%s/2026/11/card' && for i in 1 2 3 4 5; do "
             "cp '%s/burst-0000.png' '%s/2026/11/card/nested-'$i'.png'; done",
             inbox, inbox, inbox);
    ASSERT_INT_EQ(test_run(path, NULL, NULL), 0);

    /* sqlite3 reads while the daemon writes */
    for (int i = 0; i < 5; i++) {
        char *out;
        snprintf(path, sizeof path, "sqlite3 '%s' 'select count(*) from images'", db);
        ASSERT_INT_EQ(test_run(path, &out, NULL), 0);
        pause_seconds(0.2);
    }
    wait_for_number(&d, db, "select count(*) from images where verdict is not null", 1005);
    ASSERT_INT_EQ(query_number(db, "select count(*) from images where path like '%/card/nested-%'"),
                  5);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    return 0;
}

TEST_IMPL(daemon_catches_up_after_restart_and_skips_what_it_has)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(4, &n);
    char path[4096];
    snprintf(path, sizeof path, "%s/before.png", inbox);
    put_old_file(path, bytes, n); /* else the restart's scan may meet it still settling */

    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);
    wait_for_number(&d, db, "select count(*) from images", 1);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    long long first_id = query_number(db, "select id from images where path like '%before.png'");

    /* arrives while the daemon is down */
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/while-down-%d.png", inbox, i);
        put_file(path, bytes, n);
    }
    unlink(d.log);
    d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);
    wait_for_number(&d, db, "select count(*) from images", 4);
    wait_for_log(&d, "scan finished");
    ASSERT(log_contains(&d, "1 already judged and unchanged"));
    /* the file judged before was not judged again */
    ASSERT_INT_EQ(query_number(db, "select id from images where path like '%before.png'"),
                  first_id);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    ASSERT(log_contains(&d, "stopped: 3 judged"));
    return 0;
}

/* sha256 of every regular file under `dir`, sorted, joined: the multiset of contents. */
static char *contents_under(const char *dir)
{
    char command[4096];
    snprintf(command, sizeof command,
             "find '%s' -type f -name '*.png' -exec sha256sum {} + | cut -d' ' -f1 | sort", dir);
    char *out;
    ASSERT_INT_EQ(test_run(command, &out, NULL), 0);
    return out;
}

TEST_IMPL(daemon_kill_9_while_sorting_loses_and_duplicates_nothing)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    const int count = 150;
    char path[4096];
    for (int i = 0; i < count; i++) {
        size_t n;
        char *bytes = photo_bytes(100 + i, &n);
        snprintf(path, sizeof path, "%s/photo-%03d.png", inbox, i);
        put_file(path, bytes, n);
    }
    /* two files already sitting in the destinations under names that will collide */
    snprintf(path, sizeof path,
             "mkdir -p '%s/Blurred' '%s/Undistorted' && "
             "cp '%s/photo-000.png' '%s/Blurred/photo-001.png' && "
             "cp '%s/photo-000.png' '%s/Undistorted/photo-001.png'",
             inbox, inbox, inbox, inbox, inbox, inbox);
    ASSERT_INT_EQ(test_run(path, NULL, NULL), 0);
    char *before = contents_under(inbox);

    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, "--move"));
    wait_ready(&d);
    /* kill it for real once it is partway through */
    double deadline = now() + WAIT_SECONDS;
    while (query_number(db, "select count(*) from images where moved_to is not null") < count / 3) {
        ASSERT(now() < deadline);
        pause_seconds(0.02);
    }
    kill(d.pid, SIGKILL);
    waitpid(d.pid, NULL, 0);
    running_daemon = -1;

    d = start_daemon(daemon_args(model, inbox, db, "--move"));
    wait_ready(&d);
    wait_for_number(&d, db, "select count(*) from images where moved_to is not null", count);
    ASSERT_INT_EQ(stop_daemon(&d), 0);

    /* every photo once, in a destination; nothing lost, nothing doubled, nothing overwritten */
    char *after = contents_under(inbox);
    ASSERT_STR_EQ(after, before);
    snprintf(path, sizeof path, "find '%s' -maxdepth 1 -name '*.png' | wc -l", inbox);
    char *left;
    ASSERT_INT_EQ(test_run(path, &left, NULL), 0);
    ASSERT_STR_EQ(left, "0\n");
    ASSERT_INT_EQ(query_number(db, "select count(*) from images"), count);
    ASSERT_INT_EQ(query_number(db, "select count(distinct moved_to) from images"), count);
    ASSERT_INT_EQ(query_number(db, "select count(*) from images where "
                                   "(verdict = 'blurred' and moved_to not like '%/Blurred/%') or "
                                   "(verdict = 'clear' and moved_to not like '%/Undistorted/%')"),
                  0);
    return 0;
}

TEST_IMPL(daemon_reloads_on_sighup_and_keeps_working)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    char *config = test_path("blurd.conf");
    char text[4096];
    write_config(config, text, sizeof text, inbox, model, db, "info");
    size_t n;
    char *bytes = photo_bytes(5, &n);
    struct daemon_process d = start_daemon_ready_with(config);
    char path[4096];
    snprintf(path, sizeof path, "%s/one.png", inbox);
    put_file(path, bytes, n);
    wait_for_number(&d, db, "select count(*) from images", 1);

    /* a threshold every image clears: all later verdicts are 'blurred' */
    snprintf(text + strlen(text), sizeof text - strlen(text), "[model]\nthreshold = 0.000001\n");
    test_write_file(config, text, strlen(text));
    kill(d.pid, SIGHUP);
    wait_for_log(&d, "reloaded");
    put_and_expect(&d, db, inbox, "two.png", bytes, n, "blurred");

    /* each reload's scan counts its own files judged and unchanged, not the run's: once
     * both photos are past the settle margin (0.3 s + 2 s), a second reload finds two */
    pause_seconds(2.5);
    kill(d.pid, SIGHUP);
    wait_for_log(&d, "2 already judged and unchanged");
    ASSERT(!log_contains(&d, "3 already judged"));

    /* a broken configuration is refused and the running one kept */
    test_write_file(config, "[watch]\nfrobnicate = 1\n", 23);
    kill(d.pid, SIGHUP);
    wait_for_log(&d, "keeping the running configuration");
    snprintf(path, sizeof path, "%s/three.png", inbox);
    put_file(path, bytes, n);
    wait_for_number(&d, db, "select count(*) from images", 3);

    /* so is a valid configuration whose model file is corrupt (cut short) */
    size_t model_size;
    char *model_bytes = test_read_file(model, &model_size);
    char *cut = test_path("cut.safetensors");
    test_write_file(cut, model_bytes, model_size / 2);
    write_config(config, text, sizeof text, inbox, cut, db, "info");
    kill(d.pid, SIGHUP);
    wait_for_log(&d, "cut.safetensors");
    ASSERT_INT_EQ(log_count(&d, "keeping the running configuration"), 2);
    ASSERT_INT_EQ(log_count(&d, "reloaded"), 2);
    /* judged by the running model at the running threshold, which calls everything blurred */
    put_and_expect(&d, db, inbox, "four.png", bytes, n, "blurred");
    ASSERT_INT_EQ(query_number(db, "select count(*) from images"), 4);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    return 0;
}

/* A file rewritten while the pipeline has it (a slow upload, an editor saving again) must
 * not keep the verdict on its old content: the result is dropped and the file judged again.
 * The daemon is frozen (SIGSTOP) while it decodes a large photo, the file's modification
 * time is changed, and the daemon thawed; the recorded row must carry the new time. */
TEST_IMPL(daemon_judges_again_a_file_changed_while_judged)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db"), *config = test_path("blurd.conf");
    char text[4096];
    write_config(config, text, sizeof text, inbox, model, db, "debug");
    /* 49 megapixels of PNG take a good part of a second to decode: time to freeze it in */
    char *big = test_path("big.png"), command[8192];
    snprintf(command, sizeof command, "vips gaussnoise '%s' 7000 7000 --mean 128 --sigma 30", big);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);

    struct daemon_process d = start_daemon_ready_with(config);
    char path[4096];
    snprintf(path, sizeof path, "%s/big.png", inbox);
    ASSERT(rename(big, path) == 0);
    wait_for_log(&d, "big.png: judging");
    ASSERT(kill(d.pid, SIGSTOP) == 0);
    int status;
    ASSERT(waitpid(d.pid, &status, WUNTRACED) == d.pid && WIFSTOPPED(status));
    if (log_contains(&d, "big.png: clear (") || log_contains(&d, "big.png: blurred ("))
        TEST_FAIL("the photo was judged before the daemon could be frozen: the test missed its "
                  "window, not a daemon fault");
    const int64_t new_seconds = 1000000000;
    const struct timespec times[2] = {{new_seconds, 0}, {new_seconds, 0}};
    ASSERT(utimensat(AT_FDCWD, path, times, 0) == 0);
    ASSERT(kill(d.pid, SIGCONT) == 0);

    wait_for_log(&d, "big.png: changed while being judged; judging it again");
    char sql[512];
    snprintf(sql, sizeof sql,
             "select count(*) from images where path like '%%/big.png' and verdict is not null "
             "and mtime = %lld",
             (long long)new_seconds * 1000000000LL);
    wait_for_number(&d, db, sql, 1);
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    return 0;
}

TEST_IMPL(daemon_refuses_bad_configuration_and_missing_model)
{
    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    char *config = test_path("blurd.conf"), text[4096], command[8192], *err;
    snprintf(text, sizeof text, "[watch]\nfolder = %s\nsettle = soon\n", inbox);
    test_write_file(config, text, strlen(text));
    snprintf(command, sizeof command, "'%s' daemon -c '%s' --model '%s' --db '%s'",
             test_blurd_binary(), config, model, db);
    ASSERT_INT_EQ(test_run(command, NULL, &err), 2);
    ASSERT_CONTAINS(err, "blurd.conf:3:");
    ASSERT_CONTAINS(err, "settle");

    snprintf(command, sizeof command,
             "'%s' daemon --check --watch '%s' --db '%s' --model '%s/none'", test_blurd_binary(),
             inbox, db, inbox);
    ASSERT_INT_EQ(test_run(command, NULL, &err), 2);
    ASSERT_CONTAINS(err, "none");

    snprintf(command, sizeof command,
             "'%s' daemon --check --watch '%s/missing' --db '%s' --model '%s'", test_blurd_binary(),
             inbox, db, model);
    ASSERT_INT_EQ(test_run(command, NULL, &err), 2);
    ASSERT_CONTAINS(err, "missing");

    char *out;
    snprintf(command, sizeof command, "'%s' daemon --check --watch '%s' --db '%s' --model '%s'",
             test_blurd_binary(), inbox, db, model);
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    ASSERT_CONTAINS(out, "usable");
    return 0;
}

TEST_IMPL(daemon_unit_file_verifies)
{
    /* systemd-analyze checks the unit offline; ExecStart must name an existing binary, so
     * verify a copy pointing at the one under test. */
    char command[8192], *out, *err;
    if (test_run("command -v systemd-analyze", NULL, NULL) != 0) {
        fprintf(stderr, "systemd-analyze not installed: skipped\n");
        return 0;
    }
    char *unit = test_path("blurd.service");
    snprintf(command, sizeof command,
             "sed 's|/usr/local/bin/blurd|%s|g' '%s/systemd/blurd.service' > '%s' && "
             "systemd-analyze verify '%s'",
             test_blurd_binary(), test_source_dir(), unit, unit);
    int status = test_run(command, &out, &err);
    if (status != 0)
        TEST_FAIL("systemd-analyze verify failed: %s%s", out, err);
    return 0;
}

static char *saved_queue_limit;

/* Runs at exit, however the test ends: the limit is system-wide. */
static void restore_queue_limit(void)
{
    test_write_file("/proc/sys/fs/inotify/max_queued_events", saved_queue_limit,
                    strlen(saved_queue_limit));
}

TEST_IMPL(daemon_recovers_from_inotify_queue_overflow)
{
    /* A tiny kernel queue (new inotify instances only: set before the daemon starts), and
     * the daemon stopped while files arrive: the queue must overflow, and the rescan must
     * still find every file. */
    const char *knob = "/proc/sys/fs/inotify/max_queued_events";
    if (geteuid() != 0) {
        fprintf(stderr, "not root: cannot lower %s, skipped\n", knob);
        return 0;
    }
    saved_queue_limit = test_read_file(knob, NULL);
    atexit(restore_queue_limit);
    test_write_file(knob, "16\n", 3);

    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox"),
         *db = test_path("blurd.db");
    size_t n;
    char *bytes = photo_bytes(6, &n);
    struct daemon_process d = start_daemon(daemon_args(model, inbox, db, ""));
    wait_ready(&d);
    restore_queue_limit(); /* the daemon's instance keeps its 16 */

    kill(d.pid, SIGSTOP);
    char path[4096];
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof path, "%s/flood-%03d.png", inbox, i);
        put_file(path, bytes, n);
    }
    kill(d.pid, SIGCONT);
    wait_for_number(&d, db, "select count(*) from images where verdict is not null", 100);
    ASSERT(log_contains(&d, "overflow"));
    ASSERT_INT_EQ(stop_daemon(&d), 0);
    return 0;
}

TEST_IMPL(daemon_speaks_the_systemd_notify_protocol_and_journal_priorities)
{
    /* A datagram socket standing where systemd's would be: the daemon must send READY=1
     * once it watches, STATUS= with counts, and STOPPING=1 on SIGTERM; with
     * JOURNAL_STREAM set its log lines carry "<N>" priorities. */
    char *socket_path = test_path("notify.sock");
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(sock >= 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    ASSERT(strlen(socket_path) < sizeof address.sun_path);
    strcpy(address.sun_path, socket_path);
    ASSERT(bind(sock, (struct sockaddr *)&address, sizeof address) == 0);

    char *model = test_small_model("model.safetensors", 11), *inbox = make_dir("inbox");
    char *db = test_path("blurd.db");
    char args[8192];
    snprintf(args, sizeof args, "%s", daemon_args(model, inbox, db, ""));
    setenv("NOTIFY_SOCKET", socket_path, 1);
    setenv("JOURNAL_STREAM", "8:12345", 1);
    struct daemon_process d = start_daemon(args);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("JOURNAL_STREAM");
    wait_for_log(&d, "watching ");

    char messages[16384] = "";
    double deadline = now() + WAIT_SECONDS;
    bool stopped_sent = false;
    while (strstr(messages, "STOPPING=1") == NULL) {
        ASSERT(now() < deadline);
        char buffer[4096];
        ssize_t n = recv(sock, buffer, sizeof buffer - 1, MSG_DONTWAIT);
        if (n > 0) {
            buffer[n] = '\0';
            strncat(messages, buffer, sizeof messages - strlen(messages) - 2);
            strcat(messages, "\n");
            continue;
        }
        /* ask it to stop once READY and a STATUS (every 5 s) have come */
        if (!stopped_sent && strstr(messages, "READY=1") && strstr(messages, "STATUS=")) {
            kill(d.pid, SIGTERM);
            stopped_sent = true;
        }
        pause_seconds(0.05);
    }
    int status;
    waitpid(d.pid, &status, 0);
    running_daemon = -1;
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT(strstr(messages, "READY=1") < strstr(messages, "STOPPING=1"));
    ASSERT_CONTAINS(messages, "STATUS=0 judged (0 blurred, 0 clear), 0 failed, 0 moved; 0 waiting");
    /* notice-level lines as priority 5, with no "blurd: notice:" text prefix */
    char *log = test_read_file(d.log, NULL);
    ASSERT_CONTAINS(log, "<5>watching ");
    ASSERT(strstr(log, "blurd: notice:") == NULL);
    close(sock);
    return 0;
}
