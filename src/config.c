/* config.c - libconfig -> struct config, every key validated with file:line
 *
 * The file is walked once against a table of known keys (full dotted path,
 * expected type, how to apply it). Anything not in the table is an error, so
 * a misspelt key never silently falls back to its default. Errors read
 * "FILE:LINE: KEY: reason", which is what `mxrelayd -t` prints.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <libconfig.h>
#include <openssl/ssl.h>
#include <libpq-fe.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#define CONFIG_KEY_MAX		256	/* longest dotted key we report */
#define CONFIG_HOSTNAME_MAX	256
#define DOMAIN_MAX		253	/* RFC 1035 2.3.4, without the final dot */
#define DOMAIN_LABEL_MAX	63
#define SRS_SECRET_MIN		16
#define DNS_DEFAULT_PORT	53
#define SMTP_DEFAULT_PORT	25
#define UNIX_PATH_MAX		108	/* sizeof(sun_path) on Linux */

/* limits on integer keys: positive, and small enough to be sane */
#define MAX_CONNECTIONS_MAX	1000000
#define MAX_RECIPIENTS_MAX	100000
#define CONFIG_LINE_MAX		4096	/* a line read back for its literal */
#define MESSAGE_SIZE_MAX	(1LL << 40)	/* 1 TiB */
#define QUEUED_MAX		1000000000
#define MINFREE_MAX		(1LL << 50)	/* 1 PiB */
#define TIMEOUT_MAX		86400		/* one day */
#define LIFETIME_MAX		(90 * 86400)
#define RETRY_STEP_MAX		(7 * 86400)
#define CONNECT_TIMEOUT_MAX	3600
#define DEST_CONNECTIONS_MAX	10000
#define PREGREET_WAIT_MAX	300
#define RATE_CONNECTIONS_MAX	1000000
#define RATE_PERIOD_MAX		86400
#define RATE_PERIOD_DEFAULT	60
#define PORT_MAX		65535
#define MILTER_TIMEOUT_MAX	3600
#define MILTER_TIMEOUT_DEFAULT	30
#define MX_WATCH_INTERVAL_MIN	1
#define MX_WATCH_INTERVAL_MAX	86400
#define MX_WATCH_INTERVAL_DEFAULT	300
#define VERIFY_LIFETIME_MAX	(365 * 86400)
#define VERIFY_POSITIVE_DEFAULT	(31 * 86400)	/* Postfix's address_verify_positive_expire_time */
#define VERIFY_NEGATIVE_DEFAULT	(3 * 3600)	/* Postfix's negative refresh time */
#define VERIFY_TIMEOUT_MAX	300
#define VERIFY_TIMEOUT_DEFAULT	30
#define VERIFY_RATE_MAX		100000
#define VERIFY_RATE_DEFAULT	60
#define LEASE_MAX		3600

enum key_kind { K_GROUP, K_STRING, K_INT, K_BOOL, K_STRLIST, K_INTLIST, K_GROUPLIST };

struct loader {
	const char *path;
	const config_t *lc;
	struct config *cfg;
	char *err;
	size_t errlen;
};

struct key_rule;
typedef int key_apply_fn(struct loader *, const config_setting_t *,
    const char *, const struct key_rule *);
/* string check: 0 when valid, else -1 with a reason in why */
typedef int str_check_fn(const char *, char *, size_t);
/* list element: validate and store entry i, or -1 with a reason */
typedef int elem_fn(struct config *, int, const char *, char *, size_t);

struct key_rule {
	const char *key;		/* full dotted path */
	enum key_kind kind;
	key_apply_fn *apply;		/* NULL for groups */
	size_t off;			/* field (or list count) in struct config */
	long long min, max;		/* integer range, or list length */
	str_check_fn *check;		/* K_STRING */
	elem_fn *elem;			/* K_STRLIST */
};

static key_apply_fn apply_string, apply_int, apply_int64, apply_bool,
    apply_strlist, apply_retry, apply_outbound, apply_delimiter, apply_milters,
    apply_quarantine_expiry, apply_choice, apply_backend;
static str_check_fn check_domain, check_nonempty, check_abspath,
    check_sockpath, check_destination, check_secret, check_listen,
    check_ciphers, check_ciphersuites, check_dsn;
static elem_fn elem_listen, elem_cidr, elem_nameserver, elem_zone,
    elem_allow_zone, elem_mx_name;

#define OFF(f)	offsetof(struct config, f)
#define GROUP(k)		{ k, K_GROUP, NULL, 0, 0, 0, NULL, NULL }
#define STR(k, f, chk)		{ k, K_STRING, apply_string, OFF(f), 0, 0, chk, NULL }
#define INT(k, f, lo, hi)	{ k, K_INT, apply_int, OFF(f), lo, hi, NULL, NULL }
#define BOOL(k, f)		{ k, K_BOOL, apply_bool, OFF(f), 0, 0, NULL, NULL }
#define CHOICE(k, f)		{ k, K_STRING, apply_choice, OFF(f), 0, 0, NULL, NULL }
#define LIST(k, n, lo, hi, el)	\
	{ k, K_STRLIST, apply_strlist, OFF(n), lo, hi, NULL, el }

