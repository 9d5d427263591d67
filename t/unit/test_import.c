/* test_import.c - the address table line formats of SPEC 4 (table_import.c) */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "jsonw.h"
#include "table_import.h"
#include "tap.h"

#define D "example.com"

struct ok_case {
	const char *line;
	const char *address;
	enum addr_kind kind;
	const char *dests;	/* comma-joined alias destinations */
	const char *cc;		/* comma-joined cc */
	int nofilter, had_password, looks_like_address;
};

static const struct ok_case ok_cases[] = {
	{ "joe", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "  Joe@Example.COM  ", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "joe@example.com\r", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "joe joes-password", "joe@example.com", ADDR_MAILBOX, "", "", 0, 1, 0 },
	{ "joe@example.com\tS3cr3t!", "joe@example.com", ADDR_MAILBOX, "", "", 0, 1, 0 },
	{ "joe mary@x.org", "joe@example.com", ADDR_MAILBOX, "", "", 0, 1, 1 },
	{ "info: mary", "info@example.com", ADDR_ALIAS, "mary@example.com", "", 0, 0, 0 },
	{ "sales: mary, jane", "sales@example.com", ADDR_ALIAS,
	    "mary@example.com,jane@example.com", "", 0, 0, 0 },
	{ "dan: dan@yahoo.com", "dan@example.com", ADDR_ALIAS, "dan@yahoo.com", "", 0, 0, 0 },
	{ "info@example.com:mary,Dan@Yahoo.com,mary", "info@example.com", ADDR_ALIAS,
	    "mary@example.com,dan@yahoo.com", "", 0, 0, 0 },
	{ "joe@example.com|password", "joe@example.com", ADDR_MAILBOX, "", "", 0, 1, 0 },
	{ "joe@example.com|", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "info@example.com|mary@example.com,dan@yahoo.com|relay", "info@example.com",
	    ADDR_ALIAS, "mary@example.com,dan@yahoo.com", "", 0, 0, 0 },
	{ "info@example.com|mary@example.com,dan@yahoo.com|RELAY", "info@example.com",
	    ADDR_ALIAS, "mary@example.com,dan@yahoo.com", "", 0, 0, 0 },
	{ "info@example.com|mary@example.com,dan@yahoo.com", "info@example.com",
	    ADDR_MAILBOX, "", "", 0, 1, 1 },
	{ "info@example.com|mary@example.com|", "info@example.com",
	    ADDR_MAILBOX, "", "", 0, 1, 1 },
	{ "joe@example.com mailbox filter", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "joe@example.com mailbox nofilter cc=boss@x.org,audit@y.org", "joe@example.com",
	    ADDR_MAILBOX, "", "boss@x.org,audit@y.org", 1, 0, 0 },
	{ "sales@example.com alias filter to=mary@example.com,jane@example.com",
	    "sales@example.com", ADDR_ALIAS, "mary@example.com,jane@example.com", "", 0, 0, 0 },
	{ "sales@example.com alias to=mary@example.com nofilter",
	    "sales@example.com", ADDR_ALIAS, "mary@example.com", "", 1, 0, 0 },
	/* the canonical form (issue 17): needless quotes and escapes go */
	{ "\"joe\"@example.com", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "\"Jo\\e\"", "joe@example.com", ADDR_MAILBOX, "", "", 0, 0, 0 },
	{ "\"team\": \"mary\", \"dan\"@Yahoo.com", "team@example.com", ADDR_ALIAS,
	    "mary@example.com,dan@yahoo.com", "", 0, 0, 0 },
	{ "\"john..doe\"@example.com mailbox filter", "\"john..doe\"@example.com",
	    ADDR_MAILBOX, "", "", 0, 0, 0 },
};

struct bad_case {
	const char *line;
	const char *why;	/* expected reason (prefix) */
};

