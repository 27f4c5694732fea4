/* files.h - turning command-line paths, directories and path lists into the list of image
 * files a batch will judge.
 *
 * Directories are read in name order (so runs are reproducible), hidden entries (".name")
 * are passed over, symbolic links to directories are not followed (no loops, no escaping
 * the tree), and inside directories only files with an image extension are taken; the
 * others are counted as skipped (a link with an image's name that leads nowhere is also
 * warned about).  Paths named explicitly are always taken, whatever their extension: the
 * decoder judges their content.
 */
#ifndef BLURD_FILES_H
#define BLURD_FILES_H

#include <stddef.h>

struct blurd_file_list {
    char **paths; /* owned by the list */
    size_t count, capacity;
    size_t skipped;    /* entries passed over: not an image by extension, or special files */
    size_t unreadable; /* directories or list files that could not be read (warned) */
};

/* Appends the files under each of `paths` (a file, or a directory read to one level, or
 * to all levels when `recursive`) and, if `files_from` is not NULL, the paths listed one
 * per line in that file ("-" is standard input).  Problems with single entries are logged
 * as warnings and counted; only running out of memory or an unreadable `files_from`
 * fails (with `err` naming it). */
int blurd_files_collect(struct blurd_file_list *list, const char *const *paths, int path_count,
                        const char *files_from, int recursive, char *err);

/* The folder holding `path`, as written in it: "." for a bare name, "/" for a name at the
 * root.  `out` holds PATH_MAX bytes; a longer folder is cut short (never for a path that
 * itself fits). */
void blurd_files_parent(const char *path, char *out);

/* `path` as valid UTF-8, for output formats that hold nothing else (JSON): each byte that
 * does not belong to a UTF-8 sequence becomes U+FFFD, as file names on Linux may be any
 * bytes.  malloc'd (the caller frees it); NULL only when out of memory. */
char *blurd_files_utf8_path(const char *path);

/* Frees the paths; the list may be reused after it.  NULL is a no-op. */
void blurd_files_clear(struct blurd_file_list *list);

#endif
