/* apilog.h — the server API's own metrics and log lines.
 *
 * Every request to a server-API route (the backend's: publish, broadcast,
 * redaction, moderation, rooms, sessions, contact lists) is counted by
 * route and status (lectern_api_requests_total), timed
 * (lectern_api_request_seconds, all routes together) and logged once, when its answer is
 * written or the client went away first:
 *   event=api_request route=publish method=POST status=200 ms=3.2 peer=10.0.0.7
 * so operators see the backend's traffic apart from the students'. The
 * HTTP layer reports through http_exchange_conf's observer (a route names
 * itself with http_exchange_route); this module only counts and logs.
 */
#ifndef LECTERN_APILOG_H
#define LECTERN_APILOG_H

#include <stdint.h>

#include "buf.h"
#include "histogram.h"

/* The routes, by label (apilog_route_name). */
#define APILOG_ROUTES(X)                                                            \
    X(PUBLISH, "publish")                                                           \
    X(BROADCAST, "broadcast")                                                       \
    X(REDACT, "redact")                                                             \
    X(MODERATION, "moderation")                                                     \
    X(ROOMS, "rooms")                                                               \
    X(SESSIONS, "sessions")                                                         \
    X(CONTACTS, "contacts")

typedef enum apilog_route {
#define APILOG_ROUTE_ENUM(name, label) APILOG_##name,
    APILOG_ROUTES(APILOG_ROUTE_ENUM)
#undef APILOG_ROUTE_ENUM
    APILOG_ROUTE_COUNT
} apilog_route;

/* The statuses counted one by one; any other lands under "other". */
#define APILOG_STATUSES(X) X(200) X(400) X(401) X(403) X(404) X(405) X(413) X(503)
enum { APILOG_STATUS_COUNT = 9 };   /* the eight above and "other" (0: no answer) */

typedef struct apilog {
    uint64_t requests[APILOG_ROUTE_COUNT][APILOG_STATUS_COUNT];
    histogram latency;         /* every route's */
} apilog;

void apilog_init(apilog *a);

/* The label of route r ("other" out of range). */
const char *apilog_route_name(apilog_route r);

/* One request of route r ended: method ("POST"...), the status written (0:
 * the client went before an answer), how long it took and the client's
 * address (may be ""). Counts, times and logs it. */
void apilog_record(apilog *a, apilog_route r, const char *method, unsigned status,
                   uint64_t us, const char *peer);

/* lectern_api_requests_total{route,code} and lectern_api_request_seconds. */
void apilog_render(const apilog *a, buf *out);

#endif
