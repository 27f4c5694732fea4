/* test-sort.c - moving files on real file systems: no-clobber renames with numbered names,
 * vanished sources, symbolic links, a real move across file systems (tmpfs /dev/shm and the
 * test directory), recorded moves, and recovery from every state a crash can leave, staged
 * by calling the store's intent functions directly. */
#include "blurd/error.h"
#include "blurd/sort.h"
#include "blurd/store.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* FNV-1a over a whole file: equal checksums before and after prove a file was not
 * overwritten or changed by a move. */
static uint64_t checksum(const char *path)
{
    size_t n = 0;
    const unsigned char *data = (const unsigned char *)test_read_file(path, &n);
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        hash = (hash ^ data[i]) * 0x100000001b3ULL;
    return hash;
}

/* Writes `size` pseudo-random bytes, different for each seed, and returns their checksum. */
static uint64_t make_file(const char *path, uint64_t seed, size_t size)
{
    char *data = malloc(size + 1);
    ASSERT(data != NULL);
    for (size_t i = 0; i < size; i++)
        data[i] = (char)test_random_next(&seed);
    test_write_file(path, data, size);
    free(data);
    return checksum(path);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void make_directory(const char *path)
{
    if (mkdir(path, 0755) != 0)
        TEST_FAIL("mkdir %s: %s", path, strerror(errno));
}

/* The names in `directory`, sorted, one per line ("" when empty). */
static char *list_directory(const char *directory)
{
    struct dirent **entries = NULL;
    int n = scandir(directory, &entries, NULL, alphasort);
    if (n < 0)
        TEST_FAIL("scandir %s: %s", directory, strerror(errno));
    static char text[8192];
    text[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(entries[i]->d_name, ".") != 0 && strcmp(entries[i]->d_name, "..") != 0) {
            size_t used = strlen(text);
            snprintf(text + used, sizeof text - used, "%s\n", entries[i]->d_name);
        }
        free(entries[i]);
    }
    free(entries);
    return text;
}

static void move_ok(const char *path, const char *destination, char *moved_to)
{
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_sort_move(path, destination, moved_to, err);
    if (code != 0)
        TEST_FAIL("blurd_sort_move %s: %s: %s", path, blurd_error_name(code), err);
}

static blurd_store *open_store(const char *path)
{
    blurd_store *store = NULL;
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_store_open(&store, path, err);
    if (code != 0)
        TEST_FAIL("blurd_store_open: %s: %s", blurd_error_name(code), err);
    return store;
}

/* A row for `path` as the daemon writes it before moving the file. */
static void put_judged(blurd_store *store, const char *path)
{
    struct blurd_store_row row = {
        .path = path, .size = 1, .mtime_ns = 1, .verdict = "blurred", .p_blurred = 0.9};
    char err[BLURD_ERR_LEN] = "";
    if (blurd_store_put(store, &row, err) != 0)
        TEST_FAIL("blurd_store_put: %s", err);
}

/* Stages a crash: the intent as blurd_sort_move_recorded had recorded it when blurd died. */
static int64_t stage_intent(blurd_store *store, const char *source, const char *destination,
                            const char *target, const char *temporary)
{
    char err[BLURD_ERR_LEN] = "";
    int64_t id = 0;
    if (blurd_store_move_begin(store, source, destination, &id, err) != 0 ||
        blurd_store_move_note(store, id, target, temporary, err) != 0)
        TEST_FAIL("staging a move: %s", err);
    return id;
}

static int recover(blurd_store *store)
{
    char err[BLURD_ERR_LEN] = "";
    int resolved = blurd_sort_recover(store, err);
    if (resolved < 0)
        TEST_FAIL("blurd_sort_recover: %s: %s", blurd_error_name(resolved), err);
    return resolved;
}

/* One value from the database through a separate connection, as `sqlite3` reads it;
 * "(null)" for NULL. */
