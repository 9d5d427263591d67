/* nofile.c - the descriptor budget
 *
 * Every inbound session holds a socket, and while it receives or commits a
 * message, the message file too. Without a budget, a flood of sessions up
 * to the descriptor limit starves the rest of the daemon: spool files,
 * queue files and outbound connections fail with EMFILE, messages are
 * refused after their data and deliveries back off (bench/overload.sh
 * showed both). So the daemon raises its limit for max_connections
 * sessions plus one file each plus NOFILE_RESERVE, and when the hard limit
 * does not allow that, new sessions are refused (421 4.7.0) before they
 * eat into the reserve, and DATA is answered 451 4.3.0 (before the client
 * sends the message) when a message file would.
 */
#include "autoconf.h"

#include <sys/resource.h>

#include "log.h"
#include "nofile.h"

static int64_t nofile_limit = INT64_MAX / 2;	/* soft limit after raising */

void
nofile_raise(int max_connections)
{
	struct rlimit rl;
	rlim_t want = 2 * (rlim_t)max_connections + NOFILE_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit NOFILE");
		return;
	}
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max ?
		    want : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("setrlimit NOFILE");
			getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	nofile_limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT64_MAX / 2 ?
	    INT64_MAX / 2 : (int64_t)rl.rlim_cur;
	if (rl.rlim_cur < want)
		log_warnx("startup nofile=%lld below 2*max_connections+%d=%llu: "
		    "sessions capped at %lld", (long long)nofile_limit,
		    NOFILE_RESERVE, (unsigned long long)want,
		    (long long)nofile_sessions_max());
}

int64_t
nofile_sessions_max(void)
{
	/* a small limit (a test, a container) keeps a quarter, so that the
	 * daemon still takes sessions rather than none */
	int64_t reserve = nofile_limit / 4 < NOFILE_RESERVE ?
	    nofile_limit / 4 : NOFILE_RESERVE;

	return nofile_limit - reserve;
}

int
nofile_file_room(int64_t sessions, int64_t files)
{
	return sessions + files + 1 <= nofile_sessions_max();
}
