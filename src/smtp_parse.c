/* smtp_parse.c - pure parsing of SMTP commands, paths and ESMTP parameters
 *
 * Everything here works on one command line already split off the stream
 * (no CRLF). No I/O, no tables, no allocation: the session code decides
 * what a verdict means. The grammar is RFC 5321 4.1.2, with the RFC 6531
 * extensions (UTF-8 in local part and domain) when SMTPUTF8 is in effect.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_parse.h"
#include "util.h"

/* A mailbox must fit in a path with its two angle brackets. */
#define SMTP_MAILBOX_MAX	(SMTP_PATH_MAX - 2)
#define SMTP_LABEL_MAX		63	/* RFC 1035 2.3.4 */
#define SMTP_LITERAL_MAX	64	/* longest address literal content we parse */
#define SMTP_SIZE_DIGITS	20	/* SIZE= value digits (RFC 1870) */
#define SMTP_PARAM_SHOW		64	/* client text quoted in an error message */

/* domain_check flags */
#define DOM_UTF8		0x01	/* U-labels (RFC 6531 3.3) */
#define DOM_TRAILING_DOT	0x02	/* one final dot (HELO argument) */
#define DOM_UNDERSCORE		0x04	/* '_' in labels (HELO argument) */

static const char *const smtp_cmd_names[CMD_COUNT_] = {
	[CMD_UNKNOWN] = "UNKNOWN",
	[CMD_HELO] = "HELO",
	[CMD_EHLO] = "EHLO",
	[CMD_MAIL] = "MAIL",
	[CMD_RCPT] = "RCPT",
	[CMD_DATA] = "DATA",
	[CMD_RSET] = "RSET",
	[CMD_NOOP] = "NOOP",
	[CMD_QUIT] = "QUIT",
	[CMD_VRFY] = "VRFY",
	[CMD_EXPN] = "EXPN",
	[CMD_HELP] = "HELP",
	[CMD_STARTTLS] = "STARTTLS",
	[CMD_XCLIENT] = "XCLIENT",
};

/* is_alpha - ASCII letter, locale independent */
static int
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* is_digit - ASCII digit */
static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* is_atext - RFC 5322 3.2.3 atext, ASCII part */
static int
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_qtext - RFC 5321 4.1.2 qtextSMTP, ASCII part */
static int
is_qtext(unsigned char c)
{
	return c == 32 || c == 33 || (c >= 35 && c <= 91) ||
	    (c >= 93 && c <= 126);
}

/* skip_spaces - advance past SP characters */
static const char *
skip_spaces(const char *p)
{
	while (*p == ' ')
		p++;
	return p;
}

/* utf8_len - length of the well-formed UTF-8 sequence at s (RFC 3629 4),
 * 0 when it is ill-formed (overlong, surrogate, beyond U+10FFFF, cut). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0)
		need = 1;
	else if (c < 0xf0) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (n < need + 1)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i <= need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need + 1;
}

/* literal_check - is s[0..len) "[IPv4]" or "[IPv6:addr]" (RFC 5321 4.1.3)?
 * General-address-literals name no transport we use and are refused. */
static int
literal_check(const char *s, size_t len)
{
	char buf[SMTP_LITERAL_MAX];
	size_t i, ilen;

	if (len < 3 || s[0] != '[' || s[len - 1] != ']')
		return 0;
	ilen = len - 2;
	if (ilen >= sizeof(buf))
		return 0;
	for (i = 0; i < ilen; i++)
		if ((unsigned char)s[1 + i] <= ' ' ||
		    (unsigned char)s[1 + i] >= 0x7f)
			return 0;
	memcpy(buf, s + 1, ilen);
	buf[ilen] = '\0';
	if (ilen > 5 && strncasecmp(buf, "IPv6:", 5) == 0) {
		struct in6_addr a6;
		return inet_pton(AF_INET6, buf + 5, &a6) == 1;
	}
	if (strchr(buf, ':') != NULL)
		return 0;
	struct in_addr a4;
	return inet_pton(AF_INET, buf, &a4) == 1;
}

