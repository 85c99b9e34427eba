/* http_status.h — GET /api/users/<id>/contacts/status.
 *
 * The statuses of a user's contacts, as a /status snapshot lists them
 * (status.h): {"user": id, "contacts": [{user, online, since, seen}]}.
 * ?users=a,b asks about some of them only (each must be a contact unless
 * the caller may see anyone). Only the user themself, an admin, or a
 * server-to-server key may ask (the route decides; see http.c).
 */
#ifndef LECTERN_HTTP_STATUS_H
#define LECTERN_HTTP_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http_exchange.h"

struct contacts;
struct lws;
struct registry;

/* Answer for user id[0..idlen) (a valid user id). claim: the caller's
 * token's contacts claim when the caller is that user (NULL/0 otherwise);
 * any: the caller may see anyone's status. Returns lws's convention. */
int http_status_request(const server_config *conf, struct registry *reg, struct contacts *cs,
                        struct lws *wsi, http_exchange **x,
                        const char *id, size_t idlen, const char *const *claim, size_t nclaim,
                        bool any);

#endif
