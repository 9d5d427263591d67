/* log.c - logging to stderr (journal) or syslog */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static int log_syslog;
static int log_debug_on;
static const char *log_prog = "mxrelayd";
#define LOG_PREFIX_MAX	64	/* "progname: " */
#define LOG_BATCH_MAX	(16 * 1024)	/* gathered lines: at most this much */

/* the loop thread's lines of one turn: a relayed message logs about seven
 * lines, and their write(2) calls were 5 % of the daemon's CPU at 10
 * clients (bench/README.md) */
static struct {
	pthread_mutex_t lock;		/* the gathering thread's, and that
					 * of another thread's fatal error */
	void (*schedule)(void);		/* NULL: not gathering */
	size_t len;
	char buf[LOG_BATCH_MAX];
} batch = { .lock = PTHREAD_MUTEX_INITIALIZER };
/* the gathering thread's own mark: other threads only flush the batch,
 * before their fatal error's line */
static __thread int log_gathering;

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

/* log_vwrite - emit one line; errnum >= 0 appends strerror. On stderr the
 * line is formatted whole and written with one write(2): no stdio on an
 * unbuffered stream (a noticeable entry of the end-to-end profile), and
 * lines from several threads never interleave. */
static void log_vwrite(int, int, const char *, va_list) __attribute__((format(printf, 3, 0)));

static void
log_write_all(const char *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, p + off, n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;		/* nowhere else to report it */
		off += (size_t)w;
	}
}

static void
log_flush_locked(void)
{
	log_write_all(batch.buf, batch.len);
	batch.len = 0;
}

void
log_flush(void)
{
	pthread_mutex_lock(&batch.lock);
	log_flush_locked();
	pthread_mutex_unlock(&batch.lock);
}

void
log_batch(void (*schedule)(void))
{
	if (batch.schedule != NULL)
		log_flush();
	batch.schedule = schedule;
	log_gathering = schedule != NULL;
}

/* log_gather - 1 when the line joins the batch; a line that is not
 * gathered first flushes the batch, to keep the thread's order. Another
 * thread's fatal error flushes it too: the loop's last lines are the
 * context of the error, and exit(3) would lose them. */
static int
log_gather(int pri, const char *p, size_t n)
{
	int gathered = 0;

	if (!log_gathering) {
		if (pri <= LOG_CRIT)
			log_flush();
		return 0;
	}
	pthread_mutex_lock(&batch.lock);
	if (pri < LOG_INFO || batch.len + n > sizeof(batch.buf))
		log_flush_locked();
	if (pri >= LOG_INFO && n <= sizeof(batch.buf)) {
		if (batch.len == 0)
			batch.schedule();
		memcpy(batch.buf + batch.len, p, n);
		batch.len += n;
		gathered = 1;
	}
	pthread_mutex_unlock(&batch.lock);
	return gathered;
}

static void
log_vwrite(int pri, int errnum, const char *fmt, va_list ap)
{
	char buf[2048 + LOG_PREFIX_MAX];
	size_t p, n, cap = sizeof(buf) - 1;	/* room for the newline */
	int k;

	k = snprintf(buf, LOG_PREFIX_MAX, "%s: ", log_prog);
	p = k < 0 ? 0 : (size_t)k >= LOG_PREFIX_MAX ? LOG_PREFIX_MAX - 1 : (size_t)k;
	k = vsnprintf(buf + p, cap - p, fmt, ap);
	if (k < 0)
		return;
	/* truncated lines are still logged */
	n = p + ((size_t)k < cap - p ? (size_t)k : cap - p - 1);
	if (errnum >= 0 && n < cap) {
		k = snprintf(buf + n, cap - n, ": %s", strerror(errnum));
		if (k > 0)
			n += (size_t)k < cap - n ? (size_t)k : cap - n - 1;
	}
	if (log_syslog) {
		syslog(pri, "%s", buf + p);
		return;
	}
	buf[n++] = '\n';
	if (!log_gather(pri, buf, n))
		log_write_all(buf, n);
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
