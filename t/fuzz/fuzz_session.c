/* fuzz_session - a whole inbound SMTP session (src/smtp_server.c, the real
 * state machine over a real loopback socket) driven by the fuzzer's bytes.
 *
 * Structure-aware: the input is a list of steps, each an operation byte
 * (which command template) and a length-prefixed argument, so that most
 * inputs get past EHLO, MAIL and RCPT into DATA. The store, the spool and
 * the filters are in-memory test doubles of our own interfaces (store.h,
 * spool.h, filter.h, verify.h, spf.h, milter.h: none configured; the
 * filter double makes the first RCPT to joe wait for a "lookup", so the
 * S_FILTER path is driven too); logging is a silent double of log.h.
 * After each
 * step the loop runs until idle and the replies are checked:
 *
 *   - every reply line is "DDD SP/- text CRLF", at most SMTP_LINE_MAX + 64;
 *   - a step that sent no LF gets no reply (none before a full line);
 *   - a "250 ... queued as ID" only for an ID the spool double committed
 *     (no 250 to DATA without a spool commit);
 *   - every committed recipient is a known address of the hosted domain
 *     (no relay to an unhosted domain);
 *   - a committed message is at most max_message_size plus our headers.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "config.h"
#include "filter.h"
#include "fuzz.h"
#include "fuzz_net.h"
#include "log.h"
#include "milter.h"
#include "smtp_parse.h"
#include "smtp_milter.h"
#include "smtp_server.h"
#include "spf.h"
#include "admission.h"
#include "spool.h"
#include "stats.h"
#include "store.h"
#include "verify.h"

#define FUZZ_DOMAIN	"hosted.test"
#define FUZZ_MAX_SIZE	4096		/* limits.max_message_size */
#define FUZZ_HEADERS_MAX 4096		/* our Received: and trace headers */
#define FUZZ_MAX_COMMITS 64
#define FUZZ_STEPS_MAX	64
#define FUZZ_REPLY_MAX	(1 << 20)


/* --- log.h double: format everything (ASan sees bad arguments), print
 * nothing (a session logs several lines per command) --------------------- */

static void log_sink(const char *, va_list) __attribute__((format(printf, 1, 0)));

static void
log_sink(const char *fmt, va_list ap)
{
	char buf[2048];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (getenv("FUZZ_SESSION_DEBUG"))
		fprintf(stderr, "log: %s\n", buf);
}

#define LOG_DOUBLE(name) \
	void name(const char *fmt, ...) { va_list ap; va_start(ap, fmt); log_sink(fmt, ap); va_end(ap); }
LOG_DOUBLE(log_info)
LOG_DOUBLE(log_warn)
LOG_DOUBLE(log_warnx)
LOG_DOUBLE(log_debug)

void
log_init(const char *progname, int use_syslog)
{
}

void
log_set_debug(int on)
{
}

void
fatal(const char *fmt, ...)
{
	abort();
}

void
fatalx(const char *fmt, ...)
{
	abort();
}

/* --- store.h double: one hosted domain, two addresses -------------------- */

static struct domain_info hosted = { .name = (char *)FUZZ_DOMAIN };
static struct addr_info known[] = {
	{ .address = (char *)"joe@" FUZZ_DOMAIN },
	{ .address = (char *)"mary@" FUZZ_DOMAIN, .nofilter = 1 },
};

const struct domain_info *
store_domain(const char *domain)
{
	return strcasecmp(domain, FUZZ_DOMAIN) == 0 ? &hosted : NULL;
}

const struct addr_info *
store_address(const char *addr, char delim)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(addr, known[i].address) == 0)
			return &known[i];
	return NULL;
}

/* --- verify.h double: the hosted domain does not verify at an old server -- */

enum verify_result
verify_rcpt(const char *canon, const struct domain_info *d, verify_fn fn,
    void *arg, struct verify_wait **w)
{
	FUZZ_ASSERT(canon != NULL && d != NULL);
	return VERIFY_NO;
}

void
verify_cancel(struct verify_wait *w)
{
	FUZZ_ASSERT(w == NULL);
}

