/* store.c - the results database: opening an SQLite file in WAL mode, migrating its schema
 * by PRAGMA user_version, writing one row per judged image through a statement prepared
 * once, and recording the sort module's move intents, each committed on its own.
 *
 * Workload: one writer (the daemon's loop thread, or `blurd classify`) putting a few to a
 * few hundred rows per second in batched transactions, while people read the same file with
 * `sqlite3`.  WAL is what lets those readers run without blocking the writer or being
 * blocked by it; synchronous=NORMAL is durable across crashes of blurd and, in WAL mode,
 * loses at most the last transactions on power loss, which a rescan re-judges anyway.
 */
#include "blurd/store.h"

#include "blurd/error.h"
#include "blurd/log.h"

#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "blrd" in ASCII: marks the file as blurd's, so a stray SQLite file is never migrated. */
#define BLURD_STORE_APPLICATION_ID 0x626c7264

/* The migration table: migrations[i] takes the schema from version i to i + 1.  Each step
 * runs in the same transaction as its user_version bump, so a database is always at exactly
 * one version.  Append new steps; never edit a step that has shipped, because databases in
 * the field were built by it.  The table is not STRICT, so that sqlite3 tools older than
 * 3.37 can still read it; the store binds the right types itself. */
static const char *const migrations[] = {
    /* 1: the images table of store.h.  The unique index on path is what the upsert
     * conflicts on; the other two serve the README's queries ("the blurred ones, newest
     * first", "what was judged today"). */
    "CREATE TABLE images ("
    " id INTEGER PRIMARY KEY,"
    " path TEXT NOT NULL,"
    " size INTEGER,"
    " mtime INTEGER,"
    " width INTEGER,"
    " height INTEGER,"
    " format TEXT,"
    " p_blurred REAL,"
    " verdict TEXT,"
    " model_hash TEXT,"
    " model_name TEXT,"
    " input_mode TEXT,"
    " classified_at TEXT,"
    " milliseconds REAL,"
    " moved_to TEXT,"
    " error TEXT"
    ");"
    "CREATE UNIQUE INDEX images_path ON images (path);"
    "CREATE INDEX images_verdict ON images (verdict, classified_at);"
    "CREATE INDEX images_classified_at ON images (classified_at);",
    /* 2: the sort module's move intents.  Rows live only while a move is in progress, so
     * the table stays a handful of rows and needs no index beyond its key. */
    "CREATE TABLE moves ("
    " id INTEGER PRIMARY KEY,"
    " source TEXT NOT NULL,"
    " destination TEXT NOT NULL,"
    " target TEXT,"
    " temporary TEXT,"
    " started_at TEXT"
    ");",
};
#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(MIGRATION_COUNT == BLURD_STORE_SCHEMA_VERSION,
               "store.h's schema version must equal the number of migrations");

/* Parameters are numbered so that binding in blurd_store_put reads against this text. */
static const char put_sql[] =
    "INSERT INTO images (path, size, mtime, width, height, format, p_blurred, verdict,"
    " model_hash, model_name, input_mode, classified_at, milliseconds, moved_to, error)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
    " strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?12, ?13, ?14)"
    " ON CONFLICT (path) DO UPDATE SET"
    " size = excluded.size, mtime = excluded.mtime, width = excluded.width,"
    " height = excluded.height, format = excluded.format, p_blurred = excluded.p_blurred,"
    " verdict = excluded.verdict, model_hash = excluded.model_hash,"
    " model_name = excluded.model_name, input_mode = excluded.input_mode,"
    " classified_at = excluded.classified_at, milliseconds = excluded.milliseconds,"
    " moved_to = excluded.moved_to, error = excluded.error";

/* The move intents' statements; see store.h for what each call promises. */
static const char move_begin_sql[] = "INSERT INTO moves (source, destination, started_at)"
                                     " VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))";
static const char move_note_sql[] = "UPDATE moves SET target = ?2, temporary = ?3 WHERE id = ?1";
static const char move_moved_to_sql[] =
    "UPDATE images SET moved_to = ?2 WHERE path = (SELECT source FROM moves WHERE id = ?1)";
static const char move_stale_sql[] = "UPDATE images SET size = NULL, mtime = NULL, moved_to = NULL"
                                     " WHERE path = (SELECT source FROM moves WHERE id = ?1)";
