/* control_cutover.c - the cutover safety net in relayctl (SPEC 10)
 *
 * domain set --hold on|off (no delivery attempt starts for the domain;
 * its mail queues, held time does not count toward the lifetime, and the
 * release makes everything due at once), --max-lifetime SECONDS|default
 * (the domain's own queue lifetime, queued mail included) and --unknown
 * reject|tempfail (550 5.1.1 or 450 4.1.1 to an address not in the
 * table); the unknown-recipient report (refused.h) as address list DOMAIN
 * --refused and in check.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control_cutover.h"
#include "log.h"
#include "probe.h"
#include "queue.h"
#include "refused.h"
#include "switch.h"
#include "table_import.h"
#include "util.h"

/* on_off - "on" 1, "off" 0, else -1 */
static int
on_off(const char *v)
{
	return strcmp(v, "on") == 0 ? 1 : strcmp(v, "off") == 0 ? 0 : -1;
}

int
control_cutover_args(struct ctl_ctx *ctx, struct store_settings *s)
{
	const char *dual = ctl_args_get(&ctx->args, "--dual");
	const char *hold = ctl_args_get(&ctx->args, "--hold");
	const char *life = ctl_args_get(&ctx->args, "--max-lifetime");
	const char *unk = ctl_args_get(&ctx->args, "--unknown");
	char *end;
	long v;

	memset(s, 0, sizeof(*s));
	if (dual) {
		if ((s->dual = on_off(dual)) < 0) {
			control_fail(ctx, CTL_USAGE, "--dual %.100s: expected on "
			    "or off", dual);
			return -1;
		}
		s->set |= STORE_SET_DUAL;
	}
	if (hold) {
		if ((s->hold = on_off(hold)) < 0) {
			control_fail(ctx, CTL_USAGE, "--hold %.100s: expected on "
			    "or off", hold);
			return -1;
		}
		s->set |= STORE_SET_HOLD;
	}
	if (life) {
		errno = 0;
		v = strcmp(life, "default") == 0 ? 0 : strtol(life, &end, 10);
		if (v == 0 && strcmp(life, "default") != 0)
			v = -1;
		else if (v != 0 && (errno || *end != '\0'))
			v = -1;
		if (v < 0 || v > STORE_LIFETIME_MAX) {
			control_fail(ctx, CTL_USAGE, "--max-lifetime %.100s: "
			    "expected seconds (1 to %d) or default", life,
			    STORE_LIFETIME_MAX);
			return -1;
		}
		s->max_lifetime = (int)v;
		s->set |= STORE_SET_MAX_LIFETIME;
	}
	if (unk) {
		if (strcmp(unk, "reject") == 0)
			s->unknown = UNKNOWN_REJECT;
		else if (strcmp(unk, "tempfail") == 0)
			s->unknown = UNKNOWN_TEMPFAIL;
		else {
			control_fail(ctx, CTL_USAGE, "--unknown %.100s: expected "
			    "reject or tempfail", unk);
			return -1;
		}
		s->set |= STORE_SET_UNKNOWN;
	}
	return 0;
}

struct cutover_set {
	struct ctl_ctx *ctx;
	store_done_fn done;
	char domain[SMTP_DOMAIN_MAX + 1];
	struct store_settings s;
};

static struct event_base *cutover_base;

void
control_cutover_init(struct event_base *base)
{
	cutover_base = base;
}

/* set_done - committed; a released domain's mail is due at once, and so
 * is a domain's with dual delivery turned on (its copies are made at the
 * next attempt) */
static void
set_done(struct store_result *res, void *arg)
{
	struct cutover_set *cs = arg;
	int n;

	if (res->status == 0 && (cs->s.set & STORE_SET_HOLD) && !cs->s.hold &&
	    (n = queue_release_domain(cs->domain)) >= 0)
		log_info("domain %s released recipients=%d", cs->domain, n);
	if (res->status == 0 && (cs->s.set & STORE_SET_DUAL) && cs->s.dual)
		queue_make_due(cs->domain);
	cs->done(res, cs->ctx);
	free(cs);
}