/* --- milter.h, smtp_milter.h doubles: no milters configured -------------- */

struct milter_txn *
milter_txn_start(struct event_base *base, const struct config *cfg,
    const struct milter_info *in)
{
	return NULL;
}

int
milter_txn_write(struct milter_txn *t, const char *p, size_t n)
{
	abort();	/* never called without a transaction */
}

void
milter_txn_on_drain(struct milter_txn *t, milter_drain_fn fn, void *arg)
{
	abort();
}

void
milter_txn_end(struct milter_txn *t, milter_done_fn done, void *arg)
{
	abort();
}

void
milter_txn_abort(struct milter_txn *t)
{
	FUZZ_ASSERT(t == NULL);
}

enum smtp_milter_step
smtp_milter_apply(const struct smtp_milter_msg *m, struct milter_result *res,
    char *reply, size_t replylen)
{
	abort();
}

/* --- spf.h double --------------------------------------------------------- */

int
spf_init(struct event_base *base, const char *receiver)
{
	return 0;
}

void
spf_shutdown(void)
{
}

/* --- filter.h double: every recipient OK, joe after a wait (filter_rcpt) -- */

struct filter {
	struct event_base *base;
	struct event *ev;
	filter_wake_fn wake;
	void *arg;
	int waited;
};

/* "lookups" under way, and wake-ups so far: pump() runs the loop on while
 * one is under way and for a few turns after one fired */
static struct {
	int waiting;
	unsigned long woken;
} lookups;

static void
filter_fire(evutil_socket_t fd, short what, void *arg)
{
	struct filter *f = arg;

	lookups.waiting--;
	lookups.woken++;
	f->wake(f->arg);
}

/* filter_unwait - a "lookup" under way is dropped */
static void
filter_unwait(struct filter *f)
{
	if (evtimer_pending(f->ev, NULL)) {
		evtimer_del(f->ev);
		lookups.waiting--;
	}
}

struct filter *
filter_new(struct event_base *base, const struct config *cfg, const char *sid)
{
	struct filter *f = calloc(1, sizeof(*f));

	if (f == NULL)
		abort();
	f->base = base;
	f->ev = evtimer_new(base, filter_fire, f);
	return f;
}

void
filter_free(struct filter *f)
{
	if (f == NULL)
		return;
	filter_unwait(f);
	event_free(f->ev);
	free(f);
}

void filter_client(struct filter *f, const struct sockaddr *sa, const char *addr) { }
void filter_helo(struct filter *f, const char *helo) { FUZZ_ASSERT(helo != NULL); }
int filter_mail(struct filter *f, const char *sender) { FUZZ_ASSERT(sender != NULL); return 0; }

void
filter_reset(struct filter *f)
{
	filter_unwait(f);
	f->waited = 0;
}

enum filter_rc
filter_rcpt(struct filter *f, const char *rcpt, int nofilter, char *reply,
    size_t replylen, filter_wake_fn wake, void *arg)
{
	struct timeval now = { 0, 1000 };

	/* A RCPT to joe waits once for a "lookup" of 1 ms: the session parks
	 * in S_FILTER, input paused, and answers from the wake-up (the path
	 * of a slow DNSBL or SPF lookup). This used to be off: pump() counted
	 * the turns of the wait as idle and returned when the wake-up had
	 * written the 250 but the loop had not yet sent it, so the reply came
	 * with the next step's octets and broke "no reply before a full
	 * line". pump() now runs on while a lookup is under way; two TCP
	 * delays that showed the same way (Nagle on either side, waiting
	 * for a delayed ACK) are taken out too: see pump() and the client
	 * socket's TCP_NODELAY. None was the server's fault. */
	if (nofilter || strncasecmp(rcpt, "joe@", 4) != 0 || f->waited)
		return FILTER_OK;
	f->waited = 1;
	f->wake = wake;
	f->arg = arg;
	lookups.waiting++;
	evtimer_add(f->ev, &now);
	return FILTER_WAIT;
}

size_t
filter_headers(struct filter *f, char *buf, size_t len)
{
	return 0;
}

/* --- spool.h double: messages in memory, commits recorded ----------------- */

