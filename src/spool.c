/* spool.c - durable message files with group commit, and the recovery scan
 *
 * The session fills a 64 KiB buffer; each full buffer goes to the writer
 * thread, which creates SPOOL/incoming/ID with the first one and appends
 * the rest, so that no disk call runs on the event loop. A session with
 * SPOOL_WRITES_MAX buffers in flight stops reading until one is written.
 * At the end of DATA the message joins the pending list; the commit worker
 * takes every pending message at once, finishes each file (last octets,
 * size field, trailer), renames them into SPOOL/queue/ and makes the whole
 * batch durable with one sync of the commit journal (spool_journal.c): the
 * group commit. The 250 reply is sent from the completion callback. Format
 * and recovery rules: doc/spool.md.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32.h"
#include "dict.h"
#include "fault.h"
#include "log.h"
#include "smtp_parse.h"
#include "spool.h"
#include "spool_journal.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

#define SPOOL_WBUF		(64 * 1024)	/* write buffer per message */
#define SPOOL_SIZE_DIGITS	20		/* fixed-width size field */
#define SPOOL_SYNCFS_MIN	4		/* batches this big use one syncfs */
#define SPOOL_DOMAIN_BUF	256		/* a domain name, NUL included */
#define SPOOL_READ_CHUNK	(64 * 1024)	/* first read of a file */
#define SPOOL_RECOVER_THREADS	32		/* readers of the recovery scan */
#define SPOOL_RECOVER_CHUNK	64		/* files a reader takes at a time */
#define SPOOL_FREE_MAX		256		/* delivered files kept for reuse */
#define SPOOL_RECYCLE_SIZE	(1024 * 1024)	/* larger ones are removed */
#define SPOOL_FREE_BYTES	(32 * 1024 * 1024) /* free/ holds no more disk */
#define SPOOL_WRITES_MAX	2		/* buffers of a message in flight
						 * before its session stops reading */
#define SPOOL_LAZY_MS		20		/* a change nobody waits for waits
						 * this long for a group commit */

struct spool_msg {
	char id[SPOOL_ID_LEN + 1];
	int fd;
	off_t reused_size;		/* a recycled file's old size, else 0 */
	size_t image_len;		/* written whole from wbuf: its length */
	int journaled;			/* worker: made durable by the journal */
	int nrcpts;
	char **rcpts;			/* canonical; handed to the queue */
	char **orcpts;			/* as written, NULL when the same */
	char *sender;
	time_t arrival;
	int body_8bit, smtputf8, route_mx;
	off_t rcpts_off;		/* where the "rcpts" line is */
	off_t size_off;			/* where the size digits are */
	off_t body_off;			/* first octet of the message */
	uint64_t size;
	uint32_t crc;
	int werr;			/* errno of the first failed write */
	char *wbuf;
	size_t wlen;
	char *spare;			/* a written buffer, for the next one */
	int inflight;			/* buffers at the writer (loop thread) */
	int commit_wait;		/* commit once the writer is done */
	spool_drain_fn drain_cb;	/* the session waits for the writer */
	void *drain_arg;
	spool_commit_fn cb;
	void *arg;
	int ok;
	/* spool_msg_rewrite: the message is written anew at commit */
	int rewrite;
	spool_rewrite_fn rw_fn;
	void (*rw_free)(void *);
	void *rw_arg;
	char *held;			/* spool_msg_hold: the reason */
	struct spool_msg *next;
	/* loop thread: the messages waiting for their commit, oldest first */
	uint64_t commit_us;
	struct spool_msg *cprev, *cnext;
};

/* one buffer on its way to the writer thread */
struct spool_chunk {
	struct spool_msg *m;
	char *buf;
	size_t len;
	int recycle;			/* a SPOOL_WBUF buffer: keep it */
};

/* a change to a queued file: state records appended, or the file removed */
enum spool_op_kind { SPOOL_OP_APPEND, SPOOL_OP_REMOVE };

struct spool_op {
	enum spool_op_kind kind;
	char id[SPOOL_ID_LEN + 1];
	char *text;
	size_t len;
	int ok;
	spool_op_fn cb;
	void *arg;
	struct spool_op *next;
};

struct spool_batch {
	struct spool_msg *msgs;
	struct spool_op *ops;
};

static struct {
	char *dir;
	int dirfd, incfd, queuefd, corruptfd, freefd;
	/* delivered files in free/, reused for new messages (worker threads) */
	pthread_mutex_t free_lock;
	struct {
		char id[SPOOL_ID_LEN + 1];
		off_t size;
	} free_files[SPOOL_FREE_MAX];
	int nfree;
	off_t free_bytes;		/* the sizes of the files in free/ */
	struct worker *worker;		/* group commits and changes */
	struct journal_batch jb;	/* the worker's records, reused */
	struct worker *writer;		/* message files being received */
	pthread_mutex_t lock;
	struct spool_msg *pending;	/* newest first; reversed by the job */
	struct spool_op *ops;		/* newest first, under lock too */
	int kicked;			/* a commit job is queued and has not
					 * taken the lists yet (under lock) */
	struct event *lazy_ev;		/* kicks for changes nobody waits for */
	int lazy_armed;			/* lazy_ev pending (loop thread) */
	int64_t messages;
	struct dict *by_domain;		/* domain -> int64_t queued recipients (loop thread) */
	spool_queued_fn queued_fn;	/* the queue manager's hook */
	void *queued_arg;
	int64_t open_msgs;		/* spool_msg_open not yet freed (loop) */
	struct spool_msg *chead, *ctail;	/* waiting for a commit (loop) */
	struct spool_entry **recovered;	/* found by the scan, until taken */
	size_t nrecovered;
} spool = { .dirfd = -1, .incfd = -1, .queuefd = -1, .corruptfd = -1,
	.freefd = -1, .free_lock = PTHREAD_MUTEX_INITIALIZER,
	    .lock = PTHREAD_MUTEX_INITIALIZER };

/* write_all - write(2) until done; -1 on error */
static int
write_all(int fd, const char *p, size_t n)
{
	int ferr = FAULT_HIT("spool_write");

	if (ferr) {
		errno = ferr;
		return -1;
	}
	return mx_write_full(fd, p, n, -1);
}

void
spool_new_id(char id[SPOOL_ID_LEN + 1])
{
	static uint64_t last;
	uint64_t now = mx_now_us();

	/* Microseconds keep IDs unique and sortable by arrival; never reuse
	 * one even if the clock steps back. Loop thread only. */
	if (now <= last)
		now = last + 1;
	last = now;
	snprintf(id, SPOOL_ID_LEN + 1, "%016" PRIX64, now);
}

/* domain_count_add - recipients queued for a domain (loop thread) */
static void
domain_count_add(const char *domain, int64_t n)
{
	int64_t *c = dict_get(spool.by_domain, domain);

	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		dict_put(spool.by_domain, domain, c);
	}
	*c += n;
	if (*c <= 0)
		free(dict_del(spool.by_domain, domain));
}

/* rcpt_count_add - count a recipient (as written) under its domain */
static void
rcpt_count_add(const char *rcpt, int64_t n)
{
	const char *at = strrchr(rcpt, '@');
	char dom[SPOOL_DOMAIN_BUF];

	/* add and remove go through here alike, so a cut name still balances */
	mx_strlcpy(dom, at ? at + 1 : "", sizeof(dom));
	domain_count_add(mx_lower(dom), n);
}

void
spool_rcpt_add(const char *rcpt)
{
	rcpt_count_add(rcpt, 1);
	mx_stats.queue_recipients++;
}

void
spool_rcpt_done(const char *rcpt)
{
	rcpt_count_add(rcpt, -1);
	if (mx_stats.queue_recipients > 0)
		mx_stats.queue_recipients--;
}

int64_t
spool_domain_recipients(const char *domain)
{
	char *d = mx_lower(xstrdup(domain));
	int64_t *c = dict_get(spool.by_domain, d);

	free(d);
	return c ? *c : 0;
}

const char *
spool_msg_id(const struct spool_msg *m)
{
	return m->id;
}

int
spool_msg_nrcpts(const struct spool_msg *m)
{
	return m->nrcpts;
}

int64_t
spool_count_messages(void)
{
	return spool.messages;
}

/* spool_header - the envelope block; size digits are patched at commit.
 * NULL when out of memory (a session's message: mx_try_ allocators) */
static char *
spool_header(const char *id, const struct spool_envelope *e, time_t arrival,
    size_t *rcpts_pos, size_t *size_pos)
{
	char *h = NULL, *bigger;
	size_t cap = 512, len = 0;
	int i, n;

	if ((h = mx_try_malloc(cap)) == NULL)
		return NULL;
#define HDR_ADD(...) do {						\
	for (;;) {							\
		n = snprintf(h + len, cap - len, __VA_ARGS__);		\
		if (n >= 0 && (size_t)n < cap - len)			\
			break;						\
		cap *= 2;						\
		if ((bigger = mx_try_realloc(h, cap)) == NULL) {	\
			free(h);					\
			return NULL;					\
		}							\
		h = bigger;						\
	}								\
	len += (size_t)n;						\
} while (0)
	HDR_ADD("%s\nid %s\narrival %lld\nclient %s %d\nhelo %s\n",
	    SPOOL_MAGIC, id, (long long)arrival, e->client_addr,
	    e->client_port, e->helo);
	if (e->tls)
		HDR_ADD("tls %s\n", e->tls);
	HDR_ADD("sender <%s>\nbody %s\nsmtputf8 %d\n", e->sender,
	    e->body_8bit ? "8bitmime" : "7bit", e->smtputf8);
	if (e->route_mx)
		HDR_ADD("route mx\n");
	*rcpts_pos = len;
	HDR_ADD("rcpts %d\n", e->nrcpts);
	for (i = 0; i < e->nrcpts; i++) {
		HDR_ADD("rcpt %d <%s>\n", i, e->rcpts[i]);
		if (e->orcpts != NULL && e->orcpts[i] != NULL)
			HDR_ADD("orcpt %d <%s>\n", i, e->orcpts[i]);
	}
	*size_pos = len + strlen("size ");
	HDR_ADD("size %0*d\n\n", SPOOL_SIZE_DIGITS, 0);
