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

/* Moves `path` into the folder `destination`; on success writes the file's new path into
 * `moved_to` (PATH_MAX bytes).  BLURD_ENOENT if `path` vanished (nothing is moved),
 * BLURD_EIO/BLURD_EACCES with `err` naming the file and the reason otherwise; on any
 * error the source is left where it was. */
int blurd_sort_move(const char *path, const char *destination, char *moved_to, char *err);

/* As blurd_sort_move, with the intent recorded in `store` first and the result (the new
 * path in images.moved_to, or the intent cleared) after. */
int blurd_sort_move_recorded(blurd_store *store, const char *path, const char *destination,
                             char *moved_to, char *err);

/* Finishes or rolls back every move recorded as started and not done: a move whose file
 * is already at its destination is marked done; one whose source still exists is undone
 * (temporary copies removed) and left for the daemon to judge again; one whose file is in
 * neither place is recorded as vanished.  Logs what it did; returns the number of moves
 * it resolved, or a negative code. */
int blurd_sort_recover(blurd_store *store, char *err);

#endif
