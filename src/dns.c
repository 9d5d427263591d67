/* dns.c - asynchronous DNS on the event loop: evdns for addresses, a small
 * UDP client for the other types, and a bridge for worker threads
 *
 * libevent's evdns only asks A, AAAA and PTR. MX and TXT questions are
 * built here (RFC 1035 4.1, with an EDNS0 OPT record, RFC 6891) and sent
 * over UDP from a fresh socket per query (a random source port, and the
 * kernel drops answers from other addresses since the socket is
 * connected); answers are parsed with libresolv's pure ns_* functions.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "dns.h"
#include "dns_parse.h"
#include "log.h"
#include "util.h"

#define DNS_MAX_SERVERS		CONFIG_MAX_LIST
#define DNS_QUERY_MAX		512		/* our questions are small */
#define DNS_EDNS_SIZE		DNS_MAX_ANSWER
#define RESOLV_CONF		"/etc/resolv.conf"

enum req_kind { REQ_ADDR, REQ_MX, REQ_RAW };

struct dns_req {
	enum req_kind kind;
	int cancelled;
	int numeric;			/* REQ_ADDR of an address literal */
	void *arg;
	union {
		dns_addr_cb addr;
		dns_mx_cb mx;
		dns_query_cb raw;
	} cb;
	/* REQ_ADDR: two evdns questions */
	int pending;
	enum dns_status st4, st6;
	struct dns_addr addrs[DNS_MAX_RR];
	int naddrs;
	/* REQ_MX and REQ_RAW: our UDP question */
	char name[DNS_NAME_MAX];
	int type;
	uint16_t id;
	int fd;
	int server;			/* index of the server asked now */
	int tries;
	struct event *ev;
	struct dns_req *prev, *next;	/* live UDP or numeric requests */
	/* dns_query_at: this server instead of dns.nameservers */
	struct sockaddr_storage at;
	socklen_t atlen;
};

/* a worker thread's question, answered on the loop */
struct dns_sync {
	char name[DNS_NAME_MAX];
	int type;
	struct dns_answer *answer;
	int done;
	pthread_cond_t cond;
	struct dns_sync *next;
};

static struct {
	struct event_base *base;
	struct evdns_base *evdns;
	struct sockaddr_storage servers[DNS_MAX_SERVERS];
	socklen_t serverlen[DNS_MAX_SERVERS];
	int nservers;
	struct dns_req *udp_reqs;
	struct dns_req *num_reqs;	/* numeric addresses answered on a timer */
	pthread_mutex_t sync_lock;
	struct dns_sync *sync_todo;
	struct event *sync_ev;
	int closed;			/* dns_close ran: sync questions fail at once */
} dns = { .sync_lock = PTHREAD_MUTEX_INITIALIZER };

const char *
dns_status_name(enum dns_status st)
{
	static const char *names[] = { "ok", "nxdomain", "nodata", "tempfail", "permfail" };
	return (size_t)st < MX_ARRAY_LEN(names) ? names[st] : "?";
}

/* --- configuration ----------------------------------------------------- */

static int
dns_add_server(const char *host, int port)
{
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	int i = dns.nservers;

	if (i >= DNS_MAX_SERVERS)
		return -1;
	memset(&dns.servers[i], 0, sizeof(dns.servers[i]));
	sin = (struct sockaddr_in *)&dns.servers[i];
	sin6 = (struct sockaddr_in6 *)&dns.servers[i];
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		dns.serverlen[i] = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		dns.serverlen[i] = sizeof(*sin6);
	} else
		return -1;
	dns.nservers++;
	return 0;
}

/* dns_read_resolv_conf - the nameserver lines, for our UDP client */
static void
dns_read_resolv_conf(void)
{
	char line[512], host[256];
	FILE *fp = fopen(RESOLV_CONF, "r");

	if (fp == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "nameserver %255s", host) == 1)
			dns_add_server(host, NS_DEFAULTPORT);
	fclose(fp);
}

static void dns_sync_run(evutil_socket_t, short, void *);

