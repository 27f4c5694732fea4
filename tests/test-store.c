/* test-store.c - the results database on real SQLite files: schema, versioning, upsert, WAL
 * readers, and the files blurd must refuse.  Rows are read back through a second SQLite
 * connection and once through the sqlite3 command-line tool, as users read them. */
#include "blurd/error.h"
#include "blurd/store.h"
#include "test.h"

#include <sqlite3.h>
#include <string.h>

/* A complete, valid row for `path`. */
static struct blurd_store_row sample_row(const char *path)
{
    struct blurd_store_row row = {
        .path = path,
        .size = 123456,
        .mtime_ns = INT64_C(1700000000123456789),
        .width = 4000,
        .height = 3000,
        .format = "jpeg",
        .p_blurred = 0.875,
        .verdict = "blurred",
        .model_hash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        .model_name = "default",
        .input_mode = "tiles",
        .milliseconds = 41.5,
        .moved_to = NULL,
        .error = NULL,
    };
    return row;
}

static blurd_store *open_store(const char *path)
{
    blurd_store *store = NULL;
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_store_open(&store, path, err);
    if (code != 0)
        TEST_FAIL("blurd_store_open: %s: %s", blurd_error_name(code), err);
    ASSERT(store != NULL);
    return store;
}

static void put_row(blurd_store *store, const struct blurd_store_row *row)
{
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_store_put(store, row, err);
    if (code != 0)
        TEST_FAIL("blurd_store_put: %s: %s", blurd_error_name(code), err);
}

/* A plain SQLite connection of the kind `sqlite3` opens, separate from the store's. */
static sqlite3 *open_reader(const char *path)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK)
        TEST_FAIL("sqlite3_open_v2 %s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    return db;
}

/* The single integer `sql` returns. */
static long long query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *statement = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, NULL) != SQLITE_OK)
        TEST_FAIL("prepare %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(statement) != SQLITE_ROW)
        TEST_FAIL("step %s: %s", sql, sqlite3_errmsg(db));
    long long value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    return value;
}

/* The single text `sql` returns, copied into `buffer` ("(null)" for NULL). */
static const char *query_text(sqlite3 *db, const char *sql, char *buffer, size_t size)
{
    sqlite3_stmt *statement = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &statement, NULL) != SQLITE_OK)
        TEST_FAIL("prepare %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(statement) != SQLITE_ROW)
        TEST_FAIL("step %s: %s", sql, sqlite3_errmsg(db));
    const unsigned char *text = sqlite3_column_text(statement, 0);
    snprintf(buffer, size, "%s", text != NULL ? (const char *)text : "(null)");
    sqlite3_finalize(statement);
    return buffer;
}

static void execute(sqlite3 *db, const char *sql)
{
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK)
        TEST_FAIL("%s: %s", sql, message ? message : "?");
}

/* True when `text` looks like 2024-05-01T09:30:12.345Z. */
static int is_utc_milliseconds(const char *text)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(text) != sizeof pattern - 1)
        return 0;
    for (size_t i = 0; pattern[i] != '\0'; i++) {
        if (pattern[i] == 'd' ? (text[i] < '0' || text[i] > '9') : text[i] != pattern[i])
            return 0;
    }
    return 1;
}

