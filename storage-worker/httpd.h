/* httpd.h — a small HTTP server for health checks and metrics.
 *
 * libwebsockets (HTTP/1.1 only, no WebSocket) attached to the caller's
 * libuv loop. Every request is a GET answered at once, whole, by the
 * caller's route function; other methods get 405.
 */
#ifndef LECTERN_STORAGE_HTTPD_H
#define LECTERN_STORAGE_HTTPD_H

#include "buf.h"

#include <stddef.h>
#include <uv.h>

typedef struct httpd httpd;

/* Answer GET `path` (no query): append the body to `body`, point *ctype at a
 * static content type, return the HTTP status. Runs on the loop. */
typedef unsigned (*httpd_route_fn)(void *ctx, const char *path, buf *body, const char **ctype);

/* Listen on port (on `listen`: an interface name or address; "" = all).
 * loop, listen and ctx are borrowed and must outlive the server. Returns
 * NULL with a reason in err (e.g. the port is taken). Must be called before
 * the loop runs, with no other active handles on it (a failed start runs
 * the loop to take libwebsockets down). */
httpd *httpd_create(uv_loop_t *loop, int port, const char *listen, httpd_route_fn route,
                    void *ctx, char *err, size_t errlen);

/* The port actually bound. */
int httpd_port(const httpd *h);

/* Stop serving; from a callback of the running loop, which then closes
 * libwebsockets' handles. Accepts NULL; idempotent. */
void httpd_close(httpd *h);

/* Free, once the loop has run dry after httpd_close. Accepts NULL. */
void httpd_destroy(httpd *h);

#endif
