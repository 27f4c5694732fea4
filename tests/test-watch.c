/* test-watch.c - the watch on real folders, with real inotify and a real libuv loop: files are
 * reported once, after they settle, however they arrive (written, written slowly, renamed
 * from a partial name, moved in, in new nested folders, in a burst); excluded and hidden
 * folders are left alone; deleted and renamed folders and a lost root are handled; scans
 * report what was already there; a queue overflow is repaired by a rescan.
 *
 * Each test runs the loop until everything expected has been reported and a quiet period
 * (three settle times) has passed with no more reports, so duplicates would be seen; a guard
 * timer ends a test that waits too long.  File operations run on a second thread, as another
 * process would do them, while the loop runs.  Nothing depends on the machine's speed but
 * the guard's generous timeout.
 */
#include "blurd/error.h"
#include "blurd/watch.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define GUARD_MS 10000
#define TICK_MS  20
#define QUIET_MS 600 /* after the last expected report: three settle times */
#define SETTLE   0.2

struct report {
    char *path;
    int count;
    uint64_t first_ns; /* uv_hrtime() */
};

struct harness {
    uv_loop_t loop;
    uv_timer_t guard, tick;
    blurd_watch *watch;
    void (*script)(struct harness *h); /* run on its own thread while the loop runs */
    pthread_t thread;
    atomic_int script_done;
    atomic_int reported;       /* on_file calls, for scripts that wait for one */
    atomic_int scans_finished; /* on_scan_done calls, likewise */
    const char **expected;
    size_t expected_count;
    struct report *reports;
    size_t report_count, report_capacity;
    int rescans;
    char rescan_reason[256];
    int scans_done, scans_wanted;
    size_t reports_at_first_done;
    size_t deferred; /* files the scans left to settle, as their `done` calls said */
    uint64_t satisfied_at;
    int timed_out, finishing, closed;
    size_t folders_at_end, pending_at_end;
    const char *root;
    uint64_t mark_ns; /* a time the script notes (a close) */
    int held_fd;      /* a file the script leaves open, closed by the test */
};

static int is_jpeg(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".jpg") == 0;
}

static void on_file(void *arg, const char *path)
{
    struct harness *h = arg;
    ASSERT(path[0] == '/');
    for (size_t i = 0; i < h->report_count; i++) {
        if (strcmp(h->reports[i].path, path) == 0) {
            h->reports[i].count++;
            atomic_fetch_add(&h->reported, 1);
            return;
        }
    }
    if (h->report_count == h->report_capacity) {
        h->report_capacity = h->report_capacity ? 2 * h->report_capacity : 64;
        h->reports = realloc(h->reports, h->report_capacity * sizeof *h->reports);
        ASSERT(h->reports != NULL);
    }
    struct report *r = &h->reports[h->report_count++];
    r->path = strdup(path);
    ASSERT(r->path != NULL);
    r->count = 1;
    r->first_ns = uv_hrtime();
    atomic_fetch_add(&h->reported, 1);
}

static void on_rescan(void *arg, const char *root, const char *reason)
{
    struct harness *h = arg;
    ASSERT(root[0] == '/');
    h->rescans++;
    snprintf(h->rescan_reason, sizeof h->rescan_reason, "%s", reason);
}

static void on_scan_done(void *arg, size_t deferred)
{
    struct harness *h = arg;
    h->deferred += deferred;
    if (h->scans_done++ == 0)
        h->reports_at_first_done = h->report_count;
    atomic_fetch_add(&h->scans_finished, 1);
}

static const struct report *find_report(const struct harness *h, const char *path)
{
    for (size_t i = 0; i < h->report_count; i++)
        if (strcmp(h->reports[i].path, path) == 0)
            return &h->reports[i];
    return NULL;
}

static int count_of(const struct harness *h, const char *path)
{
    const struct report *r = find_report(h, path);
    return r ? r->count : 0;
}

static int all_expected_seen(const struct harness *h)
{
    for (size_t i = 0; i < h->expected_count; i++)
        if (count_of(h, h->expected[i]) == 0)
            return 0;
    return 1;
}

static void on_closed(void *arg)
{
    struct harness *h = arg;
    h->closed = 1;
}

static void finish(struct harness *h)
{
    if (h->finishing)
        return;
    h->finishing = 1;
    h->folders_at_end = blurd_watch_folder_count(h->watch);
    h->pending_at_end = blurd_watch_pending_count(h->watch);
    blurd_watch_stop(h->watch, on_closed, h);
    uv_close((uv_handle_t *)&h->guard, NULL);
    uv_close((uv_handle_t *)&h->tick, NULL);
}

