/* smtp_data.c - the DATA byte stream as a state machine
 *
 * The one rule that matters (SMTP smuggling): the message ends at CR LF "."
 * CR LF and at nothing else. A bare LF or a bare CR is content, is flagged,
 * and never starts a new line, so no "." after it can end the message or be
 * unstuffed. The state starts at the beginning of a line because the DATA
 * command's own CRLF ended the previous line.
 *
 * Octets are passed on in runs of the caller's buffer; only the withheld
 * stuffing dot and, rarely, a withheld CR after it break a run.
 */
#include "autoconf.h"

#include <string.h>
#include <strings.h>

#include "smtp_data.h"

#define RECEIVED_HDR	"Received:"
#define RECEIVED_LEN	(sizeof(RECEIVED_HDR) - 1)

enum data_state {
	DS_BOL = 0,	/* at the beginning of a line */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* after a CR inside a line (output already) */
	DS_DOT,		/* after "." at the beginning of a line (withheld) */
	DS_DOT_CR,	/* after "." CR at the beginning of a line (withheld) */
	DS_DONE,	/* CRLF.CRLF consumed */
};

/* A run of input octets that are output verbatim, [start, end). */
struct data_run {
	const char *in;
	size_t start;
	smtp_data_out_fn out;
	void *ctx;
};

/* data_emit - pass message octets on, counting size and cutting output at
 * max_size (0: no limit). Size keeps counting past the limit for the log. */
static void
data_emit(struct smtp_data *d, const char *p, size_t n, struct data_run *r)
{
	if (n == 0)
		return;
	if (!(d->flags & DATA_TOO_BIG)) {
		size_t keep = n;

		if (d->max_size > 0 && d->size + n > d->max_size) {
			keep = (size_t)(d->max_size - d->size);
			d->flags |= DATA_TOO_BIG;
		}
		if (keep > 0 && r->out != NULL)
			r->out(r->ctx, p, keep);
	}
	d->size += n;
}

/* data_flush - emit the pending run up to (not including) in[end] */
static void
data_flush(struct smtp_data *d, struct data_run *r, size_t end)
{
	if (end > r->start)
		data_emit(d, r->in + r->start, end - r->start, r);
	r->start = end;
}

/* hdr_octet - one content octet of a header line: look for "Received:" at
 * column 0 (RFC 5321 6.3 hop count). Continuation lines start with SP/HT,
 * so they never match. */
static void
hdr_octet(struct smtp_data *d, unsigned char c)
{
	if (!d->in_headers)
		return;
	if (d->hdrlen < RECEIVED_LEN)
		d->hdr[d->hdrlen] = (char)c;
	if (d->hdrlen < sizeof(d->hdr))
		d->hdrlen++;
	if (d->hdrlen == RECEIVED_LEN &&
	    strncasecmp(d->hdr, RECEIVED_HDR, RECEIVED_LEN) == 0 &&
	    ++d->hops > SMTP_MAX_HOPS)
		d->flags |= DATA_TOO_MANY_HOPS;
}

/* hdr_eol - a CRLF ended a line; an empty line ends the header section */
static void
hdr_eol(struct smtp_data *d)
{
	if (!d->in_headers)
		return;
	if (d->hdrlen == 0)
		d->in_headers = 0;
	d->hdrlen = 0;
}

/* data_text - the octet in[i] inside a line (also the first of a line).
 * A NUL is flagged and, with DATA_OPT_STRIP_NUL, left out of the run: a
 * downstream that drops NULs must not see lines we never saw. An octet
 * that would make the line longer than SMTP_TEXT_LINE_MAX is flagged
 * and, with DATA_OPT_FOLD, starts a continuation line "CRLF SP" (a
 * folded header in the header section, harmless in MIME bodies). */