/* preflight_done - the hosting's answer about the domain's mailboxes */
static void
preflight_done(const struct probe_result *pr, void *arg)
{
	struct cutover_set *cs = arg;
	struct evbuffer *why;

	if (pr->ok && pr->nrefused == 0) {
		store_domain_settings(cs->domain, &cs->s, cs->ctx->uid, set_done,
		    cs);
		return;
	}
	if ((why = evbuffer_new()) == NULL)
		fatalx("evbuffer_new failed");
	if (!pr->ok)
		evbuffer_add_printf(why, "the hosting cannot be used: %s",
		    pr->error);
	else {
		evbuffer_add_printf(why, "the hosting does not accept %zu "
		    "mailbox%s:", pr->nrefused, pr->nrefused == 1 ? "" : "es");
		for (size_t i = 0; i < pr->nrefused; i++)
			evbuffer_add_printf(why, "\n  %s: %s", pr->refused[i].addr,
			    pr->refused[i].reply);
	}
	evbuffer_add(why, "", 1);
	control_fail(cs->ctx, CTL_REFUSED, "domain set %s --dual on refused: "
	    "preflight: %s\n(--force skips the preflight)", cs->domain,
	    (const char *)evbuffer_pullup(why, -1));
	evbuffer_free(why);
	free(cs);
}

void
control_cutover_set(struct ctl_ctx *ctx, const char *domain, store_done_fn done)
{
	struct cutover_set *cs = xcalloc(1, sizeof(*cs));
	const struct domain_info *d = store_domain(domain);
	char **mb;
	size_t n;

	/* parsed and checked by the command already */
	control_cutover_args(ctx, &cs->s);
	cs->ctx = ctx;
	cs->done = done;
	mx_strlcpy(cs->domain, domain, sizeof(cs->domain));
	/* in legacy mode the copies go to the hosting: it must accept every
	 * mailbox first, as before a switch (SPEC 7) */
	if (d != NULL && (cs->s.set & STORE_SET_DUAL) && cs->s.dual && !d->dual &&
	    d->mode == MODE_LEGACY && !ctl_args_has(&ctx->args, "--force")) {
		n = store_domain_mailboxes(d, MODE_HOSTED, &mb);
		probe_start(cutover_base, mb, n, preflight_done, cs);
		for (size_t i = 0; i < n; i++)
			free(mb[i]);
		free(mb);
		return;
	}
	store_domain_settings(domain, &cs->s, ctx->uid, set_done, cs);
}

void
control_cutover_human(struct evbuffer *out, const struct domain_info *d,
    int width)
{
	char t[SWITCH_TIME_MAX];

	evbuffer_add_printf(out, "%-*s %s\n", width - 1, "dual delivery:",
	    !d->dual ? "off" : d->mode == MODE_LEGACY ? "on (primary legacy, "
	    "a copy to the hosting)" : "on (primary hosted, a copy to the legacy "
	    "servers)");
	if (d->hold)
		evbuffer_add_printf(out, "%-*s on since %s (no delivery attempt; "
		    "mail queues)\n", width - 1, "hold:",
		    switch_format_time(d->hold_since, t, sizeof(t)));
	else
		evbuffer_add_printf(out, "%-*s off\n", width - 1, "hold:");
	if (d->max_lifetime)
		evbuffer_add_printf(out, "%-*s %d s\n", width - 1, "max lifetime:",
		    d->max_lifetime);
	else
		evbuffer_add_printf(out, "%-*s default (delivery.max_lifetime)\n",
		    width - 1, "max lifetime:");
	evbuffer_add_printf(out, "%-*s %s (%s)\n", width - 1, "unknown:",
	    store_unknown_name(d->unknown), d->unknown == UNKNOWN_TEMPFAIL ?
	    "450 4.1.1" : "550 5.1.1");
}

