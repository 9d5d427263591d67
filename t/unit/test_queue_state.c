/* test_queue_state.c - the spool's read-back: envelope block, trailer,
 * state records (format, parse, last record wins, torn lines) */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool.h"
#include "stats.h"
#include "tap.h"

struct mx_stats mx_stats;	/* spool.c counts into it */

static const char header[] =
    "MXRELAY-SPOOL 1\n"
    "id 000660C329EB1773\n"
    "arrival 1795241198\n"
    "client 192.0.2.10 45604\n"
    "helo mail.example.org\n"
    "tls TLSv1.3 TLS_AES_256_GCM_SHA384\n"
    "sender <alice@example.org>\n"
    "body 8bitmime\n"
    "smtputf8 0\n"
    "rcpts 2\n"
    "rcpt 0 <joe@example.com>\n"
    "rcpt 1 <\"odd > name\"@example.com>\n"
    "size 00000000000000000010\n"
    "\n";

static void
test_header(void)
{
	struct spool_entry *e = calloc(1, sizeof(*e));
	char buf[2048];
	ssize_t n;

	n = spool_parse_header(header, sizeof(header) - 1, e, 1);
	is_int(n, (long)(sizeof(header) - 1), "header length = body offset");
	is_str(e->id, "000660C329EB1773", "id");
	is_int((long)e->arrival, 1795241198L, "arrival");
	is_str(e->sender, "alice@example.org", "sender without brackets");
	is_int(e->nrcpts, 2, "rcpts");
	is_str(e->rcpts[0].addr, "joe@example.com", "rcpt 0");
	is_str(e->rcpts[1].addr, "\"odd > name\"@example.com", "rcpt 1: quoted '>' kept");
	is_int(e->body_8bit, 1, "8bitmime");
	is_int(e->route_mx, 0, "not a bounce");
	is_str(e->client, "192.0.2.10 45604", "client (full)");
	is_str(e->tls, "TLSv1.3 TLS_AES_256_GCM_SHA384", "tls (full)");
	is_int((long)e->body_size, 10, "size");
	spool_entry_free(e);

	e = calloc(1, sizeof(*e));
	is_int(spool_parse_header(header, sizeof(header) - 3, e, 0), 0,
	    "no empty line yet: need more");
	spool_entry_free(e);

	/* a bounce, null sender */
	snprintf(buf, sizeof(buf), "MXRELAY-SPOOL 1\nid 000660C329EB1774\n"
	    "arrival 5\nsender <>\nroute mx\nrcpts 1\nrcpt 0 <a@b.example>\n"
	    "size 00000000000000000000\n\nMXRELAY-END crc32=00000000\n");
	e = calloc(1, sizeof(*e));
	ok(spool_parse_header(buf, strlen(buf), e, 0) > 0, "bounce header parses");
	is_str(e->sender, "", "null sender");
	is_int(e->route_mx, 1, "route mx");
	ok(e->client == NULL, "client not kept without full");
	ok(e->held == NULL, "not held");
	spool_entry_free(e);

	/* quarantined by a milter, then released by a record */
	snprintf(buf, sizeof(buf), "MXRELAY-SPOOL 1\nid 000660C329EB1775\n"
	    "arrival 5\nsender <a@b.example>\nheld spam score 20\nrcpts 1\n"
	    "rcpt 0 <a@b.example>\nsize 00000000000000000000\n\n");
	e = calloc(1, sizeof(*e));
	ok(spool_parse_header(buf, strlen(buf), e, 0) > 0, "held header parses");
	is_str(e->held, "spam score 20", "held reason");
	n = (ssize_t)spool_release_record(buf, sizeof(buf), 1795241300);
	is_str(buf, "release 1795241300\n", "release record");
	is_int((long)spool_apply_records(e, buf, (size_t)n), (long)n, "release applied");
	ok(e->held == NULL, "released: no longer held");
	spool_entry_free(e);

	const char *bad[] = {
		"MXRELAY-SPOOL 2\nid 000660C329EB1773\n\n",
		"MXRELAY-SPOOL 1\nid 000660C329EB1773\nsender <a@b>\nrcpts 2\n"
		    "rcpt 0 <x@y>\nsize 1\n\n",			/* rcpt missing */
		"MXRELAY-SPOOL 1\nid 000660C329EB1773\nsender <a@b>\nrcpts 1\n"
		    "rcpt 1 <x@y>\nsize 1\n\n",			/* wrong index */
		"MXRELAY-SPOOL 1\nid 000660C329EB1773\nsender <a@b>\nrcpts 1\n"
		    "rcpt 0 <x@y>\n\n",				/* no size */
		"MXRELAY-SPOOL 1\nid 12\nsender <a@b>\nrcpts 1\n"
		    "rcpt 0 <x@y>\nsize 1\n\n",			/* short id */
		"MXRELAY-SPOOL 1\nid 000660C329EB1773\nsender <a@b>\nrcpts 0\n"
		    "size 1\n\n",				/* no recipients */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e = calloc(1, sizeof(*e));
		is_int(spool_parse_header(bad[i], strlen(bad[i]), e, 0), -1,
		    "malformed header refused");
		spool_entry_free(e);
	}
}

