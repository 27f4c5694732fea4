/* test-cli.c - end-to-end runs of the real blurd binary on real image files made by the
 * tests (with the vips command-line tool), a real model file and a real SQLite database. */
#include "blurd/error.h"
#include "blurd/model.h"
#include "test.h"

#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Runs `vips ARGS` to make a test image; fails the test if vips fails. */
static void vips(const char *args)
{
    char command[2048];
    snprintf(command, sizeof command, "vips %s", args);
    char *err;
    if (test_run(command, NULL, &err) != 0)
        TEST_FAIL("%s: %s", command, err);
    free(err);
}

/* A folder "photos" with three good images of different formats and sizes. */
static char *make_photos(void)
{
    char *dir = test_path("photos");
    ASSERT(mkdir(dir, 0755) == 0);
    char args[1024];
    snprintf(args, sizeof args, "gaussnoise %s/a.jpg 900 600 --mean 128 --sigma 40", dir);
    vips(args);
    snprintf(args, sizeof args, "gaussnoise %s/b.png 320 240 --mean 100 --sigma 20", dir);
    vips(args);
    snprintf(args, sizeof args, "gaussblur %s/a.jpg %s/c.webp 4", dir, dir);
    vips(args);
    return dir;
}

/* Removes the last comma-separated field of every line, in place. */
static void drop_last_csv_field(char *text)
{
    char *out = text, *line = text;
    while (*line) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t keep = len;
        while (keep > 0 && line[keep - 1] != ',')
            keep--;
        memmove(out, line, keep);
        out += keep;
        *out++ = '\n';
        line += len + (end ? 1 : 0);
    }
    *out = '\0';
}

TEST_IMPL(cli_help_version_and_usage_errors)
{
    int status;
    char *err, *out;
    status = test_blurd("--version", &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "blurd ");
    status = test_blurd("--help", &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "classify");
    status = test_blurd("classify --help", &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "--files-from");
    status = test_blurd("model info --help", &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "--arch default");

    status = test_blurd("frobnicate", &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "unknown command 'frobnicate'");
    status = test_blurd("classify", &out, &err);
    ASSERT_INT_EQ(status, 2);
    status = test_blurd("classify --format xml x.jpg", &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "--format must be");
    status = test_blurd("classify --threshold 1.5 x.jpg", &out, &err);
    ASSERT_INT_EQ(status, 2);
    status = test_blurd("classify --jobs 0 x.jpg", &out, &err);
    ASSERT_INT_EQ(status, 2);
    status = test_blurd("classify --max-megapixels 0 x.jpg", &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "above 0 and at most 10000");
    status = test_blurd("model info --arch", &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "--arch needs an architecture");
    status = test_blurd("model info --bogus", &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "unrecognized option '--bogus'");
    return 0;
}

/* --max-megapixels is counted exactly: 650x400 is 0.26 megapixels (which a float holds as
 * 0.2599999...), allowed at that limit and refused, naming it, just under it. */
TEST_IMPL(cli_classify_pixel_limit_is_exact)
{
    char *model = test_small_model("m.safetensors", 7);
    char *photo = test_path("wide.jpg");
    char args[2048], *err, *out;
    snprintf(args, sizeof args, "gaussnoise '%s' 650 400 --mean 128 --sigma 40", photo);
    vips(args);
    snprintf(args, sizeof args, "classify -m '%s' --max-megapixels 0.26 '%s'", model, photo);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 0);
    snprintf(args, sizeof args, "classify -m '%s' --max-megapixels 0.259999 '%s'", model, photo);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 1);
    ASSERT_CONTAINS(err, "wide.jpg: 650x400 is 260000 pixels, over the limit of 259999");
    return 0;
}

/* Results that could not be written (here to /dev/full, as on a full disk) are reported,
 * and the run does not exit as if they had been. */
TEST_IMPL(cli_results_that_cannot_be_written_fail_the_run)
{
    char *model = test_small_model("m.safetensors", 7);
    char *photos = make_photos();
    char args[2048], *err, *out;
    snprintf(args, sizeof args, "classify -m '%s' -f json '%s' >/dev/full", model, photos);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 2);
    ASSERT_CONTAINS(err, "cannot write the results to standard output");
    ASSERT_INT_EQ(test_blurd("model info --arch default >/dev/full", &out, &err), 2);
    ASSERT_CONTAINS(err, "cannot write the results to standard output");
    /* The same runs to a writable stdout succeed. */
    snprintf(args, sizeof args, "classify -m '%s' -f json '%s'", model, photos);
    ASSERT_INT_EQ(test_blurd(args, &out, &err), 0);
    return 0;
}

