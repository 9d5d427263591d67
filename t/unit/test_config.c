/* test_config.c - config_load defaults, every key, error messages with
 * file:line:key, destination_parse and cidr_match */
#include "autoconf.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "tap.h"
#include "util.h"

#define TMP_TEMPLATE	"/tmp/mxrelay-test-config-XXXXXX"

/* write_conf - TEXT into a fresh temp file; path into PATH */
static void
write_conf(const char *text, char *path, size_t len)
{
	FILE *fp;
	int fd;

	snprintf(path, len, "%s", TMP_TEMPLATE);
	if ((fd = mkstemp(path)) < 0 || (fp = fdopen(fd, "w")) == NULL) {
		perror("mkstemp");
		exit(1);
	}
	fputs(text, fp);
	fclose(fp);
}

/* load_text - config_load on TEXT written to a temp file */
static struct config *
load_text(const char *text, char *path, size_t plen, char *err, size_t elen)
{
	struct config *cfg;

	write_conf(text, path, plen);
	err[0] = '\0';
	cfg = config_load(path, err, elen);
	unlink(path);
	return cfg;
}

static void
test_defaults(void)
{
	struct config *cfg = config_defaults();

	ok(cfg->hostname != NULL && cfg->hostname[0] != '\0',
	    "default hostname is the host's name (%s)", cfg->hostname);
	is_int(cfg->nlisten, 2, "two default listeners");
	is_str(cfg->listen[0].host, "0.0.0.0", "listen 0 host");
	is_int(cfg->listen[0].port, 25, "listen 0 port");
	is_str(cfg->listen[1].host, "::", "listen 1 host");
	is_int(cfg->listen[1].port, 25, "listen 1 port");
	is_str(cfg->user, "mxrelay", "user");
	is_int(cfg->nxclient_hosts, 0, "no xclient hosts");
	is_str(cfg->spool, "/var/spool/mxrelay", "spool");
	is_str(cfg->state, "/var/lib/mxrelay", "state");
	is_str(cfg->control_socket, "/run/mxrelay/control.sock", "control socket");
	is_int(cfg->max_connections, 10000, "max_connections");
	is_int(cfg->max_connections_per_client, 50, "max_connections_per_client");
	is_int((long)cfg->max_message_size, 52428800, "max_message_size");
	is_int(cfg->max_recipients, 1000, "max_recipients");
	is_int(cfg->command_timeout, 300, "command_timeout");
	is_int(cfg->data_timeout, 600, "data_timeout");
	ok(cfg->tls_certificate == NULL && cfg->tls_key == NULL,
	    "no certificate by default: no STARTTLS");
	is_int(cfg->tls_outbound, TLS_OUT_OPPORTUNISTIC, "outbound opportunistic");
	is_str(cfg->tls_ciphers, TLS_CIPHERS_DEFAULT, "tls.ciphers default");
	is_str(cfg->tls_ciphersuites, TLS_CIPHERSUITES_DEFAULT, "tls.ciphersuites default");
	is_int(cfg->tls_min_protocol, TLS_PROTO_1_2, "tls.min_protocol TLSv1.2");
	is_int(cfg->reject_bare_lf, 1, "reject_bare_lf on");
	is_int(cfg->nul_bytes, NUL_REJECT, "nul_bytes reject");
	is_int(cfg->long_lines, LONG_LINES_FOLD, "long_lines fold");
	ok(cfg->hosting_destination == NULL, "no hosting destination");
	is_int(cfg->nretry_schedule, 5, "five retry steps");
	ok(cfg->retry_schedule[0] == 60 && cfg->retry_schedule[1] == 300 &&
	    cfg->retry_schedule[2] == 900 && cfg->retry_schedule[3] == 1800 &&
	    cfg->retry_schedule[4] == 3600, "retry schedule values");
	is_int(cfg->max_lifetime, 432000, "max_lifetime");
	is_int(cfg->connect_timeout, 30, "connect_timeout");
	is_int(cfg->max_connections_per_destination, 20,
	    "max_connections_per_destination");
	is_int(cfg->smtp_port, 25, "smtp_port");
	is_int(cfg->nnameservers, 0, "no nameservers: resolv.conf");
	ok(cfg->spf_enabled && cfg->spf_reject_fail, "spf on, rejecting fail");
	is_int(cfg->ndnsbl_zones, 0, "no dnsbl zones");
	is_int(cfg->pregreet_wait, 0, "pregreet_wait");
	ok(cfg->helo_check, "helo_check on by default");
	ok(cfg->rate_connections == 0 && cfg->rate_period == 60, "no rate limit by default");
	is_int(cfg->ndnsbl_allow_zones, 0, "no allow zones");
	ok(cfg->srs_domain == NULL && cfg->srs_secret == NULL, "no srs");
	is_int(cfg->recipient_delimiter, '+', "recipient_delimiter");
	config_free(cfg);
}