static const char move_delete_sql[] = "DELETE FROM moves WHERE id = ?1";
/* One row at a time after the last id seen, so that no statement runs during a callback. */
static const char move_next_sql[] =
    "SELECT id, source, destination, target, temporary FROM moves WHERE id > ?1"
    " ORDER BY id LIMIT 1";
/* A row whose file was moved away describes no file at that path any more: a new file
 * arriving there (a sync app restoring it, say) must be judged, whatever its size. */
static const char lookup_sql[] =
    "SELECT size, mtime FROM images WHERE path = ?1 AND moved_to IS NULL";

struct blurd_store {
    sqlite3 *db;
    sqlite3_stmt *put;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
    sqlite3_stmt *move_begin;
    sqlite3_stmt *move_note;
    sqlite3_stmt *move_moved_to;
    sqlite3_stmt *move_stale;
    sqlite3_stmt *move_delete;
    sqlite3_stmt *move_next;
    sqlite3_stmt *lookup;
    char *path; /* owned; for messages */
};

/* The blurd code for an SQLite failure: the file-system reason when the file could not be
 * opened, so that main can say "no such directory" rather than "database error". */
static int code_for(sqlite3 *db, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return BLURD_ENOMEM;
    case SQLITE_IOERR:
    case SQLITE_FULL:
        return BLURD_EIO;
    case SQLITE_CANTOPEN:
        if (db != NULL && sqlite3_system_errno(db) != 0)
            return blurd_error_from_errno(sqlite3_system_errno(db));
        return BLURD_EDB;
    default:
        return BLURD_EDB;
    }
}

/* Fills `err` with "PATH: WHAT: SQLite's reason" and returns the matching code. */
static int sqlite_failure(sqlite3 *db, int rc, const char *path, const char *what, char *err)
{
    const char *reason = db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return blurd_error_set(err, code_for(db, rc), "%s: %s: %s", path, what, reason);
}

/* Runs SQL that returns no rows (several statements allowed). */
static int execute(blurd_store *store, const char *sql, const char *what, char *err)
{
    int rc = sqlite3_exec(store->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sqlite_failure(store->db, rc, store->path, what, err);
    return 0;
}

/* Runs one statement that returns a single value (a PRAGMA or a count) into *value. */
static int query_int(blurd_store *store, const char *sql, const char *what, int64_t *value,
                     char *err)
{
    sqlite3_stmt *statement = NULL;
    int rc = sqlite3_prepare_v2(store->db, sql, -1, &statement, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(statement);
        if (rc == SQLITE_ROW) {
            *value = sqlite3_column_int64(statement, 0);
            rc = SQLITE_OK;
        }
    }
    int code = rc == SQLITE_OK ? 0 : sqlite_failure(store->db, rc, store->path, what, err);
    sqlite3_finalize(statement);
    return code;
}

/* Reads the file's identity and version into *version and refuses what blurd must not touch:
 * someone else's SQLite database and a schema newer than this blurd.  A file that is not an
 * SQLite database at all fails here, on the first read, with SQLite's "file is not a
 * database".  Called once before the journal mode is changed (so a refused file is left
 * exactly as it was) and again inside the migration transaction (another process may have
 * migrated in between). */
static int check_schema(blurd_store *store, int64_t *version, char *err)
{
    int64_t application_id = 0, objects = 0;
    int code =
        query_int(store, "PRAGMA application_id", "cannot read the database", &application_id, err);
    if (code == 0)
        code = query_int(store, "PRAGMA user_version", "cannot read the database", version, err);
    if (code == 0)
        code = query_int(store, "SELECT count(*) FROM sqlite_schema", "cannot read the database",
                         &objects, err);
    if (code != 0)
        return code;
    if (application_id != BLURD_STORE_APPLICATION_ID && (objects != 0 || *version != 0))
        return blurd_error_set(err, BLURD_EDB,
                               "%s: not a blurd database (an SQLite database with "
                               "application_id %lld, user_version %lld and %lld schema objects)",
                               store->path, (long long)application_id, (long long)*version,
                               (long long)objects);
    if (*version > BLURD_STORE_SCHEMA_VERSION)
        return blurd_error_set(err, BLURD_EDB,
                               "%s: schema version %lld is newer than this blurd understands "
                               "(%d); use a newer blurd",
                               store->path, (long long)*version, BLURD_STORE_SCHEMA_VERSION);
    if (*version < 0)
        return blurd_error_set(err, BLURD_EDB, "%s: invalid schema version %lld", store->path,
                               (long long)*version);
    return 0;
}

/* Switches the file to WAL and checks that it took: journal_mode answers with the mode in
 * force, which stays "memory" or "delete" where WAL is impossible, without failing. */
static int use_wal(blurd_store *store, char *err)
{
    sqlite3_stmt *statement = NULL;
    int rc = sqlite3_prepare_v2(store->db, "PRAGMA journal_mode = WAL", -1, &statement, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(statement);
    if (rc != SQLITE_ROW) {
        int code = sqlite_failure(store->db, rc, store->path, "cannot turn on WAL", err);
        sqlite3_finalize(statement);
        return code;
    }
    const unsigned char *mode = sqlite3_column_text(statement, 0);
    int code = 0;
    if (mode == NULL || strcmp((const char *)mode, "wal") != 0)
        code = blurd_error_set(err, BLURD_EDB,
                               "%s: the journal mode stayed \"%s\": blurd needs WAL so that "
                               "readers never block the writer (is it a file on a local disk?)",
                               store->path, mode != NULL ? (const char *)mode : "unknown");
    sqlite3_finalize(statement);
    return code;
}

/* Brings the schema from its version to BLURD_STORE_SCHEMA_VERSION in one write
 * transaction.  BEGIN IMMEDIATE takes the write lock first, so two blurds opening a new
 * file at once migrate it once: the second waits, then finds it current. */
static int migrate(blurd_store *store, char *err)
{
    int code = execute(store, "BEGIN IMMEDIATE", "cannot start the schema migration", err);
    if (code != 0)
        return code;
    int64_t version = 0;
    code = check_schema(store, &version, err);
    if (code == 0 && version == 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", BLURD_STORE_APPLICATION_ID);
        code = execute(store, sql, "cannot mark the database as blurd's", err);
    }
    for (int64_t step = version; code == 0 && step < MIGRATION_COUNT; step++) {
        char what[64], sql[64];
        snprintf(what, sizeof what, "cannot migrate the schema to version %lld",
                 (long long)step + 1);
        code = execute(store, migrations[step], what, err);
        if (code == 0) {
            snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)step + 1);
            code = execute(store, sql, what, err);
        }
    }
    if (code == 0)
        return execute(store, "COMMIT", "cannot commit the schema migration", err);
    sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL); /* keep the first error */
    return code;
}