int
dns_init(struct event_base *base, const struct config *cfg, char *err, size_t errlen)
{
	char buf[300], num[8];

	dns.base = base;
	dns.evdns = evdns_base_new(base, 0);
	if (dns.evdns == NULL) {
		snprintf(err, errlen, "dns: evdns_base_new failed");
		return -1;
	}
	for (int i = 0; i < cfg->nnameservers; i++) {
		const struct listen_addr *ns = &cfg->nameservers[i];
		if (strchr(ns->host, ':'))
			snprintf(buf, sizeof(buf), "[%s]:%d", ns->host, ns->port);
		else
			snprintf(buf, sizeof(buf), "%s:%d", ns->host, ns->port);
		if (evdns_base_nameserver_ip_add(dns.evdns, buf) != 0 ||
		    dns_add_server(ns->host, ns->port) < 0) {
			snprintf(err, errlen, "dns.nameservers: cannot use %s", buf);
			return -1;
		}
	}
	if (cfg->nnameservers == 0) {
		/* No search list: we always ask fully qualified names. */
		evdns_base_resolv_conf_parse(dns.evdns, DNS_OPTION_NAMESERVERS, RESOLV_CONF);
		dns_read_resolv_conf();
	}
	snprintf(num, sizeof(num), "%d", DNS_TIMEOUT_SECS);
	evdns_base_set_option(dns.evdns, "timeout:", num);
	snprintf(num, sizeof(num), "%d", DNS_TRIES);
	evdns_base_set_option(dns.evdns, "attempts:", num);
	dns.sync_ev = event_new(base, -1, 0, dns_sync_run, NULL);
	if (dns.nservers == 0)
		log_warnx("dns no nameserver configured: every lookup will fail");
	return 0;
}

/* --- completion helpers ------------------------------------------------- */

static void
dns_req_free(struct dns_req *r)
{
	if (r->ev)
		event_free(r->ev);
	if (r->fd >= 0)
		close(r->fd);
	if (r->kind != REQ_ADDR || r->numeric) {
		struct dns_req **head = r->numeric ? &dns.num_reqs : &dns.udp_reqs;
		if (r->prev)
			r->prev->next = r->next;
		else if (*head == r)
			*head = r->next;
		if (r->next)
			r->next->prev = r->prev;
	}
	free(r);
}

static struct dns_req *
dns_req_new(enum req_kind kind, void *arg)
{
	struct dns_req *r = xcalloc(1, sizeof(*r));

	r->kind = kind;
	r->arg = arg;
	r->fd = -1;
	return r;
}

void
dns_cancel(struct dns_req *r)
{
	/* Completions are always delivered to us, then dropped. */
	if (r)
		r->cancelled = 1;
}

static void
answer_clear(struct dns_answer *a)
{
	for (int i = 0; i < a->nrr; i++)
		free(a->rr[i].txt);
	a->nrr = 0;
}

void
dns_answer_free(struct dns_answer *a)
{
	if (a == NULL)
		return;
	answer_clear(a);
	free(a);
}

/* --- A and AAAA through evdns ------------------------------------------- */

static enum dns_status
evdns_status(int result)
{
	switch (result) {
	case DNS_ERR_NONE:	return DNS_OK;
	case DNS_ERR_NOTEXIST:	return DNS_NXDOMAIN;
	case DNS_ERR_FORMAT:
	case DNS_ERR_REFUSED:
	case DNS_ERR_NOTIMPL:	return DNS_PERMFAIL;
	default:		return DNS_TEMPFAIL;
	}
}

/* addr_done - both families answered: report what we have */
static void
addr_done(struct dns_req *r)
{
	enum dns_status st;

	if (r->naddrs > 0)
		st = DNS_OK;
	else if (r->st4 == DNS_TEMPFAIL || r->st6 == DNS_TEMPFAIL)
		st = DNS_TEMPFAIL;
	else if (r->st4 == DNS_NXDOMAIN && r->st6 == DNS_NXDOMAIN)
		st = DNS_NXDOMAIN;
	else if (r->st4 == DNS_PERMFAIL && r->st6 == DNS_PERMFAIL)
		st = DNS_PERMFAIL;
	else
		st = DNS_NODATA;
	if (!r->cancelled)
		r->cb.addr(st, r->addrs, r->naddrs, r->arg);
	dns_req_free(r);
}

static void
addr_answer(int result, char type, int count, int ttl, void *addrs, void *arg)
{
	struct dns_req *r = arg;
	enum dns_status st = evdns_status(result);

	if (st == DNS_OK && count == 0)
		st = DNS_NODATA;
	for (int i = 0; st == DNS_OK && i < count && r->naddrs < DNS_MAX_RR; i++) {
		struct dns_addr *a = &r->addrs[r->naddrs++];
		if (type == DNS_IPv4_A) {
			a->family = AF_INET;
			memcpy(&a->a.v4, (char *)addrs + 4 * i, 4);
		} else {
			a->family = AF_INET6;
			memcpy(&a->a.v6, (char *)addrs + 16 * i, 16);
		}
	}
	if (type == DNS_IPv4_A)
		r->st4 = st;
	else
		r->st6 = st;
	if (--r->pending == 0)
		addr_done(r);
}

