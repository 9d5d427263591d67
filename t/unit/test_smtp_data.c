/* test_smtp_data.c - the DATA state machine: end of data, dot-unstuffing,
 * SMTP smuggling payloads, size and hop limits, arbitrary chunking */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"
#include "tap.h"

#define CHUNK_WHOLE	0	/* feed everything in one call */
#define CHUNK_BYTE	1	/* one octet per call */
#define CHUNK_RANDOM	2	/* random sizes 1..RANDOM_CHUNK_MAX */
#define RANDOM_CHUNK_MAX 4096
#define BIG_MESSAGE	(100 * 1024)

/* ---- an output sink and a feeder --------------------------------------- */

struct sink {
	char *buf;
	size_t len, cap;
	size_t calls;
	int empty_calls;
};

/* sink_out - the smtp_data_out_fn collecting the message */
static void
sink_out(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;

	s->calls++;
	if (n == 0)
		s->empty_calls++;
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->buf = realloc(s->buf, s->cap);
		if (s->buf == NULL)
			abort();
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
}

/* sink_reset - empty the sink, keeping its buffer */
static void
sink_reset(struct sink *s)
{
	s->len = 0;
	s->calls = 0;
	s->empty_calls = 0;
	if (s->buf != NULL)
		s->buf[0] = '\0';
}

struct run {
	size_t consumed;	/* total octets consumed */
	int done;
	int short_read;		/* a call consumed less without being done */
	int done_early;		/* done before the last call's end? (info) */
};

/* feed - feed in[0..len) with a chunking policy; stops when done */
static struct run
feed(struct smtp_data *d, const char *in, size_t len, int policy,
    struct sink *s)
{
	struct run r = { 0, 0, 0, 0 };

	while (r.consumed < len && !r.done) {
		size_t n = len - r.consumed, c;

		if (policy == CHUNK_BYTE)
			n = 1;
		else if (policy == CHUNK_RANDOM) {
			size_t want = 1 + (size_t)rand() % RANDOM_CHUNK_MAX;
			if (rand() % 4 == 0)
				want = 1 + (size_t)rand() % 3;
			if (want < n)
				n = want;
		}
		c = smtp_data_feed(d, in + r.consumed, n, &r.done, sink_out, s);
		if (c != n && !r.done)
			r.short_read = 1;
		r.consumed += c;
	}
	return r;
}

/* ---- table of whole-stream cases --------------------------------------- */

struct data_case {
	const char *name;
	const char *in;
	int done;
	const char *left;	/* what must remain unconsumed */
	const char *out;
	int flags;
};

