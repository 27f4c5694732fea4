/* test-recipe.c - the model recipe's photo fetcher never touches the photos reserved for
 * independent evaluation (it refuses a list naming them before downloading anything),
 * fetching them only for independent-eval, and leaves out the photos listed as soft at full
 * size; side-by-side makes the pictures they were judged on; its hard-cases report scores a
 * synth set with both methods; and make-set reuses a labelled set only when it was made the
 * same way. */
#include "test.h"

#include <string.h>
#include <unistd.h>

TEST_IMPL(recipe_refuses_reserved_packages)
{
    static const char *const reserved_rows[] = {
        "ukui-wallpapers\t1.0\tusr/share/backgrounds/x.jpg\t00\t1\t1\tnature\tsharp\tGPL",
        "lomiri-wallpapers\t1.0\tusr/share/wallpapers/x.jpg\t00\t1\t1\tnature\tsharp\tGPL",
        "opencv-doc\t4.6\tusr/share/doc/opencv-doc/x.jpg\t00\t1\t1\tobject\tsharp\tBSD",
        "plasma-workspace-wallpapers\t4:5.27.5-2\tusr/share/wallpapers/Autumn/contents/"
        "images/1920x1080.jpg\t00\t1\t1\tnature\tsharp\tGPL",
    };
    for (size_t i = 0; i < sizeof reserved_rows / sizeof reserved_rows[0]; i++) {
        char *tsv = test_path("sources.tsv"), text[1024], command[4096];
        snprintf(text, sizeof text, "package\tversion\tpath\n%s\n", reserved_rows[i]);
        test_write_file(tsv, text, strlen(text));
        snprintf(command, sizeof command,
                 "python3 '%s/recipe/fetch-photos' '%s' '%s/out' --cache '%s/cache'",
                 test_source_dir(), tsv, test_tmpdir(), test_tmpdir());
        char *err;
        ASSERT(test_run(command, NULL, &err) != 0);
        ASSERT_CONTAINS(err, "reserved for independent evaluation");
    }
    /* the shipped list itself holds none of them */
    char command[4096], *out;
    snprintf(command, sizeof command,
             "cut -f1,3 '%s/recipe/photo-sources.tsv' | grep -cE '^(ukui-wallpapers|lomiri-|"
             "opencv-doc)|^plasma-workspace-wallpapers.usr/share/wallpapers/[A-Fa-f]'",
             test_source_dir());
    test_run(command, &out, NULL);
    ASSERT_STR_EQ(out, "0\n");
    return 0;
}

/* How many photos (by sha256) two of recipe/'s lists share. */
static int photos_in_both(const char *a, const char *b)
{
    char command[4096], *out;
    snprintf(command, sizeof command,
             "cut -f4 '%s/recipe/%s' '%s/recipe/%s' | grep -E '^[0-9a-f]{64}$' | sort | "
             "uniq -d | wc -l",
             test_source_dir(), a, test_source_dir(), b);
    ASSERT_INT_EQ(test_run(command, &out, NULL), 0);
    int shared = atoi(out);
    free(out);
    return shared;
}

/* The list for independent evaluation is the mirror image of the training list: fetched
 * only with --independent, which takes nothing else; no photo is in both lists. */
TEST_IMPL(recipe_independent_photos_are_reserved_ones_only)
{
    char *tsv = test_path("sources.tsv"), command[4096], *err;
    const char *allowed = "package\tversion\tpath\tsha256\n"
                          "mate-backgrounds\t1.26.0-1\tusr/share/backgrounds/mate/nature/"
                          "Aqua.jpg\t00\t1\t1\tmacro\tsharp\tGPL-2+\n";
    test_write_file(tsv, allowed, strlen(allowed));
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' --independent '%s' '%s/out' --cache '%s/cache'",
             test_source_dir(), tsv, test_tmpdir(), test_tmpdir());
    ASSERT(test_run(command, NULL, &err) != 0);
    ASSERT_CONTAINS(err, "is not from a package reserved for independent evaluation");

    /* without --independent the shipped list is refused before anything is fetched */
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s/recipe/independent-photos.tsv' '%s/out2' "
             "--cache '%s/cache'",
             test_source_dir(), test_source_dir(), test_tmpdir(), test_tmpdir());
    ASSERT(test_run(command, NULL, &err) != 0);
    ASSERT_CONTAINS(err, "reserved for independent evaluation and must not be used for training");

    /* with it every row passes the check (none fetched: --packages names none of them) */
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' --independent '%s/recipe/independent-photos.tsv' "
             "'%s/out3' --cache '%s/cache' --packages none-such",
             test_source_dir(), test_source_dir(), test_tmpdir(), test_tmpdir());
    ASSERT_INT_EQ(test_run(command, NULL, &err), 0);
    ASSERT_CONTAINS(err, "fetch-photos: 0 photos in");
    ASSERT_CONTAINS(err, "21 rows skipped");

    /* no photo in both lists */
    ASSERT_INT_EQ(photos_in_both("independent-photos.tsv", "photo-sources.tsv"), 0);
    return 0;
}

