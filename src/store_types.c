/* store_types.c - the store's values: address entries, domain entries,
 * mode, route and MX picture names, server formatting (no state, no
 * database) */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "store.h"
#include "store_priv.h"
#include "util.h"

const char *
store_mode_name(enum domain_mode m)
{
	return m == MODE_HOSTED ? "hosted" : "legacy";
}

/* Pilot routes and MX pictures */

static const char *const route_names[] = { "domain", "hosted", "legacy" };

const char *
store_route_name(enum addr_route r)
{
	return (unsigned)r < MX_ARRAY_LEN(route_names) ? route_names[r] : "domain";
}

int
store_route_parse(const char *s, enum addr_route *out)
{
	for (size_t i = 0; i < MX_ARRAY_LEN(route_names); i++)
		if (strcmp(s, route_names[i]) == 0) {
			*out = (enum addr_route)i;
			return 0;
		}
	return -1;
}

enum domain_mode
store_address_mode(const struct domain_info *d, const struct addr_info *a)
{
	if (a != NULL && a->route == ADDR_ROUTE_HOSTED)
		return MODE_HOSTED;
	if (a != NULL && a->route == ADDR_ROUTE_LEGACY)
		return MODE_LEGACY;
	return d->mode;
}

static const char *const picture_names[] = { "unknown", "other", "mixed", "ours" };

const char *
store_mx_picture_name(enum mx_picture p)
{
	return (unsigned)p < MX_ARRAY_LEN(picture_names) ? picture_names[p] :
	    "unknown";
}


enum mx_picture
store_mx_picture_parse(const char *s)
{
	for (size_t i = 0; i < MX_ARRAY_LEN(picture_names); i++)
		if (strcmp(s, picture_names[i]) == 0)
			return (enum mx_picture)i;
	return MX_UNKNOWN;
}

/* addr_info helpers */

void
store_addr_free(struct addr_info *a)
{
	if (a == NULL)
		return;
	for (int i = 0; i < a->ndests; i++)
		free(a->dests[i]);
	for (int i = 0; i < a->ncc; i++)
		free(a->cc[i]);
	free(a->dests);
	free(a->cc);
	free(a->address);
	free(a);
}

static void
addr_free_cb(void *a)
{
	store_addr_free(a);
}

static char **
list_dup(char *const *l, int n)
{
	char **c = xcalloc((size_t)n + 1, sizeof(char *));

	for (int i = 0; i < n; i++)
		c[i] = xstrdup(l[i]);
	return c;
}

struct addr_info *
store_addr_dup(const struct addr_info *a)
{
	struct addr_info *c = xcalloc(1, sizeof(*c));

	c->address = xstrdup(a->address);
	c->kind = a->kind;
	c->nofilter = a->nofilter;
	c->route = a->route;
	c->dests = list_dup(a->dests, a->ndests);
	c->ndests = a->ndests;
	c->cc = list_dup(a->cc, a->ncc);
	c->ncc = a->ncc;
	return c;
}

static int
list_equal(char *const *a, int na, char *const *b, int nb)
{
	if (na != nb)
		return 0;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return 0;
	return 1;
}

int
store_addr_equal(const struct addr_info *a, const struct addr_info *b)
{
	return strcmp(a->address, b->address) == 0 && a->kind == b->kind &&
	    !a->nofilter == !b->nofilter &&
	    list_equal(a->dests, a->ndests, b->dests, b->ndests) &&
	    list_equal(a->cc, a->ncc, b->cc, b->ncc);
}

void
store_server_format(const struct legacy_server *s, char *buf, size_t len)
{
	if (strchr(s->host, ':'))
		snprintf(buf, len, "[%s]:%d", s->host, s->port);
	else
		snprintf(buf, len, "%s:%d", s->host, s->port);
}

void
store_verified_entry_free(void *p)
{
	struct store_verified *v = p;

	if (v == NULL)
		return;
	free(v->address);
	free(v);
}

void
store_entry_free(void *p)
{
	struct domain_entry *d = p;

	if (d == NULL)
		return;
	dict_free(d->addrs, addr_free_cb);
	dict_free(d->verified, store_verified_entry_free);
	free(d->info.servers);
	free(d->info.name);
	free(d);
}

struct domain_entry *
store_entry_new(const char *name, enum domain_mode mode, time_t created)
{
	struct domain_entry *d = xcalloc(1, sizeof(*d));

	d->info.name = xstrdup(name);
	d->info.mode = mode;
	d->created = created;
	d->addrs = dict_new();
	d->verified = dict_new();
	return d;
}

/* list_split - the column form back into a list; returns the count */
static int
list_split(const char *s, char ***out)
{
	int n = 0, cap = 0;
	char **l = NULL;
	const char *comma;

	while (s && *s) {
		comma = strchr(s, ',');
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 4;
			l = xrealloc(l, (size_t)cap * sizeof(char *));
		}
		l[n++] = comma ? xstrndup(s, (size_t)(comma - s)) : xstrdup(s);
		s = comma ? comma + 1 : NULL;
	}
	if (l == NULL)
		l = xcalloc(1, sizeof(char *));
	*out = l;
	return n;
}

/* store_addr_from_columns - an address as the database stores it */
struct addr_info *
store_addr_from_columns(const char *address, const char *kind,
    const char *dests, const char *cc, int nofilter)
{
	struct addr_info *a = xcalloc(1, sizeof(*a));

	a->address = xstrdup(address);
	a->kind = strcmp(kind, "alias") == 0 ? ADDR_ALIAS : ADDR_MAILBOX;
	a->ndests = list_split(dests, &a->dests);
	a->ncc = list_split(cc, &a->cc);
	a->nofilter = nofilter != 0;
	return a;
}
