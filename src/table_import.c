/* table_import.c - the address table line formats (SPEC 4), pure parsing
 *
 * Each line is classified by its shape: a '|' makes it the pipe format, a
 * name followed by ':' the alias-file format, three or more words with a
 * kind keyword the canonical export format, otherwise one address with an
 * optional password. Nothing here allocates except import_format_addr.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "table_import.h"
#include "util.h"

#define IMPORT_SHOW_MAX		80	/* offending text quoted in a reason */
#define IMPORT_WORDS_MAX	8	/* words of a canonical line */

/* why_set - format a reason, quoting the offending text sanitized */
static void
why_set(char *why, size_t whylen, const char *what, const char *s, size_t len)
{
	char raw[IMPORT_SHOW_MAX + 1], shown[IMPORT_SHOW_MAX + 1];

	if (why == NULL || whylen == 0)
		return;
	if (s == NULL) {
		snprintf(why, whylen, "%s", what);
		return;
	}
	if (len > IMPORT_SHOW_MAX)
		len = IMPORT_SHOW_MAX;
	memcpy(raw, s, len);
	raw[len] = '\0';
	smtp_sanitize(shown, sizeof(shown), raw);
	snprintf(why, whylen, "%s: %s", what, shown);
}

/* trim - shrink [*s, *s+*len) to drop surrounding white space */
static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

int
import_norm_address(const char *s, size_t len, const char *bare_domain,
    char *out, size_t outlen, char *why, size_t whylen)
{
	char buf[IMPORT_ADDR_MAX + 2];
	struct smtp_mailbox m;
	size_t n;

	trim(&s, &len);
	if (len == 0) {
		why_set(why, whylen, "bad syntax: empty address", NULL, 0);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (isspace((unsigned char)s[i]) || s[i] == ',' || s[i] == '|' ||
		    (unsigned char)s[i] < 0x20) {
			why_set(why, whylen, "bad syntax: invalid address", s, len);
			return -1;
		}
	}
	if (memchr(s, '@', len) == NULL) {
		if (bare_domain == NULL) {
			why_set(why, whylen, "bad syntax: not local@domain", s, len);
			return -1;
		}
		n = (size_t)snprintf(buf, sizeof(buf), "%.*s@%s", (int)len, s,
		    bare_domain);
	} else
		n = (size_t)snprintf(buf, sizeof(buf), "%.*s", (int)len, s);
	if (n >= sizeof(buf) - 1 || n >= outlen) {
		why_set(why, whylen, "bad syntax: address too long", s, len);
		return -1;
	}
	/* the key of the table is the canonical form, as for RCPT: "joe"@d
	 * and joe@d are one entry */
	if (smtp_mailbox_parse(buf, n, 1, &m) != PARSE_OK ||
	    smtp_mailbox_canonical(&m, out, outlen) == 0) {
		why_set(why, whylen, "bad syntax: invalid address", s, len);
		return -1;
	}
	mx_lower(out);
	return 0;
}

int
import_parse_list(const char *s, size_t len, const char *bare_domain,
    char out[][IMPORT_ADDR_MAX + 1], int max, char *why, size_t whylen)
{
	const char *end = s + len, *comma;
	int n = 0, dup;

	for (;;) {
		comma = memchr(s, ',', (size_t)(end - s));
		if (comma == NULL)
			comma = end;
		if (n == max) {
			snprintf(why, whylen, "bad syntax: more than %d destinations",
			    max);
			return -1;
		}
		if (import_norm_address(s, (size_t)(comma - s), bare_domain,
		    out[n], IMPORT_ADDR_MAX + 1, why, whylen) == -1) {
			if (strcmp(why, "bad syntax: empty address") == 0)
				snprintf(why, whylen, "bad syntax: empty destination");
			return -1;
		}
		dup = 0;
		for (int i = 0; i < n && !dup; i++)
			dup = strcmp(out[i], out[n]) == 0;
		if (!dup)
			n++;
		if (comma == end)
			break;
		s = comma + 1;
	}
	return n;
}