TEST_IMPL(store_create_put_read)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    struct blurd_store_row row = sample_row("/photos/a b'c.jpg");
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    put_row(store, &row);
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0);
    blurd_store_close(store);

    sqlite3 *db = open_reader(path);
    sqlite3_stmt *statement = NULL;
    ASSERT_INT_EQ(sqlite3_prepare_v2(db,
                                     "SELECT path, size, mtime, width, height, format, "
                                     "p_blurred, verdict, model_hash, model_name, input_mode, "
                                     "classified_at, milliseconds, moved_to, error, id "
                                     "FROM images",
                                     -1, &statement, NULL),
                  SQLITE_OK);
    ASSERT_INT_EQ(sqlite3_step(statement), SQLITE_ROW);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(statement, 0), "/photos/a b'c.jpg");
    ASSERT_INT_EQ(sqlite3_column_int64(statement, 1), 123456);
    ASSERT_INT_EQ(sqlite3_column_int64(statement, 2), INT64_C(1700000000123456789));
    ASSERT_INT_EQ(sqlite3_column_int(statement, 3), 4000);
    ASSERT_INT_EQ(sqlite3_column_int(statement, 4), 3000);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(statement, 5), "jpeg");
    ASSERT_INT_EQ(sqlite3_column_type(statement, 6), SQLITE_FLOAT);
    ASSERT_NEAR(sqlite3_column_double(statement, 6), 0.875, 0.0);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(statement, 7), "blurred");
    ASSERT_STR_EQ((const char *)sqlite3_column_text(statement, 8), row.model_hash);
    ASSERT_STR_EQ((const char *)sqlite3_column_text(statement, 9), "default");
    ASSERT_STR_EQ((const char *)sqlite3_column_text(statement, 10), "tiles");
    const char *classified_at = (const char *)sqlite3_column_text(statement, 11);
    ASSERT(classified_at != NULL);
    if (!is_utc_milliseconds(classified_at))
        TEST_FAIL("classified_at \"%s\" is not UTC ISO 8601 with milliseconds", classified_at);
    ASSERT_NEAR(sqlite3_column_double(statement, 12), 41.5, 0.0);
    ASSERT_INT_EQ(sqlite3_column_type(statement, 13), SQLITE_NULL);
    ASSERT_INT_EQ(sqlite3_column_type(statement, 14), SQLITE_NULL);
    ASSERT_INT_EQ(sqlite3_column_type(statement, 15), SQLITE_INTEGER);
    ASSERT_INT_EQ(sqlite3_step(statement), SQLITE_DONE);
    sqlite3_finalize(statement);
    sqlite3_close(db);

    /* The schema is a public interface: the command-line tool reads it as users will. */
    char command[4096];
    snprintf(command, sizeof command,
             "sqlite3 -batch -separator '|' '%s' "
             "\"SELECT path, verdict, width, input_mode FROM images WHERE verdict = 'blurred' "
             "ORDER BY classified_at DESC\"",
             path);
    char *out = NULL, *stderr_text = NULL;
    int status = test_run(command, &out, &stderr_text);
    if (status != 0)
        TEST_FAIL("%s exited %d: %s", command, status, stderr_text);
    ASSERT_STR_EQ(out, "/photos/a b'c.jpg|blurred|4000|tiles\n");
    free(out);
    free(stderr_text);
    return 0;
}

TEST_IMPL(store_schema_version)
{
    const char *path = test_path("blurd.db");
    blurd_store_close(open_store(path));

    sqlite3 *db = open_reader(path);
    ASSERT_INT_EQ(query_int(db, "PRAGMA user_version"), 2);
    ASSERT_INT_EQ(query_int(db, "PRAGMA application_id"), 0x626c7264);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND "
                                "name IN ('images_path', 'images_verdict', "
                                "'images_classified_at')"),
                  3);
    ASSERT_INT_EQ(query_int(db, "SELECT \"unique\" FROM pragma_index_list('images') "
                                "WHERE name = 'images_path'"),
                  1);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM pragma_table_info('images')"), 16);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM pragma_table_info('moves') WHERE name IN "
                                "('id', 'source', 'destination', 'target', 'temporary', "
                                "'started_at')"),
                  6);
    sqlite3_close(db);
    return 0;
}

TEST_IMPL(store_journal_mode_wal)
{
    const char *path = test_path("blurd.db");
    blurd_store_close(open_store(path));

    /* WAL is a property of the file: a fresh connection finds it without asking. */
    sqlite3 *db = open_reader(path);
    char mode[32];
    ASSERT_STR_EQ(query_text(db, "PRAGMA journal_mode", mode, sizeof mode), "wal");
    sqlite3_close(db);

    /* An in-memory database cannot use WAL, and the store says so instead of going on. */
    blurd_store *store = NULL;
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_open(&store, ":memory:", err), BLURD_EDB);
    ASSERT(store == NULL);
    ASSERT_CONTAINS(err, ":memory:");
    ASSERT_CONTAINS(err, "WAL");
    return 0;
}

