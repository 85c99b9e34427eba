/* redis.h — one asynchronous Redis connection on the event loop.
 *
 * hiredis's async API attached to the loop (redis_uv.h, our adapter): commands
 * are pipelined and never block; replies come back in order, so commands
 * issued in order by the loop are executed in that order. The connection
 * reconnects by itself with exponential backoff and jitter.
 *
 * A connection is "up" once it is connected and every registered script has
 * been loaded (SCRIPT LOAD), so callers send EVALSHA with the script's
 * sha (redis_script.sha) without ever seeing NOSCRIPT. A subscriber
 * connection (redis_subscribe, one or more channels) is up once its
 * SUBSCRIBE is confirmed for every channel, and reports each published
 * message with its channel.
 *
 * With Redis Sentinel (redis_sentinels.h, attached with redis_use_sentinels)
 * a connection does not have a fixed address: before each connect it asks
 * the Sentinels for the master, and it is up only once that server's ROLE
 * says "master". It follows failovers: a +switch-master naming our master,
 * or a READONLY reply to any command, drops the connection and the next
 * connect asks the Sentinels again.
 */
#ifndef LECTERN_REDIS_H
#define LECTERN_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "redis_sentinels.h"

typedef struct redis redis;

/* A reply, or NULL when the command failed to complete (not connected, or
 * the connection dropped before the reply). Error replies are passed as is
 * (reply->type == REDIS_REPLY_ERROR). The reply is freed after the call. */
typedef void (*redis_reply_fn)(void *privdata, redisReply *reply);

typedef struct redis_events {
    void (*on_up)(void *ctx);
    void (*on_down)(void *ctx, const char *why);
    /* Subscriber connections: a message published on one of the channels. */
    void (*on_message)(void *ctx, const char *channel, size_t chlen, const char *payload,
                       size_t len);
} redis_events;

typedef struct redis_script {
    const char *name;      /* for logs */
    const char *body;      /* Lua source */
    char sha[41];          /* filled by SCRIPT LOAD on each connect */
} redis_script;

/* Start connecting (on the next loop turn). name tags the log lines
 * ("registry", "presence"). host and port are the server's address; with
 * Sentinels (redis_use_sentinels) they are only the fallback shown in logs
 * until a master has been found. Strings are copied; ev is copied; ctx is
 * borrowed. */
redis *redis_create(uv_loop_t *loop, const char *name, const char *host, int port,
                    int backoff_min_ms, int backoff_max_ms, const redis_events *ev, void *ctx);

/* Pending commands get their callback with NULL. The loop must run once
 * more for the handles to close. Accepts NULL. */
void redis_destroy(redis *r);

/* Before the first connect: load this script on every connect. The script
 * object is borrowed and must outlive r. */
void redis_add_script(redis *r, redis_script *s);

/* Before the first connect: send AUTH [user] password first on every
 * connection (user NULL or "": the default user; password NULL or "": no
 * AUTH). A refused AUTH drops the connection, which retries with backoff.
 * Strings are copied. */
void redis_set_auth(redis *r, const char *user, const char *password);
/* Before the first connect: make this a subscriber connection, and add
 * channel (copied) to what it subscribes to (at most REDIS_MAX_CHANNELS). */
#define REDIS_MAX_CHANNELS 8
void redis_subscribe(redis *r, const char *channel);

/* Before the first connect: find the master through these Sentinels, and
 * follow its failovers. s is borrowed; destroy every redis using it before
 * s itself. */
void redis_use_sentinels(redis *r, redis_sentinels *s);

bool redis_up(const redis *r);
uint64_t redis_reconnects(const redis *r);

/* Drop the connection when commands wait and no reply has come for ms
 * (0, the default: never). Blocking commands (WAIT) must fit in it. */
void redis_set_reply_timeout(redis *r, int ms);

/* Send a command. Returns 0, or -1 (fn is not called) when not up. */
int redis_argv(redis *r, redis_reply_fn fn, void *privdata, int argc, const char **argv,
               const size_t *lens);

#endif
