/* fuzz_metrics_http - the fuzzer's bytes as a raw HTTP request to the
 * /metrics endpoint: the real evhttp server with our settings and request
 * handler (src/metrics_http.c), on a loopback listener in this process.
 * metrics_render is a double (a fixed exposition: the rendering reads the
 * daemon's state, not the request).
 *
 * The bytes are sent as they are; the loop runs until the server closed
 * the connection or has been idle for a few turns, then the client closes
 * and the server is left to notice. Checked on what comes back:
 *
 *   - every response starts "HTTP/M.N NNN " with NNN one that
 *     metrics_http.h documents (200, 400, 404, 413, 417, 501, 503, 505);
 *     our handler's (200, 404, 505) in HTTP/1.0 or HTTP/1.1 (evhttp's own
 *     refusals echo the request's version: HTTP/0.1, HTTP/1.10 too);
 *   - a 200 only to a request that names METRICS_PATH, and with our
 *     Content-Type;
 *   - never more than a bounded number of octets back.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "fuzz.h"
#include "fuzz_net.h"
#include "metrics.h"
#include "metrics_http.h"

#define FUZZ_RESPONSE_MAX	(1 << 20)
#define FUZZ_EXPOSITION		"# TYPE mxrelay_fuzz gauge\nmxrelay_fuzz 1\n"
/* loopback is synchronous: what one side writes is readable by the other
 * on the next turn of the loop, so turns need not wait */
#define PUMP_IDLE_TURNS		8
#define PUMP_TURNS_MAX		400

static struct event_base *base;
static struct evhttp *http;
static int port;

/* --- metrics.h double ---------------------------------------------------- */

void
metrics_render(struct evbuffer *out)
{
	evbuffer_add(out, FUZZ_EXPOSITION, strlen(FUZZ_EXPOSITION));
}

/* --- the harness ---------------------------------------------------------- */

static void
fuzz_setup(void)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	signal(SIGPIPE, SIG_IGN);
	if ((base = event_base_new()) == NULL || (http = evhttp_new(base)) == NULL)
		abort();
	metrics_http_setup(http);
	if ((bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0)) == NULL ||
	    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&sin,
	    &len) < 0)
		abort();
	port = ntohs(sin.sin_port);
}

struct response {
	char *buf;
	size_t len;
	int closed;
};

/* pump - run the loop a turn at a time, sending what is left of the
 * request and reading what comes back, until the server closed the
 * connection or nothing moved for PUMP_IDLE_TURNS turns */
static void
pump(int fd, const uint8_t *req, size_t reqlen, struct response *r)
{
	size_t sent = 0;
	int idle = 0;

	for (int round = 0; round < PUMP_TURNS_MAX && idle < PUMP_IDLE_TURNS &&
	    !r->closed; round++) {
		char tmp[8192];
		ssize_t n;

		idle++;
		if (sent < reqlen &&
		    (n = send(fd, req + sent, reqlen - sent, MSG_NOSIGNAL | MSG_DONTWAIT)) > 0) {
			sent += (size_t)n;
			idle = 0;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		while ((n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
			FUZZ_ASSERT(r->len + (size_t)n <= FUZZ_RESPONSE_MAX);
			memcpy(r->buf + r->len, tmp, (size_t)n);
			r->len += (size_t)n;
			idle = 0;
		}
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			r->closed = 1;
	}
}

/* status_ok - a status metrics_http.h documents */
static int
status_ok(int status)
{
	static const int documented[] = { 200, 400, 404, 413, 417, 501, 503, 505 };

	for (size_t i = 0; i < sizeof(documented) / sizeof(documented[0]); i++)
		if (status == documented[i])
			return 1;
	return 0;
}

/* check_response - every status line in r (at its start or after a
 * line end: none of our bodies holds one) is documented; a 200 answers a
 * request naming METRICS_PATH and carries our Content-Type */
static void
check_response(const uint8_t *req, size_t reqlen, const struct response *r)
{
	static const char proto[] = "HTTP/";
	size_t plen = strlen(proto);

	const char *end = r->buf + r->len;

	for (size_t i = 0; i + plen + 8 <= r->len; i++) {
		const char *p = r->buf + i, *q;
		int status;

		if ((i > 0 && p[-1] != '\n') || memcmp(p, proto, plen) != 0)
			continue;
		/* "HTTP/M.N NNN ": evhttp prints the request's M and N as
		 * numbers ("HTTP/1.10", "HTTP/-1.1": it refuses only M > 1) */
		q = p + plen;
		q += strspn(q, "-0123456789");
		FUZZ_ASSERT(q > p + plen && q < end && *q++ == '.');
		q += strspn(q, "-0123456789");
		FUZZ_ASSERT(q + 4 < end && q[0] == ' ' && q[4] == ' ');
		status = atoi(q + 1);
		FUZZ_ASSERT(status_ok(status));
		if (status == 200 || status == 404 || status == 505)
			FUZZ_ASSERT(memcmp(p, "HTTP/1.0 ", 9) == 0 ||
			    memcmp(p, "HTTP/1.1 ", 9) == 0);
		if (status == 200) {
			FUZZ_ASSERT(memmem(req, reqlen, METRICS_PATH, strlen(METRICS_PATH)) != NULL);
			FUZZ_ASSERT(memmem(p, r->len - i, "Content-Type: " METRICS_CONTENT_TYPE,
			    strlen("Content-Type: " METRICS_CONTENT_TYPE)) != NULL);
		}
	}
	/* anything sent back starts with a status line */
	if (r->len > 0)
		FUZZ_ASSERT(r->len >= plen && memcmp(r->buf, proto, plen) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct response r = { NULL, 0, 0 };
	int fd;

	if (http == NULL)
		fuzz_setup();
	if ((r.buf = malloc(FUZZ_RESPONSE_MAX)) == NULL)
		abort();
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    fuzz_connect_loopback(fd, port) < 0) {
		fprintf(stderr, "fuzz_metrics_http: connect: %s\n", strerror(errno));
		abort();
	}
	pump(fd, data, size, &r);
	if (getenv("FUZZ_METRICS_DEBUG"))	/* triage: what came back */
		fprintf(stderr, "sent %zu octets, got %zu%s:\n%.*s\n", size, r.len,
		    r.closed ? " and close" : "", (int)r.len, r.buf);
	check_response(data, size, &r);
	/* Reset rather than FIN: a closed connection would sit in TIME_WAIT
	 * on our side for a minute, and at thousands of inputs a second the
	 * ephemeral ports ran out (CI: connect failed after 150,000 runs). */
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 },
	    sizeof(struct linger));
	close(fd);
	/* the server notices the close and frees the connection */
	for (int round = 0; round < PUMP_IDLE_TURNS; round++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	free(r.buf);
	return 0;
}
