/* config.c - the daemon's configuration: defaults, the INI file read through inih, the
 * command-line overrides, and the checks that need the whole configuration.
 *
 * Workload: read once at start-up and again on each SIGHUP, a file of a few dozen lines.
 * What matters is that a mistake stops start-up with a message a person can act on
 * ("blurd.conf:7: settle: expected seconds from 0 to 3600, got `soon`"), so inih is fed
 * by a reader of our own that counts the real lines, refuses lines inih would split or
 * misread (too long, indented continuations), and stops at the first error.  Everything
 * here is reentrant: no inih setting or other global is changed.
 */
#include "blurd/config.h"

#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/log.h"
#include "blurd/model.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* A configuration file is a few kilobytes; anything this large is the wrong file. */
#define MAX_FILE_BYTES (1 << 20)

/* How much of an offending value or line a message quotes, to keep it one short line. */
#define QUOTE_MAX 80

#define MAX_WORKERS       256
#define MAX_SETTLE        3600.0
#define MAX_MEGAPIXELS    10000.0
#define MAX_EXTENSION_LEN 15

static const char *const default_extensions[] = {"jpg",  "jpeg", "png",  "webp", "tif",
                                                 "tiff", "gif",  "heic", "heif", "avif"};
#define DEFAULT_EXTENSION_COUNT ((int)(sizeof default_extensions / sizeof default_extensions[0]))

/* ---- values ----------------------------------------------------------------------- */

/* Each key's parser validates `value` and stores it in `config`.  It returns 0, or
 * BLURD_ECONFIG with `reason` saying what the key expects (the caller adds where), or
 * BLURD_ENOMEM.  On failure the config is unchanged. */
typedef int (*apply_fn)(struct blurd_config *config, const char *value, char *reason);

static int expected(char *reason, const char *what, const char *value)
{
    if (value[0] == '\0')
        return blurd_error_set(reason, BLURD_ECONFIG, "expected %s, got nothing", what);
    return blurd_error_set(reason, BLURD_ECONFIG, "expected %s, got `%.*s`", what, QUOTE_MAX,
                           value);
}

static int out_of_memory(char *reason)
{
    return blurd_error_set(reason, BLURD_ENOMEM, "out of memory");
}

