/* test_dnsbl.c - DNSBL query names (RFC 5782), listing codes, rate limit */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns.h"
#include "dnsbl.h"
#include "ratelimit.h"
#include "tap.h"
#include "util.h"

/* dns.c test doubles: no server; every query fails to start */
static int queries;

struct dns_req *
dns_query(const char *name, int type, dns_query_cb cb, void *arg)
{
	queries++;
	return NULL;
}

void
dns_cancel(struct dns_req *r)
{
}

const char *
dns_status_name(enum dns_status st)
{
	return "test";
}

static void
sa4(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

static void
sa6(struct sockaddr_storage *ss, const char *ip)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
}

static void
test_names(void)
{
	struct sockaddr_storage ss;
	char buf[DNS_NAME_MAX];

	sa4(&ss, "192.0.2.10");
	ok(dnsbl_query_name((struct sockaddr *)&ss, "bl.test", buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "10.2.0.192.bl.test") == 0, "IPv4 reversed: %s", buf);
	sa6(&ss, "2001:db8:1:2::abcd");
	dnsbl_query_name((struct sockaddr *)&ss, "bl.test", buf, sizeof(buf));
	is_str(buf, "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test",
	    "IPv6 in nibbles (RFC 5782 2.4)");
	sa6(&ss, "::1");
	dnsbl_query_name((struct sockaddr *)&ss, "z", buf, sizeof(buf));
	is_str(buf, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.z", "::1");
	sa6(&ss, "::ffff:192.0.2.7");
	dnsbl_query_name((struct sockaddr *)&ss, "bl.test", buf, sizeof(buf));
	is_str(buf, "7.2.0.192.bl.test", "IPv4-mapped IPv6 as IPv4");
	sa4(&ss, "192.0.2.10");
	is_int(dnsbl_query_name((struct sockaddr *)&ss, "bl.test", buf, 12), -1, "too long: -1");
	ss.ss_family = AF_UNIX;
	is_int(dnsbl_query_name((struct sockaddr *)&ss, "bl.test", buf, sizeof(buf)), -1,
	    "unknown family: -1");
}

static struct in_addr
a4(const char *ip)
{
	struct in_addr a;

	inet_pton(AF_INET, ip, &a);
	return a;
}

static void
test_codes(void)
{
	struct dnsbl_match m;

	memset(&m, 0, sizeof(m));
	ok(dnsbl_code_listed(&m, a4("127.0.0.2")), "any 127.x by default");
	ok(dnsbl_code_listed(&m, a4("127.0.0.11")), "127.0.0.11 by default");
	ok(!dnsbl_code_listed(&m, a4("127.255.255.254")), "127.255.255.x (query refused) is no listing");
	ok(!dnsbl_code_listed(&m, a4("10.0.0.1")), "non-127 answer is no listing");
	ok(dnsbl_code_listed(NULL, a4("127.0.0.4")), "no match list: default");
	m.ncodes = 2;
	m.codes[0] = a4("127.0.0.2");
	m.codes[1] = a4("127.0.0.3");
	ok(dnsbl_code_listed(&m, a4("127.0.0.3")), "listed code matches");
	ok(!dnsbl_code_listed(&m, a4("127.0.0.4")), "other code does not");
}

static int done_called;

static void
done_cb(const struct dnsbl_verdict *v, void *arg)
{
	done_called++;
}

static void
test_check(void)
{
	struct config *cfg = config_defaults();
	struct sockaddr_storage ss;
	struct dnsbl_verdict v;

	sa4(&ss, "192.0.2.10");
	ok(dnsbl_check_start(cfg, (struct sockaddr *)&ss, done_cb, NULL, &v) == NULL &&
	    v.nqueries == 0 && !v.listed && !v.tempfail, "no zones: no check, clean");
	cfg->dnsbl_zones[0] = xstrdup("bl.test");
	cfg->ndnsbl_zones = 1;
	cfg->dnsbl_allow_zones[0] = xstrdup("wl.test");
	cfg->ndnsbl_allow_zones = 1;
	queries = 0;
	ok(dnsbl_check_start(cfg, (struct sockaddr *)&ss, done_cb, NULL, &v) == NULL &&
	    v.nqueries == 2 && v.tempfail && !v.listed && !v.allowed,
	    "DNS unavailable: verdict at once, tempfail, not listed");
	is_int(queries, 2, "one query per zone");
	is_int(done_called, 0, "done not called for an immediate verdict");
	config_free(cfg);
}

static void
test_ratelimit(void)
{
	struct ratelimit *rl = ratelimit_new(3, 10);
	uint64_t t = 1000000000ULL;
	int refused = 0;

	for (int i = 0; i < 5; i++)
		refused += ratelimit_hit(rl, "192.0.2.1", t + (uint64_t)i);
	is_int(refused, 2, "3 per period pass, 2 refused");
	is_int(ratelimit_hit(rl, "192.0.2.2", t), 0, "another client has its own window");
	is_int(ratelimit_hit(rl, "192.0.2.1", t + 10000000ULL), 0, "a new window after the period");
	ratelimit_free(rl);
}

int
main(void)
{
	test_names();
	test_codes();
	test_check();
	test_ratelimit();
	return done_testing();
}
