/* statusmsg.h — the bodies of /status MESSAGEs, for the load generator (pure).
 *
 * A /status subscription delivers JSON objects: a snapshot
 *   {"type":"snapshot","contacts":[{"user":"u1","online":true,"since":ms,"seen":ms|null},...]}
 * and then one change each
 *   {"type":"online","user":"u1","since":ms} / {"type":"offline","user":"u1","seen":ms}.
 * The generator checks every one of them against what it did, so it needs
 * the user of each entry and its state, at tens of thousands of messages a
 * second, and no allocation: status_msg_parse walks the JSON once and hands
 * each snapshot entry to a callback as it is met. Keys may come in any
 * order; unknown keys and values are skipped; strings are unescaped.
 */
#ifndef LECTERN_LOAD_STATUSMSG_H
#define LECTERN_LOAD_STATUSMSG_H

#include <stddef.h>
#include <stdint.h>

#define STATUS_USER_MAX 128      /* user ids are 1..128 bytes */

typedef enum status_kind {
    STATUS_OTHER = 0,            /* a type the generator does not know */
    STATUS_SNAPSHOT,
    STATUS_ONLINE,
    STATUS_OFFLINE
} status_kind;

/* One user's status: a snapshot entry, or the subject of a change. */
typedef struct status_entry {
    char user[STATUS_USER_MAX + 1];  /* unescaped, NUL-terminated */
    size_t user_len;
    int online;                  /* 1, 0, or -1 when absent */
    int64_t since, seen;         /* ms; -1 when null or absent */
} status_entry;

/* Called for each element of "contacts"; the entry is valid during the
 * call only. */
typedef void (*status_entry_fn)(void *ctx, const status_entry *e);

typedef struct status_msg {
    status_kind kind;
    status_entry ev;             /* online/offline: the user and since/seen */
    size_t entries;              /* elements of "contacts" seen */
    const char *err;             /* why, when status_msg_parse fails */
} status_msg;

/* Parse body[0..len) into m, calling fn(ctx, entry) (fn may be NULL) for
 * every element of "contacts" as it is met, before the kind is known if
 * "type" comes last. Returns 0, or -1 (m->err says why) for anything that
 * is not one JSON object, a contact entry that is not an object or lacks a
 * user, a user id longer than STATUS_USER_MAX, or nesting deeper than 32. */
int status_msg_parse(const char *body, size_t len, status_msg *m, status_entry_fn fn, void *ctx);

/* User ids of a run are a pattern with one "%u" ("s42-%u"): write the id of
 * user n into dst (cap bytes, truncated); returns its length. */
size_t status_user_name(char *dst, size_t cap, const char *pattern, unsigned n);

/* The n of an id made by status_user_name with `pattern` (a decimal of at
 * most 9 digits, no leading zero), or -1 when id is not one of them. */
long status_user_index(const char *id, size_t len, const char *pattern);

#endif