/* every key of SPEC 3; nothing else is accepted */
static const struct key_rule key_rules[] = {
	GROUP("server"),
	STR("server.hostname", hostname, check_domain),
	LIST("server.listen", nlisten, 1, CONFIG_MAX_LISTEN, elem_listen),
	STR("server.user", user, check_nonempty),
	LIST("server.xclient_hosts", nxclient_hosts, 0, CONFIG_MAX_LIST, elem_cidr),
	BOOL("server.reject_bare_lf", reject_bare_lf),
	CHOICE("server.nul_bytes", nul_bytes),
	CHOICE("server.long_lines", long_lines),
	LIST("server.mx_names", nmx_names, 1, CONFIG_MAX_LIST, elem_mx_name),

	GROUP("paths"),
	STR("paths.spool", spool, check_abspath),
	STR("paths.state", state, check_abspath),
	STR("paths.control_socket", control_socket, check_sockpath),

	GROUP("state"),
	{ "state.backend", K_STRING, apply_backend, OFF(state_backend),
	    0, 0, NULL, NULL },
	STR("state.dsn", state_dsn, check_dsn),
	STR("state.password_file", state_password_file, check_abspath),
	INT("state.lease_time", state_lease_time, 2, LEASE_MAX),
	INT("state.lease_renew", state_lease_renew, 1, LEASE_MAX),

	GROUP("limits"),
	INT("limits.max_connections", max_connections, 1, MAX_CONNECTIONS_MAX),
	INT("limits.max_connections_per_client", max_connections_per_client,
	    1, MAX_CONNECTIONS_MAX),
	{ "limits.max_message_size", K_INT, apply_int64, OFF(max_message_size),
	    1, MESSAGE_SIZE_MAX, NULL, NULL },
	INT("limits.max_recipients", max_recipients, 1, MAX_RECIPIENTS_MAX),
	INT("limits.max_queued", max_queued, 1, QUEUED_MAX),
	{ "limits.queue_minfree", K_INT, apply_int64, OFF(queue_minfree),
	    0, MINFREE_MAX, NULL, NULL },
	INT("limits.command_timeout", command_timeout, 1, TIMEOUT_MAX),
	INT("limits.data_timeout", data_timeout, 1, TIMEOUT_MAX),

	GROUP("tls"),
	STR("tls.certificate", tls_certificate, check_abspath),
	STR("tls.key", tls_key, check_abspath),
	{ "tls.outbound", K_STRING, apply_outbound, OFF(tls_outbound),
	    0, 0, NULL, NULL },
	STR("tls.ciphers", tls_ciphers, check_ciphers),
	STR("tls.ciphersuites", tls_ciphersuites, check_ciphersuites),
	CHOICE("tls.min_protocol", tls_min_protocol),

	GROUP("hosting"),
	STR("hosting.destination", hosting_destination, check_destination),

	GROUP("delivery"),
	{ "delivery.retry_schedule", K_INTLIST, apply_retry, OFF(nretry_schedule),
	    1, RETRY_STEP_MAX, NULL, NULL },
	INT("delivery.max_lifetime", max_lifetime, 1, LIFETIME_MAX),
	INT("delivery.copy_lifetime", copy_lifetime, 1, LIFETIME_MAX),
	INT("delivery.connect_timeout", connect_timeout, 1, CONNECT_TIMEOUT_MAX),
	INT("delivery.max_connections_per_destination",
	    max_connections_per_destination, 1, DEST_CONNECTIONS_MAX),
	INT("delivery.smtp_port", smtp_port, 1, PORT_MAX),

	GROUP("dns"),
	LIST("dns.nameservers", nnameservers, 0, CONFIG_MAX_LIST, elem_nameserver),
	INT("dns.authoritative_port", authoritative_port, 1, PORT_MAX),

	GROUP("filters"),
	GROUP("filters.spf"),
	BOOL("filters.spf.enabled", spf_enabled),
	BOOL("filters.spf.reject_fail", spf_reject_fail),
	GROUP("filters.dnsbl"),
	LIST("filters.dnsbl.zones", ndnsbl_zones, 0, CONFIG_MAX_LIST, elem_zone),
	LIST("filters.dnsbl.allow_zones", ndnsbl_allow_zones, 0, CONFIG_MAX_LIST,
	    elem_allow_zone),
	INT("filters.pregreet_wait", pregreet_wait, 0, PREGREET_WAIT_MAX),
	BOOL("filters.helo_check", helo_check),
	GROUP("filters.rate_limit"),
	INT("filters.rate_limit.connections", rate_connections, 0,
	    RATE_CONNECTIONS_MAX),
	INT("filters.rate_limit.period", rate_period, 1, RATE_PERIOD_MAX),
	{ "filters.milters", K_GROUPLIST, apply_milters, OFF(nmilters),
	    0, CONFIG_MAX_MILTERS, NULL, NULL },
	{ "filters.quarantine_expiry", K_STRING, apply_quarantine_expiry,
	    OFF(quarantine_expiry_drop), 0, 0, NULL, NULL },

	GROUP("switch"),
	BOOL("switch.require_propagation", require_propagation),
	INT("switch.mx_watch_interval", mx_watch_interval, MX_WATCH_INTERVAL_MIN,
	    MX_WATCH_INTERVAL_MAX),

	GROUP("verify"),
	INT("verify.positive_lifetime", verify_positive_lifetime, 1,
	    VERIFY_LIFETIME_MAX),
	INT("verify.negative_lifetime", verify_negative_lifetime, 1,
	    VERIFY_LIFETIME_MAX),
	INT("verify.timeout", verify_timeout, 1, VERIFY_TIMEOUT_MAX),
	INT("verify.max_probes_per_minute", verify_rate, 1, VERIFY_RATE_MAX),

	GROUP("srs"),
	STR("srs.domain", srs_domain, check_domain),
	STR("srs.secret", srs_secret, check_secret),

	GROUP("metrics"),
	STR("metrics.listen", metrics_listen, check_listen),

	{ "recipient_delimiter", K_STRING, apply_delimiter,
	    OFF(recipient_delimiter), 0, 0, NULL, NULL },
};

/* source_name - the file a setting or error came from: libconfig names an
 * @include'd file as written, so put the include directory in front */
static const char *
source_name(const config_t *lc, const char *file, const char *path,
    char *buf, size_t len)
{
	const char *dir = config_get_include_dir(lc);

	if (file == NULL)
		return path;
	if (*file == '/' || strcmp(file, path) == 0 || dir == NULL)
		return file;
	snprintf(buf, len, "%s/%s", dir, file);
	return buf;
}

/* load_error - format "FILE:LINE: KEY: reason" into the caller's buffer */
static int __attribute__((format(printf, 4, 5)))
load_error(struct loader *ld, const config_setting_t *s, const char *key,
    const char *fmt, ...)
{
	char why[CONFIG_ERR_MAX], name[PATH_MAX];
	const char *file = source_name(ld->lc, config_setting_source_file(s),
	    ld->path, name, sizeof name);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", file,
	    (unsigned)config_setting_source_line(s), key, why);
	return -1;
}

/*
 * Syntax checks shared by the keys.
 */

