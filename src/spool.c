/* spool.c - durable message files with group commit, and the recovery scan
 *
 * The session writes the message into SPOOL/incoming/ID through a small
 * buffer (page cache only, no sync on the event loop). At the end of DATA
 * the message joins the pending list; the spool worker takes every pending
 * message at once, finishes each file (size field, trailer), renames them
 * into SPOOL/queue/ and makes the whole batch durable with one sync: the
 * group commit. The 250 reply is sent from the completion callback.
 * Format and recovery rules: doc/spool.md.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dict.h"
#include "log.h"
#include "spool.h"
#include "stats.h"
#include "util.h"
#include "worker.h"

#define SPOOL_WBUF		(64 * 1024)	/* write buffer per message */
#define SPOOL_SIZE_DIGITS	20		/* fixed-width size field */
#define SPOOL_SYNCFS_MIN	4		/* batches this big use one syncfs */
#define SPOOL_HDR_LINE_MAX	1024		/* longest header line we read back */

struct spool_msg {
	char id[SPOOL_ID_LEN + 1];
	int fd;
	int nrcpts;
	char **domains;			/* recipient domains, lower case */
	off_t size_off;			/* where the size digits are */
	off_t body_off;			/* first octet of the message */
	uint64_t size;
	uint32_t crc;
	int werr;			/* a write failed */
	char *wbuf;
	size_t wlen;
	spool_commit_fn cb;
	void *arg;
	int ok;
	struct spool_msg *next;
};

struct spool_batch {
	struct spool_msg *msgs;
};

static struct {
	char *dir;
	int dirfd, incfd, queuefd, corruptfd;
	struct worker *worker;
	pthread_mutex_t lock;
	struct spool_msg *pending;	/* newest first; reversed by the job */
	int64_t messages;
	struct dict *by_domain;		/* domain -> int64_t queued recipients (loop thread) */
} spool = { .dirfd = -1, .incfd = -1, .queuefd = -1, .corruptfd = -1,
	    .lock = PTHREAD_MUTEX_INITIALIZER };

static uint32_t crc_table[256];

