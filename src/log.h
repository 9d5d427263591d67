/* log.h - one line per event, key=value, to stderr or syslog */
#ifndef MX_LOG_H
#define MX_LOG_H

#include <stdarg.h>

void log_init(const char *progname, int use_syslog);
void log_set_debug(int on);
/* log_batch - from now on the calling thread's info and debug lines on
 * stderr are gathered and written together by log_flush; schedule is
 * called when a batch gets its first line (the daemon: an event at the end
 * of the loop's turn). A warning or worse is written at once, after what
 * is gathered; other threads write at once. NULL: flush, stop gathering. */
void log_batch(void (*schedule)(void));
void log_flush(void);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* fatal appends strerror(errno); fatalx does not. Both exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
