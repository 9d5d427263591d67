/* control_pilot.c - relayctl address set ADDRESS --route (SPEC 10)
 *
 * A pilot address is routed by its own mode instead of its domain's: one
 * person moves to the hosting first, or one mailbox stays behind at the
 * old server. The override is checked as the switch checks a domain
 * (probe.h): before mail of a mailbox goes to the hosting, the hosting
 * must accept it at RCPT; before it goes to the old server, the domain
 * needs one. --force skips that. Then the override and its history row
 * are one store write, and the domain's deferred mail is made due at once
 * (routes are computed at each attempt, so nothing else changes).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_pilot.h"
#include "jsonw.h"
#include "log.h"
#include "probe.h"
#include "queue.h"
#include "store.h"
#include "table_import.h"
#include "util.h"

struct pilot_req {
	struct ctl_ctx *ctx;
	struct event_base *base;
	char addr[IMPORT_ADDR_MAX + 1];
	enum addr_route route;
	int force, preflight;
	struct probe *probe;
};

static struct event_base *pilot_base;

void
control_pilot_init(struct event_base *base)
{
	pilot_base = base;
}

void
control_pilot_json(struct jsonw *w, const struct domain_info *d)
{
	struct store_override *o;
	size_t n = store_domain_overrides(d, &o);

	jsonw_key(w, "overrides");
	jsonw_array_begin(w);
	for (size_t i = 0; i < n; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "address", o[i].address);
		jsonw_kv_string(w, "route", store_route_name(o[i].route));
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	store_overrides_free(o, n);
}

size_t
control_pilot_human(struct evbuffer *out, const struct domain_info *d)
{
	struct store_override *o;
	size_t n = store_domain_overrides(d, &o);

	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%-17s%s -> %s\n", i ? "" :
		    "pilot addresses:", o[i].address, store_route_name(o[i].route));
	store_overrides_free(o, n);
	return n;
}

/* pilot_entry - the table entry of the request's (canonical) address,
 * or NULL */
static const struct addr_info *
pilot_entry(const char *addr, const struct domain_info **d)
{
	const char *at = strrchr(addr, '@');

	*d = at ? store_domain(at + 1) : NULL;
	return *d ? store_address(addr, '\0') : NULL;
}

static const char *
mode_where(enum domain_mode m)
{
	return m == MODE_HOSTED ? "the hosting" : "the legacy servers";
}

static void
set_done(struct store_result *res, void *arg)
{
	struct pilot_req *r = arg;
	struct ctl_ctx *ctx = r->ctx;
	const struct domain_info *d;
	const struct addr_info *a = pilot_entry(r->addr, &d);
	struct jsonw *w;

	if (res->status != 0 || a == NULL) {
		control_fail(ctx, CTL_REFUSED, "%s", res->status ? res->msg :
		    "address removed meanwhile");
		free(r);
		return;
	}
	if (res->outcome == STORE_UPDATED) {
		log_info("pilot address=%s route=%s from=%s uid=%u preflight=%s",
		    r->addr, store_route_name(r->route),
		    store_route_name(res->from_route), (unsigned)ctx->uid,
		    r->preflight ? "passed" : r->force ? "forced" : "none");
		queue_make_due(d->name);
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "address", r->addr);
		jsonw_kv_string(w, "route", store_route_name(r->route));
		jsonw_kv_string(w, "from", store_route_name(res->from_route));
		jsonw_kv_bool(w, "changed", res->outcome == STORE_UPDATED);
		jsonw_kv_string(w, "domain_mode", store_mode_name(d->mode));
		jsonw_kv_string(w, "routed", store_mode_name(store_address_mode(d, a)));
		jsonw_kv_string(w, "preflight", r->preflight ? "passed" :
		    r->force ? "skipped (--force)" : "not needed");
		jsonw_object_end(w);
		jsonw_free(w);
	} else
		evbuffer_add_printf(ctx->out, "address %s: route %s%s%s%s "
		    "(domain %s is %s): its mail goes to %s\n", r->addr,
		    store_route_name(r->route),
		    res->outcome == STORE_UPDATED ? " (was " : ", unchanged",
		    res->outcome == STORE_UPDATED ?
		    store_route_name(res->from_route) : "",
		    res->outcome == STORE_UPDATED ? ")" : "", d->name,
		    store_mode_name(d->mode),
		    mode_where(store_address_mode(d, a)));
	control_reply(ctx, CTL_OK);
	free(r);
}

