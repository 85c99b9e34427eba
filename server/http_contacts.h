/* http_contacts.h — the contact-list API for other services:
 *
 *   PUT    /api/users/<id>/contacts   {"contacts":["a","b"]}      -> {"user","count"}
 *   PATCH  /api/users/<id>/contacts   {"add":[...],"remove":[...]} -> {"user","count"}
 *   DELETE /api/users/<id>/contacts                                -> {"user","count":0}
 *   GET    /api/users/<id>/contacts   -> {"user","contacts":[...],"stored":bool}
 *
 * Every method needs a key of api.keys (apikey.h) — "Authorization: Bearer
 * <key>" or "X-API-Key: <key>" — whatever auth.mode says: 403 when
 * api.keys is empty, 401 without a matching key. A write is committed in
 * MySQL (db_contacts.h), then the Redis copy is dropped and the change
 * published (registry_contacts_changed), then answered 200; 503 when MySQL
 * or Redis fails. Bodies are read up to api.max_body (413 beyond). Bad
 * input is 400 with {"error": why}. Protocol: docs/protocol.md, "Contacts".
 */
#ifndef LECTERN_HTTP_CONTACTS_H
#define LECTERN_HTTP_CONTACTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "http_exchange.h"
#include "metrics.h"

struct apikey_set;
struct db;
struct lws;
struct registry;

/* What the routes use; all borrowed, outliving every request. */
typedef struct http_contacts_env {
    const server_config *conf;          /* contacts.*, api.* */
    metrics *metrics;
    struct registry *registry;          /* publishes changes (NULL: shutting down) */
    struct db *db;                      /* the lists (NULL: shutting down) */
    const struct apikey_set *keys;      /* api.keys */
} http_contacts_env;

/* Does the request carry one of api.keys (Authorization: Bearer <key> or
 * X-API-Key: <key>)? *sent: it carried a credential at all. Also for the
 * other /api/users/ routes, where a key stands for an admin. */
bool http_contacts_keyed(const http_contacts_env *env, struct lws *wsi, bool *sent);

/* Why a room name was refused (rooms, room_name_valid). */
#define HTTP_ROOM_RULE "room names are 1 to stomp.max_room_name characters of A-Z a-z 0-9 . _ ~ -"

/* The checks a server API route starts with, before its body: a key
 * (http_contacts_check_key, api=server) and, when rname is not NULL, its
 * room name rname[0..len). 0, or the status with a static reason in *why. */
unsigned http_contacts_check_api(const http_contacts_env *env, struct lws *wsi,
                                 const char *rname, size_t len, const char **why);

/* The key check of a server API route: 0 when the request carries one of
 * api.keys; else 403 with off_why (api.keys is empty: the API is off) or
 * 401 (no key, or a wrong one: logged as auth_failed api=<api> and
 * counted), with the reason in *why (static). */
unsigned http_contacts_check_key(const http_contacts_env *env, struct lws *wsi, const char *api,
                                 const char *off_why, const char **why);

/* Is uri (a request path) this API's: /api/users/<id>/contacts? */
bool http_contacts_match(const char *uri);

/* LWS_CALLBACK_HTTP for a uri that http_contacts_match: answer, or start
 * reading the body (answered by http_contacts_body_done). lws's convention. */
int http_contacts_request(const http_contacts_env *env, struct lws *wsi, http_exchange **x,
                          const char *uri);

/* LWS_CALLBACK_HTTP_BODY_COMPLETION of a request http_contacts_request
 * began reading (http_exchange_reading(*x)). lws's convention. */
int http_contacts_body_done(const http_contacts_env *env, struct lws *wsi, http_exchange **x);

/* Parse a PUT body ({"contacts":[ids]}) or a PATCH body ({"add":[ids],
 * "remove":[ids]}, each optional, no id in both): the ids as new arrays of
 * pointers into *root (kept by the caller: json_decref), sorted, repeats
 * dropped. At most max ids in each list. 0, or -1 with why (a static
 * string). Pure; for unit tests too. */
int http_contacts_parse(const char *body, size_t len, bool patch, size_t max, json_t **root,
                        const char ***a, size_t *na, const char ***b, size_t *nb,
                        const char **why);

#endif
