/* metrics.c - GET /metrics in the Prometheus text format, on the loop
 *
 * Label cardinality is bounded by what the operator configured, never by
 * what clients send: counters carry fixed words (stats.c), and the only
 * per-domain series are for domains in the store (hosted domains, either
 * mode); a queued recipient of any other domain (bounces, external
 * forwards) counts under domain="other".
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "accept_pause.h"
#include "dict.h"
#include "fleet.h"
#include "log.h"
#include "milter.h"
#include "metrics.h"
#include "metrics_http.h"
#include "queue.h"
#include "smtp_parse.h"
#include "spoolfs.h"
#include "stats.h"
#include "store.h"
#include "util.h"

#define METRICS_OTHER_DOMAIN	"other"

static struct {
	struct evhttp *http;
	struct accept_pause *pause;	/* out of descriptors: stop accepting */
} mt;

/* label_value - a label value with \, " and newline escaped (format 0.0.4) */
static void
label_value(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

/* series_open - `name{label="value` (escaped); the caller closes it */
static void
series_open(struct evbuffer *out, const char *name, const char *label,
    const char *value)
{
	evbuffer_add_printf(out, "%s{%s=\"", name, label);
	label_value(out, value);
}

static void
family(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* render_rows - the stats table, family by family (a family's rows may be
 * spread over the table; the format wants them together) */
static void
render_rows(struct evbuffer *out)
{
	const struct stats_row *r, *o;
	const char *help;
	size_t i, j, k;

	for (i = 0; i < stats_nrows; i++) {
		r = &stats_rows[i];
		if (r->metric == NULL)
			continue;
		for (k = 0; k < i; k++)		/* done with its first row */
			if (stats_rows[k].metric &&
			    strcmp(stats_rows[k].metric, r->metric) == 0)
				break;
		if (k < i)
			continue;
		help = NULL;
		for (j = i; j < stats_nrows && help == NULL; j++)
			if (stats_rows[j].metric &&
			    strcmp(stats_rows[j].metric, r->metric) == 0)
				help = stats_rows[j].help;
		family(out, r->metric, r->kind == STATS_COUNTER ? "counter" :
		    "gauge", help ? help : r->metric);
		for (j = i; j < stats_nrows; j++) {
			o = &stats_rows[j];
			if (o->metric == NULL || strcmp(o->metric, r->metric) != 0)
				continue;
			evbuffer_add_printf(out, "%s%s%s%s %" PRId64 "\n", o->metric,
			    *o->labels ? "{" : "", o->labels, *o->labels ? "}" : "",
			    stats_value(o));
		}
	}
}

static void
render_hist(struct evbuffer *out, const char *name, const char *help,
    const struct mx_hist *h)
{
	uint64_t cum = 0;

	family(out, name, "histogram", help);
	for (int i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %" PRIu64 "\n",
		    name, h->bounds[i], cum);
	}
	evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n"
	    "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, h->count, name, h->sum,
	    name, h->count);
}

/* rcpt_state - the state label of a recipient still in the queue */
static const char *
rcpt_state(const struct queue_rcpt *r)
{
	if (r->state == QUEUE_R_ACTIVE || r->state == QUEUE_R_BOUNCING)
		return "active";
	return r->attempts > 0 ? "deferred" : "new";
}

static int
put_series(const char *key, void *val, void *arg)
{
	struct evbuffer *out = arg;
	char buf[SMTP_DOMAIN_MAX + 64];
	char *route, *state;

	/* key: domain \n route \n state (a domain holds no newline) */
	mx_strlcpy(buf, key, sizeof(buf));
	route = strchr(buf, '\n');
	*route++ = '\0';
	state = strchr(route, '\n');
	*state++ = '\0';
	series_open(out, "mxrelay_queue_recipients", "domain", buf);
	evbuffer_add_printf(out, "\",route=\"%s\",state=\"%s\"} %" PRId64 "\n",
	    route, state, *(int64_t *)val);
	return 0;
}

/* what a walk of the queue adds up */
struct queue_sum {
	struct dict *series;		/* "domain\nroute\nstate" -> int64_t */
	uint64_t bytes;
	time_t oldest;			/* 0: empty */
	/* the last recipient's series: a queue mostly holds runs of the
	 * same domain, so most recipients skip the lookups */
	char last_dom[SMTP_DOMAIN_MAX + 1];
	int last_mx;
	const char *last_state;
	int64_t *last_n;
};

