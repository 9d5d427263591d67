/* dns_parse.c - parse a DNS reply into a struct dns_answer (no I/O) */
#include "autoconf.h"

#include <arpa/nameser.h>
#include <resolv.h>
#include <string.h>

#include "dns_parse.h"
#include "util.h"

/* dns_parse_answer - fill a from the answer section of msg; see dns_parse.h */
void
dns_parse_answer(const unsigned char *msg, int len, int qtype, struct dns_answer *a)
{
	ns_msg h;
	ns_rr rr;
	int rcode, count;

	a->nrr = 0;
	if (ns_initparse(msg, len, &h) < 0) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	rcode = ns_msg_getflag(h, ns_f_rcode);
	if (rcode == ns_r_nxdomain) {
		a->status = DNS_NXDOMAIN;
		return;
	}
	if (rcode == ns_r_refused || rcode == ns_r_formerr || rcode == ns_r_notimpl) {
		a->status = DNS_PERMFAIL;
		return;
	}
	if (rcode != ns_r_noerror) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	count = ns_msg_count(h, ns_s_an);
	for (int i = 0; i < count && a->nrr < DNS_MAX_RR; i++) {
		struct dns_rr *r = &a->rr[a->nrr];
		const unsigned char *rd;
		int rdlen;

		if (ns_parserr(&h, ns_s_an, i, &rr) < 0)
			break;
		if ((int)ns_rr_type(rr) != qtype)
			continue;	/* CNAMEs on the way */
		memset(r, 0, sizeof(*r));
		r->type = qtype;
		r->ttl = ns_rr_ttl(rr);
		rd = ns_rr_rdata(rr);
		rdlen = ns_rr_rdlen(rr);
		switch (qtype) {
		case ns_t_mx:
			if (rdlen < 3)
				continue;
			r->pref = ns_get16(rd);
			if (ns_name_uncompress(ns_msg_base(h), ns_msg_end(h), rd + 2,
			    r->host, sizeof(r->host)) < 0)
				continue;
			break;
		case ns_t_ptr:
		case ns_t_cname:
		case ns_t_ns:
			if (ns_name_uncompress(ns_msg_base(h), ns_msg_end(h), rd,
			    r->host, sizeof(r->host)) < 0)
				continue;
			break;
		case ns_t_txt:
			/* RFC 7208 3.3: the character-strings are concatenated */
			r->txt = xmalloc((size_t)rdlen + 1);
			for (int o = 0; o < rdlen; ) {
				int n = rd[o++];
				if (o + n > rdlen)
					n = rdlen - o;
				memcpy(r->txt + r->txtlen, rd + o, (size_t)n);
				r->txtlen += (size_t)n;
				o += n;
			}
			r->txt[r->txtlen] = '\0';
			break;
		case ns_t_a:
			if (rdlen != 4)
				continue;
			r->addr.family = AF_INET;
			memcpy(&r->addr.a.v4, rd, 4);
			break;
		case ns_t_aaaa:
			if (rdlen != 16)
				continue;
			r->addr.family = AF_INET6;
			memcpy(&r->addr.a.v6, rd, 16);
			break;
		default:
			break;
		}
		a->nrr++;
	}
	a->status = a->nrr > 0 ? DNS_OK : DNS_NODATA;
}
