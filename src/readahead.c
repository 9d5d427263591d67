/* readahead.c - sequential reads of a spool file on a worker thread
 *
 * Two buffers per reader, used in turn: reads fill them 0, 1, 0, 1... and
 * the consumer takes them in the same order, so a chunk is never out of
 * sequence. At most one read of a reader is at the worker at a time; the
 * next starts when the previous finished and a buffer is free. A reader
 * freed while its read is in flight is released by that read's
 * completion.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "readahead.h"
#include "util.h"
#include "worker.h"

enum ra_buf_state {
	RA_FREE,	/* may be read into */
	RA_READING,	/* at the worker */
	RA_READY,	/* read, waiting for readahead_take */
	RA_LENT,	/* returned by readahead_take, until the next call */
};

struct ra_buf {
	enum ra_buf_state state;
	char *data;
	off_t off;		/* where this read starts */
	size_t want;
	ssize_t n;		/* octets read, -1 on error */
	int err;
};

struct readahead {
	int fd;
	off_t next_off;		/* the next read starts here */
	uint64_t left;		/* octets not requested yet */
	struct ra_buf buf[2];
	int read_idx, take_idx;	/* the buffer the next read / take uses */
	int inflight;		/* a read is at the worker */
	int waiting;		/* the consumer found nothing: call fn */
	int dead;		/* readahead_free ran during a read */
	const char *mem;	/* the whole range in memory: no reads */
	readahead_fn fn;
	void *arg;
};

/* one read at the worker */
struct ra_job {
	struct readahead *r;
	struct ra_buf *b;
};

static struct worker *reader;

void
readahead_init(struct event_base *base)
{
	reader = worker_new(base, "spool-reader");
}

void
readahead_close(void)
{
	worker_free(reader);	/* the completions free dead readers */
	reader = NULL;
}

/* ra_read_job - worker: fill the buffer, a short file is an error */
static void
ra_read_job(void *arg)
{
	struct ra_job *j = arg;
	struct ra_buf *b = j->b;
	ssize_t n = mx_pread_full(j->r->fd, b->data, b->want, b->off);

	/* a short file is an error too, with err 0 */
	b->err = n < 0 ? errno : 0;
	b->n = n == (ssize_t)b->want ? n : -1;
}

static void ra_release(struct readahead *r);
static void ra_read_done(void *arg);

/* ra_pump - start the next read when none runs and a buffer is free */
static void
ra_pump(struct readahead *r)
{
	struct ra_buf *b = &r->buf[r->read_idx];
	struct ra_job *j;

	if (r->inflight || r->left == 0 || b->state != RA_FREE)
		return;
	b->off = r->next_off;
	b->want = r->left < READAHEAD_CHUNK ? (size_t)r->left : READAHEAD_CHUNK;
	b->state = RA_READING;
	r->next_off += (off_t)b->want;
	r->left -= b->want;
	r->read_idx ^= 1;
	r->inflight = 1;
	j = xmalloc(sizeof(*j));
	j->r = r;
	j->b = b;
	worker_submit(reader, ra_read_job, ra_read_done, j);
}

/* ra_read_done - loop: the chunk is ready; read ahead, wake the consumer */
static void
ra_read_done(void *arg)
{
	struct ra_job *j = arg;
	struct readahead *r = j->r;
	struct ra_buf *b = j->b;

	free(j);
	r->inflight = 0;
	if (r->dead) {
		ra_release(r);
		return;
	}
	b->state = RA_READY;
	if (b->n >= 0)
		ra_pump(r);
	if (r->waiting) {
		r->waiting = 0;
		r->fn(r->arg);
	}
}

struct readahead *
readahead_new(int fd, off_t off, uint64_t len, const char *mem,
    readahead_fn fn, void *arg)
{
	struct readahead *r = xcalloc(1, sizeof(*r));

	r->fd = -1;
	r->left = len;
	if ((r->mem = mem) != NULL)
		return r;
	r->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (r->fd < 0)
		log_warn("readahead: dup");	/* the first read fails: EBADF */
	r->next_off = off;
	r->fn = fn;
	r->arg = arg;
	for (int i = 0; i < 2; i++)
		r->buf[i].data = xmalloc(READAHEAD_CHUNK);
	ra_pump(r);
	return r;
}

ssize_t
readahead_take(struct readahead *r, const char **p, int *err)
{
	struct ra_buf *b;
	ssize_t n;

	if (r->mem) {
		/* one chunk; a consumer asking for more than len finds the
		 * end of the "file" */
		if (r->left == 0) {
			*err = 0;
			return -1;
		}
		n = (ssize_t)r->left;
		r->left = 0;
		*p = r->mem;
		return n;
	}
	for (int i = 0; i < 2; i++)
		if (r->buf[i].state == RA_LENT)
			r->buf[i].state = RA_FREE;
	ra_pump(r);
	b = &r->buf[r->take_idx];
	if (b->state != RA_READY) {
		r->waiting = 1;
		return 0;
	}
	if (b->n < 0) {
		*err = b->err;
		return -1;
	}
	b->state = RA_LENT;
	r->take_idx ^= 1;
	*p = b->data;
	return b->n;
}

static void
ra_release(struct readahead *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf[0].data);
	free(r->buf[1].data);
	free(r);
}

void
readahead_free(struct readahead *r)
{
	if (r == NULL)
		return;
	if (r->inflight)
		r->dead = 1;	/* ra_read_done releases it */
	else
		ra_release(r);
}