TEST_IMPL(store_upsert_replaces)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    struct blurd_store_row first = sample_row("/photos/same.jpg");
    struct blurd_store_row other = sample_row("/photos/other.jpg");
    put_row(store, &first); /* outside a transaction: commits on its own */
    put_row(store, &other);

    sqlite3 *db = open_reader(path);
    long long id = query_int(db, "SELECT id FROM images WHERE path = '/photos/same.jpg'");

    struct blurd_store_row second = sample_row("/photos/same.jpg");
    second.p_blurred = 0.125;
    second.verdict = "clear";
    second.width = 800;
    second.height = 600;
    second.size = -1;
    second.moved_to = "/photos/Undistorted/same.jpg";
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    put_row(store, &second);
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0);

    char text[256];
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 2);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images WHERE path = '/photos/same.jpg'"), 1);
    ASSERT_INT_EQ(query_int(db, "SELECT id FROM images WHERE path = '/photos/same.jpg'"), id);
    ASSERT_STR_EQ(query_text(db,
                             "SELECT verdict || ' ' || p_blurred || ' ' || width || 'x' || height "
                             "FROM images WHERE path = '/photos/same.jpg'",
                             text, sizeof text),
                  "clear 0.125 800x600");
    ASSERT_INT_EQ(query_int(db, "SELECT size IS NULL FROM images WHERE path = '/photos/same.jpg'"),
                  1);
    ASSERT_STR_EQ(query_text(db, "SELECT moved_to FROM images WHERE path = '/photos/same.jpg'",
                             text, sizeof text),
                  "/photos/Undistorted/same.jpg");
    ASSERT_STR_EQ(query_text(db, "SELECT verdict FROM images WHERE path = '/photos/other.jpg'",
                             text, sizeof text),
                  "blurred");
    sqlite3_close(db);

    /* A verdict the schema does not know is a caller's bug, refused before SQLite sees it. */
    second.verdict = "maybe";
    ASSERT_INT_EQ(blurd_store_put(store, &second, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "maybe");
    second.path = NULL;
    ASSERT_INT_EQ(blurd_store_put(store, &second, err), BLURD_EINVAL);
    blurd_store_close(store);
    return 0;
}

TEST_IMPL(store_error_row)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    struct blurd_store_row row = {
        .path = "/photos/broken.jpg",
        .size = 17,
        .mtime_ns = 5,
        .p_blurred = 0.99, /* must be ignored: there is no verdict */
        .verdict = NULL,
        .milliseconds = 0.5,
        .error = "cannot decode image: premature end of JPEG file",
    };
    put_row(store, &row);
    blurd_store_close(store);

    sqlite3 *db = open_reader(path);
    char text[256];
    ASSERT_INT_EQ(query_int(db, "SELECT verdict IS NULL AND p_blurred IS NULL AND width IS NULL "
                                "AND height IS NULL AND format IS NULL AND model_hash IS NULL "
                                "FROM images"),
                  1);
    ASSERT_STR_EQ(query_text(db, "SELECT error FROM images", text, sizeof text),
                  "cannot decode image: premature end of JPEG file");
    ASSERT_INT_EQ(query_int(db, "SELECT size FROM images"), 17);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images WHERE classified_at IS NOT NULL"), 1);
    sqlite3_close(db);
    return 0;
}

TEST_IMPL(store_reopen_keeps_data)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    struct blurd_store_row row = sample_row("/photos/1.jpg");
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    put_row(store, &row);
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0);
    blurd_store_close(store);

    /* Reopening migrates nothing and keeps the row; close commits what is still open. */
    store = open_store(path);
    row.path = "/photos/2.jpg";
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    put_row(store, &row);
    blurd_store_close(store);

    sqlite3 *db = open_reader(path);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 2);
    ASSERT_INT_EQ(query_int(db, "PRAGMA user_version"), 2);
    sqlite3_close(db);
    return 0;
}

