/* spoolfs.h - the spool's file system: free and total space, measured off
 * the loop every SPOOLFS_INTERVAL seconds (statvfs(2) on a worker thread:
 * a file system that hangs must not stop the loop). Loop thread only. */
#ifndef MX_SPOOLFS_H
#define MX_SPOOLFS_H

#include <stdint.h>

#include <event2/event.h>

#define SPOOLFS_INTERVAL	1	/* seconds between measures */

void spoolfs_init(struct event_base *, const char *spooldir);
void spoolfs_close(void);
/* spoolfs_space - the last measure: 0 with *avail (bytes available to us)
 * and *size set, or -1 before the first measure succeeded */
int spoolfs_space(uint64_t *avail, uint64_t *size);

#endif
