/* watch.h - noticing new photos in the watched folders: inotify read through libuv
 * (uv_poll on the inotify descriptor), recursive watches added as folders appear, a settle
 * timer per file, rescans after queue overflow, and full scans on request (start-up
 * reconciliation).
 *
 * A file is reported once it has been closed after writing (IN_CLOSE_WRITE) or moved in
 * (IN_MOVED_TO) and then stayed quiet for the settle time; a file still being written is
 * reported after its last close.  Names of partial uploads (".name", "name~", "*.part",
 * "*.crdownload", "*.tmp") are ignored until renamed to their final name.  Folders listed
 * as excluded (the sort destinations) are neither watched nor scanned.  Symbolic links are
 * never followed.  Runs entirely on the loop's thread.
 */
#ifndef BLURD_WATCH_H
#define BLURD_WATCH_H

#include <stddef.h>
#include <uv.h>

typedef struct blurd_watch blurd_watch;

struct blurd_watch_options {
    uv_loop_t *loop;
    const char *const *roots; /* absolute paths, copied */
    int root_count;
    int recursive;
    double settle_seconds;
    const char *const *excluded; /* absolute paths of folders to leave alone, copied */
    int excluded_count;
    /* Decides which file names are candidates (e.g. by extension); NULL takes all. */
    int (*is_candidate)(const char *path);
    /* A candidate file has settled (or was found by a scan): judge it.  The path is
     * absolute and valid only during the call. */
    void (*on_file)(void *arg, const char *path);
    /* Optional: the kernel's event queue overflowed, or a watched folder was lost and
     * found again, so a rescan of `root` starts (the reason says which). */
    void (*on_rescan)(void *arg, const char *root, const char *reason);
    void *arg;
};

/* Sets up inotify and watches on every folder under the roots.  A root that does not
 * exist or cannot be watched is an error (BLURD_ENOENT/BLURD_EACCES/BLURD_EIO naming it);
 * a subfolder that cannot be watched is logged and skipped.  The options' strings are
 * copied. */
int blurd_watch_start(blurd_watch **out, const struct blurd_watch_options *options, char *err);

/* Walks every root (in chunks between loop iterations, so the loop stays responsive) and
 * reports every candidate file found through on_file, without settle delay.  Used at
 * start-up to catch what arrived while the daemon was down.  `done` (may be NULL) is
 * called on the loop thread when the walk has finished. */
void blurd_watch_scan(blurd_watch *watch, void (*done)(void *arg), void *arg);

/* Folders currently watched, and files waiting for their settle time. */
size_t blurd_watch_folder_count(const blurd_watch *watch);
size_t blurd_watch_pending_count(const blurd_watch *watch);

/* Stops watching and closes every handle; `closed` (may be NULL) runs on the loop thread
 * once they are closed and the watch is freed.  Pending files are dropped (a later scan
 * finds them again). */
void blurd_watch_stop(blurd_watch *watch, void (*closed)(void *arg), void *arg);

#endif
