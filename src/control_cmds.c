/* control_cmds.c - what each relayctl command does (SPEC 8)
 *
 * Handlers check their arguments, then read the store's index (loop thread)
 * or submit a write or a scan to the store and answer from its completion,
 * which comes after the commit. Both renderings, human and JSON, are made
 * here so that relayctl stays a thin pipe. Renderers of large outputs
 * (import reports, address lists, exports) run on the store's worker.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "control_cmds.h"
#include "control_check.h"
#include "control_pilot.h"
#include "control_queue.h"
#include "control_verify.h"
#include "control_switch.h"
#include "expand.h"
#include "fleet.h"
#include "jsonw.h"
#include "log.h"
#include "milter.h"
#include "route.h"
#include "stats.h"
#include "spool.h"
#include "store.h"
#include "table_import.h"
#include "util.h"

#define SERVER_HP_MAX		280	/* "[host]:port" */
#define SERVER_TEXT_MAX		300	/* "[host]:port/pref" */
#define PREF_STEP		10	/* /PREF defaults: 10, 20, 30... */

/* Formatting helpers */

static void
server_text(const struct legacy_server *s, char *buf, size_t len)
{
	char hp[SERVER_HP_MAX];

	store_server_format(s, hp, sizeof(hp));
	snprintf(buf, len, "%s/%d", hp, s->pref);
}

static void
json_servers(struct jsonw *w, const struct domain_info *d)
{
	jsonw_key(w, "legacy_servers");
	jsonw_array_begin(w);
	for (int i = 0; i < d->nservers; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "host", d->servers[i].host);
		jsonw_kv_int(w, "port", d->servers[i].port);
		jsonw_kv_int(w, "pref", d->servers[i].pref);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
}

/* json_domain - the members of a domain object */
static void
json_domain(struct jsonw *w, const struct domain_info *d)
{
	jsonw_kv_string(w, "domain", d->name);
	jsonw_kv_string(w, "mode", store_mode_name(d->mode));
	jsonw_kv_int(w, "created", (int64_t)store_domain_created(d));
	jsonw_kv_int(w, "addresses", (int64_t)store_domain_naddresses(d));
	jsonw_kv_bool(w, "verify_legacy", d->verify_legacy);
	json_servers(w, d);
}

static void
json_list(struct jsonw *w, const char *key, char *const *l, int n)
{
	jsonw_key(w, key);
	jsonw_array_begin(w);
	for (int i = 0; i < n; i++)
		jsonw_string(w, l[i]);
	jsonw_array_end(w);
}

/* json_addr - one address as an object */
static void
json_addr(struct jsonw *w, const struct addr_info *a)
{
	jsonw_object_begin(w);
	jsonw_kv_string(w, "address", a->address);
	jsonw_kv_string(w, "kind", a->kind == ADDR_ALIAS ? "alias" : "mailbox");
	jsonw_kv_bool(w, "nofilter", a->nofilter);
	json_list(w, "destinations", a->dests, a->ndests);
	json_list(w, "cc", a->cc, a->ncc);
	jsonw_object_end(w);
}

static void
add_list(struct evbuffer *out, char *const *l, int n)
{
	for (int i = 0; i < n; i++)
		evbuffer_add_printf(out, "%s%s", i ? ", " : "", l[i]);
}

/* human_addr - "mailbox, filter, cc: a, b" */
static void
human_addr(struct evbuffer *out, const struct addr_info *a)
{
	evbuffer_add_printf(out, "%s, %s", a->kind == ADDR_ALIAS ? "alias" :
	    "mailbox", a->nofilter ? "nofilter" : "filter");
	if (a->ndests) {
		evbuffer_add_printf(out, ", to: ");
		add_list(out, a->dests, a->ndests);
	}
	if (a->ncc) {
		evbuffer_add_printf(out, ", cc: ");
		add_list(out, a->cc, a->ncc);
	}
}

static void
human_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S %z",
	    &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

/* Argument checks; a malformed argument is a usage error (status 2) */

/* arg_domain - a valid domain name, lower-cased into out */
static int
arg_domain(struct ctl_ctx *ctx, const char *arg, char *out, size_t len)
{
	if (mx_strlcpy(out, arg, len) >= len || !import_domain_valid(out)) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name", arg);
		return -1;
	}
	mx_lower(out);
	return 0;
}

/* arg_known_domain - as arg_domain, and it must exist (status 1) */
static const struct domain_info *
arg_known_domain(struct ctl_ctx *ctx, const char *arg)
{
	char name[SMTP_DOMAIN_MAX + 1];
	const struct domain_info *d;

	if (arg_domain(ctx, arg, name, sizeof(name)) == -1)
		return NULL;
	if ((d = store_domain(name)) == NULL)
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", name);
	return d;
}

/* arg_address - a full address local@domain, lower-cased */
static int
arg_address(struct ctl_ctx *ctx, const char *arg, char *out, size_t len)
{
	char why[IMPORT_WHY_MAX];

	if (strchr(arg, '@') == NULL || import_norm_address(arg, strlen(arg),
	    NULL, out, len, why, sizeof(why)) == -1) {
		control_fail(ctx, CTL_USAGE, "address %.300s: invalid address", arg);
		return -1;
	}
	return 0;
}

/* host_valid - a host name, or an IPv4/IPv6 address literal */
static int
host_valid(const char *h)
{
	unsigned char a[16];

	return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1 ||
	    import_domain_valid(h);
}

