/* ioev.h - buffered socket I/O as semantic events for the session code
 *
 * The only module that touches bufferevent and SSL objects: sessions see
 * IO_DATAIN, IO_LOWAT, IO_TLSREADY, IO_TIMEOUT, IO_DISCONNECTED, IO_ERROR.
 */
#ifndef MX_IOEV_H
#define MX_IOEV_H

#include <stddef.h>
#include <event2/event.h>
#include <event2/buffer.h>
#include <openssl/ssl.h>

#define IO_READ_HIWAT	(64 * 1024)	/* stop reading when this much is unread */
#define IO_READ_BULK_MIN 4096		/* libevent 2.1's most per read: more may wait */
#define IO_LINGER_SECS	10		/* to send the last octets after io_free */

enum io_event {
	IO_DATAIN,		/* new input in io_input() */
	IO_LOWAT,		/* everything written has been sent */
	IO_TLSREADY,		/* TLS handshake done */
	IO_TIMEOUT,		/* read timeout */
	IO_DISCONNECTED,	/* peer closed */
	IO_ERROR,		/* socket or TLS error */
};

struct io;
typedef void (*io_callback)(struct io *, enum io_event, void *arg);

/* io_new - wrap a connected non-blocking socket; the io owns fd. NULL
 * when out of memory: fd is then still the caller's. */
struct io *io_new(struct event_base *, int fd, io_callback, void *arg);
/* io_free - no more callbacks; what is already written is still sent */
void io_free(struct io *);
/* io_abort - close now, without needing memory (the session ran out of
 * it): what is queued and then last (a static reply) go straight to the
 * socket, non-blocking, as far as it takes them; over TLS last is sent
 * only if it can still be encrypted. No more callbacks. */
void io_abort(struct io *, const char *last);
const char *io_event_name(enum io_event);

struct evbuffer *io_input(struct io *);
/* io_write - queue octets for output: 0, or -1 when the buffer could not
 * grow (out of memory, or the session_alloc fault point of fault.h) */
int io_write(struct io *, const void *, size_t);
size_t io_queued(struct io *);
/* io_set_timeout - read timeout in seconds (0: none); the same for a
 * write that waits, on plaintext and TLS alike */
void io_set_timeout(struct io *, int secs);
/* io_write_timed_out - the last IO_TIMEOUT was a write that waited:
 * libevent stopped writing, nothing more will be sent */
int io_write_timed_out(const struct io *);
/* io_pause - no more IO_DATAIN (nor a read timeout, nor a peer's close)
 * until io_resume; what arrives meanwhile waits in io_input() */
void io_pause(struct io *);
void io_resume(struct io *);
/* io_want_lowat - report IO_LOWAT once pending output has been sent */
void io_want_lowat(struct io *, int on);
/* io_cork, io_uncork - replies written in between are sent together at
 * the uncork (pipelined commands: one send for their replies, not one
 * each); outside, a reply is sent at once (io_write). Nest. */
void io_cork(struct io *);
void io_uncork(struct io *);

/* io_start_tls - discard unread input (RFC 3207 4.2 / SPEC 5: plaintext
 * pipelined behind STARTTLS must not be processed) and start a server-side
 * handshake after what is already queued for output. Returns 0 or -1. */
int io_start_tls(struct io *, SSL_CTX *);
int io_is_tls(struct io *);
const char *io_tls_version(struct io *);
const char *io_tls_cipher(struct io *);
int io_tls_bits(struct io *);
/* io_error_string - last socket or TLS error, for logs */
const char *io_error_string(struct io *);

#endif
