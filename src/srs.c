/* srs.c - Sender Rewriting Scheme (Shevek's guarded SRS0/SRS1)
 *
 * The HMAC input is the lower-cased fields joined by NUL octets, so that
 * moving characters from one field to the next (domain "ex.orga", local
 * "lice" instead of "ex.org", "alice") does not keep the hash valid.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "srs.h"

#define SRS_FIELD_MAX	4	/* fields hashed together */
#define SRS_DATA_MAX	(SRS_ADDR_MAX * 2)

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

const char *
srs_result_name(enum srs_result r)
{
	switch (r) {
	case SRS_OK:
		return "ok";
	case SRS_NOT_SRS:
		return "not an SRS address";
	case SRS_MALFORMED:
		return "malformed SRS address";
	case SRS_BAD_HASH:
		return "invalid SRS hash";
	case SRS_EXPIRED:
		return "expired SRS address";
	case SRS_TOO_LONG:
		return "SRS address too long";
	}
	return "?";
}

/* is_sep - the separators allowed right after the SRS0/SRS1 tag */
static int
is_sep(char c)
{
	return c == '=' || c == '+' || c == '-';
}

/* srs_tag - 0 or 1 for an SRS0/SRS1 local part, -1 otherwise */
static int
srs_tag(const char *local)
{
	if (strncasecmp(local, "SRS0", 4) == 0 && is_sep(local[4]))
		return 0;
	if (strncasecmp(local, "SRS1", 4) == 0 && is_sep(local[4]))
		return 1;
	return -1;
}

int
srs_is_srs(const char *local)
{
	return srs_tag(local) >= 0;
}

void
srs_timestamp(time_t now, char tt[3])
{
	unsigned day = (unsigned)((now / SRS_DAY_SECS) % SRS_TIME_SLOTS);

	tt[0] = b32[(day >> 5) & 31];
	tt[1] = b32[day & 31];
	tt[2] = '\0';
}

/* b32_value - a base32 character, any case; -1 if not one */
static int
b32_value(char c)
{
	const char *p = strchr(b32, toupper((unsigned char)c));

	return c && p ? (int)(p - b32) : -1;
}

/* srs_hash - the first SRS_HASH_LEN base64 characters of the HMAC-SHA1 of
 * the lower-cased fields joined by NUL; -1 when they do not fit */
static int
srs_hash(const char *secret, const char *const *f, const size_t *fl, int n,
    char out[SRS_HASH_LEN + 1])
{
	unsigned char data[SRS_DATA_MAX], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t len = 0;
	unsigned acc = 0;
	int bits = 0, k = 0;

	for (int i = 0; i < n; i++) {
		if (len + fl[i] + 1 > sizeof(data))
			return -1;
		for (size_t j = 0; j < fl[i]; j++)
			data[len++] = (unsigned char)tolower((unsigned char)f[i][j]);
		if (i + 1 < n)
			data[len++] = '\0';
	}
	if (HMAC(EVP_sha1(), secret, (int)strlen(secret), data, len, md,
	    &mdlen) == NULL)
		return -1;
	/* base64 (RFC 4648 section 4) of the digest, as far as needed */
	for (unsigned i = 0; i < mdlen && k < SRS_HASH_LEN; i++) {
		acc = acc << 8 | md[i];
		bits += 8;
		while (bits >= 6 && k < SRS_HASH_LEN) {
			out[k++] = b64[(acc >> (bits - 6)) & 63];
			bits -= 6;
		}
	}
	out[k] = '\0';
	return 0;
}

/* hash_ok - does the hash given (gl octets) match, in any case? */
static int
hash_ok(const char *given, size_t gl, const char *want)
{
	return gl == SRS_HASH_LEN && strncasecmp(given, want, SRS_HASH_LEN) == 0;
}

static enum srs_result
emit(char *out, size_t outlen, int n)
{
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			out[0] = '\0';
		return SRS_TOO_LONG;
	}
	return SRS_OK;
}

