/* control.c - the control socket server that relayctl talks to
 *
 * A unix stream socket; one request per connection (ctlproto.h). The peer
 * is identified with SO_PEERCRED before anything is read: only root, the
 * daemon's own uid and members of its group are served, so that a stranger
 * cannot make us buffer a large request. Input is bounded by the header's
 * declared length (at most CTL_REQUEST_MAX) and idle connections time out.
 * Commands run through the table in control_cmds.c.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "accept_pause.h"
#include "control.h"
#include "control_cmds.h"
#include "control_cutover.h"
#include "control_pilot.h"
#include "ctlproto.h"
#include "jsonw.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#define CTL_CLIENTS_MAX		32	/* connections served at once */
#define CTL_IDLE_TIMEOUT	60	/* seconds without input while reading */
#define CTL_WRITE_TIMEOUT	300	/* seconds for the client to take the answer */
#define CTL_DIR_MODE		0750
#define CTL_SOCKET_MODE		0660
#define CTL_BACKLOG		16
#define CTL_PEER_GROUPS_MAX	256

/* global counters, shown by relayctl status and stats */

enum conn_state { CONN_HEADER, CONN_BODY, CONN_RUNNING, CONN_REPLIED };

struct ctl_conn {
	struct ctl_conn *prev, *next;
	struct bufferevent *bev;	/* NULL once the client is gone */
	enum conn_state state;
	int nargs;
	size_t bodylen;
	pid_t pid;
	gid_t gid;
	struct ctl_ctx ctx;
};

static struct {
	struct event_base *base;
	struct evconnlistener *listener;
	struct accept_pause *pause;	/* out of descriptors: stop accepting */
	char *path;
	struct ctl_conn *conns;
	int nconns;
} ctl;

static void
conn_free(struct ctl_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl.nconns--;
	if (c->bev)
		bufferevent_free(c->bev);
	ctlproto_request_clear(&c->ctx.req);
	evbuffer_free(c->ctx.out);
	free(c);
}

/* conn_gone - the client went away: free now, or when the command ends */
static void
conn_gone(struct ctl_conn *c)
{
	if (c->state == CONN_RUNNING) {
		bufferevent_free(c->bev);
		c->bev = NULL;
		return;
	}
	conn_free(c);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;

	if (c->state == CONN_REPLIED &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
}

void
control_reply(struct ctl_ctx *ctx, int status)
{
	struct ctl_conn *c = ctx->conn;
	char head[CTL_HEADER_MAX];
	const char *cmd = ctx->spec ? ctx->spec->name : "-";

	if (ctx->spec)
		log_info("control uid=%u pid=%d command=\"%s\" status=%d",
		    (unsigned)ctx->uid, (int)c->pid, cmd, status);
	if (c->bev == NULL) {		/* the client left meanwhile */
		conn_free(c);
		return;
	}
	c->state = CONN_REPLIED;
	ctlproto_response_header(head, sizeof(head), status,
	    evbuffer_get_length(ctx->out));
	bufferevent_write(c->bev, head, strlen(head));
	bufferevent_write_buffer(c->bev, ctx->out);
	conn_write_cb(c->bev, c);
}

void
control_fail(struct ctl_ctx *ctx, int status, const char *fmt, ...)
{
	char msg[CTL_ERR_MAX];
	struct jsonw *w;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	evbuffer_drain(ctx->out, evbuffer_get_length(ctx->out));
	if (ctx->json) {
		w = jsonw_new(ctx->out);
		jsonw_object_begin(w);
		jsonw_kv_string(w, "error", msg);
		jsonw_kv_int(w, "status", status);
		jsonw_object_end(w);
		jsonw_free(w);
	} else
		evbuffer_add_printf(ctx->out, "%s\n", msg);
	control_reply(ctx, status);
}

/* conn_dispatch - the request is complete: find and run its command */
static void
conn_dispatch(struct ctl_conn *c)
{
	struct ctl_ctx *ctx = &c->ctx;
	const struct ctl_command_spec *spec;
	const struct ctl_handler *h;
	char err[CTL_ERR_MAX];
	int nwords;

	c->state = CONN_RUNNING;
	/* a long command (a large import, a switch --wait) is not idle */
	struct timeval wtv = { CTL_WRITE_TIMEOUT, 0 };
	bufferevent_set_timeouts(c->bev, NULL, &wtv);
	ctx->json = (ctx->req.flags & CTL_FLAG_JSON) != 0;
	spec = ctl_command_find(ctx->req.argc, ctx->req.argv, &nwords, err,
	    sizeof(err));
	if (spec == NULL || (h = control_cmds_find(spec->name)) == NULL) {
		control_fail(ctx, CTL_USAGE, "%s", spec ? "command not supported "
		    "by this daemon" : err);
		return;
	}
	ctx->spec = spec;
	if (ctl_args_parse(spec, ctx->req.argc - nwords, ctx->req.argv + nwords,
	    &ctx->args, err, sizeof(err)) == -1) {
		control_fail(ctx, CTL_USAGE, "%s", err);
		return;
	}
	h->fn(ctx);
}

/* conn_read_header - the first line; refuses what cannot be served */
static int
conn_read_header(struct ctl_conn *c, struct evbuffer *in)
{
	char err[CTL_ERR_MAX], *line;
	unsigned flags;
	size_t n;

	line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (evbuffer_get_length(in) >= CTL_HEADER_MAX) {
			control_fail(&c->ctx, CTL_USAGE, "request header too long");
			return -1;
		}
		return 0;
	}
	if (ctlproto_request_header(line, &flags, &c->nargs, &c->bodylen, err,
	    sizeof(err)) == -1) {
		free(line);
		control_fail(&c->ctx, CTL_USAGE, "%s", err);
		return -1;
	}
	free(line);
	c->ctx.req.flags = flags;
	c->state = CONN_BODY;
	return 0;
}