static const char full_conf[] =
    "# every key\n"
    "server = {\n"
    "  hostname = \"mx1.example.net\";\n"
    "  listen = [ \"127.0.0.1:2525\", \"[::1]:2526\" ];\n"
    "  user = \"nobody\";\n"
    "  xclient_hosts = [ \"127.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\" ];\n"
    "  reject_bare_lf = false;\n"
    "  nul_bytes = \"strip\";\n"
    "  long_lines = \"refuse\";\n"
    "};\n"
    "paths = {\n"
    "  spool = \"/tmp/s\";\n"
    "  state = \"/tmp/st\";\n"
    "  control_socket = \"/tmp/c.sock\";\n"
    "};\n"
    "limits = {\n"
    "  max_connections = 100;\n"
    "  max_connections_per_client = 5;\n"
    "  max_message_size = 10000000000L;\n"
    "  max_recipients = 7;\n"
    "  command_timeout = 60;\n"
    "  data_timeout = 120;\n"
    "};\n"
    "tls = {\n"
    "  certificate = \"/etc/x/cert.pem\";\n"
    "  key = \"/etc/x/key.pem\";\n"
    "  outbound = \"required\";\n"
    "  ciphers = \"ECDHE+AESGCM\";\n"
    "  ciphersuites = \"TLS_AES_128_GCM_SHA256\";\n"
    "  min_protocol = \"TLSv1.3\";\n"
    "};\n"
    "hosting = { destination = \"lmtp:[127.0.0.1]:24\"; };\n"
    "delivery = {\n"
    "  retry_schedule = [ 10, 20 ];\n"
    "  max_lifetime = 3600;\n"
    "  connect_timeout = 5;\n"
    "  max_connections_per_destination = 3;\n"
    "  smtp_port = 2525;\n"
    "};\n"
    "dns = { nameservers = [ \"127.0.0.1:5353\", \"[::1]:53\", \"10.0.0.1\","
    " \"::2\" ]; };\n"
    "filters = {\n"
    "  spf = { enabled = false; reject_fail = false; };\n"
    "  dnsbl = { zones = [ \"zen.spamhaus.org\", \"bl.example=127.0.0.2, 127.0.0.10\" ];\n"
    "    allow_zones = [ \"wl.example\" ]; };\n"
    "  pregreet_wait = 3;\n"
    "  helo_check = false;\n"
    "  rate_limit = { connections = 20; period = 30; };\n"
    "  milters = ( { name = \"rspamd\"; socket = \"inet:127.0.0.1:11332\"; timeout = 30;"
    " on_error = \"tempfail\"; },\n"
    "    { name = \"dkim\"; socket = \"unix:/run/opendkim.sock\"; on_error = \"accept\"; } );\n"
    "};\n"
    "srs = { domain = \"fwd.example.net\"; secret = \"0123456789abcdef\"; };\n"
    "recipient_delimiter = \"-\";\n";

