/* control_queue.c - relayctl queue list|show|flush|delete
 *
 * The queue manager's state is in memory (queue.h); list and flush answer
 * from it at once. show reads the file (envelope and message headers) on
 * the queue's reader worker, delete answers once the unlink is durable.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control_queue.h"
#include "jsonw.h"
#include "queue.h"
#include "util.h"

#define QCTL_TIME_MAX	64
#define QCTL_DOMAIN_MAX	255

/* qtime - local time "YYYY-MM-DD HH:MM:SS", or "-" for 0 */
static const char *
qtime(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
	return buf;
}

/* rcpt_state - what an operator calls it: new, deferred, active, ... */
static const char *
rcpt_state(const struct queue_rcpt *r)
{
	if (r->state == QUEUE_R_PENDING)
		return r->attempts > 0 || r->reply ? "deferred" : "queued";
	return queue_rstate_name(r->state);
}

/* arg_queue_domain - the optional DOMAIN argument, lower-cased */
static int
arg_queue_domain(struct ctl_ctx *ctx, char *out, size_t len, const char **dom)
{
	*dom = NULL;
	if (ctx->args.npos == 0)
		return 0;
	if (mx_strlcpy(out, ctx->args.pos[0], len) >= len || out[0] == '\0' ||
	    strpbrk(out, "@ \t<>") != NULL) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name",
		    ctx->args.pos[0]);
		return -1;
	}
	*dom = mx_lower(out);
	return 0;
}

static int
rcpt_shown(const struct queue_rcpt *r, const char *domain, int all)
{
	if (!all && r->state >= QUEUE_R_DELIVERED)
		return 0;
	return domain == NULL || queue_rcpt_in_domain(r->addr, domain);
}

static void
json_rcpt(struct jsonw *w, const struct queue_rcpt *r)
{
	jsonw_object_begin(w);
	jsonw_kv_string(w, "address", r->addr);
	jsonw_kv_string(w, "state", rcpt_state(r));
	jsonw_kv_int(w, "attempts", r->attempts);
	if (r->state == QUEUE_R_PENDING)
		jsonw_kv_int(w, "next_attempt", (int64_t)r->next);
	else
		jsonw_kv_string(w, "next_attempt", NULL);
	jsonw_kv_int(w, "last_attempt", (int64_t)r->last);
	jsonw_kv_string(w, "last_reply", r->reply);
	jsonw_object_end(w);
}

static void
human_rcpt(struct evbuffer *out, const struct queue_rcpt *r)
{
	char t[QCTL_TIME_MAX];

	evbuffer_add_printf(out, "    <%s>  %s", r->addr, rcpt_state(r));
	if (r->attempts)
		evbuffer_add_printf(out, "  attempts=%d", r->attempts);
	if (r->state == QUEUE_R_PENDING && r->next > time(NULL))
		evbuffer_add_printf(out, "  next=%s", qtime(r->next, t, sizeof(t)));
	if (r->reply)
		evbuffer_add_printf(out, "  (%s)", r->reply);
	evbuffer_add_printf(out, "\n");
}

static void
json_msg_head(struct jsonw *w, const struct queue_msg *m)
{
	jsonw_kv_string(w, "id", m->id);
	jsonw_kv_int(w, "arrival", (int64_t)m->arrival);
	jsonw_kv_int(w, "size", (int64_t)m->size);
	jsonw_kv_string(w, "sender", m->sender);
	jsonw_kv_bool(w, "bounce", m->route_mx);
	if (m->held)
		jsonw_kv_string(w, "held", m->held);
}