static int parse_boolean(const char *value, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* A finite decimal number and nothing else.  The C locale is used explicitly, so "0.5"
 * means one half even if something in the process has called setlocale. */
static int parse_number(const char *value, double *out)
{
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod_l(value, &end, c_locale);
    int bad = end == value || *end != '\0' || errno == ERANGE || !isfinite(v);
    freelocale(c_locale);
    if (bad)
        return -1;
    *out = v;
    return 0;
}

static int parse_integer(const char *value, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* Replaces *slot by a copy of `value`. */
static int replace_string(char **slot, const char *value, char *reason)
{
    char *copy = strdup(value);
    if (copy == NULL)
        return out_of_memory(reason);
    free(*slot);
    *slot = copy;
    return 0;
}

static int apply_folder(struct blurd_config *config, const char *value, char *reason)
{
    if (value[0] == '\0')
        return expected(reason, "a folder to watch", value);
    char **grown = realloc(config->folders, sizeof *grown * (size_t)(config->folder_count + 1));
    if (grown == NULL)
        return out_of_memory(reason);
    config->folders = grown;
    if ((grown[config->folder_count] = strdup(value)) == NULL)
        return out_of_memory(reason);
    config->folder_count++;
    return 0;
}

static int apply_recursive(struct blurd_config *config, const char *value, char *reason)
{
    if (parse_boolean(value, &config->recursive) != 0)
        return expected(reason, "yes or no (or true/false, on/off, 1/0)", value);
    return 0;
}

static int apply_move(struct blurd_config *config, const char *value, char *reason)
{
    if (parse_boolean(value, &config->move) != 0)
        return expected(reason, "yes or no (or true/false, on/off, 1/0)", value);
    return 0;
}

static void free_strings(char **strings, int count)
{
    for (int i = 0; strings != NULL && i < count; i++)
        free(strings[i]);
    free(strings);
}

/* Extensions are separated by spaces or commas; a leading dot is dropped and case
 * folded, because the watcher compares them with each file name's ending. */
static int apply_extensions(struct blurd_config *config, const char *value, char *reason)
{
    static const char *const what = "file name extensions separated by spaces, like `jpg png`";
    size_t length = strlen(value);
    char **list = calloc(length / 2 + 1, sizeof *list); /* a word and a separator each */
    if (list == NULL)
        return out_of_memory(reason);
    int count = 0;
    const char *p = value;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *start = p;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != ',')
            p++;
        const char *word = *start == '.' ? start + 1 : start;
        size_t n = (size_t)(p - word);
        bool valid = n >= 1 && n <= MAX_EXTENSION_LEN;
        for (size_t i = 0; valid && i < n; i++)
            valid = isalnum((unsigned char)word[i]) != 0;
        if (!valid) {
            free_strings(list, count);
            return blurd_error_set(reason, BLURD_ECONFIG, "expected %s; `%.*s` is not an extension",
                                   what, (int)(p - start < QUOTE_MAX ? p - start : QUOTE_MAX),
                                   start);
        }
        char *lower = strndup(word, n);
        if (lower == NULL) {
            free_strings(list, count);
            return out_of_memory(reason);
        }
        for (size_t i = 0; i < n; i++)
            lower[i] = (char)tolower((unsigned char)lower[i]);
        bool seen = false;
        for (int i = 0; i < count && !seen; i++)
            seen = strcmp(list[i], lower) == 0;
        if (seen)
            free(lower);
        else
            list[count++] = lower;
    }
    if (count == 0) {
        free(list);
        return expected(reason, what, value);
    }
    free_strings(config->extensions, config->extension_count);
    config->extensions = list;
    config->extension_count = count;
    return 0;
}

static int apply_settle(struct blurd_config *config, const char *value, char *reason)
{
    double seconds;
    if (parse_number(value, &seconds) != 0 || !(seconds >= 0.0 && seconds <= MAX_SETTLE))
        return expected(reason, "seconds from 0 to 3600", value);
    config->settle_seconds = seconds;
    return 0;
}

/* Empty means "no path": the model module's default search. */
static int apply_model_path(struct blurd_config *config, const char *value, char *reason)
{
    if (value[0] == '\0') {
        free(config->model_path);
        config->model_path = NULL;
        return 0;
    }
    return replace_string(&config->model_path, value, reason);
}

static int apply_input(struct blurd_config *config, const char *value, char *reason)
{
    if (strcasecmp(value, "model") == 0)
        config->input = -1;
    else if (strcasecmp(value, "tiles") == 0)
        config->input = BLURD_INPUT_TILES;
    else if (strcasecmp(value, "resize") == 0)
        config->input = BLURD_INPUT_RESIZE;
    else
        return expected(reason, "model, tiles or resize", value);
    return 0;
}

static int apply_threshold(struct blurd_config *config, const char *value, char *reason)
{
    if (strcasecmp(value, "model") == 0) {
        config->threshold = -1.0f;
        return 0;
    }
    double number;
    bool valid = parse_number(value, &number) == 0 && number > 0.0 && number < 1.0;
    /* Checked again as a float, where 0.999999999 becomes 1. */
    float threshold = valid ? (float)number : -1.0f;
    if (!(threshold > 0.0f && threshold < 1.0f))
        return expected(reason, "`model` or a number strictly between 0 and 1", value);
    config->threshold = threshold;
    return 0;
}

int blurd_config_parse_megapixels(const char *value, uint64_t *pixels)
{
    double megapixels;
    if (parse_number(value, &megapixels) != 0 ||
        !(megapixels > 0.0 && megapixels <= MAX_MEGAPIXELS) || megapixels * 1e6 < 1.0)
        return -1;
    *pixels = (uint64_t)(megapixels * 1e6 + 0.5);
    return 0;
}

