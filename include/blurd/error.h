/* error.h - blurd's error codes and the caller-owned message buffer they travel with.
 *
 * Every fallible call returns 0 on success or one of the negative BLURD_E* codes
 * below, and, when given a non-NULL `err` buffer of BLURD_ERR_LEN bytes, writes one
 * line naming the file and the reason.  Codes and their generic messages come from
 * the single list BLURD_ERRNO_MAP, so they cannot drift apart.
 */
#ifndef BLURD_ERROR_H
#define BLURD_ERROR_H

#include <stddef.h>

/* Size of every error message buffer passed to a blurd_* function. */
#define BLURD_ERR_LEN 512

/* X(name, value, generic message) */
#define BLURD_ERRNO_MAP(X)                          \
    X(NOMEM, -1, "out of memory")                   \
    X(IO, -2, "input/output error")                 \
    X(INVAL, -3, "invalid argument")                \
    X(NOENT, -4, "no such file or directory")       \
    X(ACCES, -5, "permission denied")               \
    X(MODEL, -6, "invalid model file")              \
    X(SPEC, -7, "invalid layer specification")      \
    X(NOTIMAGE, -8, "not an image")                 \
    X(DECODE, -9, "cannot decode image")            \
    X(TOOBIG, -10, "image exceeds the pixel limit") \
    X(TOOSMALL, -11, "image is too small to judge") \
    X(DB, -12, "database error")                    \
    X(CONFIG, -13, "invalid configuration")         \
    X(ISDIR, -14, "is a directory")                 \
    X(CANCELED, -15, "operation canceled")          \
    X(BUSY, -16, "queue is full")

enum blurd_error_code {
    BLURD_OK = 0,
#define BLURD_ERROR_ENUM(name, value, message) BLURD_E##name = (value),
    BLURD_ERRNO_MAP(BLURD_ERROR_ENUM)
#undef BLURD_ERROR_ENUM
};

/* The generic message for `code`; never NULL ("unknown error" for codes not in the list). */
const char *blurd_strerror(int code);

/* The symbolic name ("BLURD_EMODEL") for `code`; never NULL. */
const char *blurd_error_name(int code);

/* Writes a printf-style message into `err` (BLURD_ERR_LEN bytes, may be NULL) and
 * returns `code`, so that a failing path reads `return blurd_error_set(err, code, ...)`. */
int blurd_error_set(char *err, int code, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Maps an errno value to the closest blurd code (ENOENT -> BLURD_ENOENT, ...). */
int blurd_error_from_errno(int errno_value);

#endif
