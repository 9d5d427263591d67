/* sdnotify.c - READY/RELOADING/STOPPING/WATCHDOG datagrams to systemd
 *
 * The protocol is one datagram of "KEY=VALUE" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET ('@' for the abstract namespace).
 */
#include "autoconf.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"
#include "util.h"

void
sdnotify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	/* a datagram to a local socket: never blocks for long */
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT,
	    (struct sockaddr *)&sun, len) < 0)
		log_debug("sd_notify %s: %s", state, strerror(errno));
	close(fd);
}

static void
watchdog_tick(evutil_socket_t fd, short ev, void *arg)
{
	sdnotify("WATCHDOG=1");
}

struct event *
sdnotify_watchdog_start(struct event_base *base)
{
	const char *usec = getenv("WATCHDOG_USEC");
	struct timeval tv;
	struct event *ev;
	long long us;

	if (usec == NULL || (us = atoll(usec)) <= 0)
		return NULL;
	us /= 2;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	ev = event_new(base, -1, EV_PERSIST, watchdog_tick, NULL);
	event_add(ev, &tv);
	return ev;
}