static void guard_cb(uv_timer_t *timer)
{
    struct harness *h = timer->data;
    h->timed_out = 1;
    finish(h);
}

/* Ends the run once the script is done, everything expected has come and nothing more has
 * come for QUIET_MS. */
static void tick_cb(uv_timer_t *timer)
{
    struct harness *h = timer->data;
    static int last_reported;
    int reported = atomic_load(&h->reported);
    if (atomic_load(&h->script_done) && all_expected_seen(h) && h->scans_done >= h->scans_wanted &&
        reported == last_reported) {
        if (h->satisfied_at == 0)
            h->satisfied_at = uv_now(&h->loop);
        else if (uv_now(&h->loop) - h->satisfied_at >= QUIET_MS)
            finish(h);
    } else {
        h->satisfied_at = 0;
    }
    last_reported = reported;
}

static void *script_main(void *arg)
{
    struct harness *h = arg;
    h->script(h);
    atomic_store(&h->script_done, 1);
    return NULL;
}

static void harness_init(struct harness *h, const char *root_name)
{
    memset(h, 0, sizeof *h);
    ASSERT_INT_EQ(uv_loop_init(&h->loop), 0);
    h->root = test_path(root_name);
    if (mkdir(h->root, 0755) != 0 && errno != EEXIST)
        TEST_FAIL("mkdir %s: %s", h->root, strerror(errno));
}

static struct blurd_watch_options harness_options(struct harness *h)
{
    struct blurd_watch_options options = {
        .loop = &h->loop,
        .roots = &h->root,
        .root_count = 1,
        .recursive = 1,
        .settle_seconds = SETTLE,
        .is_candidate = is_jpeg,
        .on_file = on_file,
        .on_rescan = on_rescan,
        .arg = h,
    };
    return options;
}

static void harness_start(struct harness *h, const struct blurd_watch_options *options)
{
    char err[BLURD_ERR_LEN] = "";
    int rc = blurd_watch_start(&h->watch, options, err);
    if (rc != 0)
        TEST_FAIL("blurd_watch_start: %s: %s", blurd_error_name(rc), err);
}

/* Runs the loop (and the script) to the end, then checks that the watch closed cleanly. */
static void harness_run(struct harness *h)
{
    uv_timer_init(&h->loop, &h->guard);
    uv_timer_init(&h->loop, &h->tick);
    h->guard.data = h->tick.data = h;
    uv_timer_start(&h->guard, guard_cb, GUARD_MS, 0);
    uv_timer_start(&h->tick, tick_cb, TICK_MS, TICK_MS);
    if (h->script != NULL)
        ASSERT_INT_EQ(pthread_create(&h->thread, NULL, script_main, h), 0);
    else
        atomic_store(&h->script_done, 1);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    if (h->script != NULL)
        ASSERT_INT_EQ(pthread_join(h->thread, NULL), 0);
    ASSERT(h->closed);
    ASSERT_INT_EQ(uv_loop_close(&h->loop), 0); /* every handle was closed */
    if (h->timed_out) {
        for (size_t i = 0; i < h->expected_count; i++)
            if (count_of(h, h->expected[i]) == 0)
                fprintf(stderr, "never reported: %s\n", h->expected[i]);
        TEST_FAIL("timed out after %d ms (%zu paths reported, %d scans done of %d)", GUARD_MS,
                  h->report_count, h->scans_done, h->scans_wanted);
    }
}

static void harness_free(struct harness *h)
{
    for (size_t i = 0; i < h->report_count; i++)
        free(h->reports[i].path);
    free(h->reports);
    free(h->expected);
}

static void expect(struct harness *h, const char *path)
{
    h->expected = realloc(h->expected, (h->expected_count + 1) * sizeof *h->expected);
    ASSERT(h->expected != NULL);
    h->expected[h->expected_count++] = path;
}

static char *under(const struct harness *h, const char *name)
{
    char relative[1024];
    snprintf(relative, sizeof relative, "%s/%s", strrchr(h->root, '/') + 1, name);
    return test_path(relative);
}

static void make_folder(const char *path)
{
    if (mkdir(path, 0755) != 0)
        TEST_FAIL("mkdir %s: %s", path, strerror(errno));
}

static void write_text(const char *path)
{
    test_write_file(path, "not really a photo\n", 19);
}

/* A file that arrived while nothing watched: written, then dated an hour back, so a report
 * scan takes it as complete (one modified within the settle time, plus 2 s, waits for it). */
