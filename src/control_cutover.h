/* control_cutover.h - the cutover safety net in relayctl (SPEC 10):
 * domain set --hold, --max-lifetime, --unknown, their lines in domain
 * show, status and check, and address list DOMAIN --refused */
#ifndef MX_CONTROL_CUTOVER_H
#define MX_CONTROL_CUTOVER_H

#include <event2/buffer.h>
#include <event2/event.h>

#include "control_cmds.h"
#include "jsonw.h"
#include "store.h"

#define CUTOVER_CHECK_TOP	10	/* refused addresses shown by check */

/* control_cutover_init - the loop the --dual preflight runs on */
void control_cutover_init(struct event_base *);
/* control_cutover_args - the settings named on the command line into s
 * (s->set 0: none); -1 when one is malformed (answered with CTL_USAGE) */
int control_cutover_args(struct ctl_ctx *, struct store_settings *s);
/* control_cutover_set - store the settings of the command line (parsed
 * before) for domain, then answer through done; --dual on in legacy mode
 * runs the switch's preflight at the hosting first (--force skips it) */
void control_cutover_set(struct ctl_ctx *, const char *domain,
    store_done_fn done);
/* the domain's settings: human lines, labels padded to width (domain
 * show 17, check 28), and JSON members */
void control_cutover_human(struct evbuffer *, const struct domain_info *,
    int width);
void control_cutover_json(struct jsonw *, const struct domain_info *);
/* control_cutover_summary - a few words for one-line answers ("; held") */
void control_cutover_summary(struct evbuffer *, const struct domain_info *);
/* the top n of the unknown-recipient report: check's lines and member */
void control_refused_human(struct evbuffer *, const char *domain, size_t n);
void control_refused_json(struct jsonw *, const char *domain, size_t n);

void cmd_address_list_refused(struct ctl_ctx *);

#endif
