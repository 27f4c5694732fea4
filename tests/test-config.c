/* test-config.c - the daemon's configuration on real files: defaults, every key, the
 * shipped etc/blurd.conf, errors that name the line and the key, command-line overrides,
 * and the checks blurd_config_finish makes against real folders. */
#include "blurd/config.h"
#include "blurd/error.h"
#include "blurd/image.h"
#include "blurd/log.h"
#include "blurd/model.h"
#include "test.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes `text` to a file in the test's directory and returns its path. */
static const char *write_config(const char *name, const char *text)
{
    const char *path = test_path(name);
    test_write_file(path, text, strlen(text));
    return path;
}

static void init_config(struct blurd_config *config)
{
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_init(config, err);
    if (code != 0)
        TEST_FAIL("blurd_config_init: %s: %s", blurd_error_name(code), err);
}

static void load_text(struct blurd_config *config, const char *text)
{
    const char *path = write_config("ok.conf", text);
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_load(config, path, err);
    if (code != 0)
        TEST_FAIL("blurd_config_load: %s: %s", blurd_error_name(code), err);
}

static void set_value(struct blurd_config *config, const char *section, const char *key,
                      const char *value)
{
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_set(config, section, key, value, err);
    if (code != 0)
        TEST_FAIL("blurd_config_set %s.%s: %s: %s", section, key, blurd_error_name(code), err);
}

/* Loads `text` and expects BLURD_ECONFIG with a message that starts "PATH:LINE: " and
 * contains each of the given fragments (a NULL-terminated list). */
static void expect_load_error(const char *text, int line, ...)
{
    const char *path = write_config("bad.conf", text);
    struct blurd_config config;
    init_config(&config);
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_load(&config, path, err);
    blurd_config_free(&config);
    if (code != BLURD_ECONFIG)
        TEST_FAIL("expected BLURD_ECONFIG, got %s (%s) for:\n%s", blurd_error_name(code), err,
                  text);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        TEST_FAIL("\"%s\" does not start with \"%s\"", err, prefix);
    ASSERT(strchr(err, '\n') == NULL);
    va_list fragments;
    va_start(fragments, line);
    for (const char *fragment; (fragment = va_arg(fragments, const char *)) != NULL;)
        ASSERT_CONTAINS(err, fragment);
    va_end(fragments);
}

static void expect_set_error(struct blurd_config *config, const char *section, const char *key,
                             const char *value, const char *start, const char *fragment)
{
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_config_set(config, section, key, value, err), BLURD_ECONFIG);
    if (strncmp(err, start, strlen(start)) != 0)
        TEST_FAIL("\"%s\" does not start with \"%s\"", err, start);
    ASSERT_CONTAINS(err, fragment);
}

static void expect_finish_error(struct blurd_config *config, const char *fragment)
{
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_config_finish(config, err), BLURD_ECONFIG);
    ASSERT_CONTAINS(err, fragment);
}

static const char *make_folder(const char *name)
{
    const char *path = test_path(name);
    if (mkdir(path, 0755) != 0)
        TEST_FAIL("mkdir %s failed", path);
    return path;
}

TEST_IMPL(config_defaults)
{
    struct blurd_config config;
    init_config(&config);
    ASSERT_INT_EQ(config.folder_count, 0);
    ASSERT_INT_EQ(config.recursive, 1);
    static const char *const extensions[] = {"jpg",  "jpeg", "png",  "webp", "tif",
                                             "tiff", "gif",  "heic", "heif", "avif"};
    ASSERT_INT_EQ(config.extension_count, 10);
    for (int i = 0; i < 10; i++)
        ASSERT_STR_EQ(config.extensions[i], extensions[i]);
    ASSERT_NEAR(config.settle_seconds, 2.0, 0.0);
    ASSERT(config.model_path == NULL);
    ASSERT_INT_EQ(config.input, -1);
    ASSERT(config.threshold < 0.0f);
    ASSERT_INT_EQ(config.max_pixels, BLURD_IMAGE_DEFAULT_MAX_PIXELS);
    ASSERT_INT_EQ(config.move, 0);
    ASSERT_STR_EQ(config.blurred_folder, "Blurred");
    ASSERT_STR_EQ(config.clear_folder, "Undistorted");
    ASSERT_STR_EQ(config.database, "/var/lib/blurd/blurd.db");
    ASSERT_INT_EQ(config.workers, 0);
    ASSERT_INT_EQ(config.log_level, BLURD_LOG_NOTICE);

    /* An empty file and one of comments only change nothing. */
    load_text(&config, "");
    load_text(&config, "; comment\n# another\n\n[watch]\n[daemon]\n");
    ASSERT_INT_EQ(config.extension_count, 10);
    ASSERT_STR_EQ(config.database, "/var/lib/blurd/blurd.db");

    blurd_config_free(&config);
    ASSERT(config.folders == NULL && config.extensions == NULL && config.database == NULL);
    ASSERT_INT_EQ(config.extension_count, 0);
    blurd_config_free(&config); /* twice is harmless */
    blurd_config_free(NULL);
    return 0;
}