TEST_IMPL(store_newer_schema_refused)
{
    const char *path = test_path("blurd.db");
    blurd_store_close(open_store(path));
    sqlite3 *db = open_reader(path);
    execute(db, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 3");
    sqlite3_close(db);

    int not_a_store = 0;
    blurd_store *store = (blurd_store *)&not_a_store; /* a failed open must reset it to NULL */
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_open(&store, path, err), BLURD_EDB);
    ASSERT(store == NULL);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "schema version 3 is newer");

    /* Refused means untouched: not even the journal mode was changed. */
    db = open_reader(path);
    char mode[32];
    ASSERT_INT_EQ(query_int(db, "PRAGMA user_version"), 3);
    ASSERT_STR_EQ(query_text(db, "PRAGMA journal_mode", mode, sizeof mode), "delete");
    sqlite3_close(db);
    return 0;
}

TEST_IMPL(store_garbage_refused)
{
    /* Short files and page-sized ones take different paths inside SQLite. */
    static const char *const contents[] = {"hello", NULL};
    char page[8192];
    uint64_t state = 7;
    for (size_t i = 0; i < sizeof page; i++)
        page[i] = (char)test_random_next(&state);
    for (int i = 0; i < 2; i++) {
        const char *path = test_path(i == 0 ? "short.db" : "random.db");
        if (contents[i] != NULL)
            test_write_file(path, contents[i], strlen(contents[i]));
        else
            test_write_file(path, page, sizeof page);
        blurd_store *store = NULL;
        char err[BLURD_ERR_LEN] = "";
        ASSERT_INT_EQ(blurd_store_open(&store, path, err), BLURD_EDB);
        ASSERT(store == NULL);
        ASSERT_CONTAINS(err, path);
        ASSERT_CONTAINS(err, "file is not a database");
        size_t n = 0;
        free(test_read_file(path, &n));
        ASSERT_INT_EQ(n, contents[i] != NULL ? strlen(contents[i]) : sizeof page);
    }
    return 0;
}

TEST_IMPL(store_foreign_database_refused)
{
    const char *path = test_path("notes.db");
    sqlite3 *db = NULL;
    ASSERT(sqlite3_open(path, &db) == SQLITE_OK);
    execute(db, "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me')");
    sqlite3_close(db);

    blurd_store *store = NULL;
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_open(&store, path, err), BLURD_EDB);
    ASSERT(store == NULL);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "not a blurd database");

    db = open_reader(path);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'images'"), 0);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM notes"), 1);
    sqlite3_close(db);
    return 0;
}

TEST_IMPL(store_open_errors_name_the_path)
{
    const char *path = test_path("no-such-directory/blurd.db");
    blurd_store *store = NULL;
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_open(&store, path, err), BLURD_ENOENT);
    ASSERT(store == NULL);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "unable to open database file");

    ASSERT_INT_EQ(blurd_store_open(&store, "", err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_store_open(NULL, path, err), BLURD_EINVAL);
    blurd_store_close(NULL);
    return 0;
}

TEST_IMPL(store_reader_during_write)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    struct blurd_store_row row = sample_row("/photos/committed.jpg");
    put_row(store, &row);

    /* A reader in the middle of a long query: its read transaction stays open throughout. */
    sqlite3 *db = open_reader(path);
    sqlite3_busy_timeout(db, 0);
    execute(db, "BEGIN");
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 1);

    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    row.path = "/photos/pending.jpg";
    put_row(store, &row);

    /* Another process reads while the writer's transaction is open, as
     * `sqlite3 blurd.db 'select ...'` does while the daemon writes, and sees committed rows. */
    char command[4096];
    snprintf(command, sizeof command, "sqlite3 -batch '%s' 'SELECT path FROM images'", path);
    char *out = NULL;
    ASSERT_INT_EQ(test_run(command, &out, NULL), 0);
    ASSERT_STR_EQ(out, "/photos/committed.jpg\n");
    free(out);

    /* A second writer must wait: the store took the write lock at begin. */
    sqlite3 *writer = open_reader(path);
    sqlite3_busy_timeout(writer, 0);
    ASSERT_INT_EQ(sqlite3_exec(writer, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_BUSY);
    sqlite3_close(writer);

    /* The commit goes through although the reader still holds its snapshot; in a
     * rollback-journal database it would wait for the reader and fail after the busy timeout. */
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 1);
    execute(db, "COMMIT");
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 2);
    sqlite3_close(db);

    /* commit without begin is an error the caller hears about, naming the file. */
    ASSERT_INT_EQ(blurd_store_commit(store, err), BLURD_EDB);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "no transaction is active");
    blurd_store_close(store);
    return 0;
}

