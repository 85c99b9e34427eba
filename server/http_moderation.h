/* http_moderation.h — the server API's kick, ban and mute.
 *
 *   POST /api/rooms/<room>/kick    {"user", "reason"?, "by"?}
 *   POST /api/rooms/<room>/ban     {"user", "duration_s"?, "reason"?, "by"?}
 *   POST /api/rooms/<room>/unban   {"user", "by"?}
 *   POST /api/rooms/<room>/mute    {"user", "duration_s"?, "reason"?, "by"?}
 *   POST /api/rooms/<room>/unmute  {"user", "by"?}
 *   GET  /api/rooms/<room>/moderation
 *
 * Server-to-server keys only (api.keys). duration_s: 1 to
 * moderation.max_duration_s (omitted: until lifted); by names who acted
 * (default "system"). Each action is moderation_apply (moderation.h);
 * the answer comes once Redis has it (a kick or ban announced to every
 * server by then):
 *   200 {"room","user","action","reason","by","at"} (kick)
 *   200 {"room","user","action","until","reason","by","at"} (ban, mute;
 *       until: ms since the epoch, null: until lifted)
 *   200 {"room","user","action","lifted"} (unban, unmute)
 *   200 {"room","bans":[...],"mutes":[...]} (GET; moderation_list)
 *   400 bad room, body or member; 401/403 keys; 503 Redis.
 * docs/api.md, "Kick, ban, mute".
 */
#ifndef LECTERN_HTTP_MODERATION_H
#define LECTERN_HTTP_MODERATION_H

#include <stdbool.h>

#include "http_contacts.h"
#include "http_exchange.h"

struct lws;
struct moderation;

/* Is this request (LWS_CALLBACK_HTTP, path uri) one of the routes above
 * (a POST of an action, or a GET of the listing)? */
bool http_moderation_match(struct lws *wsi, const char *uri);

/* LWS_CALLBACK_HTTP of such a request: check the key and the room, read
 * the body of a POST (then answered by http_moderation_body_done), act or
 * list. keys is the server API's env (keys, config, metrics); m acts
 * (NULL: shutting down, 503). lws's convention. */
int http_moderation_request(const http_contacts_env *keys, struct moderation *m,
                            struct lws *wsi, http_exchange **x, const char *uri);

/* Is the body being read (http_exchange_reading) this route's? */
bool http_moderation_reading(struct lws *wsi);

/* LWS_CALLBACK_HTTP_BODY_COMPLETION of such a request. lws's convention. */
int http_moderation_body_done(const http_contacts_env *keys, struct moderation *m,
                              struct lws *wsi, http_exchange **x);

#endif