/* parse_server - "HOST[:PORT][/PREF]", IPv6 as [ADDR]:PORT */
static int
parse_server(const char *spec, int index, struct legacy_server *s)
{
	char hp[SERVER_TEXT_MAX], *slash, *ep;
	long pref;

	memset(s, 0, sizeof(*s));
	if (mx_strlcpy(hp, spec, sizeof(hp)) >= sizeof(hp))
		return -1;
	s->pref = (index + 1) * PREF_STEP;
	if ((slash = strrchr(hp, '/')) != NULL) {
		errno = 0;
		pref = strtol(slash + 1, &ep, 10);
		if (slash[1] == '\0' || *ep != '\0' || errno || pref < 0 ||
		    pref > 65535)
			return -1;
		s->pref = (int)pref;
		*slash = '\0';
	}
	if (mx_split_hostport(hp, s->host, sizeof(s->host), &s->port, 25) == -1 ||
	    !host_valid(s->host))
		return -1;
	/* an IPv6 literal must be bracketed: [addr] or [addr]:port */
	if (strchr(s->host, ':') && hp[0] != '[')
		return -1;
	mx_lower(s->host);
	return 0;
}

/* arg_servers - every --legacy option, in order */
static int
arg_servers(struct ctl_ctx *ctx, struct legacy_server *sv, int *n)
{
	const struct ctl_args *a = &ctx->args;

	*n = 0;
	for (int i = 0; i < a->nopt; i++) {
		if (strcmp(a->optname[i], "--legacy") != 0)
			continue;
		if (*n == STORE_MAX_SERVERS) {
			control_fail(ctx, CTL_USAGE, "more than %d legacy servers",
			    STORE_MAX_SERVERS);
			return -1;
		}
		if (parse_server(a->optval[i], *n, &sv[*n]) == -1) {
			control_fail(ctx, CTL_USAGE, "--legacy %.300s: expected "
			    "HOST[:PORT][/PREF] (IPv6 as [ADDR]:PORT)", a->optval[i]);
			return -1;
		}
		(*n)++;
	}
	return 0;
}

/* status */

static void
cmd_status(struct ctl_ctx *ctx)
{
	int64_t up = mx_stats.started ? (int64_t)(time(NULL) - mx_stats.started) : 0;
	int legacy = store_count_domains(MODE_LEGACY);
	int hosted = store_count_domains(MODE_HOSTED);
	struct jsonw *w;

	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "version", PACKAGE_VERSION);
		jsonw_kv_int(w, "started", (int64_t)mx_stats.started);
		jsonw_kv_int(w, "uptime", up);
		jsonw_key(w, "connections");
		jsonw_object_begin(w);
		jsonw_kv_int(w, "current", mx_stats.connections_current);
		jsonw_kv_int(w, "total", (int64_t)mx_stats.connections_total);
		jsonw_object_end(w);
		jsonw_key(w, "queue");
		jsonw_object_begin(w);
		jsonw_kv_int(w, "messages", mx_stats.queue_messages);
		jsonw_kv_int(w, "recipients", mx_stats.queue_recipients);
		jsonw_object_end(w);
		jsonw_key(w, "domains");
		jsonw_object_begin(w);
		jsonw_kv_int(w, "total", legacy + hosted);
		jsonw_kv_int(w, "legacy", legacy);
		jsonw_kv_int(w, "hosted", hosted);
		jsonw_object_end(w);
		jsonw_key(w, "state");
		jsonw_object_begin(w);
		jsonw_kv_string(w, "backend", store_backend_name());
		jsonw_kv_string(w, "database", store_database());
		jsonw_object_end(w);
		fleet_status_json(w);
		jsonw_object_end(w);
		jsonw_free(w);
	} else {
		evbuffer_add_printf(ctx->out,
		    "version:      mxrelayd %s\n"
		    "uptime:       %" PRId64 "d %02d:%02d:%02d\n"
		    "connections:  %" PRId64 " current, %" PRIu64 " total\n"
		    "queue:        %" PRId64 " messages, %" PRId64 " recipients\n"
		    "domains:      %d (%d legacy, %d hosted)\n",
		    PACKAGE_VERSION, up / 86400, (int)(up / 3600 % 24),
		    (int)(up / 60 % 60), (int)(up % 60),
		    mx_stats.connections_current, mx_stats.connections_total,
		    mx_stats.queue_messages, mx_stats.queue_recipients,
		    legacy + hosted, legacy, hosted);
		evbuffer_add_printf(ctx->out, "state:        %s, %s\n",
		    store_backend_name(), store_database());
		fleet_status_text(ctx->out);
	}
	control_reply(ctx, CTL_OK);
}

/* stats: counters since start, from the table in stats.c */

/* the per-milter rows: milter_NAME_VERDICT, _errors, _messages, _time_ms */
struct milter_rows {
	struct ctl_ctx *ctx;
	struct jsonw *w;
};

static void
stats_milter_row(struct milter_rows *mr, const char *name, const char *what,
    uint64_t v)
{
	char key[CONFIG_MILTER_NAME_MAX + 32];

	snprintf(key, sizeof(key), "milter_%s_%s", name, what);
	if (mr->w)
		jsonw_kv_int(mr->w, key, (int64_t)v);
	else
		evbuffer_add_printf(mr->ctx->out, "%-28s %" PRIu64 "\n", key, v);
}