static int prepare(blurd_store *store, const char *sql, sqlite3_stmt **statement, char *err)
{
    int rc = sqlite3_prepare_v3(store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, statement, NULL);
    if (rc != SQLITE_OK)
        return sqlite_failure(store->db, rc, store->path, "cannot prepare a statement", err);
    return 0;
}

/* Everything after the handle exists; on failure the caller closes the handle. */
static int set_up(blurd_store *store, char *err)
{
    sqlite3_extended_result_codes(store->db, 1);
    int rc = sqlite3_busy_timeout(store->db, 5000);
    if (rc != SQLITE_OK)
        return sqlite_failure(store->db, rc, store->path, "cannot set the busy timeout", err);
    int64_t version = 0;
    int code = check_schema(store, &version, err);
    if (code == 0)
        code = use_wal(store, err);
    if (code == 0)
        code = execute(store, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON",
                       "cannot set the connection's options", err);
    if (code == 0)
        code = migrate(store, err);
    if (code == 0)
        code = prepare(store, put_sql, &store->put, err);
    if (code == 0)
        code = prepare(store, "BEGIN IMMEDIATE", &store->begin, err);
    if (code == 0)
        code = prepare(store, "COMMIT", &store->commit, err);
    if (code == 0)
        code = prepare(store, "ROLLBACK", &store->rollback, err);
    if (code == 0)
        code = prepare(store, move_begin_sql, &store->move_begin, err);
    if (code == 0)
        code = prepare(store, move_note_sql, &store->move_note, err);
    if (code == 0)
        code = prepare(store, move_moved_to_sql, &store->move_moved_to, err);
    if (code == 0)
        code = prepare(store, move_stale_sql, &store->move_stale, err);
    if (code == 0)
        code = prepare(store, move_delete_sql, &store->move_delete, err);
    if (code == 0)
        code = prepare(store, move_next_sql, &store->move_next, err);
    if (code == 0)
        code = prepare(store, lookup_sql, &store->lookup, err);
    return code;
}

