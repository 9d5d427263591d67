/* fuzz_spool - the spool/queue file reader (src/spool.c): a file damaged
 * by a crash, a disk or a hand must be reported (a parse error), never
 * crash the recovery scan. Input: the whole file as recovery reads it,
 * envelope block, body of the declared size, trailer, state records. */
#include "autoconf.h"

#include "fuzz.h"
#include "spool.h"
#include "stats.h"

struct mx_stats mx_stats;	/* spool.c counts into it */

/* each_line - every line of p (no newline) through the line parsers */
static void
each_line(const char *p, size_t len)
{
	struct spool_state st;
	struct spool_expand x;

	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;

		memset(&st, 0, sizeof(st));
		spool_parse_state(p, n, &st);
		memset(&x, 0, sizeof(x));
		if (spool_parse_expand(p, n, &x) == 0)
			spool_expand_free(&x);
		if (nl == NULL)
			break;
		p += n + 1;
		len -= n + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct spool_entry *e;
	uint32_t crc;
	ssize_t hlen, tlen;
	size_t off, used;

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		abort();
	hlen = spool_parse_header(buf, size, e, 1);
	FUZZ_ASSERT(hlen >= -1 && hlen <= (ssize_t)size);
	if (hlen > 0) {
		FUZZ_ASSERT((off_t)hlen == e->body_off);
		FUZZ_ASSERT(e->nrcpts >= 0);
		off = (size_t)hlen;
		if (e->body_size <= size - off) {
			off += (size_t)e->body_size;
			tlen = spool_parse_trailer(buf + off, size - off, &crc);
			FUZZ_ASSERT(tlen <= (ssize_t)(size - off));
			if (tlen > 0) {
				off += (size_t)tlen;
				used = spool_apply_records(e, buf + off, size - off);
				FUZZ_ASSERT(used <= size - off);
			}
		}
	}
	spool_entry_free(e);
	each_line(buf, size);
	return 0;
}
