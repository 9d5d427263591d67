/* spool_journal.c - the spool's commit journal: one write and one flush
 * per group commit
 *
 * Why: a group commit used to sync every file it touched (fdatasync of
 * each new file and of each file given state records, fsync of queue/, or
 * one syncfs for bigger batches). On ext4 each fdatasync of a new file
 * writes its data, its inode and the parent directory and flushes the
 * device cache on its own: ten 4 KiB messages cost 2.1 ms to sync that
 * way, one 40 KiB write into a preallocated file and one fdatasync 0.12 ms
 * (bench/README.md). So the worker writes the files as before, appends
 * what it changed to this journal, and syncs only the journal. Files that
 * are delivered within seconds (most) never reach the disk at all.
 *
 * The journal is a sequence of generations in one file. A generation
 * starts with a header record at offset 0 and runs on in records of the
 * same generation number; each record carries its CRC. Replay reads until
 * the first record that does not check: everything after it is either
 * torn or of an older generation. When a generation is full, a checkpoint
 * (syncfs: every file and directory entry written so far is durable) lets
 * the next one start over at offset 0. The file grows by zeros written
 * ahead, so that a record's fdatasync never has to allocate blocks.
 * Records are in host byte order: the journal is read by the host that
 * wrote it.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32.h"
#include "dict.h"
#include "spool.h"
#include "spool_journal.h"
#include "util.h"

#define JOURNAL_NAME		"journal"
#define JOURNAL_MAGIC		0x314a584dU		/* "MXJ1" */
#define JOURNAL_MAX		(64 * 1024 * 1024)	/* a generation at most */
#define JOURNAL_GROW		(4 * 1024 * 1024)	/* zeros written ahead */
#define JOURNAL_COMMIT_MAX	(1024 * 1024)		/* bigger files sync alone */
#define JOURNAL_BATCH_KEEP	(4 * 1024 * 1024)	/* batch memory kept between
							 * group commits */
#define JOURNAL_REPLAY_SUFFIX	".journal"

enum jrec_type { JREC_HEADER = 1, JREC_COMMIT, JREC_APPEND, JREC_DONE };

struct jrec {
	uint32_t magic;
	uint32_t crc;			/* of the record with this field 0,
					 * payload included */
	uint64_t gen;
	uint32_t type;
	uint32_t len;			/* payload octets after the record */
	uint64_t off;			/* JREC_APPEND: where in the file */
	char id[SPOOL_ID_LEN];		/* not NUL-terminated */
};

static struct {
	int fd;
	uint64_t gen;
	off_t wpos;			/* where the next record goes */
	off_t alloc;			/* the file's size: zeros up to here */
} journal = { .fd = -1 };

static uint32_t
jrec_crc(const struct jrec *r, const char *payload)
{
	struct jrec h = *r;

	h.crc = 0;
	return mx_crc32(mx_crc32(0, &h, sizeof(h)), payload, r->len);
}

static void
jrec_fill(struct jrec *r, enum jrec_type type, const char *id, off_t off,
    const char *payload, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->magic = JOURNAL_MAGIC;
	r->gen = journal.gen;
	r->type = type;
	r->len = (uint32_t)len;
	r->off = (uint64_t)off;
	if (id)
		memcpy(r->id, id, SPOOL_ID_LEN);
	r->crc = jrec_crc(r, payload);
}

/* batch_room - the batch buffer can take n octets more (x-allocating:
 * the worker's own state, as the spool's) */
static char *
batch_room(struct journal_batch *b, size_t n)
{
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 64 * 1024;

		while (cap < b->len + n)
			cap *= 2;
		b->buf = xrealloc(b->buf, cap);
		b->cap = cap;
	}
	return b->buf + b->len;
}

static void
batch_add(struct journal_batch *b, enum jrec_type type, const char *id, off_t off,
    const char *payload, size_t len)
{
	char *p = batch_room(b, sizeof(struct jrec) + len);
	struct jrec r;

	if (len)
		memcpy(p + sizeof(r), payload, len);
	jrec_fill(&r, type, id, off, p + sizeof(r), len);
	memcpy(p, &r, sizeof(r));
	b->len += sizeof(r) + len;
}

size_t
journal_commit_max(void)
{
	return JOURNAL_COMMIT_MAX;
}

int
journal_add_commit(struct journal_batch *b, const char *id, const char *image,
    size_t len)
{
	if (len > JOURNAL_COMMIT_MAX)
		return -1;
	batch_add(b, JREC_COMMIT, id, 0, image, len);
	return 0;
}

