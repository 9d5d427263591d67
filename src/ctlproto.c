/* ctlproto.c - control protocol framing and the shared command table */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"
#include "util.h"

/* netstring_len - bytes "LEN:" + payload + "," take */
static size_t
netstring_len(size_t n)
{
	char tmp[32];

	return (size_t)snprintf(tmp, sizeof(tmp), "%zu:", n) + n + 1;
}

static size_t
netstring_put(char *p, const char *s, size_t n)
{
	size_t h = (size_t)sprintf(p, "%zu:", n);

	if (n)
		memcpy(p + h, s, n);
	p[h + n] = ',';
	return h + n + 1;
}

char *
ctlproto_request_encode(unsigned flags, int argc, char *const argv[],
    const char *data, size_t datalen, size_t *outlen)
{
	size_t body = 0, off;
	char head[CTL_HEADER_MAX];
	char *buf;
	int hl;

	for (int i = 0; i < argc; i++)
		body += netstring_len(strlen(argv[i]));
	body += netstring_len(datalen);
	hl = snprintf(head, sizeof(head), "%s %d %u %d %zu\n", CTL_MAGIC,
	    CTL_VERSION, flags, argc, body);
	buf = xmalloc((size_t)hl + body + 1);
	memcpy(buf, head, (size_t)hl);
	off = (size_t)hl;
	for (int i = 0; i < argc; i++)
		off += netstring_put(buf + off, argv[i], strlen(argv[i]));
	off += netstring_put(buf + off, data ? data : "", data ? datalen : 0);
	*outlen = off;
	return buf;
}

/* parse_uint - a decimal number up to max; returns 0 or -1 */
static int
parse_uint(const char *s, char **end, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, end, 10);
	if (errno || v > max)
		return -1;
	*out = v;
	return 0;
}

int
ctlproto_request_header(const char *line, unsigned *flags, int *nargs,
    size_t *bodylen, char *err, size_t errlen)
{
	size_t ml = strlen(CTL_MAGIC);
	uint64_t ver, fl, na, bl;
	char *p;

	if (strncmp(line, CTL_MAGIC " ", ml + 1) != 0) {
		snprintf(err, errlen, "not a %s request", CTL_MAGIC);
		return -1;
	}
	if (parse_uint(line + ml + 1, &p, UINT32_MAX, &ver) == -1 || *p != ' ') {
		snprintf(err, errlen, "malformed request header");
		return -1;
	}
	if (ver != CTL_VERSION) {
		snprintf(err, errlen, "unsupported protocol version %" PRIu64
		    " (this daemon speaks %d)", ver, CTL_VERSION);
		return -1;
	}
	if (parse_uint(p + 1, &p, UINT32_MAX, &fl) == -1 || *p != ' ' ||
	    parse_uint(p + 1, &p, UINT32_MAX, &na) == -1 || *p != ' ' ||
	    parse_uint(p + 1, &p, UINT64_MAX, &bl) == -1 || *p != '\0') {
		snprintf(err, errlen, "malformed request header");
		return -1;
	}
	if (na > CTL_ARGS_MAX || na == 0) {
		snprintf(err, errlen, "request has %" PRIu64 " arguments "
		    "(1 to %d allowed)", na, CTL_ARGS_MAX);
		return -1;
	}
	if (bl > CTL_REQUEST_MAX) {
		snprintf(err, errlen, "request of %" PRIu64 " bytes exceeds "
		    "the limit of %u bytes", bl, CTL_REQUEST_MAX);
		return -1;
	}
	*flags = (unsigned)fl;
	*nargs = (int)na;
	*bodylen = (size_t)bl;
	return 0;
}

/* netstring_take - split one netstring at *p (len bytes left) in place */
static int
netstring_take(char **p, size_t *left, char **out, size_t *outlen, size_t max)
{
	uint64_t n;
	char *q;

	if (parse_uint(*p, &q, max, &n) == -1 || *q != ':')
		return -1;
	q++;
	if ((size_t)(q - *p) + n + 1 > *left || q[n] != ',')
		return -1;
	q[n] = '\0';		/* the ',' becomes the terminator */
	*out = q;
	*outlen = (size_t)n;
	*left -= (size_t)(q - *p) + n + 1;
	*p = q + n + 1;
	return 0;
}

int
ctlproto_request_body(char *body, size_t len, int nargs, unsigned flags,
    struct ctl_request *req, char *err, size_t errlen)
{
	char *p = body;
	size_t left = len, n;

	memset(req, 0, sizeof(*req));
	req->body = body;
	req->flags = flags;
	req->argv = xcalloc((size_t)nargs + 1, sizeof(char *));
	for (int i = 0; i < nargs; i++) {
		if (netstring_take(&p, &left, &req->argv[i], &n, CTL_ARG_MAX) == -1 ||
		    strlen(req->argv[i]) != n) {
			snprintf(err, errlen, "malformed argument %d", i + 1);
			return -1;
		}
		req->argc++;
	}
	if (netstring_take(&p, &left, &req->data, &req->datalen,
	    CTL_REQUEST_MAX) == -1 || left != 0) {
		snprintf(err, errlen, "malformed request data");
		return -1;
	}
	return 0;
}

