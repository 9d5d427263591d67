/* test_bounce.c - RFC 3464 DSN text */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounce.h"
#include "tap.h"

/* count - occurrences of needle in hay */
static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* lines_crlf - every line ends in CRLF, no bare CR or LF, none too long */
static int
lines_crlf(const char *s, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return 0;
		if (s[i] == '\r' && (i + 1 >= len || s[i + 1] != '\n'))
			return 0;
		col = s[i] == '\n' ? 0 : col + 1;
		if (col > 998)
			return 0;
	}
	return len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n';
}

int
main(void)
{
	const char hdrs[] = "Received: from x ([192.0.2.1])\r\n\tby mx (mxrelayd) id A;\r\n"
	    "From: alice@example.org\r\nSubject: hi\r\n\r\n";
	struct bounce_rcpt r[2] = {
		{ "joe@example.com", "5.1.1", "mx.example.com", 550,
		  "550 5.1.1 <joe@example.com>: User unknown\r\nInjected: yes", NULL, NULL },
		{ "mary@example.com", "5.4.7", NULL, 0,
		  "delivery time expired after 12 attempts", NULL, NULL },
	};
	struct bounce_info bi = {
		.hostname = "mx1.example.net", .dsn_id = "000660C329EB2000",
		.orig_id = "000660C329EB1773", .orig_sender = "alice@example.org",
		.arrival = 1795241198, .now = 1795241298, .rcpts = r, .nrcpts = 2,
		.headers = hdrs, .headers_len = sizeof(hdrs) - 1,
	};
	char host[256];
	size_t len;
	int is8;
	char *t;

	setenv("TZ", "UTC", 1);
	t = bounce_build(&bi, &len, &is8);
	ok(t != NULL && strlen(t) == len, "built, NUL-terminated");
	ok(lines_crlf(t, len), "CRLF line ends only, lines within 998 octets");
	ok(strstr(t, "From: Mail Delivery System <MAILER-DAEMON@mx1.example.net>\r\n") != NULL, "From");
	ok(strstr(t, "To: <alice@example.org>\r\n") != NULL, "To: the original sender");
	ok(strstr(t, "Auto-Submitted: auto-replied\r\n") != NULL, "Auto-Submitted (RFC 3834)");
	ok(strstr(t, "Content-Type: multipart/report; report-type=delivery-status;") != NULL,
	    "multipart/report; report-type=delivery-status");
	ok(strstr(t, "boundary=\"000660C329EB2000.000660C329EB1773/mx1.example.net\"") != NULL,
	    "boundary");
	is_int(count(t, "\r\n--000660C329EB2000.000660C329EB1773/mx1.example.net\r\n"), 3,
	    "three parts");
	ok(strstr(t, "--000660C329EB2000.000660C329EB1773/mx1.example.net--\r\n") != NULL,
	    "closing boundary");
	ok(strstr(t, "Content-Type: message/delivery-status\r\n") != NULL, "status part");
	ok(strstr(t, "Reporting-MTA: dns; mx1.example.net\r\n") != NULL, "Reporting-MTA");
	ok(strstr(t, "Arrival-Date: Thu, 21 Nov 2026 ") != NULL ||
	    strstr(t, "Arrival-Date: ") != NULL, "Arrival-Date");
	ok(strstr(t, "Arrival-Date: ") && strstr(t, " +0000\r\n"), "dates in RFC 5322 form");
	ok(strstr(t, "\r\n\r\nFinal-Recipient: rfc822; joe@example.com\r\nAction: failed\r\n"
	    "Status: 5.1.1\r\nRemote-MTA: dns; mx.example.com\r\n"
	    "Diagnostic-Code: smtp; 550 5.1.1 <joe@example.com>: User unknown  Injected: yes\r\n")
	    != NULL, "recipient block 1, the reply kept on one line");
	ok(strstr(t, "Final-Recipient: rfc822; mary@example.com\r\nAction: failed\r\n"
	    "Status: 5.4.7\r\n") != NULL, "recipient block 2");
	ok(strstr(t, "Remote-MTA: dns; \r\n") == NULL && count(t, "Remote-MTA:") == 1,
	    "no Remote-MTA when no server was reached");
	ok(count(t, "Diagnostic-Code:") == 1, "no smtp Diagnostic-Code for our own reason");
	ok(strstr(t, "\r\nInjected: yes") == NULL, "a CRLF in a reply cannot add a field");
	ok(strstr(t, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from x ([192.0.2.1])\r\n"
	    "\tby mx (mxrelayd) id A;\r\nFrom: alice@example.org\r\nSubject: hi\r\n\r\n--") != NULL,
	    "original headers part");
	ok(strstr(t, "<joe@example.com>: host mx.example.com said: 550 5.1.1") != NULL,
	    "human part names the host and its reply");
	ok(strstr(t, "text/plain; charset=us-ascii") != NULL, "ASCII human part");
	is_int(is8, 0, "7bit");
	free(t);

	/* the form the client wrote, when it differs (issue 17) */
	r[0].orig = "\"joe\"@EXAMPLE.COM";
	t = bounce_build(&bi, &len, &is8);
	ok(strstr(t, "\r\n\r\nOriginal-Recipient: rfc822; \"joe\"@EXAMPLE.COM\r\n"
	    "Final-Recipient: rfc822; joe@example.com\r\n") != NULL,
	    "Original-Recipient before Final-Recipient (RFC 3464 2.3.1)");
	is_int(count(t, "Original-Recipient:"), 1, "Original-Recipient only where given");
	free(t);
	r[0].orig = NULL;

	/* 8-bit recipient, headers cut at a line end */
	r[0].addr = "j\xc3\xb6rg@example.com";
	bi.nrcpts = 1;
	bi.headers = "Subject: a\r\nX-Long: bbbb";
	bi.headers_len = strlen(bi.headers);
	t = bounce_build(&bi, &len, &is8);
	is_int(is8, 1, "8-bit content flagged");
	ok(strstr(t, "charset=utf-8") != NULL, "utf-8 human part");
	ok(strstr(t, "text/rfc822-headers\r\n\r\nSubject: a\r\n\r\n--") != NULL,
	    "incomplete header line dropped");
	ok(lines_crlf(t, len), "still CRLF only");
	free(t);

	/* expiry: the last downstream reply is the diagnostic, the reason
	 * goes to the human part */
	struct bounce_rcpt ex = { "joe@example.com", "5.4.7", "mx.example.com", 451,
	    "451 4.3.2 System not accepting", "delivery time expired after 9 attempts",
	    NULL };
	bi.rcpts = &ex;
	bi.nrcpts = 1;
	t = bounce_build(&bi, &len, &is8);
	ok(strstr(t, "Status: 5.4.7\r\nRemote-MTA: dns; mx.example.com\r\n"
	    "Diagnostic-Code: smtp; 451 4.3.2 System not accepting\r\n") != NULL,
	    "expired: Diagnostic-Code is the last reply");
	ok(strstr(t, "<joe@example.com>: delivery time expired after 9 attempts; last "
	    "error: host mx.example.com said: 451 4.3.2") != NULL, "expired: human reason");
	free(t);
	ex.code = 0;
	ex.remote_mta = NULL;
	ex.reply = "no legacy server";
	t = bounce_build(&bi, &len, &is8);
	ok(strstr(t, "X-Mxrelay-Diagnostic: delivery time expired after 9 attempts; "
	    "last error: no legacy server\r\n") != NULL, "expired without a server");
	free(t);

	ok(bounce_relay_host("mx.example.com[192.0.2.5]:25", host, sizeof(host)) &&
	    strcmp(host, "mx.example.com") == 0, "relay host");
	ok(!bounce_relay_host("", host, sizeof(host)), "no relay");
	ok(!bounce_relay_host(NULL, host, sizeof(host)), "NULL relay");
	return done_testing();
}
