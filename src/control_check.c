/* control_check.c - relayctl check DOMAIN: is the domain ready to switch?
 *
 * SPEC 10. One report, read before and after the DNS change and before
 * the switch. Its parts run at once, each asynchronous on the loop:
 *   - a fresh look of the MX watch (resolver and authoritative servers),
 *     with the propagation time;
 *   - an RCPT probe (probe.h, no message sent) of every table address at
 *     each legacy server alone: reachable, TLS, addresses it rejects
 *     (likely typos in the import);
 *   - the switch's preflight at the hosting, without switching;
 * then, from memory, the domain's queue by route and state and its
 * deliveries to the legacy servers in the last hour. The last line is
 * "ready to switch" or "not ready: <reasons>"; status 0 or 1.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control_check.h"
#include "control_pilot.h"
#include "jsonw.h"
#include "mxwatch.h"
#include "probe.h"
#include "queue.h"
#include "route.h"
#include "store.h"
#include "switch.h"
#include "table_import.h"
#include "util.h"

#define CHECK_REASON_MAX	1024
#define CHECK_REASONS_MAX	(STORE_MAX_SERVERS + 4)

/* what one probe found, kept past its callback */
struct check_probe {
	struct check_req *req;
	struct probe *probe;
	char what[320];			/* the server as configured */
	int ok;
	char error[PROBE_ERR_MAX];
	char server[320];
	char tls[128];
	size_t naccepted, nrefused;
	char **raddr, **rreply;
};

/* the queue of the domain: recipients by route and state */
enum { QROUTE_LEGACY, QROUTE_HOSTED, QROUTE_NONE, QROUTE_N };
enum { QSTATE_QUEUED, QSTATE_DEFERRED, QSTATE_ACTIVE, QSTATE_N };

struct check_req {
	struct ctl_ctx *ctx;
	char domain[SMTP_DOMAIN_MAX + 1];
	int pending;
	struct mxw_view view;
	int looked;
	struct check_probe legacy[STORE_MAX_SERVERS];
	int nlegacy;
	size_t naddrs;			/* table addresses probed */
	struct check_probe hosting;
	int hosting_ran;
	size_t nmailboxes;
	int queue[QROUTE_N][QSTATE_N];
	char reasons[CHECK_REASONS_MAX][CHECK_REASON_MAX];
	int nreasons;
};

static struct event_base *check_base;
static const struct config *check_cfg;

static const char *const qroute_names[] = { "legacy", "hosted", "none" };
static const char *const qstate_names[] = { "queued", "deferred", "active" };

void
control_check_init(struct event_base *base, const struct config *cfg)
{
	check_base = base;
	check_cfg = cfg;
}

void
control_check_set_config(const struct config *cfg)
{
	check_cfg = cfg;
}

static void
req_free(struct check_req *r)
{
	struct check_probe *all[STORE_MAX_SERVERS + 1];
	int n = 0;

	for (int i = 0; i < r->nlegacy; i++)
		all[n++] = &r->legacy[i];
	all[n++] = &r->hosting;
	for (int i = 0; i < n; i++) {
		for (size_t k = 0; k < all[i]->nrefused; k++) {
			free(all[i]->raddr[k]);
			free(all[i]->rreply[k]);
		}
		free(all[i]->raddr);
		free(all[i]->rreply);
	}
	free(r);
}