int
import_domain_valid(const char *d)
{
	size_t total = strlen(d), label = 0;

	if (total == 0 || total > 253)
		return 0;
	for (size_t i = 0; i <= total; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.' || c == '\0') {
			/* RFC 1035 2.3.1: 1..63 octets, no hyphen at either end */
			if (label == 0 || label > 63 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (label == 0 && c == '-')
			return 0;
		if (!isalnum(c) && c != '-')
			return 0;
		label++;
	}
	return 1;
}

const char *
import_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at ? at + 1 : "";
}

/* entry_reset - clear what a previous line left (the arrays are large, so
 * they are not wiped) */
static void
entry_reset(struct import_entry *e)
{
	e->address[0] = '\0';
	e->written[0] = '\0';
	e->kind = ADDR_MAILBOX;
	e->nofilter = 0;
	e->ndests = e->ncc = 0;
	e->had_password = 0;
	e->password_looks_like_address = 0;
	e->canonical = 0;
}

/* entry_address - the line's own address: in domain, bare name allowed */
static int
entry_address(struct import_entry *e, const char *s, size_t len,
    const char *domain, char *why, size_t whylen)
{
	if (import_norm_address(s, len, domain, e->address, sizeof(e->address),
	    why, whylen) == -1)
		return -1;
	trim(&s, &len);
	/* "joe"@d is joe@d: the report says which form the line had */
	if (s[0] == '"' && len < sizeof(e->written))
		snprintf(e->written, sizeof(e->written), "%.*s", (int)len, s);
	if (strcasecmp(import_address_domain(e->address), domain) != 0) {
		snprintf(why, whylen, "address outside %s: %s", domain,
		    e->address);
		return -1;
	}
	return 0;
}

/* looks_like_address - does a "password" look like a forgotten alias target? */
static int
looks_like_address(const char *s, size_t len)
{
	char buf[IMPORT_ADDR_MAX + 1];
	const char *comma = memchr(s, ',', len);

	if (comma)
		len = (size_t)(comma - s);
	trim(&s, &len);
	if (memchr(s, '@', len) == NULL)
		return 0;
	return import_norm_address(s, len, NULL, buf, sizeof(buf), NULL, 0) == 0;
}

