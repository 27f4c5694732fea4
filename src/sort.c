/* sort.c - moving judged photos into their destination folders: a no-clobber rename, a
 * numbered name on collision, a copy that is made durable before its source is unlinked
 * across file systems, and an intent recorded in the store around every recorded move.
 *
 * Workload: one move per judged photo when moving is on, from the daemon's loop thread, a
 * few per second at most; a copy across file systems reads and writes the whole file.  The
 * rules this file keeps, in order of importance: never overwrite a file (every placement is
 * renameat2(RENAME_NOREPLACE) or link(), both of which fail rather than replace), never lose
 * one (a copy is fsync'd under its final name before the source goes), and never leave a
 * move half-done without a record saying so (blurd_sort_recover reads it at the next start).
 */
#include "blurd/sort.h"

#include "blurd/error.h"
#include "blurd/files.h"
#include "blurd/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* How many numbered names ("a (1).jpg" ... "a (10000).jpg") a move tries before giving up:
 * far more than any real folder holds of one name, few enough to fail in bounded time. */
#define MAX_COLLISIONS 10000

/* The record of one move.  `store` is NULL for an unrecorded move (blurd_sort_move).  A
 * failed move sets `unresolved` when it could not put everything back, so that its intent
 * is kept for blurd_sort_recover rather than forgotten. */
struct journal {
    blurd_store *store;
    int64_t id;
    bool unresolved;
};

static int note(struct journal *journal, const char *target, const char *temporary, char *err)
{
    if (journal->store == NULL)
        return 0;
    return blurd_store_move_note(journal->store, journal->id, target, temporary, err);
}

/* The code for a failed file-system call on anything but the source: BLURD_ENOENT is kept
 * for "the source vanished", which callers treat as a normal event, so a missing
 * destination folder must not look like it. */
static int failure(char *err, int errno_value, const char *what, const char *path)
{
    int code;
    switch (errno_value) {
    case EACCES:
    case EPERM:
    case EROFS:
        code = BLURD_EACCES;
        break;
    case ENOMEM:
        code = BLURD_ENOMEM;
        break;
    default:
        code = BLURD_EIO;
        break;
    }
    return blurd_error_set(err, code, "%s: %s: %s", path, what, strerror(errno_value));
}

/* Makes a rename, link or unlink in `directory` durable: without this a power failure can
 * bring back a name that was removed or drop one that was made. */
static int sync_directory(const char *directory)
{
    int fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static int sync_parent(const char *path)
{
    char directory[PATH_MAX];
    blurd_files_parent(path, directory);
    return sync_directory(directory);
}

/* mkdir -p with mode 0755 (before the umask).  A component that exists is fine as long as
 * the whole path ends up a directory; stat follows a symbolic link there, because the
 * destination comes from the configuration, not from an untrusted tree. */
static int make_directories(const char *path, char *err)
{
    char partial[PATH_MAX];
    if (snprintf(partial, sizeof partial, "%s", path) >= (int)sizeof partial)
        return failure(err, ENAMETOOLONG, "cannot create the destination", path);
    for (char *p = partial + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(partial, 0755) != 0 && errno != EEXIST)
            return failure(err, errno, "cannot create the destination", partial);
        *p = '/';
    }
    if (mkdir(partial, 0755) != 0 && errno != EEXIST)
        return failure(err, errno, "cannot create the destination", path);
    struct stat st;
    if (stat(path, &st) != 0)
        return failure(err, errno, "cannot create the destination", path);
    if (!S_ISDIR(st.st_mode))
        return failure(err, ENOTDIR, "cannot use the destination", path);
    return 0;
}

/* Writes the n-th candidate for `name` in `destination` into `out` (PATH_MAX bytes):
 * "DEST/a.jpg", then "DEST/a (1).jpg", ...  The number goes before the last extension so
 * the file keeps opening with the same program; a leading dot is part of the name, not an
 * extension.  Returns false when the path does not fit. */
static bool candidate(char *out, const char *destination, size_t destination_length,
                      const char *name, int n)
{
    int length;
    if (n == 0) {
        length = snprintf(out, PATH_MAX, "%.*s/%s", (int)destination_length, destination, name);
    } else {
        const char *dot = strrchr(name, '.');
        if (dot == NULL || dot == name)
            dot = name + strlen(name);
        length = snprintf(out, PATH_MAX, "%.*s/%.*s (%d)%s", (int)destination_length, destination,
                          (int)(dot - name), name, n, dot);
    }
    return length >= 0 && length < PATH_MAX;
}