static void
test_full(void)
{
	char path[64], err[CONFIG_ERR_MAX];
	struct config *cfg = load_text(full_conf, path, sizeof path, err, sizeof err);

	if (!ok(cfg != NULL, "full config loads")) {
		diag("error: %s", err);
		return;
	}
	is_str(cfg->path, path, "path kept");
	is_str(cfg->hostname, "mx1.example.net", "hostname");
	is_int(cfg->nlisten, 2, "nlisten");
	is_str(cfg->listen[0].host, "127.0.0.1", "listen v4 host");
	is_int(cfg->listen[0].port, 2525, "listen v4 port");
	is_str(cfg->listen[1].host, "::1", "listen v6 host, no brackets");
	is_int(cfg->listen[1].port, 2526, "listen v6 port");
	is_str(cfg->user, "nobody", "user");
	is_int(cfg->nxclient_hosts, 3, "xclient_hosts");
	is_int(cfg->xclient_hosts[0].prefix, 8, "cidr prefix");
	is_int(cfg->xclient_hosts[1].family, AF_INET6, "cidr v6");
	is_int(cfg->xclient_hosts[2].prefix, 32, "bare address is /32");
	is_str(cfg->spool, "/tmp/s", "spool");
	is_str(cfg->state, "/tmp/st", "state");
	is_str(cfg->control_socket, "/tmp/c.sock", "control_socket");
	is_int(cfg->max_connections, 100, "max_connections");
	is_int(cfg->max_connections_per_client, 5, "max_connections_per_client");
	ok(cfg->max_message_size == 10000000000LL, "int64 max_message_size");
	is_int(cfg->max_recipients, 7, "max_recipients");
	is_int(cfg->command_timeout, 60, "command_timeout");
	is_int(cfg->data_timeout, 120, "data_timeout");
	is_str(cfg->tls_certificate, "/etc/x/cert.pem", "certificate");
	is_str(cfg->tls_key, "/etc/x/key.pem", "key");
	is_int(cfg->tls_outbound, TLS_OUT_REQUIRED, "outbound required");
	is_str(cfg->tls_ciphers, "ECDHE+AESGCM", "ciphers");
	is_str(cfg->tls_ciphersuites, "TLS_AES_128_GCM_SHA256", "ciphersuites");
	is_int(cfg->tls_min_protocol, TLS_PROTO_1_3, "min_protocol");
	is_int(cfg->reject_bare_lf, 0, "reject_bare_lf");
	is_int(cfg->nul_bytes, NUL_STRIP, "nul_bytes");
	is_int(cfg->long_lines, LONG_LINES_REFUSE, "long_lines");
	is_str(cfg->hosting_destination, "lmtp:[127.0.0.1]:24", "destination");
	is_int(cfg->nretry_schedule, 2, "retry steps");
	ok(cfg->retry_schedule[0] == 10 && cfg->retry_schedule[1] == 20,
	    "retry values");
	is_int(cfg->max_lifetime, 3600, "max_lifetime");
	is_int(cfg->connect_timeout, 5, "connect_timeout");
	is_int(cfg->max_connections_per_destination, 3, "per destination");
	is_int(cfg->smtp_port, 2525, "smtp_port");
	is_int(cfg->nnameservers, 4, "nameservers");
	is_str(cfg->nameservers[0].host, "127.0.0.1", "ns 0 host");
	is_int(cfg->nameservers[0].port, 5353, "ns 0 port");
	is_str(cfg->nameservers[1].host, "::1", "ns 1 host");
	is_int(cfg->nameservers[2].port, 53, "ns default port");
	is_str(cfg->nameservers[3].host, "::2", "bare IPv6 nameserver");
	is_int(cfg->nameservers[3].port, 53, "bare IPv6 nameserver port");
	ok(!cfg->spf_enabled && !cfg->spf_reject_fail, "spf off");
	is_int(cfg->ndnsbl_zones, 2, "zones");
	is_str(cfg->dnsbl_zones[1], "bl.example", "zone 1");
	is_int(cfg->dnsbl_match[0].ncodes, 0, "zone 0: any code");
	ok(cfg->dnsbl_match[1].ncodes == 2 &&
	    cfg->dnsbl_match[1].codes[0].s_addr == htonl(0x7f000002) &&
	    cfg->dnsbl_match[1].codes[1].s_addr == htonl(0x7f00000a), "zone 1: =codes");
	ok(cfg->ndnsbl_allow_zones == 1 && strcmp(cfg->dnsbl_allow_zones[0], "wl.example") == 0,
	    "allow_zones");
	ok(!cfg->helo_check, "helo_check off");
	ok(cfg->rate_connections == 20 && cfg->rate_period == 30, "rate_limit");
	is_int(cfg->nmilters, 2, "two milters");
	ok(strcmp(cfg->milters[0].name, "rspamd") == 0 &&
	    strcmp(cfg->milters[0].host, "127.0.0.1") == 0 &&
	    cfg->milters[0].port == 11332 && cfg->milters[0].timeout == 30 &&
	    !cfg->milters[0].on_error_accept, "milter 0: inet, tempfail");
	ok(strcmp(cfg->milters[1].unix_path, "/run/opendkim.sock") == 0 &&
	    cfg->milters[1].timeout == 30 && cfg->milters[1].on_error_accept,
	    "milter 1: unix, default timeout, accept");
	is_int(cfg->pregreet_wait, 3, "pregreet_wait");
	is_str(cfg->srs_domain, "fwd.example.net", "srs domain");
	is_str(cfg->srs_secret, "0123456789abcdef", "srs secret");
	is_int(cfg->recipient_delimiter, '-', "delimiter");
	config_free(cfg);
}