static const char *query_text(const char *database, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *statement = NULL;
    if (sqlite3_open_v2(database, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &statement, NULL) != SQLITE_OK)
        TEST_FAIL("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(statement) != SQLITE_ROW)
        TEST_FAIL("%s: no row: %s", sql, sqlite3_errmsg(db));
    static char text[4096];
    const unsigned char *value = sqlite3_column_text(statement, 0);
    snprintf(text, sizeof text, "%s", value != NULL ? (const char *)value : "(null)");
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return text;
}

static const char *moved_to_of(const char *database, const char *path)
{
    char sql[PATH_MAX + 64];
    snprintf(sql, sizeof sql, "SELECT moved_to FROM images WHERE path = '%s'", path);
    return query_text(database, sql);
}

/* "1" when the row of `path` was marked stale by a rollback, "0" when it still has the
 * size and mtime put_judged gave it. */
static const char *stale(const char *database, const char *path)
{
    char sql[PATH_MAX + 96];
    snprintf(sql, sizeof sql, "SELECT size IS NULL AND mtime IS NULL FROM images WHERE path = '%s'",
             path);
    return query_text(database, sql);
}

static const char *pending_count(const char *database)
{
    return query_text(database, "SELECT count(*) FROM moves");
}

TEST_IMPL(sort_move_simple)
{
    char *in = test_path("in"), *out = test_path("out");
    make_directory(in);
    make_directory(out);
    char *source = test_path("in/a b.jpg");
    uint64_t sum = make_file(source, 1, 5000);
    char moved_to[PATH_MAX];
    move_ok(source, out, moved_to);
    ASSERT_STR_EQ(moved_to, test_path("out/a b.jpg"));
    ASSERT(!exists(source));
    ASSERT_INT_EQ(checksum(moved_to), sum);
    ASSERT_STR_EQ(list_directory(out), "a b.jpg\n");
    ASSERT_STR_EQ(list_directory(in), "");

    /* A trailing slash on the destination does not double the one in moved_to. */
    char *second = test_path("in/b.jpg");
    make_file(second, 2, 10);
    char *slashed = test_path("out/");
    move_ok(second, slashed, moved_to);
    ASSERT_STR_EQ(moved_to, test_path("out/b.jpg"));

    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_sort_move(NULL, out, moved_to, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_sort_move(source, NULL, moved_to, err), BLURD_EINVAL);
    return 0;
}

TEST_IMPL(sort_move_collision_numbering)
{
    char *in = test_path("in"), *out = test_path("out");
    make_directory(in);
    make_directory(out);
    uint64_t existing = make_file(test_path("out/a.jpg"), 1, 3000);
    char *source = test_path("in/a.jpg");
    char moved_to[PATH_MAX];

    uint64_t first = make_file(source, 2, 3000);
    move_ok(source, out, moved_to);
    ASSERT_STR_EQ(moved_to, test_path("out/a (1).jpg"));
    uint64_t second = make_file(source, 3, 3000);
    move_ok(source, out, moved_to);
    ASSERT_STR_EQ(moved_to, test_path("out/a (2).jpg"));
    ASSERT(!exists(source));

    /* Three different files, each still with its own bytes: nothing was overwritten. */
    ASSERT(existing != first && first != second && existing != second);
    ASSERT_INT_EQ(checksum(test_path("out/a.jpg")), existing);
    ASSERT_INT_EQ(checksum(test_path("out/a (1).jpg")), first);
    ASSERT_INT_EQ(checksum(test_path("out/a (2).jpg")), second);

    /* The number goes before the last extension; a leading dot is no extension; a gap in
     * the numbers is filled. */
    static const char *const names[][2] = {
        {"noext", "noext (1)"},
        {".hidden", ".hidden (1)"},
        {"archive.tar.gz", "archive.tar (1).gz"},
        {"b.jpg", "b (1).jpg"},
    };
    make_file(test_path("out/b.jpg"), 4, 10);
    make_file(test_path("out/b (2).jpg"), 5, 10);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char name[256], expected[256];
        snprintf(name, sizeof name, "out/%s", names[i][0]);
        if (!exists(test_path(name)))
            make_file(test_path(name), 6, 10);
        snprintf(name, sizeof name, "in/%s", names[i][0]);
        make_file(test_path(name), 7, 10);
        move_ok(test_path(name), out, moved_to);
        snprintf(expected, sizeof expected, "out/%s", names[i][1]);
        ASSERT_STR_EQ(moved_to, test_path(expected));
    }
    ASSERT_STR_EQ(list_directory(in), "");
    return 0;
}

