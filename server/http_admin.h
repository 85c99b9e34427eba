/* http_admin.h — the server API's read routes, for a platform's backend.
 *
 * GET /api/rooms?limit=&after= (the live rooms, cluster-wide, by name, in
 * pages) and GET /api/users/<id>/sessions (where a user is connected).
 * Server-to-server keys only (api.keys, as for the contacts API): a user's
 * token is never one. docs/api.md documents both with examples.
 */
#ifndef LECTERN_HTTP_ADMIN_H
#define LECTERN_HTTP_ADMIN_H

#include <stdbool.h>

#include "http_contacts.h"
#include "http_exchange.h"

struct lws;

/* Is uri (a request path, GET) one of these routes? */
bool http_admin_match(const char *uri);

/* LWS_CALLBACK_HTTP for a uri that http_admin_match: check the key, then
 * answer (later, from the registry). env is the contacts API's (its keys,
 * registry, config and metrics). lws's convention. */
int http_admin_request(const http_contacts_env *env, struct lws *wsi, http_exchange **x,
                       const char *uri);

#endif