int blurd_store_open(blurd_store **out, const char *path, char *err)
{
    if (out == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_open: out is NULL");
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_open: no database path given");
    blurd_store *store = calloc(1, sizeof *store);
    if (store == NULL || (store->path = strdup(path)) == NULL) {
        free(store);
        return blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", path);
    }
    /* NOMUTEX: the handle is used by one thread at a time, so SQLite's own locking of the
     * connection would only cost time.  No URI flag: the path is always a file name. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &store->db, flags, NULL);
    int code = rc == SQLITE_OK ? set_up(store, err)
                               : sqlite_failure(store->db, rc, path, "cannot open", err);
    if (code != 0) {
        blurd_store_close(store);
        return code;
    }
    *out = store;
    return 0;
}

void blurd_store_close(blurd_store *store)
{
    if (store == NULL)
        return;
    if (store->db != NULL && !sqlite3_get_autocommit(store->db)) {
        char err[BLURD_ERR_LEN];
        if (blurd_store_commit(store, err) != 0)
            blurd_log_error("%s (the last results are lost)", err);
        /* sqlite3_close rolls back a transaction that is still open. */
    }
    sqlite3_finalize(store->put);
    sqlite3_finalize(store->begin);
    sqlite3_finalize(store->commit);
    sqlite3_finalize(store->rollback);
    sqlite3_finalize(store->move_begin);
    sqlite3_finalize(store->move_note);
    sqlite3_finalize(store->move_moved_to);
    sqlite3_finalize(store->move_stale);
    sqlite3_finalize(store->move_delete);
    sqlite3_finalize(store->move_next);
    sqlite3_finalize(store->lookup);
    /* With every statement finalised this cannot be SQLITE_BUSY; the last connection to
     * close also checkpoints the log into the database and removes the -wal file. */
    sqlite3_close(store->db);
    free(store->path);
    free(store);
}

/* Steps a prepared statement that returns no rows and resets it for the next use. */
static int step_once(blurd_store *store, sqlite3_stmt *statement, const char *what, char *err)
{
    int rc = sqlite3_step(statement);
    int code = rc == SQLITE_DONE ? 0 : sqlite_failure(store->db, rc, store->path, what, err);
    sqlite3_reset(statement);
    return code;
}

int blurd_store_begin(blurd_store *store, char *err)
{
    if (store == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_begin: store is NULL");
    return step_once(store, store->begin, "cannot begin a transaction", err);
}

int blurd_store_commit(blurd_store *store, char *err)
{
    if (store == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_commit: store is NULL");
    return step_once(store, store->commit, "cannot commit", err);
}

/* Binds a borrowed string, or NULL.  SQLITE_STATIC avoids a copy per column: the string
 * lives until blurd_store_put returns, and put clears the bindings before it does. */
static int bind_text(sqlite3_stmt *statement, int index, const char *text)
{
    if (text == NULL)
        return sqlite3_bind_null(statement, index);
    return sqlite3_bind_text(statement, index, text, -1, SQLITE_STATIC);
}

int blurd_store_put(blurd_store *store, const struct blurd_store_row *row, char *err)
{
    if (store == NULL || row == NULL || row->path == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "%s: a result needs a path",
                               store != NULL ? store->path : "blurd_store_put");
    const char *verdict = row->verdict;
    if (verdict != NULL && strcmp(verdict, "blurred") != 0 && strcmp(verdict, "clear") != 0)
        return blurd_error_set(err, BLURD_EINVAL, "%s: %s: invalid verdict \"%s\"", store->path,
                               row->path, verdict);

    sqlite3_stmt *put = store->put;
    int rc = bind_text(put, 1, row->path);
    if (rc == SQLITE_OK)
        rc = row->size >= 0 ? sqlite3_bind_int64(put, 2, row->size) : sqlite3_bind_null(put, 2);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(put, 3, row->mtime_ns);
    if (rc == SQLITE_OK)
        rc = row->width > 0 ? sqlite3_bind_int(put, 4, row->width) : sqlite3_bind_null(put, 4);
    if (rc == SQLITE_OK)
        rc = row->height > 0 ? sqlite3_bind_int(put, 5, row->height) : sqlite3_bind_null(put, 5);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 6, row->format);
    if (rc == SQLITE_OK)
        rc = verdict != NULL && !isnan(row->p_blurred) ? sqlite3_bind_double(put, 7, row->p_blurred)
                                                       : sqlite3_bind_null(put, 7);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 8, verdict);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 9, row->model_hash);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 10, row->model_name);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 11, row->input_mode);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(put, 12, row->milliseconds);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 13, row->moved_to);
    if (rc == SQLITE_OK)
        rc = bind_text(put, 14, row->error);

    int code;
    if (rc != SQLITE_OK) {
        code = sqlite_failure(store->db, rc, store->path, "cannot bind a result", err);
        sqlite3_reset(put);
    } else {
        code = step_once(store, put, "cannot store a result", err);
    }
    sqlite3_clear_bindings(put);
    return code;
}

