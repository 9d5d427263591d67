/* test_queue_sched.c - the queue's min-heap and retry arithmetic */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include "queue_sched.h"
#include "tap.h"

#define HEAP_N	5000

/* heap_ok - every parent is due no later than its children, idx agree */
static int
heap_ok(const struct qsched_heap *h)
{
	for (size_t i = 0; i < h->n; i++) {
		if (h->v[i]->idx != i)
			return 0;
		if (i > 0 && h->v[(i - 1) / 2]->due > h->v[i]->due)
			return 0;
	}
	return 1;
}

static void
test_retry(void)
{
	const int sched[] = { 60, 300, 900, 1800, 3600 };
	struct { int attempts; int want; } cases[] = {
		{ 1, 60 }, { 2, 300 }, { 3, 900 }, { 4, 1800 }, { 5, 3600 },
		{ 6, 3600 }, { 100, 3600 }, { 0, 60 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(qsched_retry_delay(sched, 5, cases[i].attempts),
		    cases[i].want, "retry delay after attempt n (last repeats)");
	is_int(qsched_retry_delay(sched, 0, 3), 0, "empty schedule: no wait");
	const int one[] = { 120 };
	is_int(qsched_retry_delay(one, 1, 7), 120, "one-step schedule repeats");

	/* lifetime 5 days; arrival at 1000 */
	ok(!qsched_expired(1000 + 432000 - 1, 1000, 432000), "not expired one second before");
	ok(!qsched_expired(1000 + 432000, 1000, 432000),
	    "not at arrival + lifetime: the arrival second may have ended just after the message");
	ok(qsched_expired(1000 + 432000 + 1, 1000, 432000), "expired a second later");
	is_int((long)qsched_next_attempt(2000, 1000, 432000, sched, 5, 1), 2060,
	    "next attempt: now + schedule[0]");
	is_int((long)qsched_next_attempt(1000 + 432000 - 100, 1000, 432000, sched, 5, 9),
	    1000 + 432000 + 1, "next attempt clamped to the end of the lifetime");
	is_int((long)qsched_next_attempt(5000, 1000, 100, sched, 5, 2), 5300,
	    "already expired: not clamped into the past");
}

static void
test_heap(void)
{
	struct qsched_heap h;
	struct qsched_node *nodes = calloc(HEAP_N, sizeof(*nodes));
	struct qsched_node *nd;
	time_t last = -1000;
	int sorted = 1, n = 0;

	qsched_init(&h);
	ok(qsched_top(&h) == NULL && qsched_pop(&h) == NULL, "empty heap");
	srand(42);
	for (int i = 0; i < HEAP_N; i++) {
		qsched_node_init(&nodes[i]);
		qsched_set(&h, &nodes[i], rand() % 100000);
	}
	ok(heap_ok(&h) && h.n == HEAP_N, "insert keeps the heap order");
	/* move a third of them, remove a third */
	for (int i = 0; i < HEAP_N; i += 3)
		qsched_set(&h, &nodes[i], rand() % 100000);
	ok(heap_ok(&h), "reschedule keeps the heap order");
	for (int i = 1; i < HEAP_N; i += 3)
		qsched_remove(&h, &nodes[i]);
	ok(heap_ok(&h), "remove keeps the heap order");
	ok(!qsched_queued(&nodes[1]) && qsched_queued(&nodes[0]), "queued flags");
	qsched_remove(&h, &nodes[1]);
	ok(heap_ok(&h), "removing a node that is out is a no-op");
	qsched_set(&h, &nodes[2], -5);
	ok(qsched_top(&h) == &nodes[2], "an earlier due time goes to the top");
	while ((nd = qsched_pop(&h)) != NULL) {
		if (nd->due < last)
			sorted = 0;
		last = nd->due;
		n++;
	}
	ok(sorted, "pop returns due times in order");
	is_int(n, HEAP_N - (HEAP_N + 1) / 3, "every remaining node popped once");
	qsched_set(&h, &nodes[0], 1);
	qsched_free(&h);
	ok(!qsched_queued(&nodes[0]), "qsched_free takes nodes out");
	free(nodes);
}

int
main(void)
{
	test_retry();
	test_heap();
	return done_testing();
}
