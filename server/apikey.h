/* apikey.h — the keys of the server-to-server API (api.keys).
 *
 * The contact-list write API (http_contacts.h) is for other services, not
 * for students: a caller proves it is one by a key from api.keys, sent as
 * "Authorization: Bearer <key>" or "X-API-Key: <key>". The set keeps only
 * each key's SHA-256, and a candidate is compared with every key in
 * constant time (its length and which key it resembles leak nothing); a
 * JWT is never a key (no key equals a token that someone can mint). An
 * empty api.keys means the API is off. Pure (OpenSSL for the digest).
 */
#ifndef LECTERN_APIKEY_H
#define LECTERN_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

/* Shortest key api.keys accepts: a guessable key is no key. */
#define APIKEY_MIN_LEN 16

typedef struct apikey_set apikey_set;

/* Check an api.keys value: comma-separated keys (spaces around each are
 * trimmed, empty entries skipped), each APIKEY_MIN_LEN..1024 bytes of
 * printable ASCII without spaces or commas. 0, or -1 with why. */
int apikey_check(const char *list, char *why, size_t whylen);

/* The set of a list that passed apikey_check (list borrowed). Never NULL. */
apikey_set *apikey_set_create(const char *list);
/* Accepts NULL. */
void apikey_set_destroy(apikey_set *s);

/* Keys in the set (0: the API is off). Accepts NULL (0). */
size_t apikey_set_count(const apikey_set *s);

/* Is key[0..len) one of the set's keys? Constant time in the set's size,
 * whatever key is. */
bool apikey_set_matches(const apikey_set *s, const char *key, size_t len);

/* The credential of a request: the Authorization value when it is
 * "Bearer <cred>" (scheme case-insensitive), else the X-API-Key value.
 * Either may be NULL (absent). *cred and *len point into the value chosen;
 * false when neither holds one. */
bool apikey_credential(const char *authorization, size_t alen, const char *x_api_key,
                       size_t xlen, const char **cred, size_t *len);

#endif
