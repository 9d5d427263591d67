/* fuzz_smtp_command - one SMTP command line through src/smtp_parse.c: the
 * verb, MAIL/RCPT paths and ESMTP parameters, the canonical address form,
 * HELO checks, the HELO text for Received: and the xtext of XCLIENT
 * attributes */
#include "autoconf.h"

#include "fuzz.h"
#include "smtp_parse.h"
#include "util.h"

/* check_mailbox - the parsed fields fit their buffers and mean something;
 * the canonical form (issue 17) is an address, a fixed point, and never
 * longer than what the client wrote */
static void
check_mailbox(const struct smtp_mailbox *m)
{
	char canon[SMTP_PATH_MAX + 1], again[SMTP_PATH_MAX + 1];
	size_t n;

	FUZZ_ASSERT(strlen(m->text) <= SMTP_PATH_MAX);
	FUZZ_ASSERT(strlen(m->local) <= SMTP_LOCAL_MAX);
	FUZZ_ASSERT(strlen(m->domain) <= SMTP_DOMAIN_MAX);
	FUZZ_ASSERT(m->domain[0] != '\0');
	FUZZ_ASSERT(!m->literal || m->domain[0] == '[');
	n = smtp_mailbox_canonical(m, canon, sizeof(canon));
	FUZZ_ASSERT(n > 0 && n == strlen(canon) && n <= strlen(m->text));
	FUZZ_ASSERT(smtp_address_canonical(canon, again, sizeof(again)) == PARSE_OK);
	FUZZ_ASSERT(strcmp(canon, again) == 0);
}

/* the path and parameters after MAIL FROM: / RCPT TO: */
static void
fuzz_path(const char *args, int is_mail)
{
	struct smtp_path path;
	struct smtp_mail_params mp;
	const char *rest = NULL;
	char err[128];

	for (int utf8 = 0; utf8 <= 1; utf8++) {
		memset(&path, 0, sizeof(path));
		if (smtp_parse_path(args, is_mail, utf8, &path, &rest) != PARSE_OK)
			continue;
		FUZZ_ASSERT(rest != NULL && rest >= args && rest <= args + strlen(args));
		FUZZ_ASSERT(is_mail || !path.null);
		if (!path.null)
			check_mailbox(&path.mbox);
		FUZZ_ASSERT(utf8 || path.null || !path.mbox.utf8);
		if (is_mail) {
			memset(&mp, 0, sizeof(mp));
			if (smtp_parse_mail_params(rest, &mp, err, sizeof(err)) == PARSE_OK)
				FUZZ_ASSERT(mp.size >= -1);
		} else
			smtp_parse_rcpt_params(rest, err, sizeof(err));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line, helo[3 * 600 + 1], clean[600], xt[SMTP_LINE_MAX];
	const char *args = NULL;
	struct smtp_mailbox m;
	enum smtp_cmd cmd;
	ssize_t n;

	if (size > 4 * SMTP_LINE_MAX)
		return 0;
	line = fuzz_cstring(data, size);
	cmd = smtp_command_parse(line, &args);
	FUZZ_ASSERT(cmd >= CMD_UNKNOWN && cmd < CMD_COUNT_);
	FUZZ_ASSERT(smtp_command_name(cmd) != NULL);
	if (args != NULL && cmd != CMD_UNKNOWN)
		FUZZ_ASSERT(args >= line && args <= line + strlen(line));
	if ((cmd == CMD_MAIL || cmd == CMD_RCPT) && args != NULL)
		fuzz_path(args, cmd == CMD_MAIL);

	smtp_helo_valid(line);
	smtp_helo_header(helo, sizeof(helo), line);
	FUZZ_ASSERT(strpbrk(helo, " \t\r\n();\\\"") == NULL);
	smtp_sanitize(clean, sizeof(clean), line);
	for (const char *p = clean; *p; p++)
		FUZZ_ASSERT(*p >= 0x20 && *p <= 0x7e);

	memset(&m, 0, sizeof(m));
	if (smtp_mailbox_parse(line, strlen(line), 1, &m) == PARSE_OK)
		check_mailbox(&m);
	if (smtp_address_canonical(line, clean, sizeof(clean)) == PARSE_OK &&
	    smtp_address_canonical(clean, xt, sizeof(xt)) == PARSE_OK)
		FUZZ_ASSERT(strcmp(clean, xt) == 0);
	n = mx_xtext_decode(xt, sizeof(xt), line, strlen(line));
	FUZZ_ASSERT(n < (ssize_t)sizeof(xt));
	if (n >= 0)
		FUZZ_ASSERT(strlen(xt) == (size_t)n);
	free(line);
	return 0;
}
