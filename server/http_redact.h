/* http_redact.h — DELETE /api/rooms/<room>/messages/<id>: redact a message.
 *
 * The platform's backend removes a message (redact.h): history answers its
 * tombstone from then on, live subscribers get a MESSAGE with
 * x-redacts:<id>. Server-to-server keys only (api.keys). The optional
 * request body {"by": "<user id>"} names who redacted (default "system").
 * Answers, after the redaction event's storage confirm:
 *   200 {"room","id","redaction_id","redacted_by","redacted_at"}
 *   200 {"room","id","already":true,"redacted_by","redacted_at"}  (no new event)
 *   404 neither the room log nor MySQL holds the message
 *   400 bad room, id or body; 401/403 keys; 503 Redis, MySQL or RabbitMQ.
 * docs/api.md, "Redact".
 */
#ifndef LECTERN_HTTP_REDACT_H
#define LECTERN_HTTP_REDACT_H

#include <stdbool.h>

#include "http_contacts.h"
#include "http_exchange.h"

struct lws;
struct redact;

/* Is this request (LWS_CALLBACK_HTTP, path uri) a DELETE of
 * /api/rooms/<room>/messages/<id>? */
bool http_redact_match(struct lws *wsi, const char *uri);

/* LWS_CALLBACK_HTTP of such a request: check the key, read the body if
 * there is one (then answered by http_redact_body_done), redact. keys is
 * the contacts API's env (keys, config, metrics); rd redacts (NULL:
 * shutting down, 503). lws's convention. */
int http_redact_request(const http_contacts_env *keys, struct redact *rd, struct lws *wsi,
                        http_exchange **x, const char *uri);

/* Is the body being read (http_exchange_reading) this route's? */
bool http_redact_reading(struct lws *wsi);

/* LWS_CALLBACK_HTTP_BODY_COMPLETION of such a request. lws's convention. */
int http_redact_body_done(const http_contacts_env *keys, struct redact *rd, struct lws *wsi,
                          http_exchange **x);

#endif
