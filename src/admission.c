/* admission.c - refuse new work, early and cheaply, when the relay is behind
 *
 * Under overload the worst answer is a 250 for mail we may lose, and the
 * next worst is a buffer that grows until the daemon is killed. Bounded
 * buffers (SPOOL_WRITES_MAX, limits.max_connections) hold memory; these
 * checks keep the work that cannot be done from starting at all:
 *
 * - the spool is behind: the oldest message waiting for its sync has waited
 *   ADMISSION_SPOOL_LAG_MS. A new session then gets 421 4.3.2 at the
 *   greeting, before it costs a session, a spool file or a buffer; those
 *   already in DATA finish, and the disk's throughput goes to them.
 * - the queue is full (limits.max_queued messages: the outbound side is
 *   behind, or the old server is down) or the spool's file system has less
 *   free space than limits.queue_minfree (or 1.5 x max_message_size, as
 *   Postfix's smtpd, and more than a SIZE= the client declared): MAIL gets
 *   452 4.3.1, so the sender keeps the message and tries again later.
 *
 * The free space is spoolfs.c's last measure (off the loop, every
 * second); until the first one the space is taken to be there.
 */
#include "autoconf.h"

#include "admission.h"
#include "log.h"
#include "spool.h"
#include "spoolfs.h"
#include "stats.h"

#define ADMISSION_SPOOL_LAG_MS	2000	/* a sync this late: the disk is saturated */

static int lagging;		/* for one log line per episode */

const char *
admission_session(void)
{
	uint64_t lag = spool_commit_lag_ms();

	if (lag < ADMISSION_SPOOL_LAG_MS) {
		if (lagging)
			log_info("spool caught up: new sessions admitted again");
		lagging = 0;
		return NULL;
	}
	if (!lagging)
		log_warnx("spool behind: oldest commit waiting %llu ms, new sessions "
		    "refused with 421 4.3.2", (unsigned long long)lag);
	lagging = 1;
	mx_stats.refused_spool_busy++;
	return "system busy, try again later";
}

/* admission_minfree - the free space a new transaction needs */
static uint64_t
admission_minfree(const struct config *cfg, uint64_t declared)
{
	uint64_t need = (uint64_t)cfg->max_message_size / 2 * 3;

	if ((uint64_t)cfg->queue_minfree > need)
		need = (uint64_t)cfg->queue_minfree;
	return need + declared;
}

const char *
admission_mail(const struct config *cfg, uint64_t declared)
{
	uint64_t avail, size;

	if (mx_stats.queue_messages >= cfg->max_queued) {
		mx_stats.refused_queue_full++;
		return "queue full, try again later";
	}
	if (spoolfs_space(&avail, &size) == 0 && avail < admission_minfree(cfg, declared)) {
		mx_stats.refused_disk_space++;
		return "insufficient system storage";
	}
	return NULL;
}
