/* jsonw.h - a tiny streaming JSON writer into an evbuffer
 *
 * Commas and nesting are tracked for the caller; strings are escaped per
 * RFC 8259 section 7, and bytes that are not valid UTF-8 become U+FFFD so
 * that the document is always valid JSON.
 */
#ifndef MX_JSONW_H
#define MX_JSONW_H

#include <stdint.h>
#include <event2/buffer.h>

#define JSONW_DEPTH_MAX	32

struct jsonw;

struct jsonw *jsonw_new(struct evbuffer *out);
/* jsonw_free - ends the document with a newline (when something was written) */
void jsonw_free(struct jsonw *);

void jsonw_object_begin(struct jsonw *);
void jsonw_object_end(struct jsonw *);
void jsonw_array_begin(struct jsonw *);
void jsonw_array_end(struct jsonw *);
/* jsonw_key - the member name of the next value (inside an object) */
void jsonw_key(struct jsonw *, const char *key);
void jsonw_string(struct jsonw *, const char *s);	/* NULL writes null */
void jsonw_int(struct jsonw *, int64_t v);
void jsonw_bool(struct jsonw *, int v);
void jsonw_null(struct jsonw *);

/* shorthands: key then value */
void jsonw_kv_string(struct jsonw *, const char *key, const char *s);
void jsonw_kv_int(struct jsonw *, const char *key, int64_t v);
void jsonw_kv_bool(struct jsonw *, const char *key, int v);

/* jsonw_escape - append s to out as a JSON string literal, quotes included */
void jsonw_escape(struct evbuffer *out, const char *s);

#endif
