/* log.h - levelled logging to stderr, with journald priority prefixes when run by systemd.
 *
 * Lines look like "blurd: warning: x.jpg: truncated" on a terminal, and carry the
 * sd-daemon "<4>" prefix instead when stderr is the journal (JOURNAL_STREAM set), so
 * journalctl shows the right priority.  Thread-safe: one line is one write(2).
 */
#ifndef BLURD_LOG_H
#define BLURD_LOG_H

enum blurd_log_level {
    BLURD_LOG_ERROR = 3, /* syslog priorities, as journald reads them */
    BLURD_LOG_WARNING = 4,
    BLURD_LOG_NOTICE = 5,
    BLURD_LOG_INFO = 6,
    BLURD_LOG_DEBUG = 7,
};

/* Messages above `level` are dropped.  The default is BLURD_LOG_NOTICE. */
void blurd_log_set_level(enum blurd_log_level level);
enum blurd_log_level blurd_log_get_level(void);

void blurd_log(enum blurd_log_level level, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

#define blurd_log_error(...)   blurd_log(BLURD_LOG_ERROR, __VA_ARGS__)
#define blurd_log_warning(...) blurd_log(BLURD_LOG_WARNING, __VA_ARGS__)
#define blurd_log_notice(...)  blurd_log(BLURD_LOG_NOTICE, __VA_ARGS__)
#define blurd_log_info(...)    blurd_log(BLURD_LOG_INFO, __VA_ARGS__)
#define blurd_log_debug(...)   blurd_log(BLURD_LOG_DEBUG, __VA_ARGS__)

#endif