/* fetch-photos on a list of two scribus rows, the first br2/moon.jpg with sha256 "aa", the
 * second as given: it must refuse the list (before fetching anything); its stderr. */
static char *fetch_two_rows(const char *second_path, const char *second_sha256)
{
    char *tsv = test_path("two-rows.tsv"), list[1024], command[4096], *err;
    snprintf(list, sizeof list,
             "package\tversion\tpath\tsha256\n"
             "scribus-template\t1\tusr/share/scribus/templates/br2/moon.jpg\taa\t1\t1\tastro\t"
             "sharp\tGPL\n"
             "scribus-template\t1\t%s\t%s\t1\t1\tastro\tsharp\tGPL\n",
             second_path, second_sha256);
    test_write_file(tsv, list, strlen(list));
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s' '%s/out-two-rows' --cache '%s/cache' "
             "--packages none-such",
             test_source_dir(), tsv, test_tmpdir(), test_tmpdir());
    ASSERT(test_run(command, NULL, &err) != 0);
    return err;
}

/* The second list, and the further one with it, pass the same checks as the first (nothing
 * reserved; no photo, and no stored name, twice across the lists) without anything being
 * fetched; a list that repeats a stored name is refused. */
TEST_IMPL(recipe_more_photos_are_allowed_and_new)
{
    char command[4096], *err;
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s/recipe/photo-sources.tsv' '%s/out' "
             "--more '%s/recipe/more-photos.tsv' --cache '%s/cache' --packages none-such",
             test_source_dir(), test_source_dir(), test_tmpdir(), test_source_dir(), test_tmpdir());
    ASSERT_INT_EQ(test_run(command, NULL, &err), 0);
    ASSERT_CONTAINS(err, "fetch-photos: 0 photos in");
    ASSERT_CONTAINS(err, "244 rows skipped");

    /* none of them is one of the independent photos either */
    ASSERT_INT_EQ(photos_in_both("independent-photos.tsv", "more-photos.tsv"), 0);

    /* further-photos.tsv's rows, taken with more-photos.tsv's as its header says, pass too */
    snprintf(command, sizeof command,
             "cd '%s/recipe' && (cat more-photos.tsv; tail -n +3 further-photos.tsv) > "
             "'%s/all-more.tsv' && python3 fetch-photos photo-sources.tsv '%s/out-all' "
             "--more '%s/all-more.tsv' --cache '%s/cache' --packages none-such",
             test_source_dir(), test_tmpdir(), test_tmpdir(), test_tmpdir(), test_tmpdir());
    ASSERT_INT_EQ(test_run(command, NULL, &err), 0);
    ASSERT_CONTAINS(err, "347 rows skipped");
    ASSERT_INT_EQ(photos_in_both("independent-photos.tsv", "further-photos.tsv"), 0);

    /* two rows stored under one name: refused, naming the second */
    char *err_twice = fetch_two_rows("usr/share/scribus/templates/cal2/moon.jpg", "bb");
    ASSERT_CONTAINS(err_twice, "cal2/moon.jpg: its stored name scribus-template--moon.jpg is "
                               "taken already by scribus-template "
                               "usr/share/scribus/templates/br2/moon.jpg");

    /* one photo in two rows: refused, naming both */
    char *err_same = fetch_two_rows("usr/share/scribus/templates/br2/sun.jpg", "aa");
    ASSERT_CONTAINS(err_same, "br2/sun.jpg: the same photo (sha256 aa) as scribus-template "
                              "usr/share/scribus/templates/br2/moon.jpg");
    return 0;
}

