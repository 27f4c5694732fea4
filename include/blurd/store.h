/* store.h - the results database: one SQLite file in WAL mode with a versioned schema
 * (PRAGMA user_version, migrated on open), written by a single writer through prepared
 * statements, readable by `sqlite3` at any time.  The schema is a public interface:
 *
 *   CREATE TABLE images (
 *     id            INTEGER PRIMARY KEY,
 *     path          TEXT NOT NULL,    -- absolute path where the image was judged
 *     size          INTEGER,          -- bytes
 *     mtime         INTEGER,          -- modification time, nanoseconds since 1970
 *     width         INTEGER,
 *     height        INTEGER,
 *     format        TEXT,             -- jpeg, png, ...
 *     p_blurred     REAL,             -- model probability that the image is blurred
 *                                     -- (NULL for the Laplacian method: no probability)
 *     verdict       TEXT,             -- 'blurred', 'clear', or NULL on error
 *     model_hash    TEXT,             -- SHA-256 of the model file (NULL: Laplacian)
 *     model_name    TEXT,             -- 'laplacian' for the Laplacian method
 *     input_mode    TEXT,             -- 'tiles', 'resize' or 'laplacian'
 *     classified_at TEXT,             -- UTC, ISO 8601 with milliseconds: 2024-05-01T09:30:12.345Z
 *     milliseconds  REAL,             -- decode + network time
 *     moved_to      TEXT,             -- where the file was moved, if it was
 *     error         TEXT              -- the reason it could not be judged, else NULL
 *   );
 *   CREATE UNIQUE INDEX images_path ON images (path);
 *   CREATE INDEX images_verdict ON images (verdict, classified_at);
 *   CREATE INDEX images_classified_at ON images (classified_at);
 *
 *   one row per path: a newer judgement of the same path replaces the old row (keeping its id).
 *
 *   CREATE TABLE moves (              -- since version 2: moves started and not yet finished
 *     id            INTEGER PRIMARY KEY,
 *     source        TEXT NOT NULL,    -- the file's path before the move
 *     destination   TEXT NOT NULL,    -- the folder it is being moved into
 *     target        TEXT,             -- the path it is being moved to, once chosen
 *     temporary     TEXT,             -- a copy in progress across file systems, if any
 *     started_at    TEXT              -- UTC, ISO 8601 with milliseconds
 *   );
 *
 *   a row exists only while a move is in progress or was interrupted by a crash; the sort
 *   module finishes or rolls back the interrupted ones at the next start.
 *
 * The file carries PRAGMA application_id 0x626c7264 ("blrd") and PRAGMA user_version 2.
 * Later versions only ever add to this schema, through migrations applied on open.
 *
 * A store handle is not thread-safe: use it from one thread at a time (the daemon uses it
 * from its loop thread only).  Other processes may read the file at any time, also while
 * a transaction is open, because the journal is a write-ahead log.
 *
 * Errors: BLURD_EDB for anything SQLite refuses (not a database, not a blurd database, a
 * schema newer than this blurd, a failed statement), BLURD_ENOENT or BLURD_EACCES when the
 * file cannot be opened for those reasons, BLURD_EIO for I/O errors and a full disk,
 * BLURD_ENOMEM, and BLURD_EINVAL for bad arguments.  Every message names the database path
 * and, when SQLite failed, SQLite's own reason.
 */
#ifndef BLURD_STORE_H
#define BLURD_STORE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct blurd_store blurd_store;

/* The schema version this blurd creates and understands. */
#define BLURD_STORE_SCHEMA_VERSION 2

/* One result; strings are borrowed for the duration of the call; NULL stores NULL. */
struct blurd_store_row {
    const char *path; /* required */
    int64_t size;     /* below 0 stores NULL (unknown) */
    int64_t mtime_ns;
    int width, height; /* 0 or below stores NULL (not decoded) */
    const char *format;
    double p_blurred;    /* ignored (NULL stored) when verdict is NULL; NaN stores NULL: a
                            verdict without a probability (the Laplacian method) */
    const char *verdict; /* "blurred", "clear", or NULL when `error` says why not */
    const char *model_hash;
    const char *model_name;
    const char *input_mode;
    double milliseconds;
    const char *moved_to;
    const char *error;
};

/* Opens or creates the database at `path` (a file name, not a URI), turns on WAL,
 * synchronous=NORMAL, a 5 s busy timeout and foreign keys, and creates or migrates the
 * schema in one transaction.  Refused with BLURD_EDB, leaving the file untouched: a file
 * that is not an SQLite database, an SQLite database that is not blurd's (it has tables
 * but not blurd's application_id), a schema newer than BLURD_STORE_SCHEMA_VERSION, and a
 * database that cannot use WAL (":memory:", some network file systems).
 * On success *out owns the handle (free with blurd_store_close); on failure *out is NULL. */
