/* spf.h - SPF (RFC 7208) with libspf2, evaluated off the event loop
 *
 * libspf2 is given a DNS layer of ours that sends every query through
 * dns_query_sync() (dns.h), so SPF uses dns.nameservers like every other
 * lookup. Evaluations run on a small pool of worker threads: one slow
 * domain does not hold up the others, and the loop never waits.
 */
#ifndef MX_SPF_H
#define MX_SPF_H

#include <stddef.h>
#include <event2/event.h>

#define SPF_WORKERS		4	/* evaluation threads */
#define SPF_EVAL_MAX_SECS	20	/* one evaluation's DNS time, all queries */
#define SPF_TEXT_MAX		256	/* comment, explanation (sanitised, cut) */

enum spf_result {
	SPF_NONE = 0,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};
#define SPF_NRESULTS	7

struct spf_verdict {
	enum spf_result result;
	int helo_identity;		/* 1: the HELO name was checked (MAIL FROM:<>) */
	char domain[256];		/* the domain checked */
	char comment[SPF_TEXT_MAX];	/* "HOST: domain of X designates IP as ..." */
	char explanation[SPF_TEXT_MAX];	/* fail: the domain's exp= text or ours */
};

/* spf_init - the worker pool; receiver is our host name (comments,
 * %{r}). Call on the loop thread after dns_init. Returns 0 or -1. */
int spf_init(struct event_base *, const char *receiver);
/* spf_shutdown - stop new lookups, let running ones end (the loop is run
 * meanwhile, so that their DNS answers can arrive) and join the threads */
void spf_shutdown(void);

struct spf_check;
typedef void (*spf_done_fn)(const struct spf_verdict *, void *arg);

/* spf_check_start - evaluate sender (MAIL FROM without brackets; "" for
 * <>, then the HELO identity is used) for client ip (numeric, v4 or v6)
 * on a worker; done runs later on the loop, after which the check is
 * gone. NULL when spf_init was not called. */
struct spf_check *spf_check_start(const char *ip, const char *helo,
    const char *sender, spf_done_fn done, void *arg);
/* spf_check_cancel - done will not run (call only before it ran) */
void spf_check_cancel(struct spf_check *);

/* spf_evaluate - the same, synchronously on the calling thread (worker
 * threads, tests). Needs dns_query_sync() to answer. */
void spf_evaluate(const char *receiver, const char *ip, const char *helo,
    const char *sender, struct spf_verdict *);

/* spf_result_name - "pass", "fail", ... (RFC 7208 2.6) */
const char *spf_result_name(enum spf_result);
/* spf_headers - "Received-SPF: ..." (RFC 7208 9.1) and
 * "Authentication-Results: ..." (RFC 8601), CRLF-terminated, into buf.
 * Returns the length, 0 when they do not fit. */
size_t spf_headers(const struct spf_verdict *, const char *receiver,
    const char *ip, const char *helo, const char *sender, char *buf,
    size_t len);

#endif
