/* control_switch.c - relayctl switch and relayctl history
 *
 *   switch DOMAIN hosted|legacy [--force] [--wait]   now (switch_run)
 *   switch DOMAIN hosted|legacy [--force] --at TIME  later (switch_schedule)
 *   switch DOMAIN --cancel                           drop the scheduled one
 *   history DOMAIN                                   every switch
 *
 * The answer to an immediate switch goes out once the switch is durable
 * and in force; with --wait it is held until no delivery to the old route
 * is in flight (the body has both lines, the count first).
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control_pilot.h"
#include "control_switch.h"
#include "fleet.h"
#include "jsonw.h"
#include "log.h"
#include "smtp_parse.h"
#include "store.h"
#include "switch.h"
#include "table_import.h"
#include "util.h"

struct switch_req {
	struct ctl_ctx *ctx;
	int wait;
	char domain[SMTP_DOMAIN_MAX + 1];
	enum domain_mode from, to;
	int changed, preflight, force;
	int inflight, left;
	uint64_t elapsed_us, waited_us;
	int waited;
	struct store_sched sched, prev;	/* --at, and the one it replaces */
	int had_prev;
	struct fleet_answer hosts[FLEET_HOSTS_MAX];	/* the other hosts */
	size_t nhosts;
	long long version;		/* the switch's change_log id */
	struct fleet_answer drained[FLEET_HOSTS_MAX];	/* --wait, a fleet */
	size_t ndrained;
	uint64_t t_fleet;
};

/* arg_switch_domain - a valid domain name that exists; NULL after
 * answering otherwise */
static const struct domain_info *
arg_switch_domain(struct ctl_ctx *ctx, char *out, size_t len)
{
	const char *arg = ctx->args.pos[0];
	const struct domain_info *d;

	if (mx_strlcpy(out, arg, len) >= len || !import_domain_valid(out)) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name", arg);
		return NULL;
	}
	mx_lower(out);
	if ((d = store_domain(out)) == NULL)
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", out);
	return d;
}

static void
req_free(struct switch_req *r)
{
	free(r);
}

/* Immediate switch */

/* json_answers - the other hosts' answers to a switch: yes (ok) or
 * "lease expired" */
static void
json_answers(struct jsonw *w, const char *key, const struct fleet_answer *a,
    size_t n, const char *ok)
{
	jsonw_key(w, key);
	jsonw_array_begin(w);
	for (size_t i = 0; i < n; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "host", a[i].name);
		jsonw_kv_string(w, "answer", a[i].applied ? ok : "lease expired");
		jsonw_kv_int(w, "ms", (int64_t)a[i].ms);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
}

static void
render_done(struct switch_req *r)
{
	struct ctl_ctx *ctx = r->ctx;
	struct jsonw *w;

	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", r->domain);
		jsonw_kv_string(w, "from", store_mode_name(r->from));
		jsonw_kv_string(w, "to", store_mode_name(r->to));
		jsonw_kv_bool(w, "changed", r->changed);
		jsonw_kv_string(w, "preflight", r->preflight ? "passed" :
		    !r->changed ? "not needed" : r->force ? "skipped (--force)" :
		    "not needed");
		jsonw_kv_int(w, "inflight", r->inflight);
		if (store_domain(r->domain))
			control_pilot_json(w, store_domain(r->domain));
		jsonw_kv_int(w, "elapsed_us", (int64_t)r->elapsed_us);
		if (fleet_enabled())
			json_answers(w, "hosts", r->hosts, r->nhosts, "applied");
		if (r->wait) {
			jsonw_kv_bool(w, "waited", r->waited);
			jsonw_kv_int(w, "inflight_left", r->left);
			jsonw_kv_int(w, "waited_us", (int64_t)r->waited_us);
		}
		if (r->wait && fleet_enabled())
			json_answers(w, "drained", r->drained, r->ndrained,
			    "drained");
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (r->wait && r->changed) {
		if (r->left == 0)
			evbuffer_add_printf(ctx->out, "%s: none left in flight to "
			    "the old route (waited %.1f s)\n", r->domain,
			    (double)r->waited_us / 1e6);
		else
			evbuffer_add_printf(ctx->out, "%s: the daemon is stopping; "
			    "%d deliveries still in flight to the old route\n",
			    r->domain, r->left);
		for (size_t i = 0; i < r->ndrained; i++)
			evbuffer_add_printf(ctx->out, "  %s %s\n",
			    r->drained[i].name, r->drained[i].applied ?
			    "none left in flight" : "lease expired, delivers "
			    "nothing until it caught up");
	}
	control_reply(ctx, CTL_OK);
	req_free(r);
}