/* conn_read_body - once the declared body is in, parse and dispatch */
static void
conn_read_body(struct ctl_conn *c, struct evbuffer *in)
{
	char err[CTL_ERR_MAX], *body;
	unsigned flags = c->ctx.req.flags;

	if (evbuffer_get_length(in) < c->bodylen)
		return;
	if (evbuffer_get_length(in) > c->bodylen) {
		control_fail(&c->ctx, CTL_USAGE, "request longer than declared");
		return;
	}
	body = xmalloc(c->bodylen + 1);
	evbuffer_remove(in, body, c->bodylen);
	body[c->bodylen] = '\0';
	c->ctx.json = (flags & CTL_FLAG_JSON) != 0;
	if (ctlproto_request_body(body, c->bodylen, c->nargs, flags, &c->ctx.req,
	    err, sizeof(err)) == -1) {
		control_fail(&c->ctx, CTL_USAGE, "%s", err);
		return;
	}
	conn_dispatch(c);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->state == CONN_HEADER && conn_read_header(c, in) == -1)
		return;
	if (c->state == CONN_BODY)
		conn_read_body(c, in);
	else if (c->state != CONN_HEADER)	/* nothing more is expected */
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_conn *c = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_info("control uid=%u disconnected reason=timeout",
		    (unsigned)c->ctx.uid);
	conn_gone(c);
}

/* peer_in_group - is gid among the peer's supplementary groups? */
static int
peer_in_group(int fd, gid_t gid)
{
#ifdef SO_PEERGROUPS
	gid_t groups[CTL_PEER_GROUPS_MAX];
	socklen_t len = sizeof(groups);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		for (size_t i = 0; i < len / sizeof(gid_t); i++)
			if (groups[i] == gid)
				return 1;
#endif
	return 0;
}

/* peer_check - SO_PEERCRED: root, our uid, our group. Returns 1 if allowed. */
static int
peer_check(int fd, struct ctl_conn *c)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == -1) {
		log_warn("control getsockopt SO_PEERCRED");
		c->ctx.uid = (uid_t)-1;
		return 0;
	}
	c->ctx.uid = cr.uid;
	c->gid = cr.gid;
	c->pid = cr.pid;
	return cr.uid == 0 || cr.uid == geteuid() || cr.gid == getegid() ||
	    peer_in_group(fd, getegid());
}

