/* redis_sentinels.h — finding the Redis master through Sentinel, and
 * following its failovers.
 *
 * A redis_sentinels is the list of Sentinels of one master (redis.sentinels
 * and redis.sentinel_master). It keeps one connection to one Sentinel
 * SUBSCRIBEd to +switch-master, and tells the connections that follow the
 * master (redis_sentinels_follow) where it moved. Each such connection asks
 * the Sentinels where the master is before it connects, with a
 * redis_sentinels_query of its own.
 *
 * Layering: this module knows nothing of the connections (redis.c); they
 * register hooks (redis_follower) and a query callback. Everything runs on
 * the loop.
 */
#ifndef LECTERN_REDIS_SENTINELS_H
#define LECTERN_REDIS_SENTINELS_H

#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* The port of a Sentinel listed without one. */
#define REDIS_SENTINEL_PORT 26379

/* Deadline of one question to one Sentinel (connect, ask, answer). Loopback
 * and LAN Sentinels answer in well under a millisecond; this only bounds a
 * Sentinel that is unreachable or hung. */
#define REDIS_SENTINEL_TIMEOUT_MS 1000

typedef struct redis_sentinels redis_sentinels;

/* The Sentinels of master `name`: `list` is "host[:port],..." (port 26379
 * when left out; "[v6addr]:port" for IPv6). Starts watching for failovers
 * at once: one connection to one Sentinel, SUBSCRIBEd to +switch-master,
 * moving to the next Sentinel when it fails. Returns NULL with the reason
 * in err when the list is empty or invalid. Strings are copied. */
redis_sentinels *redis_sentinels_create(uv_loop_t *loop, const char *list, const char *name,
                                        int backoff_min_ms, int backoff_max_ms, char *err,
                                        size_t errlen);

/* Stop watching. Every follower must have left (redis_sentinels_unfollow)
 * and every query be idle. The loop must run once more for the handles to
 * close. Accepts NULL. */
void redis_sentinels_destroy(redis_sentinels *s);

/* --- followers: connections to the master ------------------------------- */

/* Hooks of one connection that follows the master. Both run on the loop,
 * from inside a Sentinel connection's or another connection's callback:
 * they should only note the news and act from their own timer. */
typedef struct redis_follower {
    /* A +switch-master named our master: it is now at host:port. */
    void (*on_switch)(void *ctx, const char *host, int port);
    /* Another follower found the master at host:port demoted (READONLY). */
    void (*on_demoted)(void *ctx, const char *host, int port);
    void *ctx;
} redis_follower;

/* Start / stop telling f about the master. f is borrowed until unfollow. */
void redis_sentinels_follow(redis_sentinels *s, const redis_follower *f);
void redis_sentinels_unfollow(redis_sentinels *s, const redis_follower *f);

/* Follower `from` saw READONLY from host:port: tell the other followers
 * (a subscriber never writes, so it would not find out by itself). */
void redis_sentinels_demoted(redis_sentinels *s, const redis_follower *from, const char *host,
                             int port);

/* A follower came up on host:port, confirmed master (ROLE): logged when it
 * is a different master than before (startup, and each failover). */
void redis_sentinels_confirm(redis_sentinels *s, const char *host, int port);

/* --- a query: where is the master? ------------------------------------- */

typedef enum redis_sentinels_outcome {
    REDIS_SENTINELS_ASKING,   /* a question went out: it has REDIS_SENTINEL_TIMEOUT_MS,
                               * then call redis_sentinels_query_timeout */
    REDIS_SENTINELS_FOUND,    /* a Sentinel says the master is at host:port */
    REDIS_SENTINELS_NONE,     /* no Sentinel of this round answered: back off */
} redis_sentinels_outcome;

/* host is valid during the call (FOUND only; NULL otherwise). */
typedef void (*redis_sentinels_query_fn)(void *ctx, redis_sentinels_outcome outcome,
                                         const char *host, int port);

/* One connection's question to the Sentinels, in the caller's storage.
 * Fields are the query's own. */
typedef struct redis_sentinels_query {
    redis_sentinels *s;
    const char *conn;          /* the connection's name, for logs (borrowed) */
    redis_sentinels_query_fn fn;
    void *ctx;
    redisAsyncContext *ac;     /* the question in flight, or NULL */
    size_t si;                 /* the Sentinel asked (or to ask) */
    size_t tries;              /* Sentinels asked in this round */
    bool log;                  /* log failures in this round */
} redis_sentinels_query;

/* Ready an idle query. conn and ctx are borrowed for the query's life. A
 * zeroed query that was never initialised is idle too: cancel and busy
 * accept it. */
void redis_sentinels_query_init(redis_sentinels_query *q, redis_sentinels *s, const char *conn,
                                redis_sentinels_query_fn fn, void *ctx);

/* Start a round: ask `SENTINEL get-master-addr-by-name` of the Sentinels in
 * turn, from the one that last answered, until one answers with an
 * address. fn reports each step (possibly from inside this call): ASKING
 * when a question goes out, FOUND, or NONE when every Sentinel of the round
 * failed. log_failures: log each failed Sentinel (the caller throttles). */
void redis_sentinels_query_start(redis_sentinels_query *q, bool log_failures);

/* The question in flight passed its deadline: drop it and ask the next
 * Sentinel (fn reports as in start). */
void redis_sentinels_query_timeout(redis_sentinels_query *q);

/* Drop the question in flight, if any (fn is not called). */
void redis_sentinels_query_cancel(redis_sentinels_query *q);

/* The last answer did not lead to a master (unreachable, not a master):
 * the next round starts with the next Sentinel. */
void redis_sentinels_query_skip(redis_sentinels_query *q);

/* A question is in flight. */
bool redis_sentinels_query_busy(const redis_sentinels_query *q);

#endif