TEST_IMPL(store_migrates_version_1)
{
    /* A database as blurd 0.1 left it: schema version 1, exactly as its migration made it
     * (copied here, not taken from store.c, because the field's files do not change). */
    const char *path = test_path("old.db");
    sqlite3 *db = NULL;
    ASSERT(sqlite3_open(path, &db) == SQLITE_OK);
    execute(db, "PRAGMA journal_mode = WAL;"
                "PRAGMA application_id = 1651274340;" /* 0x626c7264, "blrd" */
                "BEGIN;"
                "CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT NOT NULL, size INTEGER,"
                " mtime INTEGER, width INTEGER, height INTEGER, format TEXT, p_blurred REAL,"
                " verdict TEXT, model_hash TEXT, model_name TEXT, input_mode TEXT,"
                " classified_at TEXT, milliseconds REAL, moved_to TEXT, error TEXT);"
                "CREATE UNIQUE INDEX images_path ON images (path);"
                "CREATE INDEX images_verdict ON images (verdict, classified_at);"
                "CREATE INDEX images_classified_at ON images (classified_at);"
                "INSERT INTO images (path, size, mtime, verdict, p_blurred)"
                " VALUES ('/photos/old.jpg', 10, 20, 'clear', 0.25);"
                "PRAGMA user_version = 1;"
                "COMMIT;");
    ASSERT_INT_EQ(query_int(db, "PRAGMA user_version"), 1);
    sqlite3_close(db);

    blurd_store *store = open_store(path);
    char err[BLURD_ERR_LEN] = "";
    int64_t id = 0;
    ASSERT_INT_EQ(blurd_store_move_begin(store, "/photos/old.jpg", "/photos/Undistorted", &id, err),
                  0);
    blurd_store_close(store);

    db = open_reader(path);
    ASSERT_INT_EQ(query_int(db, "PRAGMA user_version"), 2);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                                "name = 'moves'"),
                  1);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM pragma_table_info('moves')"), 6);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM moves WHERE source = '/photos/old.jpg'"), 1);
    /* The old rows are kept as they were. */
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images WHERE path = '/photos/old.jpg' AND "
                                "size = 10 AND mtime = 20 AND verdict = 'clear'"),
                  1);
    sqlite3_close(db);

    /* Opening a current database again migrates nothing. */
    blurd_store_close(open_store(path));
    db = open_reader(path);
    ASSERT_INT_EQ(query_int(db, "PRAGMA user_version"), 2);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM moves"), 1);
    sqlite3_close(db);
    return 0;
}