static void
test_small_valid(void)
{
	char path[64], err[CONFIG_ERR_MAX];
	struct config *cfg;

	cfg = load_text("recipient_delimiter = \"\";\nserver = { };\n",
	    path, sizeof path, err, sizeof err);
	ok(cfg != NULL && cfg->recipient_delimiter == '\0',
	    "empty delimiter means none");
	ok(cfg != NULL && cfg->hostname != NULL, "hostname defaulted");
	ok(cfg != NULL && strcmp(cfg->user, "mxrelay") == 0,
	    "an empty group keeps defaults");
	config_free(cfg);

	cfg = load_text("", path, sizeof path, err, sizeof err);
	ok(cfg != NULL && cfg->max_recipients == 1000, "empty file = defaults");
	config_free(cfg);
}

/* error cases: the text and the expected "LINE: KEY: reason" prefix after
 * "FILE:" */
static const struct {
	const char *text;
	const char *want;
} bad[] = {
	{ "server = {\n  hostnme = \"x\";\n};\n", "2: server.hostnme: unknown key" },
	{ "\nfoo = { a = 1; };\n", "2: foo: unknown group" },
	{ "bar = 1;\n", "1: bar: unknown key" },
	{ "filters = {\n spf = {\n  enable = true;\n };\n};\n",
	    "3: filters.spf.enable: unknown key" },
	{ "server = { user = 5; };\n", "1: server.user: must be a string" },
	{ "limits = {\n max_connections = \"10\";\n};\n",
	    "2: limits.max_connections: must be an integer" },
	{ "limits = { max_message_size = 1.5; };\n",
	    "1: limits.max_message_size: must be an integer" },
	{ "filters = { spf = { enabled = \"yes\"; }; };\n",
	    "1: filters.spf.enabled: must be a boolean" },
	{ "filters = { spf = { reject_fail = 1; }; };\n",
	    "1: filters.spf.reject_fail: must be a boolean" },
	{ "server = { listen = \"0.0.0.0:25\"; };\n",
	    "1: server.listen: must be a list of strings" },
	{ "server = { listen = [ 25 ]; };\n",
	    "1: server.listen: must be a list of strings" },
	{ "delivery = { retry_schedule = [ \"60\" ]; };\n",
	    "1: delivery.retry_schedule: must be a list of integers" },
	{ "\n\nserver = 1;\n", "3: server: must be a group" },
	{ "filters = { dnsbl = [ ]; };\n", "1: filters.dnsbl: must be a group" },
	{ "server = {\n listen = [\n \"0.0.0.0:25\",\n \"localhost:25\" ];\n};\n",
	    "4: server.listen: \"localhost:25\" must be" },
	{ "server = { listen = [ \"0.0.0.0\" ]; };\n", "1: server.listen:" },
	{ "server = { listen = [ \"[::1]:70000\" ]; };\n", "1: server.listen:" },
	{ "server = { listen = [ \"[1.2.3.4]:25\" ]; };\n", "1: server.listen:" },
	{ "server = { listen = [ \"::1:25\" ]; };\n", "1: server.listen:" },
	{ "server = { listen = [ ]; };\n", "1: server.listen: must not be empty" },
	{ "server = { xclient_hosts = [ \"10.0.0.0/33\" ]; };\n",
	    "1: server.xclient_hosts: \"10.0.0.0/33\" is not" },
	{ "server = { xclient_hosts = [ \"proxy.example\" ]; };\n",
	    "1: server.xclient_hosts:" },
	{ "server = { xclient_hosts = [ \"::1/129\" ]; };\n",
	    "1: server.xclient_hosts:" },
	{ "server = { user = \"\"; };\n", "1: server.user: must not be empty" },
	{ "server = { hostname = \"mx_1..example\"; };\n",
	    "1: server.hostname: \"mx_1..example\" is not a valid domain name" },
	{ "paths = {\n spool = \"spool\";\n};\n",
	    "2: paths.spool: \"spool\" must be an absolute path" },
	{ "paths = { control_socket = \"/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaa.sock\"; };\n", "1: paths.control_socket: must be shorter" },
	{ "limits = {\n\n max_recipients = 0;\n};\n",
	    "3: limits.max_recipients: must be an integer between 1 and 100000" },
	{ "limits = { max_connections = 10000000000L; };\n",
	    "1: limits.max_connections: must be an integer between 1 and 1000000" },
	{ "limits = { command_timeout = -5; };\n",
	    "1: limits.command_timeout: must be an integer between" },
	{ "tls = { outbound = \"always\"; };\n",
	    "1: tls.outbound: \"always\" must be none, opportunistic or required" },
	{ "tls = { ciphers = \"NOSUCHCIPHER\"; };\n",
	    "1: tls.ciphers: \"NOSUCHCIPHER\" selects no cipher OpenSSL knows" },
	{ "tls = { ciphersuites = \"TLS_NO_SUCH\"; };\n",
	    "1: tls.ciphersuites: \"TLS_NO_SUCH\" selects no cipher OpenSSL knows" },
	{ "tls = { min_protocol = \"SSLv3\"; };\n",
	    "1: tls.min_protocol: \"SSLv3\" must be TLSv1, TLSv1.1, TLSv1.2 or TLSv1.3" },
	{ "server = { nul_bytes = \"keep\"; };\n",
	    "1: server.nul_bytes: \"keep\" must be reject or strip" },
	{ "server = { long_lines = \"split\"; };\n",
	    "1: server.long_lines: \"split\" must be fold or refuse" },
	{ "server = { reject_bare_lf = \"yes\"; };\n",
	    "1: server.reject_bare_lf: " },
	{ "tls = {\n certificate = \"/etc/c.pem\";\n};\n",
	    "2: tls.key: required when tls.certificate is set" },
	{ "tls = {\n\n key = \"/etc/k.pem\";\n};\n",
	    "3: tls.certificate: required when tls.key is set" },
	{ "tls = { certificate = \"c.pem\"; key = \"/k\"; };\n",
	    "1: tls.certificate: \"c.pem\" must be an absolute path" },
	{ "hosting = { destination = \"lmtp:[127.0.0.1]\"; };\n",
	    "1: hosting.destination: \"lmtp:[127.0.0.1]\": lmtp needs a port" },
	{ "hosting = { destination = \"imap:host\"; };\n",
	    "1: hosting.destination: \"imap:host\": must start with" },
	{ "hosting = { destination = \"lmtp:unix:run/lmtp\"; };\n",
	    "1: hosting.destination: \"lmtp:unix:run/lmtp\": unix socket path" },
	{ "hosting = { destination = \"smtp:::1:25\"; };\n",
	    "1: hosting.destination: \"smtp:::1:25\": bad host or port" },
	{ "hosting = { destination = \"smtp:[mx.example]:0\"; };\n",
	    "1: hosting.destination:" },
	{ "hosting = { destination = \"\"; };\n", "1: hosting.destination:" },
	{ "delivery = { retry_schedule = [ ]; };\n",
	    "1: delivery.retry_schedule: must not be empty" },
	{ "delivery = { retry_schedule = [ 60,\n 0 ]; };\n",
	    "2: delivery.retry_schedule: every step must be" },
	{ "delivery = { smtp_port = 0; };\n", "1: delivery.smtp_port:" },
	{ "dns = { nameservers = [ \"ns1.example.net\" ]; };\n",
	    "1: dns.nameservers: \"ns1.example.net\" must be" },
	{ "dns = { nameservers = [ \"127.0.0.1:0\" ]; };\n", "1: dns.nameservers:" },
	{ "filters = { dnsbl = { zones = [ \"zen..spamhaus.org\" ]; }; };\n",
	    "1: filters.dnsbl.zones: \"zen..spamhaus.org\" is not" },
	{ "filters = { pregreet_wait = -1; };\n", "1: filters.pregreet_wait:" },
	{ "filters = { dnsbl = { zones = [ \"bl.example=10.0.0.2\" ]; }; };\n",
	    "1: filters.dnsbl.zones: \"bl.example=10.0.0.2\": \"10.0.0.2\" is not a 127" },
	{ "filters = { dnsbl = { zones = [ \"bl.example=\" ]; }; };\n",
	    "1: filters.dnsbl.zones: \"bl.example=\": no codes" },
	{ "filters = { dnsbl = { allow_zones = [ \"wl..example\" ]; }; };\n",
	    "1: filters.dnsbl.allow_zones: \"wl..example\" is not" },
	{ "filters = { rate_limit = { connections = 5; period = 0; }; };\n",
	    "1: filters.rate_limit.period:" },
	{ "filters = { rate_limit = { burst = 5; }; };\n",
	    "1: filters.rate_limit.burst: unknown key" },
	{ "filters = { milters = [ \"x\" ]; };\n",
	    "1: filters.milters: must be a list of groups" },
	{ "filters = { milters = ( { name = \"a\"; } ); };\n",
	    "1: filters.milters: every milter needs a name and a socket" },
	{ "filters = { milters = ( { name = \"a\"; socket = \"inet:localhost:1\"; } ); };\n",
	    "1: filters.milters: \"inet:localhost:1\" must be inet:ADDRESS:PORT" },
	{ "filters = { milters = ( { name = \"a\"; socket = \"unix:/x\";\n on_error = \"drop\"; } ); };\n",
	    "2: filters.milters: on_error \"drop\" must be tempfail or accept" },
	{ "filters = { milters = ( { name = \"a\"; socket = \"unix:/x\"; },\n"
	  " { name = \"a\"; socket = \"unix:/y\"; } ); };\n",
	    "2: filters.milters: milter name \"a\" is used twice" },
	{ "filters = { milters = ( { name = \"a\"; socket = \"unix:/x\"; timeout = 0; } ); };\n",
	    "1: filters.milters: timeout must be an integer between 1 and 3600" },
	{ "filters = { milters = ( { name = \"a\"; socket = \"unix:/x\"; tmeout = 5; } ); };\n",
	    "1: filters.milters: unknown or mistyped key \"tmeout\"" },
	{ "srs = {\n domain = \"fwd.example.net\";\n};\n",
	    "2: srs.secret: required when srs.domain is set" },
	{ "srs = { domain = \"fwd.example.net\"; secret = \"short\"; };\n",
	    "1: srs.secret: must be at least 16 characters long" },
	{ "\nrecipient_delimiter = \"++\";\n", "2: recipient_delimiter: must be" },
	{ "recipient_delimiter = \"@\";\n", "1: recipient_delimiter: must be" },
	{ "recipient_delimiter = 43;\n", "1: recipient_delimiter: must be a string" },
	{ "server = {\n  user = ;\n};\n", "2: syntax error: " },
	{ "server = {\n  user = \"a\";\n  user = \"b\";\n};\n",
	    "3: syntax error: " },
};

