/* fuzz_ctlproto - a control-socket request as src/control.c reads it
 * (src/ctlproto.c): the header line, the netstring body, then the command
 * table and argument parsing the daemon applies to argv; also the
 * response line relayctl parses */
#include "autoconf.h"

#include "ctlproto.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	char line[CTL_HEADER_MAX + 1], err[CTL_ERR_MAX];
	const struct ctl_command_spec *spec;
	struct ctl_request req;
	struct ctl_args args;
	size_t hlen, bodylen = 0, rbodylen;
	unsigned flags = 0;
	int nargs = 0, nwords = 0, status;
	char *body;

	if (nl == NULL || (hlen = (size_t)(nl - (const char *)data)) >= sizeof(line))
		return 0;
	memcpy(line, data, hlen);
	line[hlen] = '\0';
	ctlproto_response_parse(line, &status, &rbodylen);
	if (ctlproto_request_header(line, &flags, &nargs, &bodylen, err, sizeof(err)) < 0)
		return 0;
	FUZZ_ASSERT(nargs >= 0 && nargs <= CTL_ARGS_MAX);
	FUZZ_ASSERT(bodylen <= CTL_REQUEST_MAX);
	/* the body as the daemon hands it over: exactly bodylen octets, malloc'd */
	size -= hlen + 1;
	if (bodylen > size)
		return 0;
	body = malloc(bodylen + 1);
	if (body == NULL)
		abort();
	memcpy(body, nl + 1, bodylen);
	body[bodylen] = '\0';
	if (ctlproto_request_body(body, bodylen, nargs, flags, &req, err, sizeof(err)) == 0) {
		FUZZ_ASSERT(req.argc == nargs);
		FUZZ_ASSERT(req.data != NULL && strlen(req.data) <= req.datalen);
		for (int i = 0; i < req.argc; i++)
			FUZZ_ASSERT(strlen(req.argv[i]) <= CTL_ARG_MAX);
		spec = ctl_command_find(req.argc, req.argv, &nwords, err, sizeof(err));
		if (spec != NULL) {
			FUZZ_ASSERT(nwords >= 1 && nwords <= req.argc);
			if (ctl_args_parse(spec, req.argc - nwords, req.argv + nwords,
			    &args, err, sizeof(err)) == 0)
				FUZZ_ASSERT(args.npos >= spec->min_args &&
				    args.npos <= spec->max_args);
		}
	}
	ctlproto_request_clear(&req);
	return 0;
}
