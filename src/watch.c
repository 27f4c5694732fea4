/* watch.c - inotify on every folder under the watched roots, read through a libuv poll
 * handle; files settle in a deadline-ordered set before they are reported, and trees are
 * walked in chunks from an idle handle.
 *
 * Expected workload: a few roots holding up to tens of thousands of folders; files arrive one
 * at a time (a phone upload) or in bursts of thousands (a camera card copied in).  Every
 * lookup on the event path is a hash table probe, every settle deadline is a list append
 * (all deadlines are "now + settle", so appending keeps the list sorted), and no callback
 * does more than a bounded batch of work, so the loop stays responsive to the rest of the
 * daemon.
 *
 * Folders are kept as a tree mirroring the file system (each entry's parent is the entry of
 * the folder holding it, looked up by path), indexed by watch descriptor and by path.  A
 * folder that is moved is forgotten under its old name and watched afresh under its new one:
 * inotify says where it went only through paired events, and scanning the new place finds
 * everything anyway.  The kernel hands out watch descriptors cyclically, so a descriptor
 * dropped here is not reused soon, and late events for one that is forgotten are ignored.
 */
#include "blurd/watch.h"

#include "blurd/error.h"
#include "blurd/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* IN_MODIFY only postpones files already waiting (found by a scan while still being
 * written, or reopened after their close); a file is never taken on IN_MODIFY alone, nor
 * on IN_CREATE unless the new name is a hard link (more than one link: the file existed,
 * complete, before; a file just created for writing has one).  IN_CREATE is also wanted
 * for new folders. */
#define WATCH_MASK                                                                           \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MOVED_FROM | IN_MODIFY | IN_DELETE_SELF | \
     IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

#define SCAN_BUDGET           500  /* directory entries read per loop iteration */
#define SETTLE_BATCH          1000 /* files reported per settle-timer callback */
#define READS_PER_WAKEUP      16   /* event buffers read per poll callback */
#define EVENT_BUFFER          (64 * 1024)
#define DEFAULT_RETRY_SECONDS 5.0
#define MTIME_STEP_MS         2000 /* coarsest modification-time step (FAT), see changed_lately */
#define PATH_LEN              4096

#define CONTAINER_OF(pointer, type, member) \
    ((type *)(void *)((char *)(pointer)-offsetof(type, member)))

/* ---- a chained hash table over links embedded in the entries ---- */

struct link {
    struct link *next;
    uint64_t hash;
};

struct table {
    struct link **buckets;
    size_t size; /* a power of two */
    size_t count;
};

static int table_init(struct table *table)
{
    table->size = 64;
    table->count = 0;
    table->buckets = calloc(table->size, sizeof *table->buckets);
    return table->buckets == NULL ? -1 : 0;
}

/* Doubles the buckets; if memory is short the table keeps working with longer chains. */
static void table_grow(struct table *table)
{
    size_t size = table->size * 2;
    struct link **buckets = calloc(size, sizeof *buckets);
    if (buckets == NULL)
        return;
    for (size_t i = 0; i < table->size; i++) {
        struct link *link = table->buckets[i];
        while (link != NULL) {
            struct link *next = link->next;
            size_t j = link->hash & (size - 1);
            link->next = buckets[j];
            buckets[j] = link;
            link = next;
        }
    }
    free(table->buckets);
    table->buckets = buckets;
    table->size = size;
}

static void table_insert(struct table *table, struct link *link, uint64_t hash)
{
    if (table->count >= table->size)
        table_grow(table);
    link->hash = hash;
    size_t i = hash & (table->size - 1);
    link->next = table->buckets[i];
    table->buckets[i] = link;
    table->count++;
}

/* `link` must be in `table`. */
static void table_remove(struct table *table, struct link *link)
{
    struct link **at = &table->buckets[link->hash & (table->size - 1)];
    while (*at != link)
        at = &(*at)->next;
    *at = link->next;
    table->count--;
}

/* The chain that holds every link with this hash (and others: compare the hash and key). */
static struct link *table_chain(const struct table *table, uint64_t hash)
{
    return table->buckets[hash & (table->size - 1)];
}

static uint64_t hash_string(const char *s)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a, then a final mix for the low bits */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h ^ (h >> 29);
}

static uint64_t hash_int(int value)
{
    uint64_t h = (uint64_t)(unsigned)value * 0x9E3779B97F4A7C15u;
    return h ^ (h >> 29);
}

/* ---- the watch ---- */

/* A watched folder.  Children are removed before their parent, so `parent` is always valid. */
struct folder {
    struct link by_wd, by_path;
    int wd;
    int root_index; /* into blurd_watch.roots, or -1 */
    struct folder *parent, *first_child, *previous_sibling, *next_sibling;
    char path[];
};

/* A file waiting for its settle deadline, in the deadline-ordered list. */
struct pending {
    struct link by_path;
    struct pending *previous, *next;
    uint64_t deadline; /* uv_now() milliseconds */
    char path[];
};

enum scan_mode {
    SCAN_WATCH_ONLY, /* blurd_watch_start's walk: add watches, report nothing */
    SCAN_SETTLE,     /* internal rescans: files wait for the settle time */
    SCAN_REPORT,     /* blurd_watch_scan: files are reported at once */
};

/* A blurd_watch_scan call; `done` runs when its last folder has been read. */
struct scan_job {
    void (*done)(void *arg, size_t deferred);
    void *arg;
    size_t outstanding; /* folders of this job queued or being read */
    size_t deferred;    /* files it left waiting for their settle time */
    struct scan_job *next;
};

