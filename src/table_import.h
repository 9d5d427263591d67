/* table_import.h - the address table line formats (SPEC 4), pure parsing
 *
 * One line in, one verdict out; no I/O and no store access, so that the
 * formats can be unit tested. Formats, detected line by line:
 *
 *   joe                          mailbox joe@DOMAIN
 *   joe@DOMAIN                   mailbox
 *   joe joes-password            mailbox, password ignored
 *   info: mary, dan@yahoo.com    alias; a bare name means name@DOMAIN
 *   joe@DOMAIN|password          mailbox, password ignored
 *   info@DOMAIN|DESTS|relay      alias to the comma-separated DESTS
 *   ADDRESS mailbox|alias filter|nofilter [to=DESTS] [cc=DESTS]
 *                                the canonical export format
 */
#ifndef MX_TABLE_IMPORT_H
#define MX_TABLE_IMPORT_H

#include <stddef.h>

#include "smtp_parse.h"
#include "store.h"

#define IMPORT_LINE_MAX		4096	/* longer lines are invalid */
#define IMPORT_ADDR_MAX		SMTP_PATH_MAX
#define IMPORT_WHY_MAX		512

enum import_verdict {
	IMPORT_SKIP = 0,	/* blank line or # comment */
	IMPORT_OK,
	IMPORT_INVALID,		/* why says: "bad syntax: ..." or "address outside D: A" */
};

/* One parsed line. Alias destinations go in dests, auto-CC of a mailbox in
 * cc; every address is lower case and syntax-checked. */
struct import_entry {
	char address[IMPORT_ADDR_MAX + 1];	/* canonical, lower case */
	char written[IMPORT_ADDR_MAX + 1];	/* the line's quoted form of
						 * address, or "" */
	enum addr_kind kind;
	int nofilter;
	int ndests;
	char dests[STORE_MAX_DESTS][IMPORT_ADDR_MAX + 1];
	int ncc;
	char cc[STORE_MAX_DESTS][IMPORT_ADDR_MAX + 1];
	int had_password;		/* a password was given and ignored */
	int password_looks_like_address;	/* ADDR|x@y: probably a forgotten |relay */
	int canonical;			/* the line was in the export format */
};

/* import_parse_line - parse one line (no newline; a trailing CR is ignored)
 * for domain (lower case). Returns IMPORT_SKIP, IMPORT_OK with out filled,
 * or IMPORT_INVALID with the reason in why. */
enum import_verdict import_parse_line(const char *line, const char *domain,
    struct import_entry *out, char *why, size_t whylen);

/* import_norm_address - check one address (len bytes at s) and write its
 * canonical form (smtp_mailbox_canonical) lower case to out: the table's
 * key, as RCPT looks it up. With bare_domain set, a bare name means
 * name@bare_domain. Addresses containing ',', '|' or white space, even
 * inside quotes, are refused (they cannot round-trip through the
 * formats). Returns 0, or -1 with why set ("bad syntax: ..."). */
int import_norm_address(const char *s, size_t len, const char *bare_domain,
    char *out, size_t outlen, char *why, size_t whylen);

/* import_parse_list - a comma-separated destination list ("a, b,c"), each
 * through import_norm_address, duplicates dropped. Returns the count (>= 1),
 * or -1 with why set (empty item, too many, bad address). */
int import_parse_list(const char *s, size_t len, const char *bare_domain,
    char out[][IMPORT_ADDR_MAX + 1], int max, char *why, size_t whylen);

/* import_domain_valid - a DNS domain name as a mail domain: LDH labels of
 * 1..63 octets, at most 253 in all, no address literal. */
int import_domain_valid(const char *domain);

/* import_address_domain - the domain part of a normalized address */
const char *import_address_domain(const char *address);

/* import_format_addr - the canonical export line of a, without newline.
 * Returns a malloc'd string. */
char *import_format_addr(const struct addr_info *a);

#endif