static const struct bad_case bad_cases[] = {
	{ "bob@other.org", "address outside example.com: bob@other.org" },
	{ "bob@other.org secret", "address outside example.com: bob@other.org" },
	{ "info@other.org: mary", "address outside example.com: info@other.org" },
	{ "x@sub.example.com|pw", "address outside example.com: x@sub.example.com" },
	{ "a@@example.com", "bad syntax: invalid address" },
	{ "joe..doe", "bad syntax: invalid address" },
	{ "joe pw extra", "bad syntax: expected ADDRESS [PASSWORD]" },
	{ "info:", "bad syntax: empty alias destination list" },
	{ "info:   ", "bad syntax: empty alias destination list" },
	{ "sales: mary,,jane", "bad syntax: empty destination" },
	{ "sales: mary, ", "bad syntax: empty destination" },
	{ "info@example.com||relay", "bad syntax: empty alias destination list" },
	{ "info@example.com|a@b.c|relay|x", "bad syntax: expected ADDRESS|PASSWORD or" },
	{ "a|b|c|d|e", "bad syntax: expected ADDRESS|PASSWORD or" },
	{ "|password", "bad syntax: empty address" },
	{ "info@example.com|mary@x.org|forward", "bad syntax: third field is not \"relay\"" },
	{ "info@example.com|bad@@x|relay", "bad syntax: invalid address" },
	{ "\"joe doe\"@example.com", "bad syntax: invalid address" },
	{ "joe@example.com mailbox", NULL },	/* two words: a password, valid */
	{ "joe@example.com mailbox sometimes", "bad syntax: unexpected word" },
	{ "joe@example.com mailbox filter to=a@b.c", "bad syntax: unexpected word" },
	{ "joe@example.com alias filter cc=a@b.c", "bad syntax: unexpected word" },
	{ "joe@example.com alias filter", "bad syntax: alias without to=" },
	{ "joe@example.com mailbox cc=a@b.c", "bad syntax: filter or nofilter missing" },
	{ "joe@example.com mailbox filter filter", "bad syntax: repeated word" },
	{ "joe@example.com alias filter to=", "bad syntax: unexpected word" },
};

static void
join(char *buf, size_t len, char list[][IMPORT_ADDR_MAX + 1], int n)
{
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (i)
			strncat(buf, ",", len - strlen(buf) - 1);
		strncat(buf, list[i], len - strlen(buf) - 1);
	}
}

static void
test_ok(struct import_entry *e)
{
	char why[IMPORT_WHY_MAX], got[4096];

	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *c = &ok_cases[i];
		int v = import_parse_line(c->line, D, e, why, sizeof(why));

		if (!is_int(v, IMPORT_OK, c->line)) {
			diag("why: %s", why);
			continue;
		}
		is_str(e->address, c->address, "  address");
		is_int(e->kind, c->kind, "  kind");
		join(got, sizeof(got), e->dests, e->ndests);
		is_str(got, c->dests, "  destinations");
		join(got, sizeof(got), e->cc, e->ncc);
		is_str(got, c->cc, "  cc");
		is_int(e->nofilter, c->nofilter, "  nofilter");
		is_int(e->had_password, c->had_password, "  password ignored");
		is_int(e->password_looks_like_address, c->looks_like_address,
		    "  password looks like an address");
	}
}

static void
test_bad(struct import_entry *e)
{
	char why[IMPORT_WHY_MAX];

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		int v = import_parse_line(c->line, D, e, why, sizeof(why));

		if (c->why == NULL) {
			is_int(v, IMPORT_OK, c->line);
			continue;
		}
		is_int(v, IMPORT_INVALID, c->line);
		ok(strncmp(why, c->why, strlen(c->why)) == 0, "  reason \"%s\"", c->why);
		if (strncmp(why, c->why, strlen(c->why)) != 0)
			diag("got \"%s\"", why);
	}
}