/* A folder waiting to be watched and read. */
struct scan_item {
    struct scan_item *next;
    enum scan_mode mode;
    struct scan_job *job; /* SCAN_REPORT only */
    int root_index;       /* >= 0 when the folder is a root */
    char path[];
};

struct root {
    char *path;
    struct folder *folder; /* NULL while lost */
    int lost;
    int rescan_queued; /* an internal rescan of it is queued and not yet begun */
};

struct blurd_watch {
    uv_loop_t *loop;
    int fd;
    uv_poll_t poll;
    uv_timer_t settle_timer, retry_timer;
    uv_idle_t scan_idle;
    int handles_ready; /* the handles above are initialised */
    int handles_open;
    int stopping;
    void (*closed)(void *arg);
    void *closed_arg;

    struct root *roots;
    int root_count;
    char **excluded;
    int excluded_count;
    int recursive;
    uint64_t settle_ms, retry_ms;
    int (*is_candidate)(const char *path);
    void (*on_file)(void *arg, const char *path);
    void (*on_rescan)(void *arg, const char *root, const char *reason);
    void *arg;

    struct table folders_by_wd, folders_by_path;
    struct table pending_by_path;
    struct pending *pending_head, *pending_tail;
    uint64_t timer_deadline; /* what the settle timer is armed for; UINT64_MAX when idle */

    struct scan_item *scan_head, *scan_tail;
    struct scan_item *scan_current; /* being read from scan_dir */
    DIR *scan_dir;
    struct scan_job *jobs;

    int watch_limit_warned;
    _Alignas(struct inotify_event) char events[EVENT_BUFFER];
};

/* ---- names and paths ---- */

/* A copy of an absolute path without trailing slashes ("/" stays "/"). */
static char *copy_path(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    char *copy = malloc(n + 1);
    if (copy != NULL) {
        memcpy(copy, path, n);
        copy[n] = '\0';
    }
    return copy;
}

static int join(char out[PATH_LEN], const char *folder, const char *name)
{
    int n = snprintf(out, PATH_LEN, "%s%s%s", folder, strcmp(folder, "/") == 0 ? "" : "/", name);
    return n < 0 || n >= PATH_LEN ? -1 : 0;
}

/* The folder holding `path` ("/" for "/x"). */
static void parent_path(const char *path, char out[PATH_LEN])
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL || slash == path ? 1 : (size_t)(slash - path);
    if (n >= PATH_LEN)
        n = PATH_LEN - 1;
    memcpy(out, slash == NULL ? "/" : path, n);
    out[n] = '\0';
}

static int ends_with_nocase(const char *name, const char *suffix)
{
    size_t n = strlen(name), m = strlen(suffix);
    return n >= m && strcasecmp(name + n - m, suffix) == 0;
}

/* Names that browsers, rsync, editors and upload tools use while a file is incomplete. */
static int is_partial_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] == '.' || (n > 0 && name[n - 1] == '~') || ends_with_nocase(name, ".part") ||
           ends_with_nocase(name, ".crdownload") || ends_with_nocase(name, ".tmp");
}

static int wanted_file(const blurd_watch *watch, const char *path, const char *name)
{
    return !is_partial_name(name) && (watch->is_candidate == NULL || watch->is_candidate(path));
}

/* True for an excluded folder and everything under it. */
static int is_excluded(const blurd_watch *watch, const char *path)
{
    for (int i = 0; i < watch->excluded_count; i++) {
        const char *excluded = watch->excluded[i];
        size_t n = strlen(excluded);
        if (n == 1 && excluded[0] == '/')
            return 1;
        if (strncmp(path, excluded, n) == 0 && (path[n] == '\0' || path[n] == '/'))
            return 1;
    }
    return 0;
}

/* ---- folders ---- */

static struct folder *folder_by_wd(const blurd_watch *watch, int wd)
{
    uint64_t hash = hash_int(wd);
    for (struct link *link = table_chain(&watch->folders_by_wd, hash); link; link = link->next) {
        struct folder *folder = CONTAINER_OF(link, struct folder, by_wd);
        if (link->hash == hash && folder->wd == wd)
            return folder;
    }
    return NULL;
}

static struct folder *folder_by_path(const blurd_watch *watch, const char *path)
{
    uint64_t hash = hash_string(path);
    for (struct link *link = table_chain(&watch->folders_by_path, hash); link; link = link->next) {
        struct folder *folder = CONTAINER_OF(link, struct folder, by_path);
        if (link->hash == hash && strcmp(folder->path, path) == 0)
            return folder;
    }
    return NULL;
}

static void retry_cb(uv_timer_t *timer);

/* Notes that a root is gone and starts looking for it. */
static void root_lost(blurd_watch *watch, int index)
{
    struct root *root = &watch->roots[index];
    if (root->lost)
        return;
    root->lost = 1;
    blurd_log_warning("%s: watched folder disappeared; looking for it every %g s", root->path,
                      (double)watch->retry_ms / 1000.0);
    if (watch->handles_ready && !watch->stopping &&
        !uv_is_active((uv_handle_t *)&watch->retry_timer))
        uv_timer_start(&watch->retry_timer, retry_cb, watch->retry_ms, watch->retry_ms);
}

/* Forgets `folder` and everything under it, removing its inotify watch when
 * `remove_watch` (not when the kernel has already dropped it: IN_IGNORED) and always those
 * under it (normally gone already; removing a dead one does nothing). */