/* Renames `from` to `to` unless `to` exists; returns 0 or an errno value (EEXIST when the
 * name is taken).  A file system that cannot refuse to replace in rename (renameat2 then
 * fails with EINVAL: some FUSE and network file systems) gets link() + unlink() instead:
 * link also fails with EEXIST rather than replace.  A crash between the two leaves both
 * names on one inode, which blurd_sort_recover finishes. */
static int rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL)
        return errno;
    if (link(from, to) != 0)
        return errno;
    if (unlink(from) != 0) {
        int saved = errno;
        unlink(to); /* our own second name for the same file: nothing is lost */
        return saved;
    }
    return 0;
}

/* Renames `from` into the first free name for `name` in `destination`, noting each name in
 * the journal before trying it (with `temporary` as the copy in progress, or NULL), and
 * writes the name used into `placed` (PATH_MAX bytes).  Names that exist are skipped by
 * lstat first, so a collision costs no store commit; one that appears between the lstat
 * and the rename is refused by the rename and the next is tried.  Returns 0, an errno
 * value from the rename (EXDEV, ENOENT, ...) for the caller to judge, or -1 with `err`
 * filled when no name could be tried. */
static int place(const char *from, const char *destination, size_t destination_length,
                 const char *name, const char *temporary, struct journal *journal, char *placed,
                 int *code, char *err)
{
    for (int n = 0; n <= MAX_COLLISIONS; n++) {
        if (!candidate(placed, destination, destination_length, name, n)) {
            *code = failure(err, ENAMETOOLONG, "cannot name the moved file", from);
            return -1;
        }
        struct stat st;
        if (lstat(placed, &st) == 0)
            continue;
        if (errno != ENOENT) {
            *code = failure(err, errno, "cannot check the destination name", placed);
            return -1;
        }
        *code = note(journal, placed, temporary, err);
        if (*code != 0)
            return -1;
        int rc = rename_noreplace(from, placed);
        if (rc != EEXIST)
            return rc;
    }
    *code = blurd_error_set(err, BLURD_EIO, "%s: no free name in %.*s after %d numbered names",
                            from, (int)destination_length, destination, MAX_COLLISIONS);
    return -1;
}

/* Copies everything from `in` to `out` with sendfile, which moves the bytes inside the
 * kernel; returns the bytes copied, or -1 with errno set. */
