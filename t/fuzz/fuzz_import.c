/* fuzz_import - one line of an address table import (src/table_import.c,
 * SPEC 4): every format, for a fixed domain. An accepted line must name
 * an address of that domain, in lower case, with bounded destinations. */
#include "autoconf.h"

#include <ctype.h>

#include "fuzz.h"
#include "table_import.h"

static void
check_address(const char *a)
{
	FUZZ_ASSERT(strlen(a) <= IMPORT_ADDR_MAX);
	FUZZ_ASSERT(strchr(a, '@') != NULL);
	for (const char *p = a; *p; p++)
		FUZZ_ASSERT(!isupper((unsigned char)*p) && !isspace((unsigned char)*p) &&
		    *p != ',' && *p != '|');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char domain[] = "example.test";
	struct import_entry *e;
	char why[IMPORT_WHY_MAX], *line;
	const char *at;

	if (size > IMPORT_LINE_MAX + 16)
		return 0;
	line = fuzz_cstring(data, size);
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		abort();
	switch (import_parse_line(line, domain, e, why, sizeof(why))) {
	case IMPORT_OK:
		check_address(e->address);
		at = strrchr(e->address, '@');
		FUZZ_ASSERT(strcmp(at + 1, domain) == 0);
		FUZZ_ASSERT(e->ndests >= 0 && e->ndests <= STORE_MAX_DESTS);
		FUZZ_ASSERT(e->ncc >= 0 && e->ncc <= STORE_MAX_DESTS);
		for (int i = 0; i < e->ndests; i++)
			check_address(e->dests[i]);
		for (int i = 0; i < e->ncc; i++)
			check_address(e->cc[i]);
		break;
	case IMPORT_INVALID:
		FUZZ_ASSERT(why[0] != '\0');
		break;
	case IMPORT_SKIP:
		break;
	}
	import_domain_valid(line);
	free(e);
	free(line);
	return 0;
}