static void
test_errors(void)
{
	char path[64], err[CONFIG_ERR_MAX], want[CONFIG_ERR_MAX];
	struct config *cfg;
	size_t i;

	for (i = 0; i < MX_ARRAY_LEN(bad); i++) {
		cfg = load_text(bad[i].text, path, sizeof path, err, sizeof err);
		snprintf(want, sizeof want, "%s:%s", path, bad[i].want);
		if (!ok(cfg == NULL && strncmp(err, want, strlen(want)) == 0,
		    "error %zu: %s", i, bad[i].want)) {
			diag("got:  %s", cfg ? "(loaded)" : err);
			diag("want: %s...", want);
		}
		config_free(cfg);
	}

	cfg = config_load("/nonexistent/mxrelay.conf", err, sizeof err);
	ok(cfg == NULL && strcmp(err, "/nonexistent/mxrelay.conf: cannot open: "
	    "No such file or directory") == 0, "missing file: %s", err);
}

/* test_shipped - etc/mxrelay.conf spells out the defaults; demo.conf loads */
static void
test_shipped(void)
{
	const char *srcdir = getenv("MX_SRCDIR");
	char path[PATH_MAX], err[CONFIG_ERR_MAX];
	struct config *cfg, *def = config_defaults();

	snprintf(path, sizeof path, "%s/etc/mxrelay.conf", srcdir ? srcdir : ".");
	cfg = config_load(path, err, sizeof err);
	if (!ok(cfg != NULL, "etc/mxrelay.conf loads"))
		diag("%s", err);
	else {
		ok(cfg->nlisten == def->nlisten &&
		    strcmp(cfg->listen[1].host, def->listen[1].host) == 0 &&
		    strcmp(cfg->user, def->user) == 0 &&
		    strcmp(cfg->spool, def->spool) == 0 &&
		    strcmp(cfg->control_socket, def->control_socket) == 0 &&
		    cfg->max_message_size == def->max_message_size &&
		    cfg->data_timeout == def->data_timeout &&
		    cfg->tls_certificate == NULL &&
		    cfg->tls_outbound == def->tls_outbound &&
		    cfg->hosting_destination == NULL &&
		    cfg->nretry_schedule == def->nretry_schedule &&
		    cfg->retry_schedule[4] == def->retry_schedule[4] &&
		    cfg->max_lifetime == def->max_lifetime &&
		    cfg->smtp_port == def->smtp_port &&
		    cfg->nnameservers == 0 && cfg->ndnsbl_zones == 0 &&
		    cfg->spf_enabled && cfg->spf_reject_fail &&
		    cfg->srs_domain == NULL &&
		    cfg->recipient_delimiter == def->recipient_delimiter,
		    "etc/mxrelay.conf values are the defaults");
		config_free(cfg);
	}
	config_free(def);

	snprintf(path, sizeof path, "%s/etc/demo.conf", srcdir ? srcdir : ".");
	cfg = config_load(path, err, sizeof err);
	if (!ok(cfg != NULL, "etc/demo.conf loads"))
		diag("%s", err);
	else {
		ok(strcmp(cfg->hostname, "mx.demo.test") == 0 &&
		    cfg->nlisten == 1 && cfg->listen[0].port == 2525 &&
		    strncmp(cfg->spool, "/tmp/mxrelay-demo/", 18) == 0,
		    "demo.conf: mx.demo.test on 127.0.0.1:2525, spool under /tmp");
		config_free(cfg);
	}
}

