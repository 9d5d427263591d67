/* test_refused.c - the unknown-recipient report's Space-Saving table */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refused.h"
#include "tap.h"

/* a few addresses seen often among a flood of ones seen once stay on top
 * with their exact counts (they never left the table) */
static void
test_frequent_survive_flood(void)
{
	struct refused_table *t = calloc(1, sizeof(*t));
	const struct refused_entry **v;
	char addr[64];
	size_t n;

	for (int i = 0; i < 20000; i++) {
		snprintf(addr, sizeof(addr), "r%d@example.test", i);
		refused_table_note(t, addr, 1000 + i);
		if (i % 100 == 0)
			refused_table_note(t, "jhon@example.test", 1000 + i);
		if (i % 200 == 0)
			refused_table_note(t, "sales-team@example.test", 1000 + i);
	}
	n = refused_table_sorted(t, &v);
	is_int((long)n, REFUSED_ENTRIES_MAX, "the table never grows past its bound");
	is_int((long)t->total, 20000 + 200 + 100, "every refusal is counted in the total");
	is_str(v[0]->addr, "jhon@example.test", "the most frequent typo first");
	is_int((long)v[0]->count, 200, "its count is exact");
	is_int((long)v[0]->error, 0, "no error: it never left the table");
	is_int((long)v[0]->first, 1000, "first seen");
	is_int((long)v[0]->last, 1000 + 19900, "last seen");
	is_str(v[1]->addr, "sales-team@example.test", "the second one next");
	is_int((long)v[1]->count, 100, "its count");
	ok(v[2]->count < 100, "the flood stays below them (%lu)",
	    (unsigned long)v[2]->count);
	free(v);
	free(t);
}

/* a newcomer takes the least counted entry and inherits its count */
static void
test_replacement(void)
{
	struct refused_table *t = calloc(1, sizeof(*t));
	const struct refused_entry **v;
	char addr[64];
	int fail = 0;

	for (int i = 0; i < REFUSED_ENTRIES_MAX; i++) {
		snprintf(addr, sizeof(addr), "a%03d@d.test", i);
		refused_table_note(t, addr, 1);
		if (i > 0)
			refused_table_note(t, addr, 1);
	}
	refused_table_note(t, "new@d.test", 5);
	refused_table_sorted(t, &v);
	is_int((long)t->n, REFUSED_ENTRIES_MAX, "still full");
	for (size_t i = 0; i < t->n; i++)
		if (v[i]->addr[0] == 'n') {
			is_int((long)v[i]->count, 2, "newcomer: the minimum (1) plus one");
			is_int((long)v[i]->error, 1, "newcomer: error is the inherited count");
			is_int((long)v[i]->first, 5, "newcomer: first seen now");
		}
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(v[i]->addr, "a000@d.test") == 0)
			fail++;
	is_int(fail, 0, "the entry seen once (a000) was the one replaced");
	free(v);
	free(t);
}

int
main(void)
{
	test_frequent_survive_flood();
	test_replacement();
	return done_testing();
}