static off_t copy_contents(int in, int out)
{
    off_t copied = 0;
    for (;;) {
        ssize_t n = sendfile(out, in, NULL, 1 << 30);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return copied;
        copied += n;
    }
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* The move across file systems: copy to a hidden temporary name in the destination,
 * fsync, rename into a free name without replacing, fsync the folder, check the copy,
 * and only then unlink the source.  `before` is the source's lstat. */
static int move_across(const char *source, const struct stat *before, const char *destination,
                       size_t destination_length, const char *name, struct journal *journal,
                       char *moved_to, char *err)
{
    if (!S_ISREG(before->st_mode))
        return blurd_error_set(err, BLURD_EINVAL,
                               "%s: not a regular file, so not copied to another file system",
                               source);
    /* O_NOFOLLOW: if the path was swapped for a symbolic link since the lstat, refuse. */
    int in = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT)
            return blurd_error_set(err, BLURD_ENOENT, "%s: vanished before it was moved", source);
        return failure(err, errno, "cannot open", source);
    }
    struct stat opened;
    if (fstat(in, &opened) != 0 || !same_file(&opened, before)) {
        close(in);
        return blurd_error_set(err, BLURD_EIO, "%s: replaced while being moved", source);
    }

    /* The temporary is hidden and says whose it is; it is created, never found, so a file
     * that happens to have its name is never touched (O_EXCL in mkostemp).  Its name is
     * recorded only after it exists, for the same reason: a crash in between leaves an
     * empty hidden file behind, never a recovery that deletes someone else's. */
    char temporary[PATH_MAX];
    const size_t suffix = sizeof ".blurd-XXXXXX" - 1;
    size_t keep = strlen(name);
    if (keep > NAME_MAX - 1 - suffix)
        keep = NAME_MAX - 1 - suffix;
    if (snprintf(temporary, sizeof temporary, "%.*s/.%.*s.blurd-XXXXXX", (int)destination_length,
                 destination, (int)keep, name) >= (int)sizeof temporary) {
        close(in);
        return failure(err, ENAMETOOLONG, "cannot name a temporary copy in", destination);
    }
    int out = mkostemp(temporary, O_CLOEXEC);
    if (out < 0) {
        int saved = errno;
        close(in);
        return failure(err, saved, "cannot create a temporary copy in", destination);
    }
    /* Its identity, to tell our copy from any file that later takes one of its names. */
    struct stat written;
    if (fstat(out, &written) != 0) {
        int saved = errno;
        unlink(temporary);
        close(out);
        close(in);
        return failure(err, saved, "cannot check", temporary);
    }
    int code = note(journal, NULL, temporary, err);
    bool placed = false;
    char target[PATH_MAX];
    if (code == 0) {
        off_t copied = copy_contents(in, out);
        struct stat after;
        if (copied < 0)
            code = failure(err, errno, "cannot copy to", temporary);
        else if (fstat(in, &after) != 0)
            code = failure(err, errno, "cannot check", source);
        /* A file still being written would be copied half-way: refuse, the source stays. */
        else if (copied != before->st_size || after.st_size != before->st_size ||
                 after.st_mtim.tv_sec != before->st_mtim.tv_sec ||
                 after.st_mtim.tv_nsec != before->st_mtim.tv_nsec)
            code = blurd_error_set(err, BLURD_EIO, "%s: changed while being copied", source);
    }
    /* The copy keeps the permission bits and the times a photo is sorted by; not set-id
     * bits, and not the owner, which an unprivileged daemon cannot give away. */
    if (code == 0 && fchmod(out, before->st_mode & 0777) != 0)
        code = failure(err, errno, "cannot set the mode of", temporary);
    if (code == 0) {
        const struct timespec times[2] = {before->st_atim, before->st_mtim};
        if (futimens(out, times) != 0)
            code = failure(err, errno, "cannot set the times of", temporary);
    }
    if (code == 0 && fsync(out) != 0)
        code = failure(err, errno, "cannot write", temporary);
    if (code == 0) {
        int rc = place(temporary, destination, destination_length, name, temporary, journal, target,
                       &code, err);
        if (rc > 0)
            code = failure(err, rc, "cannot rename a copy into", destination);
        placed = rc == 0;
    }
    if (code == 0) {
        int rc = sync_parent(target);
        if (rc != 0)
            code = failure(err, rc, "cannot make the move durable in", destination);
    }
    /* The copy under its final name must be the very file written, and complete. */
    if (code == 0) {
        struct stat final;
        if (lstat(target, &final) != 0 || !same_file(&written, &final) ||
            final.st_size != before->st_size)
            code = blurd_error_set(err, BLURD_EIO, "%s: the copy at %s is not complete", source,
                                   target);
    }
    /* Unlink the source only if it is still the file copied. */
    if (code == 0) {
        struct stat now;
        if (lstat(source, &now) != 0) {
            if (errno == ENOENT)
                blurd_log_notice("%s: removed by someone else while being copied; keeping the "
                                 "copy at %s",
                                 source, target);
            else
                code = failure(err, errno, "cannot check", source);
        } else if (!same_file(&now, before)) {
            code = blurd_error_set(err, BLURD_EIO, "%s: replaced while being copied", source);
        } else if (unlink(source) != 0) {
            code = failure(err, errno, "cannot remove the moved file", source);
        } else {
            int rc = sync_parent(source);
            /* The move is done and the copy durable; at worst the source comes back after
             * a power failure, a duplicate rather than a loss. */
            if (rc != 0)
                blurd_log_warning("%s: moved, but its folder could not be synced: %s", source,
                                  strerror(rc));
        }
    }
    close(in);
    close(out);

    if (code == 0) {
        snprintf(moved_to, PATH_MAX, "%s", target);
        return 0;
    }
    /* Put everything back: remove our copy under whichever name it has, but only while
     * that name is still our copy.  If that fails, keep the intent so that
     * blurd_sort_recover tries again at the next start. */
    const char *copy = placed ? target : temporary;
    struct stat now;
    if (lstat(copy, &now) == 0 && same_file(&now, &written) && unlink(copy) != 0) {
        blurd_log_warning("%s: cannot remove the unfinished copy: %s", copy, strerror(errno));
        journal->unresolved = true;
    }
    return code;
}