/* config_valid_domain - letters, digits and hyphens in dot-separated labels */
int
config_valid_domain(const char *s)
{
	size_t len = strlen(s), label = 0;
	const char *p;

	if (len == 0 || len > DOMAIN_MAX)
		return 0;
	for (p = s; *p; p++) {
		if (*p == '.') {
			/* no empty label, no label ending in a hyphen */
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
		if (label == 0 && *p == '-')
			return 0;
		if (++label > DOMAIN_LABEL_MAX)
			return 0;
	}
	return label > 0 && p[-1] != '-';
}

/* is_addr - is S a numeric address of family AF? */
static int
is_addr(int af, const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(af, s, buf) == 1;
}

/* is_numeric - IPv6 when it was written in brackets, else IPv4 */
static int
is_numeric(const char *host, int bracket)
{
	return is_addr(bracket ? AF_INET6 : AF_INET, host);
}

static int
check_domain(const char *v, char *why, size_t len)
{
	if (config_valid_domain(v))
		return 0;
	snprintf(why, len, "\"%s\" is not a valid domain name", v);
	return -1;
}

static int
check_nonempty(const char *v, char *why, size_t len)
{
	if (*v != '\0')
		return 0;
	snprintf(why, len, "must not be empty");
	return -1;
}

static int
check_abspath(const char *v, char *why, size_t len)
{
	if (*v == '/')
		return 0;
	snprintf(why, len, "\"%s\" must be an absolute path", v);
	return -1;
}

/* check_dsn - a libpq connection string ("host=db1 dbname=mxrelay") or
 * URI, parsed as libpq will; the password belongs in state.password_file */
static int
check_dsn(const char *v, char *why, size_t len)
{
	PQconninfoOption *opts, *o;
	char *perr = NULL;
	int rc = 0;

	if ((opts = PQconninfoParse(v, &perr)) == NULL) {
		/* libpq's message ends with a newline */
		snprintf(why, len, "not a libpq connection string: %.*s",
		    perr ? (int)strcspn(perr, "\n") : 13,
		    perr ? perr : "out of memory");
		PQfreemem(perr);
		return -1;
	}
	for (o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val) {
			snprintf(why, len, "holds a password: put it in "
			    "state.password_file");
			rc = -1;
		}
	PQconninfoFree(opts);
	return rc;
}

static int
check_sockpath(const char *v, char *why, size_t len)
{
	if (check_abspath(v, why, len) < 0)
		return -1;
	if (strlen(v) < UNIX_PATH_MAX)
		return 0;
	snprintf(why, len, "must be shorter than %d bytes (a unix socket path)",
	    UNIX_PATH_MAX);
	return -1;
}

static int
check_destination(const char *v, char *why, size_t len)
{
	struct destination d;
	char reason[CONFIG_ERR_MAX];

	if (destination_parse(v, &d, reason, sizeof reason) == 0)
		return 0;
	snprintf(why, len, "\"%s\": %s", v, reason);
	return -1;
}

static int
check_secret(const char *v, char *why, size_t len)
{
	if (strlen(v) >= SRS_SECRET_MIN)
		return 0;
	snprintf(why, len, "must be at least %d characters long", SRS_SECRET_MIN);
	return -1;
}

/*
 * Destinations: smtp:HOST[:PORT], smtp:[HOST]:PORT, lmtp:[HOST]:PORT,
 * lmtp:unix:/PATH.
 */

static int
dest_unix(const char *path, struct destination *d, char *err, size_t errlen)
{
	if (*path != '/') {
		snprintf(err, errlen, "unix socket path must be absolute");
		return -1;
	}
	if (mx_strlcpy(d->unix_path, path, sizeof d->unix_path) >=
	    sizeof d->unix_path) {
		snprintf(err, errlen, "unix socket path is too long");
		return -1;
	}
	return 0;
}

/* destination_parse - parse S into D; see config.h */
int
destination_parse(const char *s, struct destination *d, char *err,
    size_t errlen)
{
	const char *rest;
	int bracket;

	memset(d, 0, sizeof *d);
	if (strncasecmp(s, "smtp:", 5) == 0)
		d->lmtp = 0;
	else if (strncasecmp(s, "lmtp:", 5) == 0)
		d->lmtp = 1;
	else {
		snprintf(err, errlen, "must start with smtp: or lmtp:");
		return -1;
	}
	rest = s + 5;
	if (d->lmtp && strncasecmp(rest, "unix:", 5) == 0)
		return dest_unix(rest + 5, d, err, errlen);

	bracket = *rest == '[';
	if (mx_split_hostport(rest, d->host, sizeof d->host, &d->port,
	    d->lmtp ? 0 : SMTP_DEFAULT_PORT) < 0) {
		snprintf(err, errlen, "bad host or port (IPv6 addresses go in "
		    "brackets, ports are 1-65535)");
		return -1;
	}
	if (d->port == 0) {
		snprintf(err, errlen, "lmtp needs a port: lmtp:[HOST]:PORT");
		return -1;
	}
	d->port_set = strchr(bracket ? strchr(rest, ']') : rest, ':') != NULL;
	if (!is_addr(AF_INET, d->host) && !config_valid_domain(d->host) &&
	    !(bracket && is_addr(AF_INET6, d->host))) {
		snprintf(err, errlen, "\"%s\" is not a host name or address",
		    d->host);
		return -1;
	}
	/* an address has no MX records, and LMTP never looks them up */
	d->mx_lookup = !d->lmtp && !bracket && !is_addr(AF_INET, d->host);
	return 0;
}

/* config_check_destination - is DEST a valid destination? */
int
config_check_destination(const char *dest, char *err, size_t errlen)
{
	struct destination d;

	return destination_parse(dest, &d, err, errlen);
}

/*
 * CIDRs for xclient_hosts.
 */

/* cidr_parse - see config.h */
int
cidr_parse(const char *s, struct cidr *c)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	int maxbits, i;
	char *ep;
	long p;

	memset(c, 0, sizeof *c);
	if (n == 0 || n >= sizeof addr)
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		maxbits = 128;
	} else
		return -1;
	c->prefix = maxbits;
	if (slash) {
		if (!isdigit((unsigned char)slash[1]))
			return -1;
		errno = 0;
		p = strtol(slash + 1, &ep, 10);
		if (*ep != '\0' || errno != 0 || p < 0 || p > maxbits)
			return -1;
		c->prefix = (int)p;
	}
	/* keep the network only, so matching is a plain prefix compare */
	for (i = 0; i < maxbits / 8; i++) {
		int bits = c->prefix - i * 8;
		if (bits <= 0)
			c->addr[i] = 0;
		else if (bits < 8)
			c->addr[i] &= (unsigned char)(0xff << (8 - bits));
	}
	return 0;
}

/* prefix_equal - do the first BITS bits of A and B agree? */
static int
prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int whole = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* cidr_match - is SA inside C? An IPv4-mapped IPv6 client (::ffff:a.b.c.d,
 * what a dual-stack listener reports) is compared as the IPv4 address. */
int
cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	unsigned char a[16];
	int family;

	if (sa->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, sa, sizeof sin);
		memcpy(a, &sin.sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, sa, sizeof sin6);
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			memcpy(a, &sin6.sin6_addr.s6_addr[12], 4);
			family = AF_INET;
		} else {
			memcpy(a, &sin6.sin6_addr, 16);
			family = AF_INET6;
		}
	} else
		return 0;

	if (family == AF_INET && c->family == AF_INET6) {
		/* an IPv4 client against a ::ffff:0:0/96-style CIDR */
		memmove(a + 12, a, 4);
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		family = AF_INET6;
	}
	if (family != c->family)
		return 0;
	return prefix_equal(a, c->addr, c->prefix);
}

/*
 * List elements.
 */

