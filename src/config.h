/* config.h - the libconfig file as a validated struct config */
#ifndef MX_CONFIG_H
#define MX_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define CONFIG_DEFAULT_PATH	"/etc/mxrelay/mxrelay.conf"
#define CONFIG_MAX_LISTEN	16
#define CONFIG_MAX_LIST		64	/* xclient_hosts, nameservers, zones, retry steps */
#define CONFIG_ERR_MAX		512
#define CONFIG_DNSBL_CODES_MAX	16	/* "zone=127.0.0.2,127.0.0.3": codes per zone */

/* a CIDR for xclient_hosts */
struct cidr {
	int family;			/* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
};

struct listen_addr {
	char host[256];			/* numeric address, no brackets */
	int port;
};

enum state_backend { STATE_SQLITE = 0, STATE_POSTGRESQL = 1 };

enum tls_outbound { TLS_OUT_NONE, TLS_OUT_OPPORTUNISTIC, TLS_OUT_REQUIRED };
/* tls.min_protocol, in the order of the names config.c accepts */
enum tls_protocol { TLS_PROTO_1_0, TLS_PROTO_1_1, TLS_PROTO_1_2, TLS_PROTO_1_3 };
/* server.nul_bytes and server.long_lines */
enum nul_policy { NUL_REJECT, NUL_STRIP };
enum long_line_policy { LONG_LINES_FOLD, LONG_LINES_REFUSE };

/* The defaults of tls.ciphers and tls.ciphersuites, see mxrelay.conf(5):
 * forward-secret AEAD suites first (server preference picks them for
 * every client that has one), CBC suites kept after them for senders
 * that have nothing else, since on port 25 their alternative is plaintext. */
#define TLS_CIPHERS_DEFAULT \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES:DHE+AES:!aNULL:!MD5:!DSS"
#define TLS_CIPHERSUITES_DEFAULT \
	"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

#define CONFIG_MAX_MILTERS	8
#define CONFIG_MILTER_NAME_MAX	32

/* one milter of filters.milters */
struct milter_conf {
	char name[CONFIG_MILTER_NAME_MAX];
	char *socket;			/* as written, for logs */
	char host[64];			/* inet: numeric address */
	int port;
	char unix_path[108];		/* unix: */
	int timeout;			/* seconds, per reply */
	int on_error_accept;		/* 0: tempfail (default), 1: accept */
};

/* the answers of a DNSBL zone that count as a listing ("zone=127.0.0.2,
 * 127.0.0.3"); none given: any 127.0.0.0/8 answer but 127.255.255.0/24,
 * the "query refused" codes of several lists */
struct dnsbl_match {
	int ncodes;
	struct in_addr codes[CONFIG_DNSBL_CODES_MAX];
};

struct config {
	char *path;			/* file it was read from */

	/* server */
	char *hostname;
	struct listen_addr listen[CONFIG_MAX_LISTEN];
	int nlisten;
	char *user;
	struct cidr xclient_hosts[CONFIG_MAX_LIST];
	int nxclient_hosts;
	int reject_bare_lf;		/* 500 5.5.2 to a command line ended by a bare LF */
	int nul_bytes;			/* enum nul_policy */
	int long_lines;			/* enum long_line_policy */
	char *mx_names[CONFIG_MAX_LIST];	/* the fleet's MX names, lower case;
						 * default [ hostname ] */
	int nmx_names;

	/* paths */
	char *spool;
	char *state;
	char *control_socket;

	/* state: the store's database (SPEC 4, 7) */
	enum state_backend state_backend;
	char *state_dsn;		/* postgresql: libpq connection string */
	char *state_password_file;	/* postgresql: NULL, or the password's file */
	int state_lease_time;		/* postgresql: seconds a lease is valid */
	int state_lease_renew;		/* postgresql: seconds between renewals */

	/* limits */
	int max_connections;
	int max_connections_per_client;
	int64_t max_message_size;
	int max_recipients;
	int max_queued;			/* messages; MAIL gets 452 4.3.1 beyond */
	int64_t queue_minfree;		/* bytes free in the spool's file system */
	int command_timeout;
	int data_timeout;

	/* tls */
	char *tls_certificate;		/* NULL: STARTTLS not offered */
	char *tls_key;
	enum tls_outbound tls_outbound;
	char *tls_ciphers;		/* TLS 1.2 and older: OpenSSL cipher list */
	char *tls_ciphersuites;		/* TLS 1.3 */
	int tls_min_protocol;		/* enum tls_protocol */

