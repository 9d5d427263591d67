/* milter_proto.h - the milter protocol's packets (Sendmail's, version 6)
 *
 * Pure encoding and decoding, no I/O (unit tested). A packet is a 4-octet
 * length in network order (the command octet included), one command octet
 * and its data. The MTA sends commands (SMFIC_*); the milter answers each
 * with one reply (SMFIR_*), or with modification replies followed by a
 * final one at the end of the message.
 */
#ifndef MX_MILTER_PROTO_H
#define MX_MILTER_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <event2/buffer.h>

#define MILTER_VERSION		6
#define MILTER_CHUNK_MAX	65535		/* body octets per SMFIC_BODY */
#define MILTER_PACKET_MAX	(1024 * 1024)	/* longest reply we take */
#define MILTER_TEXT_MAX		1024		/* reply text kept (SMTP reply) */

/* commands, MTA to milter */
#define SMFIC_ABORT	'A'
#define SMFIC_BODY	'B'
#define SMFIC_CONNECT	'C'
#define SMFIC_MACRO	'D'
#define SMFIC_BODYEOB	'E'
#define SMFIC_HELO	'H'
#define SMFIC_HEADER	'L'
#define SMFIC_MAIL	'M'
#define SMFIC_EOH	'N'
#define SMFIC_OPTNEG	'O'
#define SMFIC_QUIT	'Q'
#define SMFIC_RCPT	'R'
#define SMFIC_DATA	'T'

/* replies, milter to MTA */
#define SMFIR_ADDRCPT	'+'
#define SMFIR_DELRCPT	'-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_ACCEPT	'a'
#define SMFIR_REPLBODY	'b'
#define SMFIR_CONTINUE	'c'
#define SMFIR_DISCARD	'd'
#define SMFIR_CHGFROM	'e'
#define SMFIR_CONNFAIL	'f'
#define SMFIR_ADDHEADER	'h'
#define SMFIR_INSHEADER	'i'
#define SMFIR_SETSYMLIST 'l'
#define SMFIR_CHGHEADER	'm'
#define SMFIR_PROGRESS	'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT	'r'
#define SMFIR_SKIP	's'
#define SMFIR_TEMPFAIL	't'
#define SMFIR_REPLYCODE	'y'

/* actions a milter may ask for (negotiated) */
#define SMFIF_ADDHDRS	0x001
#define SMFIF_CHGBODY	0x002
#define SMFIF_ADDRCPT	0x004
#define SMFIF_DELRCPT	0x008
#define SMFIF_CHGHDRS	0x010
#define SMFIF_QUARANTINE 0x020
#define SMFIF_CHGFROM	0x040
#define SMFIF_ADDRCPT_PAR 0x080
#define SMFIF_SETSYMLIST 0x100
/* what we carry out (CHGFROM and SETSYMLIST are not offered) */
#define MILTER_ACTIONS	(SMFIF_ADDHDRS | SMFIF_CHGBODY | SMFIF_ADDRCPT | \
	SMFIF_DELRCPT | SMFIF_CHGHDRS | SMFIF_QUARANTINE | SMFIF_ADDRCPT_PAR)

/* protocol steps the milter may switch off or not answer */
#define SMFIP_NOCONNECT	0x000001
#define SMFIP_NOHELO	0x000002
#define SMFIP_NOMAIL	0x000004
#define SMFIP_NORCPT	0x000008
#define SMFIP_NOBODY	0x000010
#define SMFIP_NOHDRS	0x000020
#define SMFIP_NOEOH	0x000040
#define SMFIP_NR_HDR	0x000080
#define SMFIP_NOUNKNOWN	0x000100
#define SMFIP_NODATA	0x000200
#define SMFIP_SKIP	0x000400
#define SMFIP_RCPT_REJ	0x000800
#define SMFIP_NR_CONN	0x001000
#define SMFIP_NR_HELO	0x002000
#define SMFIP_NR_MAIL	0x004000
#define SMFIP_NR_RCPT	0x008000
#define SMFIP_NR_DATA	0x010000
#define SMFIP_NR_UNKN	0x020000
#define SMFIP_NR_EOH	0x040000
#define SMFIP_NR_BODY	0x080000
#define SMFIP_HDR_LEADSPC 0x100000
/* the steps we can leave out or not wait for, as the milter asks (not
 * HDR_LEADSPC: header values go without their leading space) */
#define MILTER_PROTOCOL	(SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | \
	SMFIP_NORCPT | SMFIP_NOBODY | SMFIP_NOHDRS | SMFIP_NOEOH | \
	SMFIP_NR_HDR | SMFIP_NOUNKNOWN | SMFIP_NODATA | SMFIP_SKIP | \
	SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL | SMFIP_NR_RCPT | \
	SMFIP_NR_DATA | SMFIP_NR_UNKN | SMFIP_NR_EOH | SMFIP_NR_BODY)

/* milter_put - append one packet (cmd, data) to out */
void milter_put(struct evbuffer *out, char cmd, const void *data, size_t len);
/* milter_put_strings - one packet whose data is n NUL-terminated strings */
void milter_put_strings(struct evbuffer *out, char cmd, const char *const *v,
    int n);
/* milter_put_optneg - SMFIC_OPTNEG offering our version, actions, steps */
void milter_put_optneg(struct evbuffer *out);
/* milter_put_connect - SMFIC_CONNECT: host name, family '4'/'6', port, address */
void milter_put_connect(struct evbuffer *out, const char *host, int v6,
    int port, const char *addr);
/* milter_put_header - SMFIC_HEADER name\0value\0 */
void milter_put_header(struct evbuffer *out, const char *name, size_t nlen,
    const char *value, size_t vlen);

/* milter_take - one whole packet from in: 1 (cmd, data malloc'd,
 * NUL-terminated, len), 0 when more octets are needed, -1 when the length
 * is 0 or over MILTER_PACKET_MAX (the stream cannot be trusted) */
int milter_take(struct evbuffer *in, char *cmd, char **data, size_t *len);

/* a decoded reply */
struct milter_reply {
	char cmd;
	uint32_t index;			/* INSHEADER, CHGHEADER */
	const char *name;		/* header name; rcpt for ADDRCPT/DELRCPT */
	const char *value;		/* header value; ADDRCPT_PAR: args */
	const char *text;		/* REPLYCODE, QUARANTINE */
	const char *body;		/* REPLBODY */
	size_t bodylen;
	uint32_t version, actions, protocol;	/* OPTNEG */
};

/* milter_parse_reply - check a reply packet's data and point r into it
 * (data must stay alive). Returns 0, or -1 when malformed. */
int milter_parse_reply(char cmd, const char *data, size_t len,
    struct milter_reply *r);
/* milter_reply_code - a SMFIR_REPLYCODE text is a 4xx or 5xx SMTP reply
 * ("550 5.7.1 text"); returns its first digit ('4', '5') or 0 */
int milter_reply_code(const char *text);

#endif
