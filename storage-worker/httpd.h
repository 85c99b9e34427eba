/* httpd.h — the worker's tiny HTTP endpoint (health and metrics).
 *
 * GET only, one request per connection, answered whole and closed: all a
 * load balancer's health check or a Prometheus scrape needs. Runs on the
 * worker's libuv loop; the handler builds the body.
 */
#ifndef LECTERN_HTTPD_H
#define LECTERN_HTTPD_H

#include <uv.h>

#include "buf.h"

typedef struct httpd httpd;

/* Fill body (and *ctype, a static string) for `path`; return the status. */
typedef int (*httpd_fn)(void *ctx, const char *path, buf *body, const char **ctype);

/* Listen on addr:port. Returns NULL with a reason in err. */
httpd *httpd_create(uv_loop_t *loop, const char *addr, int port, httpd_fn fn, void *ctx,
                    char *err, size_t errlen);

/* Close the listener and every open connection. Accepts NULL. The loop
 * must run once more for the closes to complete. */
void httpd_destroy(httpd *h);

#endif