/* fleet_drained - every other live host's deliveries to the old route
 * are over too (or its lease expired) */
static void
fleet_drained(const struct fleet_answer *a, size_t n, void *arg)
{
	struct switch_req *r = arg;

	r->ndrained = n < FLEET_HOSTS_MAX ? n : FLEET_HOSTS_MAX;
	if (r->ndrained > 0)
		memcpy(r->drained, a, r->ndrained * sizeof(r->drained[0]));
	r->waited_us += mx_mono_us() - r->t_fleet;
	render_done(r);
}

/* wait_fleet - --wait in a fleet: this host has drained, now the others */
static void
wait_fleet(struct switch_req *r)
{
	if (r->wait && r->changed && r->left == 0 && fleet_enabled() &&
	    r->version > 0) {
		r->t_fleet = mx_mono_us();
		fleet_await(r->version, 1, fleet_drained, r);
		return;
	}
	render_done(r);
}

static void
wait_done(int left, uint64_t waited_us, void *arg)
{
	struct switch_req *r = arg;

	r->waited = 1;
	r->left = left;
	r->waited_us = waited_us;
	wait_fleet(r);
}

/* render_refused - the refusal and, from the preflight, every address
 * the hosting did not accept */
static void
render_refused(struct switch_req *r, const struct switch_outcome *oc)
{
	struct ctl_ctx *ctx = r->ctx;
	const struct probe_result *pr = oc->probe;
	struct jsonw *w;

	if (!ctx->json) {
		evbuffer_add_printf(ctx->out, "switch %s %s refused: %s\n",
		    r->domain, store_mode_name(r->to), oc->msg);
		for (size_t i = 0; pr && pr->ok && i < pr->nrefused; i++)
			evbuffer_add_printf(ctx->out, "  %s: %s\n",
			    pr->refused[i].addr, pr->refused[i].reply);
		if (pr)
			evbuffer_add_printf(ctx->out, "nothing was changed; "
			    "--force switches anyway\n");
		control_reply(ctx, CTL_REFUSED);
		return;
	}
	w = jsonw_new(ctx->out);
	jsonw_object_begin(w);
	jsonw_kv_string(w, "error", oc->msg);
	jsonw_kv_int(w, "status", CTL_REFUSED);
	jsonw_kv_string(w, "domain", r->domain);
	jsonw_kv_string(w, "to", store_mode_name(r->to));
	if (pr) {
		jsonw_kv_string(w, "hosting", pr->server);
		jsonw_kv_int(w, "accepted", (int64_t)pr->naccepted);
		jsonw_key(w, "missing");
		jsonw_array_begin(w);
		for (size_t i = 0; pr->ok && i < pr->nrefused; i++) {
			jsonw_object_begin(w);
			jsonw_kv_string(w, "address", pr->refused[i].addr);
			jsonw_kv_string(w, "reply", pr->refused[i].reply);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
	}
	jsonw_object_end(w);
	jsonw_free(w);
	control_reply(ctx, CTL_REFUSED);
}

static void
run_done(const struct switch_outcome *oc, void *arg)
{
	struct switch_req *r = arg;

	if (oc->status != 0) {
		render_refused(r, oc);
		req_free(r);
		return;
	}
	r->from = oc->from;
	r->changed = oc->changed;
	r->preflight = oc->preflight;
	r->inflight = oc->inflight;
	r->elapsed_us = oc->elapsed_us;
	r->version = oc->version;
	r->nhosts = oc->nhosts < FLEET_HOSTS_MAX ? oc->nhosts : FLEET_HOSTS_MAX;
	if (r->nhosts > 0)
		memcpy(r->hosts, oc->hosts, r->nhosts * sizeof(r->hosts[0]));
	if (!r->ctx->json) {
		if (!r->changed)
			evbuffer_add_printf(r->ctx->out, "%s: already %s, nothing "
			    "to do\n", r->domain, store_mode_name(r->to));
		else
			evbuffer_add_printf(r->ctx->out, "%s: %s -> %s (%d "
			    "deliver%s in flight to the old route)\n", r->domain,
			    store_mode_name(r->from), store_mode_name(r->to),
			    r->inflight, r->inflight == 1 ? "y" : "ies");
		/* a fleet: how every other live host answered */
		for (size_t i = 0; i < r->nhosts; i++)
			if (r->hosts[i].applied)
				evbuffer_add_printf(r->ctx->out, "  %s applied "
				    "%.0f ms\n", r->hosts[i].name, r->hosts[i].ms);
			else
				evbuffer_add_printf(r->ctx->out, "  %s lease "
				    "expired, will catch up before delivering\n",
				    r->hosts[i].name);
		if (store_domain(r->domain) &&
		    control_pilot_human(r->ctx->out, store_domain(r->domain)) > 0)
			evbuffer_add_printf(r->ctx->out, "note: the switch "
			    "leaves the pilot addresses above on their own route "
			    "(relayctl address set ADDRESS --route domain)\n");
	}
	if (r->wait && r->changed && r->inflight > 0 &&
	    switch_wait_start(oc->old, wait_done, r) != NULL)
		return;
	if (r->wait && r->changed && r->inflight == 0) {
		r->waited = 1;
		r->left = 0;
	}
	wait_fleet(r);
}

/* Scheduling */

static void
sched_done(struct store_result *res, void *arg)
{
	struct switch_req *r = arg;
	struct ctl_ctx *ctx = r->ctx;
	char when[SWITCH_TIME_MAX], prev[SWITCH_TIME_MAX];
	struct jsonw *w;

	if (res->status != 0) {
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
		req_free(r);
		return;
	}
	switch_format_time(r->sched.at, when, sizeof(when));
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", r->domain);
		jsonw_kv_string(w, "to", store_mode_name(r->sched.mode));
		jsonw_kv_int(w, "at", (int64_t)r->sched.at);
		jsonw_kv_string(w, "at_iso", when);
		jsonw_kv_bool(w, "force", r->sched.force);
		jsonw_kv_bool(w, "replaced", r->had_prev);
		jsonw_object_end(w);
		jsonw_free(w);
	} else {
		evbuffer_add_printf(ctx->out, "%s: switch to %s scheduled for %s%s",
		    r->domain, store_mode_name(r->sched.mode), when,
		    r->sched.force ? " (--force)" : "");
		if (r->had_prev)
			evbuffer_add_printf(ctx->out, "; replaces the switch to %s "
			    "at %s", store_mode_name(r->prev.mode),
			    switch_format_time(r->prev.at, prev, sizeof(prev)));
		evbuffer_add_printf(ctx->out, "\n");
	}
	control_reply(ctx, CTL_OK);
	req_free(r);
}