static void write_old_text(const char *path)
{
    write_text(path);
    test_date_back(path, 3600 * 1000L);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Writes `chunks` chunks `delay_ms` apart, keeping the file open throughout; notes the
 * time just before the close in h->mark_ns when `h` is given. */
static void write_slowly(struct harness *h, const char *path, int chunks, int delay_ms)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        TEST_FAIL("open %s: %s", path, strerror(errno));
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < chunks; i++) {
        if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk)
            TEST_FAIL("write %s: %s", path, strerror(errno));
        sleep_ms(delay_ms);
    }
    if (h != NULL)
        h->mark_ns = uv_hrtime();
    if (close(fd) != 0)
        TEST_FAIL("close %s: %s", path, strerror(errno));
}

/* Waits (on the script's thread) until `counter` reaches `value`, or the guard's time. */
static void wait_for(atomic_int *counter, int value)
{
    for (int waited = 0; atomic_load(counter) < value && waited < GUARD_MS; waited += 10)
        sleep_ms(10);
}

static void rename_or_fail(const char *from, const char *to)
{
    if (rename(from, to) != 0)
        TEST_FAIL("rename %s -> %s: %s", from, to, strerror(errno));
}

static void remove_tree(const char *path)
{
    char command[4200];
    snprintf(command, sizeof command, "rm -rf '%s'", path);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
}

/* ---- files arriving ---- */

static void script_one_file(struct harness *h)
{
    write_text(under(h, "notes.txt"));
    h->mark_ns = uv_hrtime();
    write_text(under(h, "a.jpg"));
}

TEST_IMPL(watch_file_reported_once_after_settle)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    ASSERT_INT_EQ(blurd_watch_folder_count(h.watch), 1);
    ASSERT_INT_EQ(blurd_watch_pending_count(h.watch), 0);
    char *a = under(&h, "a.jpg");
    expect(&h, a);
    h.script = script_one_file;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, a), 1);
    ASSERT_INT_EQ(h.report_count, 1); /* notes.txt is not a candidate */
    /* not before the settle time (a lower bound only, so a slow machine cannot fail it) */
    ASSERT(find_report(&h, a)->first_ns - h.mark_ns >= (uint64_t)(0.9 * SETTLE * 1e9));
    ASSERT_INT_EQ(h.pending_at_end, 0);
    ASSERT_INT_EQ(h.rescans, 0);
    harness_free(&h);
    return 0;
}

static void script_slow_writer(struct harness *h)
{
    write_slowly(h, under(h, "slow.jpg"), 10, 100); /* about 1 s, five settle times */
}

TEST_IMPL(watch_slow_writer_reported_once_after_close)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    char *slow = under(&h, "slow.jpg");
    expect(&h, slow);
    h.script = script_slow_writer;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, slow), 1);
    ASSERT(find_report(&h, slow)->first_ns >= h.mark_ns);
    struct stat st;
    ASSERT_INT_EQ(stat(slow, &st), 0);
    ASSERT_INT_EQ(st.st_size, 10 * 4096);
    harness_free(&h);
    return 0;
}

static void script_partial_names(struct harness *h)
{
    /* upload tools' partial names, none ever renamed */
    write_text(under(h, ".hidden.jpg"));
    write_text(under(h, "backup.jpg~"));
    write_text(under(h, "y.JPG.PART"));
    write_text(under(h, "z.jpg.crdownload"));
    write_text(under(h, "w.jpg.Tmp"));
    /* a download: written under a partial name, then renamed */
    write_slowly(NULL, under(h, "x.jpg.part"), 3, 50);
    rename_or_fail(under(h, "x.jpg.part"), under(h, "x.jpg"));
}

TEST_IMPL(watch_temp_file_renamed_reported_once)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    options.is_candidate = NULL; /* every name: only the partial-name rule refuses */
    harness_start(&h, &options);
    char *x = under(&h, "x.jpg");
    expect(&h, x);
    h.script = script_partial_names;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, x), 1);
    for (size_t i = 0; i < h.report_count; i++)
        if (strcmp(h.reports[i].path, x) != 0)
            TEST_FAIL("a partial upload was reported: %s", h.reports[i].path);
    harness_free(&h);
    return 0;
}

static void script_move_in(struct harness *h)
{
    char *outside = test_path("outside");
    make_folder(outside);
    write_text(test_path("outside/y.jpg"));
    make_folder(test_path("outside/album"));
    make_folder(test_path("outside/album/inner"));
    write_text(test_path("outside/album/1.jpg"));
    write_text(test_path("outside/album/2.jpg"));
    write_text(test_path("outside/album/inner/3.jpg"));
    rename_or_fail(test_path("outside/y.jpg"), under(h, "y.jpg"));
    rename_or_fail(test_path("outside/album"), under(h, "album"));
}