/* domain_check - is s[0..len) a sequence of sub-domains (RFC 5321 4.1.2)?
 * Labels are 1..63 octets of letters, digits and hyphens, not starting or
 * ending with a hyphen; flags widen that. Sets *utf8 when a label holds a
 * (well-formed) non-ASCII octet sequence. */
static int
domain_check(const char *s, size_t len, int flags, int *utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, label = 0, n;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	if ((flags & DOM_TRAILING_DOT) && len > 1 && s[len - 1] == '.')
		len--;
	while (i < len) {
		unsigned char c = u[i];

		if (c == '.') {
			if (label == 0 || u[i - 1] == '-')
				return 0;
			label = 0;
			i++;
			continue;
		}
		if (c >= 0x80) {
			if (!(flags & DOM_UTF8) ||
			    (n = utf8_len(u + i, len - i)) == 0)
				return 0;
			*utf8 = 1;
		} else if (is_alpha(c) || is_digit(c) ||
		    (c == '_' && (flags & DOM_UNDERSCORE)))
			n = 1;
		else if (c == '-' && label > 0)
			n = 1;
		else
			return 0;
		label += n;
		i += n;
		if (label > SMTP_LABEL_MAX)
			return 0;
	}
	/* An empty final label is a trailing dot or an empty domain. */
	return label > 0 && u[len - 1] != '-';
}

/* local_quoted - parse a Quoted-string local part at s[0] == '"'; store the
 * unquoted value in m->local. *end is the index after the closing quote. */
static int
local_quoted(const char *s, size_t len, struct smtp_mailbox *m, size_t *end)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 1, o = 0, n;

	while (i < len && u[i] != '"') {
		if (u[i] == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			if (i + 1 >= len || u[i + 1] < 32 || u[i + 1] > 126)
				return 0;
			i++;
			n = 1;
		} else if (u[i] >= 0x80) {
			if ((n = utf8_len(u + i, len - i)) == 0)
				return 0;
			m->utf8 = 1;
		} else if (is_qtext(u[i]))
			n = 1;
		else
			return 0;
		/* the raw length check in the caller bounds o, but be sure */
		if (o + n > SMTP_LOCAL_MAX)
			return 0;
		memcpy(m->local + o, s + i, n);
		o += n;
		i += n;
	}
	if (i >= len || o == 0)
		return 0;
	m->local[o] = '\0';
	m->quoted = 1;
	*end = i + 1;
	return 1;
}

/* local_dotstring - parse a Dot-string local part (Atom *("." Atom)) up to
 * the first '@'; *end is that index (or len). */
static int
local_dotstring(const char *s, size_t len, struct smtp_mailbox *m, size_t *end)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len && u[i] != '@') {
		if (u[i] == '.') {
			/* no leading, trailing or doubled dots */
			if (i == 0 || u[i - 1] == '.')
				return 0;
			n = 1;
		} else if (u[i] >= 0x80) {
			if ((n = utf8_len(u + i, len - i)) == 0)
				return 0;
			m->utf8 = 1;
		} else if (is_atext(u[i]))
			n = 1;
		else
			return 0;
		i += n;
	}
	if (i == 0 || u[i - 1] == '.' || i > SMTP_LOCAL_MAX)
		return 0;
	memcpy(m->local, s, i);
	m->local[i] = '\0';
	*end = i;
	return 1;
}

/* smtp_mailbox_parse - parse a bare mailbox "local@domain" (no brackets) */
enum smtp_parse_result
smtp_mailbox_parse(const char *s, size_t len, int allow_utf8,
    struct smtp_mailbox *m)
{
	size_t at, dlen;
	const char *dom;
	int ok;