static const struct data_case data_cases[] = {
	{ "normal message",
	  "Subject: hi\r\n\r\nHello.\r\nBye.\r\n.\r\n", 1, "",
	  "Subject: hi\r\n\r\nHello.\r\nBye.\r\n", 0 },
	{ "empty message", ".\r\n", 1, "", "", 0 },
	{ "one empty line", "\r\n.\r\n", 1, "", "\r\n", 0 },
	{ "dot-unstuffing", "..\r\n...x\r\n.y\r\nz.\r\n.\r\n", 1, "",
	  ".\r\n..x\r\ny\r\nz.\r\n", 0 },
	{ "dot not at line start kept", "a.\r\n a .\r\n.\r\n", 1, "",
	  "a.\r\n a .\r\n", 0 },
	{ "data after terminator not consumed",
	  "a\r\n.\r\nMAIL FROM:<x@y>\r\n", 1, "MAIL FROM:<x@y>\r\n", "a\r\n", 0 },
	{ "first line terminator, then more", ".\r\nQUIT\r\n", 1, "QUIT\r\n", "", 0 },
	{ "no terminator yet", "a\r\nb\r\n", 0, "", "a\r\nb\r\n", 0 },
	{ "dot withheld at end of input", "a\r\n.", 0, "", "a\r\n", 0 },
	{ "dot CR withheld at end of input", "a\r\n.\r", 0, "", "a\r\n", 0 },
	{ "CR at end of input", "a\r", 0, "", "a\r", 0 },
	/* smuggling: none of these end the data */
	{ "LF.LF does not end",
	  "a\n.\nMAIL FROM:<x@y>\r\n", 0, "",
	  "a\n.\nMAIL FROM:<x@y>\r\n", DATA_BARE_LF },
	{ "LF.CRLF does not end",
	  "a\n.\r\nRCPT TO:<x@y>\r\n", 0, "",
	  "a\n.\r\nRCPT TO:<x@y>\r\n", DATA_BARE_LF },
	{ "CRLF.LF does not end",
	  "a\r\n.\nDATA\r\n", 0, "", "a\r\n\nDATA\r\n", DATA_BARE_LF },
	{ "CR.CRLF does not end",
	  "a\r.\r\nQUIT\r\n", 0, "", "a\r.\r\nQUIT\r\n", DATA_BARE_CR },
	{ "CR.CR does not end", "a\r.\rQUIT\r\n", 0, "", "a\r.\rQUIT\r\n",
	  DATA_BARE_CR },
	{ "CRLF.CR+X does not end", "a\r\n.\rX\r\n", 0, "", "a\r\n\rX\r\n",
	  DATA_BARE_CR },
	{ "CRLF.CRCR does not end", "a\r\n.\r\r\nb\r\n", 0, "",
	  "a\r\n\r\r\nb\r\n", DATA_BARE_CR },
	{ "LF.LF at start", "\n.\n", 0, "", "\n.\n", DATA_BARE_LF },
	{ ".LF at start", ".\nx", 0, "", "\nx", DATA_BARE_LF },
	{ ".CR+X at start", ".\rx", 0, "", "\rx", DATA_BARE_CR },
	{ "CR.LF (both bare) does not end", "a\r.\nb", 0, "", "a\r.\nb",
	  DATA_BARE_CR | DATA_BARE_LF },
	/* ... and only the real CRLF.CRLF ends */
	{ "LF.LF then real end",
	  "a\n.\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n", 1, "QUIT\r\n",
	  "a\n.\nMAIL FROM:<x@y>\r\n", DATA_BARE_LF },
	{ "CRLF.LF then real end", "a\r\n.\nb\r\n.\r\nX", 1, "X",
	  "a\r\n\nb\r\n", DATA_BARE_LF },
	{ "CR.CRLF then real end", "a\r.\r\n.\r\n", 1, "", "a\r.\r\n",
	  DATA_BARE_CR },
	{ "CRLF.CRCRLF.CRLF", "a\r\n.\r\r\n.\r\n", 1, "", "a\r\n\r\r\n",
	  DATA_BARE_CR },
	{ "bare LF before CRLF", "a\n\r\n.\r\n", 1, "", "a\n\r\n",
	  DATA_BARE_LF },
	{ "bare CR before CRLF", "a\r\r\n.\r\n", 1, "", "a\r\r\n",
	  DATA_BARE_CR },
	{ "both bare", "a\rb\nc\r\n.\r\n", 1, "", "a\rb\nc\r\n",
	  DATA_BARE_CR | DATA_BARE_LF },
};

/* case_run - one table row under one chunking policy */
static void
case_run(const struct data_case *c, int policy, struct sink *s)
{
	static const char *pname[] = { "whole", "bytewise", "random" };
	struct smtp_data d;
	struct run r;
	size_t len = strlen(c->in);
	size_t want = len - strlen(c->left);
	int good;

	sink_reset(s);
	smtp_data_init(&d, 0, 0);
	r = feed(&d, c->in, len, policy, s);
	good = r.done == c->done && r.consumed == want && !r.short_read &&
	    d.flags == c->flags && s->len == strlen(c->out) &&
	    memcmp(s->len ? s->buf : "", c->out, s->len) == 0 &&
	    s->empty_calls == 0 && d.size == s->len;
	if (!ok(good, "%s (%s)", c->name, pname[policy]))
		diag("done %d consumed %zu flags %#x size %llu out %zu octets",
		    r.done, r.consumed, d.flags, (unsigned long long)d.size,
		    s->len);
}

