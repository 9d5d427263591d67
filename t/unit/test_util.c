/* test_util.c - the small shared helpers of util.c */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "util.h"

struct xtext_case {
	const char *in;
	const char *out;	/* NULL: malformed */
};

static const struct xtext_case xtext_cases[] = {
	{ "joe@example.test", "joe@example.test" },
	{ "", "" },
	{ "a+2Bb", "a+b" },
	{ "a+2bb", "a+b" },		/* lower-case hex is taken too */
	{ "+3D+20+2B", "= +" },
	{ "caf+C3+A9", "caf\xc3\xa9" },
	{ "+", NULL },			/* cut short */
	{ "a+2", NULL },
	{ "a+G0", NULL },		/* not hex */
	{ "a+00b", NULL },		/* a NUL would cut the value */
};

static void
test_xtext(void)
{
	char buf[64];

	for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
		const struct xtext_case *c = &xtext_cases[i];
		ssize_t n = mx_xtext_decode(buf, sizeof(buf), c->in, strlen(c->in));

		if (c->out == NULL)
			is_int(n, -1, c->in);
		else if (is_int(n, (long)strlen(c->out), c->in))
			is_str(buf, c->out, c->in);
	}
	is_int(mx_xtext_decode(buf, 4, "abcd", 4), -1, "longer than the buffer");
	is_int(mx_xtext_decode(buf, 5, "abcd", 4), 4, "exactly fits");
	/* only n octets of src count */
	is_int(mx_xtext_decode(buf, sizeof(buf), "ab+2B", 3), -1, "a +XX cut by n");
}

static void
test_split_hostport(void)
{
	char host[64];
	int port;

	ok(mx_split_hostport("[::1]:2525", host, sizeof(host), &port, 25) == 0 &&
	    strcmp(host, "::1") == 0 && port == 2525, "[::1]:2525");
	ok(mx_split_hostport("mx.example.test", host, sizeof(host), &port, 25) == 0 &&
	    port == 25, "a host without a port gets the default");
	is_int(mx_split_hostport("::1", host, sizeof(host), &port, 25), -1,
	    "a bare IPv6 address must be bracketed");
	is_int(mx_split_hostport("h:70000", host, sizeof(host), &port, 25), -1,
	    "port out of range");
}

/* mx_write_full: at the file position (off < 0) and at an offset; a
 * descriptor that cannot be written is an error, not a loop */
static void
test_write_full(void)
{
	char path[] = "/tmp/test_util.XXXXXX", buf[32];
	int fd = mkstemp(path);

	if (!ok(fd >= 0, "a temporary file"))
		return;
	unlink(path);
	is_int(mx_write_full(fd, "hello, ", 7, -1), 0, "write at the position");
	is_int(mx_write_full(fd, "world", 5, -1), 0, "and on from there");
	is_int(mx_write_full(fd, "W", 1, 7), 0, "pwrite at an offset");
	is_int(mx_pread_full(fd, buf, sizeof(buf), 0), 12, "12 octets in the file");
	buf[12] = '\0';
	is_str(buf, "hello, World", "the offset write replaced one octet");
	is_int(mx_write_full(-1, "x", 1, -1), -1, "a bad descriptor: -1");
	close(fd);
}

int
main(void)
{
	test_xtext();
	test_split_hostport();
	test_write_full();
	return done_testing();
}