/* crc_init - IEEE 802.3 CRC-32 table (the trailer checksum) */
static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t
crc_update(uint32_t crc, const char *p, size_t n)
{
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ (unsigned char)*p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* write_all - write(2) until done; -1 on error */
static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
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

/* rcpt_domain - the lower-cased domain of a recipient as written */
static char *
rcpt_domain(const char *rcpt)
{
	const char *at = strrchr(rcpt, '@');

	return mx_lower(xstrdup(at ? at + 1 : ""));
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

int64_t
spool_count_messages(void)
{
	return spool.messages;
}

/* spool_header - the envelope block; size digits are patched at commit */
static char *
spool_header(const char *id, const struct spool_envelope *e, size_t *size_pos)
{
	char *h = NULL;
	size_t cap = 512, len = 0;
	int i, n;

	h = xmalloc(cap);
#define HDR_ADD(...) do {						\
	for (;;) {							\
		n = snprintf(h + len, cap - len, __VA_ARGS__);		\
		if (n >= 0 && (size_t)n < cap - len)			\
			break;						\
		cap *= 2;						\
		h = xrealloc(h, cap);					\
	}								\
	len += (size_t)n;						\
} while (0)
	HDR_ADD("%s\nid %s\narrival %lld\nclient %s %d\nhelo %s\n",
	    SPOOL_MAGIC, id, (long long)time(NULL), e->client_addr,
	    e->client_port, e->helo);
	if (e->tls)
		HDR_ADD("tls %s\n", e->tls);
	HDR_ADD("sender <%s>\nbody %s\nsmtputf8 %d\nrcpts %d\n", e->sender,
	    e->body_8bit ? "8bitmime" : "7bit", e->smtputf8, e->nrcpts);
	for (i = 0; i < e->nrcpts; i++)
		HDR_ADD("rcpt %d <%s>\n", i, e->rcpts[i]);
	*size_pos = len + strlen("size ");
	HDR_ADD("size %0*d\n\n", SPOOL_SIZE_DIGITS, 0);
#undef HDR_ADD
	return h;
}

struct spool_msg *
spool_msg_open(const char *id, const struct spool_envelope *e)
{
	struct spool_msg *m;
	size_t size_pos;
	char *h;
	int fd;

	fd = openat(spool.incfd, id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return NULL;
	h = spool_header(id, e, &size_pos);
	if (write_all(fd, h, strlen(h)) < 0) {
		int save = errno;
		free(h);
		close(fd);
		unlinkat(spool.incfd, id, 0);
		errno = save;
		return NULL;
	}
	m = xcalloc(1, sizeof(*m));
	mx_strlcpy(m->id, id, sizeof(m->id));
	m->fd = fd;
	m->nrcpts = e->nrcpts;
	m->domains = xcalloc((size_t)e->nrcpts + 1, sizeof(char *));
	for (int i = 0; i < e->nrcpts; i++)
		m->domains[i] = rcpt_domain(e->rcpts[i]);
	m->size_off = (off_t)size_pos;
	m->body_off = (off_t)strlen(h);
	m->wbuf = xmalloc(SPOOL_WBUF);
	free(h);
	return m;
}

static int
spool_msg_flush(struct spool_msg *m)
{
	if (m->wlen && !m->werr && write_all(m->fd, m->wbuf, m->wlen) < 0)
		m->werr = errno ? errno : EIO;
	m->wlen = 0;
	return m->werr ? -1 : 0;
}

int
spool_msg_write(struct spool_msg *m, const char *p, size_t n)
{
	m->size += n;
	m->crc = crc_update(m->crc, p, n);
	while (n > 0 && !m->werr) {
		size_t room = SPOOL_WBUF - m->wlen, k = n < room ? n : room;
		memcpy(m->wbuf + m->wlen, p, k);
		m->wlen += k;
		p += k;
		n -= k;
		if (m->wlen == SPOOL_WBUF)
			spool_msg_flush(m);
	}
	return m->werr ? -1 : 0;
}

static void
spool_msg_free(struct spool_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	for (int i = 0; i < m->nrcpts; i++)
		free(m->domains[i]);
	free(m->domains);
	free(m->wbuf);
	free(m);
}

/* spool_msg_finish - worker: last octets, size digits, trailer */
static int
spool_msg_finish(struct spool_msg *m)
{
	char digits[SPOOL_SIZE_DIGITS + 1], trailer[64];

	if (spool_msg_flush(m) < 0)
		return -1;
	snprintf(digits, sizeof(digits), "%0*" PRIu64, SPOOL_SIZE_DIGITS, m->size);
	if (pwrite(m->fd, digits, SPOOL_SIZE_DIGITS, m->size_off) != SPOOL_SIZE_DIGITS)
		return -1;
	snprintf(trailer, sizeof(trailer), "%s crc32=%08" PRIx32 "\n", SPOOL_TRAILER, m->crc);
	return write_all(m->fd, trailer, strlen(trailer));
}

/* spool_sync_batch - make the renamed files and their directory entries
 * durable. Small batches: fdatasync each file plus one fsync of queue/;
 * larger ones: one syncfs(2) covers data and directory entries alike. */
static int
spool_sync_batch(struct spool_msg *list, int n)
{
	struct spool_msg *m;

	if (n >= SPOOL_SYNCFS_MIN)
		return syncfs(spool.queuefd);
	for (m = list; m; m = m->next)
		if (m->ok && fdatasync(m->fd) < 0)
			return -1;
	return fsync(spool.queuefd);
}

/* spool_commit_job - worker thread: take every pending message, commit them */
static void
spool_commit_job(void *arg)
{
	struct spool_batch *b = arg;
	struct spool_msg *m, *rev = NULL, *next;
	int n = 0, nok = 0;

	pthread_mutex_lock(&spool.lock);
	m = spool.pending;
	spool.pending = NULL;
	pthread_mutex_unlock(&spool.lock);
	for (; m; m = next) {		/* oldest first */
		next = m->next;
		m->next = rev;
		rev = m;
	}
	b->msgs = rev;
	for (m = rev; m; m = m->next) {
		n++;
		m->ok = spool_msg_finish(m) == 0 &&
		    renameat(spool.incfd, m->id, spool.queuefd, m->id) == 0;
		if (!m->ok) {
			log_warn("%s spool commit failed", m->id);
			unlinkat(spool.incfd, m->id, 0);
		} else
			nok++;
	}
	if (nok == 0)
		return;
	if (spool_sync_batch(rev, n) < 0) {
		log_warn("spool sync failed batch=%d", n);
		for (m = rev; m; m = m->next)
			if (m->ok) {
				m->ok = 0;
				unlinkat(spool.queuefd, m->id, 0);
			}
	}
	log_debug("spool group commit messages=%d", nok);
}

/* spool_commit_done - loop thread: acknowledge the batch */
static void
spool_commit_done(void *arg)
{
	struct spool_batch *b = arg;
	struct spool_msg *m, *next;

	for (m = b->msgs; m; m = next) {
		next = m->next;
		if (m->ok) {
			spool.messages++;
			mx_stats.queue_messages = spool.messages;
			mx_stats.queue_recipients += m->nrcpts;
			for (int i = 0; i < m->nrcpts; i++)
				domain_count_add(m->domains[i], 1);
		}
		if (m->cb)
			m->cb(m, m->ok, m->arg);
		spool_msg_free(m);
	}
	free(b);
}

void
spool_msg_commit(struct spool_msg *m, spool_commit_fn cb, void *arg)
{
	m->cb = cb;
	m->arg = arg;
	pthread_mutex_lock(&spool.lock);
	m->next = spool.pending;
	spool.pending = m;
	pthread_mutex_unlock(&spool.lock);
	/* One job per commit request; a job finding the list empty (an
	 * earlier job took its message along) costs nothing. */
	worker_submit(spool.worker, spool_commit_job, spool_commit_done,
	    xcalloc(1, sizeof(struct spool_batch)));
}

static void
spool_abort_job(void *arg)
{
	struct spool_msg *m = arg;

	close(m->fd);
	m->fd = -1;
	unlinkat(spool.incfd, m->id, 0);
}

static void
spool_abort_done(void *arg)
{
	spool_msg_free(arg);
}

void
spool_msg_abort(struct spool_msg *m)
{
	worker_submit(spool.worker, spool_abort_job, spool_abort_done, m);
}

void
spool_msg_detach(struct spool_msg *m)
{
	m->cb = NULL;
}

/* spool_check_file - recovery: is queue/NAME a complete message?
 * Returns its recipient count, or -1 when it is incomplete. */
static int
spool_check_file(const char *name)
{
	char line[SPOOL_HDR_LINE_MAX];
	char **domains = NULL;
	unsigned long long size = 0;
	int fd, rcpts = -1, have_size = 0, ndomains = 0, i;
	FILE *fp;
	long body;

	fd = openat(spool.queuefd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (fp = fdopen(fd, "r")) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (fgets(line, sizeof(line), fp) == NULL ||
	    strncmp(line, SPOOL_MAGIC "\n", sizeof(SPOOL_MAGIC)) != 0)
		goto bad;
	while (fgets(line, sizeof(line), fp) != NULL && strcmp(line, "\n") != 0) {
		if (sscanf(line, "rcpts %d", &rcpts) == 1)
			continue;
		if (strncmp(line, "rcpt ", 5) == 0) {
			line[strcspn(line, ">\n")] = '\0';
			domains = xrealloc(domains, sizeof(char *) * (size_t)(ndomains + 1));
			domains[ndomains++] = rcpt_domain(line);
			continue;
		}
		if (sscanf(line, "size %llu", &size) == 1)
			have_size = 1;
	}
	body = ftell(fp);
	if (!have_size || rcpts < 0 || body < 0 ||
	    fseeko(fp, (off_t)body + (off_t)size, SEEK_SET) != 0 ||
	    fgets(line, sizeof(line), fp) == NULL ||
	    strncmp(line, SPOOL_TRAILER " ", sizeof(SPOOL_TRAILER)) != 0)
		goto bad;
	fclose(fp);
	for (i = 0; i < ndomains; i++) {
		domain_count_add(domains[i], 1);
		free(domains[i]);
	}
	free(domains);
	return rcpts;
bad:
	fclose(fp);
	for (i = 0; i < ndomains; i++)
		free(domains[i]);
	free(domains);
	return -1;
}

/* spool_recover - start-up scan: count complete messages, set aside files
 * that never got their trailer (never acknowledged), empty incoming/. */
static int
spool_recover(void)
{
	DIR *d;
	struct dirent *de;
	int n, bad = 0;
	uint64_t t0 = mx_mono_us();

	if ((d = fdopendir(dup(spool.incfd))) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			unlinkat(spool.incfd, de->d_name, 0);
	closedir(d);

	if ((d = fdopendir(dup(spool.queuefd))) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((n = spool_check_file(de->d_name)) < 0) {
			/* Keep it for the operator rather than delete. */
			log_warnx("%s spool incomplete file moved to corrupt/", de->d_name);
			if (renameat(spool.queuefd, de->d_name, spool.corruptfd, de->d_name) < 0)
				log_warn("%s spool rename to corrupt/", de->d_name);
			bad++;
			continue;
		}
		spool.messages++;
		mx_stats.queue_recipients += n;
	}
	closedir(d);
	mx_stats.queue_messages = spool.messages;
	log_info("spool recovered messages=%" PRId64 " recipients=%" PRId64
	    " incomplete=%d elapsed_ms=%" PRIu64, spool.messages,
	    mx_stats.queue_recipients, bad, (mx_mono_us() - t0) / 1000);
	return 0;
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
	crc_init();
	spool.by_domain = dict_new();
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	spool.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool.dirfd < 0 || (spool.incfd = open_subdir("incoming")) < 0 ||
	    (spool.queuefd = open_subdir("queue")) < 0 ||
	    (spool.corruptfd = open_subdir("corrupt")) < 0) {
		snprintf(err, errlen, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	spool.dir = xstrdup(dir);
	if (spool_recover() < 0) {
		snprintf(err, errlen, "spool %s: recovery scan: %s", dir, strerror(errno));
		return -1;
	}
	spool.worker = worker_new(base, "spool");
	return 0;
}

void
spool_close(void)
{
	worker_free(spool.worker);	/* runs pending commits to the end */
	spool.worker = NULL;
	if (spool.incfd >= 0)
		close(spool.incfd);
	if (spool.queuefd >= 0)
		close(spool.queuefd);
	if (spool.corruptfd >= 0)
		close(spool.corruptfd);
	if (spool.dirfd >= 0)
		close(spool.dirfd);
	spool.incfd = spool.queuefd = spool.corruptfd = spool.dirfd = -1;
	free(spool.dir);
	spool.dir = NULL;
	dict_free(spool.by_domain, free);
	spool.by_domain = NULL;
}
