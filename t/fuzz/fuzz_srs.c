/* fuzz_srs - SRS decoding (src/srs.c): the local part of a RCPT to our
 * srs.domain, from anyone on the internet. A decoded address must fit
 * and, encoded again, must decode to itself. */
#include "autoconf.h"

#include "fuzz.h"
#include "srs.h"

#define FUZZ_SECRET	"fuzz-secret-0123456789"
#define FUZZ_NOW	1795241198	/* a fixed day: the time check is exercised */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[SRS_ADDR_MAX], fwd[SRS_ADDR_MAX], back[SRS_ADDR_MAX], *local, *at;
	enum srs_result r;

	if (size > 2 * SRS_ADDR_MAX)
		return 0;
	local = fuzz_cstring(data, size);
	srs_is_srs(local);
	for (int check = 0; check <= 1; check++) {
		r = srs_reverse(FUZZ_SECRET, local, FUZZ_NOW, check, out, sizeof(out));
		srs_result_name(r);
		if (r == SRS_OK)
			FUZZ_ASSERT(strlen(out) < sizeof(out));
	}
	/* any sender not already ours: forward it, and the bounce address
	 * it gets is accepted back */
	if (strcasestr(local, "fwd.test") == NULL &&
	    srs_forward(FUZZ_SECRET, "fwd.test", local, FUZZ_NOW, fwd, sizeof(fwd)) == SRS_OK &&
	    local[0] != '\0' && (at = strrchr(fwd, '@')) != NULL &&
	    strcmp(at + 1, "fwd.test") == 0 && srs_is_srs(fwd)) {
		*at = '\0';
		r = srs_reverse(FUZZ_SECRET, fwd, FUZZ_NOW, 1, back, sizeof(back));
		FUZZ_ASSERT(r == SRS_OK);
	}
	free(local);
	return 0;
}
