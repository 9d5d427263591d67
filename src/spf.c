/* spf.c - SPF (RFC 7208) with libspf2 on worker threads, DNS through dns.c
 *
 * libspf2 does its lookups through an SPF_dns_server_t "layer". Ours hands
 * each query to dns_query_sync(), which runs it on the event loop against
 * dns.nameservers and waits: the waiting happens on a worker thread, never
 * on the loop. Each worker owns its own SPF_server_t, so libspf2 objects
 * are never shared between threads. A check goes to the least busy worker.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "dns.h"
#include "log.h"
#include "spf.h"
#include "util.h"
#include "worker.h"

#define SPF_DRAIN_TICK_MS	200	/* shutdown: how often to look at the workers */
#define SPF_NAME_MAX		253	/* RFC 1035 2.3.4 */
#define SPF_LABEL_MAX		63
/* our explanation for a fail when the domain gives none (RFC 7208 6.2):
 * %{i} client IP, %{d} the domain checked */
#define MX_SPF_EXPLANATION		"%{i} is not allowed to send mail for %{d}"

/* per SPF_server_t state of our DNS layer (one worker thread uses it) */
struct spf_layer {
	uint64_t deadline_us;		/* this evaluation's DNS time is up */
};

struct spf_slot {
	struct worker *w;
	SPF_server_t *server;
	int pending;			/* checks queued or running (loop thread) */
};

struct spf_check {
	struct spf_slot *slot;
	char *ip, *helo, *sender;
	struct spf_verdict v;
	spf_done_fn done;
	void *arg;
	int cancelled;
};

static struct {
	struct event_base *base;
	struct spf_slot slots[SPF_WORKERS];
	int running;
} spf;

/* set at shutdown: lookups not yet sent answer TRY_AGAIN at once */
static atomic_int spf_stopping;
static pthread_once_t spf_log_once = PTHREAD_ONCE_INIT;

/* --- libspf2 messages into our log ------------------------------------- */

static void
spf_log_warning(const char *file, int line, const char *msg)
{
	log_debug("spf libspf2 warning %s:%d: %s", file ? file : "?", line, msg);
}

static void
spf_log_quiet(const char *file, int line, const char *msg)
{
}

static void
spf_log_setup(void)
{
	SPF_warning_handler = spf_log_warning;
	SPF_info_handler = spf_log_quiet;
	SPF_debug_handler = spf_log_quiet;
}

/* --- the DNS layer ------------------------------------------------------ */

/* spf_name_sane - would the name fit in a DNS query? RFC 7208 4.3: a
 * malformed domain is "none", not a DNS error, so it is never sent. */
static int
spf_name_sane(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > SPF_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if (++label > SPF_LABEL_MAX)
			return 0;
	}
	return 1;
}

/* spf_herrno - dns.c's status as the h_errno value libspf2 expects */
static int
spf_herrno(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return NETDB_SUCCESS;
	case DNS_NXDOMAIN:
		return HOST_NOT_FOUND;
	case DNS_NODATA:
		return NO_DATA;
	case DNS_TEMPFAIL:
	case DNS_PERMFAIL:
		/* RFC 7208 4.4: an RCODE other than 0 or 3 is a temperror */
		break;
	}
	return TRY_AGAIN;
}

/* spf_rr_name - copy a host name into record i of rr, without a final dot */
static int
spf_rr_name(SPF_dns_rr_t *rr, int i, const char *host)
{
	size_t n = strlen(host);

	if (n > 0 && host[n - 1] == '.')
		n--;
	if (SPF_dns_rr_buf_realloc(rr, i, n + 1) != SPF_E_SUCCESS)
		return -1;
	memcpy(rr->rr[i]->ptr, host, n);	/* ptr and mx share the union */
	rr->rr[i]->ptr[n] = '\0';
	return 0;
}