void
cmd_queue_list(struct ctl_ctx *ctx)
{
	char dbuf[QCTL_DOMAIN_MAX + 1], t[QCTL_TIME_MAX];
	const struct queue_msg **v;
	const char *dom;
	struct jsonw *w = NULL;
	size_t n, kept = 0;
	int64_t nr = 0;
	int held = ctl_args_has(&ctx->args, "--held");

	if (arg_queue_domain(ctx, dbuf, sizeof(dbuf), &dom) < 0)
		return;
	n = queue_snapshot(dom, &v);
	/* --held: only quarantined messages */
	for (size_t i = 0; i < n; i++)
		if (!held || v[i]->held)
			v[kept++] = v[i];
	n = kept;
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", dom);
		jsonw_key(w, "messages");
		jsonw_array_begin(w);
	} else if (n)
		evbuffer_add_printf(ctx->out, "%-16s  %-19s  %10s  %s\n", "QUEUE ID",
		    "ARRIVAL", "SIZE", "SENDER");
	for (size_t i = 0; i < n; i++) {
		const struct queue_msg *m = v[i];
		if (w) {
			jsonw_object_begin(w);
			json_msg_head(w, m);
			jsonw_key(w, "recipients");
			jsonw_array_begin(w);
		} else
			evbuffer_add_printf(ctx->out, "%-16s  %-19s  %10" PRIu64
			    "  <%s>%s%s%s%s\n", m->id, qtime(m->arrival, t, sizeof(t)),
			    m->size, m->sender, m->route_mx ? "  (bounce)" : "",
			    m->held ? "  (held: " : "", m->held ? m->held : "",
			    m->held ? ")" : "");
		for (int k = 0; k < m->nrcpts; k++) {
			if (!rcpt_shown(&m->rcpts[k], dom, 0))
				continue;
			nr++;
			if (w)
				json_rcpt(w, &m->rcpts[k]);
			else
				human_rcpt(ctx->out, &m->rcpts[k]);
		}
		if (w) {
			jsonw_array_end(w);
			jsonw_object_end(w);
		}
	}
	if (w) {
		jsonw_array_end(w);
		jsonw_kv_int(w, "count", (int64_t)n);
		jsonw_kv_int(w, "recipients", nr);
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (n == 0)
		evbuffer_add_printf(ctx->out, "%s%s%s\n", held ?
		    "no held message" : "queue is empty", dom ? " for " : "",
		    dom ? dom : "");
	else
		evbuffer_add_printf(ctx->out, "%zu message%s, %" PRId64
		    " recipient%s waiting\n", n, n == 1 ? "" : "s", nr,
		    nr == 1 ? "" : "s");
	free(v);
	control_reply(ctx, CTL_OK);
}

/* show_done - the file was read: envelope, states, headers */
static void
show_done(const struct queue_msg *m, const struct spool_entry *e,
    const char *headers, void *arg)
{
	struct ctl_ctx *ctx = arg;
	char t[QCTL_TIME_MAX];
	struct jsonw *w;

	if (m == NULL) {
		control_fail(ctx, CTL_REFUSED, "queue ID %s: not in the queue "
		    "(delivered or removed meanwhile)", ctx->args.pos[0]);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		json_msg_head(w, m);
		jsonw_kv_string(w, "client", e ? e->client : NULL);
		jsonw_kv_string(w, "helo", e ? e->helo : NULL);
		jsonw_kv_string(w, "tls", e ? e->tls : NULL);
		jsonw_kv_bool(w, "body_8bit", m->body_8bit);
		jsonw_kv_bool(w, "smtputf8", m->smtputf8);
		jsonw_key(w, "recipients");
		jsonw_array_begin(w);
		for (int k = 0; k < m->nrcpts; k++)
			json_rcpt(w, &m->rcpts[k]);
		jsonw_array_end(w);
		jsonw_key(w, "story");
		jsonw_array_begin(w);
		for (int k = 0; k < m->nstory; k++)
			jsonw_string(w, m->story[k]);
		jsonw_array_end(w);
		jsonw_kv_string(w, "headers", headers);
		jsonw_object_end(w);
		jsonw_free(w);
		control_reply(ctx, CTL_OK);
		return;
	}
	evbuffer_add_printf(ctx->out, "queue id:    %s%s\narrival:     %s\n"
	    "size:        %" PRIu64 "\nsender:      <%s>\n", m->id,
	    m->route_mx ? " (bounce, routed by MX)" : "",
	    qtime(m->arrival, t, sizeof(t)), m->size, m->sender);
	if (e)
		evbuffer_add_printf(ctx->out, "client:      %s\nhelo:        %s\n"
		    "tls:         %s\n", e->client ? e->client : "-",
		    e->helo ? e->helo : "-", e->tls ? e->tls : "none");
	evbuffer_add_printf(ctx->out, "body:        %s%s\nrecipients:\n",
	    m->body_8bit ? "8bitmime" : "7bit", m->smtputf8 ? ", smtputf8" : "");
	for (int k = 0; k < m->nrcpts; k++)
		human_rcpt(ctx->out, &m->rcpts[k]);
	/* the log lines of this message since the daemon started */
	evbuffer_add_printf(ctx->out, "story:\n");
	for (int k = 0; k < m->nstory; k++)
		evbuffer_add_printf(ctx->out, "    %s\n", m->story[k]);
	evbuffer_add_printf(ctx->out, "headers:\n");
	/* as stored: CRLF line ends become plain newlines for the terminal */
	for (const char *p = headers; *p; p++)
		if (*p != '\r')
			evbuffer_add(ctx->out, p, 1);
	if (e == NULL)
		evbuffer_add_printf(ctx->out, "(the queue file could not be read)\n");
	control_reply(ctx, CTL_OK);
}