/* A photo the soft list names is left out before its package is fetched (the row names a
 * package that does not exist, so a download would fail, as it does with no list); every
 * photo the shipped list names is one of photo-sources.tsv's. */
TEST_IMPL(recipe_leaves_out_soft_photos)
{
    char *tsv = test_path("sources.tsv"), *soft = test_path("soft.tsv"), command[4096], *out, *err;
    static const char sources[] = "package\tversion\tpath\nno-such-package\t1.0\tusr/share/x.jpg\t"
                                  "ab12\t1\t1\tnature\tsharp\tGPL\n";
    static const char list[] = "# soft\npackage\tpath\tsha256\tverdict\tseen\n"
                               "no-such-package\tusr/share/x.jpg\tab12\tsoft\tsmeared\n";
    test_write_file(tsv, sources, strlen(sources));
    test_write_file(soft, list, strlen(list));
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s' '%s/out' --cache '%s/cache' --soft '%s'",
             test_source_dir(), tsv, test_tmpdir(), test_tmpdir(), soft);
    ASSERT_INT_EQ(test_run(command, NULL, &err), 0);
    ASSERT_CONTAINS(err, "fetch-photos: 0 photos in");
    ASSERT_CONTAINS(err, "1 soft photos left out");
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s' '%s/out' --cache '%s/cache' --soft ''",
             test_source_dir(), tsv, test_tmpdir(), test_tmpdir());
    ASSERT(test_run(command, NULL, &err) != 0);
    ASSERT_CONTAINS(err, "downloading no-such-package");
    /* a photo already there with the listed sha256 needs no download: "abc\n" is the
     * photo below, of a package that does not exist */
    static const char fetched[] =
        "package\tversion\tpath\nno-such-package\t1.0\tusr/share/p.jpg\t"
        "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb\t1\t1\tnature\t"
        "sharp\tGPL\n";
    test_write_file(tsv, fetched, strlen(fetched));
    char *there = test_path("out/no-such-package--p.jpg");
    test_write_file(there, "abc\n", 4);
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s' '%s/out' --cache '%s/cache'", test_source_dir(),
             tsv, test_tmpdir(), test_tmpdir());
    ASSERT_INT_EQ(test_run(command, NULL, &err), 0);
    ASSERT_CONTAINS(err, "fetch-photos: 1 photos in");
    char *listing = test_read_file(test_path("out/SOURCES.tsv"), NULL);
    ASSERT_CONTAINS(listing, "no-such-package--p.jpg\tno-such-package\t1.0");
    free(listing);
    /* a list that cannot be read is named, not a traceback */
    snprintf(command, sizeof command,
             "python3 '%s/recipe/fetch-photos' '%s' '%s/out' --cache '%s/cache' --soft '%s/none'",
             test_source_dir(), tsv, test_tmpdir(), test_tmpdir(), test_tmpdir());
    ASSERT(test_run(command, NULL, &err) != 0);
    ASSERT_CONTAINS(err, "none: No such file or directory");

    snprintf(command, sizeof command,
             "cd '%s/recipe' && grep -v '^#' soft-photos.tsv | tail -n +2 | cut -f1-3 | sort -u > "
             "'%s/listed' && cut -f1,3,4 photo-sources.tsv | sort -u | comm -23 '%s/listed' - | "
             "wc -l && wc -l < '%s/listed'",
             test_source_dir(), test_tmpdir(), test_tmpdir(), test_tmpdir());
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    ASSERT(strncmp(out, "0\n", 2) == 0); /* none unknown */
    ASSERT(atoi(out + 2) > 0);           /* and the list is not empty */
    return 0;
}

/* side-by-side writes, for each photo, its most detailed crop beside the crop blurred (two
 * squares of the same side with a 12-pixel gap) and an index naming the photo of each
 * picture: a flat grey photo with one noisy patch shows the patch, crisp on the left and
 * smoothed on the right. */
