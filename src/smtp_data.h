/* smtp_data.h - the DATA byte stream as a state machine
 *
 * RFC 5321 4.1.1.4: the data ends at CRLF.CRLF and nothing else. Leading
 * dots are removed (4.5.2). A bare LF or bare CR is never a line end: it is
 * flagged and the message is refused at the end (SPEC 5, SMTP smuggling).
 * Received: headers are counted for the hop limit (RFC 5321 6.3).
 */
#ifndef MX_SMTP_DATA_H
#define MX_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_MAX_HOPS	50
/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF */
#define SMTP_TEXT_LINE_MAX 998

#define DATA_BARE_LF	0x01
#define DATA_BARE_CR	0x02
#define DATA_TOO_BIG	0x04	/* more than max_size octets: output stopped */
#define DATA_TOO_MANY_HOPS 0x08	/* more than SMTP_MAX_HOPS Received: headers */
#define DATA_NUL	0x10	/* a NUL octet (kept out of the output by DATA_OPT_STRIP_NUL) */
#define DATA_LONG_LINE	0x20	/* a line over SMTP_TEXT_LINE_MAX (folded by DATA_OPT_FOLD) */

/* options: what to do about NULs and long lines besides flagging them */
#define DATA_OPT_STRIP_NUL 0x01	/* drop NUL octets from the output */
#define DATA_OPT_FOLD	0x02	/* split long lines with CRLF SP, as Postfix's
				 * smtp_line_length_limit does */

typedef void (*smtp_data_out_fn)(void *ctx, const char *p, size_t n);

struct smtp_data {
	int state;		/* internal */
	int flags;		/* DATA_* */
	int in_headers;		/* still in the header section */
	int hops;		/* Received: headers seen */
	int opts;		/* DATA_OPT_* */
	size_t linelen;		/* octets of the current line as output */
	unsigned folds;		/* lines split by DATA_OPT_FOLD */
	char hdr[10];		/* first octets of the current header line */
	size_t hdrlen;
	uint64_t size;		/* octets of message (after unstuffing) */
	uint64_t max_size;
};

void smtp_data_init(struct smtp_data *d, uint64_t max_size, int opts);

/* smtp_data_feed - consume up to len octets. Message octets (unstuffed,
 * exactly the client's otherwise) are passed to out, in runs. Returns the
 * number of octets consumed; *done is set once the terminating CRLF.CRLF
 * was consumed, and nothing after it is consumed. Once DATA_TOO_BIG is set,
 * no more output is produced but input is still consumed to the end. */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t len,
    int *done, smtp_data_out_fn out, void *ctx);

#endif
