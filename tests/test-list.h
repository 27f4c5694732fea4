/* test-list.h - the one registry of blurd's tests, in the order the runner runs them.
 * Add a test by defining TEST_IMPL(name) in tests/test-MODULE.c and listing it here. */
#define BLURD_TEST_LIST(X)                                                              \
    /* error */                                                                         \
    X(error_codes_and_messages)                                                         \
    /* kernels */                                                                       \
    /* net */                                                                           \
    /* model */                                                                         \
    /* image */                                                                         \
    /* store */                                                                         \
    /* pipeline */                                                                      \
    /* cli (end to end, the real binary) */