/* parse_pipe - "ADDR|PASSWORD" or "ADDR|DESTS|relay" */
static enum import_verdict
parse_pipe(const char *line, const char *domain, struct import_entry *e,
    char *why, size_t whylen)
{
	const char *f[4];
	size_t flen[4];
	int nf = 0;
	const char *p = line, *bar;

	for (;;) {
		if (nf == 4)
			break;
		bar = strchr(p, '|');
		f[nf] = p;
		flen[nf] = bar ? (size_t)(bar - p) : strlen(p);
		trim(&f[nf], &flen[nf]);
		nf++;
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	if (nf < 2 || nf > 3) {
		snprintf(why, whylen, "bad syntax: expected ADDRESS|PASSWORD or "
		    "ADDRESS|DESTINATIONS|relay");
		return IMPORT_INVALID;
	}
	if (entry_address(e, f[0], flen[0], domain, why, whylen) == -1)
		return IMPORT_INVALID;
	if (nf == 3 && flen[2] == 5 && strncasecmp(f[2], "relay", 5) == 0) {
		e->kind = ADDR_ALIAS;
		if (flen[1] == 0) {
			snprintf(why, whylen, "bad syntax: empty alias destination list");
			return IMPORT_INVALID;
		}
		e->ndests = import_parse_list(f[1], flen[1], domain, e->dests,
		    STORE_MAX_DESTS, why, whylen);
		return e->ndests < 0 ? IMPORT_INVALID : IMPORT_OK;
	}
	if (nf == 3 && flen[2] != 0) {
		why_set(why, whylen, "bad syntax: third field is not \"relay\"",
		    f[2], flen[2]);
		return IMPORT_INVALID;
	}
	e->kind = ADDR_MAILBOX;
	e->had_password = flen[1] > 0;
	e->password_looks_like_address = looks_like_address(f[1], flen[1]);
	return IMPORT_OK;
}

/* parse_colon - "info: mary, dan@yahoo.com" (aliases file style) */
static enum import_verdict
parse_colon(const char *line, const char *colon, const char *domain,
    struct import_entry *e, char *why, size_t whylen)
{
	const char *rhs = colon + 1;
	size_t rlen = strlen(rhs);

	if (entry_address(e, line, (size_t)(colon - line), domain, why,
	    whylen) == -1)
		return IMPORT_INVALID;
	trim(&rhs, &rlen);
	if (rlen == 0) {
		snprintf(why, whylen, "bad syntax: empty alias destination list");
		return IMPORT_INVALID;
	}
	e->kind = ADDR_ALIAS;
	e->ndests = import_parse_list(rhs, rlen, domain, e->dests,
	    STORE_MAX_DESTS, why, whylen);
	return e->ndests < 0 ? IMPORT_INVALID : IMPORT_OK;
}

/* canonical_word - one "filter", "nofilter", "to=..." or "cc=..." word */
static int
canonical_word(struct import_entry *e, const char *w, size_t n,
    const char *domain, int *seen, char *why, size_t whylen)
{
	int bit;

	if ((n == 6 && strncmp(w, "filter", 6) == 0) ||
	    (n == 8 && strncmp(w, "nofilter", 8) == 0)) {
		bit = 1;
		e->nofilter = n == 8;
	} else if (n > 3 && strncmp(w, "to=", 3) == 0 && e->kind == ADDR_ALIAS) {
		bit = 2;
		e->ndests = import_parse_list(w + 3, n - 3, domain, e->dests,
		    STORE_MAX_DESTS, why, whylen);
	} else if (n > 3 && strncmp(w, "cc=", 3) == 0 && e->kind == ADDR_MAILBOX) {
		bit = 4;
		e->ncc = import_parse_list(w + 3, n - 3, domain, e->cc,
		    STORE_MAX_DESTS, why, whylen);
	} else {
		why_set(why, whylen, "bad syntax: unexpected word", w, n);
		return -1;
	}
	if (e->ndests < 0 || e->ncc < 0)
		return -1;
	if (*seen & bit) {
		why_set(why, whylen, "bad syntax: repeated word", w, n);
		return -1;
	}
	*seen |= bit;
	return 0;
}

/* parse_canonical - "ADDRESS mailbox|alias filter|nofilter [to=..] [cc=..]" */
static enum import_verdict
parse_canonical(const char *w[], size_t wl[], int nw, const char *domain,
    struct import_entry *e, char *why, size_t whylen)
{
	int seen = 0;

	e->canonical = 1;
	if (entry_address(e, w[0], wl[0], domain, why, whylen) == -1)
		return IMPORT_INVALID;
	e->kind = wl[1] == 5 ? ADDR_ALIAS : ADDR_MAILBOX;
	for (int i = 2; i < nw; i++)
		if (canonical_word(e, w[i], wl[i], domain, &seen, why, whylen) == -1)
			return IMPORT_INVALID;
	if (!(seen & 1)) {
		snprintf(why, whylen, "bad syntax: filter or nofilter missing");
		return IMPORT_INVALID;
	}
	if (e->kind == ADDR_ALIAS && !(seen & 2)) {
		snprintf(why, whylen, "bad syntax: alias without to=DESTINATIONS");
		return IMPORT_INVALID;
	}
	return IMPORT_OK;
}

/* split_words - white-space separated words; returns the count (may exceed max) */
static int
split_words(const char *s, const char *w[], size_t wl[], int max)
{
	int n = 0;

	for (;;) {
		while (isspace((unsigned char)*s))
			s++;
		if (*s == '\0')
			return n;
		size_t len = 0;
		while (s[len] && !isspace((unsigned char)s[len]))
			len++;
		if (n < max) {
			w[n] = s;
			wl[n] = len;
		}
		n++;
		s += len;
	}
}

/* parse_words - "joe", "joe@DOMAIN", "joe password" or the canonical format */
static enum import_verdict
parse_words(const char *line, const char *domain, struct import_entry *e,
    char *why, size_t whylen)
{
	const char *w[IMPORT_WORDS_MAX];
	size_t wl[IMPORT_WORDS_MAX];
	int nw = split_words(line, w, wl, IMPORT_WORDS_MAX);

	if (nw >= 3 && ((wl[1] == 7 && strncmp(w[1], "mailbox", 7) == 0) ||
	    (wl[1] == 5 && strncmp(w[1], "alias", 5) == 0))) {
		if (nw > 5) {
			snprintf(why, whylen, "bad syntax: too many words");
			return IMPORT_INVALID;
		}
		return parse_canonical(w, wl, nw, domain, e, why, whylen);
	}
	if (nw > 2) {
		snprintf(why, whylen, "bad syntax: expected ADDRESS [PASSWORD]");
		return IMPORT_INVALID;
	}
	if (entry_address(e, w[0], wl[0], domain, why, whylen) == -1)
		return IMPORT_INVALID;
	e->kind = ADDR_MAILBOX;
	if (nw == 2) {
		e->had_password = 1;
		e->password_looks_like_address = looks_like_address(w[1], wl[1]);
	}
	return IMPORT_OK;
}

enum import_verdict
import_parse_line(const char *line, const char *domain,
    struct import_entry *e, char *why, size_t whylen)
{
	char buf[IMPORT_LINE_MAX + 1];
	const char *s = line, *colon;
	size_t len = strlen(line);

	entry_reset(e);
	if (why && whylen)
		why[0] = '\0';
	trim(&s, &len);
	if (len == 0 || s[0] == '#')
		return IMPORT_SKIP;
	if (len > IMPORT_LINE_MAX) {
		snprintf(why, whylen, "bad syntax: line longer than %d bytes",
		    IMPORT_LINE_MAX);
		return IMPORT_INVALID;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (strchr(buf, '|'))
		return parse_pipe(buf, domain, e, why, whylen);
	/* "name:" before any white space; an address never holds ':' here
	 * because literals cannot be in DOMAIN */
	colon = strchr(buf, ':');
	if (colon && strcspn(buf, " \t") > (size_t)(colon - buf))
		return parse_colon(buf, colon, domain, e, why, whylen);
	return parse_words(buf, domain, e, why, whylen);
}

/* join - append " key=a,b,c" to buf */
static void
join(char **buf, size_t *len, size_t *cap, const char *key, char **list, int n)
{
	size_t need = strlen(key) + 2;

	for (int i = 0; i < n; i++)
		need += strlen(list[i]) + 1;
	if (*len + need + 1 > *cap) {
		*cap = *len + need + 1;
		*buf = xrealloc(*buf, *cap);
	}
	*len += (size_t)sprintf(*buf + *len, " %s=", key);
	for (int i = 0; i < n; i++)
		*len += (size_t)sprintf(*buf + *len, "%s%s", i ? "," : "", list[i]);
}

char *
import_format_addr(const struct addr_info *a)
{
	char *buf;
	size_t len, cap;

	len = (size_t)xasprintf(&buf, "%s %s %s", a->address,
	    a->kind == ADDR_ALIAS ? "alias" : "mailbox",
	    a->nofilter ? "nofilter" : "filter");
	cap = len + 1;
	if (a->kind == ADDR_ALIAS && a->ndests > 0)
		join(&buf, &len, &cap, "to", a->dests, a->ndests);
	if (a->ncc > 0)
		join(&buf, &len, &cap, "cc", a->cc, a->ncc);
	return buf;
}
