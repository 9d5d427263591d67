/* ioev.c - bufferevent and OpenSSL behind semantic I/O events
 *
 * A plaintext socket bufferevent is created first; STARTTLS stacks an
 * OpenSSL filter on top of it, so the session always talks to io->top.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "fault.h"
#include "ioev.h"
#include "log.h"
#include "util.h"

struct io {
	struct event_base *base;
	struct bufferevent *bev;	/* plaintext socket */
	struct bufferevent *top;	/* bev, or the TLS filter over it */
	SSL *ssl;
	io_callback cb;
	void *arg;
	int timeout;
	int write_timed_out;		/* the last timeout was a write's */
	int want_lowat;
	int paused;			/* io_pause: no IO_DATAIN */
	int read_off;			/* reading really disabled */
	int write_on;			/* EV_WRITE enabled on the socket */
	int corked;			/* io_cork depth */
	struct evbuffer *held;		/* replies written while corked */
	char err[128];
};

static void io_readcb(struct bufferevent *, void *);
static void io_writecb(struct bufferevent *, void *);
static void io_eventcb(struct bufferevent *, short, void *);

const char *
io_event_name(enum io_event ev)
{
	static const char *names[] = { "datain", "lowat", "tlsready",
	    "timeout", "disconnected", "error" };
	return (size_t)ev < MX_ARRAY_LEN(names) ? names[ev] : "?";
}

/* io_setup_top - callbacks, watermark and timeout on the current top.
 * On a plaintext socket, writing is enabled only once a reply has to wait
 * (io_write_on): replies mostly go straight out (io_send), and an enabled
 * write event on an empty output costs two epoll_ctl(2) calls and a loop
 * turn per connection. */
static void
io_setup_top(struct io *io)
{
	bufferevent_setcb(io->top, io_readcb, io_writecb, io_eventcb, io);
	bufferevent_setwatermark(io->top, EV_READ, 0, IO_READ_HIWAT);
	io_set_timeout(io, io->timeout);
	bufferevent_enable(io->top, io->top == io->bev ? EV_READ : EV_READ | EV_WRITE);
}

/* io_write_on - the bufferevent sends what is queued from now on */
static void
io_write_on(struct io *io)
{
	if (!io->write_on) {
		io->write_on = 1;
		bufferevent_enable(io->bev, EV_WRITE);
	}
}

struct io *
io_new(struct event_base *base, int fd, io_callback cb, void *arg)
{
	struct io *io = mx_try_calloc(1, sizeof(*io));

	if (io == NULL)
		return NULL;
	io->base = base;
	io->cb = cb;
	io->arg = arg;
	io->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (io->bev == NULL) {
		free(io);
		return NULL;
	}
	io->top = io->bev;
	io_setup_top(io);
	return io;
}

/* io_destroy - free the bufferevents; the TLS filter owns the socket
 * bufferevent (BEV_OPT_CLOSE_ON_FREE), which owns the socket. */
static void
io_destroy(struct io *io)
{
	bufferevent_free(io->top);
	if (io->held)
		evbuffer_free(io->held);
	free(io);
}

static void
io_linger_writecb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		io_destroy(arg);
}

static void
io_linger_eventcb(struct bufferevent *bev, short what, void *arg)
{
	io_destroy(arg);
}

/* io_free - close the connection. The session is done with io, but octets
 * may still wait in the socket bufferevent (with TLS: the encrypted form of
 * the last reply, e.g. 221): send them first, for at most IO_LINGER_SECS. */