TEST_IMPL(sort_move_vanished_source)
{
    char *out = test_path("out");
    char moved_to[PATH_MAX] = "";
    char err[BLURD_ERR_LEN] = "";
    char *source = test_path("gone.jpg");
    ASSERT_INT_EQ(blurd_sort_move(source, out, moved_to, err), BLURD_ENOENT);
    ASSERT_CONTAINS(err, source);
    ASSERT(!exists(out)); /* not even the destination was made */
    ASSERT_STR_EQ(list_directory(test_tmpdir()), "");

    /* The same through the store records nothing. */
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    ASSERT_INT_EQ(blurd_sort_move_recorded(store, source, out, moved_to, err), BLURD_ENOENT);
    ASSERT_STR_EQ(pending_count(database), "0");
    /* nor does it touch a batch the caller has open: the caller still owns it (the
     * daemon asks the store rather than assume a move committed it) */
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    ASSERT_INT_EQ(blurd_sort_move_recorded(store, source, out, moved_to, err), BLURD_ENOENT);
    ASSERT(blurd_store_in_transaction(store));
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0);
    blurd_store_close(store);
    ASSERT(!exists(out));
    return 0;
}

TEST_IMPL(sort_move_creates_destination)
{
    char *source = test_path("a.jpg");
    uint64_t sum = make_file(source, 1, 100);
    char *out = test_path("deep/er/Blurred");
    char moved_to[PATH_MAX];
    move_ok(source, out, moved_to);
    ASSERT_STR_EQ(moved_to, test_path("deep/er/Blurred/a.jpg"));
    ASSERT_INT_EQ(checksum(moved_to), sum);
    struct stat st;
    ASSERT_INT_EQ(stat(out, &st), 0);
    ASSERT(S_ISDIR(st.st_mode));
    mode_t mask = umask(0);
    umask(mask);
    ASSERT_INT_EQ(st.st_mode & 0777, 0755 & ~mask);

    /* A destination that is a file is an error that is not "vanished", and moves nothing. */
    char *blocker = test_path("file");
    make_file(blocker, 2, 1);
    source = test_path("b.jpg");
    make_file(source, 3, 10);
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_sort_move(source, blocker, moved_to, err), BLURD_EIO);
    ASSERT_CONTAINS(err, blocker);
    ASSERT(exists(source));
    ASSERT_INT_EQ(blurd_sort_move(source, test_path("file/sub"), moved_to, err), BLURD_EIO);
    ASSERT(exists(source));
    return 0;
}

TEST_IMPL(sort_move_symlink_and_directory)
{
    char *outside = test_path("outside.jpg");
    uint64_t sum = make_file(outside, 1, 100);
    char *in = test_path("in"), *out = test_path("out");
    make_directory(in);
    char *link = test_path("in/link.jpg");
    ASSERT_INT_EQ(symlink(outside, link), 0);
    char moved_to[PATH_MAX];
    move_ok(link, out, moved_to);

    /* The link itself moved; what it points to was neither followed nor touched. */
    struct stat st;
    ASSERT_INT_EQ(lstat(moved_to, &st), 0);
    ASSERT(S_ISLNK(st.st_mode));
    char target[PATH_MAX] = "";
    ASSERT(readlink(moved_to, target, sizeof target - 1) > 0);
    ASSERT_STR_EQ(target, outside);
    ASSERT(!exists(link));
    ASSERT_INT_EQ(checksum(outside), sum);

    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_sort_move(in, out, moved_to, err), BLURD_EISDIR);
    ASSERT(exists(in));
    return 0;
}

/* A directory on another file system than the test directory, or NULL with the reason
 * printed: /dev/shm is tmpfs on Linux, unless the tests themselves run there. */
static char *other_file_system(void)
{
    struct stat here, there;
    if (stat("/dev/shm", &there) != 0 || !S_ISDIR(there.st_mode)) {
        printf("     skipped: /dev/shm is missing, so no second file system to move across\n");
        return NULL;
    }
    if (stat(test_tmpdir(), &here) != 0)
        TEST_FAIL("stat %s: %s", test_tmpdir(), strerror(errno));
    if (here.st_dev == there.st_dev) {
        printf("     skipped: /dev/shm and %s are on one file system\n", test_tmpdir());
        return NULL;
    }
    static char directory[] = "/dev/shm/blurd-test-sort-XXXXXX";
    if (mkdtemp(directory) == NULL) {
        printf("     skipped: cannot create a directory in /dev/shm: %s\n", strerror(errno));
        return NULL;
    }
    return directory;
}

