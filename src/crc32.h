/* crc32.h - CRC-32 (IEEE 802.3), the checksum of spool file trailers */
#ifndef MX_CRC32_H
#define MX_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* mx_crc32 - continue crc (0 to start) over n octets; thread-safe */
uint32_t mx_crc32(uint32_t crc, const void *p, size_t n);

#endif
