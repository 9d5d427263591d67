/* test_smtp_parse.c - table-driven tests of the SMTP command/path parser */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"
#include "tap.h"

#define BIG	1024	/* room for generated over-long addresses */

/* ---- commands ---------------------------------------------------------- */

struct cmd_case {
	const char *line;
	enum smtp_cmd cmd;
	const char *args;	/* NULL: *args must be NULL */
};

static const struct cmd_case cmd_cases[] = {
	{ "HELO mx.example.org", CMD_HELO, "mx.example.org" },
	{ "helo   mx.example.org", CMD_HELO, "mx.example.org" },
	{ "EhLo client", CMD_EHLO, "client" },
	{ "EHLO", CMD_EHLO, "" },
	{ "MAIL FROM:<a@b>", CMD_MAIL, "<a@b>" },
	{ "mail from:<a@b> SIZE=10", CMD_MAIL, "<a@b> SIZE=10" },
	{ "MAIL FROM: <a@b>", CMD_MAIL, "<a@b>" },
	{ "MAIL  FROM:<a@b>", CMD_MAIL, "<a@b>" },
	{ "MAIL FROM :<a@b>", CMD_MAIL, "<a@b>" },
	{ "MAIL FROM:<>", CMD_MAIL, "<>" },
	{ "MAIL FROM:", CMD_MAIL, "" },
	{ "MAIL", CMD_MAIL, NULL },
	{ "MAIL TO:<a@b>", CMD_MAIL, NULL },
	{ "MAIL FROM<a@b>", CMD_MAIL, NULL },
	{ "MAILFROM:<a@b>", CMD_UNKNOWN, "" },
	{ "RCPT TO:<a@b>", CMD_RCPT, "<a@b>" },
	{ "rcpt to: <a@b>", CMD_RCPT, "<a@b>" },
	{ "RCPT FROM:<a@b>", CMD_RCPT, NULL },
	{ "RCPT", CMD_RCPT, NULL },
	{ "DATA", CMD_DATA, "" },
	{ "data", CMD_DATA, "" },
	{ "DATAX", CMD_UNKNOWN, "" },
	{ "DATA x", CMD_DATA, "x" },
	{ "RSET", CMD_RSET, "" },
	{ "NOOP hello", CMD_NOOP, "hello" },
	{ "QUIT", CMD_QUIT, "" },
	{ "VRFY root", CMD_VRFY, "root" },
	{ "EXPN list", CMD_EXPN, "list" },
	{ "HELP", CMD_HELP, "" },
	{ "STARTTLS", CMD_STARTTLS, "" },
	{ "starttls", CMD_STARTTLS, "" },
	{ "STARTTLSX", CMD_UNKNOWN, "" },
	{ "XCLIENT ADDR=192.0.2.1 NAME=[UNAVAILABLE]", CMD_XCLIENT,
	  "ADDR=192.0.2.1 NAME=[UNAVAILABLE]" },
	{ "GET / HTTP/1.0", CMD_UNKNOWN, "" },
	{ "", CMD_UNKNOWN, "" },
	{ " HELO x", CMD_UNKNOWN, "" },
	{ "HELO\tx", CMD_UNKNOWN, "" },
};

/* test_commands - verbs, keywords and argument positions */
static void
test_commands(void)
{
	size_t i;

	for (i = 0; i < sizeof(cmd_cases) / sizeof(cmd_cases[0]); i++) {
		const struct cmd_case *c = &cmd_cases[i];
		const char *args = "unset";
		enum smtp_cmd got = smtp_command_parse(c->line, &args);
		int good = got == c->cmd && (c->args == NULL ? args == NULL :
		    args != NULL && strcmp(args, c->args) == 0);

		if (!ok(good, "command '%s'", c->line))
			diag("got cmd %s args '%s', want %s '%s'",
			    smtp_command_name(got), args ? args : "(null)",
			    smtp_command_name(c->cmd),
			    c->args ? c->args : "(null)");
	}
	is_str(smtp_command_name(CMD_STARTTLS), "STARTTLS", "name STARTTLS");
	is_str(smtp_command_name(CMD_UNKNOWN), "UNKNOWN", "name UNKNOWN");
	is_str(smtp_command_name(CMD_COUNT_), "UNKNOWN", "name out of range");
}

/* ---- paths ------------------------------------------------------------- */