static int apply_max_megapixels(struct blurd_config *config, const char *value, char *reason)
{
    if (blurd_config_parse_megapixels(value, &config->max_pixels) != 0)
        return expected(reason, "megapixels above 0 and at most 10000", value);
    return 0;
}

static int apply_destination(char **slot, const char *value, char *reason)
{
    if (value[0] == '\0')
        return expected(reason, "a folder name (relative to each watched folder) or path", value);
    return replace_string(slot, value, reason);
}

static int apply_blurred(struct blurd_config *config, const char *value, char *reason)
{
    return apply_destination(&config->blurred_folder, value, reason);
}

static int apply_clear(struct blurd_config *config, const char *value, char *reason)
{
    return apply_destination(&config->clear_folder, value, reason);
}

static int apply_database(struct blurd_config *config, const char *value, char *reason)
{
    if (value[0] == '\0')
        return expected(reason, "the path of the SQLite database file", value);
    return replace_string(&config->database, value, reason);
}

static int apply_workers(struct blurd_config *config, const char *value, char *reason)
{
    long workers;
    if (parse_integer(value, &workers) != 0 || workers < 0 || workers > MAX_WORKERS)
        return expected(reason, "a whole number from 0 (one per CPU) to 256", value);
    config->workers = (int)workers;
    return 0;
}

