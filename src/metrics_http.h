/* metrics_http.h - the HTTP side of /metrics: what the endpoint takes
 * from a scraper and what it answers
 *
 * evhttp parses the request; these settings bound it and on_request
 * decides: GET or HEAD of METRICS_PATH (a query string is ignored, an
 * absolute URI is taken by its path) is 200 with metrics_render's text;
 * any other path 404; a version other than HTTP/1.0 and HTTP/1.1 505;
 * 503 when out of memory. evhttp itself answers a method other than GET
 * and HEAD with 501, a malformed request line or header (HTTP/2.0,
 * headers over METRICS_HEADERS_MAX) with 400, a body over
 * METRICS_BODY_MAX with 413, an Expect other than 100-continue with 417
 * (or closes the connection), and closes a connection silent for
 * METRICS_TIMEOUT seconds. evhttp's own refusals carry the request's
 * version in their status line (HTTP/0.1, HTTP/1.2: it takes any M.N). Kept apart from the rendering so that
 * t/fuzz/fuzz_metrics_http.c drives exactly this code.
 */
#ifndef MX_METRICS_HTTP_H
#define MX_METRICS_HTTP_H

#include <event2/http.h>

#define METRICS_PATH		"/metrics"
#define METRICS_HEADERS_MAX	8192	/* a scraper's request headers, bytes */
#define METRICS_BODY_MAX	1024	/* GET has none; a sender of one is cut off */
#define METRICS_TIMEOUT		30	/* seconds for a request to arrive */
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

/* metrics_http_setup - our limits and request handler on http */
void metrics_http_setup(struct evhttp *http);

#endif