TEST_IMPL(recipe_side_by_side_pictures)
{
    char command[8192], *out, *err;
    char *photos = test_path("photos");
    snprintf(command, sizeof command,
             "mkdir '%s' && cd '%s' && vips black flat.v 1200 900 && vips linear flat.v grey.v 1 "
             "120 && vips gaussnoise patch.v 600 600 --mean 120 --sigma 50 && "
             "vips insert grey.v patch.v wide.png 550 250 && "
             "vips gaussnoise small.png 300 200 --mean 100 --sigma 30 && rm flat.v grey.v patch.v "
             "&& python3 '%s/recipe/side-by-side' '%s' '%s/pairs'",
             photos, photos, test_source_dir(), photos, test_tmpdir());
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    ASSERT_CONTAINS(err, "2 pictures");
    char *index = test_read_file(test_path("pairs/index.tsv"), NULL);
    ASSERT(strncmp(index, "picture\tphoto\n", 14) == 0);
    char *wide = strstr(index, "\twide.png"), *small = strstr(index, "\tsmall.png");
    ASSERT(wide != NULL && small != NULL);
    char wide_picture[8], small_picture[8];
    snprintf(wide_picture, sizeof wide_picture, "%.7s", wide - 7);
    snprintf(small_picture, sizeof small_picture, "%.7s", small - 7);

    /* the small photo shows its 200x200 middle twice, the wide one 384x384 */
    snprintf(command, sizeof command,
             "cd '%s/pairs' && vipsheader -f width %s && vipsheader -f height %s && "
             "vipsheader -f width %s && vipsheader -f height %s",
             test_tmpdir(), small_picture, small_picture, wide_picture, wide_picture);
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    ASSERT_STR_EQ(out, "412\n200\n780\n384\n");
    /* the wide photo's crop is all patch (spread about 50) and its blurred copy smoother */
    snprintf(command, sizeof command,
             "cd '%s/pairs' && vips crop %s left.v 0 0 384 384 && vips deviate left.v && "
             "vips crop %s right.v 396 0 384 384 && vips deviate right.v",
             test_tmpdir(), wide_picture, wide_picture);
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    double left = strtod(out, NULL), right = strtod(strchr(out, '\n') + 1, NULL);
    ASSERT(left > 40.0);
    ASSERT(right < 0.5 * left);
    free(index);
    return 0;
}

/* hard-cases judges every image of a synth set with both methods and reports each subset,
 * counting the set's images. */
TEST_IMPL(recipe_hard_cases_reports_both_methods)
{
    char command[8192], *out, *err;
    snprintf(command, sizeof command,
             "'%s' synth '%s/data/samples/Undistorted' '%s/set' --count 6 --seed 3 -q",
             test_blurd_binary(), test_source_dir(), test_tmpdir());
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    char *model = test_small_model("m.safetensors", 5);
    snprintf(command, sizeof command,
             "BLURD='%s' python3 '%s/recipe/hard-cases' '%s/set' '%s' --input resize",
             test_blurd_binary(), test_source_dir(), test_tmpdir(), model);
    ASSERT_INT_EQ(test_run(command, &out, &err), 0);
    ASSERT_CONTAINS(out, "all images                                 12");
    ASSERT_CONTAINS(out, "low-texture scenes, sharp");
    ASSERT_CONTAINS(out, "balanced accuracy: model ");
    ASSERT_CONTAINS(out, "blur at least sigma 1.5 px (");
    /* the interval over the photos holds the figure measured on all of them */
    double point, low, high;
    const char *figure = strstr(out, "balanced accuracy: model ");
    const char *interval = strstr(out, "over the 6 source photos: 95% interval ");
    ASSERT(figure != NULL && interval != NULL);
    ASSERT_INT_EQ(sscanf(figure, "balanced accuracy: model %lf%%", &point), 1);
    ASSERT_INT_EQ(
        sscanf(interval, "over the 6 source photos: 95%% interval %lf%% to %lf%%", &low, &high), 2);
    ASSERT(low <= point && point <= high && high <= 100.0);
    return 0;
}

/* How make-set stamps the set make_set(3, 5) makes: SETS in recipe/make-set. */
#define SET_3_5 "recipe set version 2, count 3, seed 5"

