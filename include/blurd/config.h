/* config.h - the daemon's configuration: the INI file (read with inih), its defaults, the
 * command-line overrides, and validation that names `FILE:LINE: reason`.
 *
 * File layout (every key documented in etc/blurd.conf):
 *
 *   [watch]
 *   folder = /srv/photos/inbox        ; may be given several times
 *   recursive = yes
 *   extensions = jpg jpeg png webp tif tiff gif heic heif avif
 *   settle = 2                        ; seconds a file must stay quiet before it is judged
 *   [model]
 *   path = /usr/share/blurd/models/default.safetensors   ; empty: the default search
 *   input = model                     ; model | tiles | resize
 *   threshold = model                 ; model | a number in (0, 1)
 *   max_megapixels = 100
 *   [sort]
 *   move = no
 *   blurred = Blurred                 ; relative to each watched folder, or absolute
 *   clear = Undistorted
 *   [daemon]
 *   database = /var/lib/blurd/blurd.db
 *   workers = 0                       ; 0: one per CPU
 *   log_level = notice                ; error | warning | notice | info | debug
 */
#ifndef BLURD_CONFIG_H
#define BLURD_CONFIG_H

#include <stdint.h>

struct blurd_config {
    char **folders; /* watched roots, as written (owned) */
    int folder_count;
    int recursive;
    char **extensions; /* lower case, without the dot (owned) */
    int extension_count;
    double settle_seconds; /* >= 0 */
    char *model_path;      /* NULL: the default search (owned) */
    int input;             /* -1: the model's; else enum blurd_input_mode */
    float threshold;       /* < 0: the model's */
    uint64_t max_pixels;
    int move;
    char *blurred_folder; /* relative to each root, or absolute (owned) */
    char *clear_folder;   /* likewise (owned) */
    char *database;       /* (owned) */
    int workers;          /* >= 1 after blurd_config_finish */
    int log_level;        /* enum blurd_log_level */
};

/* Fills `config` with the defaults above (no folders). */
int blurd_config_init(struct blurd_config *config, char *err);

/* Reads `path` over what `config` holds.  An unknown section or key, a bad value, a
 * syntax error, or a missing or unreadable file returns BLURD_ECONFIG with
 * "PATH:LINE: reason" (or "PATH: reason") in `err`.  Folders in the file are added to
 * those already set. */
int blurd_config_load(struct blurd_config *config, const char *path, char *err);

/* Command-line overrides: each replaces the file's value (folders: the first call drops
 * the file's folders, later calls add). */
int blurd_config_set(struct blurd_config *config, const char *section, const char *key,
                     const char *value, char *err);

/* Checks what only the whole configuration can tell: at least one folder, each an
 * existing directory, no folder inside another, a database path; resolves workers = 0
 * to the CPU count.  BLURD_ECONFIG with a reason naming the key. */
int blurd_config_finish(struct blurd_config *config, char *err);

void blurd_config_free(struct blurd_config *config); /* NULL-safe; leaves it zeroed */

#endif
