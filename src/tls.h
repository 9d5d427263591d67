/* tls.h - OpenSSL contexts */
#ifndef MX_TLS_H
#define MX_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

/* tls_server_ctx - TLS 1.2+ server context with certificate chain and key.
 * Returns NULL with a reason in err. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *);

#endif
