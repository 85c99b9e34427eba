/* idemkey.h — the rule for idempotency keys, the sender's name for one
 * message that it may send more than once.
 *
 * A STOMP SEND carries one in the header x-idempotency-key, an API publish
 * in the request header Idempotency-Key. Within api.idempotency_window_s
 * the room script (server/lua/publish.lua) answers a repeat of (room,
 * sender, key) with the first copy's place instead of appending again.
 * A key is 1 to IDEMKEY_MAX bytes of printable ASCII without spaces (! to
 * ~): a UUID, a ULID or a counter fits, and so does every byte of it in a
 * Redis key name, a STOMP header and an HTTP header alike. Pure.
 */
#ifndef LECTERN_IDEMKEY_H
#define LECTERN_IDEMKEY_H

#include <stdbool.h>
#include <stddef.h>

#define IDEMKEY_MAX 128

/* The STOMP header and the HTTP request header that carry a key. */
#define IDEMKEY_STOMP_HEADER "x-idempotency-key"
#define IDEMKEY_HTTP_HEADER "idempotency-key:"   /* lws's spelling: lower case, ':' */

/* The rule in words, for refusals (ERROR bodies, 400 answers). */
#define IDEMKEY_RULE "an idempotency key is 1 to 128 printable ASCII characters (! to ~, no spaces)"

/* Is p[0..n) a valid key? p may be NULL when n is 0 (not valid). */
bool idemkey_valid(const char *p, size_t n);

#endif