/* The whole move, recorded in `journal` when it has a store.  On failure the source is
 * where it was, and journal->unresolved says whether anything was left to clean up. */
static int move(const char *path, const char *destination, struct journal *journal, char *moved_to,
                char *err)
{
    struct stat before;
    if (lstat(path, &before) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return blurd_error_set(err, BLURD_ENOENT, "%s: vanished before it was moved", path);
        return failure(err, errno, "cannot move", path);
    }
    if (S_ISDIR(before.st_mode))
        return blurd_error_set(err, BLURD_EISDIR, "%s: is a directory, not moved", path);
    if (!S_ISREG(before.st_mode) && !S_ISLNK(before.st_mode))
        return blurd_error_set(err, BLURD_EINVAL, "%s: not a regular file, not moved", path);
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;

    int code = make_directories(destination, err);
    if (code != 0)
        return code;
    /* "DEST/" and "DEST" name the same folder; keep moved_to free of a doubled slash. */
    size_t destination_length = strlen(destination);
    while (destination_length > 1 && destination[destination_length - 1] == '/')
        destination_length--;

    char target[PATH_MAX];
    int rc = place(path, destination, destination_length, name, NULL, journal, target, &code, err);
    if (rc < 0)
        return code;
    if (rc == 0) {
        snprintf(moved_to, PATH_MAX, "%s", target);
        return 0;
    }
    if (rc == EXDEV)
        return move_across(path, &before, destination, destination_length, name, journal, moved_to,
                           err);
    /* ENOENT from rename: the source vanished, or the destination did after it was made. */
    if (rc == ENOENT && lstat(path, &before) != 0 && errno == ENOENT)
        return blurd_error_set(err, BLURD_ENOENT, "%s: vanished before it was moved", path);
    return failure(err, rc, "cannot move into", destination);
}