int blurd_store_lookup(blurd_store *store, const char *path, int64_t *size, int64_t *mtime_ns,
                       int *found, char *err)
{
    if (store == NULL || path == NULL || size == NULL || mtime_ns == NULL || found == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "%s: blurd_store_lookup: missing argument",
                               store != NULL ? store->path : "blurd_store_lookup");
    sqlite3_stmt *lookup = store->lookup;
    int rc = bind_text(lookup, 1, path);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(lookup);
    int code = 0;
    if (rc == SQLITE_ROW) {
        *found = 1;
        *size =
            sqlite3_column_type(lookup, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(lookup, 0);
        *mtime_ns =
            sqlite3_column_type(lookup, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(lookup, 1);
    } else if (rc == SQLITE_DONE) {
        *found = 0;
    } else {
        code = sqlite_failure(store->db, rc, store->path, "cannot look up a result", err);
    }
    sqlite3_reset(lookup);
    sqlite3_clear_bindings(lookup);
    return code;
}

bool blurd_store_in_transaction(const blurd_store *store)
{
    return store != NULL && !sqlite3_get_autocommit(store->db);
}

/* Commits the caller's batch, if one is open, so that a move's record can be committed on
 * its own at once (SQLite has no nested transactions). */
static int commit_open_batch(blurd_store *store, char *err)
{
    if (!blurd_store_in_transaction(store))
        return 0;
    return blurd_store_commit(store, err);
}

/* Steps a statement that changes the intent `id` and fails with BLURD_EINVAL when it
 * changed nothing: a caller passing an id that is not recorded has lost track of a move. */
static int step_intent(blurd_store *store, sqlite3_stmt *statement, int64_t id, const char *what,
                       char *err)
{
    int code = step_once(store, statement, what, err);
    if (code == 0 && sqlite3_changes(store->db) == 0)
        code = blurd_error_set(err, BLURD_EINVAL, "%s: %s: no move %lld is recorded", store->path,
                               what, (long long)id);
    return code;
}

int blurd_store_move_begin(blurd_store *store, const char *source, const char *destination,
                           int64_t *id, char *err)
{
    if (store == NULL || source == NULL || destination == NULL || id == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "%s: blurd_store_move_begin: missing argument",
                               store != NULL ? store->path : "blurd_store_move_begin");
    int code = commit_open_batch(store, err);
    if (code != 0)
        return code;
    sqlite3_stmt *insert = store->move_begin;
    int rc = bind_text(insert, 1, source);
    if (rc == SQLITE_OK)
        rc = bind_text(insert, 2, destination);
    if (rc != SQLITE_OK) {
        code = sqlite_failure(store->db, rc, store->path, "cannot bind a move", err);
    } else {
        /* Outside a transaction the insert commits on its own. */
        code = step_once(store, insert, "cannot record a move", err);
        if (code == 0)
            *id = sqlite3_last_insert_rowid(store->db);
    }
    sqlite3_clear_bindings(insert);
    return code;
}

int blurd_store_move_note(blurd_store *store, int64_t id, const char *target, const char *temporary,
                          char *err)
{
    if (store == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_move_note: store is NULL");
    int code = commit_open_batch(store, err);
    if (code != 0)
        return code;
    sqlite3_stmt *note = store->move_note;
    int rc = sqlite3_bind_int64(note, 1, id);
    if (rc == SQLITE_OK)
        rc = bind_text(note, 2, target);
    if (rc == SQLITE_OK)
        rc = bind_text(note, 3, temporary);
    if (rc != SQLITE_OK)
        code = sqlite_failure(store->db, rc, store->path, "cannot bind a move", err);
    else
        code = step_intent(store, note, id, "cannot record a move's target", err);
    sqlite3_clear_bindings(note);
    return code;
}

/* Runs `update` (an UPDATE of the move's images row, bound by the caller beyond ?1) and the
 * intent's deletion in one transaction of their own; clears update's bindings. */
static int settle_move(blurd_store *store, int64_t id, sqlite3_stmt *update, const char *what,
                       char *err)
{
    int code = commit_open_batch(store, err);
    if (code == 0)
        code = blurd_store_begin(store, err);
    if (code != 0) {
        sqlite3_clear_bindings(update);
        return code;
    }
    /* The images row first: the delete removes the source path it is found by. */
    int rc = sqlite3_bind_int64(update, 1, id);
    if (rc != SQLITE_OK)
        code = sqlite_failure(store->db, rc, store->path, "cannot bind a move", err);
    else
        code = step_once(store, update, what, err);
    sqlite3_clear_bindings(update);
    if (code == 0) {
        sqlite3_bind_int64(store->move_delete, 1, id);
        code = step_intent(store, store->move_delete, id, "cannot clear a settled move", err);
    }
    if (code == 0)
        code = blurd_store_commit(store, err);
    /* Undo a half-done change; SQLite may already have rolled back after an I/O error. */
    if (code != 0 && !sqlite3_get_autocommit(store->db)) {
        sqlite3_step(store->rollback);
        sqlite3_reset(store->rollback);
    }
    return code;
}

int blurd_store_move_done(blurd_store *store, int64_t id, const char *moved_to, char *err)
{
    if (store == NULL || moved_to == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "%s: blurd_store_move_done: missing argument",
                               store != NULL ? store->path : "blurd_store_move_done");
    /* Bound before the batch is committed: bindings are not part of any transaction. */
    int rc = bind_text(store->move_moved_to, 2, moved_to);
    if (rc != SQLITE_OK) {
        sqlite3_clear_bindings(store->move_moved_to);
        return sqlite_failure(store->db, rc, store->path, "cannot bind a move", err);
    }
    return settle_move(store, id, store->move_moved_to, "cannot record where a file was moved",
                       err);
}

int blurd_store_move_rolled_back(blurd_store *store, int64_t id, char *err)
{
    if (store == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_move_rolled_back: store is NULL");
    return settle_move(store, id, store->move_stale, "cannot mark a file to be judged again", err);
}

int blurd_store_move_forget(blurd_store *store, int64_t id, char *err)
{
    if (store == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_store_move_forget: store is NULL");
    int code = commit_open_batch(store, err);
    if (code != 0)
        return code;
    sqlite3_bind_int64(store->move_delete, 1, id);
    return step_intent(store, store->move_delete, id, "cannot clear a move", err);
}

int blurd_store_moves_pending(blurd_store *store, blurd_store_move_callback callback, void *arg,
                              char *err)
{
    if (store == NULL || callback == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "%s: blurd_store_moves_pending: missing argument",
                               store != NULL ? store->path : "blurd_store_moves_pending");
    sqlite3_stmt *next = store->move_next;
    int64_t last = 0; /* rowids start at 1 */
    for (;;) {
        sqlite3_bind_int64(next, 1, last);
        int rc = sqlite3_step(next);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(next);
            return 0;
        }
        if (rc != SQLITE_ROW) {
            int code = sqlite_failure(store->db, rc, store->path, "cannot read the moves", err);
            sqlite3_reset(next);
            return code;
        }
        /* Copy the row out, so that the statement can be reset before the callback runs:
         * recovery changes the table it is walking.  Start-up only, so malloc is fine. */
        last = sqlite3_column_int64(next, 0);
        const char *text[4];
        size_t length[4], total = 0;
        for (int i = 0; i < 4; i++) {
            text[i] = (const char *)sqlite3_column_text(next, i + 1);
            length[i] = (size_t)sqlite3_column_bytes(next, i + 1);
            total += length[i] + 1;
        }
        char *copy = malloc(total);
        if (copy == NULL) {
            sqlite3_reset(next);
            return blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", store->path);
        }
        char *strings[4], *cursor = copy;
        for (int i = 0; i < 4; i++) {
            strings[i] = NULL;
            if (text[i] != NULL) {
                memcpy(cursor, text[i], length[i] + 1);
                strings[i] = cursor;
            }
            cursor += length[i] + 1;
        }
        sqlite3_reset(next);
        /* NOT NULL columns: a NULL here means SQLite ran out of memory converting them. */
        int result = strings[0] != NULL && strings[1] != NULL
                         ? callback(arg, last, strings[0], strings[1], strings[2], strings[3])
                         : blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", store->path);
        free(copy);
        if (result != 0)
            return result;
    }
}
