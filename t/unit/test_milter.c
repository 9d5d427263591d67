/* test_milter.c - milter packets, the header split and header/body changes
 *
 * Packet bytes are written out by hand from the protocol description
 * (length in network order counting the command octet), not produced by
 * the code under test.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "milter_edit.h"
#include "milter_proto.h"
#include "tap.h"

/* buf_is - the evbuffer holds exactly want[0..n) */
static int
buf_is(struct evbuffer *b, const char *want, size_t n, const char *name)
{
	size_t len = evbuffer_get_length(b);
	int r = ok(len == n && memcmp(evbuffer_pullup(b, -1), want, n) == 0,
	    "%s", name);

	if (!r)
		diag("length %zu, want %zu", len, n);
	evbuffer_drain(b, len);
	return r;
}

static void
test_encode(void)
{
	struct evbuffer *b = evbuffer_new();
	const char *sv[] = { "<a@b.test>", "SIZE=10" };

	milter_put(b, SMFIC_BODYEOB, NULL, 0);
	buf_is(b, "\0\0\0\1E", 5, "empty command: length 1");
	milter_put_strings(b, SMFIC_MAIL, sv, 2);
	buf_is(b, "\0\0\0\x14M<a@b.test>\0SIZE=10\0", 24, "MAIL with its parameter");
	milter_put_connect(b, "unknown", 0, 25, "192.0.2.1");
	buf_is(b, "\0\0\0\x16" "Cunknown\0" "4\0\x19" "192.0.2.1\0", 26,
	    "CONNECT: host, family, port, address");
	milter_put_header(b, "Subject", 7, "hi", 2);
	buf_is(b, "\0\0\0\x0cLSubject\0hi\0", 16, "HEADER name and value");
	milter_put_optneg(b);
	buf_is(b, "\0\0\0\x0dO\0\0\0\6\0\0\0\xbf\0\x0f\xf7\xff", 17,
	    "OPTNEG: version 6, our actions and steps");
	evbuffer_free(b);
}

static void
test_take(void)
{
	struct evbuffer *b = evbuffer_new();
	char cmd, *data;
	size_t len;

	evbuffer_add(b, "\0\0\0\x05y55", 7);
	is_int(milter_take(b, &cmd, &data, &len), 0, "half a packet: wait");
	evbuffer_add(b, "0\0", 2);
	is_int(milter_take(b, &cmd, &data, &len), 1, "whole packet taken");
	ok(cmd == 'y' && len == 4 && memcmp(data, "550", 4) == 0, "command and data");
	free(data);
	is_int((long)evbuffer_get_length(b), 0, "nothing left");
	evbuffer_add(b, "\0\0\0\0", 4);
	evbuffer_add(b, "x", 1);
	is_int(milter_take(b, &cmd, &data, &len), -1, "length 0 is an error");
	evbuffer_drain(b, evbuffer_get_length(b));
	evbuffer_add(b, "\x7f\0\0\0c", 5);
	is_int(milter_take(b, &cmd, &data, &len), -1, "a huge length is an error");
	evbuffer_free(b);
}

static void
test_parse(void)
{
	struct milter_reply r;

	is_int(milter_parse_reply('y', "550 5.7.1 no\0", 13, &r), 0, "REPLYCODE");
	is_str(r.text, "550 5.7.1 no", "its text");
	is_int(milter_parse_reply('y', "250 ok\0", 7, &r), -1, "REPLYCODE must be 4xx/5xx");
	is_int(milter_parse_reply('y', "550 no", 6, &r), -1, "REPLYCODE without NUL");
	is_int(milter_parse_reply('h', "X-A\0v\0", 6, &r), 0, "ADDHEADER");
	ok(strcmp(r.name, "X-A") == 0 && strcmp(r.value, "v") == 0, "name and value");
	is_int(milter_parse_reply('h', "X-A\0v", 5, &r), -1, "ADDHEADER missing NUL");
	is_int(milter_parse_reply('h', "X-A\0v\0z", 7, &r), -1, "ADDHEADER trailing octets");
	is_int(milter_parse_reply('i', "\0\0\0\2X-B\0w\0", 10, &r), 0, "INSHEADER");
	is_int((long)r.index, 2, "its index");
	is_int(milter_parse_reply('m', "\0\0\0", 3, &r), -1, "CHGHEADER too short");
	is_int(milter_parse_reply('m', "\0\0\0\1Subject\0\0", 13, &r), 0, "CHGHEADER delete");
	is_str(r.value, "", "empty value");
	is_int(milter_parse_reply('+', "<x@y>\0", 6, &r), 0, "ADDRCPT");
	is_int(milter_parse_reply('2', "<x@y>\0A=B\0", 10, &r), 0, "ADDRCPT_PAR");
	is_int(milter_parse_reply('O', "\0\0\0\6\0\0\0\1\0\0\0\0", 12, &r), 0, "OPTNEG reply");
	ok(r.version == 6 && r.actions == 1 && r.protocol == 0, "its fields");
	is_int(milter_parse_reply('O', "\0\0\0\6", 4, &r), -1, "OPTNEG too short");
	is_int(milter_parse_reply('Z', "", 0, &r), -1, "unknown reply");
}

