/* tap.c - a minimal TAP producer for the C unit tests */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"

static int tap_n, tap_failed, tap_planned;

void
tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
}

static int
tap_vok(int cond, const char *fmt, va_list ap)
{
	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	vprintf(fmt, ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cond = tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

int
is_int(long got, long want, const char *name)
{
	int r = ok(got == want, "%s", name);
	if (!r)
		diag("got %ld, want %ld", got, want);
	return r;
}

int
is_str(const char *got, const char *want, const char *name)
{
	int r = ok(got && want && strcmp(got, want) == 0, "%s", name);
	if (!r)
		diag("got '%s', want '%s'", got ? got : "(null)", want ? want : "(null)");
	return r;
}

void
diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

int
done_testing(void)
{
	if (!tap_planned)
		printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