static void
test_skip(struct import_entry *e)
{
	static const char *const skip[] = { "", "   ", "\t\r", "# comment",
	    "   # indented comment", "#joe@example.com" };
	char why[IMPORT_WHY_MAX];

	for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		is_int(import_parse_line(skip[i], D, e, why, sizeof(why)),
		    IMPORT_SKIP, "blank or comment skipped");
}

static void
test_limits(struct import_entry *e)
{
	char why[IMPORT_WHY_MAX], *line;
	size_t n = IMPORT_LINE_MAX + 10, off;

	line = malloc(n + 1);
	memset(line, 'a', n);
	line[n] = '\0';
	is_int(import_parse_line(line, D, e, why, sizeof(why)), IMPORT_INVALID,
	    "over-long line invalid");
	/* 65 destinations: one too many */
	off = (size_t)sprintf(line, "big:");
	for (int i = 0; i < STORE_MAX_DESTS + 1; i++)
		off += (size_t)sprintf(line + off, "%sd%d", i ? "," : "", i);
	is_int(import_parse_line(line, D, e, why, sizeof(why)), IMPORT_INVALID,
	    "too many destinations invalid");
	free(line);
}

/* test_roundtrip - import_format_addr output parses back to the same */
static void
test_roundtrip(struct import_entry *e)
{
	static const char *const lines[] = {
		"joe@example.com mailbox filter",
		"boss@example.com mailbox nofilter cc=audit@x.org,b@example.com",
		"sales@example.com alias filter to=mary@example.com,dan@yahoo.com",
	};
	char why[IMPORT_WHY_MAX], *out, *dp[STORE_MAX_DESTS], *cp[STORE_MAX_DESTS];
	struct addr_info a;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (import_parse_line(lines[i], D, e, why, sizeof(why)) != IMPORT_OK) {
			ok(0, "roundtrip parse %s: %s", lines[i], why);
			continue;
		}
		for (int k = 0; k < e->ndests; k++)
			dp[k] = e->dests[k];
		for (int k = 0; k < e->ncc; k++)
			cp[k] = e->cc[k];
		a.address = e->address;
		a.kind = e->kind;
		a.dests = dp;
		a.ndests = e->ndests;
		a.cc = cp;
		a.ncc = e->ncc;
		a.nofilter = e->nofilter;
		out = import_format_addr(&a);
		is_str(out, lines[i], "export format round-trips");
		free(out);
	}
}

static void
test_domain_valid(void)
{
	ok(import_domain_valid("example.com"), "example.com valid");
	ok(import_domain_valid("xn--bcher-kva.example"), "A-label valid");
	ok(!import_domain_valid("-bad.example"), "leading hyphen invalid");
	ok(!import_domain_valid("bad..example"), "empty label invalid");
	ok(!import_domain_valid("[10.0.0.1]"), "literal invalid");
	ok(!import_domain_valid("example.com."), "trailing dot invalid");
}

static void
test_json(void)
{
	struct evbuffer *b = evbuffer_new();
	struct jsonw *w = jsonw_new(b);
	char buf[256];
	size_t n;

	jsonw_object_begin(w);
	jsonw_kv_string(w, "s", "a\"b\\c\n\x01\xff" "\xc3\xa9");
	jsonw_key(w, "l");
	jsonw_array_begin(w);
	jsonw_int(w, -3);
	jsonw_bool(w, 1);
	jsonw_null(w);
	jsonw_array_end(w);
	jsonw_object_end(w);
	jsonw_free(w);
	n = evbuffer_remove(b, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	is_str(buf, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\\ufffd\xc3\xa9\",\"l\":[-3,true,null]}\n",
	    "json escaping and commas");
	evbuffer_free(b);
}

int
main(void)
{
	struct import_entry *e = malloc(sizeof(*e));

	test_ok(e);
	test_bad(e);
	test_skip(e);
	test_limits(e);
	test_roundtrip(e);
	test_domain_valid();
	test_json();
	free(e);
	return done_testing();
}