/* parse_listen - "IPv4:port" or "[IPv6]:port", numeric only */
static int
parse_listen(const char *v, struct listen_addr *la, char *why, size_t len)
{
	int bracket = *v == '[';

	if (mx_split_hostport(v, la->host, sizeof la->host, &la->port, 0) < 0 ||
	    la->port == 0 ||
	    !is_numeric(la->host, bracket)) {
		snprintf(why, len, "\"%s\" must be \"IPv4:port\" or "
		    "\"[IPv6]:port\" with a numeric address and a port 1-65535", v);
		return -1;
	}
	return 0;
}

/* elem_mx_name - a host name the fleet's MX records point at */
static int
elem_mx_name(struct config *cfg, int i, const char *v, char *why, size_t len)
{
	if (check_domain(v, why, len) == -1)
		return -1;
	cfg->mx_names[i] = mx_lower(xstrdup(v));
	return 0;
}

static int
elem_listen(struct config *cfg, int i, const char *v, char *why, size_t len)
{
	return parse_listen(v, &cfg->listen[i], why, len);
}

/* check_listen - metrics.listen: one address as in server.listen */
static int
check_listen(const char *v, char *why, size_t len)
{
	struct listen_addr la;

	return parse_listen(v, &la, why, len);
}

static int
elem_cidr(struct config *cfg, int i, const char *v, char *why, size_t len)
{
	if (cidr_parse(v, &cfg->xclient_hosts[i]) == 0)
		return 0;
	snprintf(why, len, "\"%s\" is not an address or CIDR "
	    "(192.0.2.0/24, 2001:db8::/32)", v);
	return -1;
}

/* elem_nameserver - "IP", "IPv4:port", "[IPv6]:port" or a bare IPv6 */
static int
elem_nameserver(struct config *cfg, int i, const char *v, char *why, size_t len)
{
	struct listen_addr *ns = &cfg->nameservers[i];
	int bracket = *v == '[';

	if (is_addr(AF_INET6, v)) {
		mx_strlcpy(ns->host, v, sizeof ns->host);
		ns->port = DNS_DEFAULT_PORT;
		return 0;
	}
	if (mx_split_hostport(v, ns->host, sizeof ns->host, &ns->port,
	    DNS_DEFAULT_PORT) < 0 ||
	    !is_numeric(ns->host, bracket)) {
		snprintf(why, len, "\"%s\" must be \"IP\", \"IPv4:port\" or "
		    "\"[IPv6]:port\" with a numeric address", v);
		return -1;
	}
	return 0;
}

/* parse_zone - "zone" or "zone=127.0.0.2,127.0.0.3": the name (malloc'd)
 * into *name and the listing codes into m. 0, or -1 with a reason. */
static int
parse_zone(const char *v, char **name, struct dnsbl_match *m, char *why,
    size_t len)
{
	char *copy = xstrdup(v), *codes, *tok, *save = NULL;

	memset(m, 0, sizeof *m);
	if ((codes = strchr(copy, '=')) != NULL)
		*codes++ = '\0';
	if (check_domain(copy, why, len) < 0)
		goto bad;
	if (codes != NULL) {
		for (tok = strtok_r(codes, ",", &save); tok;
		    tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ')
				tok++;
			if (m->ncodes == CONFIG_DNSBL_CODES_MAX) {
				snprintf(why, len, "\"%s\": at most %d codes", v,
				    CONFIG_DNSBL_CODES_MAX);
				goto bad;
			}
			if (inet_pton(AF_INET, tok, &m->codes[m->ncodes]) != 1 ||
			    (ntohl(m->codes[m->ncodes].s_addr) >> 24) != 127) {
				snprintf(why, len, "\"%s\": \"%s\" is not a 127.x.y.z "
				    "answer (write zone=127.0.0.2,127.0.0.3)", v, tok);
				goto bad;
			}
			m->ncodes++;
		}
		if (m->ncodes == 0) {
			snprintf(why, len, "\"%s\": no codes after '='", v);
			goto bad;
		}
	}
	*name = copy;
	return 0;
bad:
	free(copy);
	return -1;
}

static int
elem_zone(struct config *cfg, int i, const char *v, char *why, size_t len)
{
	return parse_zone(v, &cfg->dnsbl_zones[i], &cfg->dnsbl_match[i], why,
	    len);
}

static int
elem_allow_zone(struct config *cfg, int i, const char *v, char *why, size_t len)
{
	return parse_zone(v, &cfg->dnsbl_allow_zones[i],
	    &cfg->dnsbl_allow_match[i], why, len);
}

/*
 * Applying one setting to the config. Each apply function is called once
 * the setting's type is known to match its rule.
 */

#define FIELD(cfg, off, type)	((type *)(void *)((char *)(cfg) + (off)))

static int
apply_string(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	const char *v = config_setting_get_string(s);
	char why[CONFIG_ERR_MAX];
	char **field = FIELD(ld->cfg, r->off, char *);

	if (r->check && r->check(v, why, sizeof why) < 0)
		return load_error(ld, s, key, "%s", why);
	free(*field);
	*field = xstrdup(v);
	return 0;
}

/* literal_value - the integer written after "NAME =" (or ":") on line
 * LINE of FILE; 0 when it cannot be read back */
