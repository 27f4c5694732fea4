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
 *     verdict       TEXT,             -- 'blurred', 'clear', or NULL on error
 *     model_hash    TEXT,             -- SHA-256 of the model file
 *     model_name    TEXT,
 *     input_mode    TEXT,             -- 'tiles' or 'resize'
 *     classified_at TEXT,             -- UTC, ISO 8601
 *     milliseconds  REAL,             -- decode + network time
 *     moved_to      TEXT,             -- where the file was moved, if it was
 *     error         TEXT              -- the reason it could not be judged, else NULL
 *   );
 *   one row per path: a newer judgement of the same path replaces the old row.
 */
#ifndef BLURD_STORE_H
#define BLURD_STORE_H

#include <stdint.h>

typedef struct blurd_store blurd_store;

/* One result; strings are borrowed for the duration of the call; NULL stores NULL. */
struct blurd_store_row {
    const char *path;
    int64_t size;
    int64_t mtime_ns;
    int width, height;
    const char *format;
    double p_blurred; /* ignored when verdict is NULL */
    const char *verdict;
    const char *model_hash;
    const char *model_name;
    const char *input_mode;
    double milliseconds;
    const char *moved_to;
    const char *error;
};

/* Opens or creates the database at `path`, sets WAL and a busy timeout, and creates or
 * migrates the schema.  A newer schema than this blurd knows is refused (BLURD_EDB). */
int blurd_store_open(blurd_store **out, const char *path, char *err);
void blurd_store_close(blurd_store *store); /* commits an open transaction; NULL is a no-op */

/* Rows are grouped into transactions: begin, many puts, commit. */
int blurd_store_begin(blurd_store *store, char *err);
int blurd_store_commit(blurd_store *store, char *err);
int blurd_store_put(blurd_store *store, const struct blurd_store_row *row, char *err);

#endif
