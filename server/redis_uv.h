/* redis_uv.h — hiredis's async contexts on a libuv loop.
 *
 * The adapter that plugs a redisAsyncContext's socket into the loop (the
 * hooks hiredis calls to start and stop read and write interest), and the
 * one way a Redis or Sentinel connection is opened: a non-blocking connect,
 * attached to the loop, with TCP keepalive. Used by one connection
 * (redis.c) and by the Sentinel questions and watch (redis_sentinels.c).
 */
#ifndef LECTERN_REDIS_UV_H
#define LECTERN_REDIS_UV_H

#include <hiredis/async.h>
#include <stddef.h>
#include <uv.h>

/* Drive ac from loop: a uv_poll_t on its socket, closed (and freed) when
 * hiredis cleans the context up. Returns 0, or -1 when the socket cannot be
 * polled (ac is left as it was: the caller frees it). */
int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

/* Start a non-blocking connect to host:port on the loop, attached and with
 * TCP keepalive on. Returns the context (its connect callback reports the
 * outcome), or NULL with the reason in err when it failed at once (refused
 * on loopback usually does). host is borrowed for the call. */
redisAsyncContext *redis_uv_dial(uv_loop_t *loop, const char *host, int port, char *err,
                                 size_t errlen);

#endif