void
ctlproto_request_clear(struct ctl_request *req)
{
	free(req->argv);
	free(req->body);
	memset(req, 0, sizeof(*req));
}

int
ctlproto_response_header(char *buf, size_t buflen, int status, size_t bodylen)
{
	return snprintf(buf, buflen, "%s %d %d %zu\n", CTL_MAGIC, CTL_VERSION,
	    status, bodylen);
}

int
ctlproto_response_parse(const char *line, int *status, size_t *bodylen)
{
	size_t ml = strlen(CTL_MAGIC);
	uint64_t ver, st, bl;
	char *p;

	if (strncmp(line, CTL_MAGIC " ", ml + 1) != 0 ||
	    parse_uint(line + ml + 1, &p, UINT32_MAX, &ver) == -1 || *p != ' ' ||
	    ver != CTL_VERSION ||
	    parse_uint(p + 1, &p, 255, &st) == -1 || *p != ' ' ||
	    parse_uint(p + 1, &p, CTL_RESPONSE_MAX, &bl) == -1 || *p != '\0')
		return -1;
	*status = (int)st;
	*bodylen = (size_t)bl;
	return 0;
}

/* The commands of SPEC 8 */
static const struct ctl_option opts_none[] = { { NULL, 0 } };
static const struct ctl_option opts_domain_add[] = {
	{ "--mode", 1 }, { "--legacy", 1 }, { NULL, 0 }
};
static const struct ctl_option opts_domain_set[] = {
	{ "--legacy", 1 }, { "--mode", 1 }, { "--verify-legacy", 1 }, { NULL, 0 }
};
static const struct ctl_option opts_address_list[] = {
	{ "--verified", 0 }, { NULL, 0 }
};
static const struct ctl_option opts_force[] = { { "--force", 0 }, { NULL, 0 } };
static const struct ctl_option opts_address_add[] = {
	{ "--alias", 1 }, { "--cc", 1 }, { "--nofilter", 0 }, { NULL, 0 }
};
static const struct ctl_option opts_address_set[] = {
	{ "--route", 1 }, { "--force", 0 }, { NULL, 0 }
};
static const struct ctl_option opts_import[] = {
	{ "--dry-run", 0 }, { "--strict", 0 }, { "--nofilter", 0 }, { NULL, 0 }
};

static const struct ctl_option opts_queue_delete[] = {
	{ "--bounce", 0 }, { NULL, 0 }
};
static const struct ctl_option opts_queue_list[] = {
	{ "--held", 0 }, { NULL, 0 }
};

static const struct ctl_option opts_switch[] = {
	{ "--force", 0 }, { "--wait", 0 }, { "--at", 1 }, { "--cancel", 0 },
	{ NULL, 0 }
};

static const struct ctl_command_spec ctl_commands[] = {
	{ "status", 0, 0, 0, opts_none, "status" },
	{ "stats", 0, 0, 0, opts_none, "stats" },
	{ "reload", 0, 0, 0, opts_none, "reload" },
	{ "domain add", 1, 1, 0, opts_domain_add,
	    "domain add DOMAIN [--mode legacy|hosted] [--legacy HOST[:PORT][/PREF]]..." },
	{ "domain set", 1, 1, 0, opts_domain_set,
	    "domain set DOMAIN [--legacy HOST[:PORT][/PREF]...] [--verify-legacy on|off]" },
	{ "domain remove", 1, 1, 0, opts_force, "domain remove DOMAIN [--force]" },
	{ "domain list", 0, 0, 0, opts_none, "domain list" },
	{ "domain show", 1, 1, 0, opts_none, "domain show DOMAIN" },
	{ "address add", 1, 1, 0, opts_address_add,
	    "address add ADDRESS [--alias DEST[,DEST...]] [--cc DEST[,DEST...]] [--nofilter]" },
	{ "address set", 1, 1, 0, opts_address_set,
	    "address set ADDRESS --route hosted|legacy|domain [--force]" },
	{ "address remove", 1, 1, 0, opts_none, "address remove ADDRESS" },
	{ "address show", 1, 1, 0, opts_none, "address show ADDRESS" },
	{ "address list", 1, 1, 0, opts_address_list, "address list DOMAIN [--verified]" },
	{ "address learn", 1, 1, 0, opts_none, "address learn DOMAIN" },
	{ "import", 2, 2, CTL_SPEC_SENDS_FILE, opts_import,
	    "import DOMAIN FILE [--dry-run] [--strict] [--nofilter]" },
	{ "export", 1, 1, 0, opts_none, "export DOMAIN" },
	{ "queue list", 0, 1, 0, opts_queue_list, "queue list [DOMAIN] [--held]" },
	{ "queue show", 1, 1, 0, opts_none, "queue show ID" },
	{ "queue flush", 0, 1, 0, opts_none, "queue flush [DOMAIN]" },
	{ "queue delete", 1, 1, 0, opts_queue_delete, "queue delete ID [--bounce]" },
	{ "queue release", 1, 1, 0, opts_none, "queue release ID" },
	{ "switch", 1, 2, 0, opts_switch,
	    "switch DOMAIN hosted|legacy [--force] [--wait] [--at TIME] | switch DOMAIN --cancel" },
	{ "history", 1, 1, 0, opts_none, "history DOMAIN" },
	{ "check", 1, 1, 0, opts_none, "check DOMAIN" },
	{ NULL, 0, 0, 0, NULL, NULL }
};

