/* metrics.h - the Prometheus endpoint: GET /metrics on metrics.listen
 *
 * An evhttp server on the daemon's event loop. Every scrape renders the
 * counters of stats.c (stats_rows[]), the gauges read from the queue, the
 * store and the switch schedule in memory, and the histograms, in the
 * Prometheus text exposition format 0.0.4. Nothing on the scrape path
 * touches the disk: the spool's file system is spoolfs.c's last measure.
 * Loop thread only.
 */
#ifndef MX_METRICS_H
#define MX_METRICS_H

#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"

/* metrics_init - listen on cfg->metrics_listen (nothing when unset); call
 * before the privilege drop. Returns 0, or -1 with err set. */
int metrics_init(struct event_base *, const struct config *, char *err,
    size_t errlen);
void metrics_close(void);
/* metrics_render - the whole exposition into out */
void metrics_render(struct evbuffer *out);

#endif