static void forget_folder(blurd_watch *watch, struct folder *folder, int remove_watch)
{
    while (folder->first_child != NULL)
        forget_folder(watch, folder->first_child, 1);
    if (remove_watch)
        inotify_rm_watch(watch->fd, folder->wd); /* may already be gone: nothing to do then */
    if (folder->previous_sibling != NULL)
        folder->previous_sibling->next_sibling = folder->next_sibling;
    else if (folder->parent != NULL)
        folder->parent->first_child = folder->next_sibling;
    if (folder->next_sibling != NULL)
        folder->next_sibling->previous_sibling = folder->previous_sibling;
    table_remove(&watch->folders_by_wd, &folder->by_wd);
    table_remove(&watch->folders_by_path, &folder->by_path);
    int root_index = folder->root_index;
    free(folder);
    if (root_index >= 0) {
        watch->roots[root_index].folder = NULL;
        root_lost(watch, root_index);
    }
}

static struct folder *folder_add(blurd_watch *watch, int wd, const char *path,
                                 struct folder *parent, int root_index)
{
    /* An entry already under this name is for a folder deleted or moved away whose events
     * are still unread: it is stale.  (It cannot be `parent` or above it: their paths are
     * shorter.) */
    struct folder *stale = folder_by_path(watch, path);
    if (stale != NULL) {
        if (stale->root_index >= 0) {
            watch->roots[stale->root_index].folder = NULL; /* being replaced, not lost */
            stale->root_index = -1;
        }
        forget_folder(watch, stale, 1);
    }
    size_t n = strlen(path);
    struct folder *folder = malloc(sizeof *folder + n + 1);
    if (folder == NULL)
        return NULL;
    memcpy(folder->path, path, n + 1);
    folder->wd = wd;
    folder->root_index = root_index;
    folder->parent = parent;
    folder->first_child = NULL;
    folder->previous_sibling = NULL;
    folder->next_sibling = parent != NULL ? parent->first_child : NULL;
    if (folder->next_sibling != NULL)
        folder->next_sibling->previous_sibling = folder;
    if (parent != NULL)
        parent->first_child = folder;
    table_insert(&watch->folders_by_wd, &folder->by_wd, hash_int(wd));
    table_insert(&watch->folders_by_path, &folder->by_path, hash_string(path));
    if (root_index >= 0) {
        watch->roots[root_index].folder = folder;
        watch->roots[root_index].lost = 0;
    }
    return folder;
}