static void
addr_numeric(evutil_socket_t fd, short ev, void *arg)
{
	addr_done(arg);
}

struct dns_req *
dns_resolve_addr(const char *host, dns_addr_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(REQ_ADDR, arg);
	struct timeval now = { 0, 0 };

	r->cb.addr = cb;
	if (inet_pton(AF_INET, host, &r->addrs[0].a.v4) == 1)
		r->addrs[0].family = AF_INET;
	else if (inet_pton(AF_INET6, host, &r->addrs[0].a.v6) == 1)
		r->addrs[0].family = AF_INET6;
	if (r->addrs[0].family) {
		r->naddrs = 1;
		/* answered from the loop, never from inside this call; listed
		 * so that dns_close frees one the loop never got to */
		r->numeric = 1;
		r->next = dns.num_reqs;
		if (r->next)
			r->next->prev = r;
		dns.num_reqs = r;
		r->ev = evtimer_new(dns.base, addr_numeric, r);
		evtimer_add(r->ev, &now);
		return r;
	}
	/* Both questions at once; the IPv6 one may be answered first. */
	r->pending = 2;
	if (evdns_base_resolve_ipv4(dns.evdns, host, DNS_QUERY_NO_SEARCH, addr_answer, r) == NULL) {
		r->st4 = DNS_TEMPFAIL;
		r->pending--;
	}
	if (evdns_base_resolve_ipv6(dns.evdns, host, DNS_QUERY_NO_SEARCH, addr_answer, r) == NULL) {
		r->st6 = DNS_TEMPFAIL;
		if (--r->pending == 0) {
			r->ev = evtimer_new(dns.base, addr_numeric, r);
			evtimer_add(r->ev, &now);
		}
	}
	return r;
}

/* --- other types over our UDP client ------------------------------------ */

/* dns_build_query - RFC 1035 4.1 question with an EDNS0 OPT record.
 * Returns its length, or -1 when the name does not fit. */
static int
dns_build_query(const char *name, int type, uint16_t id, unsigned char *buf, size_t len)
{
	unsigned char *p = buf, *end = buf + len;
	const char *label = name, *dot;
	size_t n;

	if (len < 12)
		return -1;
	memset(p, 0, 12);
	p[0] = id >> 8;
	p[1] = id & 0xff;
	p[2] = 0x01;		/* RD */
	p[5] = 1;		/* QDCOUNT */
	p[11] = 1;		/* ARCOUNT: OPT */
	p += 12;
	while (*label) {
		dot = strchr(label, '.');
		n = dot ? (size_t)(dot - label) : strlen(label);
		if (n == 0 || n > 63 || p + 1 + n >= end)
			return -1;
		*p++ = (unsigned char)n;
		memcpy(p, label, n);
		p += n;
		label += n;
		if (*label == '.')
			label++;
	}
	if (p + 5 + 11 > end)
		return -1;
	*p++ = 0;
	*p++ = (unsigned char)(type >> 8);
	*p++ = (unsigned char)type;
	*p++ = 0;
	*p++ = ns_c_in;
	/* OPT: root name, type 41, class = UDP payload size, TTL 0, no data */
	*p++ = 0;
	*p++ = 0;
	*p++ = ns_t_opt;
	*p++ = DNS_EDNS_SIZE >> 8;
	*p++ = DNS_EDNS_SIZE & 0xff;
	memset(p, 0, 6);
	p += 6;
	return (int)(p - buf);
}

static int mx_cmp(const void *a, const void *b)
{
	return ((const struct dns_mx *)a)->pref - ((const struct dns_mx *)b)->pref;
}

/* raw_complete - hand the answer to the caller and free the request */
static void
raw_complete(struct dns_req *r, struct dns_answer *a)
{
	struct dns_mx mx[DNS_MAX_RR];
	int n = 0;

	if (r->cancelled)
		goto out;
	if (r->kind == REQ_RAW) {
		r->cb.raw(a, r->arg);
		goto out;
	}
	for (int i = 0; a->status == DNS_OK && i < a->nrr; i++) {
		mx[n].pref = a->rr[i].pref;
		mx_strlcpy(mx[n].host, a->rr[i].host, sizeof(mx[n].host));
		n++;
	}
	/* RFC 5321 5.1: equal preferences in random order */
	for (int i = n - 1; i > 0; i--) {
		int j = (int)arc4random_uniform((uint32_t)i + 1);
		struct dns_mx t = mx[i];
		mx[i] = mx[j];
		mx[j] = t;
	}
	qsort(mx, (size_t)n, sizeof(mx[0]), mx_cmp);
	r->cb.mx(a->status, mx, n, r->arg);
out:
	dns_req_free(r);
}