static void
stats_milter(const char *name, const struct milter_stat *st, void *arg)
{
	for (int a = MILTER_ACCEPT; a <= MILTER_QUARANTINE; a++)
		stats_milter_row(arg, name, milter_action_name(a), st->verdicts[a]);
	stats_milter_row(arg, name, "errors", st->errors);
	stats_milter_row(arg, name, "messages", st->messages);
	stats_milter_row(arg, name, "time_ms", st->time_ms);
}

static void
cmd_stats(struct ctl_ctx *ctx)
{
	struct jsonw *w;

	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		for (size_t i = 0; i < stats_nrows; i++)
			jsonw_kv_int(w, stats_rows[i].key, stats_value(&stats_rows[i]));
		milter_stat_walk(stats_milter, &(struct milter_rows){ ctx, w });
		jsonw_object_end(w);
		jsonw_free(w);
	} else {
		for (size_t i = 0; i < stats_nrows; i++)
			evbuffer_add_printf(ctx->out, "%-28s %" PRId64 "\n",
			    stats_rows[i].key, stats_value(&stats_rows[i]));
		milter_stat_walk(stats_milter, &(struct milter_rows){ ctx, NULL });
	}
	control_reply(ctx, CTL_OK);
}

/* reload: the daemon re-reads its configuration (SIGHUP does the same) */

static control_reload_fn reload_hook;

void
control_set_reload(control_reload_fn fn)
{
	reload_hook = fn;
}

static void
reload_done(int ok, const char *err, void *arg)
{
	struct ctl_ctx *ctx = arg;

	if (!ok) {
		control_fail(ctx, CTL_REFUSED, "reload refused, the running "
		    "configuration stays in force: %s", err);
		return;
	}
	if (ctx->json)
		evbuffer_add_printf(ctx->out, "{\"result\":\"reloaded\"}\n");
	else
		evbuffer_add_printf(ctx->out, "configuration reloaded\n");
	control_reply(ctx, CTL_OK);
}

static void
cmd_reload(struct ctl_ctx *ctx)
{
	if (reload_hook == NULL) {
		control_fail(ctx, CTL_REFUSED, "reload is not available");
		return;
	}
	reload_hook(reload_done, ctx);
}

/* domain add / set / remove */

/* render_domain_result - "domain D: WHAT" and its servers, or JSON */
static void
render_domain_result(struct ctl_ctx *ctx, const char *name, const char *what)
{
	const struct domain_info *d = store_domain(name);
	char sv[SERVER_TEXT_MAX];
	struct jsonw *w;

	if (d == NULL) {		/* removed again meanwhile */
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", name);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "result", what);
		json_domain(w, d);
		jsonw_object_end(w);
		jsonw_free(w);
	} else {
		evbuffer_add_printf(ctx->out, "domain %s: %s, mode %s, legacy "
		    "servers: ", d->name, what, store_mode_name(d->mode));
		for (int i = 0; i < d->nservers; i++) {
			server_text(&d->servers[i], sv, sizeof(sv));
			evbuffer_add_printf(ctx->out, "%s%s", i ? ", " : "", sv);
		}
		evbuffer_add_printf(ctx->out, "%s%s\n", d->nservers ? "" : "none",
		    d->verify_legacy ? "; unknown recipients verified at the "
		    "legacy servers" : "");
		if (d->nservers == 0 && d->mode == MODE_LEGACY)
			evbuffer_add_printf(ctx->out, "note: without legacy servers "
			    "its mail waits in the queue; add some with "
			    "\"relayctl domain set %s --legacy HOST\"\n", d->name);
	}
	control_reply(ctx, CTL_OK);
}

static void
domain_add_done(struct store_result *res, void *arg)
{
	struct ctl_ctx *ctx = arg;

	if (res->status)
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
	else
		render_domain_result(ctx, ctx->args.pos[0], "added");
}

static void
domain_set_done(struct store_result *res, void *arg)
{
	struct ctl_ctx *ctx = arg;

	if (res->status)
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
	else
		render_domain_result(ctx, ctx->args.pos[0], "updated");
}

static void
cmd_domain_add(struct ctl_ctx *ctx)
{
	struct legacy_server sv[STORE_MAX_SERVERS];
	char name[SMTP_DOMAIN_MAX + 1];
	const char *mode = ctl_args_get(&ctx->args, "--mode");
	enum domain_mode m = MODE_LEGACY;
	int n;

	if (arg_domain(ctx, ctx->args.pos[0], name, sizeof(name)) == -1)
		return;
	if (mode && strcmp(mode, "hosted") == 0)
		m = MODE_HOSTED;
	else if (mode && strcmp(mode, "legacy") != 0) {
		control_fail(ctx, CTL_USAGE, "--mode %.100s: expected legacy or "
		    "hosted", mode);
		return;
	}
	if (arg_servers(ctx, sv, &n) == -1)
		return;
	if (store_domain(name)) {
		control_fail(ctx, CTL_REFUSED, "domain %s: already exists", name);
		return;
	}
	mx_lower((char *)ctx->args.pos[0]);
	store_domain_add(name, m, sv, n, domain_add_done, ctx);
}

/* servers_set_done - the servers are set; now --verify-legacy */
static void
servers_set_done(struct store_result *res, void *arg)
{
	struct ctl_ctx *ctx = arg;
	const char *v = ctl_args_get(&ctx->args, "--verify-legacy");

	if (res->status)
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
	else
		store_domain_set_verify(ctx->args.pos[0], strcmp(v, "on") == 0,
		    domain_set_done, ctx);
}