static int apply_log_level(struct blurd_config *config, const char *value, char *reason)
{
    static const struct {
        const char *name;
        enum blurd_log_level level;
    } levels[] = {
        {"error", BLURD_LOG_ERROR}, {"warning", BLURD_LOG_WARNING}, {"notice", BLURD_LOG_NOTICE},
        {"info", BLURD_LOG_INFO},   {"debug", BLURD_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        if (strcasecmp(value, levels[i].name) == 0) {
            config->log_level = (int)levels[i].level;
            return 0;
        }
    }
    return expected(reason, "error, warning, notice, info or debug", value);
}

/* ---- the keys --------------------------------------------------------------------- */

struct key {
    const char *section, *name;
    const char *option; /* its command-line spelling, for override messages; NULL if none */
    apply_fn apply;
};

/* Every key of config.h's layout, grouped by section in the file's order. */
static const struct key keys[] = {
    {"watch", "folder", "--watch", apply_folder},
    {"watch", "recursive", NULL, apply_recursive},
    {"watch", "extensions", NULL, apply_extensions},
    {"watch", "settle", "--settle", apply_settle},
    {"model", "path", "--model", apply_model_path},
    {"model", "input", "--input", apply_input},
    {"model", "threshold", "--threshold", apply_threshold},
    {"model", "max_megapixels", NULL, apply_max_megapixels},
    {"sort", "move", "--move", apply_move},
    {"sort", "blurred", NULL, apply_blurred},
    {"sort", "clear", NULL, apply_clear},
    {"daemon", "database", "--db", apply_database},
    {"daemon", "workers", "--workers", apply_workers},
    {"daemon", "log_level", NULL, apply_log_level},
};
#define KEY_COUNT ((int)(sizeof keys / sizeof keys[0]))

static const char *const sections[] = {"watch", "model", "sort", "daemon"};
#define SECTION_COUNT ((int)(sizeof sections / sizeof sections[0]))

static const struct key *find_key(const char *section, const char *name)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* The key called `name` in any section: key names are unique across sections, so a key
 * in the wrong section can be pointed to the right one. */
static const struct key *find_key_anywhere(const char *name)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static bool known_section(const char *name, size_t length)
{
    for (int i = 0; i < SECTION_COUNT; i++)
        if (strlen(sections[i]) == length && strncmp(sections[i], name, length) == 0)
            return true;
    return false;
}

/* "folder, recursive, extensions, settle": the keys `section` accepts. */
static void list_keys(const char *section, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < KEY_COUNT && used < size; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        int n = snprintf(out + used, size - used, "%s%s", used > 0 ? ", " : "", keys[i].name);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* ---- the file --------------------------------------------------------------------- */

/* One parse of one file: inih pulls lines through read_line and pushes settings through
 * handle_setting, and both share this. */
struct parse {
    struct blurd_config *config;
    const char *path;
    const char *text; /* the whole file (owned by blurd_config_load) */
    size_t size;
    size_t offset;  /* where the next line starts */
    int line;       /* number of the line inih holds now */
    int error_line; /* first line with an error found here; 0: none yet */
    int error_code; /* its code */
    char *err;      /* the caller's buffer, holding that error's message */
};

static int parse_error(struct parse *p, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only: later lines are often consequences of the first. */
static int parse_error(struct parse *p, int code, const char *format, ...)
{
    if (p->error_line != 0)
        return 0;
    char reason[BLURD_ERR_LEN];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof reason, format, args);
    va_end(args);
    p->error_line = p->line;
    p->error_code = code;
    blurd_error_set(p->err, code, "%s:%d: %s", p->path, p->line, reason);
    return 0;
}

/* The text of line `number` (1-based) without its end of line; *length gets its length. */
static const char *line_text(const struct parse *p, int number, size_t *length)
{
    const char *start = p->text, *end = p->text + p->size;
    for (int i = 1; i < number && start < end; i++) {
        const char *newline = memchr(start, '\n', (size_t)(end - start));
        start = newline != NULL ? newline + 1 : end;
    }
    const char *newline = memchr(start, '\n', (size_t)(end - start));
    size_t n = (size_t)((newline != NULL ? newline : end) - start);
    while (n > 0 && isspace((unsigned char)start[n - 1]))
        n--;
    *length = n;
    return start;
}

/* Checks what inih would misread or not report on a raw line: an indented line (inih
 * would take it as the continuation of the previous value), and a section header, which
 * inih accepts silently whatever its name or trailing text.  Returns false after
 * recording an error. */
static bool check_line(struct parse *p, const char *line, size_t length)
{
    const char *start = line, *end = line + length;
    if (p->line == 1 && length >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0)
        start += 3; /* a UTF-8 byte order mark, which inih skips too */
    const char *text = start;
    while (text < end && isspace((unsigned char)*text))
        text++;
    while (end > text && isspace((unsigned char)end[-1]))
        end--;
    if (text == end || *text == ';' || *text == '#')
        return true;
    if (text != start) {
        parse_error(p, BLURD_ECONFIG,
                    "indented line; start settings and [sections] at the beginning of the "
                    "line (a value cannot continue onto the next line)");
        return false;
    }
    if (*text != '[')
        return true;
    const char *close = memchr(text, ']', (size_t)(end - text));
    if (close == NULL) {
        parse_error(p, BLURD_ECONFIG, "`%.*s` lacks the closing `]`",
                    (int)(end - text < QUOTE_MAX ? end - text : QUOTE_MAX), text);
        return false;
    }
    const char *name = text + 1;
    size_t name_length = (size_t)(close - name);
    if (!known_section(name, name_length)) {
        parse_error(p, BLURD_ECONFIG,
                    "unknown section [%.*s]; expected [watch], [model], [sort] or [daemon]",
                    (int)(name_length < QUOTE_MAX ? name_length : QUOTE_MAX), name);
        return false;
    }
    const char *rest = close + 1;
    while (rest < end && isspace((unsigned char)*rest))
        rest++;
    if (rest < end && *rest != ';' && *rest != '#') {
        parse_error(p, BLURD_ECONFIG, "unexpected `%.*s` after [%.*s]",
                    (int)(end - rest < QUOTE_MAX ? end - rest : QUOTE_MAX), rest, (int)name_length,
                    name);
        return false;
    }
    return true;
}

/* inih's fgets-like reader.  It hands inih exactly one whole line per call, so that
 * inih's line count and ours agree, and ends the input at the first error, so that
 * nothing after it is applied or reported. */
static char *read_line(char *buffer, int size, void *stream)
{
    struct parse *p = stream;
    if (p->error_line != 0 || p->offset >= p->size || size < 3)
        return NULL;
    const char *line = p->text + p->offset;
    size_t left = p->size - p->offset;
    const char *newline = memchr(line, '\n', left);
    size_t length = newline != NULL ? (size_t)(newline - line) : left;
    p->offset += newline != NULL ? length + 1 : length;
    p->line++;

    if (memchr(line, '\0', length) != NULL) {
        parse_error(p, BLURD_ECONFIG, "NUL byte in the line; is this a text file?");
        return NULL;
    }
    /* Room for the line, its newline and the terminator: inih would cut a longer line
     * and read the rest as a line of its own. */
    if (length > (size_t)size - 2) {
        parse_error(p, BLURD_ECONFIG, "line longer than %d characters", size - 2);
        return NULL;
    }
    if (!check_line(p, line, length))
        return NULL;
    memcpy(buffer, line, length);
    buffer[length] = '\n';
    buffer[length + 1] = '\0';
    return buffer;
}

/* inih's handler, called for each `key = value` line; returns 0 on an error, which inih
 * notes (it cannot say why, hence our own record). */
static int handle_setting(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    if (name[0] == '\0')
        return parse_error(p, BLURD_ECONFIG, "a key name is missing before `=`");
    const struct key *key = find_key(section, name);
    if (key == NULL) {
        const struct key *elsewhere = find_key_anywhere(name);
        if (section[0] == '\0' && elsewhere != NULL)
            return parse_error(p, BLURD_ECONFIG, "%s: outside any section; put it under [%s]", name,
                               elsewhere->section);
        if (section[0] == '\0')
            return parse_error(p, BLURD_ECONFIG,
                               "unknown key `%.*s` outside any section; expected a [section] "
                               "first",
                               QUOTE_MAX, name);
        if (elsewhere != NULL)
            return parse_error(p, BLURD_ECONFIG, "%s: not a key of [%s]; it belongs in [%s]", name,
                               section, elsewhere->section);
        char names[200];
        list_keys(section, names, sizeof names);
        return parse_error(p, BLURD_ECONFIG, "unknown key `%.*s` in [%s]; expected one of %s",
                           QUOTE_MAX, name, section, names);
    }
    char reason[BLURD_ERR_LEN];
    int code = key->apply(p->config, value, reason);
    if (code != 0)
        return parse_error(p, code, "%s: %s", key->name, reason);
    return 1;
}

/* Reads the whole of `path` into *text (NUL-terminated, malloc'd). */
static int read_file(const char *path, char **text, size_t *size, char *err)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return blurd_error_set(err, BLURD_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    char *buffer = NULL;
    size_t capacity = 0, used = 0;
    int code = 0;
    for (;;) {
        if (capacity - used < 2) { /* room for one more byte and the terminator */
            if (capacity >= MAX_FILE_BYTES) {
                code = blurd_error_set(err, BLURD_ECONFIG,
                                       "%s: cannot read: over %d KiB, too large for a "
                                       "configuration file",
                                       path, MAX_FILE_BYTES / 1024);
                break;
            }
            size_t grown_capacity = capacity == 0 ? 4096 : 2 * capacity;
            char *grown = realloc(buffer, grown_capacity);
            if (grown == NULL) {
                code = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", path);
                break;
            }
            buffer = grown;
            capacity = grown_capacity;
        }
        size_t n = fread(buffer + used, 1, capacity - 1 - used, file);
        used += n;
        if (n == 0) {
            if (ferror(file))
                code = blurd_error_set(err, BLURD_ECONFIG, "%s: cannot read: %s", path,
                                       strerror(errno));
            break;
        }
    }
    fclose(file);
    if (code != 0) {
        free(buffer);
        return code;
    }
    buffer[used] = '\0';
    *text = buffer;
    *size = used;
    return 0;
}

int blurd_config_load(struct blurd_config *config, const char *path, char *err)
{
    if (config == NULL || path == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_config_load: NULL argument");
    char *text = NULL;
    size_t size = 0;
    int code = read_file(path, &text, &size, err);
    if (code != 0)
        return code;

    struct parse p = {.config = config, .path = path, .text = text, .size = size, .err = err};
    int first = ini_parse_stream(read_line, &p, handle_setting, &p);
    if (first == -2) {
        code = blurd_error_set(err, BLURD_ENOMEM, "%s: out of memory", path);
    } else if (first > 0 && (p.error_line == 0 || first < p.error_line)) {
        /* A line inih could not parse and never passed on: all that is left after
         * read_line's checks is a line with neither `=` nor `:`. */
        size_t length;
        const char *line = line_text(&p, first, &length);
        code = blurd_error_set(err, BLURD_ECONFIG,
                               "%s:%d: expected `key = value` or [section], got `%.*s`", path,
                               first, (int)(length < QUOTE_MAX ? length : QUOTE_MAX), line);
    } else if (p.error_line != 0) {
        code = p.error_code; /* the message is in err already */
    }
    free(text);
    return code;
}

/* ---- the rest of the contract ----------------------------------------------------- */

int blurd_config_init(struct blurd_config *config, char *err)
{
    if (config == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_config_init: NULL argument");
    memset(config, 0, sizeof *config);
    config->recursive = 1;
    config->settle_seconds = 2.0;
    config->input = -1;
    config->threshold = -1.0f;
    config->max_pixels = BLURD_IMAGE_DEFAULT_MAX_PIXELS;
    config->move = 0;
    config->workers = 0;
    config->log_level = BLURD_LOG_NOTICE;
    config->extensions = calloc(DEFAULT_EXTENSION_COUNT, sizeof *config->extensions);
    config->blurred_folder = strdup("Blurred");
    config->clear_folder = strdup("Undistorted");
    config->database = strdup("/var/lib/blurd/blurd.db");
    bool ok = config->extensions != NULL && config->blurred_folder != NULL &&
              config->clear_folder != NULL && config->database != NULL;
    for (int i = 0; ok && i < DEFAULT_EXTENSION_COUNT; i++) {
        ok = (config->extensions[i] = strdup(default_extensions[i])) != NULL;
        config->extension_count = ok ? i + 1 : i;
    }
    if (!ok) {
        blurd_config_free(config);
        return blurd_error_set(err, BLURD_ENOMEM, "configuration: out of memory");
    }
    return 0;
}

int blurd_config_set(struct blurd_config *config, const char *section, const char *key_name,
                     const char *value, char *err)
{
    if (config == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_config_set: NULL argument");
    const struct key *key =
        section != NULL && key_name != NULL ? find_key(section, key_name) : NULL;
    if (key == NULL)
        return blurd_error_set(err, BLURD_ECONFIG, "unknown setting %s.%s",
                               section != NULL ? section : "(null)",
                               key_name != NULL ? key_name : "(null)");
    char label[64];
    if (key->option != NULL)
        snprintf(label, sizeof label, "%s", key->option);
    else
        snprintf(label, sizeof label, "%s.%s", key->section, key->name);
    if (value == NULL)
        return blurd_error_set(err, BLURD_ECONFIG, "%s: a value is missing", label);

    /* The first folder from the command line drops the file's: `--watch DIR` means "watch
     * DIR", not "watch DIR as well".  The file's folders come back if the value fails. */
    bool replacing = key->apply == apply_folder && !config->folders_overridden;
    char **file_folders = config->folders;
    int file_folder_count = config->folder_count;
    if (replacing) {
        config->folders = NULL;
        config->folder_count = 0;
    }
    char reason[BLURD_ERR_LEN];
    int code = key->apply(config, value, reason);
    if (replacing && code != 0) {
        free_strings(config->folders, config->folder_count);
        config->folders = file_folders;
        config->folder_count = file_folder_count;
    } else if (replacing) {
        free_strings(file_folders, file_folder_count);
        config->folders_overridden = 1;
    }
    if (code != 0)
        return blurd_error_set(err, code, "%s: %s", label, reason);
    return 0;
}

/* "Blurred/" and "Blurred" name the same folder. */
static bool same_folder_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (lb > 1 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

/* True if absolute path `inner` lies under `outer` (both without trailing slashes). */
static bool is_inside(const char *inner, const char *outer)
{
    size_t n = strlen(outer);
    if (n == 1 && outer[0] == '/')
        return true;
    return strncmp(inner, outer, n) == 0 && inner[n] == '/';
}

int blurd_config_finish(struct blurd_config *config, char *err)
{
    if (config == NULL)
        return blurd_error_set(err, BLURD_EINVAL, "blurd_config_finish: NULL argument");
    if (config->folder_count == 0)
        return blurd_error_set(err, BLURD_ECONFIG,
                               "folder: no folder to watch; give `folder = DIR` under [watch] "
                               "or --watch DIR");
    for (int i = 0; i < config->folder_count; i++) {
        const char *folder = config->folders[i];
        char *absolute = realpath(folder, NULL);
        if (absolute == NULL) {
            if (errno == ENOMEM)
                return blurd_error_set(err, BLURD_ENOMEM, "folder %s: out of memory", folder);
            return blurd_error_set(err, BLURD_ECONFIG, "folder %s: %s", folder, strerror(errno));
        }
        struct stat st;
        if (stat(absolute, &st) != 0 || !S_ISDIR(st.st_mode)) {
            int code = blurd_error_set(err, BLURD_ECONFIG, "folder %s: not a directory", folder);
            free(absolute);
            return code;
        }
        free(config->folders[i]);
        config->folders[i] = absolute;
    }
    for (int i = 0; i < config->folder_count; i++) {
        for (int j = 0; j < config->folder_count; j++) {
            const char *a = config->folders[i], *b = config->folders[j];
            if (i < j && strcmp(a, b) == 0)
                return blurd_error_set(err, BLURD_ECONFIG, "folder %s: given twice", a);
            if (i != j && is_inside(a, b))
                return blurd_error_set(err, BLURD_ECONFIG,
                                       "folder %s: inside watched folder %s; watch each tree "
                                       "once",
                                       a, b);
        }
    }
    if (config->database == NULL || config->database[0] == '\0')
        return blurd_error_set(err, BLURD_ECONFIG, "database: no database file given");
    if (config->blurred_folder == NULL || config->blurred_folder[0] == '\0')
        return blurd_error_set(err, BLURD_ECONFIG, "blurred: no folder given");
    if (config->clear_folder == NULL || config->clear_folder[0] == '\0')
        return blurd_error_set(err, BLURD_ECONFIG, "clear: no folder given");
    if (same_folder_name(config->blurred_folder, config->clear_folder))
        return blurd_error_set(err, BLURD_ECONFIG,
                               "blurred and clear: both are `%s`; blurred and clear photos need "
                               "different folders",
                               config->clear_folder);
    if (config->workers == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        config->workers = cpus < 1 ? 1 : cpus > MAX_WORKERS ? MAX_WORKERS : (int)cpus;
    }
    return 0;
}

void blurd_config_free(struct blurd_config *config)
{
    if (config == NULL)
        return;
    free_strings(config->folders, config->folder_count);
    free_strings(config->extensions, config->extension_count);
    free(config->model_path);
    free(config->blurred_folder);
    free(config->clear_folder);
    free(config->database);
    memset(config, 0, sizeof *config);
}
