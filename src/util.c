/* util.c - allocators that abort or fail, small string and time helpers */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"
#include "util.h"

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		fatal("malloc %zu", n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (p == NULL)
		fatal("calloc %zu*%zu", n, sz);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		fatal("realloc %zu", n);
	return q;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (p == NULL)
		fatal("strndup");
	return p;
}

int
xasprintf(char **ret, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(ret, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("asprintf");
	return n;
}

/* mx_alloc_refused - the session_alloc fault point: fail this allocation
 * as the allocator would (NULL, ENOMEM) */
static int
mx_alloc_refused(void)
{
	if (FAULT_HIT("session_alloc") == 0)
		return 0;
	errno = ENOMEM;
	return 1;
}

void *
mx_try_malloc(size_t n)
{
	return mx_alloc_refused() ? NULL : malloc(n ? n : 1);
}

void *
mx_try_calloc(size_t n, size_t sz)
{
	return mx_alloc_refused() ? NULL : calloc(n ? n : 1, sz ? sz : 1);
}

void *
mx_try_realloc(void *p, size_t n)
{
	return mx_alloc_refused() ? NULL : realloc(p, n ? n : 1);
}

char *
mx_try_strdup(const char *s)
{
	return mx_alloc_refused() ? NULL : strdup(s);
}

size_t
mx_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len >= size ? size - 1 : len;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

char *
mx_lower(char *s)
{
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

uint64_t
mx_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
mx_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* mx_split_hostport - "host", "host:25", "[::1]:25", "[10.0.0.1]" -> host, port.
 * Returns 0, or -1 on syntax error (bad port, unbalanced bracket, empty host). */
int
mx_split_hostport(const char *in, char *host, size_t hostlen, int *port, int defport)
{
	const char *end, *colon;
	size_t n;
	char *ep;
	long p;

	*port = defport;
	if (*in == '[') {
		end = strchr(in, ']');
		if (end == NULL)
			return -1;
		n = (size_t)(end - in - 1);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, in + 1, n);
		host[n] = '\0';
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return -1;
	} else {
		colon = strchr(in, ':');
		if (colon && strchr(colon + 1, ':'))
			return -1;	/* bare IPv6 must be bracketed */
		n = colon ? (size_t)(colon - in) : strlen(in);
		if (n == 0 || n >= hostlen)
			return -1;
		memcpy(host, in, n);
		host[n] = '\0';
	}
	if (colon) {
		errno = 0;
		p = strtol(colon + 1, &ep, 10);
		if (colon[1] == '\0' || *ep != '\0' || errno || p < 1 || p > 65535)
			return -1;
		*port = (int)p;
	}
	return 0;
}

/* hexval - one hex digit's value, -1 if it is none */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)toupper((unsigned char)c);
	return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

ssize_t
mx_xtext_decode(char *dst, size_t dstlen, const char *src, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];

		if (j + 1 >= dstlen)
			return -1;
		if (c == '+') {
			int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(src[i + 2]) : -1;

			/* a NUL octet would cut the value short */
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		}
		dst[j++] = (char)c;
	}
	dst[j] = '\0';
	return (ssize_t)j;
}

ssize_t
mx_pread_full(int fd, char *buf, size_t n, off_t off)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = pread(fd, buf + got, n - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
mx_write_full(int fd, const char *buf, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t w = off < 0 ? write(fd, buf, n) : pwrite(fd, buf, n, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
		if (off >= 0)
			off += w;
	}
	return 0;
}