/* test_include - an error inside an @include'd file names that file */
static void
test_include(void)
{
	char dir[] = "/tmp/mxrelay-test-inc-XXXXXX";
	char main_path[PATH_MAX], inc_path[PATH_MAX], want[PATH_MAX + 64];
	char err[CONFIG_ERR_MAX];
	struct config *cfg;
	FILE *fp;

	if (mkdtemp(dir) == NULL) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(main_path, sizeof main_path, "%s/main.conf", dir);
	snprintf(inc_path, sizeof inc_path, "%s/limits.conf", dir);
	if ((fp = fopen(main_path, "w")) != NULL) {
		fputs("server = { user = \"x\"; };\n@include \"limits.conf\"\n", fp);
		fclose(fp);
	}
	if ((fp = fopen(inc_path, "w")) != NULL) {
		fputs("limits = {\n  max_recipients = 10;\n  max_recipient = 1;\n};\n",
		    fp);
		fclose(fp);
	}
	cfg = config_load(main_path, err, sizeof err);
	snprintf(want, sizeof want, "%s:3: limits.max_recipient: unknown key",
	    inc_path);
	ok(cfg == NULL && strcmp(err, want) == 0, "error in included file: %s",
	    err);
	config_free(cfg);
	unlink(inc_path);
	unlink(main_path);
	rmdir(dir);
}