TEST_IMPL(sort_move_across_file_systems)
{
    char *elsewhere = other_file_system();
    if (elsewhere == NULL)
        return 0;
    char source[PATH_MAX], command[PATH_MAX + 32];
    snprintf(source, sizeof source, "%s/photo.jpg", elsewhere);
    /* Larger than one sendfile chunk of the page cache and not a multiple of a page. */
    uint64_t sum = make_file(source, 1, ((size_t)3 << 20) + 1234);
    ASSERT_INT_EQ(chmod(source, 0640), 0);
    const struct timespec times[2] = {{1600000000, 123456789}, {1500000000, 987654321}};
    ASSERT_INT_EQ(utimensat(AT_FDCWD, source, times, 0), 0);

    char *out = test_path("Undistorted");
    make_directory(out);
    uint64_t existing = make_file(test_path("Undistorted/photo.jpg"), 2, 100);
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    put_judged(store, source);
    char moved_to[PATH_MAX], err[BLURD_ERR_LEN] = "";
    int code = blurd_sort_move_recorded(store, source, out, moved_to, err);
    if (code != 0)
        TEST_FAIL("blurd_sort_move_recorded: %s: %s", blurd_error_name(code), err);
    blurd_store_close(store);

    /* Same bytes under a free name, nothing overwritten, source gone, no temporary left. */
    ASSERT_STR_EQ(moved_to, test_path("Undistorted/photo (1).jpg"));
    ASSERT_INT_EQ(checksum(moved_to), sum);
    ASSERT_INT_EQ(checksum(test_path("Undistorted/photo.jpg")), existing);
    ASSERT(!exists(source));
    ASSERT_STR_EQ(list_directory(out), "photo (1).jpg\nphoto.jpg\n");
    ASSERT_STR_EQ(list_directory(elsewhere), "");
    struct stat st;
    ASSERT_INT_EQ(stat(moved_to, &st), 0);
    ASSERT_INT_EQ(st.st_mode & 0777, 0640);
    ASSERT_INT_EQ(st.st_mtim.tv_sec, 1500000000);
    ASSERT_INT_EQ(st.st_mtim.tv_nsec, 987654321);
    ASSERT_STR_EQ(moved_to_of(database, source), moved_to);
    ASSERT_STR_EQ(pending_count(database), "0");

    /* A symbolic link is not copied across: refused, left in place. */
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/link.jpg", elsewhere);
    ASSERT_INT_EQ(symlink(moved_to, link), 0);
    ASSERT_INT_EQ(blurd_sort_move(link, out, moved_to, err), BLURD_EINVAL);
    ASSERT(exists(link));
    ASSERT_STR_EQ(list_directory(out), "photo (1).jpg\nphoto.jpg\n");

    snprintf(command, sizeof command, "rm -rf '%s'", elsewhere);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    return 0;
}

TEST_IMPL(sort_move_recorded_sets_moved_to)
{
    char *in = test_path("in");
    make_directory(in);
    char *source = test_path("in/a.jpg"), *out = test_path("Blurred");
    uint64_t sum = make_file(source, 1, 500);
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    char err[BLURD_ERR_LEN] = "";
    /* The daemon's batch is still open when it moves: the move commits it first. */
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    put_judged(store, source);
    char moved_to[PATH_MAX];
    int code = blurd_sort_move_recorded(store, source, out, moved_to, err);
    if (code != 0)
        TEST_FAIL("blurd_sort_move_recorded: %s: %s", blurd_error_name(code), err);
    ASSERT_STR_EQ(moved_to, test_path("Blurred/a.jpg"));
    ASSERT_INT_EQ(checksum(moved_to), sum);
    ASSERT(!exists(source));
    ASSERT_STR_EQ(moved_to_of(database, source), moved_to);
    ASSERT_STR_EQ(pending_count(database), "0");

    /* A failed move clears its intent and leaves the source. */
    char *blocker = test_path("file");
    make_file(blocker, 2, 1);
    make_file(source, 3, 10);
    ASSERT_INT_EQ(blurd_sort_move_recorded(store, source, blocker, moved_to, err), BLURD_EIO);
    ASSERT(exists(source));
    ASSERT_STR_EQ(pending_count(database), "0");
    ASSERT_INT_EQ(blurd_sort_move_recorded(NULL, source, out, moved_to, err), BLURD_EINVAL);
    blurd_store_close(store);
    return 0;
}

/* Set by a test to play a file system that cannot refuse to replace in rename (some FUSE
 * and network file systems): renameat2 with any flag then fails with EINVAL, as there.
 * Each test runs in its own process, so the setting never reaches another test. */
static int rename_flags_unsupported, renames_refused;

/* Interposes glibc's renameat2 for the whole runner (the executable's definition wins);
 * without the setting above it is the plain system call. */