static struct event_base *fz_base;

struct spool_msg {
	char id[SPOOL_ID_LEN + 1];
	int nrcpts;
	int rcpt_ok;			/* every recipient a known hosted address */
	uint64_t size;
	struct event *drain_ev, *commit_ev;
	spool_commit_fn cb;
	void *cbarg;
	spool_drain_fn drain;
	void *drainarg;
	int detached;
};

static struct {
	char ids[FUZZ_MAX_COMMITS][SPOOL_ID_LEN + 1];
	int n;
	unsigned long next;
} commits;

static void spool_drain_fire(evutil_socket_t, short, void *);
static void spool_commit_fire(evutil_socket_t, short, void *);

void
spool_new_id(char id[SPOOL_ID_LEN + 1])
{
	snprintf(id, SPOOL_ID_LEN + 1, "%016lX", ++commits.next);
}

struct spool_msg *
spool_msg_open(const char *id, const struct spool_envelope *e)
{
	struct spool_msg *m = calloc(1, sizeof(*m));

	if (m == NULL)
		abort();
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->nrcpts = e->nrcpts;
	m->rcpt_ok = e->nrcpts > 0;
	for (int i = 0; i < e->nrcpts; i++)
		if (store_address(e->rcpts[i], '\0') == NULL)
			m->rcpt_ok = 0;
	FUZZ_ASSERT(e->sender != NULL && e->helo != NULL);
	m->drain_ev = evtimer_new(fz_base, spool_drain_fire, m);
	m->commit_ev = evtimer_new(fz_base, spool_commit_fire, m);
	return m;
}

static void
spool_msg_free(struct spool_msg *m)
{
	event_free(m->drain_ev);
	event_free(m->commit_ev);
	free(m);
}

static void
spool_drain_fire(evutil_socket_t fd, short what, void *arg)
{
	struct spool_msg *m = arg;
	spool_drain_fn fn = m->drain;

	m->drain = NULL;
	if (fn)
		fn(m->drainarg);
}

/* every 1024 octets the writer is "behind": the session must wait */
int
spool_msg_write(struct spool_msg *m, const char *p, size_t n)
{
	uint64_t before = m->size;

	FUZZ_ASSERT(m->cb == NULL && n > 0);
	m->size += n;
	return before / 1024 != m->size / 1024;
}

void
spool_msg_on_drain(struct spool_msg *m, spool_drain_fn fn, void *arg)
{
	struct timeval now = { 0, 0 };

	FUZZ_ASSERT(m->drain == NULL);
	m->drain = fn;
	m->drainarg = arg;
	evtimer_add(m->drain_ev, &now);
}

int
spool_msg_error(const struct spool_msg *m)
{
	return 0;
}

static void
spool_commit_fire(evutil_socket_t fd, short what, void *arg)
{
	struct spool_msg *m = arg;

	/* what the session promised before asking for the commit */
	FUZZ_ASSERT(m->rcpt_ok);
	FUZZ_ASSERT(m->size <= FUZZ_MAX_SIZE + FUZZ_HEADERS_MAX);
	if (commits.n < FUZZ_MAX_COMMITS)
		memcpy(commits.ids[commits.n++], m->id, sizeof(m->id));
	if (!m->detached)
		m->cb(m, 1, m->cbarg);
	spool_msg_free(m);
}

void
spool_msg_commit(struct spool_msg *m, spool_commit_fn cb, void *arg)
{
	struct timeval now = { 0, 0 };

	event_del(m->drain_ev);
	m->drain = NULL;
	m->cb = cb;
	m->cbarg = arg;
	evtimer_add(m->commit_ev, &now);
}

void
spool_msg_abort(struct spool_msg *m)
{
	spool_msg_free(m);
}

void
spool_msg_detach(struct spool_msg *m)
{
	m->detached = 1;
}

/* admission.h: the relay is never behind here (t/overload.t covers it) */
const char *
admission_session(void)
{
	return NULL;
}

const char *
admission_mail(const struct config *cfg, uint64_t declared)
{
	return NULL;
}

int64_t
spool_msgs_open(void)
{
	return 0;
}