void
io_free(struct io *io)
{
	struct timeval tv = { IO_LINGER_SECS, 0 };

	if (io == NULL)
		return;
	if (io->held && evbuffer_get_length(io->held) > 0)
		bufferevent_write_buffer(io->top, io->held);
	if (evbuffer_get_length(bufferevent_get_output(io->bev)) == 0) {
		io_destroy(io);
		return;
	}
	if (io->top != io->bev) {
		/* The session is gone: no more events from the TLS layer. */
		bufferevent_setcb(io->top, NULL, NULL, NULL, NULL);
		bufferevent_disable(io->top, EV_READ | EV_WRITE);
	}
	bufferevent_setcb(io->bev, NULL, io_linger_writecb, io_linger_eventcb, io);
	bufferevent_set_timeouts(io->bev, NULL, &tv);
	bufferevent_disable(io->bev, EV_READ);
	bufferevent_enable(io->bev, EV_WRITE);
}

struct evbuffer *
io_input(struct io *io)
{
	return bufferevent_get_input(io->top);
}

/* io_send - octets go straight to the socket when nothing is queued before
 * them (plaintext); only what the socket does not take is buffered.
 * Through the bufferevent alone every reply cost two epoll_ctl(2) calls
 * (write event on, then off again) and a loop turn before its send: 22
 * epoll_ctl per relayed message, the most frequent system call of the
 * daemon (bench/README.md). */
static int
io_send(struct io *io, const void *p, size_t n)
{
	if (io->top == io->bev &&
	    evbuffer_get_length(bufferevent_get_output(io->bev)) == 0) {
		ssize_t w = send(bufferevent_getfd(io->bev), p, n,
		    MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w == (ssize_t)n)
			return 0;
		/* a short write or an error: the bufferevent takes the rest
		 * (and meets the error again, and reports it, in its turn) */
		if (w > 0) {
			p = (const char *)p + w;
			n -= (size_t)w;
		}
	}
	io_write_on(io);
	return bufferevent_write(io->top, p, n);
}

