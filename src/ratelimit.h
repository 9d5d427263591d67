/* ratelimit.h - connections per client address and period (filters.rate_limit) */
#ifndef MX_RATELIMIT_H
#define MX_RATELIMIT_H

#include <stdint.h>

#define RATELIMIT_MAX_CLIENTS	100000	/* addresses tracked at once */

struct ratelimit;

/* ratelimit_new - at most max connections per period seconds per key */
struct ratelimit *ratelimit_new(int max, int period);
void ratelimit_free(struct ratelimit *);
/* ratelimit_hit - count one connection of key at now_us (monotonic).
 * Returns 1 when it is over the limit (refuse it), else 0. A full table
 * is purged of expired windows; if still full, the client passes. */
int ratelimit_hit(struct ratelimit *, const char *key, uint64_t now_us);

#endif