TEST_IMPL(cli_model_info_default_architecture)
{
    int status;
    char *err, *out;
    status = test_blurd("model info --arch default", &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "parameters: 6,789,168");
    ASSERT_CONTAINS(out, "10x10x256");
    ASSERT_CONTAINS(out, "1x1x25600");

    char *model = test_small_model("small.safetensors", 7);
    char args[1024];
    snprintf(args, sizeof args, "model info '%s'", model);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "sha256:");
    ASSERT_CONTAINS(out, "blurd.input");
    return 0;
}

TEST_IMPL(cli_classify_without_model_says_so)
{
    char *photos = make_photos();
    int status;
    char args[1024];
    snprintf(args, sizeof args, "classify '%s'", photos);
    char *err, *out;
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "models/default.safetensors");
    ASSERT_CONTAINS(err, "--model");
    ASSERT_INT_EQ(strlen(out), 0);
    return 0;
}

TEST_IMPL(cli_classify_formats_and_order)
{
    char *model = test_small_model("m.safetensors", 7);
    char *photos = make_photos();
    int status;
    char args[2048], *err, *out;

    /* table: a header, then one line per image, in name order */
    snprintf(args, sizeof args, "classify -m '%s' -j 2 '%s'", model, photos);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_INT_EQ(test_count_lines(out), 4);
    ASSERT(strstr(out, "a.jpg") < strstr(out, "b.png"));
    ASSERT(strstr(out, "b.png") < strstr(out, "c.webp"));
    ASSERT_CONTAINS(out, "900    600");
    ASSERT_CONTAINS(err, "3 judged");

    /* csv */
    snprintf(args, sizeof args, "classify -m '%s' --format csv -i resize '%s'", model, photos);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(out, "path,verdict,p_blurred,p_clear,width,height,milliseconds\n");
    ASSERT_INT_EQ(test_count_lines(out), 4);

    /* json: a valid array of 3 records whose probabilities add up to 1 */
    snprintf(args, sizeof args, "classify -m '%s' --format json '%s'", model, photos);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    json_error_t json_err;
    json_t *records = json_loads(out, 0, &json_err);
    ASSERT(records != NULL);
    ASSERT_INT_EQ(json_array_size(records), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(records, i);
        double p = json_real_value(json_object_get(r, "p_blurred"));
        double q = json_real_value(json_object_get(r, "p_clear"));
        ASSERT_NEAR(p + q, 1.0, 1e-5);
        const char *verdict = json_string_value(json_object_get(r, "verdict"));
        ASSERT_STR_EQ(verdict, p >= 0.5 ? "blurred" : "clear");
    }
    json_decref(records);

    /* the same verdicts whatever the number of jobs */
    snprintf(args, sizeof args, "classify -m '%s' -f csv -j 1 '%s'", model, photos);
    char *one_job;
    status = test_blurd(args, &one_job, &err);
    ASSERT_INT_EQ(status, 0);
    snprintf(args, sizeof args, "classify -m '%s' -f csv -j 3 '%s'", model, photos);
    char *three_jobs;
    status = test_blurd(args, &three_jobs, &err);
    ASSERT_INT_EQ(status, 0);
    /* milliseconds differ from run to run; compare everything before them */
    drop_last_csv_field(one_job);
    drop_last_csv_field(three_jobs);
    ASSERT_STR_EQ(one_job, three_jobs);
    return 0;
}

TEST_IMPL(cli_classify_bad_files_are_reported_and_skipped)
{
    char *model = test_small_model("m.safetensors", 7);
    char *photos = make_photos();
    char path[2048];
    snprintf(path, sizeof path, "%s/empty.jpg", photos);
    test_write_file(path, "", 0);
    snprintf(path, sizeof path, "%s/text.jpg", photos);
    test_write_file(path, "not a picture\n", 14);
    snprintf(path, sizeof path, "%s/notes.txt", photos);
    test_write_file(path, "ignored by extension\n", 21);
    snprintf(path, sizeof path, "%s/folder.jpg", photos);
    ASSERT(mkdir(path, 0755) == 0);
    /* a truncated JPEG: the first half of a real one */
    snprintf(path, sizeof path, "%s/a.jpg", photos);
    size_t n;
    char *jpeg = test_read_file(path, &n);
    snprintf(path, sizeof path, "%s/truncated.jpg", photos);
    test_write_file(path, jpeg, n / 2);

    /* links inside the folder that lead nowhere: a photo's is said, the other's not */
    snprintf(path, sizeof path, "%s/moved-away.jpg", photos);
    ASSERT_INT_EQ(symlink("gone.jpg", path), 0);
    snprintf(path, sizeof path, "%s/old-notes.txt", photos);
    ASSERT_INT_EQ(symlink("gone.txt", path), 0);

    int status;
    char args[2048], *err, *out;
    snprintf(args, sizeof args, "classify -m '%s' '%s' '%s/missing.jpg'", model, photos, photos);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 1);
    ASSERT_INT_EQ(test_count_lines(out), 4); /* header + the three good images */
    ASSERT_CONTAINS(err, "empty.jpg");
    ASSERT_CONTAINS(err, "text.jpg");
    ASSERT_CONTAINS(err, "truncated.jpg");
    ASSERT_CONTAINS(err, "missing.jpg");
    ASSERT_CONTAINS(err, "moved-away.jpg: cannot read: No such file or directory; skipped");
    ASSERT(strstr(err, "notes.txt") == NULL);
    ASSERT_CONTAINS(err, "3 judged (");
    ASSERT_CONTAINS(err, "4 failed, 3 skipped");
    return 0;
}