#undef HDR_ADD
	return h;
}

/*
 * Recycling. Creating a file costs an inode allocation, removing one an
 * inode release; on ext4 without a journal the allocator also skips every
 * inode released in the last minutes, so with thousands of messages a
 * second each create scanned thousands of inodes (perf: 60 % of the spool
 * thread in recently_deleted(), the spool thread the limit at 50 clients).
 * So a delivered file of at most SPOOL_RECYCLE_SIZE octets is renamed into
 * free/ (up to SPOOL_FREE_MAX of them, SPOOL_FREE_BYTES in all) and a new
 * message takes one over:
 * renamed to incoming/ID, written from offset 0, cut to its length when
 * finished. The same inode, no allocation; PostgreSQL recycles its WAL
 * segments for the same reason. free/ is emptied at start-up, so that a
 * crash cannot leave a file there that is also linked in queue/.
 * The size limit was 64 KiB at first; then every 100 KB message still
 * allocated an inode, and the writer thread, whose first buffer the
 * commit waits for, spent 86 % of its time in openat(2) (perf).
 */

/* spool_recycle - commit worker (the only thread that adds to the pool):
 * queue/ID is delivered; keep it in free/ for reuse. -1 when it is not
 * kept (too big, pool full by count or by octets): remove it. */
static int
spool_recycle(const char *id)
{
	struct stat st;
	int full;

	if (fstatat(spool.queuefd, id, &st, 0) < 0 || st.st_size > SPOOL_RECYCLE_SIZE ||
	    st.st_nlink != 1)
		return -1;
	pthread_mutex_lock(&spool.free_lock);
	full = spool.nfree == SPOOL_FREE_MAX ||
	    spool.free_bytes + st.st_size > SPOOL_FREE_BYTES;
	pthread_mutex_unlock(&spool.free_lock);
	if (full || renameat(spool.queuefd, id, spool.freefd, id) < 0)
		return -1;
	/* only this thread adds to the pool: it can only have shrunk since */
	pthread_mutex_lock(&spool.free_lock);
	mx_strlcpy(spool.free_files[spool.nfree].id, id, SPOOL_ID_LEN + 1);
	spool.free_files[spool.nfree++].size = st.st_size;
	spool.free_bytes += st.st_size;
	pthread_mutex_unlock(&spool.free_lock);
	return 0;
}

/* spool_reuse - writer or commit thread: a file of free/ as incoming/ID,
 * open for writing at offset 0; -1 when none is free (create one) */
static int
spool_reuse(const char *id, off_t *old_size)
{
	char name[SPOOL_ID_LEN + 1];
	struct stat st;
	int fd;

	pthread_mutex_lock(&spool.free_lock);
	if (spool.nfree == 0) {
		pthread_mutex_unlock(&spool.free_lock);
		return -1;
	}
	spool.nfree--;
	mx_strlcpy(name, spool.free_files[spool.nfree].id, sizeof(name));
	spool.free_bytes -= spool.free_files[spool.nfree].size;
	pthread_mutex_unlock(&spool.free_lock);
	if (renameat2(spool.freefd, name, spool.incfd, id, RENAME_NOREPLACE) < 0) {
		unlinkat(spool.freefd, name, 0);
		return -1;
	}
	if ((fd = openat(spool.incfd, id, O_RDWR | O_CLOEXEC)) < 0)
		goto fail;
	if (fstat(fd, &st) < 0 || st.st_nlink != 1) {
		close(fd);
		goto fail;
	}
	*old_size = st.st_size;
	return fd;
fail:
	unlinkat(spool.incfd, id, 0);
	return -1;
}

/* spool_msg_create - writer or commit thread: create incoming/ID at the
 * first write; after a failure only the errno is kept */
static void
spool_msg_create(struct spool_msg *m)
{
	if (m->fd >= 0 || m->werr)
		return;
	if ((m->fd = spool_reuse(m->id, &m->reused_size)) >= 0)
		return;
	m->fd = openat(spool.incfd, m->id, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (m->fd < 0)
		m->werr = errno;
}

/* spool_chunk_job - writer thread: create the file with the first
 * buffer, append the others */
static void
spool_chunk_job(void *arg)
{
	struct spool_chunk *c = arg;
	struct spool_msg *m = c->m;

	spool_msg_create(m);
	if (!m->werr && write_all(m->fd, c->buf, c->len) < 0)
		m->werr = errno ? errno : EIO;
}

static void spool_commit_enqueue(struct spool_msg *);

/* spool_chunk_done - loop: one buffer less in flight; a waiting commit
 * or session goes on */
static void
spool_chunk_done(void *arg)
{
	struct spool_chunk *c = arg;
	struct spool_msg *m = c->m;
	spool_drain_fn fn = m->drain_cb;

	if (c->recycle && m->spare == NULL)
		m->spare = c->buf;
	else
		free(c->buf);
	free(c);
	m->inflight--;
	if (m->commit_wait && m->inflight == 0) {
		m->commit_wait = 0;
		spool_commit_enqueue(m);
		return;
	}
	if (fn != NULL && m->inflight < SPOOL_WRITES_MAX) {
		m->drain_cb = NULL;
		fn(m->drain_arg);
	}
}

/* spool_chunk_submit - hand buf (malloc'd, taken over) to the writer;
 * -1 when out of memory (buf is then still the caller's) */
static int
spool_chunk_submit(struct spool_msg *m, char *buf, size_t len, int recycle)
{
	struct spool_chunk *c = mx_try_calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	c->m = m;
	c->buf = buf;
	c->len = len;
	c->recycle = recycle;
	if (worker_try_submit(spool.writer, spool_chunk_job, spool_chunk_done, c) < 0) {
		free(c);
		return -1;
	}
	m->inflight++;
	return 0;
}

static void spool_msg_free(struct spool_msg *);

struct spool_msg *
spool_msg_open(const char *id, const struct spool_envelope *e)
{
	struct spool_msg *m;
	size_t rcpts_pos, size_pos;
	time_t arrival = time(NULL);
	char *h;

	if ((h = spool_header(id, e, arrival, &rcpts_pos, &size_pos)) == NULL)
		return NULL;
	if ((m = mx_try_calloc(1, sizeof(*m))) == NULL) {
		free(h);
		return NULL;
	}
	spool.open_msgs++;
	mx_strlcpy(m->id, id, sizeof(m->id));
	m->fd = -1;
	m->rcpts = mx_try_calloc((size_t)e->nrcpts + 1, sizeof(char *));
	m->orcpts = mx_try_calloc((size_t)e->nrcpts + 1, sizeof(char *));
	if (m->rcpts == NULL || m->orcpts == NULL)
		goto fail;
	/* counted as they are copied: spool_msg_free frees that many */
	for (; m->nrcpts < e->nrcpts; m->nrcpts++) {
		int i = m->nrcpts;

		if ((m->rcpts[i] = mx_try_strdup(e->rcpts[i])) == NULL)
			goto fail;
		if (e->orcpts != NULL && e->orcpts[i] != NULL &&
		    (m->orcpts[i] = mx_try_strdup(e->orcpts[i])) == NULL) {
			m->nrcpts++;
			goto fail;
		}
	}
	if ((m->sender = mx_try_strdup(e->sender)) == NULL ||
	    (m->wbuf = mx_try_malloc(SPOOL_WBUF)) == NULL)
		goto fail;
	m->arrival = arrival;
	m->body_8bit = e->body_8bit;
	m->smtputf8 = e->smtputf8;
	m->route_mx = e->route_mx;
	m->rcpts_off = (off_t)rcpts_pos;
	m->size_off = (off_t)size_pos;
	m->body_off = (off_t)strlen(h);
	/* The envelope starts the first buffer: a message that fits in it
	 * (most do) is created and written whole by the commit job, with
	 * no hand-off to the writer thread. A bigger envelope (many long
	 * recipients) goes to the writer on its own. */
	if ((size_t)m->body_off <= SPOOL_WBUF / 2) {
		memcpy(m->wbuf, h, (size_t)m->body_off);
		m->wlen = (size_t)m->body_off;
		free(h);
	} else if (spool_chunk_submit(m, h, strlen(h), 0) < 0)
		goto fail;
	return m;
fail:
	/* nothing reached the writer: no file to remove */
	free(h);
	spool_msg_free(m);
	return NULL;
}

/* spool_msg_flush - commit worker: the octets still in the buffer (the
 * file is created here when they are all there is) */
static int
spool_msg_flush(struct spool_msg *m)
{
	spool_msg_create(m);
	if (m->wlen && !m->werr && write_all(m->fd, m->wbuf, m->wlen) < 0)
		m->werr = errno ? errno : EIO;
	m->wlen = 0;
	return m->werr ? -1 : 0;
}

int
spool_msg_write(struct spool_msg *m, const char *p, size_t n)
{
	m->size += n;
	m->crc = mx_crc32(m->crc, p, n);
	while (n > 0) {
		size_t room = SPOOL_WBUF - m->wlen, k = n < room ? n : room;
		memcpy(m->wbuf + m->wlen, p, k);
		m->wlen += k;
		p += k;
		n -= k;
		if (m->wlen == SPOOL_WBUF) {
			char *next = m->spare ? m->spare : mx_try_malloc(SPOOL_WBUF);

			if (next == NULL)
				return -1;
			if (spool_chunk_submit(m, m->wbuf, m->wlen, 1) < 0) {
				if (next != m->spare)
					free(next);
				return -1;
			}
			m->wbuf = next;
			m->spare = NULL;
			m->wlen = 0;
		}
	}
	return m->inflight >= SPOOL_WRITES_MAX;
}

void
spool_msg_on_drain(struct spool_msg *m, spool_drain_fn fn, void *arg)
{
	m->drain_cb = fn;
	m->drain_arg = arg;
}

int
spool_msg_error(const struct spool_msg *m)
{
	return m->werr;
}

int64_t
spool_msgs_open(void)
{
	return spool.open_msgs;
}

static void
spool_msg_free(struct spool_msg *m)
{
	spool.open_msgs--;
	if (m->fd >= 0)
		close(m->fd);
	for (int i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i]);
		free(m->orcpts[i]);
	}
	free(m->rcpts);
	free(m->orcpts);
	free(m->sender);
	free(m->wbuf);
	free(m->spare);
	if (m->rw_free)
		m->rw_free(m->rw_arg);
	free(m->held);
	free(m);
}