static void
cancel_done(struct store_result *res, void *arg)
{
	struct switch_req *r = arg;
	struct ctl_ctx *ctx = r->ctx;
	char when[SWITCH_TIME_MAX];
	struct jsonw *w;

	if (res->status != 0) {
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
		req_free(r);
		return;
	}
	switch_format_time(r->prev.at, when, sizeof(when));
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", r->domain);
		jsonw_kv_bool(w, "cancelled", 1);
		jsonw_kv_string(w, "to", store_mode_name(r->prev.mode));
		jsonw_kv_int(w, "at", (int64_t)r->prev.at);
		jsonw_kv_string(w, "at_iso", when);
		jsonw_object_end(w);
		jsonw_free(w);
	} else
		evbuffer_add_printf(ctx->out, "%s: scheduled switch to %s at %s "
		    "cancelled\n", r->domain, store_mode_name(r->prev.mode), when);
	control_reply(ctx, CTL_OK);
	req_free(r);
}

/* switch_cancel_cmd - switch DOMAIN --cancel */
static void
switch_cancel_cmd(struct switch_req *r, const struct domain_info *d)
{
	const struct store_sched *sc = store_domain_sched(d);

	if (r->ctx->args.npos != 1 || r->ctx->args.nopt != 1) {
		control_fail(r->ctx, CTL_USAGE, "switch: --cancel takes no mode "
		    "and no other option; usage: relayctl switch DOMAIN --cancel");
		req_free(r);
		return;
	}
	if (sc == NULL) {
		control_fail(r->ctx, CTL_REFUSED, "%s: no scheduled switch",
		    r->domain);
		req_free(r);
		return;
	}
	r->prev = *sc;
	switch_cancel(r->domain, cancel_done, r);
}

