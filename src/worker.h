/* worker.h - a thread that runs jobs off the event loop and reports back on it */
#ifndef MX_WORKER_H
#define MX_WORKER_H

#include <event2/event.h>

struct worker;

/* run on the worker thread */
typedef void (*worker_job_fn)(void *arg);
/* run afterwards on the event loop thread */
typedef void (*worker_done_fn)(void *arg);

struct worker *worker_new(struct event_base *base, const char *name);
/* worker_submit - queue a job; done (may be NULL) runs on the loop when it finished.
 * Jobs run one at a time, in submission order. Thread-safe. */
void worker_submit(struct worker *, worker_job_fn job, worker_done_fn done, void *arg);
/* worker_try_submit - the same for a session's job: -1 when out of memory
 * (util.h mx_try_), and nothing was queued */
int worker_try_submit(struct worker *, worker_job_fn job, worker_done_fn done, void *arg);
/* worker_free - finish queued jobs, join the thread */
void worker_free(struct worker *);

#endif
