/* test-recipe.c - the model recipe's photo fetcher never touches the photos reserved for
 * independent evaluation (it refuses a list naming them before downloading anything), and
 * its hard-cases report scores a synth set with both methods. */
#include "test.h"

#include <string.h>

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
    return 0;
}