static void script_link_in(struct harness *h)
{
    make_folder(test_path("outside"));
    write_text(test_path("outside/z.jpg"));
    if (link(test_path("outside/z.jpg"), under(h, "z.jpg")) != 0)
        TEST_FAIL("link: %s", strerror(errno));
    /* a file merely created and left open-for-writing style (one link) is not taken */
    int fd = open(under(h, "open.jpg"), O_WRONLY | O_CREAT, 0644);
    ASSERT(fd >= 0);
    h->held_fd = fd;
}

TEST_IMPL(watch_hard_link_taken_as_arrival)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    expect(&h, under(&h, "z.jpg"));
    h.script = script_link_in;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, under(&h, "z.jpg")), 1);
    ASSERT_INT_EQ(count_of(&h, under(&h, "open.jpg")), 0);
    ASSERT_INT_EQ(h.report_count, 1);
    close(h.held_fd);
    harness_free(&h);
    return 0;
}

TEST_IMPL(watch_moved_in_from_outside)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    const char *names[] = {"y.jpg", "album/1.jpg", "album/2.jpg", "album/inner/3.jpg"};
    for (size_t i = 0; i < 4; i++)
        expect(&h, under(&h, names[i]));
    h.script = script_move_in;
    harness_run(&h);
    for (size_t i = 0; i < h.expected_count; i++)
        ASSERT_INT_EQ(count_of(&h, h.expected[i]), 1);
    ASSERT_INT_EQ(h.report_count, 4);
    ASSERT_INT_EQ(h.folders_at_end, 3); /* root, album, album/inner */
    harness_free(&h);
    return 0;
}

/* Like `mkdir -p a/b/c && cp ...` in `top`: files land in folders not yet watched. */
static void make_nested(const char *top)
{
    char command[4200];
    snprintf(command, sizeof command,
             "mkdir -p '%s/a/b/c' && for f in 1 2 3 4 5; do echo x > '%s/a/b/c/'$f.jpg; done && "
             "echo x > '%s/a/b/6.jpg' && echo x > '%s/a/7.jpg'",
             top, top, top, top);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
}

static void script_nested(struct harness *h)
{
    make_nested(h->root); /* racing the loop, as a real upload would */
}

TEST_IMPL(watch_new_nested_folders_with_files)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    /* Certain to be ahead of the watch: done before the loop reads a single event. */
    char *early = under(&h, "early");
    make_folder(early);
    make_nested(early);
    const char *names[] = {"a/b/c/1.jpg", "a/b/c/2.jpg", "a/b/c/3.jpg", "a/b/c/4.jpg",
                           "a/b/c/5.jpg", "a/b/6.jpg",   "a/7.jpg"};
    for (size_t i = 0; i < 7; i++) {
        char name[64];
        expect(&h, under(&h, names[i]));
        snprintf(name, sizeof name, "early/%s", names[i]);
        expect(&h, under(&h, name));
    }
    h.script = script_nested;
    harness_run(&h);
    /* A file both found by the new folder's scan and closed is reported once as long as
     * the two are noticed within one settle time; allow a second report on a machine too
     * loaded for that, since the daemon skips files already judged. */
    for (size_t i = 0; i < h.expected_count; i++) {
        int count = count_of(&h, h.expected[i]);
        if (count < 1 || count > 2)
            TEST_FAIL("%s reported %d times", h.expected[i], count);
    }
    ASSERT_INT_EQ(h.report_count, 14);
    ASSERT_INT_EQ(h.folders_at_end, 8); /* root, a, a/b, a/b/c, early, early/a, ... */
    harness_free(&h);
    return 0;
}

static void script_excluded(struct harness *h)
{
    wait_for(&h->scans_finished, 1); /* so the scan cannot find the files below too */
    write_text(under(h, "Blurred/later.jpg"));
    write_text(under(h, "Blurred/deep/later.jpg"));
    make_folder(under(h, "Undistorted"));
    make_folder(under(h, "Undistorted/deep"));
    write_text(under(h, "Undistorted/new.jpg"));
    write_text(under(h, "Undistorted/deep/new.jpg"));
    rename_or_fail(under(h, "Undistorted/new.jpg"), under(h, "Undistorted/moved.jpg"));
    write_text(under(h, "marker.jpg")); /* last: once it is reported, the rest was seen */
}