void
control_cutover_json(struct jsonw *w, const struct domain_info *d)
{
	jsonw_kv_bool(w, "dual", d->dual);
	jsonw_kv_bool(w, "hold", d->hold);
	jsonw_kv_int(w, "hold_since", (int64_t)d->hold_since);
	jsonw_kv_int(w, "max_lifetime", d->max_lifetime);
	jsonw_kv_string(w, "unknown", store_unknown_name(d->unknown));
}

void
control_cutover_summary(struct evbuffer *out, const struct domain_info *d)
{
	if (d->dual)
		evbuffer_add_printf(out, "; dual delivery");
	if (d->hold)
		evbuffer_add_printf(out, "; held");
	if (d->max_lifetime)
		evbuffer_add_printf(out, "; max lifetime %d s", d->max_lifetime);
	if (d->unknown == UNKNOWN_TEMPFAIL)
		evbuffer_add_printf(out, "; unknown recipients 450 4.1.1");
}

/* The unknown-recipient report */

void
control_refused_human(struct evbuffer *out, const char *domain, size_t max)
{
	const struct refused_table *t = refused_table(domain);
	const struct refused_entry **v;
	char t1[SWITCH_TIME_MAX], t2[SWITCH_TIME_MAX];
	size_t n;

	if (t == NULL) {
		evbuffer_add_printf(out, "%s: no unknown recipient refused since "
		    "start\n", domain);
		return;
	}
	n = refused_table_sorted(t, &v);
	evbuffer_add_printf(out, "%s: %llu unknown recipient%s refused since "
	    "start, %zu address%s kept (at most %d)\n", domain,
	    (unsigned long long)t->total, t->total == 1 ? "" : "s", n,
	    n == 1 ? "" : "es", REFUSED_ENTRIES_MAX);
	for (size_t i = 0; i < n && i < max; i++) {
		evbuffer_add_printf(out, "%8llu  %s  first %s, last %s\n",
		    (unsigned long long)v[i]->count, v[i]->addr,
		    switch_format_time(v[i]->first, t1, sizeof(t1)),
		    switch_format_time(v[i]->last, t2, sizeof(t2)));
	}
	free(v);
}

void
control_refused_json(struct jsonw *w, const char *domain, size_t max)
{
	const struct refused_table *t = refused_table(domain);
	const struct refused_entry **v = NULL;
	size_t n = t ? refused_table_sorted(t, &v) : 0;

	jsonw_kv_int(w, "refused_total", t ? (int64_t)t->total : 0);
	jsonw_key(w, "refused");
	jsonw_array_begin(w);
	for (size_t i = 0; i < n && i < max; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "address", v[i]->addr);
		jsonw_kv_int(w, "count", (int64_t)v[i]->count);
		jsonw_kv_int(w, "first", (int64_t)v[i]->first);
		jsonw_kv_int(w, "last", (int64_t)v[i]->last);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	free(v);
}

void
cmd_address_list_refused(struct ctl_ctx *ctx)
{
	char name[SMTP_DOMAIN_MAX + 1];
	const struct domain_info *d;
	struct jsonw *w;

	if (mx_strlcpy(name, ctx->args.pos[0], sizeof(name)) >= sizeof(name) ||
	    !import_domain_valid(name)) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name",
		    ctx->args.pos[0]);
		return;
	}
	if ((d = store_domain(mx_lower(name))) == NULL) {
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", name);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", d->name);
		jsonw_kv_int(w, "entries_max", REFUSED_ENTRIES_MAX);
		control_refused_json(w, d->name, REFUSED_ENTRIES_MAX);
		jsonw_object_end(w);
		jsonw_free(w);
	} else
		control_refused_human(ctx->out, d->name, REFUSED_ENTRIES_MAX);
	control_reply(ctx, CTL_OK);
}