static int same_folder(const char *a, const char *b)
{
    struct stat sa, sb;
    return lstat(a, &sa) == 0 && lstat(b, &sb) == 0 && S_ISDIR(sa.st_mode) &&
           sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static int is_within(const struct folder *folder, const struct folder *ancestor)
{
    for (; folder != NULL; folder = folder->parent)
        if (folder == ancestor)
            return 1;
    return 0;
}

/* Watches the folder at `path` (held by `parent`, NULL for a root) and sets *out to its
 * entry.  Returns 0; 1 when it must not be read (the same folder is already watched under
 * another name: a bind mount); or -errno. */
static int watch_folder(blurd_watch *watch, const char *path, struct folder *parent, int root_index,
                        struct folder **out)
{
    *out = NULL;
    int wd = inotify_add_watch(watch->fd, path, WATCH_MASK);
    if (wd < 0)
        return -errno;
    struct folder *folder = folder_by_wd(watch, wd);
    if (folder != NULL) {
        if (strcmp(folder->path, path) == 0) {
            if (root_index >= 0 && folder->root_index < 0) {
                folder->root_index = root_index; /* a root also reached from another root */
                watch->roots[root_index].folder = folder;
                watch->roots[root_index].lost = 0;
            }
            *out = folder;
            return 0;
        }
        if (same_folder(folder->path, path) || is_within(parent, folder)) {
            blurd_log_info("%s: the same folder as %s, already watched", path, folder->path);
            return 1;
        }
        /* Moved here, and the events saying so are still unread: forget it under its old
         * name and watch it afresh (a new descriptor) under this one. */
        forget_folder(watch, folder, 1);
        wd = inotify_add_watch(watch->fd, path, WATCH_MASK);
        if (wd < 0)
            return -errno;
        if (folder_by_wd(watch, wd) != NULL)
            return 1;
    }
    folder = folder_add(watch, wd, path, parent, root_index);
    if (folder == NULL) {
        inotify_rm_watch(watch->fd, wd);
        return -ENOMEM;
    }
    *out = folder;
    return 0;
}

/* Logs why a subfolder could not be watched: a vanished one quietly, the watch limit once. */
static void log_watch_error(blurd_watch *watch, const char *path, int error)
{
    if (error == ENOENT || error == ENOTDIR)
        blurd_log_debug("%s: gone before it could be watched", path);
    else if (error == ENOSPC && !watch->watch_limit_warned) {
        watch->watch_limit_warned = 1;
        blurd_log_warning("%s: cannot watch: no inotify watches left (raise "
                          "fs.inotify.max_user_watches); such folders are only scanned",
                          path);
    } else if (error == ENOSPC)
        blurd_log_debug("%s: cannot watch: no inotify watches left", path);
    else
        blurd_log_warning("%s: cannot watch: %s", path, strerror(error));
}

/* ---- files waiting for their settle time ---- */

static struct pending *pending_find(const blurd_watch *watch, const char *path, uint64_t hash)
{
    for (struct link *link = table_chain(&watch->pending_by_path, hash); link; link = link->next) {
        struct pending *pending = CONTAINER_OF(link, struct pending, by_path);
        if (link->hash == hash && strcmp(pending->path, path) == 0)
            return pending;
    }
    return NULL;
}

static void pending_unlink(blurd_watch *watch, struct pending *pending)
{
    if (pending->previous != NULL)
        pending->previous->next = pending->next;
    else
        watch->pending_head = pending->next;
    if (pending->next != NULL)
        pending->next->previous = pending->previous;
    else
        watch->pending_tail = pending->previous;
    table_remove(&watch->pending_by_path, &pending->by_path);
}

/* Sets the deadline to now + settle; the list stays sorted because every deadline is. */
static void pending_append(blurd_watch *watch, struct pending *pending)
{
    pending->deadline = uv_now(watch->loop) + watch->settle_ms;
    pending->next = NULL;
    pending->previous = watch->pending_tail;
    if (watch->pending_tail != NULL)
        watch->pending_tail->next = pending;
    else
        watch->pending_head = pending;
    watch->pending_tail = pending;
    table_insert(&watch->pending_by_path, &pending->by_path, pending->by_path.hash);
}

static void settle_cb(uv_timer_t *timer);

/* Arms the settle timer for the earliest deadline, or stops it when nothing waits. */
static void arm_settle_timer(blurd_watch *watch)
{
    if (watch->stopping || !watch->handles_ready)
        return;
    if (watch->pending_head == NULL) {
        if (watch->timer_deadline != UINT64_MAX) {
            uv_timer_stop(&watch->settle_timer);
            watch->timer_deadline = UINT64_MAX;
        }
        return;
    }
    uint64_t deadline = watch->pending_head->deadline;
    if (deadline == watch->timer_deadline)
        return;
    uint64_t now = uv_now(watch->loop);
    uv_timer_start(&watch->settle_timer, settle_cb, deadline > now ? deadline - now : 0, 0);
    watch->timer_deadline = deadline;
}

/* Starts (or restarts) the settle time of `path`. */
static bool pending_touch(blurd_watch *watch, const char *path)
{
    uint64_t hash = hash_string(path);
    struct pending *pending = pending_find(watch, path, hash);
    if (pending != NULL) {
        pending_unlink(watch, pending);
    } else {
        size_t n = strlen(path);
        pending = malloc(sizeof *pending + n + 1);
        if (pending == NULL) {
            blurd_log_error("%s: out of memory; the file waits for the next scan", path);
            return false;
        }
        memcpy(pending->path, path, n + 1);
    }
    pending->by_path.hash = hash;
    pending_append(watch, pending);
    return true;
}

/* Restarts the settle time of `path` if it is waiting. */
static void pending_postpone(blurd_watch *watch, const char *path)
{
    struct pending *pending = pending_find(watch, path, hash_string(path));
    if (pending != NULL) {
        pending_unlink(watch, pending);
        pending_append(watch, pending);
    }
}

static void pending_drop(blurd_watch *watch, const char *path)
{
    struct pending *pending = pending_find(watch, path, hash_string(path));
    if (pending != NULL) {
        pending_unlink(watch, pending);
        free(pending);
    }
}

/* Reports the files whose deadline has passed and that are still regular files. */
static void settle_cb(uv_timer_t *timer)
{
    blurd_watch *watch = timer->data;
    watch->timer_deadline = UINT64_MAX;
    uint64_t now = uv_now(watch->loop);
    for (int n = 0; n < SETTLE_BATCH && !watch->stopping; n++) {
        struct pending *pending = watch->pending_head;
        if (pending == NULL || pending->deadline > now)
            break;
        pending_unlink(watch, pending);
        struct stat st;
        if (lstat(pending->path, &st) == 0 && S_ISREG(st.st_mode))
            watch->on_file(watch->arg, pending->path);
        free(pending);
    }
    arm_settle_timer(watch); /* at once again if a batch was not enough */
}

/* ---- scans ---- */

static void scan_cb(uv_idle_t *idle);

static void start_scanning(blurd_watch *watch)
{
    if (watch->handles_ready && !watch->stopping)
        uv_idle_start(&watch->scan_idle, scan_cb);
}

/* Queues the folder at `path` (NULL job unless SCAN_REPORT).  Returns 0 or -1 when out of
 * memory (logged). */
static int queue_scan(blurd_watch *watch, const char *path, enum scan_mode mode,
                      struct scan_job *job, int root_index)
{
    size_t n = strlen(path);
    struct scan_item *item = malloc(sizeof *item + n + 1);
    if (item == NULL) {
        blurd_log_error("%s: out of memory; folder not scanned", path);
        return -1;
    }
    memcpy(item->path, path, n + 1);
    item->next = NULL;
    item->mode = mode;
    item->job = job;
    item->root_index = root_index;
    if (watch->scan_tail != NULL)
        watch->scan_tail->next = item;
    else
        watch->scan_head = item;
    watch->scan_tail = item;
    if (job != NULL)
        job->outstanding++;
    return 0;
}

/* Queues an internal rescan of a root, telling the owner why, unless one is already
 * queued and not yet begun (it will see everything this one would). */
static void rescan_root(blurd_watch *watch, int index, const char *reason)
{
    struct root *root = &watch->roots[index];
    if (root->rescan_queued)
        return;
    if (watch->on_rescan != NULL)
        watch->on_rescan(watch->arg, root->path, reason);
    if (watch->stopping)
        return;
    if (queue_scan(watch, root->path, SCAN_SETTLE, NULL, index) == 0) {
        root->rescan_queued = 1;
        start_scanning(watch);
    }
}

/* Watches the item's folder and opens it for reading.  Returns 0 when there is something to
 * read, -1 when the item is finished already. */
static int begin_item(blurd_watch *watch, struct scan_item *item)
{
    if (item->root_index >= 0 && item->mode == SCAN_SETTLE)
        watch->roots[item->root_index].rescan_queued = 0;
    int watched = 1;
    struct folder *parent = NULL;
    if (item->root_index < 0) {
        if (is_excluded(watch, item->path))
            return -1;
        char parent_name[PATH_LEN];
        parent_path(item->path, parent_name);
        parent = folder_by_path(watch, parent_name);
        if (parent == NULL) {
            /* Either the folder holding it went away after it was queued (whoever brings it
             * back scans it again), or it could not be watched (no watches left): then
             * this one cannot be either, but is still read so the scan misses nothing. */
            struct stat st;
            if (lstat(parent_name, &st) != 0 || !S_ISDIR(st.st_mode))
                return -1;
            watched = 0;
        }
    }
    if (watched) {
        struct folder *folder;
        int rc = watch_folder(watch, item->path, parent, item->root_index, &folder);
        if (rc > 0)
            return -1;
        if (rc < 0 && item->root_index >= 0 && (rc == -ENOENT || rc == -ENOTDIR)) {
            struct root *root = &watch->roots[item->root_index];
            if (root->folder != NULL)
                forget_folder(watch, root->folder, 1);
            else
                root_lost(watch, item->root_index);
            return -1;
        }
        if (rc < 0) {
            log_watch_error(watch, item->path, -rc);
            if (rc != -ENOSPC) /* no watches left: read it all the same */
                return -1;
        }
    }
    int fd = open(item->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0 && (watch->scan_dir = fdopendir(fd)) == NULL) {
        int error = errno;
        close(fd);
        errno = error;
    }
    if (watch->scan_dir == NULL) {
        if (errno != ENOENT && errno != ENOTDIR)
            blurd_log_warning("%s: cannot read folder: %s", item->path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Ends the current item, and its job's scan if that was the last folder. */
static void finish_item(blurd_watch *watch)
{
    struct scan_item *item = watch->scan_current;
    watch->scan_current = NULL;
    if (watch->scan_dir != NULL) {
        closedir(watch->scan_dir);
        watch->scan_dir = NULL;
    }
    struct scan_job *job = item->job;
    free(item);
    if (job == NULL || --job->outstanding > 0)
        return;
    for (struct scan_job **at = &watch->jobs; *at != NULL; at = &(*at)->next) {
        if (*at == job) {
            *at = job->next;
            break;
        }
    }
    void (*done)(void *, size_t) = job->done;
    void *arg = job->arg;
    size_t deferred = job->deferred;
    free(job);
    if (done != NULL)
        done(arg, deferred);
}

/* Whether a file whose status is `st` was modified within the settle time (or has a
 * modification time in the future): a file the report scan meets may still be being
 * written, as one that arrives while the daemon starts is, so it waits for its settle time
 * like a file seen by inotify instead of being judged half written.  FAT file systems
 * (camera cards, USB disks) keep modification times in 2-second steps, rounded down, so a
 * file written a moment ago can look up to MTIME_STEP_MS older than it is. */
static bool changed_lately(const blurd_watch *watch, const struct stat *st)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return false;
    double age = (double)(now.tv_sec - st->st_mtim.tv_sec) +
                 1e-9 * (double)(now.tv_nsec - st->st_mtim.tv_nsec);
    return age < 1e-3 * (double)(watch->settle_ms + MTIME_STEP_MS);
}

static void visit_entry(blurd_watch *watch, const struct dirent *entry)
{
    const char *name = entry->d_name;
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return;
    struct scan_item *item = watch->scan_current;
    char path[PATH_LEN];
    if (join(path, item->path, name) != 0) {
        blurd_log_warning("%s/%s: path too long, skipped", item->path, name);
        return;
    }
    struct stat st;
    bool have_stat = false;
    unsigned char type = entry->d_type;
    if (type == DT_UNKNOWN) { /* some file systems do not fill d_type */
        if (fstatat(dirfd(watch->scan_dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            return;
        have_stat = true;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    if (type == DT_DIR) {
        if (watch->recursive && name[0] != '.' && !is_excluded(watch, path))
            queue_scan(watch, path, item->mode, item->job, -1);
        return;
    }
    if (type != DT_REG || item->mode == SCAN_WATCH_ONLY || !wanted_file(watch, path, name))
        return;
    if (item->mode != SCAN_REPORT) {
        pending_touch(watch, path);
        return;
    }
    /* a file that cannot be stat'ed is reported, and the owner's open names the reason */
    if (!have_stat)
        have_stat = fstatat(dirfd(watch->scan_dir), name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (have_stat && changed_lately(watch, &st)) {
        if (pending_touch(watch, path))
            item->job->deferred++;
    } else {
        watch->on_file(watch->arg, path);
    }
}

/* Reads up to `budget` directory entries of the queued folders.  Returns 1 while work
 * remains. */
static int scan_step(blurd_watch *watch, size_t budget)
{
    while (budget > 0 && !watch->stopping) {
        if (watch->scan_current == NULL) {
            struct scan_item *item = watch->scan_head;
            if (item == NULL)
                return 0;
            watch->scan_head = item->next;
            if (watch->scan_head == NULL)
                watch->scan_tail = NULL;
            watch->scan_current = item;
            budget--;
            if (begin_item(watch, item) != 0)
                finish_item(watch);
            continue;
        }
        errno = 0;
        struct dirent *entry = readdir(watch->scan_dir);
        if (entry == NULL) {
            if (errno != 0)
                blurd_log_warning("%s: cannot read folder: %s", watch->scan_current->path,
                                  strerror(errno));
            finish_item(watch);
            continue;
        }
        budget--;
        visit_entry(watch, entry);
    }
    return watch->scan_current != NULL || watch->scan_head != NULL;
}

static void scan_cb(uv_idle_t *idle)
{
    blurd_watch *watch = idle->data;
    if (!scan_step(watch, SCAN_BUDGET) && !watch->stopping)
        uv_idle_stop(idle);
    arm_settle_timer(watch);
}

/* ---- events ---- */

/* After lost events nothing in the tables can be trusted to exist: drop the folders whose
 * path is gone (the rescans add what is new). */
static void prune_folders(blurd_watch *watch)
{
    size_t count = watch->folders_by_wd.count, n = 0;
    int *gone = malloc((count ? count : 1) * sizeof *gone);
    if (gone == NULL)
        return;
    for (size_t i = 0; i < watch->folders_by_wd.size; i++) {
        for (struct link *link = watch->folders_by_wd.buckets[i]; link; link = link->next) {
            struct folder *folder = CONTAINER_OF(link, struct folder, by_wd);
            struct stat st;
            if (lstat(folder->path, &st) != 0 || !S_ISDIR(st.st_mode))
                gone[n++] = folder->wd;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct folder *folder = folder_by_wd(watch, gone[i]); /* NULL if under one before */
        if (folder != NULL)
            forget_folder(watch, folder, 1);
    }
    free(gone);
}

static void overflowed(blurd_watch *watch)
{
    blurd_log_warning("inotify queue overflow (see fs.inotify.max_queued_events): events were "
                      "lost; rescanning every watched folder");
    prune_folders(watch);
    for (int i = 0; i < watch->root_count && !watch->stopping; i++)
        if (!watch->roots[i].lost)
            rescan_root(watch, i, "inotify queue overflow");
}

/* A folder appeared in `parent`: watch it now, then scan it, because files may have been
 * written into it before the watch existed. */
static void new_folder(blurd_watch *watch, struct folder *parent, const char *path,
                       const char *name)
{
    if (!watch->recursive || name[0] == '.' || is_excluded(watch, path))
        return;
    struct folder *folder;
    int rc = watch_folder(watch, path, parent, -1, &folder);
    if (rc < 0)
        log_watch_error(watch, path, -rc);
    if (rc == 0 || rc == -ENOSPC)
        queue_scan(watch, path, SCAN_SETTLE, NULL, -1);
    start_scanning(watch);
}

static void handle_event(blurd_watch *watch, const struct inotify_event *event)
{
    if (event->mask & IN_Q_OVERFLOW) {
        overflowed(watch);
        return;
    }
    struct folder *folder = folder_by_wd(watch, event->wd);
    if (folder == NULL)
        return; /* a watch already forgotten: its last events mean nothing now */
    if (event->mask & IN_IGNORED) {
        forget_folder(watch, folder, 0); /* deleted, or its file system unmounted */
        return;
    }
    if (event->mask & IN_MOVE_SELF) {
        /* A subfolder's move is handled by its parent's IN_MOVED_FROM, which comes first;
         * only a root, or a folder whose parent's event was lost, is still known here. */
        forget_folder(watch, folder, 1);
        return;
    }
    if (event->len == 0 || event->name[0] == '\0')
        return; /* IN_DELETE_SELF: IN_IGNORED follows */
    char path[PATH_LEN];
    if (join(path, folder->path, event->name) != 0) {
        blurd_log_warning("%s/%s: path too long, ignored", folder->path, event->name);
        return;
    }
    if (event->mask & IN_ISDIR) {
        if (event->mask & IN_MOVED_FROM) {
            struct folder *moved = folder_by_path(watch, path);
            if (moved != NULL)
                forget_folder(watch, moved, 1);
        } else if (event->mask & (IN_CREATE | IN_MOVED_TO)) {
            new_folder(watch, folder, path, event->name);
        }
    } else if (event->mask & IN_MOVED_FROM) {
        pending_drop(watch, path);
    } else if (event->mask & IN_MODIFY) {
        pending_postpone(watch, path);
    } else if (event->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) {
        if (wanted_file(watch, path, event->name))
            pending_touch(watch, path);
    } else if (event->mask & IN_CREATE) {
        struct stat st;
        if (wanted_file(watch, path, event->name) && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            st.st_nlink > 1)
            pending_touch(watch, path);
    }
}

static void poll_cb(uv_poll_t *poll, int status, int events)
{
    blurd_watch *watch = poll->data;
    (void)events;
    if (status < 0) {
        blurd_log_error("inotify: %s; no longer watching", uv_strerror(status));
        uv_poll_stop(poll);
        return;
    }
    /* Bounded, so a flood of events cannot starve the rest of the loop; the descriptor
     * stays readable and the poll handle comes back. */
    for (int reads = 0; reads < READS_PER_WAKEUP && !watch->stopping; reads++) {
        ssize_t n = read(watch->fd, watch->events, sizeof watch->events);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno != EAGAIN)
                blurd_log_error("inotify: cannot read events: %s", strerror(errno));
            break;
        }
        if (n == 0)
            break;
        /* The kernel pads each name so the next event is aligned. */
        for (char *p = watch->events; p < watch->events + n && !watch->stopping;) {
            const struct inotify_event *event = (const struct inotify_event *)(void *)p;
            handle_event(watch, event);
            p += sizeof *event + event->len;
        }
    }
    arm_settle_timer(watch);
}

/* Looks for the roots that disappeared; one that is back is watched and rescanned. */
static void retry_cb(uv_timer_t *timer)
{
    blurd_watch *watch = timer->data;
    int still_lost = 0;
    for (int i = 0; i < watch->root_count && !watch->stopping; i++) {
        struct root *root = &watch->roots[i];
        if (!root->lost)
            continue;
        struct folder *folder;
        int rc = watch_folder(watch, root->path, NULL, i, &folder);
        if (rc != 0) {
            blurd_log_debug("%s: still gone: %s", root->path, rc < 0 ? strerror(-rc) : "alias");
            still_lost = 1;
            continue;
        }
        blurd_log_notice("%s: watched folder is back; rescanning it", root->path);
        rescan_root(watch, i, "watched folder came back");
    }
    if (!still_lost && !watch->stopping)
        uv_timer_stop(timer);
}

/* ---- life cycle ---- */

static void free_watch(blurd_watch *watch)
{
    if (watch->folders_by_wd.buckets != NULL) {
        for (size_t i = 0; i < watch->folders_by_wd.size; i++) {
            struct link *link = watch->folders_by_wd.buckets[i];
            while (link != NULL) {
                struct link *next = link->next;
                free(CONTAINER_OF(link, struct folder, by_wd));
                link = next;
            }
        }
    }
    while (watch->pending_head != NULL) {
        struct pending *next = watch->pending_head->next;
        free(watch->pending_head);
        watch->pending_head = next;
    }
    if (watch->scan_dir != NULL)
        closedir(watch->scan_dir);
    free(watch->scan_current);
    while (watch->scan_head != NULL) {
        struct scan_item *next = watch->scan_head->next;
        free(watch->scan_head);
        watch->scan_head = next;
    }
    while (watch->jobs != NULL) {
        struct scan_job *next = watch->jobs->next;
        free(watch->jobs);
        watch->jobs = next;
    }
    if (watch->fd >= 0)
        close(watch->fd);
    for (int i = 0; i < watch->root_count; i++)
        free(watch->roots[i].path);
    free(watch->roots);
    for (int i = 0; i < watch->excluded_count; i++)
        free(watch->excluded[i]);
    free(watch->excluded);
    free(watch->folders_by_wd.buckets);
    free(watch->folders_by_path.buckets);
    free(watch->pending_by_path.buckets);
    free(watch);
}

static int copy_options(blurd_watch *watch, const struct blurd_watch_options *options, char *err)
{
    watch->loop = options->loop;
    watch->recursive = options->recursive;
    watch->settle_ms = (uint64_t)llround(options->settle_seconds * 1000.0);
    double retry = options->retry_seconds > 0 ? options->retry_seconds : DEFAULT_RETRY_SECONDS;
    watch->retry_ms = (uint64_t)llround(retry * 1000.0);
    if (watch->retry_ms == 0)
        watch->retry_ms = 1;
    watch->is_candidate = options->is_candidate;
    watch->on_file = options->on_file;
    watch->on_rescan = options->on_rescan;
    watch->arg = options->arg;
    watch->timer_deadline = UINT64_MAX;
    watch->roots = calloc((size_t)options->root_count, sizeof *watch->roots);
    if (watch->roots == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory starting the watch");
    for (; watch->root_count < options->root_count; watch->root_count++) {
        struct root *root = &watch->roots[watch->root_count];
        if ((root->path = copy_path(options->roots[watch->root_count])) == NULL)
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory starting the watch");
    }
    if (options->excluded_count > 0) {
        watch->excluded = calloc((size_t)options->excluded_count, sizeof *watch->excluded);
        if (watch->excluded == NULL)
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory starting the watch");
        for (; watch->excluded_count < options->excluded_count; watch->excluded_count++) {
            char **slot = &watch->excluded[watch->excluded_count];
            if ((*slot = copy_path(options->excluded[watch->excluded_count])) == NULL)
                return blurd_error_set(err, BLURD_ENOMEM, "out of memory starting the watch");
        }
    }
    if (table_init(&watch->folders_by_wd) != 0 || table_init(&watch->folders_by_path) != 0 ||
        table_init(&watch->pending_by_path) != 0)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory starting the watch");
    return 0;
}

static int check_options(const struct blurd_watch_options *options, char *err)
{
    if (options == NULL || options->loop == NULL || options->on_file == NULL)
        return blurd_error_set(err, BLURD_EINVAL,
                               "watch: a loop and an on_file callback are needed");
    if (options->root_count < 1 || options->roots == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "watch: no folder to watch");
    if (!(options->settle_seconds >= 0 && options->settle_seconds < 86400.0))
        return blurd_error_set(err, BLURD_EINVAL, "watch: settle time %g s is out of range",
                               options->settle_seconds);
    if (!(options->retry_seconds >= 0 && options->retry_seconds < 86400.0))
        return blurd_error_set(err, BLURD_EINVAL, "watch: retry time %g s is out of range",
                               options->retry_seconds);
    for (int i = 0; i < options->root_count; i++)
        if (options->roots[i] == NULL || options->roots[i][0] != '/')
            return blurd_error_set(err, BLURD_EINVAL, "%s: not an absolute path",
                                   options->roots[i] ? options->roots[i] : "(null)");
    if (options->excluded_count < 0 || (options->excluded_count > 0 && options->excluded == NULL))
        return blurd_error_set(err, BLURD_EINVAL, "watch: bad excluded folders");
    for (int i = 0; i < options->excluded_count; i++)
        if (options->excluded[i] == NULL || options->excluded[i][0] != '/')
            return blurd_error_set(err, BLURD_EINVAL, "%s: excluded folder is not an absolute path",
                                   options->excluded[i] ? options->excluded[i] : "(null)");
    return 0;
}

/* Watches the roots (each failure is the caller's error) and walks them for subfolders. */
static int watch_roots(blurd_watch *watch, char *err)
{
    for (int i = 0; i < watch->root_count; i++) {
        const char *path = watch->roots[i].path;
        struct stat st;
        if (lstat(path, &st) != 0)
            return blurd_error_set(err, blurd_error_from_errno(errno), "%s: cannot watch: %s", path,
                                   strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return blurd_error_set(err, BLURD_EINVAL, "%s: cannot watch: not a folder%s", path,
                                   S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
        struct folder *folder;
        int rc = watch_folder(watch, path, NULL, i, &folder);
        if (rc < 0 && rc == -ENOSPC)
            return blurd_error_set(err, BLURD_EIO,
                                   "%s: cannot watch: no inotify watches left (raise "
                                   "fs.inotify.max_user_watches)",
                                   path);
        if (rc < 0)
            return blurd_error_set(err, rc == -ENOMEM ? BLURD_ENOMEM : blurd_error_from_errno(-rc),
                                   "%s: cannot watch: %s", path, strerror(-rc));
        if (rc == 0 && watch->recursive)
            queue_scan(watch, path, SCAN_WATCH_ONLY, NULL, i);
    }
    while (scan_step(watch, SIZE_MAX))
        ;
    return 0;
}

static void close_cb(uv_handle_t *handle)
{
    blurd_watch *watch = handle->data;
    if (--watch->handles_open > 0)
        return;
    void (*closed)(void *) = watch->closed;
    void *arg = watch->closed_arg;
    free_watch(watch);
    if (closed != NULL)
        closed(arg);
}

int blurd_watch_start(blurd_watch **out, const struct blurd_watch_options *options, char *err)
{
    *out = NULL;
    int rc = check_options(options, err);
    if (rc != 0)
        return rc;
    blurd_watch *watch = calloc(1, sizeof *watch);
    if (watch == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory starting the watch");
    watch->fd = -1;
    if ((rc = copy_options(watch, options, err)) != 0) {
        free_watch(watch);
        return rc;
    }
    watch->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch->fd < 0) {
        rc =
            blurd_error_set(err, errno == ENOMEM ? BLURD_ENOMEM : BLURD_EIO,
                            "%s: cannot start inotify: %s%s", watch->roots[0].path, strerror(errno),
                            errno == EMFILE ? " (see fs.inotify.max_user_instances)" : "");
        free_watch(watch);
        return rc;
    }
    /* Everything that can fail is done before the first handle is initialised, so a
     * failure is cleaned up here and now, without a loop iteration. */
    if ((rc = watch_roots(watch, err)) != 0) {
        free_watch(watch);
        return rc;
    }
    int uv_rc = uv_poll_init(watch->loop, &watch->poll, watch->fd);
    if (uv_rc != 0) {
        free_watch(watch);
        return blurd_error_set(err, BLURD_EIO, "%s: cannot poll inotify: %s", options->roots[0],
                               uv_strerror(uv_rc));
    }
    uv_timer_init(watch->loop, &watch->settle_timer);
    uv_timer_init(watch->loop, &watch->retry_timer);
    uv_idle_init(watch->loop, &watch->scan_idle);
    watch->poll.data = watch->settle_timer.data = watch->retry_timer.data = watch;
    watch->scan_idle.data = watch;
    watch->handles_ready = 1;
    watch->handles_open = 4;
    uv_rc = uv_poll_start(&watch->poll, UV_READABLE, poll_cb);
    if (uv_rc != 0) {
        blurd_watch_stop(watch, NULL, NULL); /* the handles close, and free it, in the loop */
        return blurd_error_set(err, BLURD_EIO, "%s: cannot poll inotify: %s", options->roots[0],
                               uv_strerror(uv_rc));
    }
    for (int i = 0; i < watch->root_count; i++)
        if (watch->roots[i].lost && !uv_is_active((uv_handle_t *)&watch->retry_timer))
            uv_timer_start(&watch->retry_timer, retry_cb, watch->retry_ms, watch->retry_ms);
    *out = watch;
    return 0;
}

void blurd_watch_scan(blurd_watch *watch, void (*done)(void *arg, size_t deferred), void *arg)
{
    if (watch == NULL || watch->stopping)
        return;
    struct scan_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        blurd_log_error("out of memory: scan of the watched folders skipped");
        if (done != NULL)
            done(arg, 0);
        return;
    }
    job->done = done;
    job->arg = arg;
    job->next = watch->jobs;
    watch->jobs = job;
    for (int i = 0; i < watch->root_count; i++)
        queue_scan(watch, watch->roots[i].path, SCAN_REPORT, job, i);
    if (job->outstanding == 0) { /* nothing could be queued */
        watch->jobs = job->next;
        free(job);
        if (done != NULL)
            done(arg, 0);
        return;
    }
    start_scanning(watch);
}

size_t blurd_watch_folder_count(const blurd_watch *watch)
{
    return watch->folders_by_wd.count;
}

size_t blurd_watch_pending_count(const blurd_watch *watch)
{
    return watch->pending_by_path.count;
}

void blurd_watch_stop(blurd_watch *watch, void (*closed)(void *arg), void *arg)
{
    if (watch == NULL || watch->stopping)
        return;
    watch->stopping = 1;
    watch->closed = closed;
    watch->closed_arg = arg;
    uv_close((uv_handle_t *)&watch->poll, close_cb);
    close(watch->fd); /* safe right after uv_close; this drops every inotify watch too */
    watch->fd = -1;
    uv_close((uv_handle_t *)&watch->settle_timer, close_cb);
    uv_close((uv_handle_t *)&watch->retry_timer, close_cb);
    uv_close((uv_handle_t *)&watch->scan_idle, close_cb);
}
