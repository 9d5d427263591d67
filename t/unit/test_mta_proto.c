/* test_mta_proto.c - the pure parts of the outbound client: replies,
 * enhanced status codes, EHLO keywords, dot-stuffing, CRC-32 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "smtp_client.h"
#include "tap.h"

/* feed_all - feed lines of one reply; returns the last feed result */
static enum sc_feed
feed_all(struct sc_reply *r, const char *const *lines)
{
	enum sc_feed f = SC_FEED_ERROR;

	sc_reply_init(r);
	for (; *lines != NULL; lines++)
		if ((f = sc_reply_feed(r, *lines, NULL)) != SC_FEED_MORE)
			break;
	return f;
}

static void
test_replies(void)
{
	static const struct {
		const char *lines[5];
		enum sc_feed want;
		int code;
		const char *status;
		const char *text;
	} cases[] = {
		{ { "250 ok", NULL }, SC_FEED_DONE, 250, "", "250 ok" },
		{ { "250", NULL }, SC_FEED_DONE, 250, "", "250" },
		{ { "250 2.1.0 Sender ok", NULL }, SC_FEED_DONE, 250, "2.1.0",
		  "250 2.1.0 Sender ok" },
		{ { "550-5.1.1 The email account", "550-5.1.1 does not",
		    "550 5.1.1 exist", NULL }, SC_FEED_DONE, 550, "5.1.1",
		  "550 5.1.1 The email account does not exist" },
		/* class must match the code */
		{ { "451 5.1.1 odd", NULL }, SC_FEED_DONE, 451, "",
		  "451 5.1.1 odd" },
		{ { "250 2.1.5", NULL }, SC_FEED_DONE, 250, "2.1.5", "250 2.1.5" },
		{ { "250 2.1.5x no", NULL }, SC_FEED_DONE, 250, "",
		  "250 2.1.5x no" },
		{ { "250 2.1234.5 no", NULL }, SC_FEED_DONE, 250, "",
		  "250 2.1234.5 no" },
		{ { "421 4.3.2 bye\tnow", NULL }, SC_FEED_DONE, 421, "4.3.2",
		  "421 4.3.2 bye?now" },
		{ { "250-first", "251 second", NULL }, SC_FEED_ERROR, 0, NULL, NULL },
		{ { "25", NULL }, SC_FEED_ERROR, 0, NULL, NULL },
		{ { "250x", NULL }, SC_FEED_ERROR, 0, NULL, NULL },
		{ { "abc def", NULL }, SC_FEED_ERROR, 0, NULL, NULL },
		{ { "650 no", NULL }, SC_FEED_ERROR, 0, NULL, NULL },
		{ { "220-mx.example.test ESMTP", "220 ready", NULL }, SC_FEED_DONE,
		  220, "", "220 mx.example.test ESMTP ready" },
	};
	struct sc_reply r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sc_feed f = feed_all(&r, cases[i].lines);

		is_int(f, cases[i].want, cases[i].lines[0]);
		if (cases[i].want != SC_FEED_DONE)
			continue;
		is_int(r.code, cases[i].code, "  code");
		is_str(r.status, cases[i].status, "  status");
		is_str(r.text, cases[i].text, "  text");
	}

	/* a long reply is capped, stays NUL-terminated */
	{
		char line[2000];

		memset(line, 'x', sizeof(line));
		memcpy(line, "250 ", 4);
		line[sizeof(line) - 1] = '\0';
		sc_reply_init(&r);
		is_int(sc_reply_feed(&r, line, NULL), SC_FEED_DONE, "long line");
		is_int((long)strlen(r.text), MTA_REPLY_MAX - 1, "  capped");
	}
}

static void
test_status(void)
{
	char st[16];

	sc_status_make(250, "", st, sizeof(st));
	is_str(st, "2.0.0", "made-up 2.0.0");
	sc_status_make(451, "", st, sizeof(st));
	is_str(st, "4.0.0", "made-up 4.0.0");
	sc_status_make(554, NULL, st, sizeof(st));
	is_str(st, "5.0.0", "made-up 5.0.0");
	sc_status_make(354, "", st, sizeof(st));
	is_str(st, "4.5.0", "3xx where not expected: protocol trouble");
	sc_status_make(550, "5.7.1", st, sizeof(st));
	is_str(st, "5.7.1", "parsed status kept");
	is_int((long)sc_status_parse("5.7.1 denied", 550, st, sizeof(st)), 5,
	    "parse length");
	is_int((long)sc_status_parse("5.7.123", 550, st, sizeof(st)), 7,
	    "three-digit detail");
	is_int((long)sc_status_parse("2.0.0", 354, st, sizeof(st)), 0,
	    "no status for 3xx");
}

