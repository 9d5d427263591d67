/* milter_edit.c - header section split, header and body changes
 *
 * RFC 5322 2.2: a header field is a name, a colon and a body that may be
 * folded onto lines starting with white space; an empty line ends the
 * header section. Milters name a header to change by its name and the
 * occurrence of that name (1 for the first), and a header to insert by its
 * position in the section (0: on top).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "milter_edit.h"
#include "util.h"

#define EDIT_COPY_BUF	(64 * 1024)

/* line_end - length of the line at p (CRLF included), 0 if incomplete */
static size_t
line_end(const char *p, size_t len)
{
	const char *lf = memchr(p, '\n', len);

	return lf ? (size_t)(lf - p) + 1 : 0;
}

/* is_field_start - "Name:" with a printable name of at least one octet */
static int
is_field_start(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && p[i] != ':'; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return 0;
	return i > 0 && i < n;
}

/* header_len - a header at p with its continuation lines: its length, or
 * 0 when p is not a complete header */
static size_t
header_len(const char *p, size_t len)
{
	size_t n = line_end(p, len), k;

	if (n == 0 || !is_field_start(p, n))
		return 0;
	for (;;) {
		/* a continuation may not be known complete yet: stop there */
		if (n >= len || (p[n] != ' ' && p[n] != '\t'))
			return n;
		if ((k = line_end(p + n, len - n)) == 0)
			return n;
		n += k;
	}
}

static int
is_empty_line(const char *p, size_t len)
{
	return (len >= 2 && p[0] == '\r' && p[1] == '\n') ||
	    (len >= 1 && p[0] == '\n');
}

size_t
mhdr_section(const char *p, size_t len)
{
	size_t off = 0, n;

	while (off < len) {
		if (is_empty_line(p + off, len - off))
			return off + (p[off] == '\r' ? 2 : 1);
		if ((n = header_len(p + off, len - off)) == 0)
			break;
		off += n;
	}
	return off;
}

int
mhdr_parse(const char *p, size_t len, struct mhdr *v, int max, int *sep)
{
	size_t off = 0, n;
	int k = 0;

	*sep = 0;
	while (off < len) {
		if (is_empty_line(p + off, len - off)) {
			*sep = 1;
			break;
		}
		if ((n = header_len(p + off, len - off)) == 0)
			break;
		if (v != NULL && k < max) {
			struct mhdr *h = &v[k];
			const char *colon = memchr(p + off, ':', n);

			h->line = p + off;
			h->len = n;
			h->namelen = (size_t)(colon - h->line);
			h->value = colon + 1;
			if (h->value < h->line + n && (*h->value == ' ' || *h->value == '\t'))
				h->value++;
			h->valuelen = (size_t)(h->line + n - h->value);
			while (h->valuelen > 0 && (h->value[h->valuelen - 1] == '\n' ||
			    h->value[h->valuelen - 1] == '\r'))
				h->valuelen--;
		}
		k++;
		off += n;
	}
	return k;
}

int
mhdr_count(const char *p, size_t len)
{
	int sep;

	return mhdr_parse(p, len, NULL, 0, &sep);
}

void
medits_free(struct medits *e)
{
	for (int i = 0; i < e->n; i++) {
		free(e->v[i].name);
		free(e->v[i].value);
	}
	free(e->v);
	free(e->body);
	memset(e, 0, sizeof(*e));
}

int
medits_add(struct medits *e, enum medit_kind kind, uint32_t index,
    const char *name, const char *value)
{
	struct medit *m;

	if (e->n >= MILTER_EDITS_MAX)
		return -1;
	e->v = xrealloc(e->v, sizeof(*e->v) * (size_t)(e->n + 1));
	m = &e->v[e->n++];
	m->kind = kind;
	m->index = index;
	m->name = xstrdup(name);
	m->value = xstrdup(value);
	return 0;
}

/* a header of the section being edited: from the message or new */
struct hline {
	const char *name;
	size_t namelen;
	const char *orig;		/* the original line, or NULL */
	size_t origlen;
	const char *value;		/* new: the milter's value */
};

/* put - append to a growing buffer */
static void
put(char **b, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap *= 2;
		*b = xrealloc(*b, *cap);
	}
	memcpy(*b + *len, p, n);
	*len += n;
}

/* put_value - a milter's header value: line ends become CRLF, and a line
 * that does not start with white space is indented, so that a value can
 * never end the header section or start a new header */
static void
put_value(char **b, size_t *len, size_t *cap, const char *v)
{
	for (; *v; v++) {
		if (*v == '\r')
			continue;
		if (*v == '\n') {
			put(b, len, cap, "\r\n", 2);
			if (v[1] != ' ' && v[1] != '\t')
				put(b, len, cap, "\t", 1);
			continue;
		}
		put(b, len, cap, v, 1);
	}
}

