/* tls.c - OpenSSL server context for STARTTLS */
#include "autoconf.h"

#include <stdio.h>
#include <openssl/err.h>

#include "config.h"
#include "tls.h"

/* tls_error - the first queued OpenSSL error as text, then clear the queue */
static void
tls_error(char *err, size_t errlen, const char *what, const char *file)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s %s: %s", what, file, e ? buf : "failed");
	ERR_clear_error();
}

/* tls_versions - OpenSSL's numbers for enum tls_protocol */
static const int tls_versions[] = {
	TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION,
};

/* tls_policy - protocol floor and cipher lists (config.c validated them;
 * a failure here is still reported, never ignored) */
static int
tls_policy(SSL_CTX *ctx, const struct config *cfg, char *err, size_t errlen)
{
	int v = cfg->tls_min_protocol;

	if (v < 0 || v >= (int)(sizeof(tls_versions) / sizeof(tls_versions[0])) ||
	    SSL_CTX_set_min_proto_version(ctx, tls_versions[v]) != 1) {
		tls_error(err, errlen, "tls.min_protocol", "");
		return -1;
	}
	if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		tls_error(err, errlen, "tls.ciphers", cfg->tls_ciphers);
		return -1;
	}
	if (SSL_CTX_set_ciphersuites(ctx, cfg->tls_ciphersuites) != 1) {
		tls_error(err, errlen, "tls.ciphersuites", cfg->tls_ciphersuites);
		return -1;
	}
	return 0;
}

SSL_CTX *
tls_server_ctx(const struct config *cfg, char *err, size_t errlen)
{
	const char *cert = cfg->tls_certificate, *key = cfg->tls_key;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		tls_error(err, errlen, "SSL_CTX_new", "");
		return NULL;
	}
	if (tls_policy(ctx, cfg, err, errlen) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Server preference: a client offering an AEAD suite gets one even
	 * when it lists CBC suites first. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_error(err, errlen, "certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_error(err, errlen, "key", key);
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "key does not match certificate", cert);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}
