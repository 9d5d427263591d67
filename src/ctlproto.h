/* ctlproto.h - the control protocol shared by mxrelayd and relayctl
 *
 * One request per connection (doc/control-protocol.md):
 *
 *   request:  "MXRELAY-CONTROL 1 FLAGS NARGS BODYLEN\n" BODY
 *             BODY = NARGS netstrings (the argv) + 1 netstring (data)
 *   response: "MXRELAY-CONTROL 1 STATUS BODYLEN\n" BODY
 *
 * A netstring is "LEN:BYTES,". The command table below is shared too, so
 * that relayctl can check names and argument counts before connecting.
 */
#ifndef MX_CTLPROTO_H
#define MX_CTLPROTO_H

#include <stddef.h>

#define CTL_MAGIC		"MXRELAY-CONTROL"
#define CTL_VERSION		1
#define CTL_HEADER_MAX		128		/* first line, newline included */
#define CTL_REQUEST_MAX		(64u * 1024 * 1024)	/* body of a request */
#define CTL_RESPONSE_MAX	(1024u * 1024 * 1024)	/* body of a response */
#define CTL_ARGS_MAX		256		/* argv entries */
#define CTL_ARG_MAX		4096		/* bytes of one argv entry */
#define CTL_ERR_MAX		512

#define CTL_FLAG_JSON		0x1		/* render the body as JSON */

enum ctl_status { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2 };

struct ctl_request {
	unsigned flags;
	int argc;
	char **argv;		/* point into body */
	char *data;		/* attached data (import file), NUL-terminated, in body */
	size_t datalen;
	char *body;		/* owned */
};

/* ctlproto_request_encode - the whole request as one malloc'd buffer */
char *ctlproto_request_encode(unsigned flags, int argc, char *const argv[],
    const char *data, size_t datalen, size_t *outlen);
/* ctlproto_request_header - parse the first line (no newline). Returns 0,
 * or -1 with err set (bad magic, unsupported version, over the limits). */
int ctlproto_request_header(const char *line, unsigned *flags, int *nargs,
    size_t *bodylen, char *err, size_t errlen);
/* ctlproto_request_body - split body (malloc'd, taken over by req even on
 * failure) into argv and data, in place. Returns 0, or -1 with err set. */
int ctlproto_request_body(char *body, size_t len, int nargs, unsigned flags,
    struct ctl_request *req, char *err, size_t errlen);
void ctlproto_request_clear(struct ctl_request *);

/* ctlproto_response_header - write the response's first line into buf */
int ctlproto_response_header(char *buf, size_t buflen, int status, size_t bodylen);
/* ctlproto_response_parse - parse the response's first line (no newline) */
int ctlproto_response_parse(const char *line, int *status, size_t *bodylen);

/* Commands: name words, positional argument counts, options. */
struct ctl_option {
	const char *name;	/* "--mode" */
	int has_value;		/* takes a value (--mode X or --mode=X) */
};

#define CTL_SPEC_SENDS_FILE	0x1	/* positional 2 is a file relayctl sends as data */

struct ctl_command_spec {
	const char *name;		/* "domain add" */
	int min_args, max_args;		/* positionals after the name words */
	unsigned flags;
	const struct ctl_option *options;	/* terminated by a NULL name */
	const char *usage;		/* synopsis, without "relayctl " */
};

struct ctl_args {
	int npos;
	const char *pos[CTL_ARGS_MAX];
	int nopt;
	const char *optname[CTL_ARGS_MAX];
	const char *optval[CTL_ARGS_MAX];	/* NULL for flags */
};

/* ctl_command_find - the command named by argv's first words; *nwords says
 * how many. NULL with err set when unknown. */
const struct ctl_command_spec *ctl_command_find(int argc, char *const argv[],
    int *nwords, char *err, size_t errlen);
/* ctl_command_table - the NULL-name-terminated table (for help output) */
const struct ctl_command_spec *ctl_command_table(void);
/* ctl_args_parse - positionals and options of argv (the words after the
 * command name) checked against spec. Returns 0, or -1 with err set. */
int ctl_args_parse(const struct ctl_command_spec *spec, int argc,
    char *const argv[], struct ctl_args *a, char *err, size_t errlen);
/* ctl_args_has - was the option given? */
int ctl_args_has(const struct ctl_args *, const char *opt);
/* ctl_args_get - the last value given to opt, or NULL */
const char *ctl_args_get(const struct ctl_args *, const char *opt);

#endif