/* Runs recipe/make-set on the sample photos into TMP/set; returns its exit status. */
static int make_set(int count, int seed, char **err)
{
    char command[4096];
    snprintf(command, sizeof command,
             "BLURD='%s' '%s/recipe/make-set' '%s/set' '%s/data/samples/Undistorted' %d %d",
             test_blurd_binary(), test_source_dir(), test_tmpdir(), test_source_dir(), count, seed);
    return test_run(command, NULL, err);
}

/* make-set makes a set and stamps how; it reuses that set untouched when asked for the same,
 * refuses one made with another count or seed, without labels.csv or its kept and softness
 * columns,
 * checks and stamps a set an older recipe left unstamped, and makes a half-made set again. */
TEST_IMPL(recipe_make_set_reuses_only_the_same_set)
{
    char *err, *done = test_path("set.done"), *marker = test_path("set/marker");
    ASSERT_INT_EQ(make_set(3, 5, &err), 0);
    char *text = test_read_file(done, NULL);
    ASSERT_STR_EQ(text, SET_3_5 "\n");
    free(text);
    char *labels = test_read_file(test_path("set/labels.csv"), NULL);
    ASSERT(strncmp(labels, "file,label,", 11) == 0 && strstr(labels, ",softness") != NULL);
    ASSERT_INT_EQ(test_count_lines(labels), 1 + 2 * 3);

    /* the same set again: reused as it is (a file put beside it stays) */
    test_write_file(marker, "x", 1);
    ASSERT_INT_EQ(make_set(3, 5, &err), 0);
    ASSERT_CONTAINS(err, "reusing");
    ASSERT(access(marker, F_OK) == 0);

    /* another count or seed: refused, naming how the set was made, and left alone */
    ASSERT_INT_EQ(make_set(4, 5, &err), 2);
    ASSERT_CONTAINS(err, "made as '" SET_3_5 "'");
    ASSERT_CONTAINS(err, "TRAIN_COUNT or HOLDOUT_COUNT");
    ASSERT_INT_EQ(make_set(3, 6, &err), 2);
    ASSERT_CONTAINS(err, "count 3, seed 6): it was made as '" SET_3_5 "'");
    ASSERT(strstr(err, "TRAIN_COUNT") == NULL);
    ASSERT(access(marker, F_OK) == 0);

    /* unstamped (an older recipe): checked by its number of images, then stamped */
    test_write_file(done, "", 0);
    ASSERT_INT_EQ(make_set(4, 5, &err), 2);
    ASSERT_CONTAINS(err, "it holds 6 images, not 2 x 4");
    text = test_read_file(done, NULL);
    ASSERT_STR_EQ(text, "");
    free(text);
    ASSERT_INT_EQ(make_set(3, 5, &err), 0);
    text = test_read_file(done, NULL);
    ASSERT_STR_EQ(text, SET_3_5 "\n");
    free(text);

    /* labels.csv without the kept and softness columns, or gone */
    char command[4096];
    snprintf(command, sizeof command, "cd '%s/set' && sed -i '1s/,softness//' labels.csv",
             test_tmpdir());
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    ASSERT_INT_EQ(make_set(3, 5, &err), 2);
    ASSERT_CONTAINS(err, "no kept and softness columns");
    snprintf(command, sizeof command, "rm '%s/set/labels.csv'", test_tmpdir());
    ASSERT_INT_EQ(test_run(command, NULL, NULL), 0);
    ASSERT_INT_EQ(make_set(3, 5, &err), 2);
    ASSERT_CONTAINS(err, "no labels.csv");

    /* half made (no .done): made again from scratch */
    ASSERT_INT_EQ(unlink(done), 0);
    ASSERT_INT_EQ(make_set(3, 5, &err), 0);
    ASSERT(access(marker, F_OK) != 0);
    free(labels);
    labels = test_read_file(test_path("set/labels.csv"), NULL);
    ASSERT(strstr(labels, ",softness") != NULL);
    free(labels);
    text = test_read_file(done, NULL);
    ASSERT_STR_EQ(text, SET_3_5 "\n");
    free(text);
    /* a count that is not a number is a usage error */
    ASSERT_INT_EQ(make_set(-1, 5, &err), 2);
    ASSERT_CONTAINS(err, "usage: make-set");
    return 0;
}