/* spool_msg_cut - a recycled file longer than the message: drop the old
 * octets after the trailer (they would read as state records) */
static int
spool_msg_cut(struct spool_msg *m)
{
	off_t end;

	if (m->reused_size == 0)
		return 0;
	if ((end = lseek(m->fd, 0, SEEK_CUR)) < 0 ||
	    (m->reused_size > end && ftruncate(m->fd, end) < 0)) {
		m->werr = errno ? errno : EIO;
		return -1;
	}
	return 0;
}

/* spool_msg_finish - commit worker: last octets, size digits, trailer.
 * A message still whole in its buffer (never given to the writer) gets
 * its digits and trailer there and is written with one write(2). */
static int
spool_msg_finish(struct spool_msg *m)
{
	char digits[SPOOL_SIZE_DIGITS + 1], trailer[64];
	int tlen;

	snprintf(digits, sizeof(digits), "%0*" PRIu64, SPOOL_SIZE_DIGITS, m->size);
	tlen = snprintf(trailer, sizeof(trailer), "%s crc32=%08" PRIx32 "\n",
	    SPOOL_TRAILER, m->crc);
	if (m->fd < 0 && !m->werr &&
	    (size_t)m->size_off + SPOOL_SIZE_DIGITS <= m->wlen &&
	    m->wlen + (size_t)tlen <= SPOOL_WBUF) {
		memcpy(m->wbuf + m->size_off, digits, SPOOL_SIZE_DIGITS);
		memcpy(m->wbuf + m->wlen, trailer, (size_t)tlen);
		m->wlen += (size_t)tlen;
		m->image_len = m->wlen;	/* the whole file, for the journal */
		return spool_msg_flush(m) < 0 ? -1 : spool_msg_cut(m);
	}
	if (spool_msg_flush(m) < 0)
		return -1;
	if (pwrite(m->fd, digits, SPOOL_SIZE_DIGITS, m->size_off) != SPOOL_SIZE_DIGITS ||
	    write_all(m->fd, trailer, (size_t)tlen) < 0) {
		m->werr = errno ? errno : EIO;	/* logged by the commit job */
		return -1;
	}
	return spool_msg_cut(m);
}

void
spool_msg_rewrite(struct spool_msg *m, const char *const *rcpts,
    const char *const *orcpts, int nrcpts, spool_rewrite_fn fn,
    void (*free_fn)(void *), void *arg)
{
	for (int i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i]);
		free(m->orcpts[i]);
	}
	free(m->rcpts);
	free(m->orcpts);
	m->nrcpts = nrcpts;
	m->rcpts = xcalloc((size_t)nrcpts + 1, sizeof(char *));
	m->orcpts = xcalloc((size_t)nrcpts + 1, sizeof(char *));
	for (int i = 0; i < nrcpts; i++) {
		m->rcpts[i] = xstrdup(rcpts[i]);
		if (orcpts != NULL && orcpts[i] != NULL)
			m->orcpts[i] = xstrdup(orcpts[i]);
	}
	if (m->rw_free)
		m->rw_free(m->rw_arg);
	m->rewrite = 1;
	m->rw_fn = fn;
	m->rw_free = free_fn;
	m->rw_arg = arg;
}

