/* util.h - allocators that abort, bounded string helpers */
#ifndef MX_UTIL_H
#define MX_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
int xasprintf(char **, const char *, ...) __attribute__((format(printf, 2, 3)));

/* Fallible allocators for what one client's SMTP session holds (issue
 * 15): NULL when the memory is not there, or when the fault point
 * session_alloc says so (fault.h). The caller ends that session with 421
 * and frees what it held; the daemon and the other sessions go on. The
 * daemon's own state (configuration, store, queue, spool index) stays on
 * the x allocators above: a daemon that cannot allocate its own state
 * stops rather than runs half-initialised. */
void *mx_try_malloc(size_t);
void *mx_try_calloc(size_t, size_t);
/* mx_try_realloc - on failure p is left as it was */
void *mx_try_realloc(void *p, size_t);
char *mx_try_strdup(const char *);

/* strlcpy-like: returns strlen(src); truncation when >= size */
size_t mx_strlcpy(char *dst, const char *src, size_t size);
/* ASCII lower-case in place; returns s */
char *mx_lower(char *s);
/* monotonic and wall clocks in microseconds */
uint64_t mx_now_us(void);
uint64_t mx_mono_us(void);
/* parse "host:port", "[v6]:port", "host" into host (no brackets) and port */
int mx_split_hostport(const char *in, char *host, size_t hostlen, int *port, int defport);
/* mx_xtext_decode - RFC 3461 4 xtext ("+2B" is '+') of src[0..n) into dst,
 * NUL-terminated: its length, or -1 when malformed (a bad "+XX", a NUL
 * octet) or longer than dst. Hex digits of either case are taken. */
ssize_t mx_xtext_decode(char *dst, size_t dstlen, const char *src, size_t n);

/* mx_pread_full - pread(2) until n octets or end of file (EINTR
 * retried): the octets read, or -1 with errno */
ssize_t mx_pread_full(int fd, char *buf, size_t n, off_t off);
/* mx_write_full - write(2) (off < 0) or pwrite(2) at off until all n
 * octets are written (EINTR retried): 0, or -1 with errno */
int mx_write_full(int fd, const char *buf, size_t n, off_t off);

#define MX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