static void raw_event(evutil_socket_t, short, void *);

/* raw_send - ask the current server; -1 when no socket could be made */
static int
raw_send(struct dns_req *r)
{
	unsigned char q[DNS_QUERY_MAX];
	struct timeval tv = { DNS_TIMEOUT_SECS, 0 };
	const struct sockaddr *sa = r->atlen ? (struct sockaddr *)&r->at :
	    (struct sockaddr *)&dns.servers[r->server];
	socklen_t salen = r->atlen ? r->atlen : dns.serverlen[r->server];
	int qlen;

	if (r->ev) {
		event_free(r->ev);
		r->ev = NULL;
	}
	if (r->fd >= 0)
		close(r->fd);
	r->id = (uint16_t)arc4random();
	if ((qlen = dns_build_query(r->name, r->type, r->id, q, sizeof(q))) < 0)
		return -1;
	r->fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return -1;
	if (connect(r->fd, sa, salen) < 0 ||
	    send(r->fd, q, (size_t)qlen, 0) != qlen)
		log_debug("dns send %s: %s", r->name, strerror(errno));
	r->ev = event_new(dns.base, r->fd, EV_READ | EV_PERSIST, raw_event, r);
	event_add(r->ev, &tv);
	return 0;
}

/* req_nservers - the servers r may ask */
static int
req_nservers(const struct dns_req *r)
{
	return r->atlen ? 1 : dns.nservers;
}

/* raw_retry - next server, or the next round; give up after DNS_TRIES */
static void
raw_retry(struct dns_req *r, struct dns_answer *a)
{
	if (++r->server >= req_nservers(r)) {
		r->server = 0;
		r->tries++;
	}
	if (r->tries >= DNS_TRIES || raw_send(r) < 0) {
		a->status = DNS_TEMPFAIL;
		raw_complete(r, a);
	}
}

static void
raw_event(evutil_socket_t fd, short ev, void *arg)
{
	struct dns_req *r = arg;
	struct dns_answer *a = xcalloc(1, sizeof(*a));
	unsigned char buf[DNS_MAX_ANSWER];
	ssize_t n;

	if (ev & EV_TIMEOUT) {
		log_debug("dns timeout name=%s type=%d server=%d", r->name, r->type, r->server);
		raw_retry(r, a);
		dns_answer_free(a);
		return;
	}
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		free(a);
		return;
	}
	/* A refused port (ICMP) or an answer to another question: next try. */
	if (n < 12 || ((buf[0] << 8) | buf[1]) != r->id || !(buf[2] & 0x80)) {
		if (n >= 0 && n < 12) {
			free(a);
			return;
		}
		if (n >= 12 && ((buf[0] << 8) | buf[1]) != r->id) {
			free(a);	/* not ours: keep waiting */
			return;
		}
		raw_retry(r, a);
		dns_answer_free(a);
		return;
	}
	/* A truncated answer (TC) is not the whole record set: an MX or SPF
	 * decision on part of it would be wrong. We ask with EDNS0 for
	 * DNS_MAX_ANSWER octets; beyond that, DNS trouble (no TCP yet). */
	if (buf[2] & 0x02) {
		log_warnx("dns truncated answer name=%s type=%d: treated as a "
		    "temporary failure", r->name, r->type);
		a->status = DNS_TEMPFAIL;
		raw_complete(r, a);
		dns_answer_free(a);
		return;
	}
	dns_parse_answer(buf, (int)n, r->type, a);
	if (a->status == DNS_OK || a->status == DNS_NXDOMAIN || a->status == DNS_NODATA)
		raw_complete(r, a);
	else if (a->status == DNS_TEMPFAIL) {
		answer_clear(a);
		raw_retry(r, a);
	} else
		raw_complete(r, a);
	dns_answer_free(a);
}

static struct dns_req *
raw_start(struct dns_req *r, const char *name, int type)
{
	struct dns_answer a;
	size_t n = mx_strlcpy(r->name, name, sizeof(r->name));

	if (n > 0 && r->name[n - 1] == '.')
		r->name[n - 1] = '\0';
	r->type = type;
	r->next = dns.udp_reqs;
	if (dns.udp_reqs)
		dns.udp_reqs->prev = r;
	dns.udp_reqs = r;
	if (req_nservers(r) == 0 || n >= sizeof(r->name) || raw_send(r) < 0) {
		struct timeval now = { 0, 0 };
		/* report from the loop, never from inside the call */
		memset(&a, 0, sizeof(a));
		r->tries = DNS_TRIES;
		r->server = req_nservers(r);
		if (r->ev)
			event_free(r->ev);
		r->ev = evtimer_new(dns.base, raw_event, r);
		evtimer_add(r->ev, &now);
	}
	return r;
}

