/* route.c - the route of a recipient, from its domain's mode right now
 *
 * Nothing about routes is stored with a message: every attempt asks here,
 * so a switch applies to the very next attempt (SPEC 6, 7).
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expand.h"
#include "log.h"
#include "route.h"
#include "store.h"
#include "util.h"

static const struct config *route_cfg;

const char *
route_kind_name(enum route_kind k)
{
	static const char *const names[] = {
		[ROUTE_LEGACY] = "legacy", [ROUTE_HOSTED] = "hosted",
		[ROUTE_MX] = "mx",
	};

	return (unsigned)k < MX_ARRAY_LEN(names) ? names[k] : "?";
}

void
route_init(const struct config *cfg)
{
	route_cfg = cfg;
}

/* route_key_add - append "host:port" to the grouping key: "smtp:a:25,b:25" */
static void
route_key_add(struct route *r, const struct route_hop *h)
{
	size_t len = strlen(r->key);
	int first = len > 0 && r->key[len - 1] == ':';

	snprintf(r->key + len, sizeof(r->key) - len, "%s%s%s:%d", first ? "" : ",",
	    h->mx_lookup ? "mx:" : "", h->unix_path[0] ? h->unix_path : h->host, h->port);
}

/* server_cmp - preference, then host and port: the order of the key */
static int
server_cmp(const void *a, const void *b)
{
	const struct legacy_server *x = a, *y = b;
	int c;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	if ((c = strcmp(x->host, y->host)) != 0)
		return c;
	return x->port - y->port;
}

/* route_legacy - the domain's servers by preference; equal preferences
 * in random order (SPEC 4), each contacted at its address records */
static enum route_result
route_legacy(const struct domain_info *d, struct route *r, char *why, size_t whylen)
{
	struct legacy_server s[ROUTE_MAX_HOPS];
	int n = d->nservers < ROUTE_MAX_HOPS ? d->nservers : ROUTE_MAX_HOPS;

	if (n == 0) {
		snprintf(why, whylen, "domain %s is in legacy mode and has no legacy server", d->name);
		return ROUTE_DEFER;
	}
	/* The key names the server set in a fixed order, so that every
	 * attempt for it shares one destination (connections, limits). */
	memcpy(s, d->servers, sizeof(s[0]) * (size_t)n);
	qsort(s, (size_t)n, sizeof(s[0]), server_cmp);
	r->kind = ROUTE_LEGACY;
	mx_strlcpy(r->key, "smtp:", sizeof(r->key));
	for (int i = 0; i < n; i++) {
		struct route_hop h = { .port = s[i].port };
		mx_strlcpy(h.host, s[i].host, sizeof(h.host));
		route_key_add(r, &h);
	}
	/* The hops: equal preferences in random order (SPEC 4) */
	for (int i = 0; i < n; ) {
		int j = i;
		while (j < n && s[j].pref == s[i].pref)
			j++;
		for (int k = j - 1; k > i; k--) {
			int m = i + (int)arc4random_uniform((uint32_t)(k - i + 1));
			struct legacy_server t = s[k];
			s[k] = s[m];
			s[m] = t;
		}
		i = j;
	}
	for (int i = 0; i < n; i++) {
		struct route_hop *h = &r->hops[r->nhops++];
		mx_strlcpy(h->host, s[i].host, sizeof(h->host));
		h->port = s[i].port;
	}
	return ROUTE_OK;
}

void
route_for_server(const struct legacy_server *s, struct route *r)
{
	struct route_hop *h;

	memset(r, 0, sizeof(*r));
	r->kind = ROUTE_LEGACY;
	h = &r->hops[r->nhops++];
	mx_strlcpy(h->host, s->host, sizeof(h->host));
	h->port = s->port;
	mx_strlcpy(r->key, "smtp:", sizeof(r->key));
	route_key_add(r, h);
}

enum route_result
route_for_legacy(const struct domain_info *d, struct route *r, char *why,
    size_t whylen)
{
	memset(r, 0, sizeof(*r));
	return route_legacy(d, r, why, whylen);
}

/* rcpt_entry - the table entry of rcpt (canonical) in its domain, or NULL */
static const struct addr_info *
rcpt_entry(const char *rcpt)
{
	return store_address(rcpt, route_cfg->recipient_delimiter);
}