const struct ctl_command_spec *
ctl_command_table(void)
{
	return ctl_commands;
}

/* name_words - does argv start with the words of name? returns their count */
static int
name_words(const char *name, int argc, char *const argv[])
{
	const char *sp = strchr(name, ' ');
	size_t n = sp ? (size_t)(sp - name) : strlen(name);

	if (argc < 1 || strlen(argv[0]) != n || strncmp(argv[0], name, n) != 0)
		return 0;
	if (sp == NULL)
		return 1;
	if (argc < 2 || strcmp(argv[1], sp + 1) != 0)
		return -1;	/* group matched, subcommand did not */
	return 2;
}

const struct ctl_command_spec *
ctl_command_find(int argc, char *const argv[], int *nwords, char *err,
    size_t errlen)
{
	int group = 0, w;

	if (argc < 1) {
		snprintf(err, errlen, "no command given");
		return NULL;
	}
	for (const struct ctl_command_spec *c = ctl_commands; c->name; c++) {
		w = name_words(c->name, argc, argv);
		if (w > 0) {
			*nwords = w;
			return c;
		}
		if (w < 0)
			group = 1;
	}
	if (group && argc < 2)
		snprintf(err, errlen, "%s: subcommand missing", argv[0]);
	else if (group)
		snprintf(err, errlen, "%s: unknown subcommand \"%.64s\"", argv[0],
		    argv[1]);
	else
		snprintf(err, errlen, "unknown command \"%.64s\"", argv[0]);
	return NULL;
}

/* option_find - the spec entry of "--name" (the part before any '=') */
static const struct ctl_option *
option_find(const struct ctl_command_spec *spec, const char *arg, size_t n)
{
	for (const struct ctl_option *o = spec->options; o->name; o++)
		if (strlen(o->name) == n && strncmp(o->name, arg, n) == 0)
			return o;
	return NULL;
}

int
ctl_args_parse(const struct ctl_command_spec *spec, int argc,
    char *const argv[], struct ctl_args *a, char *err, size_t errlen)
{
	const struct ctl_option *o;
	int dashdash = 0;

	a->npos = a->nopt = 0;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (dashdash || arg[0] != '-' || strcmp(arg, "-") == 0) {
			if (a->npos == CTL_ARGS_MAX)
				goto toomany;
			a->pos[a->npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			dashdash = 1;
			continue;
		}
		const char *eq = strchr(arg, '=');
		size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
		if ((o = option_find(spec, arg, n)) == NULL) {
			snprintf(err, errlen, "%s: unknown option %.*s", spec->name,
			    (int)(n > 64 ? 64 : n), arg);
			return -1;
		}
		if (a->nopt == CTL_ARGS_MAX)
			goto toomany;
		a->optname[a->nopt] = o->name;
		a->optval[a->nopt] = NULL;
		if (o->has_value && eq)
			a->optval[a->nopt] = eq + 1;
		else if (o->has_value && i + 1 < argc)
			a->optval[a->nopt] = argv[++i];
		else if (o->has_value) {
			snprintf(err, errlen, "%s: option %s needs a value",
			    spec->name, o->name);
			return -1;
		} else if (eq) {
			snprintf(err, errlen, "%s: option %s takes no value",
			    spec->name, o->name);
			return -1;
		}
		a->nopt++;
	}
	if (a->npos < spec->min_args || a->npos > spec->max_args) {
		snprintf(err, errlen, "%s: %s arguments; usage: relayctl %s",
		    spec->name, a->npos < spec->min_args ? "missing" : "too many",
		    spec->usage);
		return -1;
	}
	return 0;
toomany:
	snprintf(err, errlen, "%s: too many arguments", spec->name);
	return -1;
}

int
ctl_args_has(const struct ctl_args *a, const char *opt)
{
	for (int i = 0; i < a->nopt; i++)
		if (strcmp(a->optname[i], opt) == 0)
			return 1;
	return 0;
}

const char *
ctl_args_get(const struct ctl_args *a, const char *opt)
{
	const char *v = NULL;

	for (int i = 0; i < a->nopt; i++)
		if (strcmp(a->optname[i], opt) == 0)
			v = a->optval[i];
	return v;
}
