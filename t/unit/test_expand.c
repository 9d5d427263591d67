/* test_expand.c - alias expansion against a fake address table */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "expand.h"
#include "spool.h"
#include "stats.h"
#include "tap.h"
#include "util.h"

struct mx_stats mx_stats;	/* spool.c counts into it */

#define HOSTED	"example.test"
#define LEGACY	"legacy.test"
#define CHAIN	25		/* d0 -> d1 -> ... -> d25 -> mary */

/* the fake table: address, kind, destinations or cc (comma-separated) */
static const struct {
	const char *addr;
	enum addr_kind kind;
	const char *list;
} table[] = {
	{ "joe@example.test", ADDR_MAILBOX, "" },
	{ "mary@example.test", ADDR_MAILBOX, "" },
	{ "jane@example.test", ADDR_MAILBOX, "" },
	{ "info@example.test", ADDR_ALIAS, "mary@example.test" },
	{ "sales@example.test", ADDR_ALIAS, "mary@example.test,jane@example.test" },
	{ "merry@example.test", ADDR_ALIAS, "mary@example.test" },
	{ "dan@example.test", ADDR_ALIAS, "dan@yahoo.com" },
	{ "janitor@example.test", ADDR_ALIAS, "joe@example.test" },
	{ "all@example.test", ADDR_ALIAS, "mary@example.test,jane@example.test,"
	    "dan@example.test,joe@example.test" },
	{ "boss@example.test", ADDR_MAILBOX, "boss@gmail.test,sec@example.test" },
	{ "sec@example.test", ADDR_MAILBOX, "" },
	{ "loopa@example.test", ADDR_ALIAS, "loopb@example.test,mary@example.test" },
	{ "loopb@example.test", ADDR_ALIAS, "loopa@example.test,jane@example.test" },
	{ "self@example.test", ADDR_ALIAS, "self@example.test" },
	{ "ccloop@example.test", ADDR_MAILBOX, "ccback@example.test" },
	{ "ccback@example.test", ADDR_MAILBOX, "ccloop@example.test" },
	{ "leg@example.test", ADDR_ALIAS, "old@legacy.test" },
	{ "ghost@example.test", ADDR_ALIAS, "nobody@example.test" },
	{ "dup@example.test", ADDR_ALIAS, "mary@example.test,MARY@example.test,"
	    "info@example.test,sales@example.test" },
	{ "ext2@example.test", ADDR_ALIAS, "x@ext.test,X@EXT.test,dan@example.test" },
};
#define NTABLE	(sizeof(table) / sizeof(table[0]))

static struct addr_info infos[NTABLE + CHAIN + 1];
static int ninfos;

/* split_list - "a,b" into a malloc'd array */
static char **
split_list(const char *s, int *n)
{
	char **v = NULL, *copy = xstrdup(s), *tok, *save = NULL;

	*n = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		v = xrealloc(v, (size_t)(*n + 1) * sizeof(*v));
		v[(*n)++] = xstrdup(tok);
	}
	free(copy);
	return v;
}

static void
add_info(const char *addr, enum addr_kind kind, const char *list)
{
	struct addr_info *a = &infos[ninfos++];

	a->address = xstrdup(addr);
	a->kind = kind;
	if (kind == ADDR_ALIAS)
		a->dests = split_list(list, &a->ndests);
	else
		a->cc = split_list(list, &a->ncc);
}

static void
table_init(void)
{
	char a[64], d[64];

	for (size_t i = 0; i < NTABLE; i++)
		add_info(table[i].addr, table[i].kind, table[i].list);
	for (int i = 0; i <= CHAIN; i++) {
		snprintf(a, sizeof(a), "d%d@example.test", i);
		if (i < CHAIN)
			snprintf(d, sizeof(d), "d%d@example.test", i + 1);
		else
			snprintf(d, sizeof(d), "mary@example.test");
		add_info(a, ADDR_ALIAS, d);
	}
}

