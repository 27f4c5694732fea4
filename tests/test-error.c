/* test-error.c - the error list gives each code one message and one name. */
#include "blurd/error.h"
#include "test.h"

#include <errno.h>
#include <string.h>

TEST_IMPL(error_codes_and_messages)
{
    ASSERT_STR_EQ(blurd_strerror(BLURD_EMODEL), "invalid model file");
    ASSERT_STR_EQ(blurd_error_name(BLURD_ETOOBIG), "BLURD_ETOOBIG");
    ASSERT_STR_EQ(blurd_strerror(12345), "unknown error");
    ASSERT_INT_EQ(blurd_error_from_errno(ENOENT), BLURD_ENOENT);

    char err[BLURD_ERR_LEN];
    ASSERT_INT_EQ(blurd_error_set(err, BLURD_EIO, "%s: %s", "x.jpg", "short read"), BLURD_EIO);
    ASSERT_STR_EQ(err, "x.jpg: short read");
    ASSERT_INT_EQ(blurd_error_set(NULL, BLURD_EIO, "ignored"), BLURD_EIO);
    return 0;
}
