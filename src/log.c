/* log.c - logging to stderr (journal) or syslog */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <pthread.h>

#include "log.h"

static int log_syslog;
static int log_debug_on;
static const char *log_prog = "mxrelayd";
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* log_init - choose the sink; stderr lines carry no timestamp (journald adds one) */
void
log_init(const char *progname, int use_syslog)
{
	log_prog = progname;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog(progname, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(int on)
{
	log_debug_on = on;
}

/* log_vwrite - emit one line; errnum >= 0 appends strerror */
static void log_vwrite(int, int, const char *, va_list) __attribute__((format(printf, 3, 0)));

static void
log_vwrite(int pri, int errnum, const char *fmt, va_list ap)
{
	char buf[2048];
	int n;

	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;	/* truncated lines are still logged */
	if (errnum >= 0)
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", strerror(errnum));
	if (log_syslog) {
		syslog(pri, "%s", buf);
		return;
	}
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s: %s\n", log_prog, buf);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}

#define LOG_BODY(pri, errnum) do {		\
	va_list ap;				\
	va_start(ap, fmt);			\
	log_vwrite((pri), (errnum), fmt, ap);	\
	va_end(ap);				\
} while (0)

void log_info(const char *fmt, ...)  { LOG_BODY(LOG_INFO, -1); }
void log_warnx(const char *fmt, ...) { LOG_BODY(LOG_WARNING, -1); }

void
log_warn(const char *fmt, ...)
{
	int e = errno;
	LOG_BODY(LOG_WARNING, e);
}

void
log_debug(const char *fmt, ...)
{
	if (!log_debug_on)
		return;
	LOG_BODY(LOG_DEBUG, -1);
}

void
fatal(const char *fmt, ...)
{
	int e = errno;
	LOG_BODY(LOG_CRIT, e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_CRIT, -1);
	exit(1);
}