TEST_IMPL(watch_excluded_folders_ignored)
{
    struct harness h;
    harness_init(&h, "root");
    make_folder(under(&h, "Blurred"));
    make_folder(under(&h, "Blurred/deep"));
    write_text(under(&h, "Blurred/old.jpg"));
    write_text(under(&h, "Blurred/deep/old.jpg"));
    write_text(under(&h, "old.jpg"));
    struct blurd_watch_options options = harness_options(&h);
    char *undistorted = under(&h, "Undistorted/"); /* a trailing slash is the same folder */
    const char *excluded[] = {under(&h, "Blurred"), undistorted};
    options.excluded = excluded;
    options.excluded_count = 2;
    harness_start(&h, &options);
    ASSERT_INT_EQ(blurd_watch_folder_count(h.watch), 1);
    blurd_watch_scan(h.watch, on_scan_done, &h);
    h.scans_wanted = 1;
    expect(&h, under(&h, "old.jpg"));
    expect(&h, under(&h, "marker.jpg"));
    h.script = script_excluded;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, under(&h, "old.jpg")), 1);
    ASSERT_INT_EQ(count_of(&h, under(&h, "marker.jpg")), 1);
    for (size_t i = 0; i < h.report_count; i++)
        if (strstr(h.reports[i].path, "/Blurred") || strstr(h.reports[i].path, "/Undistorted"))
            TEST_FAIL("a file in an excluded folder was reported: %s", h.reports[i].path);
    ASSERT_INT_EQ(h.report_count, 2);
    ASSERT_INT_EQ(h.folders_at_end, 1);
    harness_free(&h);
    return 0;
}

#define BURST 300

static void script_burst(struct harness *h)
{
    for (int i = 0; i < BURST; i++) {
        char name[64];
        snprintf(name, sizeof name, "burst-%03d.jpg", i);
        write_text(under(h, name));
    }
}

TEST_IMPL(watch_burst_of_300_files_each_reported_once)
{
    struct harness h;
    harness_init(&h, "root");
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    for (int i = 0; i < BURST; i++) {
        char name[64];
        snprintf(name, sizeof name, "burst-%03d.jpg", i);
        expect(&h, under(&h, name));
    }
    h.script = script_burst;
    harness_run(&h);
    for (size_t i = 0; i < h.expected_count; i++)
        ASSERT_INT_EQ(count_of(&h, h.expected[i]), 1);
    ASSERT_INT_EQ(h.report_count, BURST);
    ASSERT_INT_EQ(h.rescans, 0);
    harness_free(&h);
    return 0;
}

/* ---- scans ---- */

#define MANY 1200

TEST_IMPL(watch_scan_reports_existing_files_and_calls_done)
{
    struct harness h;
    harness_init(&h, "root");
    make_folder(under(&h, "sub"));
    make_folder(under(&h, "sub/deeper"));
    make_folder(under(&h, ".hidden"));
    make_folder(test_path("outside"));
    write_old_text(under(&h, "1.jpg"));
    write_old_text(under(&h, "sub/2.jpg"));
    write_old_text(under(&h, "sub/deeper/3.jpg"));
    write_old_text(under(&h, ".hidden/4.jpg"));
    write_old_text(under(&h, "notes.txt"));
    write_old_text(under(&h, "5.jpg.part"));
    write_old_text(test_path("outside/6.jpg"));
    make_folder(under(&h, "many")); /* more entries than one loop iteration reads */
    for (int i = 0; i < MANY; i++) {
        char name[64];
        snprintf(name, sizeof name, "many/%04d.jpg", i);
        write_old_text(under(&h, name));
    }
    ASSERT_INT_EQ(symlink(test_path("outside/6.jpg"), under(&h, "link.jpg")), 0);
    ASSERT_INT_EQ(symlink(test_path("outside"), under(&h, "linkdir")), 0);
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    ASSERT_INT_EQ(blurd_watch_folder_count(h.watch), 4); /* root, sub, sub/deeper, many */
    /* two scans at once: queued one behind the other, each reports everything */
    blurd_watch_scan(h.watch, on_scan_done, &h);
    blurd_watch_scan(h.watch, on_scan_done, &h);
    h.scans_wanted = 2;
    const char *names[] = {"1.jpg", "sub/2.jpg", "sub/deeper/3.jpg"};
    for (size_t i = 0; i < 3; i++)
        expect(&h, under(&h, names[i]));
    for (int i = 0; i < MANY; i++) {
        char name[64];
        snprintf(name, sizeof name, "many/%04d.jpg", i);
        expect(&h, under(&h, name));
    }
    harness_run(&h);
    ASSERT_INT_EQ(h.scans_done, 2);
    ASSERT_INT_EQ(h.reports_at_first_done, 3 + MANY);
    for (size_t i = 0; i < h.expected_count; i++)
        ASSERT_INT_EQ(count_of(&h, h.expected[i]), 2);
    /* no hidden, partial, non-candidate or linked file */
    ASSERT_INT_EQ(h.report_count, 3 + MANY);
    ASSERT_INT_EQ(h.folders_at_end, 4);
    ASSERT_INT_EQ(h.rescans, 0);
    harness_free(&h);
    return 0;
}