static int
literal_value(const char *file, unsigned line, const char *name, long long *v)
{
	char buf[CONFIG_LINE_MAX], *end;
	const char *p, *q;
	size_t nl = strlen(name);
	unsigned n = 0;
	FILE *fp;

	if ((fp = fopen(file, "r")) == NULL)
		return 0;
	while (n < line && fgets(buf, sizeof buf, fp) != NULL)
		n++;
	fclose(fp);
	if (n != line)
		return 0;
	for (p = buf; (p = strstr(p, name)) != NULL; p += nl) {
		if (p > buf && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
			continue;
		q = p + nl + strspn(p + nl, " \t");
		if (*q != '=' && *q != ':')
			continue;
		q += 1 + strspn(q + 1, " \t");
		errno = 0;
		*v = strtoll(q, &end, 0);
		if (end == q)
			return 0;
		if (errno == ERANGE)
			*v = *v < 0 ? LLONG_MIN : LLONG_MAX;
		return 1;
	}
	return 0;
}

/* int_wrapped - libconfig 1.5 keeps an integer written without the L
 * suffix in 32 bits and wraps a larger one without a word: 4294967396
 * reads as 100, 2^50 as 0. Read the literal back and compare. */
static int
int_wrapped(struct loader *ld, const config_setting_t *s, long long *v)
{
	char name[PATH_MAX];
	const char *file;

	if (config_setting_type(s) != CONFIG_TYPE_INT || config_setting_name(s) == NULL)
		return 0;
	file = source_name(ld->lc, config_setting_source_file(s), ld->path, name,
	    sizeof name);
	/* only a literal beyond 32 bits can have been wrapped (this also
	 * keeps a string on the same line that looks like "NAME = 5" out) */
	return literal_value(file, config_setting_source_line(s),
	    config_setting_name(s), v) && (*v < INT_MIN || *v > INT_MAX) &&
	    *v != (long long)config_setting_get_int(s);
}

/* int_in_range - the setting's value, or -1 with the error reported */
static int
int_in_range(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r, long long *v)
{
	if (int_wrapped(ld, s, v))
		return load_error(ld, s, key, "%lld needs the L suffix (%lldL): "
		    "libconfig keeps an integer without it in 32 bits", *v, *v);
	*v = config_setting_get_int64(s);
	if (*v < r->min || *v > r->max)
		return load_error(ld, s, key, "must be an integer between %lld "
		    "and %lld", r->min, r->max);
	return 0;
}

static int
apply_int(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	long long v;

	if (int_in_range(ld, s, key, r, &v) < 0)
		return -1;
	*FIELD(ld->cfg, r->off, int) = (int)v;
	return 0;
}

static int
apply_int64(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	long long v;

	if (int_in_range(ld, s, key, r, &v) < 0)
		return -1;
	*FIELD(ld->cfg, r->off, int64_t) = (int64_t)v;
	return 0;
}

static int
apply_bool(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	*FIELD(ld->cfg, r->off, int) = config_setting_get_bool(s) ? 1 : 0;
	return 0;
}

/* list_length - check the entry count against the rule's bounds */
static int
list_length(struct loader *ld, const config_setting_t *s, const char *key,
    long long min, long long max)
{
	int n = config_setting_length(s);

	if (n < min)
		return load_error(ld, s, key, "must not be empty");
	if (n > max)
		return load_error(ld, s, key, "must have at most %lld entries", max);
	return n;
}

static int
apply_strlist(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	char why[CONFIG_ERR_MAX];
	int *count = FIELD(ld->cfg, r->off, int);
	int i, n;

	if ((n = list_length(ld, s, key, r->min, r->max)) < 0)
		return -1;
	*count = 0;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (r->elem(ld->cfg, i, config_setting_get_string(e), why,
		    sizeof why) < 0)
			return load_error(ld, e, key, "%s", why);
		/* count as we go so config_free sees every stored string */
		*count = i + 1;
	}
	return 0;
}

/* apply_retry - delivery.retry_schedule: min/max bound each step */
static int
apply_retry(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	struct config *cfg = ld->cfg;
	int i, n;

	if ((n = list_length(ld, s, key, 1, CONFIG_MAX_LIST)) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		long long v = config_setting_get_int64(e);

		if (v < r->min || v > r->max)
			return load_error(ld, e, key, "every step must be an "
			    "integer between %lld and %lld", r->min, r->max);
		cfg->retry_schedule[i] = (int)v;
	}
	cfg->nretry_schedule = n;
	return 0;
}

static int
apply_outbound(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	static const struct {
		const char *name;
		enum tls_outbound mode;
	} modes[] = {
		{ "none", TLS_OUT_NONE },
		{ "opportunistic", TLS_OUT_OPPORTUNISTIC },
		{ "required", TLS_OUT_REQUIRED },
	};
	const char *v = config_setting_get_string(s);
	size_t i;

	for (i = 0; i < MX_ARRAY_LEN(modes); i++) {
		if (strcmp(v, modes[i].name) == 0) {
			ld->cfg->tls_outbound = modes[i].mode;
			return 0;
		}
	}
	return load_error(ld, s, key, "\"%s\" must be none, opportunistic or "
	    "required", v);
}

/* The string keys that take one of a few words, stored as the word's
 * index (the enums of config.h follow these orders). */
static const struct {
	const char *key;
	const char *names[5];
	const char *help;
} choices[] = {
	{ "server.nul_bytes", { "reject", "strip" }, "reject or strip" },
	{ "server.long_lines", { "fold", "refuse" }, "fold or refuse" },
	{ "tls.min_protocol", { "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" },
	    "TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3" },
};

static int
apply_choice(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	const char *v = config_setting_get_string(s);
	size_t i, j;

	for (i = 0; i < MX_ARRAY_LEN(choices); i++) {
		if (strcmp(choices[i].key, r->key) != 0)
			continue;
		for (j = 0; j < MX_ARRAY_LEN(choices[i].names) &&
		    choices[i].names[j] != NULL; j++)
			if (strcmp(v, choices[i].names[j]) == 0) {
				*FIELD(ld->cfg, r->off, int) = (int)j;
				return 0;
			}
		return load_error(ld, s, key, "\"%s\" must be %s", v,
		    choices[i].help);
	}
	return load_error(ld, s, key, "no choices known");
}

/* check_cipher_list - does OpenSSL take v as a TLS 1.2 cipher list
 * (tls13 0) or a TLS 1.3 ciphersuite list (tls13 1)? */
static int
check_cipher_list(const char *v, int tls13, char *why, size_t len)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int ok;

	if (ctx == NULL) {
		snprintf(why, len, "cannot check it: out of memory");
		return -1;
	}
	ok = tls13 ? SSL_CTX_set_ciphersuites(ctx, v) : SSL_CTX_set_cipher_list(ctx, v);
	SSL_CTX_free(ctx);
	if (ok == 1 && *v != '\0')
		return 0;
	snprintf(why, len, "\"%s\" selects no cipher OpenSSL knows (see ciphers(1))", v);
	return -1;
}

static int
check_ciphers(const char *v, char *why, size_t len)
{
	return check_cipher_list(v, 0, why, len);
}

static int
check_ciphersuites(const char *v, char *why, size_t len)
{
	return check_cipher_list(v, 1, why, len);
}

/* apply_backend - where the state lives: "sqlite" or "postgresql" */
static int
apply_backend(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	const char *v = config_setting_get_string(s);

	if (strcmp(v, "sqlite") == 0)
		ld->cfg->state_backend = STATE_SQLITE;
	else if (strcmp(v, "postgresql") == 0)
		ld->cfg->state_backend = STATE_POSTGRESQL;
	else
		return load_error(ld, s, key, "\"%s\" must be sqlite or "
		    "postgresql", v);
	return 0;
}

/* load_state - state.dsn and state.password_file go with postgresql; a
 * lease outlives two renewals */