TEST_IMPL(config_full_file_every_key)
{
    struct blurd_config config;
    init_config(&config);
    /* Every key set away from its default, with the syntax the shipped file describes:
     * comment lines of both kinds, `;` comments after values, `key: value`, spaces around
     * `=`, a repeated folder, a repeated scalar key (the last wins), CRLF line ends. */
    load_text(&config, "; blurd test configuration\n"
                       "[watch]\n"
                       "folder = /srv/one\n"
                       "folder=/srv/two ; the second\n"
                       "recursive = off\n"
                       "extensions = .JPG, png  Tif\n"
                       "settle = 0.25\n"
                       "# model\n"
                       "[model]\n"
                       "path = /opt/models/m.safetensors\n"
                       "input = resize\n"
                       "threshold = 0.7\n"
                       "max_megapixels = 24.5\n"
                       "[sort]\r\n"
                       "move = TRUE\r\n"
                       "blurred = /srv/out/soft;not-a-comment\r\n"
                       "clear: Sharp\r\n"
                       "[daemon]\n"
                       "database = /tmp/x.db\n"
                       "workers = 1\n"
                       "workers = 3\n"
                       "log_level = debug");
    ASSERT_INT_EQ(config.folder_count, 2);
    ASSERT_STR_EQ(config.folders[0], "/srv/one");
    ASSERT_STR_EQ(config.folders[1], "/srv/two");
    ASSERT_INT_EQ(config.recursive, 0);
    ASSERT_INT_EQ(config.extension_count, 3);
    ASSERT_STR_EQ(config.extensions[0], "jpg");
    ASSERT_STR_EQ(config.extensions[1], "png");
    ASSERT_STR_EQ(config.extensions[2], "tif");
    ASSERT_NEAR(config.settle_seconds, 0.25, 0.0);
    ASSERT_STR_EQ(config.model_path, "/opt/models/m.safetensors");
    ASSERT_INT_EQ(config.input, BLURD_INPUT_RESIZE);
    ASSERT_NEAR(config.threshold, 0.7, 1e-7);
    ASSERT_INT_EQ(config.max_pixels, 24500000);
    ASSERT_INT_EQ(config.move, 1);
    ASSERT_STR_EQ(config.blurred_folder, "/srv/out/soft;not-a-comment");
    ASSERT_STR_EQ(config.clear_folder, "Sharp");
    ASSERT_STR_EQ(config.database, "/tmp/x.db");
    ASSERT_INT_EQ(config.workers, 3);
    ASSERT_INT_EQ(config.log_level, BLURD_LOG_DEBUG);

    /* A second file adds folders and takes back other values; `path =` empty is the
     * default search, `model` the model's own settings. */
    load_text(&config, "[watch]\nfolder = /srv/three\nrecursive = 1\n"
                       "[model]\npath =\ninput = tiles\nthreshold = model\n");
    ASSERT_INT_EQ(config.folder_count, 3);
    ASSERT_STR_EQ(config.folders[2], "/srv/three");
    ASSERT_INT_EQ(config.recursive, 1);
    ASSERT(config.model_path == NULL);
    ASSERT_INT_EQ(config.input, BLURD_INPUT_TILES);
    ASSERT(config.threshold < 0.0f);
    load_text(&config, "[model]\ninput = model\n");
    ASSERT_INT_EQ(config.input, -1);
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_shipped_example_parses)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/etc/blurd.conf", test_source_dir());
    struct blurd_config config;
    init_config(&config);
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_load(&config, path, err);
    if (code != 0)
        TEST_FAIL("%s: %s", blurd_error_name(code), err);
    ASSERT_INT_EQ(config.folder_count, 1);
    ASSERT_STR_EQ(config.folders[0], "/srv/photos/inbox");
    ASSERT_STR_EQ(config.database, "/var/lib/blurd/blurd.db");
    ASSERT_INT_EQ(config.move, 0);
    ASSERT(config.model_path == NULL);
    /* Everything else is written at its default. */
    struct blurd_config defaults;
    init_config(&defaults);
    ASSERT_INT_EQ(config.recursive, defaults.recursive);
    ASSERT_INT_EQ(config.extension_count, defaults.extension_count);
    for (int i = 0; i < defaults.extension_count; i++)
        ASSERT_STR_EQ(config.extensions[i], defaults.extensions[i]);
    ASSERT_NEAR(config.settle_seconds, defaults.settle_seconds, 0.0);
    ASSERT_INT_EQ(config.input, defaults.input);
    ASSERT_NEAR(config.threshold, defaults.threshold, 0.0);
    ASSERT_INT_EQ(config.max_pixels, defaults.max_pixels);
    ASSERT_STR_EQ(config.blurred_folder, defaults.blurred_folder);
    ASSERT_STR_EQ(config.clear_folder, defaults.clear_folder);
    ASSERT_INT_EQ(config.workers, defaults.workers);
    ASSERT_INT_EQ(config.log_level, defaults.log_level);
    blurd_config_free(&defaults);

    /* Every key of the layout is documented and set in the file. */
    char *text = test_read_file(path, NULL);
    static const char *const keys[] = {
        "folder",         "recursive", "extensions", "settle", "path",     "input",   "threshold",
        "max_megapixels", "move",      "blurred",    "clear",  "database", "workers", "log_level"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char documented[64], set[64];
        snprintf(documented, sizeof documented, "\n# %s: ", keys[i]);
        snprintf(set, sizeof set, "\n%s =", keys[i]);
        ASSERT_CONTAINS(text, documented);
        ASSERT_CONTAINS(text, set);
    }
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_error_unknown_key)
{
    expect_load_error("[watch]\nfolder = /srv/a\n\ncolour = red\n", 4, "unknown key `colour`",
                      "[watch]", "folder, recursive, extensions, settle", NULL);
    /* A real key in the wrong section is pointed to the right one. */
    expect_load_error("[model]\nthreshold = 0.5\nworkers = 2\n", 3, "workers",
                      "belongs in [daemon]", NULL);
    expect_load_error("folder = /srv/a\n[watch]\n", 1, "folder", "outside any section", "[watch]",
                      NULL);
    expect_load_error("[sort]\n= yes\n", 2, "key name is missing", NULL);
    return 0;
}