int renameat2(int old_directory, const char *old_path, int new_directory, const char *new_path,
              unsigned int flags)
{
    if (rename_flags_unsupported && flags != 0) {
        renames_refused++;
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_renameat2, old_directory, old_path, new_directory, new_path, flags);
}

TEST_IMPL(sort_move_without_rename_noreplace)
{
    rename_flags_unsupported = 1;
    char *in = test_path("in"), *out = test_path("out");
    make_directory(in);
    make_directory(out);
    uint64_t existing = make_file(test_path("out/a.jpg"), 1, 3000);
    char *source = test_path("in/a.jpg");
    uint64_t sum = make_file(source, 2, 3000);
    char moved_to[PATH_MAX];
    move_ok(source, out, moved_to);
    /* link() refused the taken name just as the rename would have. */
    ASSERT_STR_EQ(moved_to, test_path("out/a (1).jpg"));
    ASSERT_INT_EQ(checksum(moved_to), sum);
    ASSERT_INT_EQ(checksum(test_path("out/a.jpg")), existing);
    ASSERT(!exists(source));
    struct stat st;
    ASSERT_INT_EQ(stat(moved_to, &st), 0);
    ASSERT_INT_EQ(st.st_nlink, 1);
    ASSERT_INT_EQ(renames_refused, 1); /* so the move above went by link() + unlink() */

    /* Across file systems link() fails with EXDEV, and the copy goes the same way. */
    char *elsewhere = other_file_system();
    if (elsewhere == NULL)
        return 0;
    char across[PATH_MAX], command[PATH_MAX + 32];
    snprintf(across, sizeof across, "%s/a.jpg", elsewhere);
    sum = make_file(across, 3, 5000);
    move_ok(across, out, moved_to);
    ASSERT_STR_EQ(moved_to, test_path("out/a (2).jpg"));
    ASSERT_INT_EQ(checksum(moved_to), sum);
    ASSERT(!exists(across));
    ASSERT_INT_EQ(renames_refused, 3); /* the source's rename, then the copy's */
    ASSERT_STR_EQ(list_directory(out), "a (1).jpg\na (2).jpg\na.jpg\n");
    snprintf(command, sizeof command, "rm -rf '%s'", elsewhere);
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    return 0;
}

/* (a) The intent was recorded and its target noted; blurd died before the rename. */
TEST_IMPL(sort_recover_before_rename_rolls_back)
{
    char *source = test_path("a.jpg"), *out = test_path("Blurred");
    uint64_t sum = make_file(source, 1, 100);
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    put_judged(store, source);
    stage_intent(store, source, out, test_path("Blurred/a.jpg"), NULL);

    ASSERT_INT_EQ(recover(store), 1);
    ASSERT_STR_EQ(pending_count(database), "0");
    ASSERT_INT_EQ(checksum(source), sum);
    ASSERT(!exists(test_path("Blurred/a.jpg")));
    ASSERT_STR_EQ(moved_to_of(database, source), "(null)");
    ASSERT_STR_EQ(stale(database, source), "1"); /* so the daemon's scan judges it again */
    ASSERT_INT_EQ(recover(store), 0);            /* nothing left to do */
    blurd_store_close(store);
    return 0;
}

/* (b) The rename happened; blurd died before marking the move done. */
TEST_IMPL(sort_recover_after_rename_marks_done)
{
    char *source = test_path("a.jpg"), *out = test_path("Blurred");
    char *target = test_path("Blurred/a (1).jpg");
    uint64_t sum = make_file(source, 1, 100);
    make_directory(out);
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    put_judged(store, source);
    stage_intent(store, source, out, target, NULL);
    ASSERT_INT_EQ(rename(source, target), 0);

    ASSERT_INT_EQ(recover(store), 1);
    ASSERT_STR_EQ(pending_count(database), "0");
    ASSERT_STR_EQ(moved_to_of(database, source), target);
    ASSERT_STR_EQ(stale(database, source), "0");
    ASSERT_INT_EQ(checksum(target), sum);
    blurd_store_close(store);
    return 0;
}

/* (c) A move across file systems had its copy complete under the target name and was
 * about to unlink the source; beside it, two look-alikes that must not be finished. */
