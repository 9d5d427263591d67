/* mxrelayd.c - start-up, signals, privilege drop */
#include "autoconf.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "config.h"
#include "control.h"
#include "control_check.h"
#include "dns.h"
#include "fleet.h"
#include "log.h"
#include "metrics.h"
#include "mta.h"
#include "mxwatch.h"
#include "nofile.h"
#include "queue.h"
#include "readahead.h"
#include "refused.h"
#include "route.h"
#include "sdnotify.h"
#include "smtp_server.h"
#include "spool.h"
#include "spoolfs.h"
#include "stats.h"
#include "store.h"
#include "store_copy.h"
#include "switch.h"
#include "verify.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#define MXRELAYD_ERR_MAX	512

static void
usage(void)
{
	fprintf(stderr, "usage: mxrelayd [-dstV] [-c FILE] [-M STATEDIR]\n"
	    "  -c FILE  configuration (default %s)\n"
	    "  -t       check the configuration and exit\n"
	    "  -M DIR   copy the SQLite state in DIR into the configured\n"
	    "           (empty) PostgreSQL database and exit\n"
	    "  -s       log to syslog instead of stderr\n"
	    "  -d       debug logging\n"
	    "  -V       print the version and exit\n", CONFIG_DEFAULT_PATH);
	exit(2);
}

/* make_dir_for - create a directory (0750) owned by the daemon's user */
static void
make_dir_for(const char *dir, const struct passwd *pw)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		fatal("mkdir %s", dir);
	if (pw && chown(dir, pw->pw_uid, pw->pw_gid) < 0)
		fatal("chown %s", dir);
}

/* make_parent_dir_for - the directory that will hold path (control socket) */
static void
make_parent_dir_for(const char *path, const struct passwd *pw)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');

	if (slash && slash != dir) {
		*slash = '\0';
		make_dir_for(dir, pw);
	}
	free(dir);
}

/* drop_privileges - after binding: become server.user when started as root */
static void
drop_privileges(const struct passwd *pw)
{
	if (pw == NULL)
		return;
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot drop privileges to %s", pw->pw_name);
	if (setuid(0) == 0)
		fatalx("privileges could be regained after the drop");
	log_info("startup running as user=%s uid=%d", pw->pw_name, (int)pw->pw_uid);
}

#define STOP_GRACE_SECS	10	/* sessions get this long to finish after SIGTERM */

static struct smtp_server *server;
static const char *config_path;
static struct config *config_live;	/* what every module uses now */
static struct config **config_retired;	/* older ones: sessions may point into them */
static int nconfig_retired;
static struct event *stop_ev;
static int stop_ticks;
static struct event *log_flush_ev;

/* the loop's log lines of one turn leave together (log_batch) */
static void
log_flush_cb(evutil_socket_t fd, short ev, void *arg)
{
	log_flush();
}

static void
log_flush_schedule(void)
{
	event_active(log_flush_ev, EV_TIMEOUT, 0);
}

/* stop_tick - after SIGTERM: leave the loop once every session is gone */
static void
stop_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct event_base *base = arg;
	struct timeval tv = { 0, 100000 };

	if (smtp_server_nsessions(server) == 0 || ++stop_ticks > STOP_GRACE_SECS * 10) {
		event_base_loopexit(base, NULL);
		return;
	}
	evtimer_add(stop_ev, &tv);
}

/* A reload reads files (and may resolve the host name): that runs on the
 * reload worker, and only the hand-over to the modules on the loop. */
struct reload_op {
	struct config *nw;
	SSL_CTX *tls;
	char err[CONFIG_ERR_MAX];
	control_reload_done done;
	void *arg;
};

static struct worker *reload_worker;

/* reload_load - worker: the file, and the certificate it names */
static void
reload_load(void *arg)
{
	struct reload_op *op = arg;

	if ((op->nw = config_load(config_path, op->err, sizeof(op->err))) == NULL)
		return;
	if (op->nw->tls_certificate && (op->tls = tls_server_ctx(op->nw, op->err,
	    sizeof(op->err))) == NULL) {
		config_free(op->nw);
		op->nw = NULL;
	}
}

/* reload_apply - loop: hand the new configuration to every module; a bad
 * file changes nothing (SPEC 8). Listeners, user, paths and nameservers
 * keep their values until a restart. */
static void
reload_apply(void *arg)
{
	struct reload_op *op = arg;
	char warn[256];

	if (op->nw == NULL) {
		log_warnx("reload refused: %s", op->err);
		goto out;
	}
	config_carry_static(op->nw, config_live, warn, sizeof(warn));
	if (warn[0])
		log_warnx("reload: changes to %s need a restart; old values kept", warn);
	smtp_server_reload(server, op->nw, op->tls);
	route_init(op->nw);
	mta_reload(op->nw);
	queue_set_config(op->nw);
	switch_set_config(op->nw);
	mxwatch_set_config(op->nw);
	control_check_set_config(op->nw);
	verify_set_config(op->nw);
	/* sessions and filters may still point into the old one: kept */
	config_retired = xrealloc(config_retired,
	    sizeof(*config_retired) * (size_t)(nconfig_retired + 1));
	config_retired[nconfig_retired++] = config_live;
	config_live = op->nw;
	log_info("reload done config=%s tls=%s", config_path, op->tls ? "yes" : "no");
out:
	sdnotify("READY=1");
	if (op->done)
		op->done(op->nw != NULL, op->err, op->arg);
	free(op);
}

