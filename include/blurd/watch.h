/* watch.h - noticing new photos in the watched folders: inotify read through libuv
 * (uv_poll on the inotify descriptor), recursive watches added as folders appear, a settle
 * timer per file, rescans after queue overflow, and full scans on request (start-up
 * reconciliation).
 *
 * A file is reported once it has been closed after writing (IN_CLOSE_WRITE) or moved in
 * (IN_MOVED_TO) and then stayed quiet for the settle time; a file still being written is
 * reported after its last close.  Names of partial uploads (".name", "name~", "*.part",
 * "*.crdownload", "*.tmp", suffixes in any case) are ignored until renamed to their final
 * name.  Folders listed as excluded (the sort destinations), and hidden folders (".name"),
 * are neither watched nor scanned.  Symbolic links are never followed.  A file hard-linked
 * in (`ln`, `cp -l`: a new name with more than one link, so its content is complete) is
 * taken as if moved in.
 *
 * A new folder is watched at once and then scanned, so files written into it before its
 * watch existed (`mkdir -p a/b && cp x.jpg a/b/`) are found; what that scan finds waits for
 * the settle time like any other file, so a file both found and closed is reported once.
 * A folder deleted or moved away is forgotten with everything under it.  A root that
 * disappears is logged and looked for again every retry_seconds; when it is back, it is
 * rescanned.  After an inotify queue overflow every root is rescanned.  Rescans report
 * through the settle time too; the daemon skips files it has already judged.
 *
 * Runs entirely on the loop's thread: every callback below is called there, and every
 * function must be called there.
 */
#ifndef BLURD_WATCH_H
#define BLURD_WATCH_H

#include <stddef.h>
#include <uv.h>

typedef struct blurd_watch blurd_watch;

struct blurd_watch_options {
    uv_loop_t *loop;          /* borrowed until the watch is closed */
    const char *const *roots; /* absolute paths of folders (not symbolic links), copied */
    int root_count;           /* at least 1 */
    int recursive;
    double settle_seconds;       /* >= 0 */
    const char *const *excluded; /* absolute paths of folders to leave alone, copied */
    int excluded_count;
    /* How often a root that disappeared is looked for again; 0 means every 5 seconds. */
    double retry_seconds;
    /* Decides which files are candidates (e.g. by extension) from their absolute path;
     * NULL takes all.  Partial-upload names are refused before it is asked. */
    int (*is_candidate)(const char *path);
    /* A candidate file has settled (or was found by a scan): judge it.  The path is
     * absolute and valid only during the call.  May call blurd_watch_stop. */
    void (*on_file)(void *arg, const char *path);
    /* Optional: the kernel's event queue overflowed ("inotify queue overflow"), or a root
     * that had disappeared is back ("watched folder came back"), so a rescan of `root`
     * starts; what it finds is reported through on_file.  May call blurd_watch_stop. */
    void (*on_rescan)(void *arg, const char *root, const char *reason);
    void *arg;
};

/* Sets up inotify and watches on every folder under the roots (walked before it returns).
 * A root that does not exist or cannot be watched is an error (BLURD_ENOENT, BLURD_EACCES,
 * or BLURD_EIO, e.g. when inotify's watch or instance limit is reached, naming it); a root
 * that is not a folder, or bad options, give BLURD_EINVAL; a subfolder that cannot be
 * watched is logged and skipped.  The options' strings are copied.  On failure *out is
 * NULL and nothing needs closing. */
int blurd_watch_start(blurd_watch **out, const struct blurd_watch_options *options, char *err);

/* Walks every root (in chunks of a few hundred entries between loop iterations, so the loop
 * stays responsive), watching any folder not yet watched, and reports every candidate file
 * found through on_file at once, without settle delay, but for one modified within the
 * settle time (plus 2 s, as FAT file systems keep modification times in 2-second steps),
 * which may still be being written: that one is reported once it has stayed untouched for
 * the settle time (possibly after `done`), so only a writer pausing longer than that is met
 * half written.  Used at start-up to catch what arrived while the daemon was down.  Scans
 * requested while one runs are queued behind it; each reports every file it finds.  `done`
 * (may be NULL) is called on the loop thread when the walk has finished, with the number of
 * files the scan met and left to settle (on a long walk some may have been reported by
 * then); it is not called if the watch is stopped first.  Does nothing on a stopping
 * watch. */
void blurd_watch_scan(blurd_watch *watch, void (*done)(void *arg, size_t deferred), void *arg);

/* Folders currently watched, and files waiting for their settle time. */
size_t blurd_watch_folder_count(const blurd_watch *watch);
size_t blurd_watch_pending_count(const blurd_watch *watch);

/* Stops watching and closes every handle; `closed` (may be NULL) runs on the loop thread
 * once they are closed and the watch is freed.  Pending files and unfinished scans are
 * dropped (a later scan finds the files again).  No callback but `closed` runs after this
 * call.  NULL, or a watch already stopping, is ignored. */
void blurd_watch_stop(blurd_watch *watch, void (*closed)(void *arg), void *arg);

#endif
