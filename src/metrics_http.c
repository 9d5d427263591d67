/* metrics_http.c - the /metrics request handler and evhttp's limits
 * (see metrics_http.h for what is answered) */
#include "autoconf.h"

#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/http_struct.h>	/* the request's version: no getter */

#include "metrics.h"
#include "metrics_http.h"

#define HTTP_VERSION_UNSUPPORTED	505

/* metrics_http_version_ok - HTTP/1.0 or HTTP/1.1. evhttp takes any
 * "HTTP/M.N" up to 1.1, HTTP/0.x too, and answers in the request's
 * version ("HTTP/0.1 200 OK", found by fuzz_metrics_http): refuse the
 * others, in HTTP/1.1. */
static int
metrics_http_version_ok(struct evhttp_request *req)
{
	if (req->major == 1 && (req->minor == 0 || req->minor == 1))
		return 1;
	req->major = 1;
	req->minor = 1;
	return 0;
}

/* on_request - GET or HEAD /metrics: the exposition; 404 elsewhere;
 * 505 to a version other than HTTP/1.0 and 1.1 */
static void
on_request(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	struct evbuffer *out;

	if (!metrics_http_version_ok(req)) {
		evhttp_send_error(req, HTTP_VERSION_UNSUPPORTED, NULL);
		return;
	}
	if (path == NULL || strcmp(path, METRICS_PATH) != 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, "try " METRICS_PATH);
		return;
	}
	if ((out = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_SERVUNAVAIL, NULL);
		return;
	}
	metrics_render(out);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", METRICS_CONTENT_TYPE);
	evhttp_send_reply(req, HTTP_OK, "OK", out);
	evbuffer_free(out);
}

void
metrics_http_setup(struct evhttp *http)
{
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(http, METRICS_BODY_MAX);
	evhttp_set_timeout(http, METRICS_TIMEOUT);
	evhttp_set_gencb(http, on_request, NULL);
}
