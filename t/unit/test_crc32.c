/* test_crc32.c - the CRC-32 of spool files and journal records: the
 * standard check value, and the folded (PCLMULQDQ) path equal to the
 * table path for every length, alignment and split into pieces */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "crc32.h"
#include "tap.h"

#define BUF_MAX		(70 * 1024)

/* the check value of CRC-32/ISO-HDLC (the CRC of zlib, Ethernet, PNG) */
static void
test_check_value(void)
{
	is_int((long)mx_crc32(0, "123456789", 9), 0xCBF43926L, "check value, short");
	is_int((long)mx_crc32_portable(0, "123456789", 9), 0xCBF43926L,
	    "check value, portable");
	is_int((long)mx_crc32(0, "", 0), 0, "empty buffer");
}

/* a known long value: 1 MiB of 'a' (zlib's crc32 gives the same) */
static void
test_long_value(void)
{
	size_t n = 1024 * 1024;
	char *p = malloc(n);

	memset(p, 'a', n);
	is_int((long)mx_crc32(0, p, n), (long)mx_crc32_portable(0, p, n),
	    "1 MiB of 'a': folded = tables");
	is_int((long)mx_crc32(0, p, n), 0xD7CD5672L, "1 MiB of 'a': known value");
	free(p);
}

/* every length up to 2 KiB at 16 alignments, and long random lengths */
static void
test_lengths(const unsigned char *buf)
{
	int bad = 0;

	for (size_t off = 0; off < 16; off++)
		for (size_t n = 0; n <= 2048; n++)
			if (mx_crc32(0x12345678u, buf + off, n) !=
			    mx_crc32_portable(0x12345678u, buf + off, n) && bad++ < 5)
				diag("differs at offset %zu length %zu", off, n);
	for (int i = 0; i < 200; i++) {
		size_t off = (size_t)rand() % 64, n = (size_t)rand() % (BUF_MAX - 64);

		if (mx_crc32(0, buf + off, n) != mx_crc32_portable(0, buf + off, n) &&
		    bad++ < 5)
			diag("differs at offset %zu length %zu", off, n);
	}
	is_int(bad, 0, "folded = tables for every length and alignment");
}

/* a buffer fed in pieces gives the CRC of the whole */
static void
test_pieces(const unsigned char *buf)
{
	uint32_t whole = mx_crc32_portable(0, buf, BUF_MAX);
	int bad = 0;

	for (int i = 0; i < 200; i++) {
		uint32_t crc = 0;
		size_t done = 0;

		while (done < BUF_MAX) {
			size_t k = (size_t)rand() % 5000;

			if (k > BUF_MAX - done)
				k = BUF_MAX - done;
			crc = mx_crc32(crc, buf + done, k);
			done += k;
		}
		if (crc != whole)
			bad++;
	}
	is_int(bad, 0, "pieces of random sizes give the CRC of the whole");
}

int
main(void)
{
	unsigned char *buf = malloc(BUF_MAX);

	srand(7);
	for (size_t i = 0; i < BUF_MAX; i++)
		buf[i] = (unsigned char)rand();
	test_check_value();
	test_long_value();
	test_lengths(buf);
	test_pieces(buf);
	free(buf);
	return done_testing();
}