static void
test_split(void)
{
	const char *m = "Received: from x\r\n\tby y\r\nSubject: hi\r\n\r\nbody\r\n";
	struct mhdr v[4];
	int sep;

	is_int((long)mhdr_section(m, strlen(m)), 40, "section up to the empty line");
	is_int(mhdr_parse(m, 40, v, 4, &sep), 2, "two headers, one folded");
	is_int(sep, 1, "ended by the empty line");
	ok(v[0].namelen == 8 && v[0].valuelen == 13 &&
	    memcmp(v[0].value, "from x\r\n\tby y", 13) == 0, "folded value kept");
	ok(v[1].valuelen == 2 && memcmp(v[1].value, "hi", 2) == 0, "value without space");
	is_int((long)mhdr_section("A: 1\r\nnot a header\r\nB: 2\r\n", 26), 6,
	    "a line that is not a header ends the section");
	is_int((long)mhdr_section("\r\nbody\r\n", 8), 2, "no headers: the empty line only");
	is_int((long)mhdr_section("A: 1\r\nB: 2", 10), 6, "an incomplete line is not in it");
	is_int((long)mhdr_section(": x\r\n", 5), 0, "an empty name is not a header");
}

/* collect - a medit_write_fn into a growing string */
struct sinkbuf {
	char *p;
	size_t n;
};

static int
collect(void *arg, const char *p, size_t n)
{
	struct sinkbuf *s = arg;

	s->p = realloc(s->p, s->n + n + 1);
	memcpy(s->p + s->n, p, n);
	s->n += n;
	s->p[s->n] = '\0';
	return 0;
}

static char *
apply_file(const struct medits *e, const char *msg, const char *prefix)
{
	char path[] = "/tmp/test_milter.XXXXXX";
	struct sinkbuf s = { NULL, 0 };
	int fd = mkstemp(path);
	size_t pl = strlen(prefix);

	unlink(path);
	if (write(fd, prefix, pl) != (ssize_t)pl ||
	    write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
		return NULL;
	if (milter_edit_apply(e, fd, (off_t)pl, strlen(msg), collect, &s) < 0)
		diag("milter_edit_apply failed");
	close(fd);
	return s.p;
}

static void
test_edits(void)
{
	const char *m = "A: 1\r\nSubject: old\r\nX-D: one\r\nX-D: two\r\n\r\nbody\r\n";
	struct medits e = { 0 };
	char *out;

	medits_add(&e, MEDIT_ADD, 0, "X-New", "v");
	medits_add(&e, MEDIT_INSERT, 0, "X-Top", "t");
	medits_add(&e, MEDIT_CHANGE, 1, "subject", "new");
	medits_add(&e, MEDIT_CHANGE, 2, "X-D", "");
	medits_add(&e, MEDIT_CHANGE, 5, "X-D", "");
	medits_add(&e, MEDIT_CHANGE, 1, "X-Missing", "added");
	out = apply_file(&e, m, "ENVELOPE\n");
	is_str(out, "X-Top: t\r\nA: 1\r\nsubject: new\r\nX-D: one\r\nX-New: v\r\n"
	    "X-Missing: added\r\n\r\nbody\r\n",
	    "insert on top, change, delete the 2nd, add at the end, body kept");
	free(out);
	medits_free(&e);

	medits_add(&e, MEDIT_ADD, 0, "X-Multi", "a\nb\n c");
	e.body = strdup("new\r\n");
	e.bodylen = 5;
	out = apply_file(&e, "A: 1\r\n", "");
	is_str(out, "A: 1\r\nX-Multi: a\r\n\tb\r\n c\r\n\r\nnew\r\n",
	    "a value's lines are folded; a new body gets its empty line");
	free(out);
	medits_free(&e);

	for (int i = 0; i < MILTER_EDITS_MAX; i++)
		medits_add(&e, MEDIT_ADD, 0, "X", "y");
	is_int(medits_add(&e, MEDIT_ADD, 0, "X", "y"), -1, "edits are bounded");
	medits_free(&e);
}

int
main(void)
{
	test_encode();
	test_take();
	test_parse();
	test_split();
	test_edits();
	return done_testing();
}