static void
reason_add(struct check_req *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
reason_add(struct check_req *r, const char *fmt, ...)
{
	va_list ap;

	if (r->nreasons == CHECK_REASONS_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(r->reasons[r->nreasons++], CHECK_REASON_MAX, fmt, ap);
	va_end(ap);
}

/* The queue, from memory */

static void
queue_count(struct check_req *r)
{
	const struct queue_msg **v;
	size_t n = queue_snapshot(r->domain, &v);
	struct route rt;
	char why[256];

	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < v[i]->nrcpts; k++) {
			const struct queue_rcpt *qr = &v[i]->rcpts[k];
			int st, ro;

			if (!queue_rcpt_in_domain(qr->addr, r->domain))
				continue;
			if (qr->state == QUEUE_R_ACTIVE)
				st = QSTATE_ACTIVE;
			else if (qr->state == QUEUE_R_PENDING)
				st = qr->attempts > 0 ? QSTATE_DEFERRED : QSTATE_QUEUED;
			else
				continue;
			switch (route_for_rcpt(qr->addr, &rt, why, sizeof(why))) {
			case ROUTE_OK:
				ro = rt.kind == ROUTE_HOSTED ? QROUTE_HOSTED :
				    QROUTE_LEGACY;
				break;
			case ROUTE_EXPAND:
				ro = QROUTE_HOSTED;
				break;
			default:
				ro = QROUTE_NONE;
			}
			r->queue[ro][st]++;
		}
	free(v);
}

/* Rendering */

static void
json_answer(struct jsonw *w, const struct mxw_answer *a)
{
	jsonw_kv_string(w, "status", dns_status_name(a->status));
	jsonw_key(w, "records");
	jsonw_array_begin(w);
	for (int i = 0; i < a->nrecs; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "host", a->recs[i].host);
		jsonw_kv_int(w, "pref", a->recs[i].pref);
		jsonw_kv_int(w, "ttl", a->recs[i].ttl);
		jsonw_kv_bool(w, "ours", a->recs[i].ours);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
}

static void
json_probe(struct jsonw *w, const struct check_probe *p, const char *refused)
{
	jsonw_kv_bool(w, "reachable", p->ok);
	jsonw_kv_string(w, "error", p->ok ? NULL : p->error);
	jsonw_kv_string(w, "relay", p->server);
	jsonw_kv_string(w, "tls", p->tls[0] ? p->tls : NULL);
	jsonw_kv_int(w, "accepted", (int64_t)p->naccepted);
	jsonw_key(w, refused);
	jsonw_array_begin(w);
	for (size_t i = 0; i < p->nrefused; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "address", p->raddr[i]);
		jsonw_kv_string(w, "reply", p->rreply[i]);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
}

static void
render_json(struct check_req *r, const struct domain_info *d,
    const struct store_mx *mx)
{
	struct jsonw *w = jsonw_new(r->ctx->out);
	time_t prop = mxwatch_propagation(mx), now = time(NULL);
	char when[SWITCH_TIME_MAX];

	jsonw_object_begin(w);
	jsonw_kv_string(w, "domain", r->domain);
	jsonw_kv_string(w, "mode", store_mode_name(d->mode));
	jsonw_kv_int(w, "addresses", (int64_t)store_domain_naddresses(d));
	jsonw_key(w, "mx");
	jsonw_object_begin(w);
	jsonw_kv_string(w, "picture", store_mx_picture_name(mx->picture));
	jsonw_key(w, "mx_names");
	jsonw_array_begin(w);
	for (int i = 0; i < check_cfg->nmx_names; i++)
		jsonw_string(w, check_cfg->mx_names[i]);
	jsonw_array_end(w);
	jsonw_key(w, "resolver");
	jsonw_object_begin(w);
	json_answer(w, &r->view.resolver);
	jsonw_object_end(w);
	jsonw_key(w, "authoritative");
	jsonw_array_begin(w);
	for (int i = 0; i < r->view.nauth; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "server", r->view.auth[i].server);
		jsonw_kv_string(w, "address", r->view.auth[i].addr);
		json_answer(w, &r->view.auth[i]);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_kv_int(w, "first_seen_ours", (int64_t)mx->since);
	jsonw_kv_int(w, "previous_ttl", mx->picture == MX_OURS ? mx->prev_ttl : 0);
	jsonw_kv_int(w, "propagation_time", (int64_t)prop);
	jsonw_kv_string(w, "propagation_time_iso", prop ?
	    switch_format_time(prop, when, sizeof(when)) : NULL);
	jsonw_kv_bool(w, "propagated", prop != 0 && now >= prop);
	jsonw_kv_int(w, "propagation_in", prop > now ? (int64_t)(prop - now) : 0);
	jsonw_object_end(w);
	jsonw_key(w, "legacy_servers");
	jsonw_array_begin(w);
	for (int i = 0; i < r->nlegacy; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "server", r->legacy[i].what);
		json_probe(w, &r->legacy[i], "rejected");
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_key(w, "hosting");
	if (r->hosting_ran) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "destination", check_cfg->hosting_destination);
		jsonw_kv_int(w, "mailboxes", (int64_t)r->nmailboxes);
		json_probe(w, &r->hosting, "missing");
		jsonw_object_end(w);
	} else
		jsonw_null(w);
	control_pilot_json(w, d);
	jsonw_key(w, "queue");
	jsonw_object_begin(w);
	for (int ro = 0; ro < QROUTE_N; ro++) {
		jsonw_key(w, qroute_names[ro]);
		jsonw_object_begin(w);
		for (int st = 0; st < QSTATE_N; st++)
			jsonw_kv_int(w, qstate_names[st], r->queue[ro][st]);
		jsonw_object_end(w);
	}
	jsonw_object_end(w);
	jsonw_kv_int(w, "delivered_legacy_last_hour",
	    queue_legacy_recent(r->domain));
	jsonw_kv_bool(w, "ready", r->nreasons == 0);
	jsonw_key(w, "reasons");
	jsonw_array_begin(w);
	for (int i = 0; i < r->nreasons; i++)
		jsonw_string(w, r->reasons[i]);
	jsonw_array_end(w);
	jsonw_object_end(w);
	jsonw_free(w);
}

