/* jsonw.c - a tiny streaming JSON writer into an evbuffer */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "log.h"
#include "util.h"

struct jsonw {
	struct evbuffer *out;
	int depth;
	int first[JSONW_DEPTH_MAX];	/* no member written yet at this level */
	int after_key;			/* a key was written, its value is next */
	int wrote;
};

struct jsonw *
jsonw_new(struct evbuffer *out)
{
	struct jsonw *w = xcalloc(1, sizeof(*w));

	w->out = out;
	return w;
}

void
jsonw_free(struct jsonw *w)
{
	if (w == NULL)
		return;
	if (w->wrote)
		evbuffer_add(w->out, "\n", 1);
	free(w);
}

/* jsonw_sep - write the comma that separates this value from the previous */
static void
jsonw_sep(struct jsonw *w)
{
	w->wrote = 1;
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->depth > 0) {
		if (!w->first[w->depth - 1])
			evbuffer_add(w->out, ",", 1);
		w->first[w->depth - 1] = 0;
	}
}

static void
jsonw_open(struct jsonw *w, char c)
{
	jsonw_sep(w);
	if (w->depth >= JSONW_DEPTH_MAX)
		fatalx("jsonw: nesting deeper than %d", JSONW_DEPTH_MAX);
	w->first[w->depth++] = 1;
	evbuffer_add(w->out, &c, 1);
}

static void
jsonw_close(struct jsonw *w, char c)
{
	if (w->depth > 0)
		w->depth--;
	evbuffer_add(w->out, &c, 1);
}

void jsonw_object_begin(struct jsonw *w) { jsonw_open(w, '{'); }
void jsonw_object_end(struct jsonw *w) { jsonw_close(w, '}'); }
void jsonw_array_begin(struct jsonw *w) { jsonw_open(w, '['); }
void jsonw_array_end(struct jsonw *w) { jsonw_close(w, ']'); }

void
jsonw_key(struct jsonw *w, const char *key)
{
	jsonw_sep(w);
	jsonw_escape(w->out, key);
	evbuffer_add(w->out, ":", 1);
	w->after_key = 1;
}

void
jsonw_string(struct jsonw *w, const char *s)
{
	jsonw_sep(w);
	if (s == NULL)
		evbuffer_add(w->out, "null", 4);
	else
		jsonw_escape(w->out, s);
}

void
jsonw_int(struct jsonw *w, int64_t v)
{
	jsonw_sep(w);
	evbuffer_add_printf(w->out, "%" PRId64, v);
}

void
jsonw_bool(struct jsonw *w, int v)
{
	jsonw_sep(w);
	if (v)
		evbuffer_add(w->out, "true", 4);
	else
		evbuffer_add(w->out, "false", 5);
}

void
jsonw_null(struct jsonw *w)
{
	jsonw_sep(w);
	evbuffer_add(w->out, "null", 4);
}

void jsonw_kv_string(struct jsonw *w, const char *k, const char *s) { jsonw_key(w, k); jsonw_string(w, s); }
void jsonw_kv_int(struct jsonw *w, const char *k, int64_t v) { jsonw_key(w, k); jsonw_int(w, v); }
void jsonw_kv_bool(struct jsonw *w, const char *k, int v) { jsonw_key(w, k); jsonw_bool(w, v); }

/* utf8_len - length of the valid UTF-8 sequence at p (RFC 3629: no
 * overlongs, no surrogates, max U+10FFFF), or 0 when invalid */
static size_t
utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f))
			return 0;
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

void
jsonw_escape(struct evbuffer *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;	/* bytes copied as they are */
	size_t n;

	evbuffer_add(out, "\"", 1);
	while (*p) {
		if (*p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) {
			p++;
			continue;
		}
		if (*p >= 0x80 && (n = utf8_len(p)) > 0) {
			p += n;
			continue;
		}
		evbuffer_add(out, run, (size_t)(p - run));
		switch (*p) {
		case '"': evbuffer_add(out, "\\\"", 2); break;
		case '\\': evbuffer_add(out, "\\\\", 2); break;
		case '\n': evbuffer_add(out, "\\n", 2); break;
		case '\r': evbuffer_add(out, "\\r", 2); break;
		case '\t': evbuffer_add(out, "\\t", 2); break;
		default:
			if (*p < 0x20)
				evbuffer_add_printf(out, "\\u%04x", *p);
			else	/* invalid UTF-8 byte */
				evbuffer_add(out, "\\ufffd", 6);
		}
		run = ++p;
	}
	evbuffer_add(out, run, (size_t)(p - run));
	evbuffer_add(out, "\"", 1);
}