TEST_IMPL(watch_scan_lets_recently_written_files_settle)
{
    struct harness h;
    harness_init(&h, "root");
    write_old_text(under(&h, "old.jpg"));
    write_text(under(&h, "fresh.jpg"));
    /* older than the settle time (0.2 s), but within the 2 s a FAT modification time can
     * lag; the scan must read it within 1.8 s for the test to hold */
    write_text(under(&h, "coarse.jpg"));
    test_date_back(under(&h, "coarse.jpg"), 400);
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    blurd_watch_scan(h.watch, on_scan_done, &h);
    h.scans_wanted = 1;
    expect(&h, under(&h, "old.jpg"));
    expect(&h, under(&h, "fresh.jpg"));
    expect(&h, under(&h, "coarse.jpg"));
    harness_run(&h);
    /* only the old file was reported by the scan itself; the two others after settling */
    ASSERT_INT_EQ(h.reports_at_first_done, 1);
    ASSERT_INT_EQ(count_of(&h, under(&h, "old.jpg")), 1);
    ASSERT_INT_EQ(h.deferred, 2);
    ASSERT_INT_EQ(count_of(&h, under(&h, "fresh.jpg")), 1);
    ASSERT_INT_EQ(count_of(&h, under(&h, "coarse.jpg")), 1);
    ASSERT_INT_EQ(h.report_count, 3);
    harness_free(&h);
    return 0;
}

static void script_two_roots(struct harness *h)
{
    wait_for(&h->scans_finished, 1); /* so the scan cannot find the files below too */
    write_text(test_path("second/sub/no.jpg"));
    write_text(test_path("second/yes.jpg"));
    make_folder(under(h, "new"));
    write_text(under(h, "new/no.jpg"));
    write_text(under(h, "yes.jpg"));
}

TEST_IMPL(watch_two_roots_not_recursive)
{
    struct harness h;
    harness_init(&h, "root");
    const char *roots[] = {h.root, test_path("second")};
    make_folder(roots[1]);
    make_folder(test_path("second/sub"));
    write_text(test_path("second/sub/old-no.jpg"));
    write_text(test_path("second/old.jpg"));
    struct blurd_watch_options options = harness_options(&h);
    options.roots = roots;
    options.root_count = 2;
    options.recursive = 0;
    harness_start(&h, &options);
    ASSERT_INT_EQ(blurd_watch_folder_count(h.watch), 2);
    blurd_watch_scan(h.watch, on_scan_done, &h);
    h.scans_wanted = 1;
    expect(&h, test_path("second/old.jpg"));
    expect(&h, test_path("second/yes.jpg"));
    expect(&h, under(&h, "yes.jpg"));
    h.script = script_two_roots;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, test_path("second/old.jpg")), 1);
    ASSERT_INT_EQ(count_of(&h, test_path("second/yes.jpg")), 1);
    ASSERT_INT_EQ(count_of(&h, under(&h, "yes.jpg")), 1);
    ASSERT_INT_EQ(h.report_count, 3); /* nothing from subfolders */
    ASSERT_INT_EQ(h.folders_at_end, 2);
    harness_free(&h);
    return 0;
}

static void stop_on_first_file(void *arg, const char *path)
{
    struct harness *h = arg;
    on_file(arg, path);
    finish(h);
}

TEST_IMPL(watch_stop_inside_callback)
{
    struct harness h;
    harness_init(&h, "root");
    for (int i = 0; i < 50; i++) {
        char name[64];
        snprintf(name, sizeof name, "%02d.jpg", i);
        write_old_text(under(&h, name));
    }
    struct blurd_watch_options options = harness_options(&h);
    options.on_file = stop_on_first_file;
    harness_start(&h, &options);
    blurd_watch_scan(h.watch, on_scan_done, &h); /* done must not run: stopped first */
    harness_run(&h);
    ASSERT_INT_EQ(atomic_load(&h.reported), 1);
    ASSERT_INT_EQ(h.scans_done, 0);

    /* the same from the settle timer: one batch holds all 50 files */
    struct harness h2;
    harness_init(&h2, "root2");
    options = harness_options(&h2);
    options.on_file = stop_on_first_file;
    options.settle_seconds = 0.5;
    harness_start(&h2, &options);
    for (int i = 0; i < 50; i++) {
        char name[64];
        snprintf(name, sizeof name, "%02d.jpg", i);
        write_text(under(&h2, name));
    }
    harness_run(&h2);
    ASSERT_INT_EQ(atomic_load(&h2.reported), 1);
    harness_free(&h);
    harness_free(&h2);
    return 0;
}