TEST_IMPL(store_lookup)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    struct blurd_store_row row = sample_row("/photos/known.jpg");
    put_row(store, &row);
    row.path = "/photos/unknown-size.jpg";
    row.size = -1;
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    put_row(store, &row); /* still uncommitted: the lookup must see it anyway */

    int64_t size = 7, mtime = 7;
    int found = -1;
    ASSERT_INT_EQ(blurd_store_lookup(store, "/photos/known.jpg", &size, &mtime, &found, err), 0);
    ASSERT_INT_EQ(found, 1);
    ASSERT_INT_EQ(size, 123456);
    ASSERT_INT_EQ(mtime, INT64_C(1700000000123456789));
    ASSERT_INT_EQ(blurd_store_lookup(store, "/photos/unknown-size.jpg", &size, &mtime, &found, err),
                  0);
    ASSERT_INT_EQ(found, 1);
    ASSERT_INT_EQ(size, -1);
    size = 7;
    mtime = 7;
    ASSERT_INT_EQ(blurd_store_lookup(store, "/photos/none.jpg", &size, &mtime, &found, err), 0);
    ASSERT_INT_EQ(found, 0);
    ASSERT_INT_EQ(size, 7);
    ASSERT_INT_EQ(mtime, 7);
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0); /* the lookups left the batch open */
    /* a file moved away leaves no file at its path: a new arrival there is unknown */
    row.path = "/photos/moved.jpg";
    row.moved_to = "/photos/Blurred/moved.jpg";
    put_row(store, &row);
    ASSERT_INT_EQ(blurd_store_lookup(store, "/photos/moved.jpg", &size, &mtime, &found, err), 0);
    ASSERT_INT_EQ(found, 0);
    ASSERT_INT_EQ(blurd_store_lookup(store, NULL, &size, &mtime, &found, err), BLURD_EINVAL);
    blurd_store_close(store);
    return 0;
}

/* Records what blurd_store_moves_pending reports, one line per intent. */
struct pending_list {
    char text[4096];
    int calls, stop_after;
};

static int list_pending(void *arg, int64_t id, const char *source, const char *destination,
                        const char *target, const char *temporary)
{
    struct pending_list *list = arg;
    size_t used = strlen(list->text);
    snprintf(list->text + used, sizeof list->text - used, "%lld %s %s %s %s\n", (long long)id,
             source, destination, target != NULL ? target : "-",
             temporary != NULL ? temporary : "-");
    return ++list->calls == list->stop_after ? 42 : 0;
}

