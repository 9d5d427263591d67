/* dns_parse.h - the replies our own UDP client receives, as a pure parser
 *
 * The bytes come from the network (a spoofed or broken reply is possible),
 * so this is kept apart from the I/O in dns.c: unit tested and fuzzed
 * (t/fuzz/fuzz_dns.c).
 */
#ifndef MX_DNS_PARSE_H
#define MX_DNS_PARSE_H

#include "dns.h"

/* dns_parse_answer - fill a from the reply msg[0..len) to a query of type
 * qtype (ns_t_mx, ns_t_txt, ...): status from the rcode, then the answer
 * records of that type (CNAMEs on the way skipped, at most DNS_MAX_RR).
 * TXT records get a malloc'd txt (dns_answer_free frees them). */
void dns_parse_answer(const unsigned char *msg, int len, int qtype,
    struct dns_answer *a);

#endif
