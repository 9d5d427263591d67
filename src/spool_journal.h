/* spool_journal.h - the spool's commit journal (SPOOL/journal)
 *
 * A redo log of the spool's changes: a committed message file's whole
 * image, the state records appended to a file, the removal of a file.
 * A batch of changes is made durable by one write and one fdatasync(2) of
 * this preallocated file instead of a sync of every file it touched; the
 * message files themselves are written but not synced, and are rebuilt
 * from the journal at start-up when the machine went down before the
 * kernel wrote them. Used by the spool's commit worker only (one thread),
 * and by spool_init/spool_close. Format and rules: doc/spool.md, "Commit
 * journal".
 */
#ifndef MX_SPOOL_JOURNAL_H
#define MX_SPOOL_JOURNAL_H

#include <stddef.h>
#include <sys/types.h>

/* the records of one group commit, gathered before the single write */
struct journal_batch {
	char *buf;
	size_t len, cap;
};

/* what journal_replay did */
struct journal_replayed {
	long records, commits, appends, removals, missing;
};

/* journal_open - open (create) SPOOL/journal under dirfd. -1 with errno. */
int journal_open(int dirfd);
void journal_close(void);

/* journal_replay - start-up, before the recovery scan: apply the records
 * of the last generation to queue/ (files rebuilt through incoming/),
 * make them durable and start a new generation. -1 with errno. */
int journal_replay(int queuefd, int incfd, struct journal_replayed *);

/* a committed message file: its whole image, from its first octet */
int journal_add_commit(struct journal_batch *, const char *id, const char *image,
    size_t len);
/* the same, read back from fd (len octets from offset 0) */
int journal_add_commit_fd(struct journal_batch *, const char *id, int fd, size_t len);
/* state records appended to queue/ID at offset off */
void journal_add_append(struct journal_batch *, const char *id, off_t off,
    const char *text, size_t len);
/* queue/ID is gone (delivered, bounced or deleted) */
void journal_add_done(struct journal_batch *, const char *id);
/* journal_batch_reset - empty it for the next group commit, keeping its
 * memory unless a big one grew it past JOURNAL_BATCH_KEEP */
void journal_batch_reset(struct journal_batch *);
void journal_batch_free(struct journal_batch *);

/* journal_commit_max - the largest message file the journal takes; larger
 * ones are synced on their own */
size_t journal_commit_max(void);

/* journal_write - write the batch's records (not synced). When the
 * generation has no room left the journal is checkpointed first: one
 * syncfs(2), which also makes this batch's files durable (*covered = 1:
 * nothing else to sync). -1 with errno. */
int journal_write(struct journal_batch *, int *covered);
/* journal_sync - make everything written so far durable */
int journal_sync(void);
/* journal_checkpoint - syncfs(2), then a new, empty generation */
int journal_checkpoint(void);

#endif