#define F_NULL	0x01	/* allow_null */
#define F_UTF8	0x02	/* allow_utf8 */

struct path_case {
	const char *args;
	int flags;
	enum smtp_parse_result want;
	/* expected fields when want is PARSE_OK (NULL: not checked) */
	const char *local;
	const char *domain;
	const char *text;
	const char *rest;
	int quoted, literal, utf8, route, null;
};

/* a row that must fail: no fields to check */
#define PATH_ERR(a, f, r) { a, f, r, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0 }

static const struct path_case path_cases[] = {
	/* simple */
	{ "<user@example.org>", 0, PARSE_OK, "user", "example.org",
	  "user@example.org", "", 0, 0, 0, 0, 0 },
	{ "<User.Name+tag@Example.ORG>", 0, PARSE_OK, "User.Name+tag",
	  "Example.ORG", "User.Name+tag@Example.ORG", "", 0, 0, 0, 0, 0 },
	{ "  <a@b>", 0, PARSE_OK, "a", "b", "a@b", "", 0, 0, 0, 0, 0 },
	{ "<a@b.c> SIZE=100 BODY=8BITMIME", 0, PARSE_OK, "a", "b.c", "a@b.c",
	  "SIZE=100 BODY=8BITMIME", 0, 0, 0, 0, 0 },
	{ "<a@b.c>   SMTPUTF8", 0, PARSE_OK, "a", "b.c", "a@b.c", "SMTPUTF8",
	  0, 0, 0, 0, 0 },
	{ "<a@b.c>  ", 0, PARSE_OK, "a", "b.c", "a@b.c", "", 0, 0, 0, 0, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@x.org>", 0, PARSE_OK, "!#$%&'*+-/=?^_`{|}~",
	  "x.org", NULL, "", 0, 0, 0, 0, 0 },
	{ "<1@2.3>", 0, PARSE_OK, "1", "2.3", NULL, "", 0, 0, 0, 0, 0 },
	{ "<a@x-y.example>", 0, PARSE_OK, "a", "x-y.example", NULL, "",
	  0, 0, 0, 0, 0 },
	{ "<a@x--y.example>", 0, PARSE_OK, "a", "x--y.example", NULL, "",
	  0, 0, 0, 0, 0 },
	/* null path */
	{ "<>", F_NULL, PARSE_OK, "", "", "", "", 0, 0, 0, 0, 1 },
	{ "<> SIZE=5", F_NULL, PARSE_OK, "", "", "", "SIZE=5", 0, 0, 0, 0, 1 },
	PATH_ERR("<>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("< >", F_NULL, PARSE_BAD_ADDRESS),
	PATH_ERR("<>x", F_NULL, PARSE_SYNTAX),
	/* source routes are parsed and ignored */
	{ "<@relay.example:user@example.org>", 0, PARSE_OK, "user",
	  "example.org", "user@example.org", "", 0, 0, 0, 1, 0 },
	{ "<@a.example,@b.example:user@example.org>", 0, PARSE_OK, "user",
	  "example.org", "user@example.org", "", 0, 0, 0, 1, 0 },
	{ "<@[192.0.2.1]:u@d.example>", 0, PARSE_OK, "u", "d.example",
	  NULL, "", 0, 0, 0, 1, 0 },
	PATH_ERR("<@a.example:>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<@a.example,user@example.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<@a..example:user@example.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<@:user@example.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<@example.org>", 0, PARSE_BAD_ADDRESS),
	/* quoted local parts */
	{ "<\"john doe\"@example.org>", 0, PARSE_OK, "john doe",
	  "example.org", "\"john doe\"@example.org", "", 1, 0, 0, 0, 0 },
	{ "<\"user@other\"@hosted.example>", 0, PARSE_OK, "user@other",
	  "hosted.example", "\"user@other\"@hosted.example", "", 1, 0, 0, 0, 0 },
	{ "<\"a\\\"b\\\\c\"@x.org>", 0, PARSE_OK, "a\"b\\c", "x.org",
	  "\"a\\\"b\\\\c\"@x.org", "", 1, 0, 0, 0, 0 },
	{ "<\"a>b\"@x.org> SIZE=1", 0, PARSE_OK, "a>b", "x.org", NULL,
	  "SIZE=1", 1, 0, 0, 0, 0 },
	{ "<\"\\x\"@x.org>", 0, PARSE_OK, "x", "x.org", NULL, "", 1, 0, 0, 0, 0 },
	PATH_ERR("<\"\"@x.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<\"abc@x.org>", 0, PARSE_SYNTAX),
	PATH_ERR("<\"ab\"c@x.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<\"a\tb\"@x.org>", 0, PARSE_BAD_ADDRESS),
	/* % and ! are atext: valid syntax, returned verbatim */
	{ "<user%other.example@hosted.example>", 0, PARSE_OK,
	  "user%other.example", "hosted.example", NULL, "", 0, 0, 0, 0, 0 },
	{ "<other.example!user@hosted.example>", 0, PARSE_OK,
	  "other.example!user", "hosted.example", NULL, "", 0, 0, 0, 0, 0 },
	/* address literals */
	{ "<postmaster@[192.0.2.1]>", 0, PARSE_OK, "postmaster",
	  "[192.0.2.1]", "postmaster@[192.0.2.1]", "", 0, 1, 0, 0, 0 },
	{ "<a@[IPv6:2001:db8::1]>", 0, PARSE_OK, "a", "[IPv6:2001:db8::1]",
	  NULL, "", 0, 1, 0, 0, 0 },
	{ "<a@[ipv6:::1]>", 0, PARSE_OK, "a", "[ipv6:::1]", NULL, "",
	  0, 1, 0, 0, 0 },
	PATH_ERR("<a@[192.0.2.256]>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[192.0.2]>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[IPv6:2001:db8::g]>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[2001:db8::1]>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[x-tag:whatever]>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[]>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[192.0.2.1>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@[192.0.2.1]x>", 0, PARSE_BAD_ADDRESS),
	/* domains */
	PATH_ERR("<a@example.org.>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@.example.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@example..org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@-example.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@example-.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@exa_mple.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@exa mple.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a@b@c>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a>", 0, PARSE_BAD_ADDRESS),
	/* local parts */
	PATH_ERR("<@>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<.a@b>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a.@b>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a..b@c>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a b@c>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a(b)@c>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<a,b@c>", 0, PARSE_BAD_ADDRESS),
	/* UTF-8 (RFC 6531) */
	{ "<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", F_UTF8, PARSE_OK,
	  "j\xc3\xb6rg", "b\xc3\xbc" "cher.example", NULL, "", 0, 0, 1, 0, 0 },
	PATH_ERR("<j\xc3\xb6rg@example.org>", 0, PARSE_NEED_UTF8),
	PATH_ERR("<a@b\xc3\xbc" "cher.example>", 0, PARSE_NEED_UTF8),
	{ "<\"\xe2\x82\xac uro\"@x.org>", F_UTF8, PARSE_OK, "\xe2\x82\xac uro",
	  "x.org", NULL, "", 1, 0, 1, 0, 0 },
	{ "<\xf0\x9f\x98\x80@x.org>", F_UTF8, PARSE_OK, "\xf0\x9f\x98\x80",
	  "x.org", NULL, "", 0, 0, 1, 0, 0 },
	PATH_ERR("<\xc3@x.org>", F_UTF8, PARSE_BAD_ADDRESS),		/* cut */
	PATH_ERR("<\xc0\xaf@x.org>", F_UTF8, PARSE_BAD_ADDRESS),	/* overlong */
	PATH_ERR("<\xed\xa0\x80@x.org>", F_UTF8, PARSE_BAD_ADDRESS),	/* surrogate */
	PATH_ERR("<\xf4\x90\x80\x80@x.org>", F_UTF8, PARSE_BAD_ADDRESS), /* >10FFFF */
	PATH_ERR("<\xff@x.org>", F_UTF8, PARSE_BAD_ADDRESS),
	PATH_ERR("<a\x80@x.org>", 0, PARSE_BAD_ADDRESS),
	PATH_ERR("<\xc3\xb6@x.org.>", 0, PARSE_BAD_ADDRESS),	/* syntax wins */
	/* brackets and what follows */
	PATH_ERR("a@b", 0, PARSE_SYNTAX),
	PATH_ERR("a@b>", 0, PARSE_SYNTAX),
	PATH_ERR("<a@b", 0, PARSE_SYNTAX),
	PATH_ERR("", F_NULL, PARSE_SYNTAX),
	PATH_ERR("<a@b>x", 0, PARSE_SYNTAX),
	PATH_ERR("<a@b>>", 0, PARSE_SYNTAX),
	PATH_ERR("<a@b>\tSIZE=1", 0, PARSE_SYNTAX),
	PATH_ERR("\"<a@b>\"", 0, PARSE_SYNTAX),
};

/* str_eq - NULL-safe compare where want NULL means "don't care" */
static int
str_eq(const char *got, const char *want)
{
	return want == NULL || strcmp(got, want) == 0;
}

/* path_case_run - one path table row */
static void
path_case_run(const struct path_case *c)
{
	struct smtp_path p;
	const char *rest = NULL;
	enum smtp_parse_result r;
	int good;

	r = smtp_parse_path(c->args, c->flags & F_NULL, c->flags & F_UTF8,
	    &p, &rest);
	good = r == c->want && rest != NULL;
	if (good && r == PARSE_OK)
		good = str_eq(p.mbox.local, c->local) &&
		    str_eq(p.mbox.domain, c->domain) &&
		    str_eq(p.mbox.text, c->text) && str_eq(rest, c->rest) &&
		    p.mbox.quoted == c->quoted && p.mbox.literal == c->literal &&
		    p.mbox.utf8 == c->utf8 && p.had_route == c->route &&
		    p.null == c->null;
	if (!ok(good, "path '%s' flags %d -> %d", c->args, c->flags, c->want))
		diag("got %d local '%s' domain '%s' text '%s' rest '%s' "
		    "q%d l%d u%d r%d n%d", r, p.mbox.local, p.mbox.domain,
		    p.mbox.text, rest ? rest : "(null)", p.mbox.quoted,
		    p.mbox.literal, p.mbox.utf8, p.had_route, p.null);
}

/* fill - n copies of ch at dst, NUL-terminated; returns the end */
static char *
fill(char *dst, int ch, size_t n)
{
	memset(dst, ch, n);
	dst[n] = '\0';
	return dst + n;
}

/* make_domain - a valid domain of exactly n octets (labels <= 63) */
static char *
make_domain(char *dst, size_t n)
{
	while (n > 63) {
		dst = fill(dst, 'a', 62);
		*dst++ = '.';
		n -= 63;
	}
	return fill(dst, 'b', n);
}

/* path_len - try "<" local(llen) "@" domain(dlen) ">" */
static enum smtp_parse_result
path_len(size_t llen, size_t dlen, const char *route)
{
	char buf[BIG], *p = buf;
	struct smtp_path path;
	const char *rest;

	*p++ = '<';
	p += snprintf(p, sizeof(buf) - 1, "%s", route);
	p = fill(p, 'l', llen);
	*p++ = '@';
	p = make_domain(p, dlen);
	*p++ = '>';
	*p = '\0';
	return smtp_parse_path(buf, 0, 0, &path, &rest);
}

/* test_paths - the table plus generated length limits */
static void
test_paths(void)
{
	char buf[BIG], *p;
	struct smtp_mailbox m;
	size_t i;

	for (i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++)
		path_case_run(&path_cases[i]);

	is_int(path_len(SMTP_LOCAL_MAX, 10, ""), PARSE_OK, "local part of SMTP_LOCAL_MAX octets");
	is_int(path_len(SMTP_LOCAL_MAX + 1, 10, ""), PARSE_BAD_ADDRESS, "local part of SMTP_LOCAL_MAX + 1");
	is_int(path_len(10, 63, ""), PARSE_OK, "label of 63 octets");
	is_int(path_len(1, 189, ""), PARSE_OK, "path of 193 octets");
	is_int(path_len(64, 189, ""), PARSE_OK, "path of 256 octets");
	is_int(path_len(64, 190, ""), PARSE_BAD_ADDRESS, "path of 257 octets");
	is_int(path_len(1, 600, ""), PARSE_BAD_ADDRESS, "domain of 600");
	is_int(path_len(53, 190, "@r.example:"), PARSE_BAD_ADDRESS,
	    "route makes the path 257 octets");
	is_int(path_len(50, 190, "@r.example:"), PARSE_OK,
	    "path of 254 octets with a route");

	p = buf;
	*p++ = '<';
	*p++ = 'a';
	*p++ = '@';
	p = fill(p, 'c', 64);
	strcpy(p, ".org>");
	is_int(smtp_parse_path(buf, 0, 0, &(struct smtp_path){0}, NULL),
	    PARSE_BAD_ADDRESS, "label of 64 octets");

	/* quoted local part: SMTP_LOCAL_MAX octets as written, quotes included */
	p = buf;
	*p++ = '<';
	*p++ = '"';
	p = fill(p, 'q', SMTP_LOCAL_MAX - 2);
	strcpy(p, "\"@x.org>");
	is_int(smtp_parse_path(buf, 0, 0, &(struct smtp_path){0}, NULL),
	    PARSE_OK, "quoted local part of SMTP_LOCAL_MAX octets as written");
	p = buf + 2;
	p = fill(p, 'q', SMTP_LOCAL_MAX - 1);
	strcpy(p, "\"@x.org>");
	is_int(smtp_parse_path(buf, 0, 0, &(struct smtp_path){0}, NULL),
	    PARSE_BAD_ADDRESS, "quoted local part of SMTP_LOCAL_MAX + 1 octets as written");

	/* a 255-octet domain cannot fit in a 254-octet mailbox */
	buf[0] = 'a';
	buf[1] = '@';
	make_domain(buf + 2, 255);
	is_int(smtp_mailbox_parse(buf, strlen(buf), 0, &m), PARSE_BAD_ADDRESS,
	    "mailbox_parse: 257 octets");
	ok(smtp_mailbox_parse("", 0, 0, &m) == PARSE_BAD_ADDRESS,
	    "mailbox_parse: empty");
	is_int(smtp_mailbox_parse("u@example.org", 13, 0, &m), PARSE_OK,
	    "mailbox_parse: plain");
	is_str(m.text, "u@example.org", "mailbox_parse: text");
	is_int(smtp_mailbox_parse("u@example.org trailing", 13, 0, &m),
	    PARSE_OK, "mailbox_parse: uses len only");
	is_int(smtp_mailbox_parse("<u@example.org>", 15, 0, &m),
	    PARSE_BAD_ADDRESS, "mailbox_parse: no brackets allowed");
	is_int(smtp_mailbox_parse("u@ex\0mple.org", 13, 0, &m),
	    PARSE_BAD_ADDRESS, "mailbox_parse: NUL inside");
	is_int(smtp_mailbox_parse("\xc3\xa9@x.org", 8, 1, &m), PARSE_OK,
	    "mailbox_parse: utf8 allowed");
	is_int(smtp_mailbox_parse("\xc3\xa9@x.org", 8, 0, &m),
	    PARSE_NEED_UTF8, "mailbox_parse: utf8 not allowed");
}

/* ---- MAIL / RCPT parameters -------------------------------------------- */

struct param_case {
	const char *params;
	enum smtp_parse_result want;
	int64_t size;
	enum smtp_body body;
	int smtputf8;
	const char *err;	/* substring expected in err, or NULL */
};

static const struct param_case mail_param_cases[] = {
	{ "", PARSE_OK, -1, BODY_7BIT, 0, NULL },
	{ NULL, PARSE_OK, -1, BODY_7BIT, 0, NULL },
	{ "   ", PARSE_OK, -1, BODY_7BIT, 0, NULL },
	{ "SIZE=12345", PARSE_OK, 12345, BODY_7BIT, 0, NULL },
	{ "size=0", PARSE_OK, 0, BODY_7BIT, 0, NULL },
	{ "SIZE=9223372036854775807", PARSE_OK, INT64_MAX, BODY_7BIT, 0, NULL },
	{ "SIZE=00000000000000000001", PARSE_OK, 1, BODY_7BIT, 0, NULL },
	{ "SIZE=9223372036854775808", PARSE_BAD_PARAM, 0, 0, 0, "SIZE" },
	{ "SIZE=000000000000000000001", PARSE_BAD_PARAM, 0, 0, 0, "SIZE" },
	{ "SIZE=", PARSE_BAD_PARAM, 0, 0, 0, NULL },
	{ "SIZE", PARSE_BAD_PARAM, 0, 0, 0, "SIZE" },
	{ "SIZE=-1", PARSE_BAD_PARAM, 0, 0, 0, "SIZE" },
	{ "SIZE=1k", PARSE_BAD_PARAM, 0, 0, 0, "SIZE" },
	{ "SIZE=1 SIZE=2", PARSE_BAD_PARAM, 0, 0, 0, "Duplicate" },
	{ "BODY=8BITMIME", PARSE_OK, -1, BODY_8BITMIME, 0, NULL },
	{ "body=8bitmime", PARSE_OK, -1, BODY_8BITMIME, 0, NULL },
	{ "BODY=7BIT", PARSE_OK, -1, BODY_7BIT, 0, NULL },
	{ "BODY=BINARYMIME", PARSE_UNKNOWN_PARAM, 0, 0, 0, "BODY" },
	{ "BODY=9BIT", PARSE_BAD_PARAM, 0, 0, 0, "BODY" },
	{ "BODY", PARSE_BAD_PARAM, 0, 0, 0, "BODY" },
	{ "BODY=7BIT BODY=8BITMIME", PARSE_BAD_PARAM, 0, 0, 0, "Duplicate" },
	{ "SMTPUTF8", PARSE_OK, -1, BODY_7BIT, 1, NULL },
	{ "smtputf8", PARSE_OK, -1, BODY_7BIT, 1, NULL },
	{ "SMTPUTF8=yes", PARSE_BAD_PARAM, 0, 0, 0, "SMTPUTF8" },
	{ "SMTPUTF8 SMTPUTF8", PARSE_BAD_PARAM, 0, 0, 0, "Duplicate" },
	{ "SIZE=100  BODY=8BITMIME SMTPUTF8 ", PARSE_OK, 100, BODY_8BITMIME, 1,
	  NULL },
	{ "AUTH=<>", PARSE_UNKNOWN_PARAM, 0, 0, 0, "AUTH" },
	{ "RET=HDRS", PARSE_UNKNOWN_PARAM, 0, 0, 0, "RET" },
	{ "SIZE=1 X-FOO", PARSE_UNKNOWN_PARAM, 0, 0, 0, "X-FOO" },
	{ "=x", PARSE_BAD_PARAM, 0, 0, 0, NULL },
	{ "-X", PARSE_BAD_PARAM, 0, 0, 0, NULL },
	{ "A=b=c", PARSE_BAD_PARAM, 0, 0, 0, NULL },
	{ "SIZE\t=1", PARSE_BAD_PARAM, 0, 0, 0, NULL },
	{ "X\x01Y", PARSE_BAD_PARAM, 0, 0, 0, "X?Y" },
	{ "A B C D E F G H I J K L M N O P Q", PARSE_BAD_PARAM, 0, 0, 0,
	  "Too many" },
};

/* test_mail_params - the MAIL parameter table */
static void
test_mail_params(void)
{
	size_t i;

	for (i = 0; i < sizeof(mail_param_cases) / sizeof(mail_param_cases[0]);
	    i++) {
		const struct param_case *c = &mail_param_cases[i];
		struct smtp_mail_params mp;
		char err[128];
		enum smtp_parse_result r;
		int good;

		r = smtp_parse_mail_params(c->params, &mp, err, sizeof(err));
		good = r == c->want;
		if (good && r == PARSE_OK)
			good = mp.size == c->size && mp.body == c->body &&
			    mp.smtputf8 == c->smtputf8 && err[0] == '\0';
		if (good && r != PARSE_OK)
			good = err[0] != '\0' &&
			    (c->err == NULL || strstr(err, c->err) != NULL);
		if (!ok(good, "mail params '%s' -> %d",
		    c->params ? c->params : "(null)", c->want))
			diag("got %d size %lld body %d utf8 %d err '%s'", r,
			    (long long)mp.size, mp.body, mp.smtputf8, err);
	}
}

struct rcpt_case {
	const char *params;
	enum smtp_parse_result want;
	const char *err;
};

static const struct rcpt_case rcpt_param_cases[] = {
	{ "", PARSE_OK, NULL },
	{ NULL, PARSE_OK, NULL },
	{ "  ", PARSE_OK, NULL },
	{ "NOTIFY=NEVER", PARSE_UNKNOWN_PARAM, "NOTIFY" },
	{ "ORCPT=rfc822;a@b", PARSE_UNKNOWN_PARAM, "ORCPT" },
	{ "FOO", PARSE_UNKNOWN_PARAM, "FOO" },
};

/* test_rcpt_params - RCPT takes nothing */
static void
test_rcpt_params(void)
{
	size_t i;

	for (i = 0; i < sizeof(rcpt_param_cases) / sizeof(rcpt_param_cases[0]);
	    i++) {
		const struct rcpt_case *c = &rcpt_param_cases[i];
		char err[128];
		enum smtp_parse_result r;

		r = smtp_parse_rcpt_params(c->params, err, sizeof(err));
		if (!ok(r == c->want && (c->err == NULL ? err[0] == '\0' :
		    strstr(err, c->err) != NULL), "rcpt params '%s'",
		    c->params ? c->params : "(null)"))
			diag("got %d err '%s'", r, err);
	}
}

/* ---- HELO and sanitize ------------------------------------------------- */

struct helo_case {
	const char *arg;
	int valid;
};

static const struct helo_case helo_cases[] = {
	{ "mail.example.org", 1 },
	{ "mail.example.org.", 1 },
	{ "localhost", 1 },
	{ "my_pc.example", 1 },
	{ "[192.0.2.1]", 1 },
	{ "[IPv6:2001:db8::25]", 1 },
	{ "", 0 },
	{ ".", 0 },
	{ "example..org", 0 },
	{ "example.org..", 0 },
	{ "-example.org", 0 },
	{ "example-.org", 0 },
	{ "mail example", 0 },
	{ "mail.example ", 0 },
	{ "mail\texample", 0 },
	{ "mail\x01.example", 0 },
	{ "b\xc3\xbc" "cher.example", 0 },
	{ "[192.0.2.300]", 0 },
	{ "[tag:content]", 0 },
	{ "192.0.2.1", 1 },	/* a domain syntactically (digits are legal) */
	{ "<script>", 0 },
};

/* test_helo - smtp_helo_valid table */
static void
test_helo(void)
{
	char buf[BIG];
	size_t i;

	for (i = 0; i < sizeof(helo_cases) / sizeof(helo_cases[0]); i++)
		is_int(smtp_helo_valid(helo_cases[i].arg), helo_cases[i].valid,
		    helo_cases[i].arg);
	ok(!smtp_helo_valid(NULL), "helo NULL");
	make_domain(buf, 255);
	ok(smtp_helo_valid(buf), "helo of 255 octets");
	make_domain(buf, 256);
	ok(!smtp_helo_valid(buf), "helo of 256 octets");
	fill(buf, 'h', 64);
	ok(!smtp_helo_valid(buf), "helo label of 64 octets");
}

struct sanitize_case {
	const char *in;
	size_t dstlen;
	const char *want;
};

static const struct sanitize_case sanitize_cases[] = {
	{ "plain text", 64, "plain text" },
	{ "tab\there", 64, "tab?here" },
	{ "crlf\r\nReceived: x", 64, "crlf??Received: x" },
	{ "b\xc3\xbc" "cher", 64, "b??cher" },
	{ "del\x7f", 64, "del?" },
	{ "truncated", 5, "trun" },
	{ "x", 1, "" },
	{ "", 8, "" },
};

/* test_sanitize - smtp_sanitize table */
static void
test_sanitize(void)
{
	char dst[64];
	size_t i;

	for (i = 0; i < sizeof(sanitize_cases) / sizeof(sanitize_cases[0]);
	    i++) {
		const struct sanitize_case *c = &sanitize_cases[i];

		memset(dst, 'Z', sizeof(dst));
		smtp_sanitize(dst, c->dstlen, c->in);
		is_str(dst, c->want, c->want);
	}
	dst[0] = 'Z';
	smtp_sanitize(dst, 0, "x");
	ok(dst[0] == 'Z', "sanitize into a zero-length buffer writes nothing");
}

static const struct sanitize_case helo_header_cases[] = {
	{ "mx.example.test", 64, "mx.example.test" },
	{ "[192.0.2.1]", 64, "[192.0.2.1]" },
	{ "[IPv6:2001:db8::1]", 64, "[IPv6:2001:db8::1]" },
	{ "under_score-ok", 64, "under_score-ok" },
	/* the probe's forged comment: nothing of its structure survives */
	{ "x.test (by fake.example with ESMTPS; ) X-Evil: y", 96,
	  "x.test%20%28by%20fake.example%20with%20ESMTPS%3B%20%29%20X-Evil:%20y" },
	{ "a%b", 64, "a%25b" },
	{ "cr\rlf\n", 64, "cr%0Dlf%0A" },
	{ "b\xc3\xbc", 64, "b%C3%BC" },
	{ "ab(c", 5, "ab" },		/* no half escape */
	{ "abcd", 3, "ab" },
	{ "", 8, "" },
};

/* test_helo_header - smtp_helo_header table */
static void
test_helo_header(void)
{
	char dst[128];
	size_t i;

	for (i = 0; i < sizeof(helo_header_cases) / sizeof(helo_header_cases[0]); i++) {
		const struct sanitize_case *c = &helo_header_cases[i];

		memset(dst, 'Z', sizeof(dst));
		smtp_helo_header(dst, c->dstlen, c->in);
		is_str(dst, c->want, c->in);
	}
}

/* The canonical form (issue 17): one written form per address. */
struct canon_case {
	const char *in;		/* a bare mailbox as a client may write it */
	const char *want;	/* its canonical form; NULL: not an address */
};

static const struct canon_case canon_cases[] = {
	{ "team@hosted.test", "team@hosted.test" },
	{ "\"team\"@hosted.test", "team@hosted.test" },
	{ "\"TEAM\"@HOSTED.TEST", "TEAM@hosted.test" },
	{ "TEAM@Hosted.Test", "TEAM@hosted.test" },
	{ "\"sal\\es\"@hosted.test", "sales@hosted.test" },
	{ "\"\\s\\a\\l\\e\\s\"@hosted.test", "sales@hosted.test" },
	{ "\"joe+tag\"@d.test", "joe+tag@d.test" },
	{ "\"first.last\"@d.test", "first.last@d.test" },
	{ "\"john doe\"@d.test", "\"john doe\"@d.test" },
	{ "\"john\\ doe\"@d.test", "\"john doe\"@d.test" },
	{ "\"a..b\"@d.test", "\"a..b\"@d.test" },
	{ "\".a\"@d.test", "\".a\"@d.test" },
	{ "\"a.\"@d.test", "\"a.\"@d.test" },
	{ "\"a@b\"@d.test", "\"a@b\"@d.test" },
	{ "\"a\\\"b\"@d.test", "\"a\\\"b\"@d.test" },
	{ "\"a\\\\b\"@d.test", "\"a\\\\b\"@d.test" },
	{ "\"a,b\"@d.test", "\"a,b\"@d.test" },
	{ "\"a%b\"@d.test", "a%b@d.test" },
	{ "user@[127.0.0.1]", "user@[127.0.0.1]" },
	{ "user@[IPv6:::1]", "user@[IPv6:::1]" },
	{ "\xc3\xa9l\xc3\xa8" "ve@\xc3\x89" "cole.test", "\xc3\xa9l\xc3\xa8" "ve@\xc3\x89" "cole.test" },
	{ "\"\xc3\xa9l\xc3\xa8" "ve\"@d.test", "\xc3\xa9l\xc3\xa8" "ve@d.test" },
	{ "a..b@d.test", NULL },
	{ "\"\"@d.test", NULL },
	{ "joe@d.test.", NULL },
};

static void
test_canonical(void)
{
	char out[SMTP_PATH_MAX + 1], again[SMTP_PATH_MAX + 1];

	for (size_t i = 0; i < sizeof(canon_cases) / sizeof(canon_cases[0]); i++) {
		const struct canon_case *c = &canon_cases[i];
		enum smtp_parse_result r = smtp_address_canonical(c->in, out,
		    sizeof(out));

		if (c->want == NULL) {
			ok(r != PARSE_OK, "canonical '%s': not an address", c->in);
			continue;
		}
		if (!ok(r == PARSE_OK && strcmp(out, c->want) == 0,
		    "canonical '%s' -> '%s'", c->in, c->want))
			diag("got %d '%s'", r, r == PARSE_OK ? out : "");
		/* canonical twice is canonical, and never longer */
		ok(smtp_address_canonical(out, again, sizeof(again)) == PARSE_OK &&
		    strcmp(out, again) == 0 && strlen(out) <= strlen(c->in),
		    "canonical '%s' is a fixed point", c->want);
	}
	ok(smtp_local_canonical("john doe", out, 5) == 0,
	    "local canonical into a short buffer fails");
	ok(smtp_local_canonical("joe", out, 4) == 3 && strcmp(out, "joe") == 0,
	    "local canonical fits exactly");
}

int
main(void)
{
	test_commands();
	test_paths();
	test_mail_params();
	test_rcpt_params();
	test_helo();
	test_sanitize();
	test_helo_header();
	test_canonical();
	return done_testing();
}
