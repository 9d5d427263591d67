/* bounce.c - RFC 3464 delivery status notifications
 *
 * multipart/report; report-type=delivery-status (RFC 6522) with three
 * parts: a human-readable explanation, the message/delivery-status fields
 * (one per-message block, one block per failed recipient), and the
 * original headers as text/rfc822-headers. Lines end in CRLF; nothing a
 * downstream reply contains can break out of its line.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"
#include "util.h"

#define BOUNCE_LINE_MAX	1024	/* one field line we write */

struct obuf {
	char *p;
	size_t len, cap;
};

static void
ob_add(struct obuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 4096;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void ob_printf(struct obuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* ob_printf - one formatted piece, cut at BOUNCE_LINE_MAX */
static void
ob_printf(struct obuf *b, const char *fmt, ...)
{
	char line[BOUNCE_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	ob_add(b, line, (size_t)n);
}

/* one_line - s with control characters made spaces, at most len - 1 octets */
static const char *
one_line(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s && s[i] && i < len - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

void
bounce_date(time_t t, char *buf, size_t len)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	long off;

	/* RFC 5322 3.3, independent of the locale */
	localtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
	    labs(off) / 60, labs(off) % 60);
}

int
bounce_relay_host(const char *relay, char *host, size_t len)
{
	size_t n;

	if (relay == NULL || *relay == '\0' || strcmp(relay, "none") == 0)
		return 0;
	n = strcspn(relay, "[");
	if (n == 0 || n >= len)
		return 0;
	memcpy(host, relay, n);
	host[n] = '\0';
	return 1;
}

static int
has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] & 0x80)
			return 1;
	return 0;
}

/* human_part - what happened, for a person */
static void
human_part(struct obuf *b, const struct bounce_info *bi, int utf8)
{
	char addr[BOUNCE_LINE_MAX / 4], reply[BOUNCE_LINE_MAX / 2];
	char reason[BOUNCE_LINE_MAX / 4];

	ob_printf(b, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=%s\r\n\r\n",
	    utf8 ? "utf-8" : "us-ascii");
	ob_printf(b, "This is the mail system at host %s.\r\n\r\n", bi->hostname);
	ob_printf(b, "Your message could not be delivered to %s.\r\n",
	    bi->nrcpts == 1 ? "one of its recipients" : "some of its recipients");
	ob_printf(b, "This is a permanent error; it will not be retried. The\r\n"
	    "reason given for each recipient is below; the headers of your\r\n"
	    "message are attached.\r\n\r\n");
	ob_printf(b, "Queue ID of your message: %s\r\n\r\n", bi->orig_id);
	for (int i = 0; i < bi->nrcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		one_line(r->addr, addr, sizeof(addr));
		one_line(r->reply, reply, sizeof(reply));
		one_line(r->reason, reason, sizeof(reason));
		ob_printf(b, "<%s>: %s%s", addr, reason, r->reason ?
		    "; last error: " : "");
		if (r->remote_mta && r->code)
			ob_printf(b, "host %s said: %s\r\n", r->remote_mta, reply);
		else
			ob_printf(b, "%s\r\n", reply);
	}
	ob_printf(b, "\r\n");
}