static void
human_answer(struct evbuffer *out, const char *label, const struct mxw_answer *a)
{
	evbuffer_add_printf(out, "%-27s ", label);
	for (int i = 0; i < a->nrecs; i++)
		evbuffer_add_printf(out, "%s%d %s (ttl %u, %s)", i ? ", " : "",
		    a->recs[i].pref, a->recs[i].host, a->recs[i].ttl,
		    a->recs[i].ours ? "ours" : "not ours");
	if (a->nrecs == 0)
		evbuffer_add_printf(out, "no MX record (%s)",
		    dns_status_name(a->status));
	evbuffer_add_printf(out, "\n");
}

static void
human_probe(struct evbuffer *out, const struct check_probe *p,
    const char *verb, const char *what)
{
	if (!p->ok) {
		evbuffer_add_printf(out, "not usable: %s\n", p->error);
		return;
	}
	if (p->server[0] == '\0') {
		evbuffer_add_printf(out, "not asked (no %s)\n", what);
		return;
	}
	evbuffer_add_printf(out, "reachable (%s), %s, %zu %s accepted, %zu %s\n",
	    p->server, p->tls[0] ? p->tls : "no TLS", p->naccepted, what,
	    p->nrefused, verb);
	for (size_t i = 0; i < p->nrefused; i++)
		evbuffer_add_printf(out, "  %s: %s\n", p->raddr[i], p->rreply[i]);
}

