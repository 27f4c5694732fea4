/* daemon.h - the service face of blurd (`blurd daemon`): watches the configured folders,
 * judges every photo that arrives, records it in the database and, if configured, moves
 * it into its verdict's folder; a systemd notify service (READY, STATUS, STOPPING,
 * WATCHDOG), stopped by SIGTERM/SIGINT after finishing what is in flight, reloaded by
 * SIGHUP without losing queued files.
 */
#ifndef BLURD_DAEMON_H
#define BLURD_DAEMON_H

/* One command-line override of a configuration key (see config.h), applied after the
 * file in the order given. */
struct blurd_daemon_override {
    const char *section, *key, *value;
};

struct blurd_daemon_options {
    const char *config_path; /* NULL: no file, overrides only */
    const struct blurd_daemon_override *overrides;
    int override_count;
};

/* Builds and validates the configuration, loads the model, and opens the database, as a
 * start would, then returns: 0 if all is well, else BLURD_ECONFIG, BLURD_EMODEL, BLURD_EDB
 * ... with `err` saying what and where.  For `blurd daemon --check`. */
int blurd_daemon_check(const struct blurd_daemon_options *options, char *err);

/* Runs the daemon until SIGTERM or SIGINT.  Returns 0 after a clean stop, or a negative
 * code (with `err`) when it cannot start: bad configuration, model or database. */
int blurd_daemon_run(const struct blurd_daemon_options *options, char *err);

#endif