/* status_part - the message/delivery-status fields (RFC 3464 2.2, 2.3) */
static void
status_part(struct obuf *b, const struct bounce_info *bi)
{
	char date[64], addr[BOUNCE_LINE_MAX / 4], reply[BOUNCE_LINE_MAX / 2];
	char reason[BOUNCE_LINE_MAX / 4];

	bounce_date(bi->arrival, date, sizeof(date));
	ob_printf(b, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n");
	ob_printf(b, "Reporting-MTA: dns; %s\r\n", bi->hostname);
	ob_printf(b, "X-Mxrelay-Queue-ID: %s\r\n", bi->orig_id);
	ob_printf(b, "Arrival-Date: %s\r\n", date);
	for (int i = 0; i < bi->nrcpts; i++) {
		const struct bounce_rcpt *r = &bi->rcpts[i];
		ob_printf(b, "\r\n");
		if (r->orig != NULL)
			ob_printf(b, "Original-Recipient: rfc822; %s\r\n",
			    one_line(r->orig, addr, sizeof(addr)));
		one_line(r->addr, addr, sizeof(addr));
		ob_printf(b, "Final-Recipient: rfc822; %s\r\n"
		    "Action: failed\r\nStatus: %s\r\n", addr, r->status);
		if (r->remote_mta)
			ob_printf(b, "Remote-MTA: dns; %s\r\n", r->remote_mta);
		if (r->code)
			ob_printf(b, "Diagnostic-Code: smtp; %s\r\n",
			    one_line(r->reply, reply, sizeof(reply)));
		else if (r->reason)
			ob_printf(b, "X-Mxrelay-Diagnostic: %s; last error: %s\r\n",
			    one_line(r->reason, reason, sizeof(reason)),
			    one_line(r->reply, reply, sizeof(reply)));
		else
			ob_printf(b, "X-Mxrelay-Diagnostic: %s\r\n",
			    one_line(r->reply, reply, sizeof(reply)));
	}
	ob_printf(b, "\r\n");
}

/* headers_part - the original header section, whole lines only */
static void
headers_part(struct obuf *b, const struct bounce_info *bi)
{
	size_t n = bi->headers_len;

	ob_printf(b, "Content-Description: Undelivered Message Headers\r\n"
	    "Content-Type: text/rfc822-headers\r\n\r\n");
	if (n > BOUNCE_HEADERS_MAX)
		n = BOUNCE_HEADERS_MAX;
	while (n >= 2 && !(bi->headers[n - 2] == '\r' && bi->headers[n - 1] == '\n'))
		n--;
	if (n < 2)
		n = 0;
	/* the empty line ending the original section is not part of it */
	while (n >= 4 && memcmp(bi->headers + n - 4, "\r\n\r\n", 4) == 0)
		n -= 2;
	if (n)
		ob_add(b, bi->headers, n);
}

char *
bounce_build(const struct bounce_info *bi, size_t *len, int *is_8bit)
{
	struct obuf b = { NULL, 0, 0 };
	char date[64], boundary[128];
	int utf8 = has_8bit(bi->orig_sender, strlen(bi->orig_sender));

	for (int i = 0; i < bi->nrcpts; i++)
		if (has_8bit(bi->rcpts[i].addr, strlen(bi->rcpts[i].addr)) ||
		    (bi->rcpts[i].reply &&
		    has_8bit(bi->rcpts[i].reply, strlen(bi->rcpts[i].reply))))
			utf8 = 1;
	bounce_date(bi->now, date, sizeof(date));
	snprintf(boundary, sizeof(boundary), "%s.%s/%s", bi->dsn_id, bi->orig_id,
	    bi->hostname);
	ob_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    bi->hostname);
	ob_printf(&b, "To: <%s>\r\n", bi->orig_sender);
	ob_printf(&b, "Subject: Undelivered Mail Returned to Sender\r\n");
	ob_printf(&b, "Date: %s\r\n", date);
	ob_printf(&b, "Message-ID: <%s.bounce@%s>\r\n", bi->dsn_id, bi->hostname);
	/* RFC 3834: an automatic answer, not to be answered automatically */
	ob_printf(&b, "Auto-Submitted: auto-replied\r\n");
	ob_printf(&b, "MIME-Version: 1.0\r\n");
	ob_printf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n", boundary);
	ob_printf(&b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
	ob_printf(&b, "--%s\r\n", boundary);
	human_part(&b, bi, utf8);
	ob_printf(&b, "--%s\r\n", boundary);
	status_part(&b, bi);
	ob_printf(&b, "--%s\r\n", boundary);
	headers_part(&b, bi);
	ob_printf(&b, "\r\n--%s--\r\n", boundary);
	*len = b.len;
	*is_8bit = has_8bit(b.p, b.len);
	return b.p;
}