static void
test_trailer(void)
{
	uint32_t crc = 0;
	const char t[] = "MXRELAY-END crc32=a85776a9\nstate 0 ...";

	is_int(spool_parse_trailer(t, sizeof(t) - 1, &crc), 27, "trailer length");
	ok(crc == 0xa85776a9u, "crc from the trailer");
	is_int(spool_parse_trailer("MXRELAY-END crc32=a85776a\n", 26, &crc), -1,
	    "short crc refused");
	is_int(spool_parse_trailer("MXRELAY-END crc32=a85776aZ\n", 27, &crc), -1,
	    "bad hex refused");
}

static void
test_records(void)
{
	struct spool_state st, back;
	struct spool_entry *e = calloc(1, sizeof(*e));
	char line[1024], recs[4096];
	size_t n, used;

	memset(&st, 0, sizeof(st));
	st.index = 1;
	st.state = SPOOL_R_DEFERRED;
	st.time = 1795241300;
	st.attempts = 2;
	st.next = 1795241600;
	snprintf(st.reply, sizeof(st.reply), "451 4.3.0 try\r\nlater\tplease");
	n = spool_format_state(line, sizeof(line), &st);
	is_str(line, "state 1 deferred 1795241300 2 1795241600 451 4.3.0 try  later please\n",
	    "format: control characters become spaces");
	ok(n == strlen(line), "format length");
	ok(spool_parse_state(line, n - 1, &back) == 0, "parse back");
	is_int(back.index, 1, "index");
	is_int(back.state, SPOOL_R_DEFERRED, "state");
	is_int((long)back.time, 1795241300L, "time");
	is_int(back.attempts, 2, "attempts");
	is_int((long)back.next, 1795241600L, "next");
	is_str(back.reply, "451 4.3.0 try  later please", "reply");
	ok(spool_parse_state("state 0 delivered 5 0 0 ", 24, &back) == 0 &&
	    back.reply[0] == '\0', "empty reply");
	ok(spool_parse_state("state 0 delivered 5 0 0", 23, &back) == 0,
	    "no reply field at all");
	ok(spool_parse_state("state 0 lost 5 0 0 x", 20, &back) < 0, "unknown state refused");
	ok(spool_parse_state("state x delivered 5 0 0 x", 25, &back) < 0, "bad index refused");
	ok(spool_parse_state("stat 0 delivered 5 0 0 x", 24, &back) < 0, "bad keyword refused");
	ok(spool_parse_state("state 0 deferred 5 -1 0 x", 25, &back) < 0, "negative refused");

	/* apply: last record of each recipient wins; torn and foreign lines skipped */
	spool_parse_header(header, sizeof(header) - 1, e, 0);
	snprintf(recs, sizeof(recs),
	    "state 0 deferred 100 1 160 421 busy\n"
	    "state 1 deferred 100 1 160 451 later\n"
	    "garbage line\n"
	    "state 7 delivered 100 1 0 out of range\n"
	    "state 0 delivered 170 1 0 250 ok\n"
	    "state 1 deferred 170 2 470 451 again\n"
	    "state 1 bounced 180 2 0 550 no");	/* torn: no newline */
	used = spool_apply_records(e, recs, strlen(recs));
	is_int((long)used, (long)(strstr(recs, "state 1 bounced") - recs),
	    "complete lines consumed, torn tail left");
	is_int(e->rcpts[0].state, SPOOL_R_DELIVERED, "rcpt 0: last record delivered");
	is_str(e->rcpts[0].reply, "250 ok", "rcpt 0 reply");
	is_int(e->rcpts[1].state, SPOOL_R_DEFERRED, "rcpt 1: torn bounce ignored");
	is_int(e->rcpts[1].attempts, 2, "rcpt 1 attempts");
	is_int((long)e->rcpts[1].next, 470, "rcpt 1 next attempt");
	spool_entry_free(e);
}

int
main(void)
{
	test_header();
	test_trailer();
	test_records();
	return done_testing();
}