static int
load_state(struct loader *ld, const config_t *lc)
{
	const config_setting_t *b = config_lookup(lc, "state.backend");
	const config_setting_t *d = config_lookup(lc, "state.dsn");
	const config_setting_t *p = config_lookup(lc, "state.password_file");
	const config_setting_t *lt = config_lookup(lc, "state.lease_time");

	if (ld->cfg->state_backend == STATE_POSTGRESQL && d == NULL)
		return load_error(ld, b, "state.dsn", "required when "
		    "state.backend is postgresql");
	if (ld->cfg->state_lease_renew * 2 > ld->cfg->state_lease_time)
		return load_error(ld, lt ? lt : config_lookup(lc,
		    "state.lease_renew"), lt ? "state.lease_time" :
		    "state.lease_renew", "the lease must last at least two "
		    "renewals (lease_time %d s, lease_renew %d s)",
		    ld->cfg->state_lease_time, ld->cfg->state_lease_renew);
	if (ld->cfg->state_backend != STATE_POSTGRESQL && (d || p))
		return load_error(ld, d ? d : p, d ? "state.dsn" :
		    "state.password_file", "only with state.backend "
		    "\"postgresql\"");
	return 0;
}

/* apply_delimiter - one character, or "" for no address extensions */
static int
apply_delimiter(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	const char *v = config_setting_get_string(s);
	unsigned char c = (unsigned char)v[0];

	if (c == '\0') {
		ld->cfg->recipient_delimiter = '\0';
		return 0;
	}
	if (v[1] != '\0' || !isgraph(c) || c == '@' || c == '"' || c == '\\')
		return load_error(ld, s, key, "must be a single character "
		    "(not @, \", \\ or white space) or \"\" for none");
	ld->cfg->recipient_delimiter = (char)c;
	return 0;
}

/* milter_socket - "inet:ADDRESS:PORT" ([v6] in brackets) or "unix:/PATH" */
static int
milter_socket(struct milter_conf *m, const char *v, char *why, size_t len)
{
	int port;

	if (strncmp(v, "unix:", 5) == 0) {
		if (v[5] != '/' || mx_strlcpy(m->unix_path, v + 5,
		    sizeof(m->unix_path)) >= sizeof(m->unix_path)) {
			snprintf(why, len, "\"%s\": unix: needs an absolute path "
			    "shorter than %zu bytes", v, sizeof(m->unix_path));
			return -1;
		}
		return 0;
	}
	if (strncmp(v, "inet:", 5) != 0 || mx_split_hostport(v + 5, m->host,
	    sizeof(m->host), &port, 0) < 0 || port == 0 ||
	    (!is_addr(AF_INET, m->host) && !is_addr(AF_INET6, m->host))) {
		snprintf(why, len, "\"%s\" must be inet:ADDRESS:PORT (a numeric "
		    "address, IPv6 in brackets) or unix:/PATH", v);
		return -1;
	}
	m->port = port;
	return 0;
}

/* milter_entry - one group of filters.milters */
static int
milter_entry(struct loader *ld, const config_setting_t *g, const char *key,
    struct milter_conf *m)
{
	int i, n = config_setting_length(g);
	char why[CONFIG_ERR_MAX];

	m->timeout = MILTER_TIMEOUT_DEFAULT;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(e);
		int t = config_setting_type(e);
		const char *sv = t == CONFIG_TYPE_STRING ?
		    config_setting_get_string(e) : NULL;

		if (strcmp(name, "name") == 0 && sv) {
			if (*sv == '\0' || strlen(sv) >= sizeof(m->name) ||
			    strpbrk(sv, " =\t\"") != NULL)
				return load_error(ld, e, key, "name must be 1 to %zu "
				    "characters without spaces, = or quotes",
				    sizeof(m->name) - 1);
			mx_strlcpy(m->name, sv, sizeof(m->name));
		} else if (strcmp(name, "socket") == 0 && sv) {
			if (milter_socket(m, sv, why, sizeof why) < 0)
				return load_error(ld, e, key, "%s", why);
			m->socket = xstrdup(sv);
		} else if (strcmp(name, "timeout") == 0 &&
		    (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)) {
			long long v = config_setting_get_int64(e);

			if (v < 1 || v > MILTER_TIMEOUT_MAX)
				return load_error(ld, e, key, "timeout must be an "
				    "integer between 1 and %d", MILTER_TIMEOUT_MAX);
			m->timeout = (int)v;
		} else if (strcmp(name, "on_error") == 0 && sv) {
			if (strcmp(sv, "tempfail") == 0)
				m->on_error_accept = 0;
			else if (strcmp(sv, "accept") == 0)
				m->on_error_accept = 1;
			else
				return load_error(ld, e, key, "on_error \"%s\" must "
				    "be tempfail or accept", sv);
		} else
			return load_error(ld, e, key, "unknown or mistyped key \"%s\" "
			    "(name, socket: strings; timeout: integer; on_error: "
			    "string)", name);
	}
	if (m->name[0] == '\0' || m->socket == NULL)
		return load_error(ld, g, key, "every milter needs a name and a socket");
	return 0;
}

/* apply_quarantine_expiry - held mail that expires: "bounce" or "drop" */
static int
apply_quarantine_expiry(struct loader *ld, const config_setting_t *s,
    const char *key, const struct key_rule *r)
{
	const char *v = config_setting_get_string(s);

	if (strcmp(v, "bounce") != 0 && strcmp(v, "drop") != 0)
		return load_error(ld, s, key, "\"%s\" must be bounce or drop", v);
	ld->cfg->quarantine_expiry_drop = strcmp(v, "drop") == 0;
	return 0;
}

/* apply_milters - filters.milters: the chain, in order; names unique */
static int
apply_milters(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	struct config *cfg = ld->cfg;
	int i, j, n;

	if ((n = list_length(ld, s, key, r->min, r->max)) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(s, (unsigned)i);

		cfg->nmilters = i + 1;	/* so config_free sees the socket */
		if (milter_entry(ld, g, key, &cfg->milters[i]) < 0)
			return -1;
		for (j = 0; j < i; j++)
			if (strcmp(cfg->milters[j].name, cfg->milters[i].name) == 0)
				return load_error(ld, g, key, "milter name \"%s\" "
				    "is used twice", cfg->milters[i].name);
	}
	return 0;
}

/*
 * The walk.
 */

static const struct key_rule *
rule_find(const char *key)
{
	size_t i;

	for (i = 0; i < MX_ARRAY_LEN(key_rules); i++)
		if (strcmp(key_rules[i].key, key) == 0)
			return &key_rules[i];
	return NULL;
}

/* kind_matches - does the setting's libconfig type fit the rule's kind?
 * Integers may come as INT or INT64 (libconfig promotes big values). */