TEST_IMPL(sort_recover_copy_complete_finishes)
{
    char *out = test_path("Undistorted");
    make_directory(out);
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);

    char *copied = test_path("copied.jpg"), *copied_target = test_path("Undistorted/copied.jpg");
    uint64_t sum = make_file(copied, 1, 70000);
    make_file(copied_target, 1, 70000);
    put_judged(store, copied);
    stage_intent(store, copied, out, copied_target,
                 test_path("Undistorted/.copied.jpg.blurd-AbC123"));

    /* The target holds other bytes: someone else's file, so the move is rolled back. */
    char *other = test_path("other.jpg"), *other_target = test_path("Undistorted/other.jpg");
    uint64_t other_sum = make_file(other, 2, 70000);
    uint64_t other_target_sum = make_file(other_target, 3, 70000);
    put_judged(store, other);
    stage_intent(store, other, out, other_target, test_path("Undistorted/.other.jpg.blurd-x"));

    /* A rename (no temporary) whose target has equal bytes is not proof either. */
    char *twin = test_path("twin.jpg"), *twin_target = test_path("Undistorted/twin.jpg");
    make_file(twin, 4, 100);
    make_file(twin_target, 4, 100);
    stage_intent(store, twin, out, twin_target, NULL);

    /* link() + unlink() on a file system without RENAME_NOREPLACE, stopped in between:
     * both names are one inode, so finishing loses nothing. */
    char *linked = test_path("linked.jpg"), *linked_target = test_path("Undistorted/linked.jpg");
    uint64_t linked_sum = make_file(linked, 5, 100);
    ASSERT_INT_EQ(link(linked, linked_target), 0);
    put_judged(store, linked);
    stage_intent(store, linked, out, linked_target, NULL);

    ASSERT_INT_EQ(recover(store), 4);
    ASSERT_STR_EQ(pending_count(database), "0");
    ASSERT(!exists(copied));
    ASSERT_INT_EQ(checksum(copied_target), sum);
    ASSERT_STR_EQ(moved_to_of(database, copied), copied_target);
    ASSERT_INT_EQ(checksum(other), other_sum);
    ASSERT_INT_EQ(checksum(other_target), other_target_sum);
    ASSERT_STR_EQ(stale(database, other), "1");
    ASSERT_STR_EQ(moved_to_of(database, other), "(null)");
    ASSERT(exists(twin) && exists(twin_target));
    ASSERT(!exists(linked));
    ASSERT_INT_EQ(checksum(linked_target), linked_sum);
    ASSERT_STR_EQ(moved_to_of(database, linked), linked_target);
    blurd_store_close(store);
    return 0;
}

/* (d) blurd died while copying across file systems: a half-written temporary. */
TEST_IMPL(sort_recover_half_copy_removed)
{
    char *source = test_path("a.jpg"), *out = test_path("Blurred");
    uint64_t sum = make_file(source, 1, 10000);
    make_directory(out);
    char *temporary = test_path("Blurred/.a.jpg.blurd-Q1w2E3");
    size_t n = 0;
    char *data = test_read_file(source, &n);
    test_write_file(temporary, data, n / 2);
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    put_judged(store, source);
    stage_intent(store, source, out, NULL, temporary);

    ASSERT_INT_EQ(recover(store), 1);
    ASSERT_STR_EQ(pending_count(database), "0");
    ASSERT(!exists(temporary));
    ASSERT_INT_EQ(checksum(source), sum);
    ASSERT_STR_EQ(list_directory(out), "");
    ASSERT_STR_EQ(moved_to_of(database, source), "(null)");
    ASSERT_STR_EQ(stale(database, source), "1");
    blurd_store_close(store);
    return 0;
}

/* (e) The file is in neither place: someone removed it while the move was pending. */
TEST_IMPL(sort_recover_vanished_forgotten)
{
    char *database = test_path("blurd.db");
    blurd_store *store = open_store(database);
    char *source = test_path("gone.jpg");
    put_judged(store, source);
    stage_intent(store, source, test_path("Blurred"), test_path("Blurred/gone.jpg"), NULL);
    stage_intent(store, test_path("never-noted.jpg"), test_path("Blurred"), NULL, NULL);

    ASSERT_INT_EQ(recover(store), 2);
    ASSERT_STR_EQ(pending_count(database), "0");
    ASSERT_STR_EQ(moved_to_of(database, source), "(null)");
    ASSERT_STR_EQ(stale(database, source), "0"); /* nothing to judge again */
    ASSERT(!exists(test_path("Blurred")));
    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_sort_recover(NULL, err), BLURD_EINVAL);
    blurd_store_close(store);
    return 0;
}
