/* refused.c - the unknown-recipient report: a fixed frequency table per domain
 * (see refused.h for the replacement rule and the memory bound)
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "refused.h"
#include "util.h"

static struct dict *tables;		/* domain -> struct refused_table */

/* refused_table_note - one refusal. A linear scan of at most
 * REFUSED_ENTRIES_MAX entries (a few microseconds): no index to keep in
 * step when an entry is replaced. */
void
refused_table_note(struct refused_table *t, const char *addr, time_t now)
{
	struct refused_entry *e, *min = NULL;
	char key[SMTP_PATH_MAX + 1];

	/* one entry per table entry: the lookup ignores case */
	mx_strlcpy(key, addr, sizeof(key));
	mx_lower(key);
	t->total++;
	for (size_t i = 0; i < t->n; i++) {
		e = &t->v[i];
		if (strcmp(e->addr, key) == 0) {
			e->count++;
			e->last = now;
			return;
		}
		if (min == NULL || e->count < min->count ||
		    (e->count == min->count && e->last < min->last))
			min = e;
	}
	e = t->n < REFUSED_ENTRIES_MAX ? &t->v[t->n++] : min;
	memcpy(e->addr, key, sizeof(e->addr));
	e->count = 1;
	e->first = e->last = now;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct refused_entry *x = *(const struct refused_entry *const *)a;
	const struct refused_entry *y = *(const struct refused_entry *const *)b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->addr, y->addr);
}

size_t
refused_table_sorted(const struct refused_table *t,
    const struct refused_entry ***out)
{
	const struct refused_entry **v = xcalloc(t->n ? t->n : 1, sizeof(*v));

	for (size_t i = 0; i < t->n; i++)
		v[i] = &t->v[i];
	qsort(v, t->n, sizeof(*v), entry_cmp);
	*out = v;
	return t->n;
}

void
refused_note(const char *addr)
{
	const char *at = strrchr(addr, '@');
	struct refused_table *t;

	if (at == NULL)
		return;
	if (tables == NULL)
		tables = dict_new();
	if ((t = dict_get(tables, at + 1)) == NULL) {
		t = xcalloc(1, sizeof(*t));
		dict_put(tables, at + 1, t);
	}
	refused_table_note(t, addr, time(NULL));
}

const struct refused_table *
refused_table(const char *domain)
{
	return tables ? dict_get(tables, domain) : NULL;
}

void
refused_forget(const char *domain)
{
	if (tables)
		free(dict_del(tables, domain));
}

void
refused_close(void)
{
	if (tables)
		dict_free(tables, free);
	tables = NULL;
}
