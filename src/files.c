/* files.c - collecting the image files of a batch from arguments, folder walks and lists. */
#include "blurd/files.h"

#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/log.h"

#include <dirent.h>
#include <errno.h>
#include <glib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int append(struct blurd_file_list *list, const char *path, char *err)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 256;
        char **paths = realloc(list->paths, capacity * sizeof *paths);
        if (paths == NULL)
            return blurd_error_set(err, BLURD_ENOMEM, "out of memory listing files");
        list->paths = paths;
        list->capacity = capacity;
    }
    list->paths[list->count] = strdup(path);
    if (list->paths[list->count] == NULL)
        return blurd_error_set(err, BLURD_ENOMEM, "out of memory listing files");
    list->count++;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds the image files in `dir`, descending when `recursive`. */
static int walk(struct blurd_file_list *list, const char *dir, int recursive, char *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        blurd_log_warning("%s: cannot read folder: %s", dir, strerror(errno));
        list->unreadable++;
        return 0;
    }
    /* Read all names first so they can be visited in order, and so the descriptor is
     * closed before descending (deep trees must not run out of descriptors). */
    char **names = NULL;
    size_t count = 0, capacity = 0;
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 64;
            char **grown = realloc(names, capacity * sizeof *names);
            if (grown == NULL) {
                rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory reading %s", dir);
                break;
            }
            names = grown;
        }
        if ((names[count] = strdup(entry->d_name)) == NULL) {
            rc = blurd_error_set(err, BLURD_ENOMEM, "out of memory reading %s", dir);
            break;
        }
        count++;
    }
    closedir(d);
    if (count > 1)
        qsort(names, count, sizeof *names, compare_names);

    size_t dir_len = strlen(dir);
    int trailing_slash = dir_len > 0 && dir[dir_len - 1] == '/';
    for (size_t i = 0; i < count && rc == 0; i++) {
        char path[4096];
        int n = snprintf(path, sizeof path, "%s%s%s", dir, trailing_slash ? "" : "/", names[i]);
        if (n < 0 || (size_t)n >= sizeof path) {
            blurd_log_warning("%s/%s: path too long, skipped", dir, names[i]);
            list->skipped++;
            continue;
        }
        struct stat st;
        if (lstat(path, &st) != 0) {
            /* vanished between listing and looking: nothing to judge */
            list->skipped++;
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            if (recursive)
                rc = walk(list, path, recursive, err);
            continue;
        }
        if (S_ISLNK(st.st_mode) && stat(path, &st) != 0) {
            /* broken or looping: said when it bears an image's name, which was meant to be
             * judged */
            int saved = errno;
            if (blurd_image_has_image_extension(path))
                blurd_log_warning("%s: cannot read: %s; skipped", path, strerror(saved));
            list->skipped++;
            continue;
        }
        /* st is now a link's target: a link to a folder is skipped here, never followed */
        if (!S_ISREG(st.st_mode) || !blurd_image_has_image_extension(path)) {
            list->skipped++;
            continue;
        }
        rc = append(list, path, err);
    }
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int add_argument(struct blurd_file_list *list, const char *path, int recursive, char *err)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        /* A folder named as an image (x.jpg/) is still a folder: walk it. */
        return walk(list, path, recursive, err);
    }
    /* Files, and paths that do not exist: the latter fail later with a clear message. */
    return append(list, path, err);
}

static int read_list(struct blurd_file_list *list, const char *files_from, int recursive, char *err)
{
    FILE *f = strcmp(files_from, "-") == 0 ? stdin : fopen(files_from, "r");
    if (f == NULL)
        return blurd_error_set(err, blurd_error_from_errno(errno), "%s: cannot open: %s",
                               files_from, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        rc = add_argument(list, line, recursive, err);
    }
    if (rc == 0 && ferror(f))
        rc = blurd_error_set(err, BLURD_EIO, "%s: read error", files_from);
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

int blurd_files_collect(struct blurd_file_list *list, const char *const *paths, int path_count,
                        const char *files_from, int recursive, char *err)
{
    for (int i = 0; i < path_count; i++) {
        int rc = add_argument(list, paths[i], recursive, err);
        if (rc != 0)
            return rc;
    }
    if (files_from != NULL)
        return read_list(list, files_from, recursive, err);
    return 0;
}

void blurd_files_clear(struct blurd_file_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->paths[i]);
    free(list->paths);
    *list = (struct blurd_file_list){0};
}

char *blurd_files_utf8_path(const char *path)
{
    gchar *valid = g_utf8_make_valid(path, -1);
    char *copy = strdup(valid);
    g_free(valid);
    return copy;
}

void blurd_files_parent(const char *path, char *out)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(out, PATH_MAX, ".");
    else if (slash == path)
        snprintf(out, PATH_MAX, "/");
    else
        snprintf(out, PATH_MAX, "%.*s", (int)(slash - path), path);
}