int blurd_store_open(blurd_store **out, const char *path, char *err);

/* Commits an open transaction (a failed commit is logged and rolled back), finalises the
 * statements and closes the file.  NULL is a no-op. */
void blurd_store_close(blurd_store *store);

/* Rows are grouped into transactions: begin, many puts, commit.  begin takes the write
 * lock at once (BEGIN IMMEDIATE), waiting up to the busy timeout for another writer, so a
 * transaction never fails half-way for lack of the lock.  begin inside a transaction and
 * commit outside one fail with BLURD_EDB.  A commit that fails with SQLITE_BUSY leaves the
 * transaction open, to be retried.  A put outside a transaction commits on its own. */
int blurd_store_begin(blurd_store *store, char *err);
int blurd_store_commit(blurd_store *store, char *err);
/* True while a transaction is open: begun and not yet committed (by blurd_store_commit,
 * or by a call such as blurd_store_move_begin that commits an open batch first). */
bool blurd_store_in_transaction(const blurd_store *store);

/* Inserts `row`, or replaces every column of the row with the same path; classified_at is
 * set by the store to the current UTC time.  Allocates nothing in blurd (SQLite may grow
 * its page cache).  Fails with BLURD_EINVAL when row->path is NULL or verdict is not NULL,
 * "blurred" or "clear".  If a put fails with an I/O error or a full disk SQLite may roll
 * back the whole open transaction; commit then reports that no transaction is active. */
int blurd_store_put(blurd_store *store, const struct blurd_store_row *row, char *err);

/* Looks up what the store knows of `path` for the daemon's start-up reconciliation (a file
 * with the same path, size and modification time need not be judged again).  Sets *found
 * to 1 and fills *size and *mtime_ns (-1 for a NULL column) when a row exists for a file
 * still at that path (not moved away), else sets *found to 0 and leaves them alone.
 * Reads inside an open transaction see its rows. */
int blurd_store_lookup(blurd_store *store, const char *path, int64_t *size, int64_t *mtime_ns,
                       int *found, char *err);

/* Move intents, for the sort module.  A move is recorded before the file is touched and
 * cleared after, so that a crash in between leaves a row telling the next start what to
 * finish or undo.  Each of these functions first commits the caller's open transaction,
 * if any (a batch of puts is committed by it; no transaction is open after it returns),
 * then commits its own change at once: the intent must be in the database file before the
 * file system changes.  A commit reaches the write-ahead log, which survives blurd being
 * killed; with synchronous=NORMAL it may be lost on power failure, which the move's own
 * ordering (a copy is fsync'd before its source is unlinked) keeps harmless: no file is
 * lost, at most a hidden temporary copy is left behind.  Strings are borrowed for the
 * call.  An `id` that is not a recorded move fails with BLURD_EINVAL. */

/* Records the intent to move `source` into the folder `destination`; *id receives the
 * intent's id for the calls below. */
int blurd_store_move_begin(blurd_store *store, const char *source, const char *destination,
                           int64_t *id, char *err);

/* Records the path the move is about to use (`target`, may be NULL while unknown) and the
 * temporary copy it has created (`temporary`, NULL for none); each call replaces both. */
int blurd_store_move_note(blurd_store *store, int64_t id, const char *target, const char *temporary,
                          char *err);

/* The move succeeded: in one transaction, sets images.moved_to to `moved_to` on the row
 * whose path is the move's source (if there is one) and deletes the intent. */
int blurd_store_move_done(blurd_store *store, int64_t id, const char *moved_to, char *err);

/* The move was abandoned, or its file vanished: deletes the intent. */
int blurd_store_move_forget(blurd_store *store, int64_t id, char *err);

/* The move was rolled back by recovery and its file must be judged again: in one
 * transaction, sets size, mtime and moved_to to NULL on the row whose path is the move's source (if
 * there is one), so that blurd_store_lookup can no longer match the file and the start-up
 * reconciliation judges and sorts it anew (the new judgement replaces the row), and
 * deletes the intent. */
int blurd_store_move_rolled_back(blurd_store *store, int64_t id, char *err);

/* Called once per recorded intent by blurd_store_moves_pending; `target` and `temporary`
 * may be NULL.  The strings are borrowed for the call.  Return 0 to go on; any other value
 * stops the walk and is returned by blurd_store_moves_pending. */
typedef int (*blurd_store_move_callback)(void *arg, int64_t id, const char *source,
                                         const char *destination, const char *target,
                                         const char *temporary);

/* Calls `callback` for every recorded intent, oldest first.  No statement is running
 * during a callback, so it may call any store function (the move_done and move_forget of
 * recovery) on the same handle.  Returns 0, a callback's nonzero value, or an error code
 * with `err` filled. */
int blurd_store_moves_pending(blurd_store *store, blurd_store_move_callback callback, void *arg,
                              char *err);

#endif