static void
table_free(void)
{
	for (int i = 0; i < ninfos; i++) {
		struct addr_info *a = &infos[i];
		for (int k = 0; k < a->ndests; k++)
			free(a->dests[k]);
		for (int k = 0; k < a->ncc; k++)
			free(a->cc[k]);
		free(a->dests);
		free(a->cc);
		free(a->address);
	}
}

/* fake_lookup - the table above; "+" is the recipient delimiter */
static enum expand_dom
fake_lookup(const char *addr, const struct addr_info **out, void *arg)
{
	const char *at = strrchr(addr, '@'), *plus;
	char key[256];
	int *calls = arg;

	(*calls)++;
	*out = NULL;
	if (at == NULL)
		return EXPAND_DOM_FOREIGN;
	if (strcasecmp(at + 1, LEGACY) == 0)
		return EXPAND_DOM_LEGACY;
	if (strcasecmp(at + 1, HOSTED) != 0)
		return EXPAND_DOM_FOREIGN;
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 0)
			snprintf(key, sizeof(key), "%s", addr);
		else if ((plus = strchr(addr, '+')) != NULL && plus < at && plus > addr)
			snprintf(key, sizeof(key), "%.*s%s", (int)(plus - addr), addr, at);
		else
			break;
		for (int i = 0; i < ninfos; i++)
			if (strcasecmp(infos[i].address, key) == 0) {
				*out = &infos[i];
				return EXPAND_DOM_HOSTED;
			}
	}
	return EXPAND_DOM_HOSTED;
}

/* render - "kind:addr/depth ..." of the nodes, for comparison */
static char *
render(const struct expand_result *r)
{
	static char buf[8192];
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < r->n && len < sizeof(buf); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s:%s/%d",
		    i ? " " : "", expand_kind_name(r->v[i].kind), r->v[i].addr,
		    r->v[i].depth);
	return buf;
}

/* leaves - the delivered addresses, space-separated */
static char *
leaves(const struct expand_result *r)
{
	static char buf[8192];
	size_t len = 0;

	buf[0] = '\0';
	for (int i = 0; i < r->n && len < sizeof(buf); i++)
		if (expand_delivers(r->v[i].kind))
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
			    len ? " " : "", r->v[i].addr);
	return buf;
}

static void
check(const char *addr, const char *want_nodes, const char *want_leaves)
{
	struct expand_result r;
	int calls = 0;
	char name[128];

	snprintf(name, sizeof(name), "%s: nodes", addr);
	is_int(expand_address(addr, fake_lookup, &calls, &r), 0, addr);
	is_str(render(&r), want_nodes, name);
	snprintf(name, sizeof(name), "%s: delivered to", addr);
	is_str(leaves(&r), want_leaves, name);
	expand_result_free(&r);
}

/* entry_new - a spool entry with n envelope recipients r0@x.test ... */
static struct spool_entry *
entry_new(int n)
{
	struct spool_entry *e = xcalloc(1, sizeof(*e));
	char a[32];

	e->nrcpts = n;
	e->rcpts = xcalloc((size_t)n, sizeof(*e->rcpts));
	for (int i = 0; i < n; i++) {
		snprintf(a, sizeof(a), "r%d@x.test", i);
		e->rcpts[i].addr = xstrdup(a);
		e->rcpts[i].parent = -1;
	}
	e->sender = xstrdup("s@x.test");
	return e;
}