/* switch_at_cmd - switch DOMAIN MODE --at TIME */
static void
switch_at_cmd(struct switch_req *r, const struct domain_info *d,
    const char *at)
{
	struct ctl_ctx *ctx = r->ctx;
	const struct store_sched *sc = store_domain_sched(d);
	char err[256];
	time_t t;

	if (r->wait) {
		control_fail(ctx, CTL_USAGE, "switch: --wait cannot be used "
		    "with --at");
		req_free(r);
		return;
	}
	if (switch_parse_time(at, &t, err, sizeof(err)) == -1) {
		control_fail(ctx, CTL_USAGE, "switch: %s", err);
		req_free(r);
		return;
	}
	if (t <= time(NULL)) {
		control_fail(ctx, CTL_USAGE, "switch: --at %.64s is not in the "
		    "future", at);
		req_free(r);
		return;
	}
	if (sc) {
		r->had_prev = 1;
		r->prev = *sc;
	}
	r->sched.at = t;
	r->sched.mode = r->to;
	r->sched.uid = ctx->uid;
	r->sched.force = r->force;
	r->sched.created = time(NULL);
	switch_schedule(r->domain, &r->sched, sched_done, r);
}

void
cmd_switch(struct ctl_ctx *ctx)
{
	struct switch_req *r = xcalloc(1, sizeof(*r));
	const struct domain_info *d;
	const char *mode, *at;

	r->ctx = ctx;
	if ((d = arg_switch_domain(ctx, r->domain, sizeof(r->domain))) == NULL) {
		req_free(r);
		return;
	}
	if (ctl_args_has(&ctx->args, "--cancel")) {
		switch_cancel_cmd(r, d);
		return;
	}
	mode = ctx->args.npos > 1 ? ctx->args.pos[1] : NULL;
	if (mode == NULL || (strcmp(mode, "hosted") != 0 &&
	    strcmp(mode, "legacy") != 0)) {
		control_fail(ctx, CTL_USAGE, "switch: the mode must be hosted or "
		    "legacy; usage: relayctl %s", ctx->spec->usage);
		req_free(r);
		return;
	}
	r->to = strcmp(mode, "hosted") == 0 ? MODE_HOSTED : MODE_LEGACY;
	r->force = ctl_args_has(&ctx->args, "--force");
	r->wait = ctl_args_has(&ctx->args, "--wait");
	if ((at = ctl_args_get(&ctx->args, "--at")) != NULL) {
		switch_at_cmd(r, d, at);
		return;
	}
	switch_run(r->domain, r->to, ctx->uid, r->force, run_done, r);
}

/* history */

struct history_req {
	struct ctl_ctx *ctx;
	int has_sched;
	struct store_sched sched;
};

/* history_from, history_to - a domain's modes, or a pilot's routes */
static const char *
history_from(const struct store_switch_rec *r)
{
	return r->event != STORE_EV_SWITCH ? r->from_text :
	    store_mode_name(r->from);
}

static const char *
history_to(const struct store_switch_rec *r)
{
	return r->event != STORE_EV_SWITCH ? r->to_text :
	    store_mode_name(r->to);
}

static const char *const event_names[] = { "switch", "route", "mx" };

