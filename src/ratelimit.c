/* ratelimit.c - a fixed window per client address
 *
 * A client's window opens with its first connection and lasts period
 * seconds; within it at most max connections pass. Memory is bounded:
 * when RATELIMIT_MAX_CLIENTS addresses are tracked, expired windows are
 * dropped, and when none has expired new addresses are not limited
 * (logged) rather than remembered. Loop thread only.
 */
#include "autoconf.h"

#include <stdlib.h>

#include "dict.h"
#include "log.h"
#include "ratelimit.h"
#include "util.h"

struct rl_window {
	uint64_t start_us;
	int count;
};

struct ratelimit {
	struct dict *clients;		/* address -> struct rl_window */
	int max;
	uint64_t period_us;
};

/* a purge walk: the keys of expired windows, collected then deleted */
struct rl_purge {
	struct ratelimit *rl;
	uint64_t now_us;
	char **keys;
	size_t n;
};

struct ratelimit *
ratelimit_new(int max, int period)
{
	struct ratelimit *rl = xcalloc(1, sizeof(*rl));

	rl->clients = dict_new();
	rl->max = max;
	rl->period_us = (uint64_t)period * 1000000;
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	dict_free(rl->clients, free);
	free(rl);
}

static int
rl_collect(const char *key, void *val, void *arg)
{
	struct rl_purge *p = arg;
	struct rl_window *w = val;

	if (p->now_us - w->start_us >= p->rl->period_us)
		p->keys[p->n++] = xstrdup(key);
	return 0;
}

/* rl_purge - drop every expired window */
static void
rl_purge(struct ratelimit *rl, uint64_t now_us)
{
	struct rl_purge p = { rl, now_us, NULL, 0 };

	p.keys = xcalloc(dict_count(rl->clients) + 1, sizeof(char *));
	dict_walk(rl->clients, rl_collect, &p);
	for (size_t i = 0; i < p.n; i++) {
		free(dict_del(rl->clients, p.keys[i]));
		free(p.keys[i]);
	}
	free(p.keys);
}

int
ratelimit_hit(struct ratelimit *rl, const char *key, uint64_t now_us)
{
	struct rl_window *w = dict_get(rl->clients, key);

	if (w != NULL && now_us - w->start_us >= rl->period_us) {
		w->start_us = now_us;
		w->count = 0;
	}
	if (w == NULL) {
		if (dict_count(rl->clients) >= RATELIMIT_MAX_CLIENTS)
			rl_purge(rl, now_us);
		if (dict_count(rl->clients) >= RATELIMIT_MAX_CLIENTS) {
			log_warnx("ratelimit table full (%d clients): %s not limited",
			    RATELIMIT_MAX_CLIENTS, key);
			return 0;
		}
		w = xcalloc(1, sizeof(*w));
		w->start_us = now_us;
		dict_put(rl->clients, key, w);
	}
	return ++w->count > rl->max;
}
