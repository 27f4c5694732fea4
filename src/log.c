/* log.c - one formatted line per call, written to stderr in a single write(2). */
#include "blurd/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic int current_level = BLURD_LOG_NOTICE;

void blurd_log_set_level(enum blurd_log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum blurd_log_level blurd_log_get_level(void)
{
    return (enum blurd_log_level)atomic_load(&current_level);
}

static const char *level_word(enum blurd_log_level level)
{
    switch (level) {
    case BLURD_LOG_ERROR:
        return "error";
    case BLURD_LOG_WARNING:
        return "warning";
    case BLURD_LOG_NOTICE:
        return "notice";
    case BLURD_LOG_INFO:
        return "info";
    case BLURD_LOG_DEBUG:
        return "debug";
    }
    return "log";
}

void blurd_log(enum blurd_log_level level, const char *format, ...)
{
    if ((int)level > atomic_load(&current_level))
        return;

    char line[2048];
    size_t used;
    /* journald sets JOURNAL_STREAM for services whose stderr it reads; it then
     * parses a leading "<N>" as the priority. */
    if (getenv("JOURNAL_STREAM") != NULL)
        used = (size_t)snprintf(line, sizeof line, "<%d>", (int)level);
    else
        used = (size_t)snprintf(line, sizeof line, "blurd: %s: ", level_word(level));

    va_list args;
    va_start(args, format);
    int n = vsnprintf(line + used, sizeof line - used, format, args);
    va_end(args);
    if (n < 0)
        return;
    used += (size_t)n;
    if (used > sizeof line - 2)
        used = sizeof line - 2;
    line[used++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, used);
    (void)ignored;
}