/* test_cases - every table row, whole, bytewise and in random chunks */
static void
test_cases(struct sink *s)
{
	size_t i;
	int policy;

	for (i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++)
		for (policy = CHUNK_WHOLE; policy <= CHUNK_RANDOM; policy++)
			case_run(&data_cases[i], policy, s);
}

/* ---- the terminator at every split ------------------------------------- */

/* test_splits - two calls split at every offset; then bytewise checking
 * that done comes exactly with the last octet of the terminator */
static void
test_splits(struct sink *s)
{
	static const char msg[] = "Subject: x\r\n\r\n..dot\r\nhello\r\n.\r\nNEXT";
	static const char want[] = "Subject: x\r\n\r\n.dot\r\nhello\r\n";
	size_t len = sizeof(msg) - 1, tlen = len - 4, k, i;
	int bad = 0, early = 0, done;

	for (k = 0; k <= len; k++) {
		struct smtp_data d;
		size_t c1, c2 = 0;

		sink_reset(s);
		smtp_data_init(&d, 0, 0);
		c1 = smtp_data_feed(&d, msg, k, &done, sink_out, s);
		if (!done)
			c2 = smtp_data_feed(&d, msg + c1, len - c1, &done,
			    sink_out, s);
		if (!done || c1 + c2 != tlen || strcmp(s->buf, want) != 0 ||
		    d.flags != 0) {
			bad++;
			diag("split at %zu: done %d consumed %zu", k, done,
			    c1 + c2);
		}
	}
	ok(bad == 0, "terminator found with the input split at every offset");

	{
		struct smtp_data d;

		sink_reset(s);
		smtp_data_init(&d, 0, 0);
		for (i = 0; i < len; i++) {
			size_t c = smtp_data_feed(&d, msg + i, 1, &done,
			    sink_out, s);
			if (done && i + 1 != tlen)
				early = 1;
			if (done || c != 1)
				break;
		}
		ok(done && !early && i + 1 == tlen,
		    "bytewise: done exactly at the terminator's LF");
		is_str(s->buf, want, "bytewise: output");
		is_int((long)smtp_data_feed(&d, "X\r\n", 3, &done, sink_out, s),
		    0, "nothing consumed once done");
		ok(done, "still done");
		done = 0;
		is_int((long)smtp_data_feed(&d, "", 0, &done, sink_out, s), 0,
		    "empty feed once done");
		ok(done, "empty feed reports done");
	}
}

/* ---- runs, size limit --------------------------------------------------- */

/* test_runs - output comes in runs, not octet by octet */
static void
test_runs(struct sink *s)
{
	static const char msg[] = "Subject: x\r\n\r\nline one\r\nline two\r\n"
	    "..stuffed\r\nend\r\n.\r\n";
	struct smtp_data d;
	int done;

	sink_reset(s);
	smtp_data_init(&d, 0, 0);
	smtp_data_feed(&d, msg, sizeof(msg) - 1, &done, sink_out, s);
	ok(done && s->calls <= 3, "one stuffed dot: at most 3 output calls");
	diag("output calls: %zu", s->calls);

	sink_reset(s);
	smtp_data_init(&d, 0, 0);
	is_int((long)smtp_data_feed(&d, msg, sizeof(msg) - 1, &done, NULL,
	    NULL), (long)sizeof(msg) - 1, "NULL out: only counts");
	ok(done && d.size == sizeof(msg) - 1 - 4, "NULL out: size counted");
}