TEST_IMPL(store_move_intents)
{
    const char *path = test_path("blurd.db");
    blurd_store *store = open_store(path);
    sqlite3 *db = open_reader(path);
    char err[BLURD_ERR_LEN] = "";
    char text[256];

    /* begin commits a batch the caller has open, then its own row, before returning. */
    struct blurd_store_row row = sample_row("/in/a.jpg");
    ASSERT(!blurd_store_in_transaction(store));
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    ASSERT(blurd_store_in_transaction(store));
    put_row(store, &row);
    int64_t a = 0, b = 0, c = 0;
    ASSERT_INT_EQ(blurd_store_move_begin(store, "/in/a.jpg", "/in/Blurred", &a, err), 0);
    ASSERT(!blurd_store_in_transaction(store));
    ASSERT(a > 0);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 1);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM moves WHERE target IS NULL AND "
                                "temporary IS NULL AND started_at IS NOT NULL"),
                  1);
    ASSERT_INT_EQ(blurd_store_commit(store, err), BLURD_EDB); /* nothing left open */
    ASSERT_INT_EQ(blurd_store_move_begin(store, "/in/b.jpg", "/in/Undistorted", &b, err), 0);
    ASSERT_INT_EQ(blurd_store_move_begin(store, "/in/c.jpg", "/in/Blurred", &c, err), 0);
    ASSERT(a < b && b < c);

    /* note replaces both paths and is visible to other readers at once. */
    ASSERT_INT_EQ(blurd_store_move_note(store, a, "/in/Blurred/a.jpg", NULL, err), 0);
    ASSERT_INT_EQ(blurd_store_move_note(store, b, NULL, "/in/Undistorted/.b.jpg.blurd-x", err), 0);
    ASSERT_INT_EQ(blurd_store_move_note(store, b, "/in/Undistorted/b.jpg",
                                        "/in/Undistorted/.b.jpg.blurd-x", err),
                  0);
    ASSERT_STR_EQ(query_text(db,
                             "SELECT target || ' ' || temporary FROM moves WHERE source = "
                             "'/in/b.jpg'",
                             text, sizeof text),
                  "/in/Undistorted/b.jpg /in/Undistorted/.b.jpg.blurd-x");

    struct pending_list list = {.text = ""};
    ASSERT_INT_EQ(blurd_store_moves_pending(store, list_pending, &list, err), 0);
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%lld /in/a.jpg /in/Blurred /in/Blurred/a.jpg -\n"
             "%lld /in/b.jpg /in/Undistorted /in/Undistorted/b.jpg "
             "/in/Undistorted/.b.jpg.blurd-x\n"
             "%lld /in/c.jpg /in/Blurred - -\n",
             (long long)a, (long long)b, (long long)c);
    ASSERT_STR_EQ(list.text, expected);
    /* A callback's nonzero value stops the walk and comes back. */
    struct pending_list first = {.text = "", .stop_after = 1};
    ASSERT_INT_EQ(blurd_store_moves_pending(store, list_pending, &first, err), 42);
    ASSERT_INT_EQ(first.calls, 1);

    /* done records where the file went on its row and clears the intent together; a move
     * of a file without a row clears the intent only. */
    ASSERT_INT_EQ(blurd_store_move_done(store, a, "/in/Blurred/a (1).jpg", err), 0);
    ASSERT_STR_EQ(
        query_text(db, "SELECT moved_to FROM images WHERE path = '/in/a.jpg'", text, sizeof text),
        "/in/Blurred/a (1).jpg");
    ASSERT_INT_EQ(blurd_store_move_done(store, b, "/in/Undistorted/b.jpg", err), 0);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM images"), 1);
    ASSERT_INT_EQ(blurd_store_move_forget(store, c, err), 0);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM moves"), 0);
    struct pending_list none = {.text = ""};
    ASSERT_INT_EQ(blurd_store_moves_pending(store, list_pending, &none, err), 0);
    ASSERT_INT_EQ(none.calls, 0);

    /* A rollback marks the source's row stale, so that a lookup no longer matches the
     * file, and clears the intent; the judgement itself stays until it is redone. */
    int64_t d = 0;
    ASSERT_INT_EQ(blurd_store_move_begin(store, "/in/a.jpg", "/in/Blurred", &d, err), 0);
    ASSERT_INT_EQ(blurd_store_move_rolled_back(store, d, err), 0);
    ASSERT_INT_EQ(query_int(db, "SELECT size IS NULL AND mtime IS NULL AND verdict = 'blurred' "
                                "FROM images WHERE path = '/in/a.jpg'"),
                  1);
    /* the file is back at its source: the row no longer says it was moved */
    ASSERT_INT_EQ(query_int(db, "SELECT moved_to IS NULL FROM images WHERE path = '/in/a.jpg'"), 1);
    ASSERT_INT_EQ(query_int(db, "SELECT count(*) FROM moves"), 0);
    int64_t size = 0, mtime = 0;
    int found = 0;
    ASSERT_INT_EQ(blurd_store_lookup(store, "/in/a.jpg", &size, &mtime, &found, err), 0);
    ASSERT_INT_EQ(found, 1);
    ASSERT_INT_EQ(size, -1);
    ASSERT_INT_EQ(mtime, -1);
    ASSERT_INT_EQ(blurd_store_move_rolled_back(store, d, err), BLURD_EINVAL);

    /* An id that is not recorded is a caller's bug, and done changes nothing for it. */
    ASSERT_INT_EQ(blurd_store_move_note(store, a, "/x", NULL, err), BLURD_EINVAL);
    ASSERT_CONTAINS(err, path);
    ASSERT_INT_EQ(blurd_store_move_forget(store, c, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_store_move_done(store, a, "/elsewhere", err), BLURD_EINVAL);
    ASSERT_INT_EQ(query_int(db, "SELECT moved_to IS NULL FROM images WHERE path = '/in/a.jpg'"), 1);
    /* ...and leaves no transaction open behind it. */
    ASSERT_INT_EQ(blurd_store_begin(store, err), 0);
    ASSERT_INT_EQ(blurd_store_commit(store, err), 0);
    ASSERT_INT_EQ(blurd_store_move_begin(store, NULL, "/d", &a, err), BLURD_EINVAL);
    ASSERT_INT_EQ(blurd_store_moves_pending(store, NULL, NULL, err), BLURD_EINVAL);
    sqlite3_close(db);
    blurd_store_close(store);
    return 0;
}