static void
cmd_domain_set(struct ctl_ctx *ctx)
{
	struct legacy_server sv[STORE_MAX_SERVERS];
	const struct domain_info *d;
	const char *v = ctl_args_get(&ctx->args, "--verify-legacy");
	int n;

	if (ctl_args_has(&ctx->args, "--mode")) {
		control_fail(ctx, CTL_USAGE, "domain set: the mode is changed with "
		    "\"relayctl switch %.300s hosted|legacy\"", ctx->args.pos[0]);
		return;
	}
	if (!ctl_args_has(&ctx->args, "--legacy") && v == NULL) {
		control_fail(ctx, CTL_USAGE, "domain set: nothing to set; usage: "
		    "relayctl %s", ctx->spec->usage);
		return;
	}
	if (v != NULL && strcmp(v, "on") != 0 && strcmp(v, "off") != 0) {
		control_fail(ctx, CTL_USAGE, "--verify-legacy %.100s: expected on "
		    "or off", v);
		return;
	}
	if ((d = arg_known_domain(ctx, ctx->args.pos[0])) == NULL ||
	    arg_servers(ctx, sv, &n) == -1)
		return;
	mx_lower((char *)ctx->args.pos[0]);
	if (!ctl_args_has(&ctx->args, "--legacy"))
		store_domain_set_verify(d->name, strcmp(v, "on") == 0,
		    domain_set_done, ctx);
	else
		store_domain_set_servers(d->name, sv, n, v ? servers_set_done :
		    domain_set_done, ctx);
}

/* removed_reply - a remove command's answer: "KIND NAME: removed", with
 * the addresses that went along when naddrs >= 0 */
static void
removed_reply(struct ctl_ctx *ctx, struct store_result *res, const char *kind,
    long naddrs)
{
	struct jsonw *w;

	if (res->status) {
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "result", "removed");
		jsonw_kv_string(w, kind, ctx->args.pos[0]);
		if (naddrs >= 0)
			jsonw_kv_int(w, "addresses_removed", naddrs);
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (naddrs >= 0)
		evbuffer_add_printf(ctx->out, "%s %s: removed with %ld "
		    "address%s\n", kind, ctx->args.pos[0], naddrs,
		    naddrs == 1 ? "" : "es");
	else
		evbuffer_add_printf(ctx->out, "%s %s: removed\n", kind,
		    ctx->args.pos[0]);
	control_reply(ctx, CTL_OK);
}

static void
domain_remove_done(struct store_result *res, void *arg)
{
	removed_reply(arg, res, "domain", res->count);
}

static void
cmd_domain_remove(struct ctl_ctx *ctx)
{
	const struct domain_info *d;
	int64_t queued;

	if ((d = arg_known_domain(ctx, ctx->args.pos[0])) == NULL)
		return;
	/* SPEC 8: mail in the queue would lose its route */
	queued = spool_domain_recipients(d->name);
	if (queued > 0 && !ctl_args_has(&ctx->args, "--force")) {
		control_fail(ctx, CTL_REFUSED, "domain %s: %" PRId64 " recipient%s "
		    "queued; refused (use --force to remove it anyway)", d->name,
		    queued, queued == 1 ? "" : "s");
		return;
	}
	mx_lower((char *)ctx->args.pos[0]);
	store_domain_remove(d->name, domain_remove_done, ctx);
}

/* domain list / show */

static void
cmd_domain_list(struct ctl_ctx *ctx)
{
	const struct domain_info **v;
	size_t n = store_domain_list(&v), width = 6;
	char sv[SERVER_TEXT_MAX];
	struct jsonw *w;

	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_key(w, "domains");
		jsonw_array_begin(w);
		for (size_t i = 0; i < n; i++) {
			jsonw_object_begin(w);
			json_domain(w, v[i]);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (n == 0)
		evbuffer_add_printf(ctx->out, "no domains\n");
	else {
		for (size_t i = 0; i < n; i++)
			if (strlen(v[i]->name) > width)
				width = strlen(v[i]->name);
		evbuffer_add_printf(ctx->out, "%-*s  %-6s  %9s  %s\n", (int)width,
		    "DOMAIN", "MODE", "ADDRESSES", "LEGACY SERVERS");
		for (size_t i = 0; i < n; i++) {
			evbuffer_add_printf(ctx->out, "%-*s  %-6s  %9zu  ", (int)width,
			    v[i]->name, store_mode_name(v[i]->mode),
			    store_domain_naddresses(v[i]));
			for (int j = 0; j < v[i]->nservers; j++) {
				server_text(&v[i]->servers[j], sv, sizeof(sv));
				evbuffer_add_printf(ctx->out, "%s%s", j ? ", " : "", sv);
			}
			evbuffer_add_printf(ctx->out, "%s\n", v[i]->nservers ? "" : "-");
		}
	}
	free(v);
	control_reply(ctx, CTL_OK);
}

static void
cmd_domain_show(struct ctl_ctx *ctx)
{
	const struct domain_info *d = arg_known_domain(ctx, ctx->args.pos[0]);
	char sv[SERVER_TEXT_MAX], tbuf[64];
	struct jsonw *w;

	if (d == NULL)
		return;
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		json_domain(w, d);
		control_pilot_json(w, d);
		jsonw_object_end(w);
		jsonw_free(w);
		control_reply(ctx, CTL_OK);
		return;
	}
	human_time(store_domain_created(d), tbuf, sizeof(tbuf));
	evbuffer_add_printf(ctx->out, "domain:          %s\nmode:            %s\n"
	    "created:         %s\naddresses:       %zu\n", d->name,
	    store_mode_name(d->mode), tbuf, store_domain_naddresses(d));
	for (int i = 0; i < d->nservers; i++) {
		store_server_format(&d->servers[i], sv, sizeof(sv));
		evbuffer_add_printf(ctx->out, "%-17s%s (pref %d)\n",
		    i ? "" : "legacy servers:", sv, d->servers[i].pref);
	}
	if (d->nservers == 0)
		evbuffer_add_printf(ctx->out, "legacy servers:  none\n");
	evbuffer_add_printf(ctx->out, "verify legacy:   %s\n",
	    d->verify_legacy ? "on" : "off");
	control_pilot_human(ctx->out, d);
	control_reply(ctx, CTL_OK);
}