static void
render_human(struct check_req *r, const struct domain_info *d,
    const struct store_mx *mx)
{
	struct evbuffer *out = r->ctx->out;
	time_t prop = mxwatch_propagation(mx), now = time(NULL);
	char when[SWITCH_TIME_MAX], label[DNS_NAME_MAX + 80];

	evbuffer_add_printf(out, "domain %s: mode %s, %zu addresses\n",
	    r->domain, store_mode_name(d->mode), store_domain_naddresses(d));
	human_answer(out, "MX (resolver):", &r->view.resolver);
	for (int i = 0; i < r->view.nauth; i++) {
		snprintf(label, sizeof(label), "MX (%s [%s]):",
		    r->view.auth[i].server, r->view.auth[i].addr[0] ?
		    r->view.auth[i].addr : "?");
		human_answer(out, label, &r->view.auth[i]);
	}
	if (r->view.nauth == 0)
		evbuffer_add_printf(out, "%-27s no authoritative server found "
		    "(NS: %s)\n", "MX (authoritative):",
		    dns_status_name(r->view.ns_status));
	evbuffer_add_printf(out, "%-27s %s\n", "MX picture:",
	    mx->picture == MX_OURS ? "every record points at us" :
	    mx->picture == MX_MIXED ? "some records point at us, some do not" :
	    mx->picture == MX_OTHER ? "no record points at us" :
	    "unknown (DNS trouble)");
	if (prop == 0)
		evbuffer_add_printf(out, "%-27s not started\n", "propagation:");
	else if (now >= prop)
		evbuffer_add_printf(out, "%-27s %s (first seen %s + previous "
		    "TTL %ld s): passed\n", "propagation:",
		    switch_format_time(prop, when, sizeof(when)),
		    switch_format_time(mx->since, label, sizeof(label)),
		    mx->prev_ttl);
	else
		evbuffer_add_printf(out, "%-27s %s (first seen %s + previous "
		    "TTL %ld s): in %lld s\n", "propagation:",
		    switch_format_time(prop, when, sizeof(when)),
		    switch_format_time(mx->since, label, sizeof(label)),
		    mx->prev_ttl, (long long)(prop - now));
	for (int i = 0; i < r->nlegacy; i++) {
		snprintf(label, sizeof(label), "legacy %s:", r->legacy[i].what);
		evbuffer_add_printf(out, "%-27s ", label);
		human_probe(out, &r->legacy[i], "rejected", "addresses");
	}
	if (r->nlegacy == 0)
		evbuffer_add_printf(out, "%-27s none\n", "legacy servers:");
	if (r->hosting_ran) {
		snprintf(label, sizeof(label), "hosting %s:",
		    check_cfg->hosting_destination);
		evbuffer_add_printf(out, "%-27s ", label);
		human_probe(out, &r->hosting, "missing", "mailboxes");
	} else
		evbuffer_add_printf(out, "%-27s not set (hosting.destination)\n",
		    "hosting:");
	control_pilot_human(out, d);
	for (int ro = 0; ro < QROUTE_N; ro++) {
		int tot = 0;
		for (int st = 0; st < QSTATE_N; st++)
			tot += r->queue[ro][st];
		if (tot == 0 && ro == QROUTE_NONE)
			continue;
		snprintf(label, sizeof(label), "queue (%s route):",
		    qroute_names[ro]);
		evbuffer_add_printf(out, "%-27s %d queued, %d deferred, %d active\n",
		    label, r->queue[ro][QSTATE_QUEUED],
		    r->queue[ro][QSTATE_DEFERRED], r->queue[ro][QSTATE_ACTIVE]);
	}
	evbuffer_add_printf(out, "%-27s %d\n", "legacy deliveries, 1 h:",
	    queue_legacy_recent(r->domain));
	if (r->nreasons == 0) {
		evbuffer_add_printf(out, "ready to switch\n");
		return;
	}
	evbuffer_add_printf(out, "not ready: ");
	for (int i = 0; i < r->nreasons; i++)
		evbuffer_add_printf(out, "%s%s", i ? "; " : "", r->reasons[i]);
	evbuffer_add_printf(out, "\n");
}