/* ---- folders going away ---- */

static void script_delete_subfolder(struct harness *h)
{
    remove_tree(under(h, "sub"));
    write_text(under(h, "after.jpg"));
    make_folder(under(h, "sub"));
    write_text(under(h, "sub/again.jpg"));
}

TEST_IMPL(watch_deleted_subfolder_breaks_nothing)
{
    struct harness h;
    harness_init(&h, "root");
    make_folder(under(&h, "sub"));
    make_folder(under(&h, "sub/inner"));
    write_text(under(&h, "sub/inner/x.jpg"));
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    ASSERT_INT_EQ(blurd_watch_folder_count(h.watch), 3);
    char *after = under(&h, "after.jpg"), *again = under(&h, "sub/again.jpg");
    expect(&h, after);
    expect(&h, again);
    h.script = script_delete_subfolder;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, after), 1);
    ASSERT(count_of(&h, again) >= 1);
    ASSERT_INT_EQ(h.report_count, 2);
    ASSERT_INT_EQ(h.folders_at_end, 2); /* root and the new sub */
    harness_free(&h);
    return 0;
}

static void script_rename_subfolder(struct harness *h)
{
    rename_or_fail(under(h, "a"), under(h, "b"));
    write_text(under(h, "b/x.jpg"));
    write_text(under(h, "b/deep/y.jpg"));
}

TEST_IMPL(watch_renamed_subfolder_followed)
{
    struct harness h;
    harness_init(&h, "root");
    make_folder(under(&h, "a"));
    make_folder(under(&h, "a/deep"));
    struct blurd_watch_options options = harness_options(&h);
    harness_start(&h, &options);
    ASSERT_INT_EQ(blurd_watch_folder_count(h.watch), 3);
    char *x = under(&h, "b/x.jpg"), *y = under(&h, "b/deep/y.jpg");
    expect(&h, x);
    expect(&h, y);
    h.script = script_rename_subfolder;
    harness_run(&h);
    ASSERT(count_of(&h, x) >= 1);
    ASSERT(count_of(&h, y) >= 1);
    ASSERT_INT_EQ(h.report_count, 2);   /* nothing under the old name a/ */
    ASSERT_INT_EQ(h.folders_at_end, 3); /* root, b, b/deep */
    harness_free(&h);
    return 0;
}

static void script_root_lost(struct harness *h)
{
    /* moved away: what is written there is no longer ours */
    rename_or_fail(h->root, test_path("inbox.gone"));
    write_text(test_path("inbox.gone/gone.jpg"));
    make_folder(h->root);
    write_text(under(h, "new1.jpg"));
    wait_for(&h->reported, 1);
    /* deleted */
    remove_tree(h->root);
    make_folder(h->root);
    write_text(under(h, "new2.jpg"));
}

TEST_IMPL(watch_root_lost_and_found_again)
{
    struct harness h;
    harness_init(&h, "inbox");
    struct blurd_watch_options options = harness_options(&h);
    options.retry_seconds = 0.2;
    harness_start(&h, &options);
    char *new1 = under(&h, "new1.jpg"), *new2 = under(&h, "new2.jpg");
    expect(&h, new1);
    expect(&h, new2);
    h.script = script_root_lost;
    harness_run(&h);
    ASSERT_INT_EQ(count_of(&h, new1), 1);
    ASSERT_INT_EQ(count_of(&h, new2), 1);
    ASSERT_INT_EQ(h.report_count, 2); /* gone.jpg, under either name, never */
    ASSERT(h.rescans >= 2);
    ASSERT_STR_EQ(h.rescan_reason, "watched folder came back");
    ASSERT_INT_EQ(h.folders_at_end, 1);
    harness_free(&h);
    return 0;
}

/* ---- overflow ---- */

#define OVERFLOW_FILES 400
#define QUEUE_LIMIT    "64"
/* Shared by every test that lowers max_queued_events (flock(2) on it while changed). */
#define SYSCTL_LOCK "/tmp/blurd-test-max-queued-events.lock"

static int read_sysctl(const char *path, char *value, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int ok = fgets(value, (int)n, f) != NULL;
    fclose(f);
    return ok ? 0 : -1;
}

