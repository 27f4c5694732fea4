/* error.c - messages and names for the codes listed once in error.h. */
#include "blurd/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *blurd_strerror(int code)
{
    switch (code) {
    case BLURD_OK:
        return "success";
#define BLURD_ERROR_MESSAGE(name, value, message) \
    case (value):                                 \
        return message;
        BLURD_ERRNO_MAP(BLURD_ERROR_MESSAGE)
#undef BLURD_ERROR_MESSAGE
    }
    return "unknown error";
}

const char *blurd_error_name(int code)
{
    switch (code) {
    case BLURD_OK:
        return "BLURD_OK";
#define BLURD_ERROR_NAME(name, value, message) \
    case (value):                              \
        return "BLURD_E" #name;
        BLURD_ERRNO_MAP(BLURD_ERROR_NAME)
#undef BLURD_ERROR_NAME
    }
    return "BLURD_EUNKNOWN";
}

int blurd_error_set(char *err, int code, const char *format, ...)
{
    if (err != NULL) {
        va_list args;
        va_start(args, format);
        vsnprintf(err, BLURD_ERR_LEN, format, args);
        va_end(args);
    }
    return code;
}

int blurd_error_from_errno(int errno_value)
{
    switch (errno_value) {
    case ENOENT:
    case ENOTDIR:
        return BLURD_ENOENT;
    case EACCES:
    case EPERM:
        return BLURD_EACCES;
    case ENOMEM:
        return BLURD_ENOMEM;
    case EISDIR:
        return BLURD_EISDIR;
    case EINVAL:
        return BLURD_EINVAL;
    default:
        return BLURD_EIO;
    }
}