TEST_IMPL(config_error_unknown_section)
{
    expect_load_error("[watch]\nfolder = /srv/a\n[models]\npath = x\n", 3, "[models]",
                      "unknown section", NULL);
    /* Even an empty one, which inih would pass over without a word. */
    expect_load_error("[watch]\nfolder = /srv/a\n\n[Daemon]\n", 4, "[Daemon]", NULL);
    expect_load_error("[watch] folder = /srv/a\n", 1, "after [watch]", NULL);
    return 0;
}

TEST_IMPL(config_error_bad_boolean)
{
    expect_load_error("[watch]\nrecursive = maybe\n", 2, "recursive", "`maybe`", "yes or no", NULL);
    expect_load_error("[watch]\nfolder = /a\n[sort]\nmove = yess\n", 4, "move", "`yess`", NULL);
    expect_load_error("[sort]\nmove =\n", 2, "move", "yes or no", NULL);
    return 0;
}

TEST_IMPL(config_error_bad_number)
{
    expect_load_error("[watch]\nsettle = soon\n", 2, "settle", "`soon`", "0 to 3600", NULL);
    expect_load_error("[watch]\nsettle = -1\n", 2, "settle", NULL);
    expect_load_error("[watch]\nsettle = 3601\n", 2, "settle", NULL);
    /* `#` is no comment after a value; the message shows what was read. */
    expect_load_error("[watch]\nsettle = 2 # seconds\n", 2, "settle", "`2 # seconds`", NULL);
    expect_load_error("[daemon]\nworkers = 2.5\n", 2, "workers", "0 (one per CPU) to 256", NULL);
    expect_load_error("[daemon]\nworkers = 257\n", 2, "workers", NULL);
    expect_load_error("[daemon]\nworkers = -1\n", 2, "workers", NULL);
    expect_load_error("[model]\nmax_megapixels = 0\n", 2, "max_megapixels", "above 0", NULL);
    expect_load_error("[model]\nmax_megapixels = 10001\n", 2, "max_megapixels", NULL);
    expect_load_error("[model]\nmax_megapixels = nan\n", 2, "max_megapixels", NULL);
    expect_load_error("[model]\ninput = crop\n", 2, "input", "tiles or resize", NULL);
    expect_load_error("[daemon]\nlog_level = loud\n", 2, "log_level", "notice", NULL);
    expect_load_error("[watch]\nextensions = jpg p/ng\n", 2, "extensions", "`p/ng`", NULL);
    expect_load_error("[watch]\nextensions = ,\n", 2, "extensions", NULL);
    expect_load_error("[watch]\nfolder =\n", 2, "folder", NULL);
    expect_load_error("[daemon]\ndatabase =\n", 2, "database", NULL);
    expect_load_error("[sort]\nclear =\n", 2, "clear", NULL);

    /* The limits themselves are accepted. */
    struct blurd_config config;
    init_config(&config);
    load_text(&config, "[watch]\nsettle = 0\n[daemon]\nworkers = 256\n[model]\n"
                       "max_megapixels = 10000\n");
    ASSERT_NEAR(config.settle_seconds, 0.0, 0.0);
    ASSERT_INT_EQ(config.workers, 256);
    ASSERT_INT_EQ(config.max_pixels, 10000000000ULL);
    load_text(&config, "[watch]\nsettle = 3600\n");
    ASSERT_NEAR(config.settle_seconds, 3600.0, 0.0);
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_error_threshold_out_of_range)
{
    static const char *const bad[] = {"0", "1", "1.5", "-0.1", "0.9999999999", "nan", "half", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "[model]\ninput = tiles\nthreshold = %s\n", bad[i]);
        expect_load_error(text, 3, "threshold", "strictly between 0 and 1", NULL);
    }
    struct blurd_config config;
    init_config(&config);
    load_text(&config, "[model]\nthreshold = 0.001\n");
    ASSERT_NEAR(config.threshold, 0.001, 1e-9);
    load_text(&config, "[model]\nthreshold = 0.999\n");
    ASSERT_NEAR(config.threshold, 0.999, 1e-7);
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_error_syntax)
{
    /* A line without `=`: inih finds it, and the message quotes it. */
    expect_load_error("[watch]\nfolder = /srv/a\nrecursive yes\nsettle = 1\n", 3,
                      "expected `key = value` or [section]", "`recursive yes`", NULL);
    expect_load_error("[watch\nfolder = /srv/a\n", 1, "`[watch` lacks the closing `]`", NULL);
    /* An indented line would silently continue the previous value. */
    expect_load_error("[watch]\nfolder = /srv/a\n    /srv/b\n", 3, "indented line", NULL);
    expect_load_error("[watch]\n  settle = 3\n", 2, "indented line", NULL);
    /* A line inih would cut in two is refused, and the count stays right after it. */
    char text[600];
    snprintf(text, sizeof text, "[watch]\n\nfolder = /%0260d\n", 7);
    expect_load_error(text, 3, "line longer than 198 characters", NULL);
    char *ok_then_bad = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&ok_then_bad, &size);
    fprintf(out, "[watch]\nfolder = /%0185d\nsettle = x\n", 7);
    fclose(out);
    expect_load_error(ok_then_bad, 3, "settle", NULL);
    free(ok_then_bad);

    /* A NUL byte would end the line early for inih; the file is refused instead. */
    static const char binary[] = "[watch]\nfolder = /a\0b\n";
    const char *path = test_path("binary.conf");
    test_write_file(path, binary, sizeof binary - 1);
    struct blurd_config config;
    init_config(&config);
    char err[BLURD_ERR_LEN] = "";
    ASSERT_INT_EQ(blurd_config_load(&config, path, err), BLURD_ECONFIG);
    ASSERT_CONTAINS(err, ":2: NUL byte");
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_error_first_error_wins)
{
    /* Whatever kind each error is, the earliest line is the one reported. */
    expect_load_error("[watch]\nsettle = x\nnonsense\n[nowhere]\n", 2, "settle", NULL);
    expect_load_error("[watch]\nnonsense\nsettle = x\n[nowhere]\n", 2, "`nonsense`", NULL);
    expect_load_error("[watch]\nnonsense\n[nowhere]\nsettle = x\n", 2, "`nonsense`", NULL);
    expect_load_error("[nowhere]\nnonsense\n", 1, "[nowhere]", NULL);
    expect_load_error("[watch]\nsettle = 1\nsettle = x\nrecursive = maybe\n", 3, "settle", NULL);
    return 0;
}

