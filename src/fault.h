/* fault.h - fault injection for tests (./configure --enable-fault-injection)
 *
 * A fault point names one call that can fail on demand: spool_write
 * (the spool's write(2) calls), spool_sync (its fdatasync/fsync/syncfs),
 * session_alloc (every allocation an SMTP session makes: the mx_try_
 * allocators of util.h and io_write's output buffer; the ERRNO is taken
 * but an allocation fails as malloc does, with ENOMEM).
 * MXRELAY_FAULTS="POINT=ERRNO[*COUNT][+SKIP],..." makes POINT fail with
 * ERRNO (ENOSPC, EIO, EDQUOT, ...) COUNT times (default: always) after
 * SKIP calls that succeed (default 0); "POINT=sleep:MS" makes the call
 * take MS milliseconds longer instead (a slow disk), then succeed. Without the configure switch the
 * checks compile to nothing, so a production build has no such hook.
 */
#ifndef MX_FAULT_H
#define MX_FAULT_H

#ifdef MX_FAULT_INJECTION
/* fault_hit - 0 when POINT should succeed now, else the errno to fail with */
int fault_hit(const char *point);
#define FAULT_HIT(point)	fault_hit(point)
#else
#define FAULT_HIT(point)	0
#endif

#endif