/* test_size - DATA_TOO_BIG and output stop */
static void
test_size(struct sink *s)
{
	static const char msg[] = "0123456789\r\n.\r\n";	/* 12 octets */
	struct smtp_data d;
	struct run r;

	sink_reset(s);
	smtp_data_init(&d, 12, 0);
	r = feed(&d, msg, sizeof(msg) - 1, CHUNK_WHOLE, s);
	ok(r.done && d.flags == 0 && s->len == 12, "size equal to limit ok");

	sink_reset(s);
	smtp_data_init(&d, 11, 0);
	r = feed(&d, msg, sizeof(msg) - 1, CHUNK_WHOLE, s);
	ok(r.done && d.flags == DATA_TOO_BIG, "one octet over: TOO_BIG");
	ok(s->len <= 11, "no output past the limit");
	is_int((long)r.consumed, (long)sizeof(msg) - 1,
	    "input still consumed to the terminator");

	sink_reset(s);
	smtp_data_init(&d, 3, 0);
	r = feed(&d, msg, sizeof(msg) - 1, CHUNK_BYTE, s);
	ok(r.done && d.flags == DATA_TOO_BIG && s->len <= 3 && d.size == 12,
	    "bytewise over the limit: flag, output cut, size counted");

	sink_reset(s);
	smtp_data_init(&d, 0, 0);
	r = feed(&d, msg, sizeof(msg) - 1, CHUNK_WHOLE, s);
	ok(r.done && d.flags == 0, "max_size 0: no limit");
}

/* ---- NUL octets and long lines ------------------------------------------ */

/* test_nul - flagged always; left out of the output only when stripping */
static void
test_nul(struct sink *s)
{
	static const char msg[] = "S: x\r\n\r\na\0b\r\n\0.\r\n.\r\n";
	static const char kept[] = "S: x\r\n\r\na\0b\r\n\0.\r\n";
	static const char stripped[] = "S: x\r\n\r\nab\r\n.\r\n";
	struct smtp_data d;
	struct run r;
	int policy;

	for (policy = CHUNK_WHOLE; policy <= CHUNK_RANDOM; policy++) {
		sink_reset(s);
		smtp_data_init(&d, 0, 0);
		r = feed(&d, msg, sizeof(msg) - 1, policy, s);
		ok(r.done && d.flags == DATA_NUL && s->len == sizeof(kept) - 1 &&
		    memcmp(s->buf, kept, s->len) == 0,
		    "NUL flagged and, without stripping, kept (policy %d)", policy);
		sink_reset(s);
		smtp_data_init(&d, 0, DATA_OPT_STRIP_NUL);
		r = feed(&d, msg, sizeof(msg) - 1, policy, s);
		ok(r.done && d.flags == DATA_NUL && s->len == sizeof(stripped) - 1 &&
		    memcmp(s->buf, stripped, s->len) == 0 && d.size == s->len,
		    "NUL stripped: CRLF NUL . CRLF is a plain \".\" line (policy %d)",
		    policy);
	}
}

/* long_line - "hdr CRLF CRLF" + prefix + n octets of c + CRLF . CRLF */
static size_t
long_line(char *buf, const char *prefix, size_t n, char c)
{
	static const char hdr[] = "S: x\r\n\r\n";
	size_t len = sizeof(hdr) - 1 + strlen(prefix);

	memcpy(buf, hdr, sizeof(hdr) - 1);
	memcpy(buf + sizeof(hdr) - 1, prefix, strlen(prefix));
	memset(buf + len, c, n);
	len += n;
	memcpy(buf + len, "\r\n.\r\n", 5);
	return len + 5;
}

/* max_line - the longest line of out[0..n), CRLF excluded */
static size_t
max_line(const char *out, size_t n)
{
	size_t best = 0, cur = 0;

	for (size_t i = 0; i < n; i++) {
		if (out[i] == '\n' && i > 0 && out[i - 1] == '\r') {
			cur--;
			best = cur > best ? cur : best;
			cur = 0;
		} else
			cur++;
	}
	return cur > best ? cur : best;
}

/* test_long_lines - 998 octets pass as they are; more are flagged, and
 * folded with CRLF SP when asked; a leading dot counts (restuffed) */