/* spf_rr_fill - the answer's records of the type asked into rr */
static void
spf_rr_fill(SPF_dns_rr_t *rr, const struct dns_answer *a, ns_type type)
{
	int n = 0, ok;

	for (int i = 0; i < a->nrr; i++) {
		const struct dns_rr *r = &a->rr[i];

		if (r->type != (int)type)
			continue;	/* CNAMEs of the chain */
		ok = 0;
		switch (type) {
		case ns_t_a:
			if (r->addr.family == AF_INET &&
			    SPF_dns_rr_buf_realloc(rr, n, sizeof(struct in_addr)) == SPF_E_SUCCESS) {
				rr->rr[n]->a = r->addr.a.v4;
				ok = 1;
			}
			break;
		case ns_t_aaaa:
			if (r->addr.family == AF_INET6 &&
			    SPF_dns_rr_buf_realloc(rr, n, sizeof(struct in6_addr)) == SPF_E_SUCCESS) {
				rr->rr[n]->aaaa = r->addr.a.v6;
				ok = 1;
			}
			break;
		case ns_t_mx:
		case ns_t_ptr:
			ok = spf_rr_name(rr, n, r->host) == 0;
			break;
		case ns_t_txt:
			if (r->txt != NULL &&
			    SPF_dns_rr_buf_realloc(rr, n, r->txtlen + 1) == SPF_E_SUCCESS) {
				memcpy(rr->rr[n]->txt, r->txt, r->txtlen);
				rr->rr[n]->txt[r->txtlen] = '\0';
				ok = 1;
			}
			break;
		default:
			break;
		}
		if (ok)
			n++;
	}
	rr->num_rr = n;
	if (n == 0)
		rr->herrno = NO_DATA;
}

/* spf_dns_lookup - libspf2's lookup hook: one query through dns.c */
static SPF_dns_rr_t *
spf_dns_lookup(SPF_dns_server_t *d, const char *domain, ns_type type,
    int should_cache)
{
	struct spf_layer *l = d->hook;
	struct dns_answer *a;
	SPF_dns_rr_t *rr;
	uint32_t ttl = 0;

	/* RFC 7208 3.1, 14.1: the SPF RR type is no longer queried */
	if (type == ns_t_spf)
		return SPF_dns_rr_new_init(d, domain, type, 0, NO_DATA);
	if (!spf_name_sane(domain))
		return SPF_dns_rr_new_init(d, domain, type, 0, HOST_NOT_FOUND);
	if (atomic_load(&spf_stopping) || mx_mono_us() > l->deadline_us)
		return SPF_dns_rr_new_init(d, domain, type, 0, TRY_AGAIN);
	if ((a = dns_query_sync(domain, type)) == NULL)
		return SPF_dns_rr_new_init(d, domain, type, 0, TRY_AGAIN);
	for (int i = 0; i < a->nrr; i++)
		if (i == 0 || a->rr[i].ttl < ttl)
			ttl = a->rr[i].ttl;
	rr = SPF_dns_rr_new_init(d, domain, type, (int)ttl, spf_herrno(a->status));
	if (rr != NULL && a->status == DNS_OK)
		spf_rr_fill(rr, a, type);
	dns_answer_free(a);
	return rr;
}

static void
spf_dns_destroy(SPF_dns_server_t *d)
{
	free(d->hook);
	free(d);
}

/* spf_server_new - an SPF_server_t speaking through our DNS layer */
static SPF_server_t *
spf_server_new(const char *receiver)
{
	SPF_dns_server_t *d = xcalloc(1, sizeof(*d));
	SPF_response_t *resp = NULL;
	SPF_server_t *sp;

	pthread_once(&spf_log_once, spf_log_setup);
	d->destroy = spf_dns_destroy;
	d->lookup = spf_dns_lookup;
	d->name = "mxrelay";
	d->hook = xcalloc(1, sizeof(struct spf_layer));
	if ((sp = SPF_server_new_dns(d, 0)) == NULL) {
		spf_dns_destroy(d);
		return NULL;
	}
	if (receiver && *receiver)
		SPF_server_set_rec_dom(sp, receiver);
	if (SPF_server_set_explanation(sp, MX_SPF_EXPLANATION, &resp) != SPF_E_SUCCESS)
		log_warnx("spf default explanation refused by libspf2");
	if (resp)
		SPF_response_free(resp);
	return sp;
}