int blurd_sort_move(const char *path, const char *destination, char *moved_to, char *err)
{
    if (path == NULL || destination == NULL || moved_to == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_sort_move: missing argument");
    struct journal journal = {.store = NULL};
    return move(path, destination, &journal, moved_to, err);
}

int blurd_sort_move_recorded(blurd_store *store, const char *path, const char *destination,
                             char *moved_to, char *err)
{
    if (store == NULL || path == NULL || destination == NULL || moved_to == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_sort_move_recorded: missing argument");
    /* A file that is already gone needs no record. */
    struct stat st;
    if (lstat(path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
        return blurd_error_set(err, BLURD_ENOENT, "%s: vanished before it was moved", path);

    struct journal journal = {.store = store};
    int code = blurd_store_move_begin(store, path, destination, &journal.id, err);
    if (code != 0)
        return code;
    code = move(path, destination, &journal, moved_to, err);
    if (code == 0)
        /* If this fails the file has moved and the intent says so: recovery marks it done. */
        return blurd_store_move_done(store, journal.id, moved_to, err);
    if (!journal.unresolved) {
        /* A file that could not be moved stays where it was; clearing its row's size and
         * time makes the next start's scan judge it again and retry the move. */
        char forget_err[BLURD_ERR_LEN];
        int cleared = code == BLURD_ENOENT
                          ? blurd_store_move_forget(store, journal.id, forget_err)
                          : blurd_store_move_rolled_back(store, journal.id, forget_err);
        if (cleared != 0)
            blurd_log_warning("%s (the next start will clear it)", forget_err);
    }
    return code;
}

/* True when the files at `a` and `b` are regular files with the same bytes. */
static bool same_contents(const char *a, const char *b)
{
    enum { CHUNK = 1 << 16 };
    int fa = open(a, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    int fb = open(b, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    char *buffer = malloc(2 * CHUNK);
    struct stat sa, sb;
    bool same = fa >= 0 && fb >= 0 && buffer != NULL && fstat(fa, &sa) == 0 &&
                fstat(fb, &sb) == 0 && S_ISREG(sa.st_mode) && S_ISREG(sb.st_mode) &&
                sa.st_size == sb.st_size;
    for (off_t offset = 0; same && offset < sa.st_size;) {
        size_t want = sa.st_size - offset < CHUNK ? (size_t)(sa.st_size - offset) : CHUNK;
        ssize_t na = pread(fa, buffer, want, offset);
        ssize_t nb = pread(fb, buffer + CHUNK, want, offset);
        /* A short read means a file changed under us: not provably the same. */
        same =
            na == (ssize_t)want && nb == (ssize_t)want && memcmp(buffer, buffer + CHUNK, want) == 0;
        offset += (off_t)want;
    }
    free(buffer);
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

struct recovery {
    blurd_store *store;
    int resolved;
    char *err;
};

/* lstat that answers only "is there something at this path"; errors other than ENOENT
 * count as present, so that recovery never concludes a file is gone when it cannot see. */
static bool exists(const char *path)
{
    struct stat st;
    return path != NULL && (lstat(path, &st) == 0 || errno != ENOENT);
}

/* Settles one interrupted move.  Which steps happened is read from the file system, in
 * the order a move takes them:
 *   a temporary copy still exists -> the copy never reached its name: remove it, roll back;
 *   source and target both exist  -> finish only if the target is provably the source's
 *                                    (one inode after link(), or a complete copy of a move
 *                                    across file systems), else roll back;
 *   only the source exists        -> the rename never happened: roll back;
 *   only the target exists        -> the rename happened: mark it done;
 *   neither                       -> the file vanished: forget it.
 * Rolled back means the intent is cleared and the source's row marked stale, so that the
 * start-up reconciliation, which skips files the store already has unchanged, judges and
 * sorts the file again. */
static int recover_one(void *arg, int64_t id, const char *source, const char *destination,
                       const char *target, const char *temporary)
{
    struct recovery *recovery = arg;
    char *err = recovery->err;
    bool has_source = exists(source), has_target = exists(target);
    int code;
    (void)destination;

    if (temporary != NULL && exists(temporary)) {
        if (unlink(temporary) != 0)
            return failure(err, errno, "cannot remove an unfinished copy", temporary);
        sync_parent(temporary);
        blurd_log_notice("%s: interrupted move rolled back (unfinished copy %s removed)%s", source,
                         temporary, has_source ? "" : "; the file itself has vanished");
        code = has_source ? blurd_store_move_rolled_back(recovery->store, id, err)
                          : blurd_store_move_forget(recovery->store, id, err);
    } else if (has_source && has_target) {
        struct stat s, t;
        bool finish = lstat(source, &s) == 0 && lstat(target, &t) == 0 &&
                      (same_file(&s, &t) || (temporary != NULL && same_contents(source, target)));
        if (finish) {
            if (unlink(source) != 0)
                return failure(err, errno, "cannot remove the moved file", source);
            sync_parent(source);
            blurd_log_notice("%s: interrupted move finished: now %s", source, target);
            code = blurd_store_move_done(recovery->store, id, target, err);
        } else {
            blurd_log_notice("%s: interrupted move rolled back (%s is another file)", source,
                             target);
            code = blurd_store_move_rolled_back(recovery->store, id, err);
        }
    } else if (has_source) {
        blurd_log_notice("%s: interrupted move rolled back; the file will be judged again", source);
        code = blurd_store_move_rolled_back(recovery->store, id, err);
    } else if (has_target) {
        blurd_log_notice("%s: interrupted move finished: now %s", source, target);
        code = blurd_store_move_done(recovery->store, id, target, err);
    } else {
        blurd_log_notice("%s: vanished during an interrupted move", source);
        code = blurd_store_move_forget(recovery->store, id, err);
    }
    if (code == 0)
        recovery->resolved++;
    return code;
}

int blurd_sort_recover(blurd_store *store, char *err)
{
    if (store == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_sort_recover: store is NULL");
    struct recovery recovery = {.store = store, .err = err};
    int code = blurd_store_moves_pending(store, recover_one, &recovery, err);
    return code != 0 ? code : recovery.resolved;
}
