/* refused.h - the unknown-recipient report (SPEC 10, relayctl address list
 * DOMAIN --refused)
 *
 * Every RCPT refused as unknown for a hosted domain is counted per
 * address (its canonical form, lower-cased as the table's lookup is) in a
 * fixed table of REFUSED_ENTRIES_MAX entries per domain, kept by
 * frequency: a known address counts up; a new one takes a free entry, or
 * else replaces the least counted entry (of those, the one seen least
 * recently) and starts at 1. So a flood of random addresses, each seen
 * once, only replaces entries seen once, and an address seen twice or
 * more (a typo, a forgotten alias) stays until more frequent ones push it
 * out. Counts are exact for as long as the address stays in the table.
 * (Space-Saving's inherited counts would let a long enough flood of
 * one-off addresses push out every typo: the wrong trade for this
 * report.) Memory: REFUSED_ENTRIES_MAX * sizeof(struct refused_entry),
 * about 72 KiB, per hosted domain with a refusal, allocated at its first
 * and freed with the domain; a flood cannot grow it. In memory only:
 * counts since the daemon started, per host.
 * Loop thread only.
 */
#ifndef MX_REFUSED_H
#define MX_REFUSED_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "smtp_parse.h"

#define REFUSED_ENTRIES_MAX	256	/* addresses kept per domain */

struct refused_entry {
	char addr[SMTP_PATH_MAX + 1];	/* canonical local@domain */
	uint64_t count;			/* refusals since it entered */
	time_t first, last;		/* first: when it entered the table */
};

/* one domain's table */
struct refused_table {
	struct refused_entry v[REFUSED_ENTRIES_MAX];
	size_t n;			/* entries in use */
	uint64_t total;			/* refusals counted, all addresses */
};

/* refused_table_note - count one refusal of addr at now (pure; the unit
 * test drives it) */
void refused_table_note(struct refused_table *t, const char *addr, time_t now);
/* refused_table_sorted - pointers to t's entries, most frequent first
 * (then by address); returns the count; *out is malloc'd */
size_t refused_table_sorted(const struct refused_table *t,
    const struct refused_entry ***out);

/* refused_note - a RCPT to addr (canonical, of a hosted domain) was
 * refused as unknown */
void refused_note(const char *addr);
/* refused_table - the domain's table (lower case), or NULL when none of
 * its recipients was refused */
const struct refused_table *refused_table(const char *domain);
/* refused_forget - drop the domain's table (the domain was removed) */
void refused_forget(const char *domain);
void refused_close(void);

#endif