static void
test_ehlo(void)
{
	static const struct {
		const char *line;
		int want;
		uint64_t size;
	} cases[] = {
		{ "PIPELINING", SC_EXT_PIPELINING, 0 },
		{ "pipelining", SC_EXT_PIPELINING, 0 },
		{ "PIPELININGX", 0, 0 },
		{ "SIZE 10240000", SC_EXT_SIZE, 10240000 },
		{ "SIZE", SC_EXT_SIZE, 0 },
		{ "SIZE 0", SC_EXT_SIZE, 0 },
		{ "SIZE 99999999999999999999999", SC_EXT_SIZE, 0 },
		{ "8BITMIME", SC_EXT_8BITMIME, 0 },
		{ "STARTTLS", SC_EXT_STARTTLS, 0 },
		{ "SMTPUTF8", SC_EXT_SMTPUTF8, 0 },
		{ "ENHANCEDSTATUSCODES", SC_EXT_ENHANCED, 0 },
		{ "AUTH PLAIN LOGIN", 0, 0 },
		{ "DSN", 0, 0 },
		{ "", 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t size = 12345;
		int got = sc_ehlo_keyword(cases[i].line, &size);

		is_int(got, cases[i].want, cases[i].line[0] ? cases[i].line : "(empty)");
		if (got == SC_EXT_SIZE)
			is_int((long)size, (long)cases[i].size, "  size");
	}
}

/* stuff - the whole stream in pieces of step octets, with the end */
static char *
stuff(const char *in, size_t step)
{
	size_t n = strlen(in), o = 0;
	char *out = malloc(2 * n + 8);
	struct sc_dot d;

	sc_dot_init(&d);
	for (size_t i = 0; i < n; i += step) {
		size_t k = n - i < step ? n - i : step;

		o += sc_dot_stuff(&d, in + i, k, out + o);
	}
	o += sc_dot_end(&d, out + o);
	out[o] = '\0';
	return out;
}

static void
test_dotstuff(void)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{ "", ".\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ "a\r", "a\r\n.\r\n" },
		{ "a\n", "a\r\n.\r\n" },
		{ ".\r\n", "..\r\n.\r\n" },
		{ ".a\r\n..b\r\nc.d\r\n", "..a\r\n...b\r\nc.d\r\n.\r\n" },
		{ "x\n.\ny", "x\r\n..\r\ny\r\n.\r\n" },
		{ "a\r\n.\r\n", "a\r\n..\r\n.\r\n" },
		{ "a\rb\r\n", "a\rb\r\n.\r\n" },
		{ "\r\n\r\n", "\r\n\r\n.\r\n" },
		{ "\n\n.", "\r\n\r\n..\r\n.\r\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= 3; step++) {
			char *got = stuff(cases[i].in, step);
			char name[64];

			snprintf(name, sizeof(name), "dot-stuff case %zu step %zu",
			    i, step);
			is_str(got, cases[i].want, name);
			free(got);
		}
	}
	/* worst case: every octet doubles */
	{
		char in[] = "\n\n\n\n";
		char out[2 * sizeof(in)];
		struct sc_dot d;

		sc_dot_init(&d);
		is_int((long)sc_dot_stuff(&d, in, 4, out), 8, "bare LFs double");
	}
}

/* ref_stuff - the octet-at-a-time rule, to check the fast one against */
static size_t
ref_stuff(struct sc_dot *d, const char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n') {
			if (!d->cr)
				out[o++] = '\r';
			out[o++] = '\n';
			d->bol = 1;
			d->cr = 0;
			continue;
		}
		if (d->bol && in[i] == '.')
			out[o++] = '.';
		out[o++] = in[i];
		d->bol = 0;
		d->cr = in[i] == '\r';
	}
	return o;
}

/* test_dotstuff_random - random text of dots, CRs, LFs and letters, cut
 * at random places: the same output as the octet rule */
static void
test_dotstuff_random(void)
{
	static const char alphabet[] = "..\r\n\nab";
	char in[4096], got[2 * sizeof(in)], want[2 * sizeof(in)];
	int same = 1;

	srand(12);
	for (int round = 0; round < 200 && same; round++) {
		size_t n = (size_t)(rand() % (int)sizeof(in)), go = 0, wo = 0;
		struct sc_dot a, b;

		for (size_t i = 0; i < n; i++)
			in[i] = alphabet[rand() % (int)(sizeof(alphabet) - 1)];
		sc_dot_init(&a);
		sc_dot_init(&b);
		for (size_t i = 0; i < n;) {
			size_t k = (size_t)(rand() % 300) + 1;

			if (k > n - i)
				k = n - i;
			go += sc_dot_stuff(&a, in + i, k, got + go);
			wo += ref_stuff(&b, in + i, k, want + wo);
			i += k;
		}
		same = go == wo && memcmp(got, want, go) == 0 &&
		    a.bol == b.bol && a.cr == b.cr;
	}
	ok(same, "dot-stuff: random text in random pieces as the octet rule");
}

/* ref_crc - the octet-at-a-time CRC-32 */
static uint32_t
ref_crc(const unsigned char *p, size_t n)
{
	uint32_t c = 0xffffffffu;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
	}
	return ~c;
}

static void
test_crc(void)
{
	unsigned char buf[1000];
	int same = 1;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)(i * 7 + (i >> 3));
	/* every split of every length up to the buffer: the sliced steps and
	 * the octet tail agree with the bitwise definition */
	for (size_t n = 0; n <= sizeof(buf) && same; n += 37)
		for (size_t cut = 0; cut <= n && same; cut += 13)
			same = mx_crc32(mx_crc32(0, buf, cut), buf + cut, n - cut) ==
			    ref_crc(buf, n);
	ok(same, "crc32: split anywhere, as the bitwise definition");

	/* the standard check value of CRC-32/IEEE */
	is_int((long)mx_crc32(0, "123456789", 9), (long)0xCBF43926u, "crc32 check");
	is_int((long)mx_crc32(mx_crc32(0, "1234", 4), "56789", 5),
	    (long)0xCBF43926u, "crc32 incremental");
	is_int((long)mx_crc32(0, "", 0), 0, "crc32 empty");
}

int
main(void)
{
	test_replies();
	test_status();
	test_ehlo();
	test_dotstuff();
	test_dotstuff_random();
	test_crc();
	return done_testing();
}
