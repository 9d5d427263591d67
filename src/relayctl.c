/* relayctl.c - the control client: sends a command to mxrelayd, prints the
 * answer, exits with its status
 *
 * Deliberately thin: the daemon renders both the human and the JSON output.
 * relayctl checks the command name and argument count itself (so that a
 * typo is a usage error even when the daemon is down), reads the import
 * file (the daemon may not be allowed to), and maps failures to exit codes:
 * 0 done, 1 refused, 2 usage, 3 daemon unreachable.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "ctlproto.h"
#include "util.h"

#define RELAYCTL_DEFAULT_SOCKET	"/run/mxrelay/control.sock"
#define RELAYCTL_READ_CHUNK	65536
/* room left in a request for the argv around the file's contents */
#define RELAYCTL_ARGV_ROOM	(CTL_ARGS_MAX * (CTL_ARG_MAX + 16))

enum { EXIT_DONE = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: relayctl [-c FILE | -s SOCKET] [--json] COMMAND ...\n"
	    "  -c FILE     find the control socket in this configuration file\n"
	    "  -s SOCKET   the control socket (default %s)\n"
	    "  --json      machine-readable output\n"
	    "commands:\n", RELAYCTL_DEFAULT_SOCKET);
	for (const struct ctl_command_spec *c = ctl_command_table(); c->name; c++)
		fprintf(fp, "  relayctl %s\n", c->usage);
}

static int
fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fail - print "relayctl: ..." and return the exit code */
static int
fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("relayctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* read_file - the whole file ("-": standard input), bounded */
static char *
read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = RELAYCTL_READ_CHUNK, n = 0;
	char *buf;
	ssize_t r;

	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		r = read(fd, buf + n, cap - n);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n > max) {
			snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
			goto bad;
		}
	}
	if (r == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto bad;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	*len = n;
	return buf;
bad:
	if (fd != STDIN_FILENO)
		close(fd);
	free(buf);
	return NULL;
}

/* read_header - the response's first line, byte by byte (it is short) */
static int
read_header(int fd, char *line, size_t len)
{
	size_t n = 0;
	ssize_t r;

	while (n + 1 < len) {
		r = read(fd, line + n, 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (line[n] == '\n') {
			line[n] = '\0';
			return 0;
		}
		n++;
	}
	return -1;
}

/* copy_body - stream the body to out; returns 0 when all of it came */
static int
copy_body(int fd, size_t len, FILE *out)
{
	char buf[RELAYCTL_READ_CHUNK];
	ssize_t r;

	while (len > 0) {
		r = read(fd, buf, len < sizeof(buf) ? len : sizeof(buf));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		fwrite(buf, 1, (size_t)r, out);
		len -= (size_t)r;
	}
	fflush(out);
	return 0;
}

static int
connect_socket(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (mx_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* exchange - send the request, print the answer; returns the exit code */
static int
exchange(const char *sock, unsigned flags, int argc, char **argv,
    const char *data, size_t datalen)
{
	char head[CTL_HEADER_MAX], *req;
	size_t reqlen, bodylen;
	int fd, status, rc;

	if ((fd = connect_socket(sock)) == -1)
		return fail(EXIT_UNREACHABLE, "cannot connect to %s: %s", sock,
		    strerror(errno));
	req = ctlproto_request_encode(flags, argc, argv, data, datalen, &reqlen);
	rc = mx_write_full(fd, req, reqlen, -1);
	free(req);
	/* a refusal (permission denied) may come before the request is read:
	 * read the answer even when the write failed */
	if (read_header(fd, head, sizeof(head)) == -1 ||
	    ctlproto_response_parse(head, &status, &bodylen) == -1) {
		close(fd);
		return fail(EXIT_UNREACHABLE, "%s: %s", sock, rc == -1 ?
		    strerror(errno) : "no valid answer from the daemon");
	}
	/* with --json the answer is one document on stdout, errors included */
	rc = copy_body(fd, bodylen, status == 0 || (flags & CTL_FLAG_JSON) ?
	    stdout : stderr);
	close(fd);
	if (rc == -1)
		return fail(EXIT_UNREACHABLE, "%s: the answer was cut short", sock);
	return status == CTL_OK ? EXIT_DONE : status == CTL_USAGE ? EXIT_USAGE :
	    EXIT_REFUSED;
}

/* socket_from_config - paths.control_socket of a configuration file */
static char *
socket_from_config(const char *path, char *err, size_t errlen)
{
	struct config *cfg = config_load(path, err, errlen);
	char *s;

	if (cfg == NULL)
		return NULL;
	s = xstrdup(cfg->control_socket ? cfg->control_socket :
	    RELAYCTL_DEFAULT_SOCKET);
	config_free(cfg);
	return s;
}

int
main(int argc, char **argv)
{
	const char *cfgfile = NULL, *sock = NULL;
	char err[CONFIG_ERR_MAX + CTL_ERR_MAX], *sockbuf = NULL, *data = NULL;
	const struct ctl_command_spec *spec;
	struct ctl_args *a;
	unsigned flags = 0;
	size_t datalen = 0;
	int i, n = 0, nwords, rc;
	char **cmd;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return EXIT_DONE;
		} else if (strcmp(argv[i], "--json") == 0)
			flags |= CTL_FLAG_JSON;
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			cfgfile = argv[++i];
		else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
			sock = argv[++i];
		else {
			fprintf(stderr, "relayctl: unknown or incomplete option %s\n",
			    argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (cfgfile && sock)
		return fail(EXIT_USAGE, "-c and -s exclude each other");
	/* the command; "--json" is also taken after it, for convenience */
	cmd = xcalloc((size_t)(argc - i) + 1, sizeof(char *));
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			flags |= CTL_FLAG_JSON;
		else
			cmd[n++] = argv[i];
	}
	if (n == 0) {
		usage(stderr);
		free(cmd);
		return EXIT_USAGE;
	}
	a = xcalloc(1, sizeof(*a));
	rc = EXIT_USAGE;
	if ((spec = ctl_command_find(n, cmd, &nwords, err, sizeof(err))) == NULL ||
	    ctl_args_parse(spec, n - nwords, cmd + nwords, a, err, sizeof(err)) == -1) {
		fail(EXIT_USAGE, "%s", err);
		goto out;
	}
	if ((spec->flags & CTL_SPEC_SENDS_FILE) && (data = read_file(a->pos[1],
	    CTL_REQUEST_MAX - RELAYCTL_ARGV_ROOM, &datalen, err, sizeof(err))) == NULL) {
		fail(EXIT_USAGE, "%s", err);
		goto out;
	}
	if (cfgfile && (sock = sockbuf = socket_from_config(cfgfile, err,
	    sizeof(err))) == NULL) {
		fail(EXIT_USAGE, "%s", err);
		goto out;
	}
	rc = exchange(sock ? sock : RELAYCTL_DEFAULT_SOCKET, flags, n, cmd, data,
	    datalen);
out:
	free(data);
	free(sockbuf);
	free(a);
	free(cmd);
	return rc;
}