struct dns_req *
dns_resolve_mx(const char *domain, dns_mx_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(REQ_MX, arg);

	r->cb.mx = cb;
	return raw_start(r, domain, ns_t_mx);
}

struct dns_req *
dns_query(const char *name, int type, dns_query_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(REQ_RAW, arg);

	r->cb.raw = cb;
	return raw_start(r, name, type);
}

struct dns_req *
dns_query_at(const struct dns_addr *server, int port, const char *name,
    int type, dns_query_cb cb, void *arg)
{
	struct dns_req *r = dns_req_new(REQ_RAW, arg);
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->at;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->at;

	r->cb.raw = cb;
	if (server->family == AF_INET6) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = server->a.v6;
		sin6->sin6_port = htons((uint16_t)port);
		r->atlen = sizeof(*sin6);
	} else {
		sin->sin_family = AF_INET;
		sin->sin_addr = server->a.v4;
		sin->sin_port = htons((uint16_t)port);
		r->atlen = sizeof(*sin);
	}
	return raw_start(r, name, type);
}

/* --- worker threads ------------------------------------------------------ */

static void
sync_answer(const struct dns_answer *a, void *arg)
{
	struct dns_sync *s = arg;

	s->answer = xcalloc(1, sizeof(*s->answer));
	*s->answer = *a;
	/* the TXT strings move to the copy */
	for (int i = 0; i < a->nrr; i++)
		s->answer->rr[i].txt = a->rr[i].txt ? xstrdup(a->rr[i].txt) : NULL;
	pthread_mutex_lock(&dns.sync_lock);
	s->done = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&dns.sync_lock);
}

/* dns_sync_run - on the loop: start the questions of worker threads */
static void
dns_sync_run(evutil_socket_t fd, short ev, void *arg)
{
	struct dns_sync *s, *next;

	pthread_mutex_lock(&dns.sync_lock);
	s = dns.sync_todo;
	dns.sync_todo = NULL;
	pthread_mutex_unlock(&dns.sync_lock);
	for (; s; s = next) {
		next = s->next;
		dns_query(s->name, s->type, sync_answer, s);
	}
}

struct dns_answer *
dns_query_sync(const char *name, int type)
{
	struct dns_sync s;
	struct dns_answer *a;

	memset(&s, 0, sizeof(s));
	mx_strlcpy(s.name, name, sizeof(s.name));
	s.type = type;
	pthread_cond_init(&s.cond, NULL);
	pthread_mutex_lock(&dns.sync_lock);
	if (dns.closed) {
		pthread_mutex_unlock(&dns.sync_lock);
		pthread_cond_destroy(&s.cond);
		a = xcalloc(1, sizeof(*a));
		a->status = DNS_TEMPFAIL;
		return a;
	}
	s.next = dns.sync_todo;
	dns.sync_todo = &s;
	event_active(dns.sync_ev, EV_READ, 0);
	while (!s.done)
		pthread_cond_wait(&s.cond, &dns.sync_lock);
	pthread_mutex_unlock(&dns.sync_lock);
	pthread_cond_destroy(&s.cond);
	a = s.answer;
	return a;
}

void
dns_close(void)
{
	struct dns_answer a;
	struct dns_sync *s, *next;

	memset(&a, 0, sizeof(a));
	a.status = DNS_TEMPFAIL;
	/* worker threads waiting in dns_query_sync get an answer, now and later */
	pthread_mutex_lock(&dns.sync_lock);
	dns.closed = 1;
	s = dns.sync_todo;
	dns.sync_todo = NULL;
	pthread_mutex_unlock(&dns.sync_lock);
	for (; s; s = next) {
		next = s->next;
		sync_answer(&a, s);
	}
	while (dns.udp_reqs)
		raw_complete(dns.udp_reqs, &a);
	/* their owners are closed and have cancelled them: no callback */
	while (dns.num_reqs)
		dns_req_free(dns.num_reqs);
	if (dns.evdns)
		evdns_base_free(dns.evdns, 1);	/* fails pending address lookups */
	dns.evdns = NULL;
	if (dns.sync_ev)
		event_free(dns.sync_ev);
	dns.sync_ev = NULL;
	dns.nservers = 0;
}