static void
history_json(struct history_req *h, const char *domain,
    const struct store_switch_rec *rows, size_t n, struct evbuffer *out)
{
	char when[SWITCH_TIME_MAX];
	struct jsonw *w = jsonw_new(out);

	jsonw_object_begin(w);
	jsonw_kv_string(w, "domain", domain);
	jsonw_key(w, "history");
	jsonw_array_begin(w);
	for (size_t i = 0; i < n; i++) {
		jsonw_object_begin(w);
		jsonw_kv_int(w, "time", (int64_t)rows[i].time);
		jsonw_kv_string(w, "time_iso", switch_format_time(rows[i].time,
		    when, sizeof(when)));
		jsonw_kv_string(w, "from", history_from(&rows[i]));
		jsonw_kv_string(w, "to", history_to(&rows[i]));
		jsonw_kv_string(w, "event", event_names[rows[i].event]);
		jsonw_kv_string(w, "address", rows[i].address);
		jsonw_kv_int(w, "uid", (int64_t)rows[i].uid);
		jsonw_kv_bool(w, "applied", rows[i].applied);
		jsonw_kv_string(w, "note", rows[i].note);
		jsonw_kv_string(w, "host", rows[i].host);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_key(w, "scheduled");
	if (h->has_sched) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "to", store_mode_name(h->sched.mode));
		jsonw_kv_int(w, "at", (int64_t)h->sched.at);
		jsonw_kv_string(w, "at_iso", switch_format_time(h->sched.at,
		    when, sizeof(when)));
		jsonw_kv_int(w, "uid", (int64_t)h->sched.uid);
		jsonw_kv_bool(w, "force", h->sched.force);
		jsonw_object_end(w);
	} else
		jsonw_null(w);
	jsonw_object_end(w);
	jsonw_free(w);
}

/* render_history - worker thread: one line per switch, oldest first */
static void
render_history(const char *domain, const struct store_switch_rec *rows,
    size_t n, struct evbuffer *out, void *arg)
{
	struct history_req *h = arg;
	char when[SWITCH_TIME_MAX];

	if (h->ctx->json) {
		history_json(h, domain, rows, n, out);
		return;
	}
	if (n == 0)
		evbuffer_add_printf(out, "%s: no switch yet\n", domain);
	else
		evbuffer_add_printf(out, "%-25s  %-6s  %-6s  %-6s  %s\n", "TIME",
		    "FROM", "TO", "UID", "NOTE");
	/* the host that wrote the row ends it (older rows have none) */
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%-25s  %-6s  %-6s  %-6u  %s%s%s%s%s%s%s%s\n",
		    switch_format_time(rows[i].time, when, sizeof(when)),
		    history_from(&rows[i]), history_to(&rows[i]),
		    (unsigned)rows[i].uid, rows[i].applied ? "" : "NOT APPLIED: ",
		    rows[i].address ? "address " : rows[i].event == STORE_EV_MX ?
		    "MX: " : "", rows[i].address ? rows[i].address : "",
		    rows[i].address ? " route: " : "", rows[i].note,
		    *rows[i].host ? " (on " : "", rows[i].host,
		    *rows[i].host ? ")" : "");
	if (h->has_sched)
		evbuffer_add_printf(out, "scheduled: switch to %s at %s (uid %u%s)\n",
		    store_mode_name(h->sched.mode), switch_format_time(h->sched.at,
		    when, sizeof(when)), (unsigned)h->sched.uid,
		    h->sched.force ? ", --force" : "");
}

static void
history_done(struct store_result *res, void *arg)
{
	struct history_req *h = arg;

	if (res->status != 0)
		control_fail(h->ctx, CTL_REFUSED, "%s", res->msg);
	else {
		evbuffer_add_buffer(h->ctx->out, res->body);
		control_reply(h->ctx, CTL_OK);
	}
	free(h);
}

void
cmd_history(struct ctl_ctx *ctx)
{
	struct history_req *h;
	const struct domain_info *d;
	const struct store_sched *sc;
	char name[SMTP_DOMAIN_MAX + 1];
	const char *arg = ctx->args.pos[0];

	if (mx_strlcpy(name, arg, sizeof(name)) >= sizeof(name) ||
	    !import_domain_valid(name)) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name", arg);
		return;
	}
	mx_lower(name);
	h = xcalloc(1, sizeof(*h));
	h->ctx = ctx;
	/* a removed domain still has its history (an audit trail) */
	if ((d = store_domain(name)) != NULL && (sc = store_domain_sched(d)) != NULL) {
		h->has_sched = 1;
		h->sched = *sc;
	}
	store_history_scan(name, render_history, h, history_done, h);
}
