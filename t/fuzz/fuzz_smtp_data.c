/* fuzz_smtp_data - the DATA end-of-message and dot-unstuffing state
 * machine (src/smtp_data.c) fed in random chunkings.
 *
 * Input: byte 0 picks the options (NUL stripping, folding) and a size
 * limit, bytes 1..8 seed the chunk sizes, the rest is the stream. The
 * same stream is fed whole and in chunks; both must agree exactly, and
 * the output must keep the promises: the message ends at the first
 * CRLF.CRLF and nowhere else, nothing after it is consumed, a stripped
 * NUL never comes out, folded lines are at most SMTP_TEXT_LINE_MAX.
 */
#include "autoconf.h"

#include "fuzz.h"
#include "smtp_data.h"

struct sink {
	char *buf;
	size_t len, cap;
};

static void
sink_out(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;

	FUZZ_ASSERT(n > 0);
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		if ((s->buf = realloc(s->buf, s->cap)) == NULL)
			abort();
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

/* feed - the whole stream in chunks from the seed (0: at once) */
static size_t
feed(struct smtp_data *d, const char *in, size_t len, uint64_t seed,
    int *done, struct sink *s)
{
	size_t off = 0, used;

	*done = 0;
	while (off < len && !*done) {
		size_t n = len - off;

		if (seed != 0) {
			n = 1 + (size_t)(seed % 17);
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			if (n > len - off)
				n = len - off;
		}
		used = smtp_data_feed(d, in + off, n, done, sink_out, s);
		FUZZ_ASSERT(used <= n);
		FUZZ_ASSERT(used == n || *done);
		off += used;
	}
	return off;
}

/* terminator_end - just past the first CRLF.CRLF of the stream, counting
 * the DATA line's CRLF as the line before it (0: none) */
static size_t
terminator_end(const char *in, size_t len)
{
	if (len >= 3 && memcmp(in, ".\r\n", 3) == 0)
		return 3;
	for (size_t i = 0; i + 5 <= len; i++)
		if (memcmp(in + i, "\r\n.\r\n", 5) == 0)
			return i + 5;
	return 0;
}

/* check_output - the promises of the options on what came out */
static void
check_output(const struct smtp_data *d, const struct sink *s)
{
	size_t line = 0;

	if (d->max_size == 0)
		FUZZ_ASSERT(d->size == s->len);
	else
		FUZZ_ASSERT(s->len <= d->max_size);
	if (d->opts & DATA_OPT_STRIP_NUL)
		FUZZ_ASSERT(memchr(s->buf ? s->buf : "", '\0', s->len) == NULL);
	if (!(d->opts & DATA_OPT_FOLD) || (d->flags & (DATA_BARE_LF | DATA_BARE_CR)) ||
	    d->max_size != 0)
		return;
	for (size_t i = 0; i < s->len; i++) {
		if (s->buf[i] == '\n' && i > 0 && s->buf[i - 1] == '\r') {
			line = 0;
			continue;
		}
		/* a line starting with "." is stuffed again on the way out */
		line += (line == 0 && s->buf[i] == '.') ? 2 : 1;
		FUZZ_ASSERT(line <= SMTP_TEXT_LINE_MAX + (s->buf[i] == '\r'));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_data a, b;
	struct sink sa = { NULL, 0, 0 }, sb = { NULL, 0, 0 };
	uint64_t seed = 0, max_size;
	size_t ua, ub, want;
	int opts, da, db;
	const char *in;

	if (size < 9)
		return 0;
	opts = data[0] & (DATA_OPT_STRIP_NUL | DATA_OPT_FOLD);
	max_size = (data[0] & 0x80) ? (uint64_t)(data[0] & 0x3f) * 64 : 0;
	memcpy(&seed, data + 1, 8);
	seed |= 1;
	in = (const char *)data + 9;
	size -= 9;

	smtp_data_init(&a, max_size, opts);
	smtp_data_init(&b, max_size, opts);
	ua = feed(&a, in, size, 0, &da, &sa);
	ub = feed(&b, in, size, seed, &db, &sb);

	/* chunking changes nothing */
	FUZZ_ASSERT(ua == ub && da == db && a.flags == b.flags && a.size == b.size);
	FUZZ_ASSERT(a.hops == b.hops && a.folds == b.folds);
	FUZZ_ASSERT(sa.len == sb.len && (sa.len == 0 || memcmp(sa.buf, sb.buf, sa.len) == 0));

	/* the end is the first CRLF.CRLF, and only that */
	want = terminator_end(in, size);
	FUZZ_ASSERT(da == (want != 0));
	FUZZ_ASSERT(da ? ua == want : ua == size);
	FUZZ_ASSERT(((a.flags & DATA_TOO_MANY_HOPS) != 0) == (a.hops > SMTP_MAX_HOPS));
	check_output(&a, &sa);
	free(sa.buf);
	free(sb.buf);
	return 0;
}
