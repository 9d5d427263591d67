/* srs.h - Sender Rewriting Scheme for external forwards (SPEC 3, 6)
 *
 * A message forwarded to another domain goes out with an envelope sender
 * under srs.domain, so that SPF at the destination sees our domain and a
 * bounce comes back to us, who reverse it to the original sender. The
 * scheme is Shevek's ("guarded" SRS, as in libsrs2 and Mail::SRS):
 *
 *   alice@example.org               -> SRS0=HHHHHH=TT=example.org=alice@SRSDOM
 *   SRS0=hhhh=TT=example.org=alice@fwd1.net
 *                                   -> SRS1=HHHHHH=fwd1.net==hhhh=TT=example.org=alice@SRSDOM
 *   SRS1=hhhh=fwd1.net==...@fwd2.net -> SRS1=HHHHHH=fwd1.net==...@SRSDOM
 *
 * HHHHHH: the first SRS_HASH_LEN characters of the base64 HMAC-SHA1, keyed
 * with srs.secret, of the lower-cased fields (SRS0: TT, domain, local;
 * SRS1: first host, the SRS0 part after "SRS0"); compared
 * case-insensitively, since some MTAs fold the case of local parts.
 * TT: the day (Unix time / 86400) modulo 1024 in two base32 characters;
 * an SRS0 address older than SRS_MAX_AGE_DAYS is refused. Reversing SRS0
 * gives the original sender; reversing SRS1 gives the SRS0 address at the
 * first forwarder, which reverses it in its turn. Pure; any thread.
 */
#ifndef MX_SRS_H
#define MX_SRS_H

#include <stddef.h>
#include <time.h>

#define SRS_HASH_LEN		6	/* base64 characters of the HMAC kept */
#define SRS_MAX_AGE_DAYS	21	/* validity window of an SRS0 address */
#define SRS_TIME_SLOTS		1024	/* days the timestamp counts, modulo */
#define SRS_DAY_SECS		86400
#define SRS_ADDR_MAX		512	/* a rewritten or reversed address */

enum srs_result {
	SRS_OK = 0,
	SRS_NOT_SRS,		/* the local part is no SRS0/SRS1 address */
	SRS_MALFORMED,		/* SRS tag, but not the format */
	SRS_BAD_HASH,		/* forged (or made with another secret) */
	SRS_EXPIRED,		/* SRS0 older than SRS_MAX_AGE_DAYS */
	SRS_TOO_LONG,		/* the result does not fit */
};

/* srs_forward - the envelope sender for forwarding a message from sender
 * ("" for <>): "" stays "", an address already under srs_domain stays
 * as it is, SRS0/SRS1 senders become SRS1, others SRS0. Writes out and
 * returns SRS_OK, or SRS_TOO_LONG / SRS_MALFORMED. */
enum srs_result srs_forward(const char *secret, const char *srs_domain,
    const char *sender, time_t now, char *out, size_t outlen);

/* srs_reverse - the address an SRS local part (of an address under our
 * srs.domain) stands for. check_time: refuse an expired SRS0 (at RCPT);
 * without it only the hash is checked (delivery of a bounce accepted
 * earlier). */
enum srs_result srs_reverse(const char *secret, const char *local,
    time_t now, int check_time, char *out, size_t outlen);

/* srs_is_srs - does the local part start with an SRS0/SRS1 tag? */
int srs_is_srs(const char *local);
/* srs_timestamp - the two-character TT of day now (for tests) */
void srs_timestamp(time_t now, char tt[3]);
const char *srs_result_name(enum srs_result);

#endif