TEST_IMPL(config_error_missing_file)
{
    const char *missing = test_path("absent.conf");
    struct blurd_config config;
    init_config(&config);
    char err[BLURD_ERR_LEN] = "";
    char expected[4200];
    ASSERT_INT_EQ(blurd_config_load(&config, missing, err), BLURD_ECONFIG);
    snprintf(expected, sizeof expected, "%s: cannot read: No such file or directory", missing);
    ASSERT_STR_EQ(err, expected);

    ASSERT_INT_EQ(blurd_config_load(&config, test_tmpdir(), err), BLURD_ECONFIG);
    snprintf(expected, sizeof expected, "%s: cannot read: Is a directory", test_tmpdir());
    ASSERT_STR_EQ(err, expected);

    if (geteuid() != 0) { /* root reads anything */
        const char *locked = write_config("locked.conf", "[watch]\n");
        ASSERT_INT_EQ(chmod(locked, 0), 0);
        ASSERT_INT_EQ(blurd_config_load(&config, locked, err), BLURD_ECONFIG);
        snprintf(expected, sizeof expected, "%s: cannot read: Permission denied", locked);
        ASSERT_STR_EQ(err, expected);
    }
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_overrides_replace_file_values)
{
    struct blurd_config config;
    init_config(&config);
    load_text(&config, "[watch]\nfolder = /srv/a\nfolder = /srv/b\nsettle = 5\n"
                       "[daemon]\ndatabase = /srv/file.db\n");

    /* The first --watch replaces the file's folders, later ones add. */
    set_value(&config, "watch", "folder", "/srv/c");
    ASSERT_INT_EQ(config.folder_count, 1);
    ASSERT_STR_EQ(config.folders[0], "/srv/c");
    set_value(&config, "watch", "folder", "/srv/d");
    ASSERT_INT_EQ(config.folder_count, 2);
    ASSERT_STR_EQ(config.folders[1], "/srv/d");

    set_value(&config, "daemon", "database", "/srv/options.db");
    ASSERT_STR_EQ(config.database, "/srv/options.db");
    set_value(&config, "model", "path", "/srv/m.safetensors");
    ASSERT_STR_EQ(config.model_path, "/srv/m.safetensors");
    set_value(&config, "sort", "move", "yes");
    ASSERT_INT_EQ(config.move, 1);
    set_value(&config, "watch", "settle", "0.5");
    ASSERT_NEAR(config.settle_seconds, 0.5, 0.0);

    /* Bad values are refused with the option's name and change nothing. */
    expect_set_error(&config, "daemon", "database", "", "--db: ", "SQLite database");
    ASSERT_STR_EQ(config.database, "/srv/options.db");
    expect_set_error(&config, "watch", "settle", "later", "--settle: ", "`later`");
    expect_set_error(&config, "daemon", "log_level", "loud", "daemon.log_level: ", "`loud`");
    ASSERT_NEAR(config.settle_seconds, 0.5, 0.0);
    expect_set_error(&config, "sort", "move", "perhaps", "--move: ", "yes or no");
    ASSERT_INT_EQ(config.move, 1);
    expect_set_error(&config, "watch", "colour", "red", "unknown setting watch.colour", "");
    expect_set_error(&config, "watch", "folder", NULL, "--watch: ", "missing");
    blurd_config_free(&config);

    /* A failed first --watch keeps the file's folders, and the next one still replaces. */
    init_config(&config);
    load_text(&config, "[watch]\nfolder = /srv/a\n");
    expect_set_error(&config, "watch", "folder", "", "--watch: ", "folder");
    ASSERT_INT_EQ(config.folder_count, 1);
    ASSERT_STR_EQ(config.folders[0], "/srv/a");
    set_value(&config, "watch", "folder", "/srv/e");
    ASSERT_INT_EQ(config.folder_count, 1);
    ASSERT_STR_EQ(config.folders[0], "/srv/e");
    /* A file read after the overrides adds its folders. */
    load_text(&config, "[watch]\nfolder = /srv/f\n");
    ASSERT_INT_EQ(config.folder_count, 2);
    blurd_config_free(&config);

    /* Overrides alone, without any file. */
    init_config(&config);
    set_value(&config, "watch", "folder", "/srv/g");
    ASSERT_INT_EQ(config.folder_count, 1);
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_finish_errors)
{
    struct blurd_config config;
    init_config(&config);
    expect_finish_error(&config, "no folder to watch");
    blurd_config_free(&config);

    const char *missing = test_path("missing");
    init_config(&config);
    set_value(&config, "watch", "folder", missing);
    expect_finish_error(&config, "No such file or directory");
    expect_finish_error(&config, missing);
    blurd_config_free(&config);

    const char *file = write_config("plain-file", "x");
    init_config(&config);
    set_value(&config, "watch", "folder", file);
    expect_finish_error(&config, "not a directory");
    blurd_config_free(&config);

    const char *outer = make_folder("outer");
    const char *inner = make_folder("outer/inner");
    init_config(&config);
    set_value(&config, "watch", "folder", inner);
    set_value(&config, "watch", "folder", outer);
    expect_finish_error(&config, "inside watched folder");
    blurd_config_free(&config);

    /* The same folder twice, once through a path with `..` in it. */
    char twice[4200];
    snprintf(twice, sizeof twice, "%s/..", inner);
    init_config(&config);
    set_value(&config, "watch", "folder", outer);
    set_value(&config, "watch", "folder", twice);
    expect_finish_error(&config, "given twice");
    blurd_config_free(&config);

    init_config(&config);
    set_value(&config, "watch", "folder", outer);
    set_value(&config, "sort", "blurred", "Sorted");
    set_value(&config, "sort", "clear", "Sorted/");
    expect_finish_error(&config, "blurred and clear");
    blurd_config_free(&config);

    /* Siblings whose names share a prefix are not nested. */
    const char *a = make_folder("photos");
    const char *b = make_folder("photos2");
    init_config(&config);
    set_value(&config, "watch", "folder", a);
    set_value(&config, "watch", "folder", b);
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_finish(&config, err);
    if (code != 0)
        TEST_FAIL("blurd_config_finish: %s", err);
    blurd_config_free(&config);
    return 0;
}