void
spool_msg_hold(struct spool_msg *m, const char *reason)
{
	char *r = xstrndup(reason, SPOOL_REPLY_MAX - 1);

	/* one line: control characters become spaces */
	for (char *p = r; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = ' ';
	free(m->held);
	m->held = r;
}

#define SPOOL_RELEASE	"release"

size_t
spool_release_record(char *buf, size_t len, time_t now)
{
	int n = snprintf(buf, len, "%s %lld\n", SPOOL_RELEASE, (long long)now);

	return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

#define SPOOL_RW_SUFFIX	".rw"
#define SPOOL_SIZE_LINE	(5 + SPOOL_SIZE_DIGITS + 2)	/* "size DIGITS\n\n" */

/* the new file of a rewrite as it is written */
struct spool_rw {
	int fd;
	uint64_t size;
	uint32_t crc;
};

static int
spool_rw_write(void *arg, const char *p, size_t n)
{
	struct spool_rw *w = arg;

	w->size += n;
	w->crc = mx_crc32(w->crc, p, n);
	return write_all(w->fd, p, n);
}

/* spool_rw_copy - octets [off, off+len) of fd into the new file */
static int
spool_rw_copy(struct spool_rw *w, int fd, off_t off, uint64_t len, int count)
{
	char buf[8192];
	ssize_t r;

	while (len > 0) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);

		if ((r = pread(fd, buf, n, off)) <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		if ((count ? spool_rw_write(w, buf, (size_t)r) :
		    write_all(w->fd, buf, (size_t)r)) < 0)
			return -1;
		off += r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* spool_msg_rewrite_file - worker: incoming/ID (finished) written anew as
 * incoming/ID.rw: the envelope up to its rcpts line as it was, the new
 * recipients, then the rewritten message; renamed into queue/ID */
static int
spool_msg_rewrite_file(struct spool_msg *m)
{
	char name[SPOOL_ID_LEN + sizeof(SPOOL_RW_SUFFIX)], line[SPOOL_ADDR_MAX + 64];
	char digits[SPOOL_SIZE_DIGITS + 1];
	struct spool_rw w = { -1, 0, 0 };
	off_t size_off;
	int n, rc = -1;

	snprintf(name, sizeof(name), "%s%s", m->id, SPOOL_RW_SUFFIX);
	w.fd = openat(spool.incfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (w.fd < 0 || spool_rw_copy(&w, m->fd, 0, (uint64_t)m->rcpts_off, 0) < 0)
		goto out;
	if (m->held) {
		char *l = NULL;
		int k = xasprintf(&l, "held %s\n", m->held);

		n = write_all(w.fd, l, (size_t)k);
		free(l);
		if (n < 0)
			goto out;
	}
	n = snprintf(line, sizeof(line), "rcpts %d\n", m->nrcpts);
	if (write_all(w.fd, line, (size_t)n) < 0)
		goto out;
	for (int i = 0; i < m->nrcpts; i++) {
		char *l = NULL;
		int k = m->orcpts[i] ? xasprintf(&l, "rcpt %d <%s>\norcpt %d <%s>\n",
		    i, m->rcpts[i], i, m->orcpts[i]) :
		    xasprintf(&l, "rcpt %d <%s>\n", i, m->rcpts[i]);

		if (write_all(w.fd, l, (size_t)k) < 0) {
			free(l);
			goto out;
		}
		free(l);
	}
	if ((size_off = lseek(w.fd, 0, SEEK_CUR)) < 0)
		goto out;
	n = snprintf(line, sizeof(line), "size %0*d\n\n", SPOOL_SIZE_DIGITS, 0);
	if (n != SPOOL_SIZE_LINE || write_all(w.fd, line, (size_t)n) < 0)
		goto out;
	if ((m->rw_fn ? m->rw_fn(m->rw_arg, m->fd, m->body_off, m->size,
	    spool_rw_write, &w) : spool_rw_copy(&w, m->fd, m->body_off,
	    m->size, 1)) < 0)
		goto out;
	snprintf(digits, sizeof(digits), "%0*" PRIu64, SPOOL_SIZE_DIGITS, w.size);
	if (pwrite(w.fd, digits, SPOOL_SIZE_DIGITS,
	    size_off + (off_t)strlen("size ")) != SPOOL_SIZE_DIGITS)
		goto out;
	n = snprintf(line, sizeof(line), "%s crc32=%08" PRIx32 "\n", SPOOL_TRAILER, w.crc);
	if (write_all(w.fd, line, (size_t)n) < 0 ||
	    renameat(spool.incfd, name, spool.queuefd, m->id) < 0)
		goto out;
	unlinkat(spool.incfd, m->id, 0);
	m->body_off = size_off + SPOOL_SIZE_LINE;
	m->size = w.size;
	m->crc = w.crc;
	close(m->fd);
	m->fd = w.fd;
	w.fd = -1;
	rc = 0;
out:
	if (rc < 0) {
		m->werr = errno ? errno : EIO;
		unlinkat(spool.incfd, name, 0);
	}
	if (w.fd >= 0)
		close(w.fd);
	return rc;
}

/* spool_msg_place - worker: finish incoming/ID and move it into queue/ */
static int
spool_msg_place(struct spool_msg *m)
{
	if (spool_msg_finish(m) < 0)
		return -1;
	if (m->rewrite)
		return spool_msg_rewrite_file(m);
	return renameat(spool.incfd, m->id, spool.queuefd, m->id);
}

/* spool_op_prepare - worker: apply one change before the batch sync and
 * note it in the journal, which makes it durable */
static void
spool_op_prepare(struct spool_op *op, struct journal_batch *jb)
{
	off_t end = 0;
	int fd;

	if (op->kind == SPOOL_OP_REMOVE) {
		op->ok = spool_recycle(op->id) == 0 ||
		    unlinkat(spool.queuefd, op->id, 0) == 0 || errno == ENOENT;
		if (op->ok)
			journal_add_done(jb, op->id);
		else
			log_warn("%s spool remove", op->id);
		return;
	}
	fd = openat(spool.queuefd, op->id, O_WRONLY | O_APPEND | O_CLOEXEC);
	op->ok = fd >= 0 && write_all(fd, op->text, op->len) == 0 &&
	    (end = lseek(fd, 0, SEEK_CUR)) >= 0;
	if (op->ok)
		journal_add_append(jb, op->id, end - (off_t)op->len, op->text, op->len);
	else
		log_warn("%s spool state append", op->id);
	if (fd >= 0)
		close(fd);
}

/* spool_msg_journal - worker: a placed message's file into the journal:
 * from its buffer when it was written whole from there, else read back.
 * -1 when it is too big for the journal (it is synced on its own). */
static int
spool_msg_journal(struct spool_msg *m, struct journal_batch *jb)
{
	struct stat st;

	if (m->image_len > 0 && !m->rewrite)
		m->journaled = journal_add_commit(jb, m->id, m->wbuf, m->image_len) == 0;
	else
		m->journaled = fstat(m->fd, &st) == 0 &&
		    (size_t)st.st_size <= journal_commit_max() &&
		    journal_add_commit_fd(jb, m->id, m->fd, (size_t)st.st_size) == 0;
	return m->journaled ? 0 : -1;
}

/* spool_sync_batch - make the batch durable. The journal holds the new
 * files it could take, the appended records and the removals: one write
 * and one fdatasync(2) of it (jsync). Files too big for it (nalone) are
 * synced on their own: fdatasync each and one fsync of queue/, or one
 * syncfs(2) when there are SPOOL_SYNCFS_MIN of them or more (which covers
 * the journal as well). */
static int
spool_sync_batch(struct spool_msg *list, int nalone, struct journal_batch *jb,
    int jsync)
{
	struct spool_msg *m;
	int covered, ferr = FAULT_HIT("spool_sync");

	if (ferr) {
		errno = ferr;
		return -1;
	}
	if (journal_write(jb, &covered) < 0)
		return -1;
	if (covered)
		return 0;
	if (nalone >= SPOOL_SYNCFS_MIN)
		return syncfs(spool.queuefd);
	for (m = list; m; m = m->next)
		if (m->ok && !m->journaled && fdatasync(m->fd) < 0)
			return -1;
	if (nalone > 0 && fsync(spool.queuefd) < 0)
		return -1;
	return jsync ? journal_sync() : 0;
}

/* spool_journal_only - worker: records nobody waits for (removals of
 * delivered files) are written, not synced: they ride on the next sync,
 * or the kernel's writeback. A crash before that brings the file back and
 * delivers again: at least once, as after a crash between the
 * downstream's 250 and our record (doc/spool.md). */
static void
spool_journal_only(struct journal_batch *jb)
{
	int covered;

	if (journal_write(jb, &covered) < 0)
		log_warn("spool journal write");
}

/* take_all - detach a newest-first list under the lock, oldest first */
#define TAKE_ALL(type, head, out) do {					\
	type *t_, *n_, *r_ = NULL;					\
	pthread_mutex_lock(&spool.lock);				\
	t_ = (head);							\
	(head) = NULL;							\
	pthread_mutex_unlock(&spool.lock);				\
	for (; t_; t_ = n_) {						\
		n_ = t_->next;						\
		t_->next = r_;						\
		r_ = t_;						\
	}								\
	(out) = r_;							\
} while (0)

/* spool_commit_job - worker thread: take every pending message and every
 * pending change, apply them, and make them durable with one sync */
static void
spool_commit_job(void *arg)
{
	struct spool_batch *b = arg;
	struct journal_batch *jb = &spool.jb;
	struct spool_msg *m;
	struct spool_op *op;
	int n = 0, nalone = 0, njournal = 0, nappend = 0, waiters = 0;

	pthread_mutex_lock(&spool.lock);
	spool.kicked = 0;
	pthread_mutex_unlock(&spool.lock);
	TAKE_ALL(struct spool_msg, spool.pending, b->msgs);
	TAKE_ALL(struct spool_op, spool.ops, b->ops);
	for (m = b->msgs; m; m = m->next) {
		n++;
		errno = 0;
		m->ok = spool_msg_place(m) == 0;
		if (!m->ok && !m->werr)
			m->werr = errno ? errno : EIO;
		if (!m->ok) {
			/* the writer thread's error, not this thread's errno */
			log_warnx("%s spool commit failed: %s", m->id, strerror(m->werr));
			unlinkat(spool.incfd, m->id, 0);
		} else if (spool_msg_journal(m, jb) == 0)
			njournal++;
		else
			nalone++;
	}
	for (op = b->ops; op; op = op->next) {
		spool_op_prepare(op, jb);
		if (op->ok && op->kind == SPOOL_OP_APPEND)
			nappend++;
		else if (op->ok && op->cb)
			waiters = 1;	/* a queue delete: its removal durable */
	}
	if (nalone + njournal + nappend == 0 && !waiters)
		spool_journal_only(jb);
	else if (spool_sync_batch(b->msgs, nalone, jb,
	    njournal + nappend > 0 || waiters) < 0) {
		int serr = errno ? errno : EIO;

		log_warnx("spool sync failed batch=%d changes=%d: %s", n, nappend,
		    strerror(serr));
		/* their commit records may be in the journal: cancel them */
		jb->len = 0;
		for (m = b->msgs; m; m = m->next)
			if (m->ok) {
				m->ok = 0;
				m->werr = serr;
				unlinkat(spool.queuefd, m->id, 0);
				journal_add_done(jb, m->id);
			}
		spool_journal_only(jb);
		for (op = b->ops; op; op = op->next)
			op->ok = 0;
	}
	journal_batch_reset(jb);
	if (b->msgs || b->ops)
		log_debug("spool group commit messages=%d alone=%d changes=%d",
		    njournal, nalone, nappend);
}

/* spool_msg_entry - the committed message as the queue sees it; takes the
 * envelope copies over from m */
static struct spool_entry *
spool_msg_entry(struct spool_msg *m)
{
	struct spool_entry *e = xcalloc(1, sizeof(*e));

	mx_strlcpy(e->id, m->id, sizeof(e->id));
	e->arrival = m->arrival;
	e->sender = m->sender;
	m->sender = NULL;
	e->body_8bit = m->body_8bit;
	e->smtputf8 = m->smtputf8;
	e->route_mx = m->route_mx;
	e->body_off = m->body_off;
	e->body_size = m->size;
	e->body_crc = m->crc;
	e->held = m->held;
	m->held = NULL;
	e->nrcpts = m->nrcpts;
	e->rcpts = xcalloc((size_t)m->nrcpts, sizeof(*e->rcpts));
	for (int i = 0; i < m->nrcpts; i++) {
		e->rcpts[i].addr = m->rcpts[i];
		e->rcpts[i].orig = m->orcpts[i];
		e->rcpts[i].parent = -1;
		m->rcpts[i] = m->orcpts[i] = NULL;
	}
	return e;
}

/* spool_commit_unlink - m's commit is over (loop thread) */
static void
spool_commit_unlink(struct spool_msg *m)
{
	if (m->cprev)
		m->cprev->cnext = m->cnext;
	else
		spool.chead = m->cnext;
	if (m->cnext)
		m->cnext->cprev = m->cprev;
	else
		spool.ctail = m->cprev;
	m->cprev = m->cnext = NULL;
}

uint64_t
spool_commit_lag_ms(void)
{
	if (spool.chead == NULL)
		return 0;
	return (mx_mono_us() - spool.chead->commit_us) / 1000;
}

/* spool_commit_done - loop thread: acknowledge the batch, hand the new
 * messages to the queue, report the changes */
static void
spool_commit_done(void *arg)
{
	struct spool_batch *b = arg;
	struct spool_msg *m, *next;
	struct spool_op *op, *onext;

	for (m = b->msgs; m; m = next) {
		next = m->next;
		spool_commit_unlink(m);
		if (m->ok) {
			spool.messages++;
			mx_stats.queue_messages = spool.messages;
			mx_stats.queue_recipients += m->nrcpts;
			for (int i = 0; i < m->nrcpts; i++)
				rcpt_count_add(m->rcpts[i], 1);
		}
		if (m->cb)
			m->cb(m, m->ok, m->arg);
		/* after the 250: the queue may start delivering at once */
		if (m->ok && spool.queued_fn)
			spool.queued_fn(spool_msg_entry(m), spool.queued_arg);
		spool_msg_free(m);
	}
	for (op = b->ops; op; op = onext) {
		onext = op->next;
		if (op->cb)
			op->cb(op->ok, op->arg);
		free(op->text);
		free(op);
	}
	free(b);
}

/* spool_kick_claim - with spool.lock held, after an item joined a list:
 * 1 when a commit job must be submitted (spool_kick), 0 when one is queued
 * that has not taken the lists yet (it will take this item along): one
 * thread hand-off per group, not per message */
static int
spool_kick_claim(void)
{
	if (spool.kicked)
		return 0;
	spool.kicked = 1;
	return 1;
}

/* spool_kick - submit the commit job claimed, after spool.lock is let go:
 * the worker, woken, takes the lists under that lock at once, and would
 * block on it and be woken a second time if the loop still held it */
static void
spool_kick(int claimed)
{
	if (claimed)
		worker_submit(spool.worker, spool_commit_job, spool_commit_done,
		    xcalloc(1, sizeof(struct spool_batch)));
}

/* spool_commit_enqueue - every buffer is written: join the next group */
static void
spool_commit_enqueue(struct spool_msg *m)
{
	int kick;

	m->commit_us = mx_mono_us();
	m->cnext = NULL;
	m->cprev = spool.ctail;
	if (spool.ctail)
		spool.ctail->cnext = m;
	else
		spool.chead = m;
	spool.ctail = m;
	pthread_mutex_lock(&spool.lock);
	m->next = spool.pending;
	spool.pending = m;
	kick = spool_kick_claim();
	pthread_mutex_unlock(&spool.lock);
	spool_kick(kick);
}

void
spool_msg_commit(struct spool_msg *m, spool_commit_fn cb, void *arg)
{
	m->cb = cb;
	m->arg = arg;
	m->drain_cb = NULL;
	if (m->inflight > 0)
		m->commit_wait = 1;
	else
		spool_commit_enqueue(m);
}

/* spool_lazy - loop: the changes nobody waits for have waited long
 * enough for a group commit to take them along */
static void
spool_lazy(evutil_socket_t fd, short ev, void *arg)
{
	int kick = 0;

	spool.lazy_armed = 0;
	pthread_mutex_lock(&spool.lock);
	if (spool.ops != NULL)
		kick = spool_kick_claim();
	pthread_mutex_unlock(&spool.lock);
	spool_kick(kick);
}

/* spool_op_submit - queue a change for the next group commit. One that
 * nobody waits for (no cb: a delivered message's removal, a deferral's
 * record) does not start a commit of its own: it joins the next one, or
 * one SPOOL_LAZY_MS later. At one client that halves the worker's
 * hand-offs per message (a commit, then a removal, each a round trip of
 * thread wake-ups). */
static void
spool_op_submit(enum spool_op_kind kind, const char *id, const char *text,
    size_t len, spool_op_fn cb, void *arg)
{
	struct timeval tv = { 0, SPOOL_LAZY_MS * 1000 };
	struct spool_op *op = xcalloc(1, sizeof(*op));
	int kick = 0;

	op->kind = kind;
	mx_strlcpy(op->id, id, sizeof(op->id));
	if (text) {
		op->text = xmalloc(len);
		memcpy(op->text, text, len);
		op->len = len;
	}
	op->cb = cb;
	op->arg = arg;
	pthread_mutex_lock(&spool.lock);
	op->next = spool.ops;
	spool.ops = op;
	if (cb != NULL || spool.lazy_ev == NULL)
		kick = spool_kick_claim();
	pthread_mutex_unlock(&spool.lock);
	spool_kick(kick);
	if (cb == NULL && spool.lazy_ev != NULL && !spool.lazy_armed) {
		spool.lazy_armed = 1;
		evtimer_add(spool.lazy_ev, &tv);
	}
}

void
spool_append_state(const char *id, const char *text, size_t len,
    spool_op_fn cb, void *arg)
{
	spool_op_submit(SPOOL_OP_APPEND, id, text, len, cb, arg);
}

void
spool_msg_remove(const char *id, spool_op_fn cb, void *arg)
{
	if (spool.messages > 0)
		spool.messages--;
	mx_stats.queue_messages = spool.messages;
	spool_op_submit(SPOOL_OP_REMOVE, id, NULL, 0, cb, arg);
}

void
spool_set_queued_hook(spool_queued_fn fn, void *arg)
{
	spool.queued_fn = fn;
	spool.queued_arg = arg;
}

/* spool_abort_job - writer thread, after the message's own buffers */
static void
spool_abort_job(void *arg)
{
	struct spool_msg *m = arg;

	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
		unlinkat(spool.incfd, m->id, 0);
	}
}

static void
spool_abort_done(void *arg)
{
	spool_msg_free(arg);
}

void
spool_msg_abort(struct spool_msg *m)
{
	/* the writer runs jobs in order: this one comes after the buffers
	 * in flight, and their completions run before it frees m */
	m->drain_cb = NULL;
	worker_submit(spool.writer, spool_abort_job, spool_abort_done, m);
}

void
spool_msg_detach(struct spool_msg *m)
{
	m->cb = NULL;
}

/* Reading message files back */

void
spool_entry_free(struct spool_entry *e)
{
	if (e == NULL)
		return;
	for (int i = 0; i < e->nrcpts && e->rcpts; i++) {
		free(e->rcpts[i].addr);
		free(e->rcpts[i].orig);
		free(e->rcpts[i].reply);
	}
	free(e->rcpts);
	free(e->held);
	free(e->sender);
	free(e->client);
	free(e->helo);
	free(e->tls);
	free(e);
}

/* angle_strip - the text between the first '<' and the last '>' */
static char *
angle_strip(const char *v, size_t n)
{
	const char *lt = memchr(v, '<', n), *gt = NULL;

	for (size_t i = n; i > 0; i--)
		if (v[i - 1] == '>') {
			gt = v + i - 1;
			break;
		}
	if (lt == NULL || gt == NULL || gt < lt)
		return NULL;
	return xstrndup(lt + 1, (size_t)(gt - lt - 1));
}

/* parse_num - a decimal number filling exactly n octets; -1 if not */
static int
parse_num(const char *v, size_t n, long long min, long long max, long long *out)
{
	long long x = 0;

	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (x > (LLONG_MAX - (v[i] - '0')) / 10)
			return -1;
		x = x * 10 + (v[i] - '0');
	}
	if (x < min || x > max)
		return -1;
	*out = x;
	return 0;
}

/* rcpt_canonical - a recipient line in canonical form. Files written
 * before the canonical form existed hold the form the client wrote: that
 * one becomes the original, so that they route like new files. */
static void
rcpt_canonical(struct spool_rcpt *r)
{
	char canon[SMTP_PATH_MAX + 1];

	if (smtp_address_canonical(r->addr, canon, sizeof(canon)) != PARSE_OK ||
	    strcmp(canon, r->addr) == 0)
		return;
	free(r->orig);
	r->orig = r->addr;
	r->addr = xstrdup(canon);
}

#define KEY_IS(k) (kl == sizeof(k) - 1 && memcmp(line, k, kl) == 0)

/* header_line - one "KEY VALUE" line of the envelope block into e;
 * *nr counts the rcpt lines so far. -1 when malformed. */
static int
header_line(struct spool_entry *e, const char *line, size_t n, int full, int *nr)
{
	const char *sp = memchr(line, ' ', n), *v;
	size_t kl, vl;
	long long x;

	if (sp == NULL)
		return 0;		/* unknown and valueless: ignore */
	kl = (size_t)(sp - line);
	v = sp + 1;
	vl = n - kl - 1;
	if (KEY_IS("id")) {
		if (vl != SPOOL_ID_LEN)
			return -1;
		memcpy(e->id, v, vl);
		e->id[vl] = '\0';
	} else if (KEY_IS("arrival")) {
		if (parse_num(v, vl, 0, LLONG_MAX, &x) < 0)
			return -1;
		e->arrival = (time_t)x;
	} else if (KEY_IS("sender")) {
		free(e->sender);
		if ((e->sender = angle_strip(v, vl)) == NULL)
			return -1;
	} else if (KEY_IS("body"))
		e->body_8bit = vl == 8 && memcmp(v, "8bitmime", 8) == 0;
	else if (KEY_IS("smtputf8"))
		e->smtputf8 = vl == 1 && *v == '1';
	else if (KEY_IS("route"))
		e->route_mx = vl == 2 && memcmp(v, "mx", 2) == 0;
	else if (KEY_IS("held")) {
		free(e->held);
		e->held = xstrndup(v, vl);
	}
	else if (KEY_IS("rcpts")) {
		if (e->rcpts || parse_num(v, vl, 1, SPOOL_RCPTS_MAX, &x) < 0)
			return -1;
		e->rcpts = xcalloc((size_t)x, sizeof(*e->rcpts));
		e->nrcpts = (int)x;
		for (int i = 0; i < e->nrcpts; i++)
			e->rcpts[i].parent = -1;
	} else if (KEY_IS("rcpt")) {
		const char *sp2 = memchr(v, ' ', vl);
		if (sp2 == NULL || e->rcpts == NULL || *nr >= e->nrcpts ||
		    parse_num(v, (size_t)(sp2 - v), 0, SPOOL_RCPTS_MAX, &x) < 0 ||
		    x != *nr)
			return -1;
		if ((e->rcpts[*nr].addr = angle_strip(sp2, vl - (size_t)(sp2 - v))) == NULL)
			return -1;
		rcpt_canonical(&e->rcpts[*nr]);
		(*nr)++;
	} else if (KEY_IS("orcpt")) {
		/* after its rcpt line: "orcpt INDEX <as written>" */
		const char *sp2 = memchr(v, ' ', vl);
		char *o;
		if (sp2 == NULL || e->rcpts == NULL ||
		    parse_num(v, (size_t)(sp2 - v), 0, SPOOL_RCPTS_MAX, &x) < 0 ||
		    x >= *nr ||
		    (o = angle_strip(sp2, vl - (size_t)(sp2 - v))) == NULL)
			return -1;
		free(e->rcpts[x].orig);
		e->rcpts[x].orig = o;
	} else if (KEY_IS("size")) {
		if (parse_num(v, vl, 0, LLONG_MAX, &x) < 0)
			return -1;
		e->body_size = (uint64_t)x;
	} else if (full && KEY_IS("client")) {
		free(e->client);
		e->client = xstrndup(v, vl);
	} else if (full && KEY_IS("helo")) {
		free(e->helo);
		e->helo = xstrndup(v, vl);
	} else if (full && KEY_IS("tls")) {
		free(e->tls);
		e->tls = xstrndup(v, vl);
	}
	return 0;
}
#undef KEY_IS

ssize_t
spool_parse_header(const char *buf, size_t len, struct spool_entry *e, int full)
{
	const char *p = buf, *end, *nl;
	size_t ml = strlen(SPOOL_MAGIC);
	int nr = 0, have_size = 0;

	/* work on complete blocks only: find the empty line first */
	for (end = buf; ; end = nl + 1) {
		if ((nl = memchr(end, '\n', len - (size_t)(end - buf))) == NULL)
			return 0;
		if (nl == end)
			break;
	}
	if ((size_t)(end - buf) < ml + 1 || memcmp(buf, SPOOL_MAGIC "\n", ml + 1) != 0)
		return -1;
	for (p = buf + ml + 1; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p) + 1);
		if ((size_t)(nl - p) > 5 && memcmp(p, "size ", 5) == 0)
			have_size = 1;
		if (header_line(e, p, (size_t)(nl - p), full, &nr) < 0)
			return -1;
	}
	if (!have_size || e->id[0] == '\0' || e->sender == NULL ||
	    e->rcpts == NULL || nr != e->nrcpts)
		return -1;
	e->body_off = (off_t)(end + 1 - buf);
	return (ssize_t)(end + 1 - buf);
}