	memset(m, 0, sizeof(*m));
	if (s == NULL || len == 0 || len > SMTP_MAILBOX_MAX)
		return PARSE_BAD_ADDRESS;
	if (s[0] == '"')
		ok = local_quoted(s, len, m, &at);
	else
		ok = local_dotstring(s, len, m, &at);
	/* RFC 5321 4.5.3.1.1: 64 octets, counted as written */
	if (!ok || at > SMTP_LOCAL_MAX || at >= len || s[at] != '@')
		goto bad;
	dom = s + at + 1;
	dlen = len - at - 1;
	if (dlen > 0 && dom[0] == '[') {
		if (!literal_check(dom, dlen))
			goto bad;
		m->literal = 1;
	} else if (!domain_check(dom, dlen, DOM_UTF8, &m->utf8))
		goto bad;
	memcpy(m->domain, dom, dlen);
	m->domain[dlen] = '\0';
	memcpy(m->text, s, len);
	m->text[len] = '\0';
	/* Check the syntax first, so that garbage is a syntax error. */
	if (m->utf8 && !allow_utf8)
		return PARSE_NEED_UTF8;
	return PARSE_OK;
bad:
	memset(m, 0, sizeof(*m));
	return PARSE_BAD_ADDRESS;
}

/* local_is_dotstring - is the local part value v a Dot-string (RFC 5321
 * 4.1.2: Atom *("." Atom)), so that it needs no quotes? UTF-8 counts as
 * atext (RFC 6531 3.3). */
