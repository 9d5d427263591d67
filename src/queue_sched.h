/* queue_sched.h - the queue's timetable: a min-heap of due times and the
 * retry arithmetic of delivery.retry_schedule / max_lifetime (pure code,
 * unit tested by t/unit/test_queue_sched.c)
 */
#ifndef MX_QUEUE_SCHED_H
#define MX_QUEUE_SCHED_H

#include <stddef.h>
#include <time.h>

#define QSCHED_NOT_QUEUED	((size_t)-1)

/* embedded in what is scheduled; the heap holds pointers to these */
struct qsched_node {
	time_t due;
	size_t idx;		/* place in the heap, QSCHED_NOT_QUEUED when out */
};

struct qsched_heap {
	struct qsched_node **v;
	size_t n, cap;
};

void qsched_init(struct qsched_heap *);
void qsched_free(struct qsched_heap *);
/* qsched_node_init - a node that is in no heap */
void qsched_node_init(struct qsched_node *);
int qsched_queued(const struct qsched_node *);
/* qsched_set - (re)schedule node at due: insert, or move it (O(log n)) */
void qsched_set(struct qsched_heap *, struct qsched_node *, time_t due);
/* qsched_remove - take node out (no-op when it is not in) */
void qsched_remove(struct qsched_heap *, struct qsched_node *);
/* qsched_top - the earliest node, or NULL */
struct qsched_node *qsched_top(const struct qsched_heap *);
/* qsched_pop - remove and return the earliest node, or NULL */
struct qsched_node *qsched_pop(struct qsched_heap *);

/* qsched_retry_delay - seconds to wait after the attempts-th failed
 * attempt (1 = the first): schedule[min(attempts - 1, n - 1)]; the last
 * value repeats. 0 when the schedule is empty. */
int qsched_retry_delay(const int *schedule, int n, int attempts);
/* qsched_end - the first second at which a message that arrived during
 * second arrival has surely lived lifetime seconds. The arrival is kept in
 * whole seconds, so the message may have come in up to a second after it:
 * counted from arrival itself, a lifetime ended up to a second early
 * (t/delivery_expire.t saw 2.0 s for 3 s). Never early, at most a second
 * late. */
time_t qsched_end(time_t arrival, int lifetime);
/* qsched_expired - has a message that arrived at arrival outlived lifetime? */
int qsched_expired(time_t now, time_t arrival, int lifetime);
/* qsched_next_attempt - when to try again after attempts failed attempts:
 * now + the retry delay, but no later than the end of the lifetime (so that
 * the last attempt happens then, and a failure there bounces) */
time_t qsched_next_attempt(time_t now, time_t arrival, int lifetime,
    const int *schedule, int n, int attempts);

#endif