static void
test_long_lines(struct sink *s)
{
	static char in[12000];
	struct smtp_data d;
	struct run r;
	size_t len;
	int policy;

	for (policy = CHUNK_WHOLE; policy <= CHUNK_RANDOM; policy++) {
		len = long_line(in, "", SMTP_TEXT_LINE_MAX, 'x');
		sink_reset(s);
		smtp_data_init(&d, 0, DATA_OPT_FOLD);
		r = feed(&d, in, len, policy, s);
		ok(r.done && d.flags == 0 && d.folds == 0 &&
		    s->len == len - 3, "998-octet line untouched (policy %d)", policy);

		len = long_line(in, "", 5000, 'y');
		sink_reset(s);
		smtp_data_init(&d, 0, 0);
		r = feed(&d, in, len, policy, s);
		ok(r.done && d.flags == DATA_LONG_LINE && s->len == len - 3,
		    "5000-octet line flagged, not folded (policy %d)", policy);

		sink_reset(s);
		smtp_data_init(&d, 0, DATA_OPT_FOLD);
		r = feed(&d, in, len, policy, s);
		ok(r.done && d.flags == DATA_LONG_LINE && d.folds == 5 &&
		    max_line(s->buf, s->len) == SMTP_TEXT_LINE_MAX &&
		    s->len == len - 3 + 5 * 3 && d.size == s->len,
		    "5000-octet line folded into lines of at most 998 (policy %d)",
		    policy);
		ok(s->len > 1010 && memcmp(s->buf + 8 + SMTP_TEXT_LINE_MAX, "\r\n y", 4) == 0,
		    "the fold is CRLF SP (policy %d)", policy);

		/* "..": unstuffed to "." which goes out stuffed again */
		len = long_line(in, "..", SMTP_TEXT_LINE_MAX - 1, 'z');
		sink_reset(s);
		smtp_data_init(&d, 0, DATA_OPT_FOLD);
		r = feed(&d, in, len, policy, s);
		ok(r.done && d.folds == 1 &&
		    max_line(s->buf, s->len) == SMTP_TEXT_LINE_MAX - 1,
		    "a line starting with a dot folds one octet earlier (policy %d)",
		    policy);
	}
}

/* ---- hop counting -------------------------------------------------------- */

/* hop_message - n Received: headers (alternating case), then extra */
static char *
hop_message(int n, const char *extra_headers, const char *body)
{
	size_t cap = (size_t)n * 64 + strlen(extra_headers) + strlen(body) + 64;
	char *m = malloc(cap), *p = m;
	int i;

	if (m == NULL)
		abort();
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s from h%d by mx\r\n\tid %d\r\n",
		    i % 3 == 0 ? "Received:" : i % 3 == 1 ? "RECEIVED:" :
		    "received:", i, i);
	p += sprintf(p, "%sSubject: hops\r\n\r\n%s.\r\n", extra_headers, body);
	return m;
}

struct hop_case {
	const char *name;
	int n;
	const char *headers;
	const char *body;
	int hops;
	int flags;
};

static const struct hop_case hop_cases[] = {
	{ "no Received", 0, "", "body\r\n", 0, 0 },
	{ "50 Received ok", 50, "", "body\r\n", 50, 0 },
	{ "51 Received too many", 51, "", "body\r\n", 51, DATA_TOO_MANY_HOPS },
	{ "50 + Received in body", 50, "",
	  "Received: from body\r\nReceived: again\r\n", 50, 0 },
	{ "not at column 0, not counted", 50,
	  "X-Received: a\r\n Received: b\r\n\tReceived: c\r\nReceived-SPF: p\r\n"
	  "Received :x\r\nReceive: y\r\n", "b\r\n", 50, 0 },
	{ "bare header name counts", 50, "Received:\r\n", "b\r\n", 51,
	  DATA_TOO_MANY_HOPS },
	{ "no space after the colon counts", 50, "Received:x\r\n", "b\r\n", 51,
	  DATA_TOO_MANY_HOPS },
};