int
spool_msg_nrcpts(const struct spool_msg *m)
{
	return m->nrcpts;
}

const char *
spool_msg_id(const struct spool_msg *m)
{
	return m->id;
}

/* --- the driver ----------------------------------------------------------- */

static struct smtp_server *srv;
static struct config *cfg;
static int port;

/* free_port - a loopback port the kernel says is free now */
static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
		abort();
	p = ntohs(sin.sin_port);
	close(fd);
	return p;
}

static void
fuzz_setup(void)
{
	char err[256];

	struct event_config *ec;

	/* as mxrelayd does: libevent with locking (worker threads) */
	if (evthread_use_pthreads() < 0)
		abort();
	ec = event_config_new();

	/* 0-second timers (the doubles' "later") fire on the next turn */
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	fz_base = event_base_new_with_config(ec);
	event_config_free(ec);
	/* as mxrelayd does: a client gone mid-reply is EPIPE, not a signal */
	signal(SIGPIPE, SIG_IGN);
	cfg = config_defaults();
	free(cfg->hostname);
	cfg->hostname = strdup("mx.fuzz.test");
	port = free_port();
	snprintf(cfg->listen[0].host, sizeof(cfg->listen[0].host), "127.0.0.1");
	cfg->listen[0].port = port;
	cfg->nlisten = 1;
	cfg->max_message_size = FUZZ_MAX_SIZE;
	cfg->max_recipients = 3;
	cfg->spf_enabled = 0;
	if (cidr_parse("127.0.0.0/8", &cfg->xclient_hosts[0]) < 0)
		abort();
	cfg->nxclient_hosts = 1;
	if ((srv = smtp_server_new(fz_base, cfg, NULL, err, sizeof(err))) == NULL) {
		fprintf(stderr, "fuzz_session: %s\n", err);
		abort();
	}
	smtp_server_start(srv);
}

struct replies {
	char *buf;
	size_t len, checked;
};

/* pump - run the loop until it has been idle for a few turns of
 * PUMP_TURN_US (timers of the doubles fire meanwhile), reading every
 * reply; returns -1 once the server closed the connection */