static void
pilot_commit(struct pilot_req *r)
{
	store_address_set_route(r->addr, r->route, r->ctx->uid, r->force ?
	    "relayctl address set --force" : "relayctl address set", set_done, r);
}

static void
probe_done(const struct probe_result *pr, void *arg)
{
	struct pilot_req *r = arg;
	struct ctl_ctx *ctx = r->ctx;
	struct jsonw *w;

	r->probe = NULL;
	if (pr->ok && pr->nrefused == 0) {
		r->preflight = 1;
		pilot_commit(r);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "error", pr->ok ? "preflight: the hosting "
		    "does not accept the mailbox" : pr->error);
		jsonw_kv_int(w, "status", CTL_REFUSED);
		jsonw_kv_string(w, "address", r->addr);
		jsonw_kv_string(w, "hosting", pr->server);
		jsonw_kv_string(w, "reply", pr->ok ? pr->refused[0].reply : "");
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (pr->ok)
		evbuffer_add_printf(ctx->out, "address set %s --route hosted "
		    "refused: preflight: the hosting (%s) does not accept the "
		    "mailbox\n  %s: %s\nnothing was changed; --force sets it "
		    "anyway\n", r->addr, pr->server, pr->refused[0].addr,
		    pr->refused[0].reply);
	else
		evbuffer_add_printf(ctx->out, "address set %s --route hosted "
		    "refused: preflight: the hosting cannot be used: %s\n"
		    "nothing was changed; --force sets it anyway\n", r->addr,
		    pr->error);
	control_reply(ctx, CTL_REFUSED);
	free(r);
}

/* pilot_preflight - SPEC 7's checks for one address; 1 when a probe was
 * started (r continues in probe_done), 0 to go on, -1 refused */
static int
pilot_preflight(struct pilot_req *r, const struct domain_info *d,
    const struct addr_info *a)
{
	enum domain_mode now = store_address_mode(d, a), next;
	struct addr_info t = *a;
	char *addrs[1];

	t.route = r->route;
	next = store_address_mode(d, &t);
	if (r->force || next == now)
		return 0;
	if (next == MODE_LEGACY) {
		if (d->nservers > 0)
			return 0;
		control_fail(r->ctx, CTL_REFUSED, "address set %s --route %s "
		    "refused: preflight: domain %s has no legacy server", r->addr,
		    store_route_name(r->route), d->name);
		return -1;
	}
	/* an alias has no mailbox to probe: its mailboxes are checked as
	 * themselves */
	if (a->kind != ADDR_MAILBOX)
		return 0;
	addrs[0] = r->addr;
	r->probe = probe_start(r->base, addrs, 1, probe_done, r);
	return 1;
}

void
cmd_address_set(struct ctl_ctx *ctx)
{
	const char *route = ctl_args_get(&ctx->args, "--route");
	const struct domain_info *d;
	const struct addr_info *a;
	struct pilot_req *r;
	char why[IMPORT_WHY_MAX];
	int rc;

	if (route == NULL) {
		control_fail(ctx, CTL_USAGE, "address set: nothing to set; usage: "
		    "relayctl %s", ctx->spec->usage);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->ctx = ctx;
	r->base = pilot_base;
	r->force = ctl_args_has(&ctx->args, "--force");
	if (store_route_parse(route, &r->route) == -1) {
		control_fail(ctx, CTL_USAGE, "--route %.100s: expected hosted, "
		    "legacy or domain", route);
		free(r);
		return;
	}
	if (strchr(ctx->args.pos[0], '@') == NULL ||
	    import_norm_address(ctx->args.pos[0], strlen(ctx->args.pos[0]),
	    NULL, r->addr, sizeof(r->addr), why, sizeof(why)) == -1) {
		control_fail(ctx, CTL_USAGE, "address %.300s: invalid address",
		    ctx->args.pos[0]);
		free(r);
		return;
	}
	if ((a = pilot_entry(r->addr, &d)) == NULL) {
		control_fail(ctx, CTL_REFUSED, "address %s: not found (a pilot "
		    "address must be in the table)", r->addr);
		free(r);
		return;
	}
	if ((rc = pilot_preflight(r, d, a)) < 0)
		free(r);
	else if (rc == 0)
		pilot_commit(r);
}
