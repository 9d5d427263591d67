/* expand.h - alias expansion of hosted addresses (SPEC 4, 6)
 *
 * In a hosted domain an alias stands for its destinations and an auto-CC
 * mailbox for itself plus its cc destinations. expand_address() walks the
 * address table depth-first from one address and lists every address it
 * meets, in order, with what becomes of it:
 *
 *   - an alias is replaced by its destinations (recursively);
 *   - a mailbox is delivered (to the hosting), and its cc destinations are
 *     walked too;
 *   - an address of a domain of ours in legacy mode is delivered as is by
 *     that domain's route (legacy mode never expands: the old server owns
 *     its aliases); an address of a hosted domain that is not in the table
 *     is delivered as is (the hosting decides);
 *   - an address of any other domain is an external forward;
 *   - an address reached a second time is delivered once (DUPLICATE);
 *   - an alias met again below itself is a loop (LOOP: its copy bounces
 *     with 5.4.6, the rest is delivered); so is a chain deeper than
 *     EXPAND_DEPTH_MAX.
 *
 * The table is read through a lookup function, so that the walk is pure
 * (no globals, no I/O) and unit-tested with a fake table.
 */
#ifndef MX_EXPAND_H
#define MX_EXPAND_H

#include "store.h"

#define EXPAND_DEPTH_MAX	20	/* alias levels below the address */
#define EXPAND_NODES_MAX	1000	/* addresses one expansion may list */

/* the domain of an address, as the lookup sees it */
enum expand_dom {
	EXPAND_DOM_FOREIGN = 0,	/* not a domain of ours */
	EXPAND_DOM_LEGACY,	/* ours, legacy mode */
	EXPAND_DOM_HOSTED,	/* ours, hosted mode */
};

/* lookup - the domain of addr (local@domain, as written) and, for a
 * hosted domain, its table entry (after the recipient_delimiter rule) in
 * *a, NULL when it is not in the table */
typedef enum expand_dom (*expand_lookup_fn)(const char *addr,
    const struct addr_info **a, void *arg);

enum expand_kind {
	EXPAND_ALIAS,		/* hosted alias: replaced by its destinations */
	EXPAND_MAILBOX,		/* hosted mailbox: delivered to the hosting */
	EXPAND_UNKNOWN,		/* hosted domain, not in the table: delivered as is */
	EXPAND_LEGACY,		/* domain of ours in legacy mode: its route, as is */
	EXPAND_EXTERNAL,	/* another domain: forwarded by MX (SRS sender) */
	EXPAND_DUPLICATE,	/* reached before: dropped */
	EXPAND_LOOP,		/* alias loop or too deep: bounced (5.4.6) */
};

struct expand_node {
	char *addr;		/* as written in the table (root: as given) */
	enum expand_kind kind;
	int depth;		/* 0: the address expanded */
};

struct expand_result {
	struct expand_node *v;	/* depth-first order, parents first */
	int n, cap;
	int overflow;		/* more than EXPAND_NODES_MAX: walk stopped */
};

/* expand_address - walk addr; res is filled (free it with
 * expand_result_free). Returns 0, or -1 on overflow. */
int expand_address(const char *addr, expand_lookup_fn lookup, void *arg,
    struct expand_result *res);
void expand_result_free(struct expand_result *);

/* expand_delivers - is a node of this kind delivered (a leaf copy)? */
int expand_delivers(enum expand_kind);
/* expand_kind_name - "alias", "mailbox", "unknown", "legacy",
 * "external", "duplicate", "loop" */
const char *expand_kind_name(enum expand_kind);
/* expand_needed - does addr (with its entry a in a hosted domain) expand
 * into something else than itself: an alias, or a mailbox with cc? */
int expand_needed(const struct addr_info *a);

#endif
