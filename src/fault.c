/* fault.c - fault injection points driven by MXRELAY_FAULTS (tests only)
 *
 * The variable is parsed once, on the first check; the counters are
 * shared by every thread under a mutex (the spool points run on worker
 * threads). A malformed variable is fatal: a test that means to inject a
 * fault must not silently run without it.
 */
#include "autoconf.h"

#ifdef MX_FAULT_INJECTION

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "util.h"

#define FAULT_MAX	8	/* points in one MXRELAY_FAULTS */
#define FAULT_NAME_MAX	32

struct fault {
	char point[FAULT_NAME_MAX];
	int err;
	long sleep_ms;		/* sleep:MS: the call is slow, then succeeds */
	long count;		/* failures left; -1: forever */
	long skip;		/* successful calls before the first failure */
};

static struct {
	pthread_mutex_t lock;
	int loaded;
	int n;
	struct fault f[FAULT_MAX];
} faults = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const struct {
	const char *name;
	int err;
} fault_errnos[] = {
	{ "ENOSPC", ENOSPC }, { "EIO", EIO }, { "EDQUOT", EDQUOT },
	{ "ENOMEM", ENOMEM }, { "EMFILE", EMFILE }, { "EAGAIN", EAGAIN },
};

/* fault_parse_one - "POINT=ERRNO[*COUNT][+SKIP]" or
 * "POINT=sleep:MS[*COUNT][+SKIP]" into f; -1 if malformed */
static int
fault_parse_one(char *spec, struct fault *f)
{
	char *eq = strchr(spec, '='), *p, *end;
	size_t i;

	if (eq == NULL || (size_t)(eq - spec) >= sizeof(f->point) || eq == spec)
		return -1;
	*eq = '\0';
	mx_strlcpy(f->point, spec, sizeof(f->point));
	f->count = -1;
	f->skip = 0;
	if ((p = strchr(eq + 1, '+')) != NULL) {
		*p++ = '\0';
		f->skip = strtol(p, &end, 10);
		if (*p == '\0' || *end != '\0' || f->skip < 0)
			return -1;
	}
	if ((p = strchr(eq + 1, '*')) != NULL) {
		*p++ = '\0';
		f->count = strtol(p, &end, 10);
		if (*p == '\0' || *end != '\0' || f->count < 1)
			return -1;
	}
	if (strncmp(eq + 1, "sleep:", 6) == 0) {
		p = eq + 7;
		f->sleep_ms = strtol(p, &end, 10);
		return *p == '\0' || *end != '\0' || f->sleep_ms < 1 ? -1 : 0;
	}
	for (i = 0; i < MX_ARRAY_LEN(fault_errnos); i++)
		if (strcmp(eq + 1, fault_errnos[i].name) == 0) {
			f->err = fault_errnos[i].err;
			return 0;
		}
	return -1;
}

/* fault_load - parse MXRELAY_FAULTS (under the lock) */
static void
fault_load(void)
{
	const char *env = getenv("MXRELAY_FAULTS");
	char buf[512], *tok, *save = NULL;

	faults.loaded = 1;
	if (env == NULL || *env == '\0')
		return;
	if (mx_strlcpy(buf, env, sizeof(buf)) >= sizeof(buf))
		fatalx("MXRELAY_FAULTS: too long");
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (faults.n == FAULT_MAX)
			fatalx("MXRELAY_FAULTS: more than %d points", FAULT_MAX);
		if (fault_parse_one(tok, &faults.f[faults.n]) < 0)
			fatalx("MXRELAY_FAULTS: bad entry \"%s\" "
			    "(POINT=ERRNO|sleep:MS[*COUNT][+SKIP])", tok);
		faults.n++;
	}
	log_warnx("fault injection armed: %s", env);
}

int
fault_hit(const char *point)
{
	int err = 0;
	long sleep_ms = 0;

	pthread_mutex_lock(&faults.lock);
	if (!faults.loaded)
		fault_load();
	for (int i = 0; i < faults.n; i++) {
		struct fault *f = &faults.f[i];

		if (strcmp(f->point, point) != 0)
			continue;
		if (f->skip > 0) {
			f->skip--;
			break;
		}
		if (f->count == 0)
			break;
		if (f->count > 0)
			f->count--;
		err = f->err;
		sleep_ms = f->sleep_ms;
		log_warnx("fault injected point=%s errno=%d sleep_ms=%ld", point, err, sleep_ms);
		break;
	}
	pthread_mutex_unlock(&faults.lock);
	if (sleep_ms > 0)	/* outside the lock: other points go on */
		usleep((useconds_t)sleep_ms * 1000);
	return err;
}

#endif /* MX_FAULT_INJECTION */
