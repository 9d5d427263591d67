/* queue_sched.c - min-heap of due times, retry arithmetic
 *
 * The queue keeps every message that has a recipient waiting in one
 * binary heap keyed by its earliest due time, so that a tick costs
 * O(log n) per due message instead of a scan of the whole queue.
 */
#include "autoconf.h"

#include <stdlib.h>

#include "queue_sched.h"
#include "util.h"

#define QSCHED_INITIAL_CAP	1024

void
qsched_init(struct qsched_heap *h)
{
	h->v = NULL;
	h->n = h->cap = 0;
}

void
qsched_free(struct qsched_heap *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->idx = QSCHED_NOT_QUEUED;
	free(h->v);
	qsched_init(h);
}

void
qsched_node_init(struct qsched_node *nd)
{
	nd->due = 0;
	nd->idx = QSCHED_NOT_QUEUED;
}

int
qsched_queued(const struct qsched_node *nd)
{
	return nd->idx != QSCHED_NOT_QUEUED;
}

/* place - put nd at slot i */
static void
place(struct qsched_heap *h, size_t i, struct qsched_node *nd)
{
	h->v[i] = nd;
	nd->idx = i;
}

/* sift_up - move the node at i towards the root while it is earlier */
static void
sift_up(struct qsched_heap *h, size_t i)
{
	struct qsched_node *nd = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (h->v[parent]->due <= nd->due)
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, nd);
}

/* sift_down - move the node at i towards the leaves while it is later */
static void
sift_down(struct qsched_heap *h, size_t i)
{
	struct qsched_node *nd = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1]->due < h->v[c]->due)
			c++;
		if (nd->due <= h->v[c]->due)
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, nd);
}

void
qsched_set(struct qsched_heap *h, struct qsched_node *nd, time_t due)
{
	time_t old = nd->due;

	nd->due = due;
	if (qsched_queued(nd)) {
		if (due < old)
			sift_up(h, nd->idx);
		else
			sift_down(h, nd->idx);
		return;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : QSCHED_INITIAL_CAP;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	place(h, h->n++, nd);
	sift_up(h, nd->idx);
}

void
qsched_remove(struct qsched_heap *h, struct qsched_node *nd)
{
	size_t i = nd->idx;
	struct qsched_node *last;

	if (!qsched_queued(nd))
		return;
	nd->idx = QSCHED_NOT_QUEUED;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	/* the moved node may belong above or below its new place */
	sift_up(h, i);
	sift_down(h, last->idx);
}

struct qsched_node *
qsched_top(const struct qsched_heap *h)
{
	return h->n ? h->v[0] : NULL;
}

struct qsched_node *
qsched_pop(struct qsched_heap *h)
{
	struct qsched_node *nd = qsched_top(h);

	if (nd)
		qsched_remove(h, nd);
	return nd;
}

int
qsched_retry_delay(const int *schedule, int n, int attempts)
{
	int i = attempts - 1;

	if (n <= 0)
		return 0;
	if (i < 0)
		i = 0;
	if (i > n - 1)
		i = n - 1;
	return schedule[i];
}

time_t
qsched_end(time_t arrival, int lifetime)
{
	return arrival + (time_t)lifetime + 1;
}

int
qsched_expired(time_t now, time_t arrival, int lifetime)
{
	return now >= qsched_end(arrival, lifetime);
}

time_t
qsched_next_attempt(time_t now, time_t arrival, int lifetime,
    const int *schedule, int n, int attempts)
{
	time_t next = now + qsched_retry_delay(schedule, n, attempts);
	time_t end = qsched_end(arrival, lifetime);

	if (next > end && end > now)
		next = end;
	return next;
}
