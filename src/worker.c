/* worker.c - one background thread per concern (store writes, spool fsync)
 *
 * Jobs are queued under a mutex; the thread runs them in order and moves each
 * to a done list, then activates an event so that the completion callback
 * runs on the event loop thread. Libevent must have been told to use pthreads
 * (evthread_use_pthreads) before the base was made.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "util.h"
#include "worker.h"

struct job {
	worker_job_fn job;
	worker_done_fn done;
	void *arg;
	struct job *next;
};

struct job_list {
	struct job *head, *tail;
};

struct worker {
	char name[32];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job_list todo;
	struct job_list done;
	int stopping;
	struct event *done_ev;
};

static void
list_push(struct job_list *l, struct job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
}

static struct job *
list_take_all(struct job_list *l)
{
	struct job *h = l->head;
	l->head = l->tail = NULL;
	return h;
}

/* worker_main - the thread: run jobs until told to stop and nothing is left */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *j;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->todo.head == NULL && w->stopping)
			break;
		j = w->todo.head;
		w->todo.head = j->next;
		if (w->todo.head == NULL)
			w->todo.tail = NULL;
		pthread_mutex_unlock(&w->lock);

		j->job(j->arg);

		pthread_mutex_lock(&w->lock);
		list_push(&w->done, j);
		pthread_mutex_unlock(&w->lock);
		/* outside the lock, so that the loop, woken, does not block
		 * on it (a second wake-up); a run of worker_run_done that
		 * finds the list already taken does nothing */
		event_active(w->done_ev, EV_READ, 0);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* worker_run_done - on the loop: completion callbacks in order */
static void
worker_run_done(evutil_socket_t fd, short ev, void *arg)
{
	struct worker *w = arg;
	struct job *j, *next;

	pthread_mutex_lock(&w->lock);
	j = list_take_all(&w->done);
	pthread_mutex_unlock(&w->lock);
	for (; j; j = next) {
		next = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
	}
}

struct worker *
worker_new(struct event_base *base, const char *name)
{
	struct worker *w = xcalloc(1, sizeof(*w));

	mx_strlcpy(w->name, name, sizeof(w->name));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->done_ev = event_new(base, -1, 0, worker_run_done, w);
	if (w->done_ev == NULL)
		fatalx("worker %s: event_new failed", name);
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		fatalx("worker %s: pthread_create failed", name);
	return w;
}

/* worker_queue - queue j, filled in */
static void
worker_queue(struct worker *w, struct job *j, worker_job_fn job,
    worker_done_fn done, void *arg)
{
	j->job = job;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	list_push(&w->todo, j);
	pthread_mutex_unlock(&w->lock);
	/* after the unlock: a thread woken while the lock is still held
	 * blocks on it at once and needs a second wake-up (two futex calls
	 * and two context switches more per job, measured: bench/README.md) */
	pthread_cond_signal(&w->cond);
}

void
worker_submit(struct worker *w, worker_job_fn job, worker_done_fn done, void *arg)
{
	worker_queue(w, xmalloc(sizeof(struct job)), job, done, arg);
}

int
worker_try_submit(struct worker *w, worker_job_fn job, worker_done_fn done,
    void *arg)
{
	struct job *j = mx_try_malloc(sizeof(*j));

	if (j == NULL)
		return -1;
	worker_queue(w, j, job, done, arg);
	return 0;
}

void
worker_free(struct worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	worker_run_done(-1, 0, w);
	event_free(w->done_ev);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}
