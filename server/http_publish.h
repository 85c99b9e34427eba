/* http_publish.h — POST /api/rooms/<room>/messages and POST /api/broadcast:
 * the platform's backend publishes to a room, or to several at once (each
 * its own message).
 *
 * As the system or on behalf of a user: the backend sets sender, name and
 * role. The message takes the path of a SEND (its place in the room order,
 * local delivery, the bus, the storage copy), and the answer comes once the
 * storage copy is confirmed durable, with the message's id, as a SEND's
 * RECEIPT would. Server-to-server keys only (api.keys). docs/api.md.
 */
#ifndef LECTERN_HTTP_PUBLISH_H
#define LECTERN_HTTP_PUBLISH_H

#include <stdbool.h>

#include "http_contacts.h"
#include "http_exchange.h"

struct lws;
struct relay;

/* Is uri (a POST's path) /api/rooms/<room>/messages or /api/broadcast? */
bool http_publish_match(const char *uri);

/* LWS_CALLBACK_HTTP of a POST to such a uri: check the key, then read the
 * body (answered by http_publish_body_done). keys is the contacts API's
 * env (keys, config, metrics); relay publishes. lws's convention. */
int http_publish_request(const http_contacts_env *keys, struct relay *rl, struct lws *wsi,
                         http_exchange **x, const char *uri);

/* LWS_CALLBACK_HTTP_BODY_COMPLETION of such a request. lws's convention. */
int http_publish_body_done(const http_contacts_env *keys, struct relay *rl, struct lws *wsi,
                           http_exchange **x);

#endif
