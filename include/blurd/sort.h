/* sort.h - moving judged photos into their destination folders without ever losing or
 * overwriting one.
 *
 * A move is renameat2(RENAME_NOREPLACE) into the destination (created if missing); if the
 * name is taken, "name (1).jpg", "name (2).jpg", ... is tried; across file systems the
 * file is copied to a hidden temporary name in the destination, fsync'd, renamed into
 * place without replacing, fsync'd again, and only then is the source unlinked.  With a
 * store, the intended move is recorded before anything happens and marked done after, so
 * a move interrupted by a crash is finished or rolled back by blurd_sort_recover at the
 * next start.
 */
#ifndef BLURD_SORT_H
#define BLURD_SORT_H

#include "blurd/store.h"

#include <limits.h>

/* Moves `path` into the folder `destination` (created with mode 0755, as mkdir -p, if
 * missing) and writes the file's new path into `moved_to` (PATH_MAX bytes, caller-owned).
 * The file keeps its name when that is free in `destination`, else becomes "name (1).ext",
 * "name (2).ext", ... (up to 10000).  Nothing is ever replaced: every placement is
 * renameat2(RENAME_NOREPLACE), or link() where a file system cannot refuse to replace in
 * rename.  A symbolic link is moved as the link, never followed.  Across file systems the
 * copy keeps the mode bits (not set-id bits, not the owner) and the times; the source is
 * unlinked only after the copy is fsync'd under its final name and checked, and a source
 * that changes while it is copied fails the move.
 * Returns 0; BLURD_ENOENT if `path` vanished (nothing is moved or created but the
 * destination folder); BLURD_EISDIR for a directory; BLURD_EINVAL for NULL arguments and
 * for what cannot be moved (a device or socket, a symbolic link across file systems);
 * BLURD_EACCES or BLURD_EIO otherwise (a missing or unwritable destination is never
 * BLURD_ENOENT), with `err` naming the file and the reason.  On any error the source is
 * left where it was and no copy of it remains (a copy that cannot be removed is logged).
 * Two moves into one folder at once, from threads or processes, never replace each other's
 * files: the rename refuses a taken name and the next number is tried. */
int blurd_sort_move(const char *path, const char *destination, char *moved_to, char *err);

/* As blurd_sort_move, with the move recorded in `store`: the intent is committed before
 * the file is touched (blurd_store_move_begin; a batch the caller has open is committed
 * with it), every name is noted before it is tried, and on success images.moved_to of the
 * source's row (if it has one) is set and the intent cleared in one transaction.  On
 * failure the intent is cleared, unless cleaning up failed too, in which case it stays for
 * blurd_sort_recover.  A vanished source records nothing.  Also fails with the store's
 * codes (BLURD_EDB, ...); if only the final record fails, the file has moved (`moved_to`
 * says where) and the next blurd_sort_recover records it. */
int blurd_sort_move_recorded(blurd_store *store, const char *path, const char *destination,
                             char *moved_to, char *err);

/* Finishes or rolls back every move recorded as started and not done, judging from the
 * file system how far each got: a temporary copy that still exists is removed and the move
 * rolled back; a source that still exists means the move is rolled back (intent cleared,
 * the source's row marked stale with blurd_store_move_rolled_back, so that the daemon's
 * start-up scan judges and sorts the file again), except when the target is provably the
 * same file (one inode after link(), or a byte-identical complete copy across file
 * systems), in which case the source is unlinked and the move finished; a move whose file
 * is only at its target is marked done (images.moved_to set); one whose file is in neither
 * place is forgotten as vanished.  Nothing but our own temporary copies and sources proven
 * to be copied is ever removed.  Logs each case at notice level; returns the number of
 * moves it resolved, or a negative code with `err` filled (moves before the failing one
 * stay resolved).  Run it at start-up, before anything is moved. */
int blurd_sort_recover(blurd_store *store, char *err);

#endif