static int write_sysctl(const char *path, const char *value)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    int ok = fputs(value, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

TEST_IMPL(watch_queue_overflow_rescans)
{
    static const char sysctl[] = "/proc/sys/fs/inotify/max_queued_events";
    if (geteuid() != 0) {
        printf("     skipped: not root, cannot lower %s\n", sysctl);
        return 0;
    }
    char old[64];
    struct harness h;
    harness_init(&h, "root");
    make_folder(under(&h, "sub"));
    struct blurd_watch_options options = harness_options(&h);
    /* The limit applies to inotify instances created while it holds: lower it just around
     * blurd_watch_start, and restore it before anything can fail.  The lock keeps two test
     * processes doing this at once from restoring each other's lowered value. */
    int lock = open(SYSCTL_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ASSERT(lock >= 0);
    ASSERT_INT_EQ(flock(lock, LOCK_EX), 0);
    if (read_sysctl(sysctl, old, sizeof old) != 0) {
        printf("     skipped: cannot read %s: %s\n", sysctl, strerror(errno));
        close(lock);
        harness_free(&h);
        uv_loop_close(&h.loop);
        return 0;
    }
    if (write_sysctl(sysctl, QUEUE_LIMIT "\n") != 0) {
        printf("     skipped: cannot write %s: %s\n", sysctl, strerror(errno));
        close(lock);
        harness_free(&h);
        uv_loop_close(&h.loop);
        return 0;
    }
    char err[BLURD_ERR_LEN] = "";
    int rc = blurd_watch_start(&h.watch, &options, err);
    int restored = write_sysctl(sysctl, old);
    close(lock);
    ASSERT_INT_EQ(restored, 0);
    if (rc != 0)
        TEST_FAIL("blurd_watch_start: %s", err);

    /* Many more events than the queue holds, before the loop reads any. */
    for (int i = 0; i < OVERFLOW_FILES; i++) {
        char name[64];
        snprintf(name, sizeof name, i % 4 == 0 ? "sub/f-%03d.jpg" : "f-%03d.jpg", i);
        char *path = under(&h, name);
        write_text(path);
        expect(&h, path);
    }
    harness_run(&h);
    ASSERT(h.rescans >= 1);
    ASSERT_STR_EQ(h.rescan_reason, "inotify queue overflow");
    for (size_t i = 0; i < h.expected_count; i++)
        ASSERT(count_of(&h, h.expected[i]) >= 1);
    ASSERT_INT_EQ(h.report_count, OVERFLOW_FILES);
    ASSERT_INT_EQ(h.folders_at_end, 2);
    harness_free(&h);
    return 0;
}

/* ---- errors ---- */

static void on_closed_flag(void *arg)
{
    *(int *)arg += 1;
}

static void ignore_file(void *arg, const char *path)
{
    (void)arg;
    (void)path;
}

TEST_IMPL(watch_start_errors_name_the_path)
{
    uv_loop_t loop;
    ASSERT_INT_EQ(uv_loop_init(&loop), 0);
    char err[BLURD_ERR_LEN];
    blurd_watch *watch = (blurd_watch *)&loop; /* must be reset to NULL on failure */
    const char *root = test_path("missing");
    struct blurd_watch_options options = {
        .loop = &loop, .roots = &root, .root_count = 1, .on_file = ignore_file};
    ASSERT_INT_EQ(blurd_watch_start(&watch, &options, err), BLURD_ENOENT);
    ASSERT(watch == NULL);
    ASSERT_CONTAINS(err, root);

    root = test_path("file");
    write_text(root);
    ASSERT_INT_EQ(blurd_watch_start(&watch, &options, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, root);
    ASSERT_CONTAINS(err, "not a folder");

    root = "relative/inbox";
    ASSERT_INT_EQ(blurd_watch_start(&watch, &options, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, "relative/inbox");

    root = test_tmpdir();
    options.settle_seconds = -1;
    ASSERT_INT_EQ(blurd_watch_start(&watch, &options, err), BLURD_EINVAL);
    options.settle_seconds = 0;
    options.on_file = NULL;
    ASSERT_INT_EQ(blurd_watch_start(&watch, &options, err), BLURD_EINVAL);

    /* a good start, stopped before the loop ever ran: everything closes and is freed */
    options.on_file = ignore_file;
    ASSERT_INT_EQ(blurd_watch_start(&watch, &options, err), 0);
    int closed = 0;
    blurd_watch_scan(watch, NULL, NULL);
    blurd_watch_stop(watch, on_closed_flag, &closed);
    blurd_watch_stop(NULL, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_INT_EQ(closed, 1);
    ASSERT_INT_EQ(uv_loop_close(&loop), 0);
    return 0;
}