/* spool_records - the expand record (doc/spool.md) and its replay */
static void
spool_records(void)
{
	struct spool_child cv[3] = {
		{ SPOOL_K_LOCAL, "mary+tag@example.test" },
		{ SPOOL_K_FWD, "\"odd name\"=x@ext.test" },
		{ SPOOL_K_LOOP, "loopa@example.test" },
	};
	struct spool_expand x = { 1, 2, 1795241300, 3, cv, 0 }, y;
	struct spool_entry *e;
	char *line, *recs;
	size_t len;

	line = spool_format_expand(&x, &len);
	is_str(line, "expand 1 2 1795241300 3 local mary+2Btag@example.test "
	    "fwd \"odd+20name\"+3Dx@ext.test loop loopa@example.test\n",
	    "expand record: addresses in xtext");
	is_int(spool_parse_expand(line, len - 1, &y), 0, "expand record parses");
	ok(y.parent == 1 && y.first == 2 && y.time == 1795241300 && y.n == 3 &&
	    y.v[1].kind == SPOOL_K_FWD && strcmp(y.v[1].addr, cv[1].addr) == 0 &&
	    strcmp(y.v[0].addr, cv[0].addr) == 0 && y.v[2].kind == SPOOL_K_LOOP,
	    "expand record round trip");
	spool_expand_free(&y);
	is_int(spool_parse_expand("expand 1 2 3 2 local a@b", 24, &y), -1,
	    "fewer children than announced: malformed");
	is_int(spool_parse_expand("expand 1 2 3 1 bogus a@b", 24, &y), -1,
	    "unknown kind: malformed");
	is_int(spool_parse_expand("expand 1 2 3 1 local a+4@b", 26, &y), -1,
	    "bad xtext: malformed");
	is_int(spool_parse_expand("expand 0 1 5 0", 14, &y), 0,
	    "zero children (all duplicates) parses");
	spool_expand_free(&y);

	/* replay: rcpt 1 expanded into 2, 3, 4; a state record for child 3;
	 * a second record for the same parent and one with the wrong first
	 * index are ignored; a torn last line is not applied */
	e = entry_new(2);
	xasprintf(&recs, "state 1 deferred 100 1 700 451 4.3.0 later\n%s"
	    "state 3 delivered 200 0 0 250 ok\n"
	    "expand 1 5 300 1 local dup@example.test\n"
	    "expand 0 9 300 1 local wrong@example.test\n"
	    "state 4 bounced 210 0 0 550 loop\n"
	    "expand 0 5 300 1 fwd torn@ext.test", line);
	is_int((int)spool_apply_records(e, recs, strlen(recs)),
	    (int)(strrchr(recs, '\n') + 1 - recs), "complete lines consumed");
	is_int(e->nrcpts, 5, "three children appended");
	is_int(e->rcpts[1].state, SPOOL_R_EXPANDED, "parent expanded (final)");
	is_int(e->rcpts[0].state, SPOOL_R_PENDING, "other recipient untouched");
	ok(e->rcpts[2].parent == 1 && e->rcpts[2].kind == SPOOL_K_LOCAL &&
	    strcmp(e->rcpts[2].addr, "mary+tag@example.test") == 0 &&
	    e->rcpts[2].state == SPOOL_R_PENDING, "child 2: local, pending");
	ok(e->rcpts[3].kind == SPOOL_K_FWD && e->rcpts[3].state == SPOOL_R_DELIVERED,
	    "child 3: forward, delivered");
	ok(e->rcpts[4].kind == SPOOL_K_LOOP && e->rcpts[4].state == SPOOL_R_BOUNCED,
	    "child 4: loop, bounced");
	is_int(e->rcpts[0].parent, -1, "envelope recipients have no parent");
	free(recs);
	free(line);
	spool_entry_free(e);
}

