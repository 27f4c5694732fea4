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
    char **folders; /* watched roots: as written, then absolute and resolved after
                       blurd_config_finish (owned) */
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
    char *blurred_folder;   /* relative to each root, or absolute (owned) */
    char *clear_folder;     /* likewise (owned) */
    char *database;         /* (owned) */
    int workers;            /* >= 1 after blurd_config_finish */
    int log_level;          /* enum blurd_log_level */
    int folders_overridden; /* private: a command-line folder has replaced the file's */
};

/* Fills `config` with the defaults above (no folders).  BLURD_ENOMEM on failure, with
 * `config` left zeroed. */
int blurd_config_init(struct blurd_config *config, char *err);

/* Reads `path` over what `config` holds.  An unknown section or key, a bad value, a
 * syntax error, or a missing or unreadable file returns BLURD_ECONFIG with
 * "PATH:LINE: reason" (or "PATH: cannot read: reason") in `err`, the reason naming the
 * key and what it expects; the first error in the file wins.  Folders in the file are
 * added to those already set.  Comments are lines starting with `;` or `#`, and `;` after
 * a space ends a value.  Indented lines, and lines longer than inih's limit (198
 * characters in Debian's build), are refused rather than misread.  On failure `config`
 * may hold some of the file's values; it still needs blurd_config_free. */
int blurd_config_load(struct blurd_config *config, const char *path, char *err);

/* Command-line overrides, `section` and `key` as in the file: each replaces the file's
 * value (folders: the first call drops the file's folders, later calls add).  Validated
 * as in the file; on failure `config` is unchanged and `err` starts with the option
 * `blurd daemon` spells the key as (--watch, --db, --model, --move, --settle, --workers,
 * --input, --threshold; any other key as section.key) and says what it expects. */
int blurd_config_set(struct blurd_config *config, const char *section, const char *key,
                     const char *value, char *err);

/* Checks what only the whole configuration can tell: at least one folder, each an
 * existing directory (replaced by its absolute, symlink-free path), none inside another
 * or given twice, a database path, blurred and clear folders that are set and differ;
 * resolves workers = 0 to the CPU count.  BLURD_ECONFIG with a reason naming the key
 * (BLURD_ENOMEM).  blurred_folder and clear_folder stay as written. */
int blurd_config_finish(struct blurd_config *config, char *err);

void blurd_config_free(struct blurd_config *config); /* NULL-safe; leaves it zeroed */

/* A megapixel limit as max_megapixels and classify's --max-megapixels take it: a number
 * above 0 and at most 10000, into whole pixels, rounded.  0, or -1 for anything else. */
int blurd_config_parse_megapixels(const char *value, uint64_t *pixels);

#endif
