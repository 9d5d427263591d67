/* control_verify.c - what recipient verification learnt (SPEC 10)
 *
 * address list DOMAIN --verified: the addresses the old server accepted
 * for the domain (verify.h), with when and until when. address learn
 * DOMAIN: those not in the table yet are added to it as mailboxes, in one
 * import transaction with import's report, so that the table the hosting
 * needs fills itself while the domain is filtered.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control_verify.h"
#include "jsonw.h"
#include "store.h"
#include "switch.h"
#include "table_import.h"
#include "util.h"

/* arg_verify_domain - the existing domain of pos[0], or NULL (answered) */
static const struct domain_info *
arg_verify_domain(struct ctl_ctx *ctx)
{
	char name[SMTP_DOMAIN_MAX + 1];
	const struct domain_info *d;

	if (mx_strlcpy(name, ctx->args.pos[0], sizeof(name)) >= sizeof(name) ||
	    !import_domain_valid(name)) {
		control_fail(ctx, CTL_USAGE, "domain %.300s: invalid domain name",
		    ctx->args.pos[0]);
		return NULL;
	}
	if ((d = store_domain(mx_lower(name))) == NULL)
		control_fail(ctx, CTL_REFUSED, "domain %s: not found", name);
	return d;
}

void
cmd_address_list_verified(struct ctl_ctx *ctx)
{
	const struct domain_info *d = arg_verify_domain(ctx);
	struct store_verified *v;
	char t1[SWITCH_TIME_MAX], t2[SWITCH_TIME_MAX];
	time_t now = time(NULL);
	struct jsonw *w;
	size_t n;

	if (d == NULL)
		return;
	n = store_domain_verified(d, &v);
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "domain", d->name);
		jsonw_kv_bool(w, "verify_legacy", d->verify_legacy);
		jsonw_key(w, "verified");
		jsonw_array_begin(w);
		for (size_t i = 0; i < n; i++) {
			jsonw_object_begin(w);
			jsonw_kv_string(w, "address", v[i].address);
			jsonw_kv_int(w, "verified", (int64_t)v[i].verified);
			jsonw_kv_int(w, "expires", (int64_t)v[i].expires);
			jsonw_kv_bool(w, "expired", v[i].expires <= now);
			jsonw_kv_bool(w, "in_table", store_address(v[i].address,
			    '\0') != NULL);
			jsonw_object_end(w);
		}
		jsonw_array_end(w);
		jsonw_object_end(w);
		jsonw_free(w);
	} else if (n == 0)
		evbuffer_add_printf(ctx->out, "%s: no address verified at the "
		    "legacy servers%s\n", d->name, d->verify_legacy ? "" :
		    " (--verify-legacy is off)");
	for (size_t i = 0; !ctx->json && i < n; i++)
		evbuffer_add_printf(ctx->out, "%s  verified %s, until %s%s%s\n",
		    v[i].address, switch_format_time(v[i].verified, t1, sizeof(t1)),
		    switch_format_time(v[i].expires, t2, sizeof(t2)),
		    v[i].expires <= now ? " (expired)" : "",
		    store_address(v[i].address, '\0') ? " (in the table)" : "");
	store_verified_free(v, n);
	control_reply(ctx, CTL_OK);
}

void
cmd_address_learn(struct ctl_ctx *ctx)
{
	const struct domain_info *d = arg_verify_domain(ctx);
	struct store_verified *v;
	struct evbuffer *text;
	char *buf;
	size_t n, len;

	if (d == NULL)
		return;
	if ((text = evbuffer_new()) == NULL) {
		control_fail(ctx, CTL_REFUSED, "out of memory");
		return;
	}
	/* an address already in the table keeps its definition (an alias
	 * stays an alias): only the new ones are added, as mailboxes */
	n = store_domain_verified(d, &v);
	for (size_t i = 0; i < n; i++)
		if (store_address(v[i].address, '\0') == NULL)
			evbuffer_add_printf(text, "%s\n", v[i].address);
	store_verified_free(v, n);
	len = evbuffer_get_length(text);
	buf = xmalloc(len + 1);
	evbuffer_remove(text, buf, len);
	buf[len] = '\0';
	evbuffer_free(text);
	control_import_text(ctx, d->name, "(verified addresses)", buf, len);
}
