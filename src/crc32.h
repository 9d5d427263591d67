/* crc32.h - CRC-32 (IEEE 802.3), the checksum of spool file trailers */
#ifndef MX_CRC32_H
#define MX_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* mx_crc32 - continue crc (0 to start) over n octets; thread-safe */
uint32_t mx_crc32(uint32_t crc, const void *p, size_t n);

/* mx_crc32_portable - the same value without the CPU's carry-less
 * multiply, to check the fast path against (t/unit/test_crc32.c) */
uint32_t mx_crc32_portable(uint32_t crc, const void *p, size_t n);

#endif