/* arg_queue_id - the ID argument, upper-cased; unknown IDs are refused */
static int
arg_queue_id(struct ctl_ctx *ctx, char *id)
{
	const char *a = ctx->args.pos[0];
	size_t n = strlen(a);

	if (n != SPOOL_ID_LEN || strspn(a, "0123456789abcdefABCDEF") != n) {
		control_fail(ctx, CTL_REFUSED, "queue ID %.64s: not in the queue "
		    "(IDs are %d hex digits)", a, SPOOL_ID_LEN);
		return -1;
	}
	for (size_t i = 0; i <= n; i++)
		id[i] = a[i] >= 'a' && a[i] <= 'f' ? (char)(a[i] - 'a' + 'A') : a[i];
	return 0;
}

void
cmd_queue_show(struct ctl_ctx *ctx)
{
	char id[SPOOL_ID_LEN + 1];

	if (arg_queue_id(ctx, id) < 0)
		return;
	if (queue_show(id, show_done, ctx) < 0)
		control_fail(ctx, CTL_REFUSED, "queue ID %s: not in the queue", id);
}

void
cmd_queue_flush(struct ctl_ctx *ctx)
{
	char dbuf[QCTL_DOMAIN_MAX + 1];
	const char *dom;
	struct jsonw *w;
	int n;

	if (arg_queue_domain(ctx, dbuf, sizeof(dbuf), &dom) < 0)
		return;
	n = queue_make_due(dom);
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", dom);
		jsonw_kv_int(w, "recipients", n);
		jsonw_object_end(w);
		jsonw_free(w);
	} else
		evbuffer_add_printf(ctx->out, "queue flush%s%s: %d deferred "
		    "recipient%s due now\n", dom ? " " : "", dom ? dom : "", n,
		    n == 1 ? "" : "s");
	control_reply(ctx, CTL_OK);
}

/* queue_op_answer - the answer to a delete (nbounced >= 0) or a release
 * (nbounced < 0) of the ID in the first argument, once it is durable */
static void
queue_op_answer(struct ctl_ctx *ctx, int ok, const char *verb,
    const char *result, int nbounced)
{
	const char *id = ctx->args.pos[0];
	struct jsonw *w;

	if (!ok) {
		control_fail(ctx, CTL_REFUSED, "queue ID %s: %s could not be made "
		    "durable (see the log)", id, verb);
		return;
	}
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "id", id);
		jsonw_kv_string(w, "result", result);
		if (nbounced >= 0)
			jsonw_kv_int(w, "bounced", nbounced);
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (nbounced > 0)
		evbuffer_add_printf(ctx->out, "%s: %s; bounce sent to the sender "
		    "for %d recipient%s\n", id, result, nbounced,
		    nbounced == 1 ? "" : "s");
	else
		evbuffer_add_printf(ctx->out, "%s: %s\n", id, result);
	control_reply(ctx, CTL_OK);
}

static void
delete_done(int ok, int nbounced, void *arg)
{
	queue_op_answer(arg, ok, "removal", "deleted", nbounced);
}

void
cmd_queue_delete(struct ctl_ctx *ctx)
{
	char id[SPOOL_ID_LEN + 1];

	if (arg_queue_id(ctx, id) < 0)
		return;
	/* the answer names the ID as the queue writes it */
	mx_strlcpy((char *)ctx->args.pos[0], id, SPOOL_ID_LEN + 1);
	if (queue_delete(id, ctl_args_has(&ctx->args, "--bounce"), delete_done,
	    ctx) < 0)
		control_fail(ctx, CTL_REFUSED, "queue ID %s: not in the queue", id);
}

static void
release_done(int ok, void *arg)
{
	queue_op_answer(arg, ok, "release", "released", -1);
}

void
cmd_queue_release(struct ctl_ctx *ctx)
{
	char id[SPOOL_ID_LEN + 1];

	if (arg_queue_id(ctx, id) < 0)
		return;
	mx_strlcpy((char *)ctx->args.pos[0], id, SPOOL_ID_LEN + 1);
	if (queue_release(id, release_done, ctx) < 0)
		control_fail(ctx, CTL_REFUSED, "queue ID %s: not a held message "
		    "in the queue", id);
}
