/* msgid.h — message ids: "<ms>-<n>", the id a room log (a Redis stream)
 * gives each message.
 *
 * One id serves live delivery (the MESSAGE's message-id header), history
 * (the cursors of GET /api/rooms/<room>/messages) and resume (SUBSCRIBE's
 * x-since header). Ids of one room increase with the room order, so they
 * compare as the pair (ms, n). MySQL stores them as two integer columns.
 *
 * The parser is pure and strict: two decimal numbers without sign, spaces or
 * leading zeros, each fitting 64 bits, joined by one '-'.
 */
#ifndef LECTERN_MSGID_H
#define LECTERN_MSGID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest text form: 20 + 1 + 20 digits, plus NUL. */
#define MSGID_MAX 42

typedef struct msgid {
    uint64_t ms;
    uint64_t n;
} msgid;

/* Parse s[0..len). Returns 0 with *out set, or -1 (out untouched). */
int msgid_parse(const char *s, size_t len, msgid *out);

/* <0, 0, >0 as a is before, equal to, after b. */
int msgid_cmp(msgid a, msgid b);

/* Write the text form into out (at least MSGID_MAX bytes). Returns its length. */
size_t msgid_format(msgid id, char out[MSGID_MAX]);

#endif
