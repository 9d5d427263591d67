/* smtp_parse.h - pure parsing of SMTP commands, paths and ESMTP parameters
 *
 * Nothing here does I/O or consults tables: it turns one command line into
 * a verdict and fields, so that it can be unit tested and fuzzed.
 */
#ifndef MX_SMTP_PARSE_H
#define MX_SMTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define SMTP_LINE_MAX	512	/* RFC 5321 4.5.3.1.4: command line incl. CRLF */
/* RFC 5321 4.5.3.1.1 says 64, and 4.5.3.1 asks servers to accept more:
 * SRS addresses of long senders (SRS0=HHHHHH=TT=domain=local) need it. */
#define SMTP_LOCAL_MAX	128	/* octets, as written */
#define SMTP_LOCAL_RFC_MAX 64	/* what every server must take */
#define SMTP_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define SMTP_PATH_MAX	256	/* RFC 5321 4.5.3.1.3 */
#define SMTP_PARAMS_MAX	16	/* ESMTP parameters on one MAIL/RCPT */

enum smtp_cmd {
	CMD_UNKNOWN = 0,
	CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_RSET,
	CMD_NOOP, CMD_QUIT, CMD_VRFY, CMD_EXPN, CMD_HELP, CMD_STARTTLS,
	CMD_XCLIENT,
	CMD_COUNT_
};

/* smtp_command_parse - split a command line (no CRLF, NUL-terminated).
 * The verb is matched case-insensitively; for MAIL and RCPT the "FROM:" or
 * "TO:" keyword is consumed too (RFC 5321 4.1.1.2/4.1.1.3), and *args points
 * past it (leading spaces skipped). For MAIL/RCPT without the keyword the
 * verb is still returned and *args is NULL. Returns the command. */
enum smtp_cmd smtp_command_parse(const char *line, const char **args);
const char *smtp_command_name(enum smtp_cmd);

/* A mailbox as the client wrote it, and its meaning. */
struct smtp_mailbox {
	char text[SMTP_PATH_MAX + 1];	/* local@domain exactly as written (no route, no <>) */
	char local[SMTP_LOCAL_MAX + 1];	/* local part, quotes removed, escapes resolved */
	char domain[SMTP_DOMAIN_MAX + 1]; /* domain, or the literal with its brackets */
	int quoted;			/* local part was a quoted-string */
	int literal;			/* domain is an address literal [..] */
	int utf8;			/* contains non-ASCII octets (needs SMTPUTF8) */
};

struct smtp_path {
	int null;			/* <> */
	int had_route;			/* <@a,@b:user@d>: route ignored, RFC 5321 4.1.2 */
	struct smtp_mailbox mbox;
};

enum smtp_body { BODY_7BIT = 0, BODY_8BITMIME };

struct smtp_mail_params {
	int64_t size;			/* -1: not given */
	enum smtp_body body;
	int smtputf8;
};

enum smtp_parse_result {
	PARSE_OK = 0,
	PARSE_SYNTAX,		/* 501 5.5.4: not <path> */
	PARSE_BAD_ADDRESS,	/* 501 5.1.3 (RCPT) / 501 5.1.7 (MAIL) */
	PARSE_NEED_UTF8,	/* non-ASCII address without SMTPUTF8: 553 5.6.7 */
	PARSE_BAD_PARAM,	/* 501 5.5.4: malformed parameter value */
	PARSE_UNKNOWN_PARAM,	/* 555 5.5.4: parameter not supported */
};

/* smtp_parse_path - parse "<...>" plus trailing parameters start.
 * allow_null: <> accepted (MAIL). allow_utf8: SMTPUTF8 in effect.
 * *rest points at the parameters after the path (spaces skipped). */
enum smtp_parse_result smtp_parse_path(const char *args, int allow_null,
    int allow_utf8, struct smtp_path *path, const char **rest);

/* smtp_parse_mail_params - SIZE=, BODY=7BIT|8BITMIME, SMTPUTF8 */
enum smtp_parse_result smtp_parse_mail_params(const char *params,
    struct smtp_mail_params *p, char *err, size_t errlen);
/* smtp_parse_rcpt_params - RCPT takes no parameters we support */
enum smtp_parse_result smtp_parse_rcpt_params(const char *params,
    char *err, size_t errlen);

/* smtp_mailbox_parse - parse a bare mailbox "local@domain" (no brackets);
 * also used by the import and relayctl code. Returns PARSE_OK or
 * PARSE_BAD_ADDRESS / PARSE_NEED_UTF8. */
enum smtp_parse_result smtp_mailbox_parse(const char *s, size_t len,
    int allow_utf8, struct smtp_mailbox *m);

/* One canonical form of an address (issue: a quoted local part that needs
 * no quotes is the same address, RFC 5321 4.1.2). Every table key, queue
 * record, route and log line uses it; the form the client wrote is kept
 * beside it only for the legacy route and the DSN's Original-Recipient. */

/* smtp_local_canonical - a local part given by its value (quotes removed,
 * escapes resolved, as in smtp_mailbox.local): bare when it is a
 * Dot-string, else quoted with only '"' and '\' escaped. The case is kept.
 * Returns the length, 0 when out is too small. Never longer than any
 * valid written form of the same value. */
size_t smtp_local_canonical(const char *value, char *out, size_t outlen);
/* smtp_mailbox_canonical - canonical local part '@' domain (ASCII letters
 * of a domain name lower-cased; an address literal as written). Returns
 * the length, 0 when out is too small. */
size_t smtp_mailbox_canonical(const struct smtp_mailbox *, char *out,
    size_t outlen);
/* smtp_address_canonical - parse a bare mailbox (UTF-8 allowed) and write
 * its canonical form; PARSE_OK or PARSE_BAD_ADDRESS */
enum smtp_parse_result smtp_address_canonical(const char *s, char *out,
    size_t outlen);

/* smtp_helo_valid - syntax check of a HELO/EHLO argument: a domain or an
 * address literal. */
int smtp_helo_valid(const char *arg);
/* smtp_sanitize - copy s into dst keeping printable ASCII, others as '?',
 * for text that goes into headers or logs. */
void smtp_sanitize(char *dst, size_t dstlen, const char *s);
/* smtp_helo_header - helo for a Received: header: the characters of a
 * domain or address literal kept, every other octet as %HH */
void smtp_helo_header(char *dst, size_t dstlen, const char *helo);

#endif
