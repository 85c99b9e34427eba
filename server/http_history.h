/* http_history.h — GET /api/rooms/<room>/messages: a page of a room's past.
 *
 * The route behind http.c's router: parses the query (http_query.h), takes
 * one of the server's history slots (http.max_inflight; none free: 503 with
 * Retry-After), reads the page (history.h; bounded by limit and by
 * history.max_bytes of JSON), and answers it written straight from the
 * messages into the one response buffer (history_json.h). The slot is held
 * until the response has been written or the client has gone. Protocol:
 * docs/protocol.md, "History over HTTP"; limits: docs/security.md.
 */
#ifndef LECTERN_HTTP_HISTORY_H
#define LECTERN_HTTP_HISTORY_H

#include <stddef.h>

#include "config.h"
#include "http_exchange.h"

struct gate;
struct history;
struct lws;

/* The seconds a client refused for want of a slot is told to wait. */
#define HTTP_HISTORY_RETRY_AFTER_S 1

/* Answer GET /api/rooms/<room>/messages for the room rname[0..n) (a valid
 * room name the caller may read), with the query of wsi's request, from
 * history h (NULL: shutting down, 503) through a slot of slots. conf, h and
 * slots are borrowed. *x receives the exchange. Returns lws's convention:
 * 0 to go on, -1 to close. */
int http_history_request(const server_config *conf, struct history *h, struct gate *slots,
                         struct lws *wsi, http_exchange **x, const char *rname, size_t n);

#endif
