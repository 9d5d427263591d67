/* accept_pause.c - listeners out of descriptors or memory stop accepting
 * for a while
 *
 * Why: when accept(2) fails for want of descriptors (EMFILE, ENFILE) or
 * kernel memory (ENOBUFS, ENOMEM), the connection stays queued and the
 * listening socket stays readable, so the event loop calls the listener
 * again at once: 100 % CPU for as long as the shortage lasts, which is
 * exactly when the loop is needed to finish the sessions that would free
 * descriptors. So every listener of the service is disabled and enabled
 * again after a pause that doubles while the shortage lasts. The SMTP
 * listeners had this from the start; the control socket's did not, and
 * one `relayctl status` while out of descriptors spun the loop (t/emfile.t).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "accept_pause.h"
#include "log.h"
#include "util.h"

struct accept_pause {
	struct event *timer;
	struct evconnlistener **l;
	int n;
	int ms;				/* the next pause; 0: not pausing */
	int stopped;
	char *what;
};

static void
accept_pause_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct accept_pause *p = arg;

	if (p->stopped)
		return;
	log_info("%s resumed", p->what);
	for (int i = 0; i < p->n; i++)
		evconnlistener_enable(p->l[i]);
}

struct accept_pause *
accept_pause_new(struct event_base *base, const char *what)
{
	struct accept_pause *p = xcalloc(1, sizeof(*p));

	p->what = xstrdup(what);
	if ((p->timer = evtimer_new(base, accept_pause_resume, p)) == NULL)
		fatalx("evtimer_new failed");
	return p;
}

void
accept_pause_watch(struct accept_pause *p, struct evconnlistener *l)
{
	p->l = xrealloc(p->l, (size_t)(p->n + 1) * sizeof(*p->l));
	p->l[p->n++] = l;
}

void
accept_pause_error(struct accept_pause *p)
{
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval tv;

	if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM) {
		log_warnx("%s: %s", p->what, strerror(err));
		return;
	}
	p->ms = p->ms == 0 ? ACCEPT_PAUSE_MIN_MS : p->ms * 2;
	if (p->ms > ACCEPT_PAUSE_MAX_MS)
		p->ms = ACCEPT_PAUSE_MAX_MS;
	log_warnx("%s: %s; pausing for %d ms", p->what, strerror(err), p->ms);
	for (int i = 0; i < p->n; i++)
		evconnlistener_disable(p->l[i]);
	tv.tv_sec = p->ms / 1000;
	tv.tv_usec = (p->ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
}

void
accept_pause_ok(struct accept_pause *p)
{
	p->ms = 0;
}

void
accept_pause_stop(struct accept_pause *p)
{
	p->stopped = 1;
	evtimer_del(p->timer);
}

void
accept_pause_free(struct accept_pause *p)
{
	if (p == NULL)
		return;
	event_free(p->timer);
	free(p->l);
	free(p->what);
	free(p);
}