/* address add / remove / show */

static void
address_add_done(struct store_result *res, void *arg)
{
	struct ctl_ctx *ctx = arg;
	static const char *const what[] = { "added", "updated", "unchanged", "removed" };
	const char *addr = ctx->args.pos[0];
	const struct addr_info *a;
	struct jsonw *w;

	if (res->status) {
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
		return;
	}
	a = store_address(addr, '\0');
	if (a == NULL) {		/* removed again meanwhile */
		control_fail(ctx, CTL_REFUSED, "address %s: not found", addr);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "result", what[res->outcome]);
		jsonw_key(w, "address");
		json_addr(w, a);
		jsonw_object_end(w);
		jsonw_free(w);
	} else {
		evbuffer_add_printf(ctx->out, "address %s: %s (", a->address,
		    what[res->outcome]);
		human_addr(ctx->out, a);
		evbuffer_add_printf(ctx->out, ")\n");
	}
	control_reply(ctx, CTL_OK);
}

/* arg_dest_list - every value of opt (repeatable, comma-separated) */
static int
arg_dest_list(struct ctl_ctx *ctx, const char *opt, const char *domain,
    char (*out)[IMPORT_ADDR_MAX + 1], int *n)
{
	char why[IMPORT_WHY_MAX];
	int k;

	*n = 0;
	for (int i = 0; i < ctx->args.nopt; i++) {
		if (strcmp(ctx->args.optname[i], opt) != 0)
			continue;
		const char *v = ctx->args.optval[i];
		k = import_parse_list(v, strlen(v), domain, out + *n,
		    STORE_MAX_DESTS - *n, why, sizeof(why));
		if (k < 0) {
			control_fail(ctx, CTL_USAGE, "%s %.300s: %s", opt, v, why);
			return -1;
		}
		*n += k;
	}
	return 0;
}

static void
cmd_address_add(struct ctl_ctx *ctx)
{
	/* loop thread only, and store_address_put copies: static is safe */
	static char dests[STORE_MAX_DESTS][IMPORT_ADDR_MAX + 1];
	char addr[IMPORT_ADDR_MAX + 1], *ptrs[STORE_MAX_DESTS];
	const char *dom;
	struct addr_info a;
	int alias = ctl_args_has(&ctx->args, "--alias");
	int n = 0;

	if (arg_address(ctx, ctx->args.pos[0], addr, sizeof(addr)) == -1)
		return;
	if (alias && ctl_args_has(&ctx->args, "--cc")) {
		control_fail(ctx, CTL_USAGE, "address add: --alias and --cc exclude "
		    "each other (an alias has no mailbox to copy from)");
		return;
	}
	dom = import_address_domain(addr);
	if (store_domain(dom) == NULL) {
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", dom);
		return;
	}
	if (arg_dest_list(ctx, alias ? "--alias" : "--cc", dom, dests, &n) == -1)
		return;
	for (int i = 0; i < n; i++)
		ptrs[i] = dests[i];
	memset(&a, 0, sizeof(a));
	a.address = addr;
	a.kind = alias ? ADDR_ALIAS : ADDR_MAILBOX;
	a.dests = alias ? ptrs : NULL;
	a.ndests = alias ? n : 0;
	a.cc = alias ? NULL : ptrs;
	a.ncc = alias ? 0 : n;
	a.nofilter = ctl_args_has(&ctx->args, "--nofilter");
	/* the callback finds the address through pos[0]: normalize it */
	mx_strlcpy((char *)ctx->args.pos[0], addr, strlen(ctx->args.pos[0]) + 1);
	store_address_put(&a, address_add_done, ctx);
}

static void
address_remove_done(struct store_result *res, void *arg)
{
	removed_reply(arg, res, "address", -1);
}

static void
cmd_address_remove(struct ctl_ctx *ctx)
{
	char addr[IMPORT_ADDR_MAX + 1];

	if (arg_address(ctx, ctx->args.pos[0], addr, sizeof(addr)) == -1)
		return;
	mx_strlcpy((char *)ctx->args.pos[0], addr, strlen(ctx->args.pos[0]) + 1);
	store_address_remove(addr, address_remove_done, ctx);
}

/* expansion_label - what becomes of an expansion node, for humans */
static const char *
expansion_label(enum expand_kind k)
{
	switch (k) {
	case EXPAND_ALIAS:
		return "[alias] expanded";
	case EXPAND_MAILBOX:
		return "[local] mailbox, delivered to the hosting";
	case EXPAND_UNKNOWN:
		return "[local] not in the table, delivered to the hosting as is";
	case EXPAND_LEGACY:
		return "[local] domain in legacy mode, delivered to its legacy servers";
	case EXPAND_EXTERNAL:
		return "[external] forwarded by MX, SRS sender";
	case EXPAND_DUPLICATE:
		return "[duplicate] delivered once, above";
	case EXPAND_LOOP:
		return "[loop] bounced (5.4.6)";
	}
	return "?";
}