TEST_IMPL(config_finish_resolves_folders_and_workers)
{
    const char *root = make_folder("root");
    ASSERT_INT_EQ(chdir(test_tmpdir()), 0);
    char link[4200];
    snprintf(link, sizeof link, "%s/link", test_tmpdir());
    ASSERT_INT_EQ(symlink(root, link), 0);

    struct blurd_config config;
    init_config(&config);
    set_value(&config, "watch", "folder", "./link/"); /* relative, through a symlink */
    char err[BLURD_ERR_LEN] = "";
    int code = blurd_config_finish(&config, err);
    if (code != 0)
        TEST_FAIL("blurd_config_finish: %s", err);
    char *expected = realpath(root, NULL);
    ASSERT(expected != NULL);
    ASSERT_STR_EQ(config.folders[0], expected);
    free(expected);
    ASSERT(config.workers >= 1);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ASSERT_INT_EQ(config.workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    /* blurred and clear stay as written: the daemon places them in each root. */
    ASSERT_STR_EQ(config.blurred_folder, "Blurred");
    ASSERT_STR_EQ(config.clear_folder, "Undistorted");
    blurd_config_free(&config);

    init_config(&config);
    set_value(&config, "watch", "folder", root);
    set_value(&config, "daemon", "workers", "3");
    code = blurd_config_finish(&config, err);
    if (code != 0)
        TEST_FAIL("blurd_config_finish: %s", err);
    ASSERT_INT_EQ(config.workers, 3);
    blurd_config_free(&config);
    return 0;
}