/* io_flush_held - what was written while corked goes out, in one send */
static void
io_flush_held(struct io *io)
{
	if (io->top == io->bev &&
	    evbuffer_get_length(bufferevent_get_output(io->bev)) == 0)
		evbuffer_write(io->held, bufferevent_getfd(io->bev));
	if (evbuffer_get_length(io->held) > 0) {
		io_write_on(io);
		if (bufferevent_write_buffer(io->top, io->held) < 0)
			log_warnx("io: reply lost: out of memory");
	}
	if (io->want_lowat && io_queued(io) == 0)
		bufferevent_trigger(io->top, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

int
io_write(struct io *io, const void *p, size_t n)
{
	if (FAULT_HIT("session_alloc"))
		return -1;
	if (io->corked) {
		if (io->held == NULL && (io->held = evbuffer_new()) == NULL)
			return -1;
		return evbuffer_add(io->held, p, n);
	}
	return io_send(io, p, n);
}

void
io_cork(struct io *io)
{
	io->corked++;
}

void
io_uncork(struct io *io)
{
	if (--io->corked == 0 && io->held && evbuffer_get_length(io->held) > 0)
		io_flush_held(io);
}

void
io_abort(struct io *io, const char *last)
{
	struct evbuffer *out = bufferevent_get_output(io->bev);
	evutil_socket_t fd = bufferevent_getfd(io->bev);
	size_t n = strlen(last);

	if (io->top != io->bev) {
		/* the TLS filter encrypts into io->bev's output as it is written,
		 * which takes memory: try, but never wait for it */
		bufferevent_setcb(io->top, NULL, NULL, NULL, NULL);
		if (bufferevent_write(io->top, last, n) == 0)
			bufferevent_flush(io->top, EV_WRITE, BEV_FLUSH);
		last = NULL;
	}
	/* the bufferevent keeps the front of its output frozen for itself;
	 * it will not write any more */
	evbuffer_unfreeze(out, 1);
	if (io->held && last != NULL)
		evbuffer_add_buffer(out, io->held);
	while (evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
		;
	/* Best effort: a socket that takes no more just loses the text. */
	if (last != NULL && evbuffer_get_length(out) == 0 &&
	    send(fd, last, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("io abort send: %s", strerror(errno));
	io_destroy(io);
}

size_t
io_queued(struct io *io)
{
	return evbuffer_get_length(bufferevent_get_output(io->top)) +
	    (io->held ? evbuffer_get_length(io->held) : 0);
}

void
io_set_timeout(struct io *io, int secs)
{
	struct timeval tv = { secs, 0 };

	io->timeout = secs;
	/* The read timeout counts the peer's silence; the write timeout
	 * covers a peer that stops reading our replies, and belongs on the
	 * socket, whose write timer runs only while octets wait for it. A TLS
	 * filter has no socket: libevent runs its write timer whenever
	 * writing is enabled, so an idle TLS session would time out "writing"
	 * and libevent would stop writing our 421 (issue 17). The socket's
	 * timeout reaches us through the filter's event callback. */
	if (io->top == io->bev) {
		bufferevent_set_timeouts(io->bev, secs ? &tv : NULL, secs ? &tv : NULL);
		return;
	}
	bufferevent_set_timeouts(io->top, secs ? &tv : NULL, NULL);
	bufferevent_set_timeouts(io->bev, NULL, secs ? &tv : NULL);
}

int
io_write_timed_out(const struct io *io)
{
	return io->write_timed_out;
}

/* io_pause - lazily: reading is disabled only when input arrives while
 * paused (io_readcb), or a read timeout or close would be reported. A
 * session pauses for every message's commit and its client mostly sends
 * nothing until the 250: disabling and enabling at once cost two
 * epoll_ctl(2) calls per message. */
void
io_pause(struct io *io)
{
	io->paused = 1;
}

void
io_resume(struct io *io)
{
	int was_paused = io->paused;

	io->paused = 0;
	if (io->read_off) {
		io->read_off = 0;
		bufferevent_enable(io->top, EV_READ);
	} else if (was_paused)
		io_set_timeout(io, io->timeout);	/* the peer's time starts now */
}

/* io_read_off - paused and something to report: stop reading for real,
 * io_resume turns it on again (a close or a timeout is then seen anew) */
static void
io_read_off(struct io *io)
{
	io->read_off = 1;
	bufferevent_disable(io->top, EV_READ);
}

void
io_want_lowat(struct io *io, int on)
{
	io->want_lowat = on;
	/* Never reported from inside this call: when the output is empty
	 * already (io_write sent it straight), from the loop's next turn. */
	if (on && io_queued(io) == 0)
		bufferevent_trigger(io->top, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

int
io_start_tls(struct io *io, SSL_CTX *ctx)
{
	struct bufferevent *f;
	struct evbuffer *in;

	if (io->ssl)
		return -1;
	/* our 220 goes out in plaintext, before the handshake */
	if (io->held && evbuffer_get_length(io->held) > 0)
		io_flush_held(io);
	/* the filter writes the handshake into the socket's output */
	io_write_on(io);
	/* Drop what the client pipelined behind STARTTLS (RFC 3207 4.2). */
	in = bufferevent_get_input(io->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	io->ssl = SSL_new(ctx);
	if (io->ssl == NULL)
		return -1;
	f = bufferevent_openssl_filter_new(io->base, io->bev, io->ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(io->ssl);
		io->ssl = NULL;
		return -1;
	}
	/* The filter frees the SSL object with itself. */
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	/* The filter installed its own callbacks on io->bev. */
	io->top = f;
	io_setup_top(io);
	return 0;
}

int
io_is_tls(struct io *io)
{
	return io->ssl != NULL && io->top != io->bev;
}

const char *
io_tls_version(struct io *io)
{
	return io->ssl ? SSL_get_version(io->ssl) : NULL;
}

const char *
io_tls_cipher(struct io *io)
{
	return io->ssl ? SSL_get_cipher_name(io->ssl) : NULL;
}

int
io_tls_bits(struct io *io)
{
	return io->ssl ? SSL_get_cipher_bits(io->ssl, NULL) : 0;
}

const char *
io_error_string(struct io *io)
{
	return io->err[0] ? io->err : "unknown";
}

/* io_read_bulk - on a plaintext socket, after a full read, take what else
 * the socket holds in one readv(2), up to IO_READ_HIWAT. libevent 2.1 reads
 * at most 4096 octets per readable event: a 100 KB message took 25 loop
 * turns of epoll_wait, FIONREAD and readv (bench/README.md). Short inputs
 * (commands) are left alone, so they cost no extra system call, and so is
 * a remainder under IO_READ_BULK_MIN. The space is what FIONREAD says is
 * there, not the high-water mark: with thousands of sessions in DATA at
 * once, bench/overload.sh saw a peak RSS of 740 MB reading to the mark,
 * 480 MB reading every remainder, 300-340 MB as libevent alone. An EOF or
 * an error is left in the socket, for the bufferevent's own next read to
 * find and report. */
static void
io_read_bulk(struct io *io)
{
	struct evbuffer *in = bufferevent_get_input(io->bev);
	size_t have = evbuffer_get_length(in), want;
	struct evbuffer_iovec v[2];
	int nv, avail = 0;
	ssize_t r;

	if (io->top != io->bev || have < IO_READ_BULK_MIN || have >= IO_READ_HIWAT ||
	    ioctl(bufferevent_getfd(io->bev), FIONREAD, &avail) < 0 ||
	    avail < IO_READ_BULK_MIN)
		return;
	want = IO_READ_HIWAT - have;
	if ((size_t)avail < want)
		want = (size_t)avail;
	/* the bufferevent freezes its input's end so that it alone adds to
	 * it; it thaws it for its own reads the same way */
	evbuffer_unfreeze(in, 0);
	nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
	if (nv >= 1) {	/* else out of memory: the bufferevent reads on */
		/* the space given may be larger than asked for */
		for (int i = 0; i < nv; i++) {
			v[i].iov_len = v[i].iov_len < want ? v[i].iov_len : want;
			want -= v[i].iov_len;
		}
		r = readv(bufferevent_getfd(io->bev), (struct iovec *)v, nv);
		for (int i = 0; i < nv; i++) {
			size_t k = r <= 0 ? 0 : (size_t)r < v[i].iov_len ?
			    (size_t)r : v[i].iov_len;

			v[i].iov_len = k;
			r -= (ssize_t)k;
		}
		evbuffer_commit_space(in, v, nv);
	}
	evbuffer_freeze(in, 0);
}

static void
io_readcb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	if (io->paused) {
		io_read_off(io);
		return;
	}
	io_read_bulk(io);
	io->cb(io, IO_DATAIN, io->arg);
}

static void
io_writecb(struct bufferevent *bev, void *arg)
{
	struct io *io = arg;

	if (io->want_lowat && io_queued(io) == 0) {
		io->want_lowat = 0;
		io->cb(io, IO_LOWAT, io->arg);
	}
}

/* io_eventcb - map bufferevent events; the callee may free io */
static void
io_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct io *io = arg;
	unsigned long e;

	if (what & BEV_EVENT_CONNECTED) {
		io->cb(io, IO_TLSREADY, io->arg);
		return;
	}
	/* a paused session hears of its peer's silence or close once it
	 * resumes: an EOF is read again then, a read timer starts afresh */
	if (io->paused && (what & BEV_EVENT_READING)) {
		io_read_off(io);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		io->write_timed_out = (what & BEV_EVENT_WRITING) != 0;
		io->cb(io, IO_TIMEOUT, io->arg);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		mx_strlcpy(io->err, "eof", sizeof(io->err));
		io->cb(io, IO_DISCONNECTED, io->arg);
		return;
	}
	if (io->ssl && (e = bufferevent_get_openssl_error(bev)) != 0)
		ERR_error_string_n(e, io->err, sizeof(io->err));
	else
		snprintf(io->err, sizeof(io->err), "%s", strerror(errno));
	io->cb(io, IO_ERROR, io->arg);
}
