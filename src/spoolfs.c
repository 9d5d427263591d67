/* spoolfs.c - free and total space of the spool's file system, for the
 * admission checks (admission.c: MAIL gets 452 4.3.1 below queue_minfree)
 * and GET /metrics. One measure at a time: when statvfs has not come back
 * by the next tick, the tick is skipped rather than piling up jobs. */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "spoolfs.h"
#include "util.h"
#include "worker.h"

struct fs_probe {
	char *dir;
	int ok;
	uint64_t avail, size;
};

static struct {
	struct worker *worker;
	struct event *timer;
	struct fs_probe probe;		/* the worker's copy while busy */
	int busy;
	int ok;				/* a measure has succeeded */
	uint64_t avail, size;
} fs;

/* fs_job - worker: statvfs of the spool (a disk call, never on the loop) */
static void
fs_job(void *arg)
{
	struct fs_probe *p = arg;
	struct statvfs sv;

	p->ok = statvfs(p->dir, &sv) == 0;
	if (p->ok) {
		p->avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		p->size = (uint64_t)sv.f_blocks * sv.f_frsize;
	}
}

static void
fs_done(void *arg)
{
	struct fs_probe *p = arg;

	fs.busy = 0;
	if (p->ok) {
		fs.ok = 1;
		fs.avail = p->avail;
		fs.size = p->size;
	}
}

static void
fs_tick(evutil_socket_t fd, short ev, void *arg)
{
	if (fs.busy)
		return;
	fs.busy = 1;
	worker_submit(fs.worker, fs_job, fs_done, &fs.probe);
}

void
spoolfs_init(struct event_base *base, const char *spooldir)
{
	struct timeval tv = { SPOOLFS_INTERVAL, 0 };

	fs.probe.dir = xstrdup(spooldir);
	fs.worker = worker_new(base, "spoolfs");
	fs.timer = event_new(base, -1, EV_PERSIST, fs_tick, NULL);
	event_add(fs.timer, &tv);
	fs_tick(-1, 0, NULL);
}

void
spoolfs_close(void)
{
	if (fs.timer == NULL)
		return;
	event_free(fs.timer);
	worker_free(fs.worker);		/* a measure under way completes first */
	free(fs.probe.dir);
	memset(&fs, 0, sizeof(fs));
}

int
spoolfs_space(uint64_t *avail, uint64_t *size)
{
	if (!fs.ok)
		return -1;
	*avail = fs.avail;
	*size = fs.size;
	return 0;
}