/* sum_msg - count the live recipients of m under their series */
static void
sum_msg(const struct queue_msg *m, void *arg)
{
	struct queue_sum *qs = arg;
	const struct queue_rcpt *r;
	const struct domain_info *d;
	const char *at, *dom, *route, *state;
	char key[SMTP_DOMAIN_MAX + 64];
	int64_t *n;

	qs->bytes += m->size;
	if (qs->oldest == 0 || m->arrival < qs->oldest)
		qs->oldest = m->arrival;
	for (int k = 0; k < m->nrcpts; k++) {
		r = &m->rcpts[k];
		if (r->state >= QUEUE_R_DELIVERED)
			continue;
		at = strrchr(r->addr, '@');
		at = at ? at + 1 : "";
		state = rcpt_state(r);
		if (qs->last_n && qs->last_mx == m->route_mx &&
		    qs->last_state == state && strcmp(qs->last_dom, at) == 0) {
			(*qs->last_n)++;
			continue;
		}
		d = store_domain(at);
		dom = d ? d->name : METRICS_OTHER_DOMAIN;
		route = d && !m->route_mx ? store_mode_name(d->mode) : "mx";
		snprintf(key, sizeof(key), "%s\n%s\n%s", dom, route, state);
		if ((n = dict_get(qs->series, key)) == NULL) {
			n = xcalloc(1, sizeof(*n));
			dict_put(qs->series, key, n);
		}
		(*n)++;
		mx_strlcpy(qs->last_dom, at, sizeof(qs->last_dom));
		qs->last_mx = m->route_mx;
		qs->last_state = state;
		qs->last_n = n;
	}
}

/* render_queue - recipients by domain, route and state; the oldest
 * message; the bytes queued. One walk of the queue, no copy, no sort. */
static void
render_queue(struct evbuffer *out, time_t now)
{
	struct queue_sum qs = { .series = dict_new() };

	queue_walk(sum_msg, &qs);
	family(out, "mxrelay_queue_recipients", "gauge", "recipients waiting "
	    "in the queue by domain (hosted domains; \"other\" for the rest), "
	    "route and state (new, deferred, active)");
	dict_walk(qs.series, put_series, out);
	dict_free(qs.series, free);

	family(out, "mxrelay_queue_oldest_message_age_seconds", "gauge",
	    "age of the oldest message in the queue (0 when empty)");
	evbuffer_add_printf(out, "mxrelay_queue_oldest_message_age_seconds %lld\n",
	    qs.oldest && now > qs.oldest ? (long long)(now - qs.oldest) : 0LL);
	family(out, "mxrelay_spool_bytes", "gauge",
	    "bytes of message data in the queue");
	evbuffer_add_printf(out, "mxrelay_spool_bytes %" PRIu64 "\n", qs.bytes);
}

/* render_fs - the spool's file system as last measured */
static void
render_fs(struct evbuffer *out)
{
	uint64_t avail, size;

	if (spoolfs_space(&avail, &size) < 0)
		return;
	family(out, "mxrelay_spool_filesystem_avail_bytes", "gauge",
	    "bytes available to mxrelayd on the spool's file system");
	evbuffer_add_printf(out, "mxrelay_spool_filesystem_avail_bytes %" PRIu64 "\n",
	    avail);
	family(out, "mxrelay_spool_filesystem_size_bytes", "gauge",
	    "size of the spool's file system");
	evbuffer_add_printf(out, "mxrelay_spool_filesystem_size_bytes %" PRIu64 "\n",
	    size);
}

/* render_domains - each domain's mode (1 for the current one, 0 for the
 * other, so that a switch shows as a step) and its scheduled switch */
static void
render_domains(struct evbuffer *out)
{
	const struct domain_info **v;
	const struct store_sched *sc;
	size_t n = store_domain_list(&v), nsched = 0;
	static const enum domain_mode modes[] = { MODE_LEGACY, MODE_HOSTED };

	family(out, "mxrelay_domain_mode", "gauge",
	    "1 for the current mode of each hosted domain, 0 for the other");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < MX_ARRAY_LEN(modes); k++) {
			series_open(out, "mxrelay_domain_mode", "domain", v[i]->name);
			evbuffer_add_printf(out, "\",mode=\"%s\"} %d\n",
			    store_mode_name(modes[k]), v[i]->mode == modes[k]);
		}
	family(out, "mxrelay_switch_scheduled_timestamp_seconds", "gauge",
	    "when a scheduled switch (relayctl switch --at) will fire, by "
	    "domain and target mode");
	for (size_t i = 0; i < n; i++) {
		if ((sc = store_domain_sched(v[i])) == NULL)
			continue;
		nsched++;
		series_open(out, "mxrelay_switch_scheduled_timestamp_seconds",
		    "domain", v[i]->name);
		evbuffer_add_printf(out, "\",mode=\"%s\"} %lld\n",
		    store_mode_name(sc->mode), (long long)sc->at);
	}
	family(out, "mxrelay_switches_scheduled", "gauge",
	    "switches scheduled for later");
	evbuffer_add_printf(out, "mxrelay_switches_scheduled %zu\n", nsched);
	free(v);
}

/* one family of the per-milter counters: which one is arg's field */
struct milter_family {
	struct evbuffer *out;
	const char *name;
	int what;			/* -1 errors, -2 messages, -3 time; else a verdict */
};