TEST_IMPL(cli_classify_corrupt_model_is_refused)
{
    char *model = test_small_model("m.safetensors", 7);
    size_t n;
    char *bytes = test_read_file(model, &n);
    char *cut = test_path("cut.safetensors");
    test_write_file(cut, bytes, n - 100);
    char *photos = make_photos();
    int status;
    char args[2048], *err;
    snprintf(args, sizeof args, "classify -m '%s' '%s'", cut, photos);
    char *out;
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 2);
    ASSERT_CONTAINS(err, "cut.safetensors");
    ASSERT_INT_EQ(test_count_lines(err), 1);
    ASSERT_INT_EQ(strlen(out), 0);
    return 0;
}

TEST_IMPL(cli_classify_files_from_stdin_and_database)
{
    char *model = test_small_model("m.safetensors", 7);
    char *photos = make_photos();
    char *db = test_path("results.db");
    int status;
    char *err, *out;
    char command[4096];
    snprintf(command, sizeof command,
             "cd '%s' && printf '%%s\\n' '%s/b.png' photos/a.jpg photos/nope.png | '%s' classify "
             "-m '%s' --files-from - --db '%s' -f csv",
             test_tmpdir(), photos, test_blurd_binary(), model, db);
    status = test_run(command, &out, &err);
    ASSERT_INT_EQ(status, 1); /* nope.png does not exist */
    ASSERT(strstr(out, "b.png") < strstr(out, "a.jpg"));
    ASSERT_CONTAINS(err, "nope.png");

    snprintf(command, sizeof command,
             "sqlite3 '%s' \"select count(*), sum(verdict is null), sum(error is not null), "
             "sum(model_hash is not null) from images; pragma journal_mode;\"",
             db);
    status = test_run(command, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_STR_EQ(out, "3|1|1|3\nwal\n");

    snprintf(command, sizeof command,
             "sqlite3 '%s' \"select width, height, format, input_mode from images "
             "where path like '%%/a.jpg'\"",
             db);
    status = test_run(command, &out, &err);
    ASSERT_STR_EQ(out, "900|600|jpeg|tiles\n");

    /* Paths named relative to the working folder are recorded absolute, the failed one
     * (which realpath cannot resolve) too. */
    char *folder = realpath(test_tmpdir(), NULL);
    ASSERT(folder != NULL);
    snprintf(command, sizeof command,
             "sqlite3 '%s' \"select path from images where error is not null; "
             "select count(*) from images where path like '/%%'\"",
             db);
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    char expected[2048];
    snprintf(expected, sizeof expected, "%s/photos/nope.png\n3\n", folder);
    ASSERT_STR_EQ(out, expected);
    free(folder);
    return 0;
}

TEST_IMPL(cli_classify_sample_data)
{
    /* The shipped samples decode and are judged, every one (the verdicts of an untrained
     * model mean nothing; that they all come out does). */
    char *model = test_small_model("m.safetensors", 7);
    int status;
    char args[2048], *err, *out;
    snprintf(args, sizeof args, "classify -m '%s' -r -f csv '%s/data/samples'", model,
             test_source_dir());
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT(test_count_lines(out) >= 9);
    ASSERT_CONTAINS(out, "/Blurred/");
    ASSERT_CONTAINS(out, "/Undistorted/");
    ASSERT_CONTAINS(err, " 0 failed");
    return 0;
}

TEST_IMPL(cli_classify_progress_line_only_when_asked)
{
    char *model = test_small_model("m.safetensors", 7);
    char *photos = make_photos();
    int status;
    char args[2048], *err, *out;
    snprintf(args, sizeof args, "classify -m '%s' --progress '%s'", model, photos);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT_CONTAINS(err, "/3 [");
    ASSERT_CONTAINS(err, "images/s  ETA");
    ASSERT(strstr(out, "ETA") == NULL); /* never mixed into the results */
    /* stderr is a file here, not a terminal: no progress by default */
    snprintf(args, sizeof args, "classify -m '%s' '%s'", model, photos);
    status = test_blurd(args, &out, &err);
    ASSERT_INT_EQ(status, 0);
    ASSERT(strstr(err, "ETA") == NULL);
    return 0;
}
