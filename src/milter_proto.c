/* milter_proto.c - encode milter commands, decode milter replies
 *
 * Packet layout from Sendmail's libmilter documentation: uint32 length
 * (network order, counting the command octet), command, data. Strings in
 * data are NUL-terminated. Nothing here trusts a length it did not check.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "milter_proto.h"
#include "util.h"

void
milter_put(struct evbuffer *out, char cmd, const void *data, size_t len)
{
	uint32_t n = htonl((uint32_t)(len + 1));

	evbuffer_add(out, &n, sizeof(n));
	evbuffer_add(out, &cmd, 1);
	if (len > 0)
		evbuffer_add(out, data, len);
}

void
milter_put_strings(struct evbuffer *out, char cmd, const char *const *v, int n)
{
	size_t len = 0;
	uint32_t nl;
	int i;

	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	nl = htonl((uint32_t)(len + 1));
	evbuffer_add(out, &nl, sizeof(nl));
	evbuffer_add(out, &cmd, 1);
	for (i = 0; i < n; i++)
		evbuffer_add(out, v[i], strlen(v[i]) + 1);
}

void
milter_put_optneg(struct evbuffer *out)
{
	uint32_t v[3] = { htonl(MILTER_VERSION), htonl(MILTER_ACTIONS),
	    htonl(MILTER_PROTOCOL) };

	milter_put(out, SMFIC_OPTNEG, v, sizeof(v));
}

void
milter_put_connect(struct evbuffer *out, const char *host, int v6, int port,
    const char *addr)
{
	size_t hl = strlen(host) + 1, al = strlen(addr) + 1;
	uint32_t nl = htonl((uint32_t)(1 + hl + 1 + 2 + al));
	uint16_t np = htons((uint16_t)port);
	char cmd = SMFIC_CONNECT, fam = v6 ? '6' : '4';

	evbuffer_add(out, &nl, sizeof(nl));
	evbuffer_add(out, &cmd, 1);
	evbuffer_add(out, host, hl);
	evbuffer_add(out, &fam, 1);
	evbuffer_add(out, &np, sizeof(np));
	evbuffer_add(out, addr, al);
}

void
milter_put_header(struct evbuffer *out, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	uint32_t nl = htonl((uint32_t)(1 + nlen + 1 + vlen + 1));
	char cmd = SMFIC_HEADER, nul = '\0';

	evbuffer_add(out, &nl, sizeof(nl));
	evbuffer_add(out, &cmd, 1);
	evbuffer_add(out, name, nlen);
	evbuffer_add(out, &nul, 1);
	evbuffer_add(out, value, vlen);
	evbuffer_add(out, &nul, 1);
}

int
milter_take(struct evbuffer *in, char *cmd, char **data, size_t *len)
{
	unsigned char hdr[5];
	uint32_t n;

	if (evbuffer_copyout(in, hdr, sizeof(hdr)) < (ssize_t)sizeof(hdr))
		return 0;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (n == 0 || n > MILTER_PACKET_MAX)
		return -1;
	if (evbuffer_get_length(in) < 4 + (size_t)n)
		return 0;
	evbuffer_drain(in, 5);
	*cmd = (char)hdr[4];
	*len = n - 1;
	*data = xmalloc(*len + 1);
	evbuffer_remove(in, *data, *len);
	(*data)[*len] = '\0';
	return 1;
}

/* get32 - a network-order integer at p */
static uint32_t
get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	    (uint32_t)u[2] << 8 | u[3];
}

/* two_strings - data is "A\0B\0" exactly: point a and b at them */
static int
two_strings(const char *p, size_t len, const char **a, const char **b)
{
	const char *z = memchr(p, '\0', len);

	if (z == NULL)
		return -1;
	*a = p;
	*b = z + 1;
	len -= (size_t)(z + 1 - p);
	if (len == 0 || memchr(*b, '\0', len) != *b + len - 1)
		return -1;
	return 0;
}

/* one_string - data is "A\0" exactly */
static int
one_string(const char *p, size_t len, const char **a)
{
	if (len == 0 || memchr(p, '\0', len) != p + len - 1)
		return -1;
	*a = p;
	return 0;
}

int
milter_parse_reply(char cmd, const char *data, size_t len,
    struct milter_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->cmd = cmd;
	switch (cmd) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_PROGRESS:
	case SMFIR_SKIP:
	case SMFIR_CONNFAIL:
		return 0;
	case SMFIR_REPLYCODE:
		if (one_string(data, len, &r->text) < 0)
			return -1;
		return milter_reply_code(r->text) ? 0 : -1;
	case SMFIR_QUARANTINE:
		/* some milters send the reason without its NUL */
		r->text = data;
		return 0;
	case SMFIR_ADDHEADER:
		return two_strings(data, len, &r->name, &r->value);
	case SMFIR_INSHEADER:
	case SMFIR_CHGHEADER:
		if (len < 4)
			return -1;
		r->index = get32(data);
		return two_strings(data + 4, len - 4, &r->name, &r->value);
	case SMFIR_REPLBODY:
		r->body = data;
		r->bodylen = len;
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
		return one_string(data, len, &r->name);
	case SMFIR_ADDRCPT_PAR:
		/* "rcpt\0" or "rcpt\0args\0" */
		if (one_string(data, len, &r->name) == 0)
			return 0;
		return two_strings(data, len, &r->name, &r->value);
	case SMFIC_OPTNEG:
		/* version, actions, steps; macro lists may follow (ignored) */
		if (len < 12)
			return -1;
		r->version = get32(data);
		r->actions = get32(data + 4);
		r->protocol = get32(data + 8);
		return 0;
	default:
		return -1;
	}
}

int
milter_reply_code(const char *t)
{
	if ((t[0] != '4' && t[0] != '5') || !isdigit((unsigned char)t[1]) ||
	    !isdigit((unsigned char)t[2]) || (t[3] != ' ' && t[3] != '-' &&
	    t[3] != '\0'))
		return 0;
	return t[0];
}