static void
data_text(struct smtp_data *d, struct data_run *r, size_t i)
{
	static const char fold[] = "\r\n ";
	unsigned char c = (unsigned char)r->in[i];

	if (c == '\r') {
		d->state = DS_CR;
		return;
	}
	d->state = DS_TEXT;
	if (c == '\n')
		d->flags |= DATA_BARE_LF;	/* not a line end */
	if (c == '\0') {
		d->flags |= DATA_NUL;
		if (d->opts & DATA_OPT_STRIP_NUL) {
			data_flush(d, r, i);
			r->start = i + 1;
			return;
		}
	}
	if (d->linelen >= SMTP_TEXT_LINE_MAX) {
		d->flags |= DATA_LONG_LINE;
		if (d->opts & DATA_OPT_FOLD) {
			data_flush(d, r, i);
			data_emit(d, fold, sizeof(fold) - 1, r);
			d->linelen = 1;
			d->folds++;
		}
	}
	/* a line that starts with "." goes out stuffed again: count it */
	d->linelen += (d->linelen == 0 && c == '.') ? 2 : 1;
	hdr_octet(d, c);
}

/* data_step - one input octet at in[i]; manages the output run */
static void
data_step(struct smtp_data *d, struct data_run *r, size_t i)
{
	static const char cr = '\r';
	unsigned char c = (unsigned char)r->in[i];

	switch (d->state) {
	case DS_BOL:
		if (c == '.') {
			/* withhold: stuffing dot or start of the terminator */
			data_flush(d, r, i);
			r->start = i + 1;
			d->state = DS_DOT;
		} else
			data_text(d, r, i);
		break;
	case DS_TEXT:
		data_text(d, r, i);
		break;
	case DS_CR:
		if (c == '\n') {
			hdr_eol(d);
			d->linelen = 0;
			d->state = DS_BOL;
			break;
		}
		d->flags |= DATA_BARE_CR;
		d->linelen++;
		hdr_octet(d, '\r');
		data_text(d, r, i);
		break;
	case DS_DOT:
		/* RFC 5321 4.5.2: the leading dot is dropped (already) */
		if (c == '\r') {
			r->start = i + 1;
			d->state = DS_DOT_CR;
		} else
			data_text(d, r, i);
		break;
	case DS_DOT_CR:
		if (c == '\n') {
			r->start = i + 1;
			d->state = DS_DONE;
			break;
		}
		/* ".", bare CR: the dot was stuffing, the CR is content */
		d->flags |= DATA_BARE_CR;
		data_emit(d, &cr, 1, r);
		d->linelen++;
		hdr_octet(d, '\r');
		r->start = i;
		data_text(d, r, i);
		break;
	default:
		break;
	}
}

/* text_end - the first CR, LF or NUL in in[i, len), or len */
static size_t
text_end(const char *in, size_t i, size_t len)
{
	const char *cr = memchr(in + i, '\r', len - i);
	size_t end = cr ? (size_t)(cr - in) : len;
	const char *lf = memchr(in + i, '\n', end - i);
	const char *nul;

	end = lf ? (size_t)(lf - in) : end;
	nul = memchr(in + i, '\0', end - i);
	return nul ? (size_t)(nul - in) : end;
}

/* smtp_data_init - start a DATA stream at the beginning of a line */
void
smtp_data_init(struct smtp_data *d, uint64_t max_size, int opts)
{
	memset(d, 0, sizeof(*d));
	d->opts = opts;
	d->state = DS_BOL;
	d->in_headers = 1;
	d->max_size = max_size;
}

/* smtp_data_feed - consume up to len octets, stopping right after the
 * terminator. Returns the octets consumed; *done tells whether the
 * terminator has been seen. out may be NULL (count and check only). */
size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    int *done, smtp_data_out_fn out, void *ctx)
{
	struct data_run r = { in, 0, out, ctx };
	size_t i;

	for (i = 0; i < len && d->state != DS_DONE; i++) {
		/* fast path: plain octets inside a body line, skipped by
		 * memchr rather than one by one (bench/README.md, profile),
		 * up to the line length limit (not a line's first octet: see
		 * data_text) */
		if (d->state == DS_TEXT && !d->in_headers && d->linelen > 0) {
			size_t room = d->linelen < SMTP_TEXT_LINE_MAX ?
			    SMTP_TEXT_LINE_MAX - d->linelen : 0;
			size_t j = text_end(in, i, room < len - i ? i + room : len);

			d->linelen += j - i;
			i = j;
			if (i == len)
				break;
		}
		data_step(d, &r, i);
	}
	if (d->state != DS_DONE)
		data_flush(d, &r, i);
	*done = d->state == DS_DONE;
	return i;
}