/* address_expansion - what a (hosted) address expands to now (SPEC 6):
 * the tree with its marks; "applies" is false in legacy mode, where the
 * legacy servers expand aliases and mxrelayd sends the address unchanged */
static void
address_expansion(struct ctl_ctx *ctx, struct jsonw *w, const char *addr,
    const struct domain_info *d)
{
	struct expand_result res;
	int applies = d != NULL && d->mode == MODE_HOSTED, n = 0;

	route_expand(addr, &res);
	if (w) {
		jsonw_key(w, "expansion");
		jsonw_object_begin(w);
		jsonw_kv_bool(w, "applies", applies);
		jsonw_kv_bool(w, "overflow", res.overflow);
		jsonw_key(w, "nodes");
		jsonw_array_begin(w);
		for (int i = 0; i < res.n; i++) {
			jsonw_object_begin(w);
			jsonw_kv_string(w, "address", res.v[i].addr);
			jsonw_kv_string(w, "kind", expand_kind_name(res.v[i].kind));
			jsonw_kv_int(w, "depth", res.v[i].depth);
			jsonw_kv_bool(w, "delivered", expand_delivers(res.v[i].kind));
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
		jsonw_key(w, "delivers_to");
		jsonw_array_begin(w);
		for (int i = 0; i < res.n; i++)
			if (expand_delivers(res.v[i].kind))
				jsonw_string(w, res.v[i].addr);
		jsonw_array_end(w);
		jsonw_object_end(w);
		expand_result_free(&res);
		return;
	}
	evbuffer_add_printf(ctx->out, "expands to:    %s\n", applies ?
	    "(hosted mode: applied at delivery)" : "(applies in hosted mode only; "
	    "in legacy mode the address goes unchanged to the legacy servers)");
	for (int i = 0; i < res.n; i++) {
		evbuffer_add_printf(ctx->out, "  %*s%-*s %s\n", 2 * res.v[i].depth, "",
		    40 - 2 * (res.v[i].depth < 18 ? res.v[i].depth : 18),
		    res.v[i].addr, expansion_label(res.v[i].kind));
		n += expand_delivers(res.v[i].kind);
	}
	if (res.overflow)
		evbuffer_add_printf(ctx->out, "  ... more than %d addresses: "
		    "bounced (5.2.4)\n", EXPAND_NODES_MAX);
	evbuffer_add_printf(ctx->out, "copies:        %d\n", n);
	expand_result_free(&res);
}

static void
cmd_address_show(struct ctl_ctx *ctx)
{
	char addr[IMPORT_ADDR_MAX + 1], *at;
	const struct addr_info *a;
	const struct domain_info *d;
	struct jsonw *w;

	if (arg_address(ctx, ctx->args.pos[0], addr, sizeof(addr)) == -1)
		return;
	at = strrchr(addr, '@');
	a = store_address(addr, '\0');
	d = store_domain(at + 1);
	if (a == NULL) {
		control_fail(ctx, CTL_REFUSED, "address %s: not found", addr);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "address", a->address);
		jsonw_kv_string(w, "kind", a->kind == ADDR_ALIAS ? "alias" : "mailbox");
		jsonw_kv_bool(w, "nofilter", a->nofilter);
		json_list(w, "destinations", a->dests, a->ndests);
		json_list(w, "cc", a->cc, a->ncc);
		jsonw_kv_string(w, "mode", d ? store_mode_name(d->mode) : NULL);
		address_expansion(ctx, w, a->address, d);
		jsonw_object_end(w);
		jsonw_free(w);
	} else {
		evbuffer_add_printf(ctx->out, "address:       %s\nkind:          %s\n"
		    "filter:        %s\n", a->address, a->kind == ADDR_ALIAS ?
		    "alias" : "mailbox", a->nofilter ? "nofilter (no spam checks)" :
		    "filter");
		if (a->kind == ADDR_ALIAS) {
			evbuffer_add_printf(ctx->out, "destinations:  ");
			add_list(ctx->out, a->dests, a->ndests);
			evbuffer_add_printf(ctx->out, "\n");
		}
		if (a->ncc) {
			evbuffer_add_printf(ctx->out, "cc:            ");
			add_list(ctx->out, a->cc, a->ncc);
			evbuffer_add_printf(ctx->out, "\n");
		}
		address_expansion(ctx, NULL, a->address, d);
	}
	control_reply(ctx, CTL_OK);
}

/* address list / export: rendered on the store's worker */

static void
scan_done(struct store_result *res, void *arg)
{
	struct ctl_ctx *ctx = arg;

	if (res->status) {
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
		return;
	}
	evbuffer_add_buffer(ctx->out, res->body);
	control_reply(ctx, CTL_OK);
}

static void
render_json_rows(const char *domain, struct addr_info *const *rows, size_t n,
    struct evbuffer *out)
{
	struct jsonw *w = jsonw_new(out);

	jsonw_object_begin(w);
	jsonw_kv_string(w, "domain", domain);
	jsonw_key(w, "addresses");
	jsonw_array_begin(w);
	for (size_t i = 0; i < n; i++)
		json_addr(w, rows[i]);
	jsonw_array_end(w);
	jsonw_object_end(w);
	jsonw_free(w);
}

