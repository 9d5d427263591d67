/* fuzz_milter - what a milter sends back (src/milter_proto.c): the packet
 * framing of the stream, fed in two pieces, and each reply packet's data.
 * A decoded reply points only inside its packet. */
#include "autoconf.h"

#include <event2/buffer.h>

#include "fuzz.h"
#include "milter_proto.h"

/* inside - p..p+n lies within data[0..len] (NULL: nothing to check) */
static int
inside(const char *p, size_t n, const char *data, size_t len)
{
	return p == NULL || (p >= data && p + n <= data + len + 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	struct evbuffer *buf = evbuffer_new();
	struct milter_reply r;
	size_t split = size ? in[0] % (size + 1) : 0, len;
	char cmd, *data;
	int rc, fed_all = 0;

	if (buf == NULL)
		abort();
	evbuffer_add(buf, in, split);
	for (;;) {
		rc = milter_take(buf, &cmd, &data, &len);
		if (rc == 0 && !fed_all) {
			evbuffer_add(buf, in + split, size - split);
			fed_all = 1;
			continue;
		}
		if (rc <= 0)
			break;
		FUZZ_ASSERT(len < MILTER_PACKET_MAX && data[len] == '\0');
		memset(&r, 0, sizeof(r));
		if (milter_parse_reply(cmd, data, len, &r) == 0) {
			FUZZ_ASSERT(r.cmd == cmd);
			FUZZ_ASSERT(inside(r.name, r.name ? strlen(r.name) : 0, data, len));
			FUZZ_ASSERT(inside(r.value, r.value ? strlen(r.value) : 0, data, len));
			FUZZ_ASSERT(inside(r.text, r.text ? strlen(r.text) : 0, data, len));
			FUZZ_ASSERT(inside(r.body, r.bodylen, data, len));
			if (r.text != NULL) {
				int c = milter_reply_code(r.text);

				FUZZ_ASSERT(c == 0 || c == '4' || c == '5');
			}
		}
		free(data);
	}
	evbuffer_free(buf);
	return 0;
}