ssize_t
spool_parse_trailer(const char *p, size_t len, uint32_t *crc)
{
	static const char pre[] = SPOOL_TRAILER " crc32=";
	size_t pl = sizeof(pre) - 1, tl = pl + 8 + 1;
	uint32_t c = 0;

	if (len < tl || memcmp(p, pre, pl) != 0 || p[pl + 8] != '\n')
		return -1;
	for (size_t i = pl; i < pl + 8; i++) {
		int d = p[i] >= '0' && p[i] <= '9' ? p[i] - '0' :
		    p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10 :
		    p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		c = c << 4 | (uint32_t)d;
	}
	*crc = c;
	return (ssize_t)tl;
}

static const char *const rstate_names[] = {
	[SPOOL_R_PENDING] = "pending",
	[SPOOL_R_DELIVERED] = "delivered",
	[SPOOL_R_DEFERRED] = "deferred",
	[SPOOL_R_BOUNCED] = "bounced",
	[SPOOL_R_DROPPED] = "dropped",
	[SPOOL_R_EXPANDED] = "expanded",
};

/* next_field - the next space-separated field of [*p, end) */
static int
next_field(const char **p, const char *end, const char **f, size_t *fl)
{
	const char *sp;

	if (*p >= end)
		return -1;
	sp = memchr(*p, ' ', (size_t)(end - *p));
	*f = *p;
	*fl = (size_t)((sp ? sp : end) - *p);
	*p = sp ? sp + 1 : end;
	return 0;
}