int
route_for_hosting(struct route *r, char *why, size_t whylen)
{
	struct destination dest;
	struct route_hop *h;
	char err[128];

	memset(r, 0, sizeof(*r));
	if (route_cfg->hosting_destination == NULL) {
		snprintf(why, whylen, "hosting.destination is not set");
		return -1;
	}
	if (destination_parse(route_cfg->hosting_destination, &dest, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "hosting.destination: %s", err);
		return -1;
	}
	r->kind = ROUTE_HOSTED;
	r->lmtp = dest.lmtp;
	h = &r->hops[r->nhops++];
	mx_strlcpy(h->host, dest.host, sizeof(h->host));
	mx_strlcpy(h->unix_path, dest.unix_path, sizeof(h->unix_path));
	h->mx_lookup = dest.mx_lookup;
	h->port = dest.port_set || dest.lmtp ? dest.port : route_cfg->smtp_port;
	snprintf(r->key, sizeof(r->key), "%s:", dest.lmtp ? "lmtp" : "smtp");
	route_key_add(r, h);
	return 0;
}

/* route_hosted - hosting.destination; an alias or auto-CC mailbox must be
 * expanded first unless it is delivered as it is (leaf) */
static enum route_result
route_hosted(const struct domain_info *d, const char *rcpt, int leaf,
    struct route *r, char *why, size_t whylen)
{
	char err[256];

	if (route_for_hosting(r, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "domain %s is hosted but %s", d->name, err);
		return ROUTE_DEFER;
	}
	if (!leaf && expand_needed(rcpt_entry(rcpt))) {
		snprintf(why, whylen, "%s expands to other addresses", rcpt);
		return ROUTE_EXPAND;
	}
	return ROUTE_OK;
}

/* route_of - the route of rcpt by its domain's mode now */
static enum route_result
route_of(const char *rcpt, int leaf, struct route *r, char *why, size_t whylen)
{
	const struct domain_info *d;
	const char *at = strrchr(rcpt, '@');

	memset(r, 0, sizeof(*r));
	if (at == NULL || (d = store_domain(at + 1)) == NULL) {
		snprintf(why, whylen, "domain of %s is no longer hosted here", rcpt);
		return ROUTE_FAIL;
	}
	/* a pilot address goes by its own override (SPEC 10) */
	if (store_address_mode(d, rcpt_entry(rcpt)) == MODE_HOSTED)
		return route_hosted(d, rcpt, leaf, r, why, whylen);
	return route_legacy(d, r, why, whylen);
}

enum route_result
route_for_rcpt(const char *rcpt, struct route *r, char *why, size_t whylen)
{
	return route_of(rcpt, 0, r, why, whylen);
}

enum route_result
route_for_leaf(const char *rcpt, struct route *r, char *why, size_t whylen)
{
	return route_of(rcpt, 1, r, why, whylen);
}

/* expand_lookup - expand.c's view of the store: domain modes now, and
 * the entries of hosted domains after the recipient_delimiter rule */
static enum expand_dom
expand_lookup(const char *addr, const struct addr_info **a, void *arg)
{
	const char *at = strrchr(addr, '@');
	const struct domain_info *d;

	(void)arg;
	*a = NULL;
	if (at == NULL || (d = store_domain(at + 1)) == NULL)
		return EXPAND_DOM_FOREIGN;
	/* a pilot address goes by its own override (SPEC 10) */
	*a = rcpt_entry(addr);
	if (store_address_mode(d, *a) != MODE_HOSTED) {
		*a = NULL;
		return EXPAND_DOM_LEGACY;
	}
	return EXPAND_DOM_HOSTED;
}

int
route_expand(const char *addr, struct expand_result *res)
{
	return expand_address(addr, expand_lookup, NULL, res);
}

void
route_for_mx(const char *domain, struct route *r)
{
	struct route_hop *h;

	memset(r, 0, sizeof(*r));
	r->kind = ROUTE_MX;
	h = &r->hops[r->nhops++];
	mx_strlcpy(h->host, domain, sizeof(h->host));
	h->mx_lookup = 1;
	h->port = route_cfg->smtp_port;
	mx_strlcpy(r->key, "smtp:", sizeof(r->key));
	route_key_add(r, h);
}

int
route_is_current(const struct route *r, const char *rcpt)
{
	struct route now;
	char why[256];

	if (r->kind == ROUTE_MX)
		return 1;
	if (route_for_leaf(rcpt, &now, why, sizeof(why)) != ROUTE_OK)
		return 0;
	/* The key names the protocol and the server set in a fixed order
	 * (the shuffle of equal preferences does not change it) */
	if (now.kind != r->kind || strcmp(now.key, r->key) != 0)
		return 0;
	return 1;
}