#define PUMP_TURN_US	300
static int
pump(int fd, struct replies *r)
{
	struct timeval turn = { 0, PUMP_TURN_US };
	unsigned long woken = lookups.woken;
	int idle = 0, closed = 0, one = 1;

	for (int round = 0; round < 200 && idle < 3; round++) {
		char tmp[8192];
		ssize_t n;

		/* ACK at once what the server sent: its replies written on
		 * different turns (a MAIL answered at once, a RCPT after a
		 * lookup) are otherwise held by its Nagle until our delayed
		 * ACK, up to 40 ms on loopback, longer than a pump waits.
		 * Quick-ACK mode does not last: set it every turn. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		event_base_loopexit(fz_base, &turn);
		event_base_loop(fz_base, 0);
		idle++;
		/* a wake-up's reply is sent on a later turn than its own */
		if (lookups.waiting > 0 || lookups.woken != woken) {
			woken = lookups.woken;
			idle = 0;
		}
		while ((n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
			FUZZ_ASSERT(r->len + (size_t)n <= FUZZ_REPLY_MAX);
			memcpy(r->buf + r->len, tmp, (size_t)n);
			r->len += (size_t)n;
			idle = 0;
		}
		if (n == 0)
			closed = 1;
	}
	return closed ? -1 : 0;
}

/* check_replies - every new complete reply line is well formed; a 250 to
 * the end of data names a message the spool committed */
static void
check_replies(struct replies *r)
{
	char *p, *nl;

	while ((nl = memchr(r->buf + r->checked, '\n', r->len - r->checked)) != NULL) {
		size_t n = (size_t)(nl - (r->buf + r->checked)) + 1;
		const char *q;

		p = r->buf + r->checked;
		FUZZ_ASSERT(n >= 6 && p[n - 2] == '\r');
		FUZZ_ASSERT(n <= SMTP_LINE_MAX + 64);
		FUZZ_ASSERT(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' &&
		    p[2] >= '0' && p[2] <= '9' && (p[3] == ' ' || p[3] == '-'));
		FUZZ_ASSERT(memchr(p, '\r', n - 2) == NULL);
		if (n > 26 && memcmp(p, "250 2.0.0 Ok: queued as ", 24) == 0) {
			int found = 0;

			q = p + 24;
			for (int i = 0; i < commits.n; i++)
				if (memcmp(commits.ids[i], q, SPOOL_ID_LEN) == 0)
					found = 1;
			FUZZ_ASSERT(found);
		}
		r->checked += n;
	}
}

/* step_bytes - the octets of one step: a command template around arg */
static size_t
step_bytes(int op, const uint8_t *arg, size_t alen, char *out)
{
	static const char *const pre[] = {
		"EHLO ", "HELO ", "MAIL FROM:<", "RCPT TO:<joe@" FUZZ_DOMAIN ">",
		"RCPT TO:<", "RCPT TO:<", "DATA", "", "", "RSET", "XCLIENT ",
		"NOOP", "STARTTLS", "", "MAIL FROM:<s@src.test> ",
		"RCPT TO:<mary@" FUZZ_DOMAIN ">",
	};
	static const char *const post[] = {
		"\r\n", "\r\n", ">\r\n", "\r\n", "@" FUZZ_DOMAIN ">\r\n", ">\r\n",
		"\r\n", "", "\r\n.\r\n", "\r\n", "\r\n", "\r\n", "\r\n", "",
		"\r\n", "\r\n",
	};
	static const int takes_arg[] = { 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0 };
	size_t n = 0;

	op %= 16;
	memcpy(out, pre[op], strlen(pre[op]));
	n += strlen(pre[op]);
	if (takes_arg[op]) {
		memcpy(out + n, arg, alen);
		n += alen;
	}
	memcpy(out + n, post[op], strlen(post[op]));
	return n + strlen(post[op]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[600];
	struct replies r = { NULL, 0, 0 };
	size_t i = 0;
	int fd, steps = 0, one = 1;

	if (srv == NULL)
		fuzz_setup();
	commits.n = 0;
	if ((r.buf = malloc(FUZZ_REPLY_MAX)) == NULL)
		abort();
	/* TCP_NODELAY: a step is sent when it is written. With Nagle a step
	 * that follows one the server did not answer (no LF yet) waits for
	 * the delayed ACK, up to 40 ms on loopback, longer than pump() waits:
	 * its reply then came with a later step's ("no reply before a full
	 * line" broken by the harness, not the server). */
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
	    fuzz_connect_loopback(fd, port) < 0) {
		fprintf(stderr, "fuzz_session: connect: %s\n", strerror(errno));
		abort();
	}
	pump(fd, &r);
	check_replies(&r);
	FUZZ_ASSERT(r.len >= 4 && memcmp(r.buf, "220 ", 4) == 0);

	while (i + 2 <= size && steps++ < FUZZ_STEPS_MAX) {
		int op = data[i];
		size_t alen = data[i + 1], n, before = r.len;

		i += 2;
		if (alen > size - i)
			alen = size - i;
		n = step_bytes(op, data + i, alen, out);
		i += alen;
		if (send(fd, out, n, MSG_NOSIGNAL) < 0)
			break;
		if (pump(fd, &r) < 0) {
			check_replies(&r);
			break;
		}
		if (getenv("FUZZ_SESSION_DEBUG"))	/* triage: what each step got */
			fprintf(stderr, "step %d sent %zu octets [%.*s], got [%.*s]\n",
			    steps, n, (int)n, out, (int)(r.len - before), r.buf + before);
		/* no reply before a full line (or the end of the data) */
		if (memchr(out, '\n', n) == NULL)
			FUZZ_ASSERT(r.len == before);
		check_replies(&r);
	}
	close(fd);
	/* the session notices the close and goes away */
	for (int round = 0; round < 1000 && smtp_server_nsessions(srv) > 0; round++)
		event_base_loop(fz_base, EVLOOP_NONBLOCK);
	FUZZ_ASSERT(smtp_server_nsessions(srv) == 0);
	free(r.buf);
	return 0;
}