int
spool_parse_state(const char *line, size_t len, struct spool_state *st)
{
	const char *p = line, *end = line + len, *f;
	size_t fl, rl;
	long long idx, t, att, next;
	int k;

	memset(st, 0, sizeof(*st));
	if (next_field(&p, end, &f, &fl) < 0 || fl != 5 || memcmp(f, "state", 5) != 0 ||
	    next_field(&p, end, &f, &fl) < 0 ||
	    parse_num(f, fl, 0, SPOOL_RCPTS_MAX - 1, &idx) < 0 ||
	    next_field(&p, end, &f, &fl) < 0)
		return -1;
	for (k = SPOOL_R_DELIVERED; k <= SPOOL_R_DROPPED; k++)
		if (strlen(rstate_names[k]) == fl && memcmp(rstate_names[k], f, fl) == 0)
			break;
	if (k > SPOOL_R_DROPPED ||
	    next_field(&p, end, &f, &fl) < 0 || parse_num(f, fl, 0, LLONG_MAX, &t) < 0 ||
	    next_field(&p, end, &f, &fl) < 0 || parse_num(f, fl, 0, INT_MAX, &att) < 0 ||
	    next_field(&p, end, &f, &fl) < 0 || parse_num(f, fl, 0, LLONG_MAX, &next) < 0)
		return -1;
	st->index = (int)idx;
	st->state = (enum spool_rstate)k;
	st->time = (time_t)t;
	st->attempts = (int)att;
	st->next = (time_t)next;
	rl = (size_t)(end - p);
	if (rl >= sizeof(st->reply))
		rl = sizeof(st->reply) - 1;
	memcpy(st->reply, p, rl);
	st->reply[rl] = '\0';
	return 0;
}