static int
local_is_dotstring(const char *v)
{
	const unsigned char *u = (const unsigned char *)v;
	size_t n = strlen(v);

	if (n == 0 || u[0] == '.' || u[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (u[i] == '.' && u[i + 1] == '.')
			return 0;
		if (u[i] != '.' && u[i] < 0x80 && !is_atext(u[i]))
			return 0;
	}
	return 1;
}

/* smtp_local_canonical - the one written form of a local part value */
size_t
smtp_local_canonical(const char *value, char *out, size_t outlen)
{
	size_t o = 0;

	if (local_is_dotstring(value)) {
		if (mx_strlcpy(out, value, outlen) >= outlen)
			return 0;
		return strlen(out);
	}
	/* RFC 5321 4.1.2: a Quoted-string; only '"' and '\' need the
	 * quoted-pair, every other printable octet stands for itself */
	if (outlen < 3)
		return 0;
	out[o++] = '"';
	for (const char *p = value; *p != '\0'; p++) {
		if (o + 4 > outlen)
			return 0;
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

/* smtp_mailbox_canonical - canonical local part, '@', the domain with its
 * ASCII letters lower-cased (RFC 5321 2.4: domains are not case
 * sensitive; an address literal stays as written) */
size_t
smtp_mailbox_canonical(const struct smtp_mailbox *m, char *out, size_t outlen)
{
	size_t n = smtp_local_canonical(m->local, out, outlen), d;

	if (n == 0 || (d = strlen(m->domain)) + n + 2 > outlen)
		return 0;
	out[n] = '@';
	memcpy(out + n + 1, m->domain, d + 1);
	if (!m->literal)
		for (char *p = out + n + 1; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return n + 1 + d;
}

/* smtp_address_canonical - parse and canonicalise a bare mailbox */
enum smtp_parse_result
smtp_address_canonical(const char *s, char *out, size_t outlen)
{
	struct smtp_mailbox m;
	enum smtp_parse_result r;

	if ((r = smtp_mailbox_parse(s, strlen(s), 1, &m)) != PARSE_OK)
		return r;
	return smtp_mailbox_canonical(&m, out, outlen) ? PARSE_OK :
	    PARSE_BAD_ADDRESS;
}

/* path_route - skip an A-d-l source route "@a,@b:" (RFC 5321 4.1.2, to be
 * ignored per C.), checking that each hop is a domain. Returns the position
 * after the colon, or NULL. */
static const char *
path_route(const char *p)
{
	int utf8 = 0;

	for (;;) {
		const char *d;
		size_t n;

		if (*p != '@')
			return NULL;
		d = ++p;
		n = strcspn(d, ",:>");
		if (n > 0 && d[0] == '[') {
			if (!literal_check(d, n))
				return NULL;
		} else if (!domain_check(d, n, DOM_UTF8, &utf8))
			return NULL;
		p = d + n;
		if (*p == ':')
			return p + 1;
		if (*p != ',')
			return NULL;
		p++;
	}
}

/* path_mailbox_end - find the '>' that closes the mailbox starting at p,
 * stepping over a quoted local part (which may hold '>'). */
static const char *
path_mailbox_end(const char *p)
{
	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		if (*p == '"')
			p++;
	}
	return strchr(p, '>');
}

/* smtp_parse_path - parse "<...>" plus trailing parameters start */
enum smtp_parse_result
smtp_parse_path(const char *args, int allow_null, int allow_utf8,
    struct smtp_path *path, const char **rest)
{
	enum smtp_parse_result r;
	const char *start, *p, *gt;

	memset(path, 0, sizeof(*path));
	if (rest != NULL)
		*rest = "";
	if (args == NULL)
		return PARSE_SYNTAX;
	start = skip_spaces(args);
	if (*start != '<')
		return PARSE_SYNTAX;
	p = start + 1;
	if (*p == '>') {
		if (!allow_null)
			return PARSE_BAD_ADDRESS;
		path->null = 1;
		gt = p;
	} else {
		if (*p == '@') {
			if ((p = path_route(p)) == NULL)
				return strchr(start, '>') ? PARSE_BAD_ADDRESS :
				    PARSE_SYNTAX;
			path->had_route = 1;
		}
		if ((gt = path_mailbox_end(p)) == NULL)
			return PARSE_SYNTAX;
		if ((size_t)(gt - start) + 1 > SMTP_PATH_MAX)
			return PARSE_BAD_ADDRESS;
		r = smtp_mailbox_parse(p, (size_t)(gt - p), allow_utf8,
		    &path->mbox);
		if (r != PARSE_OK)
			return r;
	}
	/* parameters are separated from the path by SP */
	p = gt + 1;
	if (*p != '\0' && *p != ' ')
		return PARSE_SYNTAX;
	if (rest != NULL)
		*rest = skip_spaces(p);
	return PARSE_OK;
}

/* param_error - format an error naming the client's parameter, sanitized */
static void
param_error(char *err, size_t errlen, const char *what, const char *key,
    size_t keylen)
{
	char shown[SMTP_PARAM_SHOW + 1], raw[SMTP_PARAM_SHOW + 1];

	if (err == NULL || errlen == 0)
		return;
	if (keylen > SMTP_PARAM_SHOW)
		keylen = SMTP_PARAM_SHOW;
	memcpy(raw, key, keylen);
	raw[keylen] = '\0';
	smtp_sanitize(shown, sizeof(shown), raw);
	snprintf(err, errlen, "%s: %s", what, shown);
}

/* param_next - split off the next SP-separated token of *pp; returns its
 * length (0 at the end) and its start in *tok. */
static size_t
param_next(const char **pp, const char **tok)
{
	const char *p = skip_spaces(*pp);
	size_t n = strcspn(p, " ");

	*tok = p;
	*pp = p + n;
	return n;
}

/* param_split - check esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2) and
 * find the value: *vlen is 0 and *val NULL without "=". */
static int
param_split(const char *tok, size_t n, size_t *klen, const char **val,
    size_t *vlen)
{
	const unsigned char *u = (const unsigned char *)tok;
	size_t i;

	for (i = 0; i < n && u[i] != '='; i++)
		if (!is_alpha(u[i]) && !is_digit(u[i]) &&
		    (i == 0 || u[i] != '-'))
			return 0;
	if (i == 0)
		return 0;
	*klen = i;
	*val = NULL;
	*vlen = 0;
	if (i == n)
		return 1;
	*val = tok + i + 1;
	*vlen = n - i - 1;
	if (*vlen == 0)
		return 0;
	/* esmtp-value = 1*(%d33-60 / %d62-126); RFC 6531 allows UTF-8 too,
	 * but none of our values needs it. */
	for (i = 0; i < *vlen; i++)
		if (u[*klen + 1 + i] < 33 || u[*klen + 1 + i] > 126 ||
		    u[*klen + 1 + i] == '=')
			return 0;
	return 1;
}

/* keyword_is - case-insensitive compare of a counted token to a word */
static int
keyword_is(const char *k, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(k, word, n) == 0;
}

/* mail_param_size - SIZE=digits (RFC 1870 3), fitting an int64 */
static enum smtp_parse_result
mail_param_size(const char *v, size_t n, struct smtp_mail_params *p)
{
	int64_t x = 0;
	size_t i;

	if (v == NULL || n > SMTP_SIZE_DIGITS)
		return PARSE_BAD_PARAM;
	for (i = 0; i < n; i++) {
		if (!is_digit((unsigned char)v[i]))
			return PARSE_BAD_PARAM;
		if (x > (INT64_MAX - (v[i] - '0')) / 10)
			return PARSE_BAD_PARAM;
		x = x * 10 + (v[i] - '0');
	}
	p->size = x;
	return PARSE_OK;
}

/* mail_param_body - BODY=7BIT|8BITMIME (RFC 6152 2) */
static enum smtp_parse_result
mail_param_body(const char *v, size_t n, struct smtp_mail_params *p)
{
	if (v == NULL)
		return PARSE_BAD_PARAM;
	if (keyword_is(v, n, "7BIT"))
		p->body = BODY_7BIT;
	else if (keyword_is(v, n, "8BITMIME"))
		p->body = BODY_8BITMIME;
	else if (keyword_is(v, n, "BINARYMIME"))
		return PARSE_UNKNOWN_PARAM;	/* RFC 3030: needs CHUNKING */
	else
		return PARSE_BAD_PARAM;
	return PARSE_OK;
}

/* mail_param_smtputf8 - SMTPUTF8 takes no value (RFC 6531 3.4) */
static enum smtp_parse_result
mail_param_smtputf8(const char *v, size_t n, struct smtp_mail_params *p)
{
	if (v != NULL)
		return PARSE_BAD_PARAM;
	p->smtputf8 = 1;
	return PARSE_OK;
}

static const struct mail_param {
	const char *name;
	enum smtp_parse_result (*apply)(const char *, size_t,
	    struct smtp_mail_params *);
} mail_params[] = {
	{ "SIZE", mail_param_size },
	{ "BODY", mail_param_body },
	{ "SMTPUTF8", mail_param_smtputf8 },
};

/* mail_param_one - apply one KEY[=VALUE] token; seen has a bit per known
 * parameter so that a repeated one is refused. */
static enum smtp_parse_result
mail_param_one(const char *tok, size_t n, struct smtp_mail_params *p,
    unsigned *seen, char *err, size_t errlen)
{
	enum smtp_parse_result r;
	const char *val;
	size_t klen, vlen, i;

	if (!param_split(tok, n, &klen, &val, &vlen)) {
		param_error(err, errlen, "Bad parameter syntax", tok, n);
		return PARSE_BAD_PARAM;
	}
	for (i = 0; i < MX_ARRAY_LEN(mail_params); i++)
		if (keyword_is(tok, klen, mail_params[i].name))
			break;
	if (i == MX_ARRAY_LEN(mail_params)) {
		param_error(err, errlen, "Unsupported option", tok, klen);
		return PARSE_UNKNOWN_PARAM;
	}
	if (*seen & (1u << i)) {
		param_error(err, errlen, "Duplicate parameter", tok, klen);
		return PARSE_BAD_PARAM;
	}
	*seen |= 1u << i;
	r = mail_params[i].apply(val, vlen, p);
	if (r == PARSE_UNKNOWN_PARAM)
		param_error(err, errlen, "Unsupported option value", tok, n);
	else if (r != PARSE_OK)
		param_error(err, errlen, "Bad parameter value", tok, n);
	return r;
}

/* smtp_parse_mail_params - SIZE=, BODY=7BIT|8BITMIME, SMTPUTF8 */
enum smtp_parse_result
smtp_parse_mail_params(const char *params, struct smtp_mail_params *p,
    char *err, size_t errlen)
{
	enum smtp_parse_result r;
	const char *tok, *s = params ? params : "";
	size_t n, count = 0;
	unsigned seen = 0;

	p->size = -1;
	p->body = BODY_7BIT;
	p->smtputf8 = 0;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* the limit holds whatever the parameters are */
	while ((n = param_next(&s, &tok)) > 0)
		if (++count > SMTP_PARAMS_MAX) {
			param_error(err, errlen, "Too many parameters", tok, n);
			return PARSE_BAD_PARAM;
		}
	s = params ? params : "";
	while ((n = param_next(&s, &tok)) > 0)
		if ((r = mail_param_one(tok, n, p, &seen, err, errlen)) !=
		    PARSE_OK)
			return r;
	return PARSE_OK;
}

/* smtp_parse_rcpt_params - RCPT takes no parameters we support (no DSN) */
enum smtp_parse_result
smtp_parse_rcpt_params(const char *params, char *err, size_t errlen)
{
	const char *tok, *s = params ? params : "";
	size_t n, klen, vlen;
	const char *val;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((n = param_next(&s, &tok)) == 0)
		return PARSE_OK;
	if (param_split(tok, n, &klen, &val, &vlen))
		n = klen;
	param_error(err, errlen, "Unsupported option", tok, n);
	return PARSE_UNKNOWN_PARAM;
}

/* smtp_helo_valid - syntax check of a HELO/EHLO argument: a domain or an
 * address literal. Real-world HELO names are looser than envelope domains:
 * one trailing dot and '_' in labels pass (as in Postfix valid_hostname). */
int
smtp_helo_valid(const char *arg)
{
	size_t len;
	int utf8 = 0;

	if (arg == NULL || (len = strlen(arg)) == 0)
		return 0;
	if (arg[0] == '[')
		return literal_check(arg, len);
	return domain_check(arg, len, DOM_TRAILING_DOT | DOM_UNDERSCORE, &utf8);
}

/* smtp_sanitize - copy s into dst keeping printable ASCII, others as '?' */
void
smtp_sanitize(char *dst, size_t dstlen, const char *s)
{
	size_t i;

	if (dstlen == 0)
		return;
	for (i = 0; s != NULL && s[i] != '\0' && i + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[i] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	dst[i] = '\0';
}

/* smtp_helo_header - the HELO text as it may appear in a Received: header.
 * RFC 5321 4.4: the "from" clause holds a domain or an address literal; a
 * client's HELO is anything, and spaces, parentheses or ";" in it would
 * forge the comment and clause structure of the header. Keep the octets
 * of domains and address literals (letters, digits, "-", ".", "_", "[",
 * "]", ":"), write every other octet as %HH; the result is cut at a
 * whole escape when dst is too small. */
void
smtp_helo_header(char *dst, size_t dstlen, const char *helo)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (dstlen == 0)
		return;
	for (; helo != NULL && *helo != '\0'; helo++) {
		unsigned char c = (unsigned char)*helo;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._[]:", c) != NULL) {
			if (o + 1 >= dstlen)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 3 >= dstlen)
				break;
			dst[o++] = '%';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
}

/* smtp_command_name - the verb of a command, "UNKNOWN" if out of range */
const char *
smtp_command_name(enum smtp_cmd cmd)
{
	if ((int)cmd < 0 || cmd >= CMD_COUNT_)
		return smtp_cmd_names[CMD_UNKNOWN];
	return smtp_cmd_names[cmd];
}

/* command_keyword - match "FROM:" / "TO:" after MAIL / RCPT, tolerating
 * spaces around it like Postfix; returns the argument start or NULL. */
static const char *
command_keyword(const char *p, const char *kw)
{
	size_t n = strlen(kw);

	p = skip_spaces(p);
	if (strncasecmp(p, kw, n) != 0)
		return NULL;
	p = skip_spaces(p + n);
	if (*p != ':')
		return NULL;
	return skip_spaces(p + 1);
}

/* smtp_command_parse - split a command line (no CRLF, NUL-terminated) */
enum smtp_cmd
smtp_command_parse(const char *line, const char **args)
{
	int c;

	for (c = CMD_UNKNOWN + 1; c < CMD_COUNT_; c++) {
		size_t n = strlen(smtp_cmd_names[c]);

		/* the verb ends at SP or the end of the line: DATAX is no DATA */
		if (strncasecmp(line, smtp_cmd_names[c], n) != 0 ||
		    (line[n] != '\0' && line[n] != ' '))
			continue;
		if (c == CMD_MAIL)
			*args = command_keyword(line + n, "FROM");
		else if (c == CMD_RCPT)
			*args = command_keyword(line + n, "TO");
		else
			*args = skip_spaces(line + n);
		return (enum smtp_cmd)c;
	}
	*args = "";
	return CMD_UNKNOWN;
}