int
journal_add_commit_fd(struct journal_batch *b, const char *id, int fd, size_t len)
{
	char *p;
	struct jrec r;

	if (len > JOURNAL_COMMIT_MAX)
		return -1;
	p = batch_room(b, sizeof(r) + len);
	if (mx_pread_full(fd, p + sizeof(r), len, 0) != (ssize_t)len)
		return -1;	/* the file is synced on its own */
	jrec_fill(&r, JREC_COMMIT, id, 0, p + sizeof(r), len);
	memcpy(p, &r, sizeof(r));
	b->len += sizeof(r) + len;
	return 0;
}

void
journal_add_append(struct journal_batch *b, const char *id, off_t off,
    const char *text, size_t len)
{
	batch_add(b, JREC_APPEND, id, off, text, len);
}

void
journal_add_done(struct journal_batch *b, const char *id)
{
	batch_add(b, JREC_DONE, id, 0, NULL, 0);
}

void
journal_batch_reset(struct journal_batch *b)
{
	if (b->cap > JOURNAL_BATCH_KEEP)
		journal_batch_free(b);
	b->len = 0;
}

void
journal_batch_free(struct journal_batch *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

/* journal_grow - zeros up to at least end, JOURNAL_GROW at a time: the
 * blocks are allocated and written once, so that a record's fdatasync
 * writes its data and nothing else */
static int
journal_grow(off_t end)
{
	static const char zeros[64 * 1024];
	off_t target = journal.alloc + JOURNAL_GROW;

	if (end <= journal.alloc)
		return 0;
	if (target < end)
		target = end;
	if (target > JOURNAL_MAX)
		target = JOURNAL_MAX;
	while (journal.alloc < target) {
		size_t n = sizeof(zeros);

		if ((off_t)n > target - journal.alloc)
			n = (size_t)(target - journal.alloc);
		if (mx_write_full(journal.fd, zeros, n, journal.alloc) < 0)
			return -1;
		journal.alloc += (off_t)n;
	}
	return 0;
}

/* journal_start - a new generation: its header at offset 0, durable */
static int
journal_start(uint64_t gen)
{
	struct jrec h;

	journal.gen = gen;
	jrec_fill(&h, JREC_HEADER, NULL, 0, NULL, 0);
	if (journal_grow((off_t)sizeof(h)) < 0 ||
	    mx_write_full(journal.fd, (const char *)&h, sizeof(h), 0) < 0 ||
	    fdatasync(journal.fd) < 0)
		return -1;
	journal.wpos = (off_t)sizeof(h);
	return 0;
}

int
journal_checkpoint(void)
{
	if (journal.fd < 0)
		return 0;	/* never opened: nothing to make durable */
	if (syncfs(journal.fd) < 0)
		return -1;
	return journal_start(journal.gen + 1);
}

int
journal_write(struct journal_batch *b, int *covered)
{
	*covered = 0;
	if (b->len == 0)
		return 0;
	if (journal.wpos + (off_t)b->len > JOURNAL_MAX) {
		/* the syncfs covers this batch's files: its records are not
		 * needed in the new generation */
		*covered = 1;
		return journal_checkpoint();
	}
	if (journal_grow(journal.wpos + (off_t)b->len) < 0 ||
	    mx_write_full(journal.fd, b->buf, b->len, journal.wpos) < 0)
		return -1;
	journal.wpos += (off_t)b->len;
	return 0;
}

int
journal_sync(void)
{
	return fdatasync(journal.fd);
}

int
journal_open(int dirfd)
{
	struct stat st;

	journal.fd = openat(dirfd, JOURNAL_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (journal.fd < 0)
		return -1;
	if (fstat(journal.fd, &st) < 0) {
		journal_close();
		return -1;
	}
	journal.alloc = st.st_size;
	journal.gen = 0;
	journal.wpos = 0;
	return 0;
}

void
journal_close(void)
{
	if (journal.fd >= 0)
		close(journal.fd);
	journal.fd = -1;
}

/* --- replay ------------------------------------------------------- */

static int
valid_id(const char *id)
{
	for (int i = 0; i < SPOOL_ID_LEN; i++)
		if (!isxdigit((unsigned char)id[i]))
			return 0;
	return 1;
}

/* replay_commit - queue/ID becomes the image, as a new file (never the
 * inode on disk, which a crash may have left linked under another name) */
static int
replay_commit(int queuefd, int incfd, const char *id, const char *image, size_t len)
{
	char tmp[SPOOL_ID_LEN + sizeof(JOURNAL_REPLAY_SUFFIX)];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s%s", id, JOURNAL_REPLAY_SUFFIX);
	fd = openat(incfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (mx_write_full(fd, image, len, 0) < 0 || close(fd) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return renameat(incfd, tmp, queuefd, id);
}

/* replay_append - state records at their offset; a file already gone
 * (removed after a checkpoint) has nothing to get them */
static int
replay_append(int queuefd, const char *id, off_t off, const char *text, size_t len,
    struct journal_replayed *st)
{
	int fd = openat(queuefd, id, O_WRONLY | O_CLOEXEC), rc;

	if (fd < 0) {
		if (errno != ENOENT)
			return -1;
		st->missing++;
		return 0;
	}
	rc = mx_write_full(fd, text, len, off);
	close(fd);
	return rc;
}

static void
jrec_id(const struct jrec *r, char id[SPOOL_ID_LEN + 1])
{
	memcpy(id, r->id, SPOOL_ID_LEN);
	id[SPOOL_ID_LEN] = '\0';
}

/* replay_one - one record; a message removed later in the generation
 * (gone) is not written again only to be removed */
static int
replay_one(int queuefd, int incfd, const struct jrec *r, const char *payload,
    struct dict *gone, struct journal_replayed *st)
{
	char id[SPOOL_ID_LEN + 1];

	jrec_id(r, id);
	st->records++;
	if (r->type != JREC_DONE && dict_get(gone, id) != NULL)
		return 0;
	switch (r->type) {
	case JREC_COMMIT:
		st->commits++;
		return replay_commit(queuefd, incfd, id, payload, r->len);
	case JREC_APPEND:
		st->appends++;
		return replay_append(queuefd, id, (off_t)r->off, payload, r->len, st);
	case JREC_DONE:
		st->removals++;
		return unlinkat(queuefd, id, 0) == 0 || errno == ENOENT ? 0 : -1;
	}
	return 0;
}

/* jrec_read - the record at pos, checked, with its payload (malloc'd);
 * 0 at the end of the generation */
static int
jrec_read(off_t pos, off_t size, uint64_t gen, struct jrec *r, char **payload)
{
	*payload = NULL;
	if (pos + (off_t)sizeof(*r) > size ||
	    pread(journal.fd, r, sizeof(*r), pos) != (ssize_t)sizeof(*r) ||
	    r->magic != JOURNAL_MAGIC || r->gen != gen ||
	    r->type < JREC_COMMIT || r->type > JREC_DONE ||
	    r->len > JOURNAL_COMMIT_MAX || pos + (off_t)sizeof(*r) + r->len > size ||
	    !valid_id(r->id))
		return 0;
	*payload = xmalloc(r->len + 1);
	if (pread(journal.fd, *payload, r->len, pos + (off_t)sizeof(*r)) != (ssize_t)r->len ||
	    jrec_crc(r, *payload) != r->crc) {
		free(*payload);
		*payload = NULL;
		return 0;
	}
	return 1;
}

/* replay_gone - first pass: the messages removed in the generation */
static struct dict *
replay_gone(uint64_t gen)
{
	struct dict *gone = dict_new();
	off_t pos = (off_t)sizeof(struct jrec);
	char id[SPOOL_ID_LEN + 1], *payload;
	struct jrec r;

	while (jrec_read(pos, journal.alloc, gen, &r, &payload)) {
		free(payload);
		if (r.type == JREC_DONE) {
			jrec_id(&r, id);
			dict_put(gone, id, gone);
		}
		pos += (off_t)sizeof(r) + r.len;
	}
	return gone;
}

int
journal_replay(int queuefd, int incfd, struct journal_replayed *st)
{
	struct jrec h, r;
	off_t pos = (off_t)sizeof(h);
	struct dict *gone;
	char *payload;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (journal.alloc < (off_t)sizeof(h) ||
	    pread(journal.fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) ||
	    h.magic != JOURNAL_MAGIC || h.type != JREC_HEADER || h.len != 0 ||
	    jrec_crc(&h, NULL) != h.crc)
		return journal_start(1);	/* new, or never started */
	gone = replay_gone(h.gen);
	while (rc == 0 && jrec_read(pos, journal.alloc, h.gen, &r, &payload)) {
		rc = replay_one(queuefd, incfd, &r, payload, gone, st);
		free(payload);
		pos += (off_t)sizeof(r) + r.len;
	}
	dict_free(gone, NULL);
	if (rc < 0)
		return -1;
	/* durable before the old generation is given up */
	if (st->records > 0 && syncfs(journal.fd) < 0)
		return -1;
	return journal_start(h.gen + 1);
}