size_t
spool_format_state(char *buf, size_t len, const struct spool_state *st)
{
	char reply[SPOOL_REPLY_MAX];
	size_t i;
	int n;

	for (i = 0; st->reply[i] && i < sizeof(reply) - 1; i++) {
		unsigned char c = (unsigned char)st->reply[i];
		reply[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	reply[i] = '\0';
	n = snprintf(buf, len, "state %d %s %lld %d %lld %s\n", st->index,
	    rstate_names[st->state], (long long)st->time, st->attempts,
	    (long long)st->next, reply);
	if (n < 0 || (size_t)n >= len)
		return 0;
	return (size_t)n;
}

static const char *const rkind_names[] = {
	[SPOOL_K_RCPT] = "rcpt",
	[SPOOL_K_LOCAL] = "local",
	[SPOOL_K_FWD] = "fwd",
	[SPOOL_K_LOOP] = "loop",
	[SPOOL_K_COPYL] = "copy-legacy",
	[SPOOL_K_COPYH] = "copy-hosted",
};

const char *
spool_rkind_name(enum spool_rkind k)
{
	return (unsigned)k < MX_ARRAY_LEN(rkind_names) ? rkind_names[k] : "?";
}

/* xtext_add - s in xtext (RFC 3461 4): '+', '=', controls, space and
 * non-ASCII octets as +HH, so that an address is one field */
static void
xtext_add(char **buf, size_t *len, size_t *cap, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = *len + strlen(s) * 3 + 2;

	if (need > *cap) {
		*cap = need * 2;
		*buf = xrealloc(*buf, *cap);
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 33 || c > 126 || c == '+' || c == '=') {
			(*buf)[(*len)++] = '+';
			(*buf)[(*len)++] = hex[c >> 4];
			(*buf)[(*len)++] = hex[c & 15];
		} else
			(*buf)[(*len)++] = (char)c;
	}
	(*buf)[*len] = '\0';
}

/* xtext_decode - a field back to its octets; NULL when malformed */
static char *
xtext_decode(const char *f, size_t fl)
{
	char *out = xmalloc(fl + 1);

	if (mx_xtext_decode(out, fl + 1, f, fl) < 0) {
		free(out);
		return NULL;
	}
	return out;
}

char *
spool_format_expand(const struct spool_expand *x, size_t *len)
{
	size_t cap = 128, n;
	char *buf = xmalloc(cap);

	n = (size_t)snprintf(buf, cap, "%s %d %d %lld %d", x->copy ? "copy" :
	    "expand", x->parent, x->first, (long long)x->time, x->n);
	for (int i = 0; i < x->n; i++) {
		const char *k = spool_rkind_name(x->v[i].kind);
		if (n + strlen(k) + 3 > cap) {
			cap = (n + strlen(k) + 3) * 2;
			buf = xrealloc(buf, cap);
		}
		n += (size_t)snprintf(buf + n, cap - n, " %s ", k);
		xtext_add(&buf, &n, &cap, x->v[i].addr);
	}
	if (n + 2 > cap)
		buf = xrealloc(buf, cap = n + 2);
	buf[n++] = '\n';
	buf[n] = '\0';
	*len = n;
	return buf;
}

void
spool_expand_free(struct spool_expand *x)
{
	for (int i = 0; i < x->n && x->v; i++)
		free(x->v[i].addr);
	free(x->v);
	memset(x, 0, sizeof(*x));
}

int
spool_parse_expand(const char *line, size_t len, struct spool_expand *x)
{
	const char *p = line, *end = line + len, *f;
	size_t fl;
	long long parent, first, t, n;
	int k;

	memset(x, 0, sizeof(*x));
	if (next_field(&p, end, &f, &fl) < 0)
		return -1;
	if (fl == 4 && memcmp(f, "copy", 4) == 0)
		x->copy = 1;
	else if (fl != 6 || memcmp(f, "expand", 6) != 0)
		return -1;
	if (next_field(&p, end, &f, &fl) < 0 ||
	    parse_num(f, fl, 0, SPOOL_RCPTS_MAX - 1, &parent) < 0 ||
	    next_field(&p, end, &f, &fl) < 0 ||
	    parse_num(f, fl, 0, SPOOL_RCPTS_MAX, &first) < 0 ||
	    next_field(&p, end, &f, &fl) < 0 || parse_num(f, fl, 0, LLONG_MAX, &t) < 0 ||
	    next_field(&p, end, &f, &fl) < 0 ||
	    parse_num(f, fl, 0, SPOOL_CHILDREN_MAX, &n) < 0)
		return -1;
	x->parent = (int)parent;
	x->first = (int)first;
	x->time = (time_t)t;
	x->v = xcalloc((size_t)n + 1, sizeof(*x->v));
	for (x->n = 0; x->n < n; x->n++) {
		struct spool_child *c = &x->v[x->n];
		if (next_field(&p, end, &f, &fl) < 0)
			goto bad;
		for (k = SPOOL_K_LOCAL; k <= SPOOL_K_COPYH; k++)
			if (strlen(rkind_names[k]) == fl && memcmp(rkind_names[k], f, fl) == 0)
				break;
		/* an expansion has no copies, copies are nothing else */
		if (k > SPOOL_K_COPYH || x->copy != spool_rkind_copy(k) ||
		    next_field(&p, end, &f, &fl) < 0 ||
		    fl == 0 || fl > SPOOL_ADDR_MAX * 3 ||
		    (c->addr = xtext_decode(f, fl)) == NULL)
			goto bad;
		c->kind = (enum spool_rkind)k;
	}
	if (p != end)
		goto bad;
	return 0;
bad:
	spool_expand_free(x);
	return -1;
}

/* apply_expand - an expand record: its parent is expanded, its children
 * join e with the indices the record names. A record that does not fit
 * (parent final already, indices not next) is skipped. A copy record
 * leaves its parent as it is (once per parent). */
static void
apply_expand(struct spool_entry *e, struct spool_expand *x)
{
	struct spool_rcpt *pr;

	if (x->parent >= e->nrcpts || x->first != e->nrcpts ||
	    e->nrcpts + x->n > SPOOL_RCPTS_MAX)
		return;
	pr = &e->rcpts[x->parent];
	if (x->copy) {
		if (pr->copied || pr->kind != SPOOL_K_RCPT)
			return;
		pr->copied = 1;
	} else if (pr->state == SPOOL_R_DELIVERED ||
	    pr->state == SPOOL_R_BOUNCED || pr->state == SPOOL_R_EXPANDED)
		return;
	else {
		pr->state = SPOOL_R_EXPANDED;
		pr->time = x->time;
		pr->next = 0;
	}
	e->rcpts = xrealloc(e->rcpts, (size_t)(e->nrcpts + x->n) * sizeof(*e->rcpts));
	for (int i = 0; i < x->n; i++) {
		struct spool_rcpt *c = &e->rcpts[e->nrcpts++];
		memset(c, 0, sizeof(*c));
		c->addr = x->v[i].addr;
		x->v[i].addr = NULL;
		c->kind = x->v[i].kind;
		c->parent = x->parent;
		c->state = SPOOL_R_PENDING;
	}
}

size_t
spool_apply_records(struct spool_entry *e, const char *p, size_t len)
{
	struct spool_state st;
	struct spool_expand x;
	const char *q = p, *nl;
	struct spool_rcpt *r;

	while ((nl = memchr(q, '\n', len - (size_t)(q - p))) != NULL) {
		/* a torn line left by a crash is skipped, not fatal */
		if (spool_parse_state(q, (size_t)(nl - q), &st) == 0 &&
		    st.index < e->nrcpts &&
		    e->rcpts[st.index].state != SPOOL_R_EXPANDED) {
			r = &e->rcpts[st.index];
			r->state = st.state;
			r->time = st.time;
			r->attempts = st.attempts;
			r->next = st.next;
			free(r->reply);
			r->reply = st.reply[0] ? xstrdup(st.reply) : NULL;
		} else if (spool_parse_expand(q, (size_t)(nl - q), &x) == 0) {
			apply_expand(e, &x);
			spool_expand_free(&x);
		} else if ((size_t)(nl - q) > sizeof(SPOOL_RELEASE) &&
		    memcmp(q, SPOOL_RELEASE " ", sizeof(SPOOL_RELEASE)) == 0) {
			free(e->held);		/* quarantine ended */
			e->held = NULL;
		}
		q = nl + 1;
	}
	return (size_t)(q - p);
}

/* spool_load_fd - parse an open message file: envelope (one read for
 * small files), trailer, state records. *good is where the last complete
 * record ends (a torn line after it is cut at recovery). NULL with errno
 * (EINVAL: malformed). */
static struct spool_entry *
spool_load_fd(int fd, int full, off_t *good, off_t *fsize)
{
	struct spool_entry *e = xcalloc(1, sizeof(*e));
	struct stat st;
	size_t cap, have, tlen;
	ssize_t hl, r, tl;
	char *buf = NULL, *tail;
	off_t toff;

	if (fstat(fd, &st) < 0)
		goto fail;
	cap = st.st_size < SPOOL_READ_CHUNK ? (size_t)st.st_size : SPOOL_READ_CHUNK;
	buf = xmalloc(cap + 1);
	if ((r = mx_pread_full(fd, buf, cap, 0)) < 0)
		goto fail;
	have = (size_t)r;
	while ((hl = spool_parse_header(buf, have, e, full)) == 0) {
		/* an empty file (a rename that reached the disk before its
		 * data, never acknowledged) has no header either */
		if (have < cap || cap == 0 || cap >= SPOOL_HEADER_MAX)
			goto bad;
		cap *= 2;
		buf = xrealloc(buf, cap + 1);
		if ((r = mx_pread_full(fd, buf + have, cap - have, (off_t)have)) < 0)
			goto fail;
		have += (size_t)r;
	}
	if (hl < 0)
		goto bad;
	toff = (off_t)hl + (off_t)e->body_size;
	if (toff > st.st_size || st.st_size - toff > SPOOL_RECORDS_MAX)
		goto bad;
	tlen = (size_t)(st.st_size - toff);
	if ((size_t)toff + tlen <= have)
		tail = buf + toff;
	else {
		free(buf);
		buf = xmalloc(tlen + 1);
		if ((r = mx_pread_full(fd, buf, tlen, toff)) < 0)
			goto fail;
		tlen = (size_t)r;
		tail = buf;
	}
	if ((tl = spool_parse_trailer(tail, tlen, &e->body_crc)) < 0)
		goto bad;
	*good = toff + tl + (off_t)spool_apply_records(e, tail + tl, tlen - (size_t)tl);
	*fsize = st.st_size;
	free(buf);
	return e;
bad:
	errno = EINVAL;
fail:
	free(buf);
	spool_entry_free(e);
	return NULL;
}

int
spool_open_message(const char *id)
{
	return openat(spool.queuefd, id, O_RDONLY | O_CLOEXEC);
}

struct spool_entry *
spool_read_entry(const char *id, int full)
{
	struct spool_entry *e;
	off_t good, size;
	int fd, save;

	if ((fd = spool_open_message(id)) < 0)
		return NULL;
	e = spool_load_fd(fd, full, &good, &size);
	save = errno;
	close(fd);
	errno = save;
	return e;
}

char *
spool_read_headers(int fd, off_t body_off, uint64_t body_size, size_t max,
    size_t *len)
{
	size_t n = body_size < max ? (size_t)body_size : max, end = 0;
	char *buf = xmalloc(n + 1);
	ssize_t r = mx_pread_full(fd, buf, n, body_off);

	if (r < 0) {
		free(buf);
		return NULL;
	}
	/* up to the empty line that ends the header section (CRLF CRLF), or
	 * the last complete line when the section is longer than max */
	for (size_t i = 0; i + 1 < (size_t)r; i++) {
		if (buf[i] != '\r' || buf[i + 1] != '\n')
			continue;
		end = i + 2;
		if (i + 3 < (size_t)r && buf[i + 2] == '\r' && buf[i + 3] == '\n')
			break;
	}
	buf[end] = '\0';
	*len = end;
	return buf;
}

/* spool_recover_file - recovery: read queue/NAME back; NULL when it is
 * incomplete. A torn record line at the end (crash mid-append) is cut. */
static struct spool_entry *
spool_recover_file(const char *name)
{
	struct spool_entry *e;
	off_t good, size;
	int fd;

	if ((fd = openat(spool.queuefd, name, O_RDWR | O_CLOEXEC)) < 0)
		return NULL;
	e = spool_load_fd(fd, 0, &good, &size);
	if (e && strcmp(e->id, name) != 0) {
		spool_entry_free(e);
		e = NULL;
	}
	if (e && good < size) {
		log_warnx("%s spool torn state record cut octets=%lld", name,
		    (long long)(size - good));
		if (ftruncate(fd, good) < 0)
			log_warn("%s spool truncate", name);
	}
	close(fd);
	return e;
}

/* one file of the recovery scan */
struct recover_slot {
	char *name;
	ino_t ino;
	struct spool_entry *e;		/* NULL: incomplete */
};

struct recover_scan {
	struct recover_slot *v;
	size_t n;
	size_t next;			/* next slot to take, under lock */
	pthread_mutex_t lock;
};

/* recover_thread - read files back until none is left. Cold caches make
 * the scan wait on the disk for each small file; several readers keep the
 * device queue full instead of reading one file at a time. */
static void *
recover_thread(void *arg)
{
	struct recover_scan *sc = arg;
	size_t i, end;

	for (;;) {
		pthread_mutex_lock(&sc->lock);
		i = sc->next;
		sc->next = i + SPOOL_RECOVER_CHUNK < sc->n ? i + SPOOL_RECOVER_CHUNK : sc->n;
		end = sc->next;
		pthread_mutex_unlock(&sc->lock);
		if (i >= end)
			return NULL;
		for (; i < end; i++)
			sc->v[i].e = spool_recover_file(sc->v[i].name);
	}
}

static int
slot_cmp(const void *a, const void *b)
{
	const struct recover_slot *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* recover_list - the names in queue/, in inode order (close to disk order) */
static int
recover_list(struct recover_scan *sc)
{
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	if ((d = fdopendir(dup(spool.queuefd))) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (sc->n == cap) {
			cap = cap ? cap * 2 : 1024;
			sc->v = xrealloc(sc->v, cap * sizeof(*sc->v));
		}
		sc->v[sc->n].name = xstrdup(de->d_name);
		sc->v[sc->n].ino = de->d_ino;
		sc->v[sc->n].e = NULL;
		sc->n++;
	}
	closedir(d);
	if (sc->n)
		qsort(sc->v, sc->n, sizeof(*sc->v), slot_cmp);
	return 0;
}

/* recover_keep - loop thread: count a recovered message, keep it for the
 * queue */
static void
recover_keep(struct spool_entry *e, size_t *cap)
{
	for (int i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == SPOOL_R_PENDING ||
		    e->rcpts[i].state == SPOOL_R_DEFERRED) {
			rcpt_count_add(e->rcpts[i].addr, 1);
			mx_stats.queue_recipients++;
		}
	if (spool.nrecovered == *cap) {
		*cap = *cap ? *cap * 2 : 1024;
		spool.recovered = xrealloc(spool.recovered, *cap * sizeof(e));
	}
	spool.recovered[spool.nrecovered++] = e;
	spool.messages++;
}

/* purge_dir - remove every file of a spool directory */
static int
purge_dir(int dirfd)
{
	struct dirent *de;
	DIR *d;

	if ((d = fdopendir(dup(dirfd))) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
	return 0;
}

/* spool_journal_replay - start-up, before the scan: the files the
 * journal made durable, rebuilt where the machine went down before the
 * kernel wrote them */
static int
spool_journal_replay(void)
{
	struct journal_replayed st;
	uint64_t t0 = mx_mono_us();

	if (journal_open(spool.dirfd) < 0 ||
	    journal_replay(spool.queuefd, spool.incfd, &st) < 0)
		return -1;
	log_info("spool journal replayed records=%ld messages=%ld appends=%ld "
	    "removals=%ld missing=%ld elapsed_ms=%" PRIu64, st.records, st.commits,
	    st.appends, st.removals, st.missing, (mx_mono_us() - t0) / 1000);
	return 0;
}

/* spool_recover - start-up scan: read every complete message back for the
 * queue, set aside files that never got their trailer (never
 * acknowledged), empty incoming/ and free/. */
static int
spool_recover(void)
{
	struct recover_scan sc;
	pthread_t th[SPOOL_RECOVER_THREADS];
	size_t cap = 0;
	int bad = 0, nth = 0;
	uint64_t t0 = mx_mono_us();

	if (purge_dir(spool.incfd) < 0 || purge_dir(spool.freefd) < 0)
		return -1;

	memset(&sc, 0, sizeof(sc));
	pthread_mutex_init(&sc.lock, NULL);
	if (recover_list(&sc) < 0) {
		pthread_mutex_destroy(&sc.lock);
		return -1;
	}
	while (nth < SPOOL_RECOVER_THREADS && (size_t)nth * SPOOL_RECOVER_CHUNK < sc.n &&
	    pthread_create(&th[nth], NULL, recover_thread, &sc) == 0)
		nth++;
	recover_thread(&sc);		/* this thread reads too */
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&sc.lock);

	for (size_t i = 0; i < sc.n; i++) {
		const char *name = sc.v[i].name;
		if (sc.v[i].e != NULL)
			recover_keep(sc.v[i].e, &cap);
		else {
			/* Keep it for the operator rather than delete. */
			log_warnx("%s spool incomplete file moved to corrupt/", name);
			if (renameat(spool.queuefd, name, spool.corruptfd, name) < 0)
				log_warn("%s spool rename to corrupt/", name);
			bad++;
		}
		free(sc.v[i].name);
	}
	free(sc.v);
	mx_stats.queue_messages = spool.messages;
	log_info("spool recovered messages=%" PRId64 " recipients=%" PRId64
	    " incomplete=%d elapsed_ms=%" PRIu64, spool.messages,
	    mx_stats.queue_recipients, bad, (mx_mono_us() - t0) / 1000);
	return 0;
}

size_t
spool_take_recovered(spool_queued_fn fn, void *arg)
{
	size_t n = spool.nrecovered;

	for (size_t i = 0; i < n; i++)
		fn(spool.recovered[i], arg);
	free(spool.recovered);
	spool.recovered = NULL;
	spool.nrecovered = 0;
	return n;
}

/* open_subdir - mkdir (0700) and open a directory below the spool */
static int
open_subdir(const char *name)
{
	if (mkdirat(spool.dirfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(spool.dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int
spool_init(struct event_base *base, const char *dir, char *err, size_t errlen)
{
	spool.by_domain = dict_new();
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	spool.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool.dirfd < 0 || (spool.incfd = open_subdir("incoming")) < 0 ||
	    (spool.queuefd = open_subdir("queue")) < 0 ||
	    (spool.corruptfd = open_subdir("corrupt")) < 0 ||
	    (spool.freefd = open_subdir("free")) < 0) {
		snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	spool.dir = xstrdup(dir);
	if (spool_journal_replay() < 0) {
		snprintf(err, errlen, "spool %s: journal replay: %s", dir, strerror(errno));
		return -1;
	}
	if (spool_recover() < 0) {
		snprintf(err, errlen, "spool %s: recovery scan: %s", dir, strerror(errno));
		return -1;
	}
	spool.worker = worker_new(base, "spool");
	spool.lazy_ev = evtimer_new(base, spool_lazy, NULL);
	spool.writer = worker_new(base, "spool-writer");
	return 0;
}

void
spool_close(void)
{
	/* the changes nobody waited for go with the last commit */
	if (spool.lazy_ev != NULL) {
		int kick;

		event_free(spool.lazy_ev);
		spool.lazy_ev = NULL;
		spool.lazy_armed = 0;
		pthread_mutex_lock(&spool.lock);
		kick = spool.ops != NULL && spool.worker != NULL && spool_kick_claim();
		pthread_mutex_unlock(&spool.lock);
		spool_kick(kick);
	}
	/* the writer first: a commit may still wait for its buffers */
	worker_free(spool.writer);
	spool.writer = NULL;
	worker_free(spool.worker);	/* runs pending commits to the end */
	spool.worker = NULL;
	/* everything durable in its own file: the next start replays nothing */
	if (spool.dirfd >= 0 && journal_checkpoint() < 0)
		log_warn("spool journal checkpoint");
	journal_close();
	journal_batch_free(&spool.jb);
	if (spool.incfd >= 0)
		close(spool.incfd);
	if (spool.queuefd >= 0)
		close(spool.queuefd);
	if (spool.corruptfd >= 0)
		close(spool.corruptfd);
	if (spool.freefd >= 0)
		close(spool.freefd);
	if (spool.dirfd >= 0)
		close(spool.dirfd);
	spool.incfd = spool.queuefd = spool.corruptfd = spool.freefd = spool.dirfd = -1;
	spool.nfree = 0;
	spool.free_bytes = 0;
	free(spool.dir);
	spool.dir = NULL;
	dict_free(spool.by_domain, free);
	spool.by_domain = NULL;
	for (size_t i = 0; i < spool.nrecovered; i++)
		spool_entry_free(spool.recovered[i]);
	free(spool.recovered);
	spool.recovered = NULL;
	spool.nrecovered = 0;
	spool.queued_fn = NULL;
	spool.messages = 0;
}
