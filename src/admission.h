/* admission.h - refuse new work when the spool or the queue is behind */
#ifndef MX_ADMISSION_H
#define MX_ADMISSION_H

#include <stdint.h>

#include "config.h"

/* admission_session - NULL when a new session may start, else why not
 * (421 4.3.2): the spool's syncs are behind */
const char *admission_session(void);
/* admission_mail - NULL when a new transaction may start, else why not
 * (452 4.3.1): the queue holds limits.max_queued messages, or the spool's
 * file system lacks the free space for DECLARED (SIZE=) octets more */
const char *admission_mail(const struct config *, uint64_t declared);

#endif