/* check_finish - every part is in: the reasons, the report */
static void
check_finish(struct check_req *r)
{
	const struct domain_info *d = store_domain(r->domain);
	const struct store_mx *mx;
	char why[CHECK_REASON_MAX];

	if (d == NULL) {
		control_fail(r->ctx, CTL_REFUSED, "domain %s: not found", r->domain);
		req_free(r);
		return;
	}
	mx = store_domain_mx(d);
	if (mxwatch_gate(r->domain, mx, time(NULL), why, sizeof(why)) == -1)
		reason_add(r, "%s", why);
	if (!r->hosting_ran)
		reason_add(r, "hosting.destination is not set");
	else if (!r->hosting.ok)
		reason_add(r, "the hosting cannot be used: %s", r->hosting.error);
	else if (r->hosting.nrefused > 0)
		reason_add(r, "%zu mailbox%s missing at the hosting",
		    r->hosting.nrefused, r->hosting.nrefused == 1 ? "" : "es");
	for (int i = 0; i < r->nlegacy; i++)
		if (r->legacy[i].ok && r->legacy[i].nrefused > 0)
			reason_add(r, "%zu table address%s rejected by the legacy "
			    "server %s (typos in the import?)",
			    r->legacy[i].nrefused, r->legacy[i].nrefused == 1 ?
			    "" : "es", r->legacy[i].what);
	queue_count(r);
	if (r->ctx->json)
		render_json(r, d, mx);
	else
		render_human(r, d, mx);
	control_reply(r->ctx, r->nreasons == 0 ? CTL_OK : CTL_REFUSED);
	req_free(r);
}

static void
part_done(struct check_req *r)
{
	if (--r->pending == 0)
		check_finish(r);
}

static void
look_done(const struct mxw_view *v, void *arg)
{
	struct check_req *r = arg;

	r->view = *v;
	r->looked = 1;
	part_done(r);
}

static void
probe_done(const struct probe_result *pr, void *arg)
{
	struct check_probe *p = arg;

	p->probe = NULL;
	p->ok = pr->ok;
	mx_strlcpy(p->error, pr->error, sizeof(p->error));
	mx_strlcpy(p->server, pr->server, sizeof(p->server));
	mx_strlcpy(p->tls, pr->tls, sizeof(p->tls));
	p->naccepted = pr->naccepted;
	p->nrefused = pr->ok ? pr->nrefused : 0;
	p->raddr = xcalloc(p->nrefused + 1, sizeof(char *));
	p->rreply = xcalloc(p->nrefused + 1, sizeof(char *));
	for (size_t i = 0; i < p->nrefused; i++) {
		p->raddr[i] = xstrdup(pr->refused[i].addr);
		p->rreply[i] = xstrdup(pr->refused[i].reply);
	}
	part_done(p->req);
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
cmd_check(struct ctl_ctx *ctx)
{
	const struct domain_info *d;
	struct check_req *r;
	struct route rt;
	char **addrs, **mb;

	r = xcalloc(1, sizeof(*r));
	r->ctx = ctx;
	if (mx_strlcpy(r->domain, ctx->args.pos[0], sizeof(r->domain)) >=
	    sizeof(r->domain) || !import_domain_valid(r->domain)) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name",
		    ctx->args.pos[0]);
		free(r);
		return;
	}
	mx_lower(r->domain);
	if ((d = store_domain(r->domain)) == NULL) {
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", r->domain);
		free(r);
		return;
	}
	/* every part is started before any can answer (all answer from the
	 * loop), so pending only reaches 0 once */
	r->pending = 1;
	mxwatch_look(r->domain, look_done, r);
	r->naddrs = store_domain_addresses(d, &addrs);
	for (int i = 0; i < d->nservers && i < STORE_MAX_SERVERS; i++) {
		struct check_probe *p = &r->legacy[r->nlegacy++];

		p->req = r;
		store_server_format(&d->servers[i], p->what, sizeof(p->what));
		route_for_server(&d->servers[i], &rt);
		r->pending++;
		p->probe = probe_start_route(check_base, &rt, addrs, r->naddrs,
		    probe_done, p);
	}
	free_list(addrs, r->naddrs);
	if (check_cfg->hosting_destination != NULL) {
		r->hosting_ran = 1;
		r->hosting.req = r;
		r->nmailboxes = store_domain_mailboxes(d, MODE_HOSTED, &mb);
		r->pending++;
		r->hosting.probe = probe_start(check_base, mb, r->nmailboxes,
		    probe_done, &r->hosting);
		free_list(mb, r->nmailboxes);
	}
}
