/* test_refused.c - the unknown-recipient report's fixed frequency table */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refused.h"
#include "tap.h"

/* a few addresses seen often among a flood of ones seen once stay on top
 * with their exact counts, and the flood goes on after them without
 * pushing them out */
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
	for (int i = 0; i < 100000; i++) {
		snprintf(addr, sizeof(addr), "f%d@example.test", i);
		refused_table_note(t, addr, 30000 + i);
	}
	n = refused_table_sorted(t, &v);
	is_int((long)n, REFUSED_ENTRIES_MAX, "the table never grows past its bound");
	is_int((long)t->total, 120000 + 200 + 100, "every refusal is counted in the total");
	is_str(v[0]->addr, "jhon@example.test", "the most frequent typo first");
	is_int((long)v[0]->count, 200, "its count is exact");
	is_int((long)v[0]->first, 1000, "first seen");
	is_int((long)v[0]->last, 1000 + 19900, "last seen");
	is_str(v[1]->addr, "sales-team@example.test", "the second one next");
	is_int((long)v[1]->count, 100, "its count");
	is_int((long)v[2]->count, 1, "the flood: seen once each");
	is_int((long)v[2]->last >= 30000, 1, "the flood: the latest ones are kept");
	free(v);
	free(t);
}

/* a newcomer takes the least counted entry, of those the least recently
 * seen, and starts at 1; case does not make another address */
static void
test_replacement(void)
{
	struct refused_table *t = calloc(1, sizeof(*t));
	const struct refused_entry **v;
	char addr[64];
	int found = 0, old = 0;

	for (int i = 0; i < REFUSED_ENTRIES_MAX; i++) {
		snprintf(addr, sizeof(addr), "a%03d@d.test", i);
		refused_table_note(t, addr, 10 + i);
		if (i >= 2)
			refused_table_note(t, addr, 10 + i);
	}
	refused_table_note(t, "New@d.test", 500);
	refused_table_note(t, "NEW@d.test", 501);
	refused_table_sorted(t, &v);
	is_int((long)t->n, REFUSED_ENTRIES_MAX, "still full");
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(v[i]->addr, "new@d.test") == 0) {
			found++;
			is_int((long)v[i]->count, 2, "newcomer: counted from 1, both cases");
			is_int((long)v[i]->first, 500, "newcomer: first seen");
		}
		if (strcmp(v[i]->addr, "a000@d.test") == 0)
			old++;
	}
	is_int(found, 1, "one entry for new@d.test");
	is_int(old, 0, "a000 (seen once, least recently) was replaced");
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