/* accept_error_cb - accept(2) failed (accept_pause.c) */
static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	accept_pause_error(ctl.pause);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct timeval tv = { CTL_IDLE_TIMEOUT, 0 };
	struct ctl_conn *c;

	accept_pause_ok(ctl.pause);
	if (ctl.nconns >= CTL_CLIENTS_MAX) {
		log_warnx("control refused reason=too_many_clients max=%d",
		    CTL_CLIENTS_MAX);
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->ctx.conn = c;
	c->ctx.out = evbuffer_new();
	c->bev = bufferevent_socket_new(ctl.base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->ctx.out == NULL || c->bev == NULL)
		fatalx("control: out of memory for a connection");
	c->next = ctl.conns;
	if (ctl.conns)
		ctl.conns->prev = c;
	ctl.conns = c;
	ctl.nconns++;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	if (!peer_check(fd, c)) {
		log_warnx("control refused uid=%u gid=%u pid=%d reason=permission",
		    (unsigned)c->ctx.uid, (unsigned)c->gid, (int)c->pid);
		c->state = CONN_RUNNING;
		control_fail(&c->ctx, CTL_REFUSED, "permission denied");
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* mkdir_parent - create the socket's directory (and its parents) when
 * missing; existing directories keep their mode */
static int
mkdir_parent(const char *path, char *err, size_t errlen)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');
	int rc = 0;

	if (slash && slash != dir) {
		*slash = '\0';
		for (char *p = strchr(dir + 1, '/'); rc == 0; p = strchr(p + 1, '/')) {
			if (p)
				*p = '\0';
			if (mkdir(dir, CTL_DIR_MODE) == -1 && errno != EEXIST) {
				snprintf(err, errlen, "%s: %s", dir, strerror(errno));
				rc = -1;
			}
			if (p == NULL)
				break;
			*p = '/';
		}
	}
	free(dir);
	return rc;
}

/* stale_socket - remove a socket left by a dead daemon; refuse to take
 * over one that answers, or anything that is not a socket */
static int
stale_socket(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat sb;
	int fd, rc;

	if (lstat(sun->sun_path, &sb) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(sb.st_mode)) {
		snprintf(err, errlen, "%s: exists and is not a socket", sun->sun_path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "%s: another mxrelayd is listening there",
		    sun->sun_path);
		return -1;
	}
	if (unlink(sun->sun_path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", sun->sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

/* control_bind - socket, bind with a tight umask, chmod, listen */
static int
control_bind(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	mode_t old;
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* no window in which the socket is open to others */
	old = umask(0117);
	if (bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) == -1) {
		umask(old);
		snprintf(err, errlen, "%s: bind: %s", sun->sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(sun->sun_path, CTL_SOCKET_MODE) == -1 ||
	    listen(fd, CTL_BACKLOG) == -1) {
		snprintf(err, errlen, "%s: %s", sun->sun_path, strerror(errno));
		close(fd);
		unlink(sun->sun_path);
		return -1;
	}
	return fd;
}

int
control_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (cfg->control_socket == NULL || cfg->control_socket[0] == '\0' ||
	    mx_strlcpy(sun.sun_path, cfg->control_socket, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket path empty or too long");
		return -1;
	}
	if (mkdir_parent(sun.sun_path, err, errlen) == -1 ||
	    stale_socket(&sun, err, errlen) == -1 ||
	    (fd = control_bind(&sun, err, errlen)) == -1)
		return -1;
	ctl.listener = evconnlistener_new(base, accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (ctl.listener == NULL) {
		snprintf(err, errlen, "%s: evconnlistener_new failed", sun.sun_path);
		close(fd);
		unlink(sun.sun_path);
		return -1;
	}
	ctl.pause = accept_pause_new(base, "control accept");
	accept_pause_watch(ctl.pause, ctl.listener);
	evconnlistener_set_error_cb(ctl.listener, accept_error_cb);
	ctl.base = base;
	ctl.path = xstrdup(sun.sun_path);
	control_pilot_init(base);
	control_cutover_init(base);
	if (mx_stats.started == 0)
		mx_stats.started = time(NULL);
	log_info("control listening path=%s", ctl.path);
	return 0;
}

void
control_close(void)
{
	struct ctl_conn *c, *next;

	if (ctl.listener) {
		evconnlistener_free(ctl.listener);
		ctl.listener = NULL;
		unlink(ctl.path);
	}
	accept_pause_free(ctl.pause);
	ctl.pause = NULL;
	free(ctl.path);
	ctl.path = NULL;
	/* a command still running frees its connection when it answers */
	for (c = ctl.conns; c; c = next) {
		next = c->next;
		if (c->state == CONN_RUNNING) {
			if (c->bev)
				bufferevent_free(c->bev);
			c->bev = NULL;
		} else
			conn_free(c);
	}
}