/* reload - SIGHUP and `relayctl reload`; done (may be NULL) gets the verdict */
static void
reload(control_reload_done done, void *arg)
{
	struct reload_op *op = xcalloc(1, sizeof(*op));

	op->done = done;
	op->arg = arg;
	sdnotify("RELOADING=1");
	worker_submit(reload_worker, reload_load, reload_apply, op);
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct event_base *base = arg;

	if (sig == SIGHUP) {
		reload(NULL, NULL);
		return;
	}
	if (stop_ev != NULL)
		return;
	log_info("signal %s: shutting down", sig == SIGTERM ? "TERM" : "INT");
	sdnotify("STOPPING=1");
	smtp_server_stop(server);
	stop_ev = evtimer_new(base, stop_tick, base);
	stop_tick(-1, 0, base);
}

int
main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH, *copy_from = NULL;
	char err[MXRELAYD_ERR_MAX];
	int ch, check = 0, use_syslog = 0, debug = 0;
	struct config *cfg;
	struct event_base *base;
	struct event *sig_term, *sig_int, *sig_hup, *watchdog;
	struct smtp_server *srv;
	struct passwd *pw = NULL;
	SSL_CTX *tls = NULL;

	while ((ch = getopt(argc, argv, "c:dM:stV")) != -1) {
		switch (ch) {
		case 'c': path = optarg; break;
		case 'M': copy_from = optarg; break;
		case 'd': debug = 1; break;
		case 's': use_syslog = 1; break;
		case 't': check = 1; break;
		case 'V':
			printf("mxrelayd %s\n", PACKAGE_VERSION);
			return 0;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("mxrelayd", use_syslog);
	log_set_debug(debug);

	config_path = path;
	if ((cfg = config_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "mxrelayd: %s\n", err);
		return 1;
	}
	if (check) {
		printf("mxrelayd: %s: configuration ok\n", path);
		config_free(cfg);
		return 0;
	}
	if (copy_from) {
		ch = store_copy(cfg, copy_from, stdout, err, sizeof(err));
		if (ch == -1)
			fprintf(stderr, "mxrelayd: copy: %s\n", err);
		config_free(cfg);
		return ch == -1 ? 1 : 0;
	}

	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0)
		fatalx("libevent: no pthreads support");
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	nofile_raise(cfg->max_connections);

	if (getuid() == 0 && strcmp(cfg->user, "root") != 0) {
		if ((pw = getpwnam(cfg->user)) == NULL)
			fatalx("%s: server.user: no such user: %s", path, cfg->user);
	}
	if (cfg->tls_certificate &&
	    (tls = tls_server_ctx(cfg, err, sizeof(err))) == NULL)
		fatalx("tls: %s", err);
	make_dir_for(cfg->spool, pw);
	make_dir_for(cfg->state, pw);
	make_parent_dir_for(cfg->control_socket, pw);
	if ((srv = smtp_server_new(base, cfg, tls, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	server = srv;
	spoolfs_init(base, cfg->spool);
	if (metrics_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("%s", err);
	config_live = cfg;
	control_set_reload(reload);
	reload_worker = worker_new(base, "reload");
	drop_privileges(pw);

	/* State, spool and control socket are opened as the unprivileged
	 * user, so every file they create is that user's. */
	if (store_open(base, cfg, err, sizeof(err)) < 0)
		fatalx("store: %s", err);
	if (dns_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("%s", err);
	route_init(cfg);
	readahead_init(base);
	if (mta_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (spool_init(base, cfg->spool, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (queue_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("queue: %s", err);
	if (switch_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("switch: %s", err);
	if (fleet_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (mxwatch_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("%s", err);
	control_check_init(base, cfg);
	if (verify_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (control_init(base, cfg, err, sizeof(err)) < 0)
		fatalx("control: %s", err);

	sig_term = evsignal_new(base, SIGTERM, on_signal, base);
	sig_int = evsignal_new(base, SIGINT, on_signal, base);
	sig_hup = evsignal_new(base, SIGHUP, on_signal, base);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	evsignal_add(sig_hup, NULL);

	mx_stats.started = time(NULL);
	smtp_server_start(srv);
	log_info("startup version=%s hostname=%s backend=%s database=\"%s\"",
	    PACKAGE_VERSION, cfg->hostname, store_backend_name(), store_database());
	sdnotify("READY=1\nSTATUS=accepting mail");
	watchdog = sdnotify_watchdog_start(base);
	log_flush_ev = event_new(base, -1, 0, log_flush_cb, NULL);
	if (log_flush_ev != NULL)
		log_batch(log_flush_schedule);
	event_base_dispatch(base);
	log_batch(NULL);
	if (watchdog)
		event_free(watchdog);
	if (log_flush_ev)
		event_free(log_flush_ev);

	worker_free(reload_worker);	/* a reload under way completes first */
	fleet_close();		/* waiting switches answer before control closes */
	smtp_server_free(srv);
	spoolfs_close();
	metrics_close();
	control_close();
	mxwatch_close();
	verify_close();
	switch_close();
	mta_close();
	readahead_close();	/* after mta: releases readers of closed sessions */
	queue_close();	/* after mta: its jobs are done */
	spool_close();
	dns_close();
	store_close();	/* after control: it may still hold store results */
	refused_close();
	event_free(sig_term);
	event_free(sig_int);
	event_free(sig_hup);
	if (stop_ev)
		event_free(stop_ev);
	event_base_free(base);
	config_free(config_live);
	for (int i = 0; i < nconfig_retired; i++)
		config_free(config_retired[i]);
	free(config_retired);
	log_info("shutdown complete");
	return 0;
}
