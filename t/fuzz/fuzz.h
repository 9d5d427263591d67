/* fuzz.h - what the libFuzzer targets share (t/fuzz/fuzz_*.c)
 *
 * Each target is one LLVMFuzzerTestOneInput over one parser that reads
 * outside input. A target checks the parser's own promises (lengths,
 * terminators, limits) with FUZZ_ASSERT, so a broken promise is a crash
 * libFuzzer keeps, not only a memory error.
 */
#ifndef MX_FUZZ_H
#define MX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #cond);				\
		abort();						\
	}								\
} while (0)

/* fuzz_cstring - a NUL-terminated copy of data (malloc'd: ASan sees overruns) */
static inline char *
fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