static const struct {
	const char *in;
	int rc, lmtp, mx;
	const char *host;
	int port;
	const char *unix_path;
} dests[] = {
	{ "smtp:mail.example.com", 0, 0, 1, "mail.example.com", 25, "" },
	{ "smtp:mail.example.com:587", 0, 0, 1, "mail.example.com", 587, "" },
	{ "smtp:[mail.example.com]:2525", 0, 0, 0, "mail.example.com", 2525, "" },
	{ "smtp:[mail.example.com]", 0, 0, 0, "mail.example.com", 25, "" },
	{ "smtp:[192.0.2.1]:25", 0, 0, 0, "192.0.2.1", 25, "" },
	{ "smtp:192.0.2.1", 0, 0, 0, "192.0.2.1", 25, "" },
	{ "smtp:[2001:db8::1]:25", 0, 0, 0, "2001:db8::1", 25, "" },
	{ "lmtp:[127.0.0.1]:24", 0, 1, 0, "127.0.0.1", 24, "" },
	{ "lmtp:[::1]:24", 0, 1, 0, "::1", 24, "" },
	{ "lmtp:127.0.0.1:24", 0, 1, 0, "127.0.0.1", 24, "" },
	{ "LMTP:[lmtp.example]:24", 0, 1, 0, "lmtp.example", 24, "" },
	{ "lmtp:unix:/run/dovecot/lmtp", 0, 1, 0, "", 0, "/run/dovecot/lmtp" },
	{ "lmtp:[127.0.0.1]", -1, 0, 0, NULL, 0, NULL },
	{ "lmtp:unix:dovecot/lmtp", -1, 0, 0, NULL, 0, NULL },
	{ "lmtp:unix:", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:[]:25", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:2001:db8::1", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:host:65536", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:host:", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:bad_host", -1, 0, 0, NULL, 0, NULL },
	{ "smtp:[mail.example.com]x", -1, 0, 0, NULL, 0, NULL },
	{ "mail.example.com", -1, 0, 0, NULL, 0, NULL },
};

static void
test_destinations(void)
{
	struct destination d;
	char err[CONFIG_ERR_MAX];
	size_t i;
	int rc;

	for (i = 0; i < MX_ARRAY_LEN(dests); i++) {
		err[0] = '\0';
		rc = destination_parse(dests[i].in, &d, err, sizeof err);
		if (dests[i].rc < 0) {
			ok(rc < 0 && err[0] != '\0', "%s refused: %s", dests[i].in, err);
			continue;
		}
		if (!ok(rc == 0 && d.lmtp == dests[i].lmtp && d.mx_lookup ==
		    dests[i].mx && strcmp(d.host, dests[i].host) == 0 &&
		    d.port == dests[i].port &&
		    strcmp(d.unix_path, dests[i].unix_path) == 0,
		    "%s parsed", dests[i].in))
			diag("rc=%d err=%s lmtp=%d mx=%d host=%s port=%d unix=%s",
			    rc, err, d.lmtp, d.mx_lookup, d.host, d.port, d.unix_path);
	}
	destination_parse("smtp:[mx.example]", &d, err, sizeof err);
	ok(d.port == 25 && !d.port_set, "default port is not port_set");
	destination_parse("smtp:mx.example:25", &d, err, sizeof err);
	ok(d.port == 25 && d.port_set, "written port is port_set");
	destination_parse("lmtp:[::1]:24", &d, err, sizeof err);
	ok(d.port_set, "lmtp port is port_set");
	ok(config_check_destination("smtp:[10.1.2.3]:25", err, sizeof err) == 0,
	    "config_check_destination accepts");
	ok(config_check_destination("lmtp:10.1.2.3", err, sizeof err) < 0,
	    "config_check_destination refuses");
}

/* sa_of - a sockaddr for a numeric address */
static const struct sockaddr *
sa_of(const char *addr, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	return (const struct sockaddr *)ss;
}

static const struct {
	const char *cidr, *addr;
	int match;
} cidrs[] = {
	{ "10.0.0.0/8", "10.1.2.3", 1 },
	{ "10.0.0.0/8", "11.0.0.1", 0 },
	{ "192.0.2.0/25", "192.0.2.127", 1 },
	{ "192.0.2.0/25", "192.0.2.128", 0 },
	{ "192.0.2.77/24", "192.0.2.1", 1 },	/* host bits ignored */
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "127.0.0.1", "127.0.0.1", 1 },
	{ "127.0.0.1", "127.0.0.2", 0 },
	{ "10.0.0.0/8", "::ffff:10.9.8.7", 1 },	/* mapped client */
	{ "10.0.0.0/8", "::ffff:11.9.8.7", 0 },
	{ "2001:db8::/32", "2001:db8:1::5", 1 },
	{ "2001:db8::/32", "2001:db9::5", 0 },
	{ "2001:db8::/33", "2001:db8:8000::1", 0 },
	{ "::1", "::1", 1 },
	{ "::1", "127.0.0.1", 0 },
	{ "10.0.0.0/8", "::1", 0 },
	{ "::ffff:0:0/96", "198.51.100.1", 1 },	/* v4 client, mapped CIDR */
};

static void
test_cidr(void)
{
	struct sockaddr_storage ss;
	struct cidr c;
	size_t i;

	for (i = 0; i < MX_ARRAY_LEN(cidrs); i++) {
		if (cidr_parse(cidrs[i].cidr, &c) < 0) {
			ok(0, "parse %s", cidrs[i].cidr);
			continue;
		}
		is_int(cidr_match(&c, sa_of(cidrs[i].addr, &ss)), cidrs[i].match,
		    cidrs[i].addr);
	}
	ok(cidr_parse("10.0.0.0/", &c) < 0, "empty prefix refused");
	ok(cidr_parse("10.0.0.0/+8", &c) < 0, "signed prefix refused");
	ok(cidr_parse("/8", &c) < 0, "empty address refused");
}

int
main(void)
{
	test_defaults();
	test_full();
	test_small_valid();
	test_errors();
	test_shipped();
	test_include();
	test_destinations();
	test_cidr();
	return done_testing();
}