static int
kind_matches(enum key_kind kind, const config_setting_t *s)
{
	int t = config_setting_type(s), i, n;

	switch (kind) {
	case K_GROUP:
		return t == CONFIG_TYPE_GROUP;
	case K_STRING:
		return t == CONFIG_TYPE_STRING;
	case K_INT:
		return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
	case K_BOOL:
		return t == CONFIG_TYPE_BOOL;
	case K_GROUPLIST:
		if (t != CONFIG_TYPE_LIST)
			return 0;
		n = config_setting_length(s);
		for (i = 0; i < n; i++)
			if (!config_setting_is_group(config_setting_get_elem(s,
			    (unsigned)i)))
				return 0;
		return 1;
	case K_STRLIST:
	case K_INTLIST:
		if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST)
			return 0;
		n = config_setting_length(s);
		for (i = 0; i < n; i++) {
			t = config_setting_type(config_setting_get_elem(s,
			    (unsigned)i));
			if (kind == K_STRLIST ? t != CONFIG_TYPE_STRING :
			    t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
				return 0;
		}
		return 1;
	}
	return 0;
}

static int
type_error(struct loader *ld, const config_setting_t *s, const char *key,
    const struct key_rule *r)
{
	static const char *const want[] = {
		[K_GROUP] = "a group { ... }",
		[K_STRING] = "a string",
		[K_BOOL] = "a boolean (true or false)",
		[K_STRLIST] = "a list of strings [ \"...\" ]",
		[K_INTLIST] = "a list of integers [ ... ]",
		[K_GROUPLIST] = "a list of groups ( { ... }, ... )",
	};

	if (r->kind == K_INT)
		return load_error(ld, s, key, "must be an integer between %lld "
		    "and %lld", r->min, r->max);
	return load_error(ld, s, key, "must be %s", want[r->kind]);
}

/* load_group - check and apply every setting of GRP; PREFIX is its path */
static int
load_group(struct loader *ld, const config_setting_t *grp, const char *prefix)
{
	char key[CONFIG_KEY_MAX];
	const struct key_rule *r;
	int i, n = config_setting_length(grp);

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);

		if (prefix)
			snprintf(key, sizeof key, "%s.%s", prefix, name);
		else
			snprintf(key, sizeof key, "%s", name);
		if ((r = rule_find(key)) == NULL)
			return load_error(ld, s, key, "unknown %s",
			    config_setting_is_group(s) ? "group" : "key");
		if (!kind_matches(r->kind, s))
			return type_error(ld, s, key, r);
		if (r->kind == K_GROUP) {
			if (load_group(ld, s, key) < 0)
				return -1;
		} else if (r->apply(ld, s, key, r) < 0)
			return -1;
	}
	return 0;
}

/* load_pair - A and B are set together or not at all */
static int
load_pair(struct loader *ld, const config_t *lc, const char *a, const char *b)
{
	const config_setting_t *sa = config_lookup(lc, a);
	const config_setting_t *sb = config_lookup(lc, b);

	if (sa && !sb)
		return load_error(ld, sa, b, "required when %s is set", a);
	if (sb && !sa)
		return load_error(ld, sb, a, "required when %s is set", b);
	return 0;
}

/*
 * Public entry points.
 */

/* host_fqdn - the host's canonical name, else its plain host name */
static char *
host_fqdn(void)
{
	char name[CONFIG_HOSTNAME_MAX];
	struct addrinfo hints, *res = NULL;
	char *fqdn;

	if (gethostname(name, sizeof name) < 0)
		return xstrdup("localhost");
	name[sizeof name - 1] = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(name, NULL, &hints, &res) == 0 && res &&
	    res->ai_canonname && *res->ai_canonname)
		fqdn = xstrdup(res->ai_canonname);
	else
		fqdn = xstrdup(name);
	if (res)
		freeaddrinfo(res);
	return mx_lower(fqdn);
}

/* config_new - every default except the host name, which may need DNS */
static struct config *
config_new(void)
{
	static const int retry[] = { 60, 300, 900, 1800, 3600 };
	struct config *cfg = xcalloc(1, sizeof *cfg);
	size_t i;

	mx_strlcpy(cfg->listen[0].host, "0.0.0.0", sizeof cfg->listen[0].host);
	cfg->listen[0].port = SMTP_DEFAULT_PORT;
	mx_strlcpy(cfg->listen[1].host, "::", sizeof cfg->listen[1].host);
	cfg->listen[1].port = SMTP_DEFAULT_PORT;
	cfg->nlisten = 2;
	cfg->user = xstrdup("mxrelay");

	cfg->spool = xstrdup("/var/spool/mxrelay");
	cfg->state = xstrdup("/var/lib/mxrelay");
	cfg->control_socket = xstrdup("/run/mxrelay/control.sock");

	cfg->max_connections = 10000;
	cfg->max_connections_per_client = 50;
	cfg->max_message_size = 52428800;
	cfg->max_recipients = 1000;
	/* about 1 KB of memory per queued message (bench/README.md): 1 GB */
	cfg->max_queued = 1000000;
	cfg->queue_minfree = 0;		/* 1.5 x max_message_size applies */
	cfg->command_timeout = 300;
	cfg->data_timeout = 600;

	cfg->tls_outbound = TLS_OUT_OPPORTUNISTIC;
	cfg->tls_ciphers = xstrdup(TLS_CIPHERS_DEFAULT);
	cfg->tls_ciphersuites = xstrdup(TLS_CIPHERSUITES_DEFAULT);
	cfg->tls_min_protocol = TLS_PROTO_1_2;	/* RFC 8996: TLS 1.0 and 1.1 are deprecated */
	cfg->reject_bare_lf = 1;
	cfg->nul_bytes = NUL_REJECT;
	cfg->long_lines = LONG_LINES_FOLD;

	for (i = 0; i < MX_ARRAY_LEN(retry); i++)
		cfg->retry_schedule[i] = retry[i];
	cfg->nretry_schedule = (int)MX_ARRAY_LEN(retry);
	cfg->max_lifetime = 432000;
	cfg->copy_lifetime = 86400;
	cfg->connect_timeout = 30;
	cfg->max_connections_per_destination = 20;
	cfg->smtp_port = SMTP_DEFAULT_PORT;

	cfg->spf_enabled = 1;
	cfg->spf_reject_fail = 1;
	cfg->pregreet_wait = 0;
	cfg->helo_check = 1;
	cfg->rate_connections = 0;
	cfg->rate_period = RATE_PERIOD_DEFAULT;

	cfg->require_propagation = 1;
	cfg->verify_positive_lifetime = VERIFY_POSITIVE_DEFAULT;
	cfg->verify_negative_lifetime = VERIFY_NEGATIVE_DEFAULT;
	cfg->verify_timeout = VERIFY_TIMEOUT_DEFAULT;
	cfg->verify_rate = VERIFY_RATE_DEFAULT;
	cfg->authoritative_port = DNS_DEFAULT_PORT;
	cfg->mx_watch_interval = MX_WATCH_INTERVAL_DEFAULT;

	cfg->recipient_delimiter = '+';
	cfg->state_lease_time = 5;
	cfg->state_lease_renew = 1;
	return cfg;
}