static void
put_milter(const char *milter, const struct milter_stat *st, void *arg)
{
	struct milter_family *f = arg;

	if (f->what >= 0) {
		for (int a = MILTER_ACCEPT; a <= MILTER_QUARANTINE; a++) {
			series_open(f->out, f->name, "milter", milter);
			evbuffer_add_printf(f->out, "\",verdict=\"%s\"} %" PRIu64 "\n",
			    milter_action_name(a), st->verdicts[a]);
		}
		return;
	}
	series_open(f->out, f->name, "milter", milter);
	if (f->what == -3)
		evbuffer_add_printf(f->out, "\"} %.3f\n", (double)st->time_ms / 1000);
	else
		evbuffer_add_printf(f->out, "\"} %" PRIu64 "\n",
		    f->what == -1 ? st->errors : st->messages);
}

/* render_milters - filters.milters: verdicts, failures, messages and the
 * time they took, per milter (relayctl stats: milter_NAME_*) */
static void
render_milters(struct evbuffer *out)
{
	static const struct { const char *name, *help; int what; } fams[] = {
		{ "mxrelay_milter_verdicts_total", "messages by milter and "
		    "verdict (a failure counts as its on_error verdict)", 0 },
		{ "mxrelay_milter_errors_total", "milters down, late or breaking "
		    "the protocol", -1 },
		{ "mxrelay_milter_messages_total", "messages through the milter", -2 },
		{ "mxrelay_milter_seconds_total", "seconds from DATA to the "
		    "milter's verdict, summed over its messages", -3 },
	};

	for (size_t i = 0; i < MX_ARRAY_LEN(fams); i++) {
		struct milter_family f = { out, fams[i].name, fams[i].what };

		family(out, fams[i].name, "counter", fams[i].help);
		milter_stat_walk(put_milter, &f);
	}
}

/* render_fleet - this host's lease state when a fleet shares the state */
static void
render_fleet(struct evbuffer *out)
{
	if (!fleet_enabled())
		return;
	family(out, "mxrelay_fleet_may_deliver", "gauge", "1 while this "
	    "host's fleet lease is valid and it has applied the change log "
	    "(deliveries may start), 0 otherwise");
	evbuffer_add_printf(out, "mxrelay_fleet_may_deliver %d\n",
	    fleet_may_deliver());
}

void
metrics_render(struct evbuffer *out)
{
	time_t now = time(NULL);

	family(out, "mxrelay_build_info", "gauge", "the running version");
	series_open(out, "mxrelay_build_info", "version", PACKAGE_VERSION);
	evbuffer_add_printf(out, "\"} 1\n");
	family(out, "mxrelay_start_time_seconds", "gauge",
	    "when mxrelayd started (Unix time)");
	evbuffer_add_printf(out, "mxrelay_start_time_seconds %lld\n",
	    (long long)mx_stats.started);
	render_rows(out);
	render_milters(out);
	render_queue(out, now);
	render_fs(out);
	render_domains(out);
	render_fleet(out);
	render_hist(out, "mxrelay_delivery_latency_seconds", "seconds from "
	    "arrival to delivery (2xx of the downstream), per recipient",
	    &mx_stats.delivery_latency);
	render_hist(out, "mxrelay_smtp_transaction_seconds", "seconds from MAIL "
	    "accepted to \"250 queued\", per message", &mx_stats.smtp_transaction);
}

/* metrics_accept_error - accept(2) failed (accept_pause.c) */
static void
metrics_accept_error(struct evconnlistener *l, void *arg)
{
	accept_pause_error(mt.pause);
}

int
metrics_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct evhttp_bound_socket *bound;
	char host[256];
	int port;

	if (cfg->metrics_listen == NULL)
		return 0;
	/* config.c checked the syntax */
	if (mx_split_hostport(cfg->metrics_listen, host, sizeof(host), &port, 0) < 0)
		return snprintf(err, errlen, "metrics.listen: bad address %s",
		    cfg->metrics_listen), -1;
	if ((mt.http = evhttp_new(base)) == NULL)
		return snprintf(err, errlen, "metrics: evhttp_new failed"), -1;
	metrics_http_setup(mt.http);
	if ((bound = evhttp_bind_socket_with_handle(mt.http, host, (uint16_t)port)) == NULL) {
		snprintf(err, errlen, "metrics: cannot listen on %s: %s",
		    cfg->metrics_listen, strerror(errno));
		evhttp_free(mt.http);
		mt.http = NULL;
		return -1;
	}
	/* evhttp's listener has no error callback of its own: it would spin.
	 * evhttp accepts for itself (accept_pause_ok is never called), so a
	 * later shortage starts from the pause the last one reached. */
	mt.pause = accept_pause_new(base, "metrics accept");
	accept_pause_watch(mt.pause, evhttp_bound_socket_get_listener(bound));
	evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(bound),
	    metrics_accept_error);
	log_info("metrics listening on %s%s", cfg->metrics_listen, METRICS_PATH);
	return 0;
}

void
metrics_close(void)
{
	if (mt.http == NULL)
		return;
	evhttp_free(mt.http);
	accept_pause_free(mt.pause);
	memset(&mt, 0, sizeof(mt));
}