/* spf_server_done - free sp and our DNS layer (SPF_server_new_dns leaves
 * the layer to its creator) */
static void
spf_server_done(SPF_server_t *sp)
{
	SPF_dns_server_t *d;

	if (sp == NULL)
		return;
	d = sp->destroy_resolver ? NULL : sp->resolver;
	SPF_server_free(sp);
	if (d != NULL)
		spf_dns_destroy(d);
}

/* --- one evaluation ------------------------------------------------------ */

/* spf_text - printable ASCII copy of s (it came from DNS or libspf2) */
static void
spf_text(char *dst, size_t len, const char *s)
{
	size_t i, j = 0;

	for (i = 0; s != NULL && s[i] != '\0' && j + 1 < len; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[j++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	dst[j] = '\0';
}

static enum spf_result
spf_map_result(SPF_result_t r, SPF_errcode_t err)
{
	switch (r) {
	case SPF_RESULT_NEUTRAL:	return SPF_NEUTRAL;
	case SPF_RESULT_PASS:		return SPF_PASS;
	case SPF_RESULT_FAIL:		return SPF_FAIL;
	case SPF_RESULT_SOFTFAIL:	return SPF_SOFTFAIL;
	case SPF_RESULT_NONE:		return SPF_NONE;
	case SPF_RESULT_TEMPERROR:	return SPF_TEMPERROR;
	case SPF_RESULT_PERMERROR:	return SPF_PERMERROR;
	default:
		break;
	}
	/* no result: libspf2 stopped on an error */
	return err == SPF_E_DNS_ERROR ? SPF_TEMPERROR : SPF_PERMERROR;
}

/* spf_eval_server - evaluate with SP on the calling thread */
static void
spf_eval_server(SPF_server_t *sp, const char *ip, const char *helo,
    const char *sender, struct spf_verdict *v)
{
	SPF_request_t *req;
	SPF_response_t *resp = NULL;
	SPF_errcode_t err;
	struct spf_layer *l = sp->resolver->hook;
	const char *at;

	memset(v, 0, sizeof(*v));
	v->helo_identity = *sender == '\0';
	if (v->helo_identity)
		mx_strlcpy(v->domain, helo, sizeof(v->domain));
	else if ((at = strrchr(sender, '@')) != NULL)
		mx_strlcpy(v->domain, at + 1, sizeof(v->domain));
	if (v->domain[0] == '\0' || v->domain[0] == '[') {
		/* no domain to check: <> with an address-literal HELO */
		v->result = SPF_NONE;
		snprintf(v->comment, sizeof(v->comment), "no domain to check");
		return;
	}
	req = SPF_request_new(sp);
	if (strchr(ip, ':') ? SPF_request_set_ipv6_str(req, ip) :
	    SPF_request_set_ipv4_str(req, ip)) {
		SPF_request_free(req);
		v->result = SPF_PERMERROR;
		snprintf(v->comment, sizeof(v->comment), "bad client address");
		return;
	}
	if (*helo)
		SPF_request_set_helo_dom(req, helo);
	SPF_request_set_env_from(req, sender);
	l->deadline_us = mx_mono_us() + (uint64_t)SPF_EVAL_MAX_SECS * 1000000;
	err = SPF_request_query_mailfrom(req, &resp);
	v->result = spf_map_result(SPF_response_result(resp), err);
	spf_text(v->comment, sizeof(v->comment), SPF_response_get_header_comment(resp));
	if (v->comment[0] == '\0' && err != SPF_E_SUCCESS)
		spf_text(v->comment, sizeof(v->comment), SPF_strerror(err));
	if (v->result == SPF_FAIL) {
		spf_text(v->explanation, sizeof(v->explanation),
		    SPF_response_get_explanation(resp));
		/* libspf2 1.2.10 expands explanations wrongly (spaces become
		 * '%', macros after the first stay unexpanded): a text with a
		 * '%' left is not shown; the comment says it right. */
		if (strchr(v->explanation, '%') != NULL)
			v->explanation[0] = '\0';
	}
	SPF_response_free(resp);
	SPF_request_free(req);
}

/* spf_evaluate - synchronous evaluation; see spf.h */
void
spf_evaluate(const char *receiver, const char *ip, const char *helo,
    const char *sender, struct spf_verdict *v)
{
	SPF_server_t *sp = spf_server_new(receiver);

	if (sp == NULL) {
		memset(v, 0, sizeof(*v));
		v->result = SPF_TEMPERROR;
		snprintf(v->comment, sizeof(v->comment), "libspf2 unavailable");
		return;
	}
	spf_eval_server(sp, ip, helo, sender, v);
	spf_server_done(sp);
}

/* --- the worker pool ----------------------------------------------------- */

/* spf_job - on a worker thread */
static void
spf_job(void *arg)
{
	struct spf_check *c = arg;

	spf_eval_server(c->slot->server, c->ip, c->helo, c->sender, &c->v);
}

static void
spf_check_free(struct spf_check *c)
{
	free(c->ip);
	free(c->helo);
	free(c->sender);
	free(c);
}

/* spf_job_done - back on the loop */
static void
spf_job_done(void *arg)
{
	struct spf_check *c = arg;

	c->slot->pending--;
	if (!c->cancelled)
		c->done(&c->v, c->arg);
	spf_check_free(c);
}

struct spf_check *
spf_check_start(const char *ip, const char *helo, const char *sender,
    spf_done_fn done, void *arg)
{
	struct spf_slot *slot = NULL;
	struct spf_check *c;

	if (!spf.running)
		return NULL;
	for (int i = 0; i < SPF_WORKERS; i++)
		if (slot == NULL || spf.slots[i].pending < slot->pending)
			slot = &spf.slots[i];
	c = xcalloc(1, sizeof(*c));
	c->slot = slot;
	c->ip = xstrdup(ip);
	c->helo = xstrdup(helo);
	c->sender = xstrdup(sender);
	c->done = done;
	c->arg = arg;
	slot->pending++;
	worker_submit(slot->w, spf_job, spf_job_done, c);
	return c;
}

void
spf_check_cancel(struct spf_check *c)
{
	if (c != NULL)
		c->cancelled = 1;
}

int
spf_init(struct event_base *base, const char *receiver)
{
	char name[16];

	if (spf.running)
		return 0;
	atomic_store(&spf_stopping, 0);
	spf.base = base;
	for (int i = 0; i < SPF_WORKERS; i++) {
		if ((spf.slots[i].server = spf_server_new(receiver)) == NULL) {
			log_warnx("spf libspf2 server creation failed");
			for (int j = 0; j < i; j++) {
				worker_free(spf.slots[j].w);
				spf_server_done(spf.slots[j].server);
			}
			return -1;
		}
		snprintf(name, sizeof(name), "spf%d", i);
		spf.slots[i].w = worker_new(base, name);
		spf.slots[i].pending = 0;
	}
	spf.running = 1;
	return 0;
}

static void
spf_drain_tick(evutil_socket_t fd, short ev, void *arg)
{
}

/* spf_busy - checks still queued or running */
static int
spf_busy(void)
{
	int n = 0;

	for (int i = 0; i < SPF_WORKERS; i++)
		n += spf.slots[i].pending;
	return n;
}

void
spf_shutdown(void)
{
	struct timeval tv = { 0, SPF_DRAIN_TICK_MS * 1000 };
	uint64_t until;
	struct event *tick;

	if (!spf.running)
		return;
	atomic_store(&spf_stopping, 1);
	/* A running lookup waits for its answer on the loop: keep the loop
	 * turning until every check came back (bounded by the DNS timeouts). */
	until = mx_mono_us() + (uint64_t)(SPF_EVAL_MAX_SECS + 2 * DNS_TIMEOUT_SECS) * 1000000;
	tick = event_new(spf.base, -1, EV_PERSIST, spf_drain_tick, NULL);
	event_add(tick, &tv);
	while (spf_busy() > 0 && mx_mono_us() < until)
		event_base_loop(spf.base, EVLOOP_ONCE);
	event_free(tick);
	if (spf_busy() > 0)
		log_warnx("spf shutdown with %d checks still running", spf_busy());
	for (int i = 0; i < SPF_WORKERS; i++) {
		worker_free(spf.slots[i].w);
		spf_server_done(spf.slots[i].server);
		spf.slots[i].w = NULL;
		spf.slots[i].server = NULL;
	}
	spf.running = 0;
}

/* --- results and headers ------------------------------------------------- */

const char *
spf_result_name(enum spf_result r)
{
	static const char *const names[SPF_NRESULTS] = {
		[SPF_NONE] = "none", [SPF_NEUTRAL] = "neutral",
		[SPF_PASS] = "pass", [SPF_FAIL] = "fail",
		[SPF_SOFTFAIL] = "softfail", [SPF_TEMPERROR] = "temperror",
		[SPF_PERMERROR] = "permerror",
	};

	return (unsigned)r < SPF_NRESULTS ? names[r] : "none";
}

/* spf_is_atext - RFC 5322 atext, and '.' for dot-atoms */
static int
spf_is_atext(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL;
}

/* spf_value - V as a dot-atom when it is one, else as a quoted-string
 * (RFC 7208 9.1 key-value-pair; RFC 8601 pvalue), printable ASCII only */
static void
spf_value(char *dst, size_t len, const char *v, int allow_at)
{
	size_t i, j = 0;
	int atom = *v != '\0' && *v != '.';

	for (i = 0; v[i]; i++)
		if (!spf_is_atext((unsigned char)v[i]) && !(allow_at && v[i] == '@'))
			atom = 0;
	if (atom) {
		spf_text(dst, len, v);
		return;
	}
	if (len < 3) {
		*dst = '\0';
		return;
	}
	dst[j++] = '"';
	for (i = 0; v[i] && j + 3 < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\')
			dst[j++] = '\\';
		dst[j++] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	dst[j++] = '"';
	dst[j] = '\0';
}

/* spf_comment - text for an RFC 5322 comment: no parentheses or
 * backslashes of its own, so it cannot end the comment early */
static void
spf_comment(char *dst, size_t len, const char *s)
{
	spf_text(dst, len, s);
	for (char *p = dst; *p; p++)
		if (*p == '(' || *p == ')' || *p == '\\')
			*p = *p == '(' ? '[' : *p == ')' ? ']' : '/';
}

size_t
spf_headers(const struct spf_verdict *v, const char *receiver, const char *ip,
    const char *helo, const char *sender, char *buf, size_t len)
{
	char from[600], hv[600], identity[640], comment[SPF_TEXT_MAX];
	const char *res = spf_result_name(v->result);
	int n;

	spf_comment(comment, sizeof(comment), v->comment[0] ? v->comment : res);
	spf_value(from, sizeof(from), *sender ? sender : "", 1);
	spf_value(hv, sizeof(hv), *helo ? helo : "unknown", 0);
	if (v->helo_identity)
		snprintf(identity, sizeof(identity), "smtp.helo=%s", hv);
	else
		snprintf(identity, sizeof(identity), "smtp.mailfrom=%s", from);
	n = snprintf(buf, len,
	    "Received-SPF: %s (%s)\r\n\treceiver=%s; client-ip=%s; "
	    "envelope-from=%s; helo=%s;\r\n\tidentity=%s;\r\n"
	    "Authentication-Results: %s;\r\n\tspf=%s %s\r\n",
	    res, comment, receiver, ip,
	    *sender ? from : "\"\"", hv, v->helo_identity ? "helo" : "mailfrom",
	    receiver, res, identity);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}
