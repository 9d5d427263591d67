/* crc32.c - CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320)
 *
 * Written when a message is spooled (spool.c), over each journal record
 * (spool_journal.c) and checked when a message is sent on (smtp_client.c):
 * one implementation, so they always agree.
 *
 * Two ways to the same value. Slicing by 8 (eight tables, one step folds
 * 8 octets) runs anywhere. On x86-64 with PCLMULQDQ, long buffers are
 * folded 64 octets a step with carry-less multiplies, and the last 16-octet
 * remainder and the tail go through the tables. bench/profile.sh at 100 KB
 * had the sliced CRC at 54 % of the daemon's instructions (three passes
 * per message) and removing it altogether made one client's run 15-20 %
 * faster; the folded form takes a fifth of the sliced one's time (10.9
 * against 49.2 us per 100 KB here).
 *
 * The folding, in the reflected bit order the CRC uses: a 16-octet block
 * is a polynomial of degree < 128 whose first octet's bit 0 is the x^127
 * term. Its low quadword L holds x^127..x^64 and its high quadword H
 * x^63..x^0, so block = L x^64 + H. Moving a block d bits further on means
 * multiplying it by x^d; modulo P that is
 *	L (x^(d+64) mod P) + H (x^d mod P),
 * two 64 x 32-bit carry-less products that fit in 128 bits. A reflected
 * carry-less multiply leaves its product one bit short (the product of
 * two terms in bits i and j lands in bit i+j, which stands for a degree one
 * lower than the sum), so each constant is x^(e-1) mod P. The folded block
 * is congruent to all the data folded into it, so the table CRC of its 16
 * octets (from a zero register) is the CRC register of that data.
 */
#include "autoconf.h"

#include <pthread.h>

#include "crc32.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CRC_FOLDING	1
#include <immintrin.h>
#endif

#define CRC_POLY	0xEDB88320u	/* reflected; bit 31 is x^0 */
#define CRC_SLICES	8
#define CRC_BLOCK	16		/* octets per folded block */
#define CRC_LANES	4		/* blocks folded side by side */
#define CRC_FOLD_MIN	256		/* shorter buffers: tables only */

static uint32_t crc_table[CRC_SLICES][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#ifdef CRC_FOLDING
static int crc_fold_ok;		/* the CPU has PCLMULQDQ */
static uint64_t k_lane[2];	/* a block CRC_LANES blocks on: x^(512+64-1), x^(512-1) */
static uint64_t k_next[2];	/* a block one block on: x^(128+64-1), x^(128-1) */
#endif

/* crc_times_x - a reflected residue times x, modulo P */
static uint32_t
crc_times_x(uint32_t c)
{
	return c & 1 ? CRC_POLY ^ (c >> 1) : c >> 1;
}

#ifdef CRC_FOLDING
/* crc_xpow - x^n mod P as a carry-less multiplicand: the reflected
 * residue in the high half, where bit 63 - d is the x^d term */
static uint64_t
crc_xpow(unsigned n)
{
	uint32_t c = 0x80000000u;	/* x^0 */

	while (n--)
		c = crc_times_x(c);
	return (uint64_t)c << 32;
}
#endif

/* crc_init - the tables, once per process: table k advances the CRC of
 * an octet by k more zero octets */
static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = crc_times_x(c);
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int k = 1; k < CRC_SLICES; k++) {
			uint32_t c = crc_table[k - 1][i];
			crc_table[k][i] = crc_table[0][c & 0xff] ^ (c >> 8);
		}
#ifdef CRC_FOLDING
	k_lane[0] = crc_xpow(8 * CRC_BLOCK * CRC_LANES + 64 - 1);
	k_lane[1] = crc_xpow(8 * CRC_BLOCK * CRC_LANES - 1);
	k_next[0] = crc_xpow(8 * CRC_BLOCK + 64 - 1);
	k_next[1] = crc_xpow(8 * CRC_BLOCK - 1);
	__builtin_cpu_init();
	crc_fold_ok = __builtin_cpu_supports("pclmul");	/* SSE2: x86-64's base */
#endif
}

/* le32 - four octets as a little-endian word, whatever the host order */
static inline uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* crc_sliced - advance the raw register (no inversions) over n octets */
static uint32_t
crc_sliced(uint32_t crc, const unsigned char *p, size_t n)
{
	for (; n >= CRC_SLICES; n -= CRC_SLICES, p += CRC_SLICES) {
		uint32_t a = le32(p) ^ crc, b = le32(p + 4);

		crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^
		    crc_table[5][(a >> 16) & 0xff] ^ crc_table[4][a >> 24] ^
		    crc_table[3][b & 0xff] ^ crc_table[2][(b >> 8) & 0xff] ^
		    crc_table[1][(b >> 16) & 0xff] ^ crc_table[0][b >> 24];
	}
	while (n--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#ifdef CRC_FOLDING
#define CRC_TARGET	__attribute__((target("pclmul")))

/* fold - block b moved on by the distance of k, modulo P */
CRC_TARGET static inline __m128i
fold(__m128i b, __m128i k)
{
	return _mm_xor_si128(_mm_clmulepi64_si128(b, k, 0x00),
	    _mm_clmulepi64_si128(b, k, 0x11));
}

/* crc_folded - the raw register over n >= CRC_FOLD_MIN octets */
CRC_TARGET static uint32_t
crc_folded(uint32_t crc, const unsigned char *p, size_t n)
{
	const __m128i kl = _mm_set_epi64x((long long)k_lane[1], (long long)k_lane[0]);
	const __m128i kn = _mm_set_epi64x((long long)k_next[1], (long long)k_next[0]);
	__m128i x[CRC_LANES], acc;
	unsigned char last[CRC_BLOCK];
	int i;

	/* the register joins the first 32 bits of the data */
	for (i = 0; i < CRC_LANES; i++)
		x[i] = _mm_loadu_si128((const __m128i *)(const void *)(p + i * CRC_BLOCK));
	x[0] = _mm_xor_si128(x[0], _mm_cvtsi32_si128((int)crc));
	p += CRC_LANES * CRC_BLOCK;
	n -= CRC_LANES * CRC_BLOCK;
	for (; n >= CRC_LANES * CRC_BLOCK; n -= CRC_LANES * CRC_BLOCK,
	    p += CRC_LANES * CRC_BLOCK)
		for (i = 0; i < CRC_LANES; i++)
			x[i] = _mm_xor_si128(fold(x[i], kl),
			    _mm_loadu_si128((const __m128i *)(const void *)(p + i * CRC_BLOCK)));
	acc = x[0];
	for (i = 1; i < CRC_LANES; i++)
		acc = _mm_xor_si128(fold(acc, kn), x[i]);
	for (; n >= CRC_BLOCK; n -= CRC_BLOCK, p += CRC_BLOCK)
		acc = _mm_xor_si128(fold(acc, kn),
		    _mm_loadu_si128((const __m128i *)(const void *)p));
	_mm_storeu_si128((__m128i *)(void *)last, acc);
	return crc_sliced(crc_sliced(0, last, sizeof(last)), p, n);
}
#endif

uint32_t
mx_crc32(uint32_t crc, const void *buf, size_t n)
{
	pthread_once(&crc_once, crc_init);
#ifdef CRC_FOLDING
	if (crc_fold_ok && n >= CRC_FOLD_MIN)
		return ~crc_folded(~crc, buf, n);
#endif
	return ~crc_sliced(~crc, buf, n);
}

uint32_t
mx_crc32_portable(uint32_t crc, const void *buf, size_t n)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_sliced(~crc, buf, n);
}