	/* hosting */
	char *hosting_destination;	/* NULL until set */

	/* delivery */
	int retry_schedule[CONFIG_MAX_LIST];
	int nretry_schedule;
	int max_lifetime;
	int copy_lifetime;		/* a dual-delivery copy: retried, then dropped */
	int connect_timeout;
	int max_connections_per_destination;
	int smtp_port;

	/* dns: empty list = /etc/resolv.conf */
	struct listen_addr nameservers[CONFIG_MAX_LIST];
	int nnameservers;
	int authoritative_port;		/* the MX watch asks a domain's NS here */

	/* filters */
	int spf_enabled;
	int spf_reject_fail;
	char *dnsbl_zones[CONFIG_MAX_LIST];	/* zone names (without "=codes") */
	struct dnsbl_match dnsbl_match[CONFIG_MAX_LIST];
	int ndnsbl_zones;
	char *dnsbl_allow_zones[CONFIG_MAX_LIST];	/* listed: skip the filters */
	struct dnsbl_match dnsbl_allow_match[CONFIG_MAX_LIST];
	int ndnsbl_allow_zones;
	int pregreet_wait;
	int helo_check;			/* refuse filtered recipients after an invalid HELO */
	int rate_connections;		/* per client and period; 0: no rate limit */
	int rate_period;		/* seconds */
	struct milter_conf milters[CONFIG_MAX_MILTERS];	/* in chain order */
	int nmilters;
	int quarantine_expiry_drop;	/* held mail expires: 0 bounce, 1 drop */

	/* switch: the migration assistant (SPEC 10) */
	int require_propagation;	/* switch to hosted waits for the MX change */
	int mx_watch_interval;		/* seconds between MX looks per domain */

	/* verify: recipient verification at the old server (SPEC 10) */
	int verify_positive_lifetime;	/* seconds an accepted address is kept */
	int verify_negative_lifetime;	/* seconds a rejected one is kept */
	int verify_timeout;		/* seconds the RCPT waits, then 450 */
	int verify_rate;		/* probes per domain and minute */

	/* srs */
	char *srs_domain;
	char *srs_secret;

	/* metrics: "IP:port" of the Prometheus endpoint, NULL: none */
	char *metrics_listen;

	/* top level */
	char recipient_delimiter;	/* '\0' = none */
};

/* config_load - read and validate PATH. Returns a config, or NULL with a
 * message "FILE:LINE: KEY: reason" in err. */
struct config *config_load(const char *path, char *err, size_t errlen);
/* config_defaults - a config holding every default (no file) */
struct config *config_defaults(void);
void config_free(struct config *);
/* config_carry_static - on reload, keep old's listen, user, paths and
 * nameservers and metrics.listen in nw (they need a restart); warn names those that differed */
void config_carry_static(struct config *nw, const struct config *old, char *warn, size_t len);
/* cidr_match - is the address (AF_INET/AF_INET6 sockaddr) inside c? */
int cidr_match(const struct cidr *c, const struct sockaddr *sa);
/* destination syntax of SPEC 3: smtp:HOST[:PORT], smtp:[HOST]:PORT,
 * lmtp:[HOST]:PORT, lmtp:unix:/PATH. Returns 0 when valid. */
int config_check_destination(const char *dest, char *err, size_t errlen);

/* a parsed destination (hosting, legacy servers) */
struct destination {
	int lmtp;			/* 1: LMTP (RFC 2033), 0: SMTP */
	int mx_lookup;			/* 1: smtp:HOST, look up HOST's MX first */
	char host[256];			/* name or numeric address, no brackets;
					 * empty for lmtp:unix: */
	int port;			/* 0 for lmtp:unix: */
	int port_set;			/* 1: PORT was written; 0: port is the
					 * default 25 and delivery may use
					 * delivery.smtp_port instead */
	char unix_path[108];		/* lmtp:unix:/PATH, else empty */
};

/* destination_parse - parse S into D. Returns 0, or -1 with a reason in err.
 * smtp: port defaults to 25 (port_set 0); lmtp with a host requires a port. */
int destination_parse(const char *s, struct destination *d, char *err,
    size_t errlen);
/* cidr_parse - "10.0.0.0/8", "2001:db8::/32", "192.0.2.1" (full-length
 * prefix) into c, host bits cleared. Returns 0, or -1 when malformed. */
int cidr_parse(const char *s, struct cidr *c);
/* config_valid_domain - is S a syntactically valid domain name? */
int config_valid_domain(const char *s);

#endif
