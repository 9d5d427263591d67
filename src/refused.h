/* refused.h - the unknown-recipient report (SPEC 10, relayctl address list
 * DOMAIN --refused)
 *
 * Every RCPT refused as unknown for a hosted domain is counted per
 * canonical address in a fixed table of REFUSED_ENTRIES_MAX entries per
 * domain, kept by frequency with the Space-Saving algorithm (Metwally,
 * Agrawal, El Abbadi, 2005): a known address counts up; a new one takes a
 * free entry, or else the entry with the lowest count, inheriting that
 * count plus one (its "error" records the inheritance). Any address seen
 * more than total/REFUSED_ENTRIES_MAX times is guaranteed to be in the
 * table, and its count is over-estimated by at most its error. A flood of
 * random addresses only churns the low entries: memory is
 * REFUSED_ENTRIES_MAX * sizeof(struct refused_entry) per hosted domain
 * (about 90 KiB), allocated at the domain's first refusal and freed with
 * the domain. In memory only: counts since the daemon started, per host.
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
	uint64_t count;			/* refusals (an upper bound) */
	uint64_t error;			/* count inherited from the entry it
					 * replaced: count - error is a lower
					 * bound */
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
