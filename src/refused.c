/* refused.c - the unknown-recipient report: Space-Saving tables per domain
 * (see refused.h for the algorithm and its memory bound)
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "refused.h"
#include "util.h"

static struct dict *tables;		/* domain -> struct refused_table */

/* refused_table_note - one refusal. A linear scan of at most
 * REFUSED_ENTRIES_MAX entries: a few microseconds, and no index to keep
 * in step when the minimum entry is replaced. */
void
refused_table_note(struct refused_table *t, const char *addr, time_t now)
{
	struct refused_entry *e, *min = NULL;

	t->total++;
	for (size_t i = 0; i < t->n; i++) {
		e = &t->v[i];
		if (strcmp(e->addr, addr) == 0) {
			e->count++;
			e->last = now;
			return;
		}
		if (min == NULL || e->count < min->count)
			min = e;
	}
	if (t->n < REFUSED_ENTRIES_MAX) {
		e = &t->v[t->n++];
		e->count = 1;
		e->error = 0;
	} else {
		/* Space-Saving: the newcomer takes the least counted entry
		 * and its count, which bounds how often it may have been seen
		 * while it was out of the table */
		e = min;
		e->error = e->count;
		e->count++;
	}
	mx_strlcpy(e->addr, addr, sizeof(e->addr));
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
