/* milter_edit.h - a message's header section, and the milters' changes
 *
 * The milters see the message as split here (headers one by one, then the
 * body), and their header and body changes are applied to the spooled file
 * with the same split, so a header index means the same to both. Pure code
 * apart from milter_edit_apply, which runs on the spool worker (unit tested
 * with a temporary file).
 */
#ifndef MX_MILTER_EDIT_H
#define MX_MILTER_EDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MILTER_HEADERS_MAX	(1024 * 1024)	/* header section we look at;
						 * the rest is body */
#define MILTER_EDITS_MAX	1000		/* header changes per message */

/* mhdr_section - the header section at the start of p[0..len) (len at
 * most MILTER_HEADERS_MAX): complete header lines with their folded
 * continuations, and the empty line after them if it is there. A line
 * that is not a header ends the section before it. Returns its length. */
size_t mhdr_section(const char *p, size_t len);

/* one header of a section: "Name: value" with its folding, CRLF included */
struct mhdr {
	const char *line;
	size_t len;
	size_t namelen;
	const char *value;		/* after the colon (and its space) */
	size_t valuelen;		/* without the last CRLF */
};

/* mhdr_parse - the headers of a section (from mhdr_section) into v (at
 * most max); returns how many. *sep: 1 when it ends with the empty line. */
int mhdr_parse(const char *p, size_t len, struct mhdr *v, int max, int *sep);
/* mhdr_count - header lines in a section (for the size of v) */
int mhdr_count(const char *p, size_t len);

enum medit_kind { MEDIT_ADD, MEDIT_INSERT, MEDIT_CHANGE };

/* one header change, in the order the milters asked for it */
struct medit {
	enum medit_kind kind;
	uint32_t index;			/* INSERT: position; CHANGE: nth of name */
	char *name;
	char *value;			/* CHANGE with "": delete */
};

/* a message's changes: header edits, a new body */
struct medits {
	struct medit *v;
	int n;
	char *body;			/* NULL: keep the body */
	size_t bodylen;
};

void medits_free(struct medits *);
/* medits_add - append a header change (copies); -1 over MILTER_EDITS_MAX */
int medits_add(struct medits *, enum medit_kind, uint32_t index,
    const char *name, const char *value);
/* medits_apply_headers - the edited header section of p[0..len) (a
 * section from mhdr_section), malloc'd, *outlen its length; the empty
 * line that ends it stays as it was (absent when there was none and a
 * new body follows: then one is added) */
char *medits_apply_headers(const struct medits *, const char *p, size_t len,
    size_t *outlen);

/* a sink for rewritten octets (the spool's new file) */
typedef int (*medit_write_fn)(void *arg, const char *p, size_t n);

/* milter_edit_apply - spool worker: read the message (size octets at off
 * in fd), write the changed message through wr. Returns 0 or -1 (errno). */
int milter_edit_apply(const struct medits *, int fd, off_t off, uint64_t size,
    medit_write_fn wr, void *warg);

#endif
