/* readahead.h - sequential reads of a spool file on a worker thread
 *
 * The outbound client sends a message body from its spool file. Reading
 * it with pread(2) on the event loop would block every session behind a
 * slow disk (SPEC 9), so the reads run on one reader thread, double
 * buffered: while the client sends one chunk the next is being read.
 * Memory per reader is two READAHEAD_CHUNK buffers. Loop thread API.
 */
#ifndef MX_READAHEAD_H
#define MX_READAHEAD_H

#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>

#define READAHEAD_CHUNK	(64 * 1024)	/* octets per read */

struct readahead;

/* called on the loop when a chunk that readahead_take lacked arrived */
typedef void (*readahead_fn)(void *arg);

/* readahead_init - start the reader thread; readahead_close joins it */
void readahead_init(struct event_base *);
void readahead_close(void);

/* readahead_new - read len octets of fd from off, in order; fd is
 * duplicated, the caller keeps its own. mem, when not NULL, holds those len
 * octets already (read with the open, queue.c): they are served from it as
 * one chunk, with no reader thread; mem must outlive r. */
struct readahead *readahead_new(int fd, off_t off, uint64_t len,
    const char *mem, readahead_fn fn, void *arg);
/* readahead_take - the next chunk: its length with *p set (valid until
 * the next call on r); 0 when it is not read yet (fn runs once it is);
 * -1 on a read error or a file shorter than len, with *err the errno
 * (0 for the short file). */
ssize_t readahead_take(struct readahead *r, const char **p, int *err);
/* readahead_free - stop; a read in flight finishes and is thrown away */
void readahead_free(struct readahead *r);

#endif
