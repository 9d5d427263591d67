/* accept_pause.h - listeners out of descriptors or memory stop accepting
 * for a while instead of spinning on their readable socket */
#ifndef MX_ACCEPT_PAUSE_H
#define MX_ACCEPT_PAUSE_H

#include <event2/event.h>
#include <event2/listener.h>

#define ACCEPT_PAUSE_MIN_MS	100	/* the first pause of a shortage */
#define ACCEPT_PAUSE_MAX_MS	2000	/* doubled up to this while it lasts */

struct accept_pause;

/* accept_pause_new - for the listeners of one service; what names it in
 * the log ("smtp accept": "smtp accept: ...; pausing for N ms") */
struct accept_pause *accept_pause_new(struct event_base *, const char *what);
/* accept_pause_watch - l is paused with the others; its owner's error
 * callback (evconnlistener_set_error_cb) calls accept_pause_error */
void accept_pause_watch(struct accept_pause *, struct evconnlistener *l);
/* accept_pause_error - accept(2) failed: a shortage (EMFILE, ENFILE,
 * ENOBUFS, ENOMEM) pauses every watched listener, anything else is logged */
void accept_pause_error(struct accept_pause *);
/* accept_pause_ok - a connection was accepted: the next shortage starts
 * with the shortest pause again */
void accept_pause_ok(struct accept_pause *);
/* accept_pause_stop - stopping: a pause in progress does not end in
 * enabling the listeners again */
void accept_pause_stop(struct accept_pause *);
void accept_pause_free(struct accept_pause *);

#endif
