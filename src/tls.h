/* tls.h - OpenSSL contexts */
#ifndef MX_TLS_H
#define MX_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

struct config;

/* tls_server_ctx - server context with cfg's certificate chain and key,
 * tls.min_protocol, tls.ciphers and tls.ciphersuites. Returns NULL with
 * a reason in err. */
SSL_CTX *tls_server_ctx(const struct config *cfg, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *);

#endif