/* apply_one - one change to the list of lines */
static void
apply_one(struct hline **lv, int *n, const struct medit *m)
{
	struct hline nl = { m->name, strlen(m->name), NULL, 0, m->value };
	int i, at, seen = 0;

	switch (m->kind) {
	case MEDIT_CHANGE:
		for (i = 0; i < *n; i++) {
			if ((*lv)[i].namelen != nl.namelen ||
			    strncasecmp((*lv)[i].name, m->name, nl.namelen) != 0 ||
			    ++seen != (int)m->index)
				continue;
			if (*m->value == '\0') {	/* delete */
				memmove(&(*lv)[i], &(*lv)[i + 1],
				    sizeof(**lv) * (size_t)(*n - i - 1));
				(*n)--;
			} else
				(*lv)[i] = nl;
			return;
		}
		/* not there: libmilter documents an add */
		if (*m->value == '\0')
			return;
		at = *n;
		break;
	case MEDIT_INSERT:
		at = m->index > (uint32_t)*n ? *n : (int)m->index;
		break;
	case MEDIT_ADD:
	default:
		at = *n;
		break;
	}
	*lv = xrealloc(*lv, sizeof(**lv) * (size_t)(*n + 1));
	memmove(&(*lv)[at + 1], &(*lv)[at], sizeof(**lv) * (size_t)(*n - at));
	(*lv)[at] = nl;
	(*n)++;
}

char *
medits_apply_headers(const struct medits *e, const char *p, size_t len,
    size_t *outlen)
{
	int n = mhdr_count(p, len), sep, i;
	struct mhdr *hv = xcalloc((size_t)n + 1, sizeof(*hv));
	struct hline *lv = xcalloc((size_t)n + 1, sizeof(*lv));
	size_t olen = 0, cap = len + 256, used = 0;
	char *out = xmalloc(cap);

	mhdr_parse(p, len, hv, n, &sep);
	for (i = 0; i < n; i++) {
		lv[i].name = hv[i].line;
		lv[i].namelen = hv[i].namelen;
		lv[i].orig = hv[i].line;
		lv[i].origlen = hv[i].len;
		used += hv[i].len;
	}
	for (i = 0; i < e->n; i++)
		apply_one(&lv, &n, &e->v[i]);
	for (i = 0; i < n; i++) {
		if (lv[i].orig != NULL) {
			put(&out, &olen, &cap, lv[i].orig, lv[i].origlen);
			continue;
		}
		put(&out, &olen, &cap, lv[i].name, lv[i].namelen);
		put(&out, &olen, &cap, ": ", 2);
		put_value(&out, &olen, &cap, lv[i].value);
		put(&out, &olen, &cap, "\r\n", 2);
	}
	/* the empty line, or whatever ended the section, as it was */
	if (used < len)
		put(&out, &olen, &cap, p + used, len - used);
	else if (e->body != NULL)
		put(&out, &olen, &cap, "\r\n", 2);
	free(hv);
	free(lv);
	*outlen = olen;
	return out;
}

int
milter_edit_apply(const struct medits *e, int fd, off_t off, uint64_t size,
    medit_write_fn wr, void *warg)
{
	size_t want = size < MILTER_HEADERS_MAX ? (size_t)size : MILTER_HEADERS_MAX;
	size_t hlen, olen;
	char *head = xmalloc(want + 1), *out;
	uint64_t pos;
	ssize_t r;
	int rc = -1;

	if ((r = mx_pread_full(fd, head, want, off)) != (ssize_t)want) {
		if (r >= 0)
			errno = EIO;
		goto done;
	}
	hlen = mhdr_section(head, want);
	out = medits_apply_headers(e, head, hlen, &olen);
	rc = wr(warg, out, olen);
	free(out);
	if (rc < 0)
		goto done;
	if (e->body != NULL) {
		rc = wr(warg, e->body, e->bodylen);
		goto done;
	}
	/* the body as it was, in chunks */
	head = xrealloc(head, EDIT_COPY_BUF);
	for (pos = hlen; pos < size; pos += (uint64_t)r) {
		size_t n = size - pos < EDIT_COPY_BUF ? (size_t)(size - pos) :
		    EDIT_COPY_BUF;

		if ((r = mx_pread_full(fd, head, n, off + (off_t)pos)) != (ssize_t)n) {
			if (r >= 0)
				errno = EIO;
			rc = -1;
			goto done;
		}
		if ((rc = wr(warg, head, n)) < 0)
			goto done;
	}
	rc = 0;
done:
	free(head);
	return rc;
}