/* hop_case_run - one hop row under one chunking */
static void
hop_case_run(const struct hop_case *c, int policy, struct sink *s)
{
	char *m = hop_message(c->n, c->headers, c->body);
	struct smtp_data d;
	struct run r;

	sink_reset(s);
	smtp_data_init(&d, 0, 0);
	r = feed(&d, m, strlen(m), policy, s);
	if (!ok(r.done && d.hops == c->hops && d.flags == c->flags,
	    "hops: %s (%s)", c->name, policy == CHUNK_BYTE ? "bytewise" :
	    "whole"))
		diag("done %d hops %d flags %#x", r.done, d.hops, d.flags);
	free(m);
}

/* test_hops - the hop table, whole and bytewise */
static void
test_hops(struct sink *s)
{
	size_t i;

	for (i = 0; i < sizeof(hop_cases) / sizeof(hop_cases[0]); i++) {
		hop_case_run(&hop_cases[i], CHUNK_WHOLE, s);
		hop_case_run(&hop_cases[i], CHUNK_BYTE, s);
	}
	{
		/* 51 Received lines after the header/body separator */
		char *big = malloc(64 * 60 + 64), *p = big;
		struct smtp_data d;
		struct run r;
		int i2;

		if (big == NULL)
			abort();
		p += sprintf(p, "Subject: x\r\n\r\n");
		for (i2 = 0; i2 < 60; i2++)
			p += sprintf(p, "Received: from body %d\r\n", i2);
		strcpy(p, ".\r\n");
		sink_reset(s);
		smtp_data_init(&d, 0, 0);
		r = feed(&d, big, strlen(big), CHUNK_WHOLE, s);
		ok(r.done && d.hops == 0 && d.flags == 0,
		    "60 Received in the body: not counted");
		free(big);
	}
}

/* ---- a big message in random chunks ------------------------------------- */

/* make_message - a random message and its wire form (dot-stuffed, with
 * the terminator). Returns the wire length; *plain gets the unstuffed. */
static size_t
make_message(char **wire, char **plain, size_t *plainlen)
{
	size_t cap = BIG_MESSAGE * 2 + 64, w = 0, p = 0;
	char *wb = malloc(cap), *pb = malloc(cap);

	if (wb == NULL || pb == NULL)
		abort();
	p += (size_t)sprintf(pb, "Subject: random\r\n\r\n");
	while (p < BIG_MESSAGE) {
		size_t n = (size_t)rand() % 200, i;
		int kind = rand() % 8;

		for (i = 0; i < n; i++)
			pb[p + i] = (char)(' ' + rand() % 95);
		if (kind == 0 && n > 0)
			pb[p] = '.';		/* needs stuffing */
		else if (kind == 1 && n > 2)
			pb[p] = pb[p + 1] = '.';
		else if (kind == 2 && n > 0)
			pb[p + n - 1] = '.';	/* a dot at the end: kept */
		p += n;
		pb[p++] = '\r';
		pb[p++] = '\n';
	}
	/* wire form: every line starting with '.' gets one more */
	for (size_t i = 0; i < p; i++) {
		if (pb[i] == '.' && (i == 0 || pb[i - 1] == '\n'))
			wb[w++] = '.';
		wb[w++] = pb[i];
	}
	memcpy(wb + w, ".\r\nQUIT\r\n", 9);
	*wire = wb;
	*plain = pb;
	*plainlen = p;
	return w + 3;
}

