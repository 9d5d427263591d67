/* fuzz_net.h - the loopback connection of the targets that drive a real
 * listener (fuzz_session.c, fuzz_metrics_http.c) */
#ifndef MX_FUZZ_NET_H
#define MX_FUZZ_NET_H

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>

/* fuzz_connect_loopback - connect fd to 127.0.0.1:port, also when a
 * signal interrupts it: libFuzzer's timer thread sends SIGALRM (CI saw
 * "connect: Interrupted system call" after 96,000 runs of
 * fuzz_metrics_http, and an abort at the connect of fuzz_session that
 * its input did not reproduce). An interrupted connect goes on in the
 * kernel: wait for it and take its result, as connect(2) says. */
static inline int
fuzz_connect_loopback(int fd, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err = 0;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	if (connect(fd, (const struct sockaddr *)&sin, sizeof(sin)) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	while (poll(&pfd, 1, -1) < 0)
		if (errno != EINTR)
			return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -1;
	errno = err;
	return err ? -1 : 0;
}

#endif
