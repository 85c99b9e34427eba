/* history.h — a room's past messages, from the Redis room log and MySQL.
 *
 * Recent messages of a room are in its Redis log (registry.history_max of
 * them, approximately); all stored messages are in MySQL (written by
 * lectern-storage, a little behind). history_fetch answers one range query
 * from either or both, seamlessly: the part newer than the log's oldest
 * entry comes from Redis (always complete from that entry on), the part
 * older from MySQL. Where a MySQL range must join the log (or is itself
 * supposed to be contiguous), the room order (epoch, seq: dense within an
 * epoch) tells whether MySQL is still missing a message that is on its way
 * through the storage queue; such a range is re-read for up to
 * history.hole_wait_ms before it is returned as it is (and counted).
 *
 * If Redis is down, a range that lies entirely below a message MySQL holds
 * (the row at `before`; in "after" mode also a full page that MySQL has
 * more after) is still answered, from MySQL alone; anything that may reach
 * the newest messages is HISTORY_UNAVAILABLE (they may not be stored yet).
 *
 * MySQL queries run on a thread pool (server/db.h); nothing here blocks the
 * loop. Callbacks run on the loop.
 *
 * Used by GET /api/rooms/<room>/messages (http.c) and by SUBSCRIBE x-since
 * (resume, session.c).
 */
#ifndef LECTERN_HISTORY_H
#define LECTERN_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "db.h"
#include "envelope.h"
#include "msgid.h"

struct registry;
struct metrics;
typedef struct history history;

typedef struct history_config {
    db_config db;             /* the MySQL read pool (mysql.*) */
    int hole_wait_ms;
    size_t max_bytes;         /* a page's messages, at most (history.max_bytes) */
} history_config;

/* One query. Bounds are exclusive; has_after/has_before say whether they
 * are set.
 *   after set:            the first `limit` messages after `after`
 *                         (and before `before`, when set), oldest first;
 *   only before set:      the last `limit` messages before `before`;
 *   neither:              the last `limit` messages of the room.
 * Results are always oldest first. A page also ends before the message
 * that would bring its messages past history.max_bytes, each counted as
 * cost() says (NULL: its stored bytes, db_row_bytes); it always holds at
 * least one message when there is one, and says `more`. */
typedef struct history_query {
    const char *room;         /* a valid room name (room_name_valid) */
    bool has_after, has_before;
    msgid after, before;
    size_t limit;             /* >= 1 */
    size_t (*cost)(const envelope *m);
} history_query;

enum {
    HISTORY_OK = 0,
    HISTORY_UNAVAILABLE = -1, /* MySQL needed and not reachable, or Redis down and
                                 needed (see above), or shutting down */
};

/* The answer. msgs (n of them, oldest first) are borrowed for the duration
 * of the callback. `more`: further messages exist in the direction of
 * paging (newer ones when the query had `after`, older ones otherwise), so
 * the next page is after=<last id> (resp. before=<first id>). On
 * HISTORY_UNAVAILABLE, msgs is NULL and `why` says what was unreachable. */
typedef struct history_page {
    int status;
    const envelope *msgs;
    size_t n;
    bool more;
    const char *why;
} history_page;

typedef void (*history_fn)(void *ctx, const history_page *page);

/* Starts the pool (connections are made lazily, and again after failures).
 * reg is borrowed and must outlive the history. Returns NULL (logged) when
 * threads cannot be started. */
history *history_create(uv_loop_t *loop, struct registry *reg, const history_config *cfg);

/* Stop the pool (joins its threads; queries still running finish first,
 * bounded by timeout_s); pending queries complete with HISTORY_UNAVAILABLE
 * before it returns. Accepts NULL. The loop must run once more afterwards. */
void history_destroy(history *h);

/* Run q; fn(ctx, page) runs exactly once, later, on the loop (never inside
 * this call). q and its strings are copied. */
void history_fetch(history *h, const history_query *q, history_fn fn, void *ctx);

typedef struct history_stats {
    uint64_t queries;          /* history_fetch calls */
    uint64_t from_redis;       /* messages answered from the room log */
    uint64_t from_mysql;       /* messages answered from MySQL */
    uint64_t hole_retries;     /* MySQL re-reads because a range was not complete yet */
    uint64_t holes_returned;   /* ranges returned incomplete after hole_wait_ms */
    uint64_t pages_cut;        /* pages ended by max_bytes before their limit */
    uint64_t mysql_errors;     /* failed MySQL calls */
} history_stats;

void history_get_stats(const history *h, history_stats *out);

/* The MySQL read pool h reads with (valid until history_destroy), which
 * other readers of the store share (contact lists: db_run). */
db *history_db(history *h);

#endif
