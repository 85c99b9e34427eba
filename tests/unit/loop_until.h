/* loop_until.h — for unit tests of modules that run on a libuv loop: run
 * the loop until something has happened, within a deadline of loop time,
 * so that a broken timer fails the test instead of hanging it. */
#ifndef LECTERN_TEST_LOOP_UNTIL_H
#define LECTERN_TEST_LOOP_UNTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Run loop until done() is true or ms of loop time have passed (or nothing
 * is left on the loop that could make it true). Returns done(). */
static inline bool loop_until(uv_loop_t *loop, bool (*done)(void), uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (!done() && uv_now(loop) < end)
        if (!uv_run(loop, UV_RUN_ONCE))
            break;
    return done();
}

#endif
