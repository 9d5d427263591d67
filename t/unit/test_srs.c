/* test_srs.c - SRS0/SRS1 rewriting and reversal
 *
 * The expected addresses were derived independently (Python's hmac and
 * base64 modules) from the definition in srs.h: HMAC-SHA1 keyed with the
 * secret over the lower-cased fields joined by NUL, base64, first 6
 * characters; TT = day modulo 1024 in base32.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "srs.h"
#include "tap.h"

#define SECRET	"s3cret"
#define DOM	"fwd.example.net"
#define NOW	1700000000		/* day 19675: TT "G3" */
#define DAY	SRS_DAY_SECS

static void
check_forward(const char *sender, const char *want, const char *name)
{
	char out[SRS_ADDR_MAX];
	enum srs_result r = srs_forward(SECRET, DOM, sender, NOW, out, sizeof(out));

	is_int(r, SRS_OK, name);
	is_str(out, want, name);
}

static enum srs_result
reverse(const char *local, time_t now, int check_time, char *out)
{
	return srs_reverse(SECRET, local, now, check_time, out, SRS_ADDR_MAX);
}

int
main(void)
{
	char out[SRS_ADDR_MAX], tt[3];

	/* timestamps */
	srs_timestamp(NOW, tt);
	is_str(tt, "G3", "timestamp of day 19675 is G3");
	srs_timestamp(0, tt);
	is_str(tt, "AA", "timestamp of day 0 is AA");
	srs_timestamp((time_t)1023 * DAY, tt);
	is_str(tt, "77", "timestamp of day 1023 is 77");
	srs_timestamp((time_t)1024 * DAY, tt);
	is_str(tt, "AA", "timestamps wrap after 1024 days");

	/* forward */
	check_forward("alice@example.org",
	    "SRS0=Yl9TaS=G3=example.org=alice@" DOM, "SRS0 of a plain sender");
	check_forward("SRS0=abcd=AB=example.org=alice@fwd1.net",
	    "SRS1=JCVf79=fwd1.net==abcd=AB=example.org=alice@" DOM,
	    "SRS0 sender becomes SRS1 (first host fwd1.net)");
	check_forward("SRS1=zzzz=fwd1.net==abcd=AB=example.org=alice@fwd2.net",
	    "SRS1=JCVf79=fwd1.net==abcd=AB=example.org=alice@" DOM,
	    "SRS1 sender keeps the first host, new hash");
	check_forward("", "", "<> stays <>");
	check_forward("x@FWD.example.net", "x@FWD.example.net",
	    "a sender under srs.domain stays as it is");

	/* reverse SRS0 */
	is_int(reverse("SRS0=Yl9TaS=G3=example.org=alice", NOW, 1, out), SRS_OK,
	    "SRS0 reverses");
	is_str(out, "alice@example.org", "to the original sender");
	is_int(reverse("srs0=yl9tas=g3=EXAMPLE.org=Alice", NOW, 1, out), SRS_OK,
	    "case-folded SRS0 still reverses (case-insensitive hash)");
	is_str(out, "Alice@EXAMPLE.org", "keeping the case it was given");
	is_int(reverse("SRS0=Yl9TaX=G3=example.org=alice", NOW, 1, out),
	    SRS_BAD_HASH, "wrong hash refused");
	is_int(reverse("SRS0=Yl9TaS=G3=example.org=bob", NOW, 1, out),
	    SRS_BAD_HASH, "changed local part refused");
	is_int(reverse("SRS0=Yl9TaS=G3=example.orga=lice", NOW, 1, out),
	    SRS_BAD_HASH, "characters moved between fields refused");
	is_int(reverse("SRS0=Yl9Ta=G3=example.org=alice", NOW, 1, out),
	    SRS_BAD_HASH, "short hash refused");
	is_int(reverse("SRS0=Yl9TaS=G3=example.org=alice", NOW + 21 * DAY, 1, out),
	    SRS_OK, "valid on day 21");
	is_int(reverse("SRS0=Yl9TaS=G3=example.org=alice", NOW + 22 * DAY, 1, out),
	    SRS_EXPIRED, "expired on day 22");
	is_int(reverse("SRS0=Yl9TaS=G3=example.org=alice", NOW + 22 * DAY, 0, out),
	    SRS_OK, "without the time check the hash alone counts");
	is_int(reverse("SRS0=Yl9TaS=G3=example.org=alice", NOW - 2 * DAY, 1, out),
	    SRS_EXPIRED, "a stamp from the future is from the last cycle: expired");
	is_int(reverse("SRS0=Yl9TaS=G4=example.org=alice", NOW, 1, out),
	    SRS_BAD_HASH, "changed timestamp refused");
	is_int(reverse("SRS0=Yl9TaS=G=example.org=alice", NOW, 1, out),
	    SRS_MALFORMED, "one-character timestamp malformed");
	is_int(reverse("SRS0=Yl9TaS=G3=example.org", NOW, 1, out),
	    SRS_MALFORMED, "no local part malformed");
	is_int(reverse("SRS0=nohash", NOW, 1, out), SRS_MALFORMED, "no fields malformed");
	is_int(reverse("alice", NOW, 1, out), SRS_NOT_SRS, "plain local part is not SRS");
	is_int(reverse("SRS2=x=y", NOW, 1, out), SRS_NOT_SRS, "SRS2 is not SRS");
	ok(srs_is_srs("SRS0+x") && srs_is_srs("srs1-x") && !srs_is_srs("SRS0x"),
	    "srs_is_srs: tags with =, +, - separators");
	is_int(srs_reverse("other", "SRS0=Yl9TaS=G3=example.org=alice", NOW, 1, out,
	    sizeof(out)), SRS_BAD_HASH, "another secret does not reverse it");

	/* reverse SRS1 */
	is_int(reverse("SRS1=JCVf79=fwd1.net==abcd=AB=example.org=alice", NOW, 1, out),
	    SRS_OK, "SRS1 reverses");
	is_str(out, "SRS0=abcd=AB=example.org=alice@fwd1.net",
	    "to the SRS0 address at the first forwarder");
	is_int(reverse("SRS1=JCVf79=fwd2.net==abcd=AB=example.org=alice", NOW, 1, out),
	    SRS_BAD_HASH, "SRS1 with another first host refused");
	is_int(reverse("SRS1=JCVf79=fwd1.net=", NOW, 1, out), SRS_MALFORMED,
	    "SRS1 without remainder malformed");

	/* round trips */
	{
		char fwd[SRS_ADDR_MAX], *at;
		const char *senders[] = { "bob@b.test", "x.y+z@sub.dom.test",
		    "a=b@c.test" };
		for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
			srs_forward(SECRET, DOM, senders[i], NOW, fwd, sizeof(fwd));
			at = strrchr(fwd, '@');
			*at = '\0';
			is_int(reverse(fwd, NOW + DAY, 1, out), SRS_OK, senders[i]);
			is_str(out, senders[i], "round trip");
		}
	}

	/* senders whose forward could never be reversed are refused (found
	 * by t/fuzz/fuzz_srs.c; the caller forwards with the original) */
	{
		static const char *bad[] = { "@x.test", "a@", "a@b=c.test",
		    "SRS0=@x.test", "SRS1=h=host=@x.test" };
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			is_int(srs_forward(SECRET, DOM, bad[i], NOW, out, sizeof(out)),
			    SRS_MALFORMED, bad[i]);
	}

	/* too long */
	{
		char big[400];
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		memcpy(big + 300, "@b.test", 8);
		is_int(srs_forward(SECRET, DOM, big, NOW, out, 64), SRS_TOO_LONG,
		    "result over the buffer: SRS_TOO_LONG");
	}
	return done_testing();
}
