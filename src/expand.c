/* expand.c - alias expansion of hosted addresses
 *
 * A depth-first walk with two small sets: every address met so far (an
 * address reached twice is delivered once, and an alias reached twice is
 * not walked twice, which also keeps diamond-shaped tables linear), and
 * the aliases on the path from the root to the current node (meeting one
 * of those again is a loop). Addresses are compared case-insensitively by
 * their table entry when they have one (joe+tag@d and joe@d are the same
 * mailbox), else by the address itself. The sets are arrays searched
 * linearly: an expansion lists at most EXPAND_NODES_MAX addresses.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "expand.h"
#include "util.h"

struct walk {
	expand_lookup_fn lookup;
	void *arg;
	struct expand_result *res;
	char **seen;			/* keys met so far */
	int nseen;
	const char *path[EXPAND_DEPTH_MAX + 2];	/* aliases from the root down */
	int npath;
};

int
expand_needed(const struct addr_info *a)
{
	return a != NULL && (a->kind == ADDR_ALIAS || a->ncc > 0);
}

int
expand_delivers(enum expand_kind k)
{
	return k == EXPAND_MAILBOX || k == EXPAND_UNKNOWN ||
	    k == EXPAND_LEGACY || k == EXPAND_EXTERNAL;
}

const char *
expand_kind_name(enum expand_kind k)
{
	static const char *const names[] = {
		[EXPAND_ALIAS] = "alias", [EXPAND_MAILBOX] = "mailbox",
		[EXPAND_UNKNOWN] = "unknown", [EXPAND_LEGACY] = "legacy",
		[EXPAND_EXTERNAL] = "external", [EXPAND_DUPLICATE] = "duplicate",
		[EXPAND_LOOP] = "loop",
	};

	return (unsigned)k < MX_ARRAY_LEN(names) ? names[k] : "?";
}

/* node_add - append a node; 0, or -1 when the result is full */
static int
node_add(struct walk *w, const char *addr, enum expand_kind kind, int depth)
{
	struct expand_result *r = w->res;

	if (r->n >= EXPAND_NODES_MAX) {
		r->overflow = 1;
		return -1;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xrealloc(r->v, (size_t)r->cap * sizeof(*r->v));
	}
	r->v[r->n].addr = xstrdup(addr);
	r->v[r->n].kind = kind;
	r->v[r->n].depth = depth;
	r->n++;
	return 0;
}

static int
in_list(const char *const *l, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(l[i], key) == 0)
			return 1;
	return 0;
}

/* walk_addr - the node of addr at depth, then what it stands for */
static void
walk_addr(struct walk *w, const char *addr, int depth)
{
	const struct addr_info *a = NULL;
	enum expand_dom dom;
	const char *key;
	int i;

	if (w->res->overflow)
		return;
	dom = w->lookup(addr, &a, w->arg);
	if (dom != EXPAND_DOM_HOSTED)
		a = NULL;
	key = a ? a->address : addr;
	/* RFC 5321 6.1 wants loops detected, RFC 3463 names them 5.4.6 */
	if ((a && a->kind == ADDR_ALIAS && in_list(w->path, w->npath, key)) ||
	    depth > EXPAND_DEPTH_MAX) {
		node_add(w, addr, EXPAND_LOOP, depth);
		return;
	}
	if (in_list((const char *const *)w->seen, w->nseen, key)) {
		node_add(w, addr, EXPAND_DUPLICATE, depth);
		return;
	}
	w->seen = xrealloc(w->seen, (size_t)(w->nseen + 1) * sizeof(*w->seen));
	w->seen[w->nseen++] = xstrdup(key);
	switch (dom) {
	case EXPAND_DOM_FOREIGN:
		node_add(w, addr, EXPAND_EXTERNAL, depth);
		return;
	case EXPAND_DOM_LEGACY:
		node_add(w, addr, EXPAND_LEGACY, depth);
		return;
	case EXPAND_DOM_HOSTED:
		break;
	}
	if (a == NULL) {
		node_add(w, addr, EXPAND_UNKNOWN, depth);
		return;
	}
	if (a->kind == ADDR_ALIAS) {
		if (node_add(w, addr, EXPAND_ALIAS, depth) < 0)
			return;
		w->path[w->npath++] = a->address;
		for (i = 0; i < a->ndests; i++)
			walk_addr(w, a->dests[i], depth + 1);
		w->npath--;
		return;
	}
	/* an auto-CC mailbox keeps its copy; its cc destinations follow */
	if (node_add(w, addr, EXPAND_MAILBOX, depth) < 0)
		return;
	for (i = 0; i < a->ncc; i++)
		walk_addr(w, a->cc[i], depth + 1);
}

int
expand_address(const char *addr, expand_lookup_fn lookup, void *arg,
    struct expand_result *res)
{
	struct walk w;

	memset(res, 0, sizeof(*res));
	memset(&w, 0, sizeof(w));
	w.lookup = lookup;
	w.arg = arg;
	w.res = res;
	walk_addr(&w, addr, 0);
	for (int i = 0; i < w.nseen; i++)
		free(w.seen[i]);
	free(w.seen);
	return res->overflow ? -1 : 0;
}

void
expand_result_free(struct expand_result *res)
{
	for (int i = 0; i < res->n; i++)
		free(res->v[i].addr);
	free(res->v);
	memset(res, 0, sizeof(*res));
}