/* render_list - worker thread: the address table as columns */
static void
render_list(const char *domain, struct addr_info *const *rows, size_t n,
    struct evbuffer *out, void *arg)
{
	size_t width = 7;

	if (((struct ctl_ctx *)arg)->json) {
		render_json_rows(domain, rows, n, out);
		return;
	}
	if (n == 0) {
		evbuffer_add_printf(out, "domain %s: no addresses\n", domain);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (strlen(rows[i]->address) > width)
			width = strlen(rows[i]->address);
	evbuffer_add_printf(out, "%-*s  %-7s  %-8s  %s\n", (int)width, "ADDRESS",
	    "KIND", "FILTER", "DESTINATIONS");
	for (size_t i = 0; i < n; i++) {
		const struct addr_info *a = rows[i];
		evbuffer_add_printf(out, "%-*s  %-7s  %-8s  ", (int)width,
		    a->address, a->kind == ADDR_ALIAS ? "alias" : "mailbox",
		    a->nofilter ? "nofilter" : "filter");
		if (a->ncc)
			evbuffer_add_printf(out, "cc: ");
		add_list(out, a->kind == ADDR_ALIAS ? a->dests : a->cc,
		    a->kind == ADDR_ALIAS ? a->ndests : a->ncc);
		evbuffer_add_printf(out, "%s\n", a->ndests || a->ncc ? "" : "-");
	}
	evbuffer_add_printf(out, "%zu address%s\n", n, n == 1 ? "" : "es");
}

/* render_export - worker thread: the canonical format, sorted */
static void
render_export(const char *domain, struct addr_info *const *rows, size_t n,
    struct evbuffer *out, void *arg)
{
	char *line;