/* test_random - output equals input minus stuffing for random chunkings */
static void
test_random(struct sink *s)
{
	unsigned seed;

	for (seed = 1; seed <= 5; seed++) {
		char *wire, *plain;
		size_t plainlen, wlen;
		struct smtp_data d;
		struct run r;
		int policy;

		srand(seed);
		wlen = make_message(&wire, &plain, &plainlen);
		for (policy = CHUNK_WHOLE; policy <= CHUNK_RANDOM; policy++) {
			if (policy == CHUNK_BYTE && seed > 1)
				continue;
			sink_reset(s);
			smtp_data_init(&d, 0, 0);
			r = feed(&d, wire, wlen + 6, policy, s);
			ok(r.done && r.consumed == wlen && d.flags == 0 &&
			    s->len == plainlen && d.size == plainlen &&
			    memcmp(s->buf, plain, plainlen) == 0,
			    "random message seed %u policy %d: %zu octets",
			    seed, policy, plainlen);
		}
		free(wire);
		free(plain);
	}
}

/* ---- differential test against a naive whole-buffer model ------------- */

#define DIFF_ROUNDS	20000
#define DIFF_LEN_MAX	24

/* ref_parse - the rules stated plainly on the raw octets: lines start at 0
 * and after each CR LF; the data ends at a line start followed by "." CR
 * LF; a line-start "." is dropped otherwise; LF without CR before it and CR
 * without LF after it are bare. */
static void
ref_parse(const char *in, size_t len, char *out, size_t *outlen,
    size_t *consumed, int *done, int *flags)
{
	size_t i, o = 0;

	*done = 0;
	*flags = 0;
	for (i = 0; i < len; i++) {
		int bol = i == 0 || (i >= 2 && in[i - 2] == '\r' &&
		    in[i - 1] == '\n');

		if (bol && in[i] == '.') {
			if (i + 2 < len && in[i + 1] == '\r' && in[i + 2] == '\n') {
				*done = 1;
				i += 3;
				break;
			}
			if (i + 2 == len && in[i + 1] == '\r')
				break;		/* ".CR" at the end: undecided */
			continue;		/* stuffing dot */
		}
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			*flags |= DATA_BARE_LF;
		if (in[i] == '\r' && i + 1 < len && in[i + 1] != '\n')
			*flags |= DATA_BARE_CR;
		out[o++] = in[i];
	}
	if (!*done)
		i = len;
	*consumed = i;
	*outlen = o;
}

/* test_differential - random short streams over the octets that matter */
static void
test_differential(struct sink *s)
{
	static const char alphabet[] = "\r\n.a";
	char in[DIFF_LEN_MAX], want[DIFF_LEN_MAX];
	int round, bad = 0;

	srand(42);
	for (round = 0; round < DIFF_ROUNDS && bad < 5; round++) {
		size_t len = (size_t)rand() % DIFF_LEN_MAX, i, wlen, wcons;
		int wdone, wflags;
		struct smtp_data d;
		struct run r;

		for (i = 0; i < len; i++)
			in[i] = alphabet[rand() % 4];
		ref_parse(in, len, want, &wlen, &wcons, &wdone, &wflags);
		sink_reset(s);
		smtp_data_init(&d, 0, 0);
		r = feed(&d, in, len, round % 2 ? CHUNK_BYTE : CHUNK_RANDOM, s);
		if (r.done != wdone || r.consumed != wcons ||
		    (d.flags & (DATA_BARE_LF | DATA_BARE_CR)) != wflags ||
		    s->len != wlen || memcmp(s->buf, want, wlen) != 0) {
			bad++;
			diag("round %d: done %d/%d consumed %zu/%zu flags %#x/%#x "
			    "out %zu/%zu", round, r.done, wdone, r.consumed,
			    wcons, d.flags, wflags, s->len, wlen);
		}
	}
	ok(bad == 0, "%d random streams agree with the naive model", round);
}

int
main(void)
{
	struct sink s = { NULL, 0, 0, 0, 0 };

	sink_out(&s, "", 0);	/* allocate the buffer */
	test_cases(&s);
	test_splits(&s);
	test_runs(&s);
	test_size(&s);
	test_nul(&s);
	test_long_lines(&s);
	test_hops(&s);
	test_random(&s);
	test_differential(&s);
	free(s.buf);
	return done_testing();
}
