/* fuzz_dns - a reply to our own UDP DNS client (src/dns_parse.c), as a
 * spoofing or broken server may send it. Input: byte 0 picks the query
 * type, the rest is the reply message. */
#include "autoconf.h"

#include <arpa/nameser.h>

#include "dns_parse.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = { ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt,
	    ns_t_ptr, ns_t_cname, ns_t_ns };
	struct dns_answer *a;
	unsigned char *msg;
	int qtype;

	if (size < 1 || size > 65536)
		return 0;
	qtype = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	/* a copy of exactly the reply: ASan sees any read past its end */
	if ((msg = malloc(size - 1 ? size - 1 : 1)) == NULL ||
	    (a = calloc(1, sizeof(*a))) == NULL)
		abort();
	memcpy(msg, data + 1, size - 1);
	dns_parse_answer(msg, (int)(size - 1), qtype, a);
	FUZZ_ASSERT(a->nrr >= 0 && a->nrr <= DNS_MAX_RR);
	FUZZ_ASSERT((a->status == DNS_OK) == (a->nrr > 0));
	for (int i = 0; i < a->nrr; i++) {
		const struct dns_rr *r = &a->rr[i];

		FUZZ_ASSERT(r->type == qtype);
		FUZZ_ASSERT(memchr(r->host, '\0', sizeof(r->host)) != NULL);
		if (qtype == ns_t_txt) {
			FUZZ_ASSERT(r->txt != NULL && r->txt[r->txtlen] == '\0');
			free(r->txt);
		}
	}
	free(a);
	free(msg);
	return 0;
}