	if (((struct ctl_ctx *)arg)->json) {
		render_json_rows(domain, rows, n, out);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		line = import_format_addr(rows[i]);
		evbuffer_add_printf(out, "%s\n", line);
		free(line);
	}
}

static void
cmd_address_list(struct ctl_ctx *ctx)
{
	char name[SMTP_DOMAIN_MAX + 1];

	if (ctl_args_has(&ctx->args, "--verified")) {
		cmd_address_list_verified(ctx);
		return;
	}
	if (arg_domain(ctx, ctx->args.pos[0], name, sizeof(name)) == 0)
		store_address_scan(name, render_list, ctx, scan_done, ctx);
}

static void
cmd_export(struct ctl_ctx *ctx)
{
	char name[SMTP_DOMAIN_MAX + 1];

	if (arg_domain(ctx, ctx->args.pos[0], name, sizeof(name)) == 0)
		store_address_scan(name, render_export, ctx, scan_done, ctx);
}

/* import */

static const char *const imp_kind_name[] = {
	"added", "updated", "unchanged", "invalid", "warnings"
};

/* render_import_json - worker thread */
static void
render_import_json(const struct store_import_report *r,
    const struct store_result *res, struct evbuffer *out)
{
	struct jsonw *w = jsonw_new(out);

	jsonw_object_begin(w);
	jsonw_kv_string(w, "domain", r->domain);
	jsonw_kv_string(w, "file", r->file);
	jsonw_kv_bool(w, "dry_run", r->dry_run);
	jsonw_kv_bool(w, "strict", r->strict);
	jsonw_kv_bool(w, "nofilter", r->nofilter);
	jsonw_kv_bool(w, "applied", r->applied);
	if (res->status)
		jsonw_kv_string(w, "error", res->msg);
	jsonw_key(w, "counts");
	jsonw_object_begin(w);
	jsonw_kv_int(w, "added", (int64_t)r->added);
	jsonw_kv_int(w, "updated", (int64_t)r->updated);
	jsonw_kv_int(w, "unchanged", (int64_t)r->unchanged);
	jsonw_kv_int(w, "invalid", (int64_t)r->invalid);
	jsonw_kv_int(w, "warnings", (int64_t)r->warnings);
	jsonw_kv_int(w, "passwords_ignored", (int64_t)r->passwords);
	jsonw_object_end(w);
	for (int k = STORE_IMP_ADDED; k <= STORE_IMP_WARNING; k++) {
		jsonw_key(w, imp_kind_name[k]);
		jsonw_array_begin(w);
		for (size_t i = 0; i < r->nlines; i++) {
			if ((int)r->lines[i].kind != k)
				continue;
			jsonw_object_begin(w);
			jsonw_kv_int(w, "line", r->lines[i].line);
			jsonw_kv_string(w, k == STORE_IMP_INVALID ? "reason" :
			    "address", r->lines[i].text);
			if (r->lines[i].written)
				jsonw_kv_string(w, "written", r->lines[i].written);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
	}
	jsonw_object_end(w);
	jsonw_free(w);
}

/* render_import - worker thread: the report, grouped as control panels do */
static void
render_import(const struct store_import_report *r, struct store_result *res,
    struct evbuffer *out, void *arg)
{
	size_t cnt[5] = { r->added, r->updated, r->unchanged, r->invalid,
	    r->warnings };

	if (((struct ctl_ctx *)arg)->json) {
		render_import_json(r, res, out);
		return;
	}
	for (int k = STORE_IMP_ADDED; k <= STORE_IMP_WARNING; k++) {
		if (cnt[k] == 0)
			continue;
		evbuffer_add_printf(out, "%s (%zu):\n", imp_kind_name[k], cnt[k]);
		for (size_t i = 0; i < r->nlines; i++) {
			const struct store_import_line *l = &r->lines[i];
			if ((int)l->kind != k)
				continue;
			if (k == STORE_IMP_INVALID)
				evbuffer_add_printf(out, "  line %d: %s\n", l->line,
				    l->text);
			else if (k == STORE_IMP_WARNING)
				evbuffer_add_printf(out, "  line %d: %s: the password "
				    "looks like an address; write "
				    "ADDRESS|DESTINATIONS|relay for an alias\n",
				    l->line, l->text);
			else if (l->written)
				evbuffer_add_printf(out, "  %s (line %d, written "
				    "%s: the same address)\n", l->text, l->line,
				    l->written);
			else
				evbuffer_add_printf(out, "  %s (line %d)\n", l->text,
				    l->line);
		}
	}
	evbuffer_add_printf(out, "import %s: %zu added, %zu updated, %zu "
	    "unchanged, %zu invalid", r->domain, r->added, r->updated,
	    r->unchanged, r->invalid);
	if (r->passwords)
		evbuffer_add_printf(out, "; %zu password%s ignored (mxrelay "
		    "stores no passwords)", r->passwords, r->passwords == 1 ? "" : "s");
	evbuffer_add_printf(out, "\n");
	if (res->status)
		evbuffer_add_printf(out, "%s\n", res->msg);
	else if (r->dry_run)
		evbuffer_add_printf(out, "dry run: nothing was changed\n");
}

static void
import_done(struct store_result *res, void *arg)
{
	struct ctl_ctx *ctx = arg;

	if (res->status && evbuffer_get_length(res->body) == 0) {
		control_fail(ctx, CTL_REFUSED, "%s", res->msg);
		return;
	}
	evbuffer_add_buffer(ctx->out, res->body);
	control_reply(ctx, res->status ? CTL_REFUSED : CTL_OK);
}

/* an import whose text the command made (address learn) */
struct import_own {
	struct ctl_ctx *ctx;
	char *text;
};

static void
import_own_done(struct store_result *res, void *arg)
{
	struct import_own *o = arg;

	import_done(res, o->ctx);
	free(o->text);
	free(o);
}

void
control_import_text(struct ctl_ctx *ctx, const char *domain, const char *label,
    char *text, size_t len)
{
	struct store_import_params p;
	struct import_own *o = xcalloc(1, sizeof(*o));

	o->ctx = ctx;
	o->text = text;
	memset(&p, 0, sizeof(p));
	p.domain = domain;
	p.file = label;
	p.text = text;
	p.len = len;
	p.render = render_import;
	p.render_arg = ctx;
	store_import(&p, import_own_done, o);
}

static void
cmd_import(struct ctl_ctx *ctx)
{
	struct store_import_params p;
	const struct domain_info *d;

	if ((d = arg_known_domain(ctx, ctx->args.pos[0])) == NULL)
		return;
	memset(&p, 0, sizeof(p));
	p.domain = d->name;
	p.file = ctx->args.pos[1];
	/* relayctl sent the file's contents: we may not be able to read it */
	p.text = ctx->req.data;
	p.len = ctx->req.datalen;
	p.dry_run = ctl_args_has(&ctx->args, "--dry-run");
	p.strict = ctl_args_has(&ctx->args, "--strict");
	p.nofilter = ctl_args_has(&ctx->args, "--nofilter");
	p.render = render_import;
	p.render_arg = ctx;
	store_import(&p, import_done, ctx);
}

/* The dispatch table; argument counts and options are in ctlproto.c. */
static const struct ctl_handler ctl_handlers[] = {
	{ "status", cmd_status, 0 },
	{ "stats", cmd_stats, 0 },
	{ "reload", cmd_reload, 0 },
	{ "domain add", cmd_domain_add, CTL_CMD_WRITES },
	{ "domain set", cmd_domain_set, CTL_CMD_WRITES },
	{ "domain remove", cmd_domain_remove, CTL_CMD_WRITES },
	{ "domain list", cmd_domain_list, 0 },
	{ "domain show", cmd_domain_show, 0 },
	{ "address add", cmd_address_add, CTL_CMD_WRITES },
	{ "address set", cmd_address_set, CTL_CMD_WRITES },
	{ "address remove", cmd_address_remove, CTL_CMD_WRITES },
	{ "address show", cmd_address_show, 0 },
	{ "address list", cmd_address_list, 0 },
	{ "address learn", cmd_address_learn, CTL_CMD_WRITES },
	{ "import", cmd_import, CTL_CMD_WRITES },
	{ "export", cmd_export, 0 },
	{ "queue list", cmd_queue_list, 0 },
	{ "queue show", cmd_queue_show, 0 },
	{ "queue flush", cmd_queue_flush, CTL_CMD_WRITES },
	{ "queue delete", cmd_queue_delete, CTL_CMD_WRITES },
	{ "queue release", cmd_queue_release, CTL_CMD_WRITES },
	{ "switch", cmd_switch, CTL_CMD_WRITES },
	{ "history", cmd_history, 0 },
	{ "check", cmd_check, 0 },
};

const struct ctl_handler *
control_cmds_find(const char *name)
{
	for (size_t i = 0; i < MX_ARRAY_LEN(ctl_handlers); i++)
		if (strcmp(ctl_handlers[i].name, name) == 0)
			return &ctl_handlers[i];
	return NULL;
}