enum srs_result
srs_forward(const char *secret, const char *srs_domain, const char *sender,
    time_t now, char *out, size_t outlen)
{
	const char *at = strrchr(sender, '@'), *host, *rest, *h1, *e1;
	char local[SRS_ADDR_MAX], hash[SRS_HASH_LEN + 1], tt[3];
	const char *f[SRS_FIELD_MAX];
	size_t fl[SRS_FIELD_MAX], ll;

	/* <> stays <>; so does an address without a domain, and one that is
	 * ours already (a bounce reversed and forwarded again) */
	if (*sender == '\0' || at == NULL || strcasecmp(at + 1, srs_domain) == 0)
		return emit(out, outlen, snprintf(out, outlen, "%s", sender));
	host = at + 1;
	/* "=" separates the fields: an empty local part or host, or a host
	 * holding "=", could not be read back (no valid address has them;
	 * found by t/fuzz/fuzz_srs.c) */
	if (at == sender || *host == '\0' || strchr(host, '=') != NULL)
		return SRS_MALFORMED;
	ll = (size_t)(at - sender);
	if (ll >= sizeof(local))
		return SRS_TOO_LONG;
	memcpy(local, sender, ll);
	local[ll] = '\0';
	switch (srs_tag(local)) {
	case 0:
		/* SRS0 at host: bounces go back to host, which reverses it */
		rest = local + 4;
		if (rest[1] == '\0')
			return SRS_MALFORMED;	/* "SRS0=": nothing to keep */
		f[0] = host, fl[0] = strlen(host);
		f[1] = rest, fl[1] = strlen(rest);
		if (srs_hash(secret, f, fl, 2, hash) < 0)
			return SRS_TOO_LONG;
		return emit(out, outlen, snprintf(out, outlen, "SRS1=%s=%s=%s@%s",
		    hash, host, rest, srs_domain));
	case 1:
		/* SRS1=hash=firsthost=REST: keep the first host and REST */
		h1 = strchr(local + 5, '=');
		e1 = h1 ? strchr(h1 + 1, '=') : NULL;
		if (e1 == NULL || e1 == h1 + 1 || e1[1] == '\0')
			return SRS_MALFORMED;	/* empty first host or rest */
		f[0] = h1 + 1, fl[0] = (size_t)(e1 - h1 - 1);
		f[1] = e1 + 1, fl[1] = strlen(e1 + 1);
		if (srs_hash(secret, f, fl, 2, hash) < 0)
			return SRS_TOO_LONG;
		return emit(out, outlen, snprintf(out, outlen, "SRS1=%s=%.*s=%s@%s",
		    hash, (int)fl[0], f[0], f[1], srs_domain));
	default:
		break;
	}
	srs_timestamp(now, tt);
	f[0] = tt, fl[0] = 2;
	f[1] = host, fl[1] = strlen(host);
	f[2] = local, fl[2] = ll;
	if (srs_hash(secret, f, fl, 3, hash) < 0)
		return SRS_TOO_LONG;
	return emit(out, outlen, snprintf(out, outlen, "SRS0=%s=%s=%s=%s@%s",
	    hash, tt, host, local, srs_domain));
}

/* reverse0 - SRS0: "HASH=TT=HOST=LOCAL" at p */
static enum srs_result
reverse0(const char *secret, const char *p, time_t now, int check_time,
    char *out, size_t outlen)
{
	const char *e_hash = strchr(p, '='), *tt, *host, *e_host, *loc;
	const char *f[SRS_FIELD_MAX];
	size_t fl[SRS_FIELD_MAX];
	char want[SRS_HASH_LEN + 1];
	int then, today, age;

	if (e_hash == NULL)
		return SRS_MALFORMED;
	tt = e_hash + 1;
	if (b32_value(tt[0]) < 0 || b32_value(tt[1]) < 0 || tt[2] != '=')
		return SRS_MALFORMED;
	host = tt + 3;
	if ((e_host = strchr(host, '=')) == NULL || e_host == host)
		return SRS_MALFORMED;
	loc = e_host + 1;
	if (*loc == '\0')
		return SRS_MALFORMED;
	f[0] = tt, fl[0] = 2;
	f[1] = host, fl[1] = (size_t)(e_host - host);
	f[2] = loc, fl[2] = strlen(loc);
	if (srs_hash(secret, f, fl, 3, want) < 0)
		return SRS_MALFORMED;
	if (!hash_ok(p, (size_t)(e_hash - p), want))
		return SRS_BAD_HASH;
	if (check_time) {
		then = b32_value(tt[0]) << 5 | b32_value(tt[1]);
		today = (int)((now / SRS_DAY_SECS) % SRS_TIME_SLOTS);
		/* a stamp "after" today is from the previous cycle */
		age = (today - then + SRS_TIME_SLOTS) % SRS_TIME_SLOTS;
		if (age > SRS_MAX_AGE_DAYS)
			return SRS_EXPIRED;
	}
	return emit(out, outlen, snprintf(out, outlen, "%s@%.*s", loc,
	    (int)fl[1], host));
}

/* reverse1 - SRS1: "HASH=FIRSTHOST=REST" at p; REST is an SRS0 remainder */
static enum srs_result
reverse1(const char *secret, const char *p, char *out, size_t outlen)
{
	const char *e_hash = strchr(p, '='), *host, *e_host;
	const char *f[SRS_FIELD_MAX];
	size_t fl[SRS_FIELD_MAX];
	char want[SRS_HASH_LEN + 1];

	if (e_hash == NULL)
		return SRS_MALFORMED;
	host = e_hash + 1;
	if ((e_host = strchr(host, '=')) == NULL || e_host == host ||
	    e_host[1] == '\0')
		return SRS_MALFORMED;
	f[0] = host, fl[0] = (size_t)(e_host - host);
	f[1] = e_host + 1, fl[1] = strlen(e_host + 1);
	if (srs_hash(secret, f, fl, 2, want) < 0)
		return SRS_MALFORMED;
	if (!hash_ok(p, (size_t)(e_hash - p), want))
		return SRS_BAD_HASH;
	return emit(out, outlen, snprintf(out, outlen, "SRS0%s@%.*s", f[1],
	    (int)fl[0], host));
}

enum srs_result
srs_reverse(const char *secret, const char *local, time_t now, int check_time,
    char *out, size_t outlen)
{
	switch (srs_tag(local)) {
	case 0:
		return reverse0(secret, local + 5, now, check_time, out, outlen);
	case 1:
		return reverse1(secret, local + 5, out, outlen);
	default:
		return SRS_NOT_SRS;
	}
}