/* mx_names_default - server.mx_names defaults to [ server.hostname ] */
static void
mx_names_default(struct config *cfg)
{
	if (cfg->nmx_names == 0 && cfg->hostname != NULL)
		cfg->mx_names[cfg->nmx_names++] = mx_lower(xstrdup(cfg->hostname));
}

/* config_defaults - a config holding every default (no file) */
struct config *
config_defaults(void)
{
	struct config *cfg = config_new();

	cfg->hostname = host_fqdn();
	mx_names_default(cfg);
	return cfg;
}

/* config_parse_file - parse PATH with libconfig, reporting syntax errors */
static int
config_parse_file(config_t *lc, const char *path, char *err, size_t errlen)
{
	FILE *fp;
	char *dir, *slash, name[PATH_MAX];
	const char *file;

	/* open it ourselves first: libconfig's I/O error has no errno */
	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	fclose(fp);

	/* @include "x" is relative to the file's directory */
	dir = xstrdup(path);
	if ((slash = strrchr(dir, '/')) != NULL) {
		slash[slash == dir] = '\0';
		config_set_include_dir(lc, dir);
	}
	free(dir);

	if (config_read_file(lc, path) == CONFIG_TRUE)
		return 0;
	file = source_name(lc, config_error_file(lc), path, name, sizeof name);
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO)
		snprintf(err, errlen, "%s: cannot read: %s", file,
		    config_error_text(lc));
	else
		snprintf(err, errlen, "%s:%d: syntax error: %s", file,
		    config_error_line(lc), config_error_text(lc));
	return -1;
}

/* config_load - read and validate PATH; see config.h */
struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld;
	config_t lc;
	int rc;

	config_init(&lc);
	if (config_parse_file(&lc, path, err, errlen) < 0) {
		config_destroy(&lc);
		return NULL;
	}
	ld.path = path;
	ld.lc = &lc;
	ld.cfg = config_new();
	ld.err = err;
	ld.errlen = errlen;
	rc = load_group(&ld, config_root_setting(&lc), NULL);
	if (rc == 0)
		rc = load_pair(&ld, &lc, "tls.certificate", "tls.key");
	if (rc == 0)
		rc = load_pair(&ld, &lc, "srs.domain", "srs.secret");
	if (rc == 0)
		rc = load_state(&ld, &lc);
	config_destroy(&lc);
	if (rc < 0) {
		config_free(ld.cfg);
		return NULL;
	}
	ld.cfg->path = xstrdup(path);
	if (ld.cfg->hostname == NULL)
		ld.cfg->hostname = host_fqdn();
	mx_names_default(ld.cfg);
	return ld.cfg;
}

/* config_free - release a config and everything it owns */
void
config_free(struct config *cfg)
{
	int i;

	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->user);
	free(cfg->spool);
	free(cfg->state);
	free(cfg->control_socket);
	free(cfg->state_dsn);
	free(cfg->state_password_file);
	free(cfg->tls_certificate);
	free(cfg->tls_key);
	free(cfg->tls_ciphers);
	free(cfg->tls_ciphersuites);
	free(cfg->hosting_destination);
	for (i = 0; i < cfg->nmx_names; i++)
		free(cfg->mx_names[i]);
	for (i = 0; i < cfg->ndnsbl_zones; i++)
		free(cfg->dnsbl_zones[i]);
	for (i = 0; i < cfg->ndnsbl_allow_zones; i++)
		free(cfg->dnsbl_allow_zones[i]);
	for (i = 0; i < cfg->nmilters; i++)
		free(cfg->milters[i].socket);
	free(cfg->srs_domain);
	free(cfg->srs_secret);
	free(cfg->metrics_listen);
	free(cfg);
}

/* carry_string - keep old's value of a restart-only string key */
static int
carry_string(char **nv, const char *ov, const char *key, char *warn, size_t len)
{
	if ((*nv == NULL) == (ov == NULL) && (ov == NULL || strcmp(*nv, ov) == 0))
		return 0;
	free(*nv);
	*nv = ov ? xstrdup(ov) : NULL;
	snprintf(warn + strlen(warn), len - strlen(warn), "%s%s", *warn ? ", " : "", key);
	return 1;
}

/* config_carry_static - a reload cannot rebind listeners, change user,
 * move the spool, state or control socket, or switch nameservers: keep
 * old's values of those keys in nw. warn lists the keys that differed
 * (they take effect at the next restart). */
void
config_carry_static(struct config *nw, const struct config *old, char *warn, size_t len)
{
	warn[0] = '\0';
	if (nw->nlisten != old->nlisten ||
	    memcmp(nw->listen, old->listen, sizeof(nw->listen[0]) * (size_t)old->nlisten) != 0) {
		memcpy(nw->listen, old->listen, sizeof(nw->listen));
		nw->nlisten = old->nlisten;
		snprintf(warn + strlen(warn), len - strlen(warn), "%sserver.listen", *warn ? ", " : "");
	}
	if (nw->nnameservers != old->nnameservers ||
	    memcmp(nw->nameservers, old->nameservers,
	    sizeof(nw->nameservers[0]) * (size_t)old->nnameservers) != 0) {
		memcpy(nw->nameservers, old->nameservers, sizeof(nw->nameservers));
		nw->nnameservers = old->nnameservers;
		snprintf(warn + strlen(warn), len - strlen(warn), "%sdns.nameservers", *warn ? ", " : "");
	}
	carry_string(&nw->user, old->user, "server.user", warn, len);
	carry_string(&nw->spool, old->spool, "paths.spool", warn, len);
	carry_string(&nw->state, old->state, "paths.state", warn, len);
	carry_string(&nw->control_socket, old->control_socket, "paths.control_socket", warn, len);
	if (nw->state_backend != old->state_backend) {
		nw->state_backend = old->state_backend;
		snprintf(warn + strlen(warn), len - strlen(warn), "%sstate.backend", *warn ? ", " : "");
	}
	if (nw->state_lease_time != old->state_lease_time ||
	    nw->state_lease_renew != old->state_lease_renew) {
		nw->state_lease_time = old->state_lease_time;
		nw->state_lease_renew = old->state_lease_renew;
		snprintf(warn + strlen(warn), len - strlen(warn), "%sstate.lease_*", *warn ? ", " : "");
	}
	carry_string(&nw->state_dsn, old->state_dsn, "state.dsn", warn, len);
	carry_string(&nw->state_password_file, old->state_password_file,
	    "state.password_file", warn, len);
	carry_string(&nw->metrics_listen, old->metrics_listen, "metrics.listen", warn, len);
}