int
main(void)
{
	struct expand_result r;
	int calls = 0, loops = 0;

	table_init();

	/* the customer's alias file of the integration test */
	check("info@example.test", "alias:info@example.test/0 "
	    "mailbox:mary@example.test/1", "mary@example.test");
	check("sales@example.test", "alias:sales@example.test/0 "
	    "mailbox:mary@example.test/1 mailbox:jane@example.test/1",
	    "mary@example.test jane@example.test");
	check("merry@example.test", "alias:merry@example.test/0 "
	    "mailbox:mary@example.test/1", "mary@example.test");
	check("dan@example.test", "alias:dan@example.test/0 "
	    "external:dan@yahoo.com/1", "dan@yahoo.com");
	check("janitor@example.test", "alias:janitor@example.test/0 "
	    "mailbox:joe@example.test/1", "joe@example.test");
	check("all@example.test", "alias:all@example.test/0 "
	    "mailbox:mary@example.test/1 mailbox:jane@example.test/1 "
	    "alias:dan@example.test/1 external:dan@yahoo.com/2 "
	    "mailbox:joe@example.test/1",
	    "mary@example.test jane@example.test dan@yahoo.com joe@example.test");

	/* mailboxes: themselves; auto-CC: itself plus the cc */
	check("joe@example.test", "mailbox:joe@example.test/0", "joe@example.test");
	check("boss@example.test", "mailbox:boss@example.test/0 "
	    "external:boss@gmail.test/1 mailbox:sec@example.test/1",
	    "boss@example.test boss@gmail.test sec@example.test");
	ok(!expand_needed(&infos[0]) && expand_needed(&infos[3]) &&
	    expand_needed(&infos[9]), "expand_needed: alias and cc mailbox only");

	/* recipient delimiter: the entry of the base address, written as given */
	check("sales+q4@example.test", "alias:sales+q4@example.test/0 "
	    "mailbox:mary@example.test/1 mailbox:jane@example.test/1",
	    "mary@example.test jane@example.test");
	check("boss+x@example.test", "mailbox:boss+x@example.test/0 "
	    "external:boss@gmail.test/1 mailbox:sec@example.test/1",
	    "boss+x@example.test boss@gmail.test sec@example.test");

	/* loops: the looping alias is marked, the rest delivered */
	check("loopa@example.test", "alias:loopa@example.test/0 "
	    "alias:loopb@example.test/1 loop:loopa@example.test/2 "
	    "mailbox:jane@example.test/2 mailbox:mary@example.test/1",
	    "jane@example.test mary@example.test");
	check("self@example.test", "alias:self@example.test/0 "
	    "loop:self@example.test/1", "");
	/* mailboxes copying each other: each once, no loop */
	check("ccloop@example.test", "mailbox:ccloop@example.test/0 "
	    "mailbox:ccback@example.test/1 duplicate:ccloop@example.test/2",
	    "ccloop@example.test ccback@example.test");

	/* duplicates: case-insensitive, through other aliases too */
	check("dup@example.test", "alias:dup@example.test/0 "
	    "mailbox:mary@example.test/1 duplicate:MARY@example.test/1 "
	    "alias:info@example.test/1 duplicate:mary@example.test/2 "
	    "alias:sales@example.test/1 duplicate:mary@example.test/2 "
	    "mailbox:jane@example.test/2", "mary@example.test jane@example.test");
	check("ext2@example.test", "alias:ext2@example.test/0 "
	    "external:x@ext.test/1 duplicate:X@EXT.test/1 "
	    "alias:dan@example.test/1 external:dan@yahoo.com/2",
	    "x@ext.test dan@yahoo.com");

	/* other domains of ours and unknown addresses: delivered as is */
	check("leg@example.test", "alias:leg@example.test/0 "
	    "legacy:old@legacy.test/1", "old@legacy.test");
	check("ghost@example.test", "alias:ghost@example.test/0 "
	    "unknown:nobody@example.test/1", "nobody@example.test");

	/* too deep: a loop at depth EXPAND_DEPTH_MAX + 1 */
	is_int(expand_address("d0@example.test", fake_lookup, &calls, &r), 0,
	    "deep chain expands");
	for (int i = 0; i < r.n; i++)
		loops += r.v[i].kind == EXPAND_LOOP;
	is_int(r.n, EXPAND_DEPTH_MAX + 2, "chain stops below the depth limit");
	is_int(loops, 1, "one loop node for the chain");
	is_int(r.v[r.n - 1].depth, EXPAND_DEPTH_MAX + 1, "at depth max + 1");
	is_str(leaves(&r), "", "nothing delivered from a too deep chain");
	expand_result_free(&r);

	table_free();
	spool_records();
	return done_testing();
}
