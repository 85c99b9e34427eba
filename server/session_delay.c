/* session_delay.c — write coalescing: a connection's MESSAGEs are written
 * at most once per websocket.write_delay_ms.
 *
 * Without a delay, a session with new output goes on the list's dirty list
 * and is written at the end of the loop iteration (session_out.c). At low
 * message rates that is one send() per delivery, and the kernel's loopback
 * send is then most of the server's CPU. With a delay of D ms, a session
 * that queues a MESSAGE less than D ms after its last write waits instead
 * until that write is D ms old, and whatever else arrives for it meanwhile
 * shares the one write. A session that wrote nothing for D ms or longer is
 * written at once: a lone message is never held, and none waits longer
 * than D (plus the loop's lateness in running the timer).
 *
 * Only MESSAGEs wait. The server's own frames (CONNECTED, RECEIPT, ERROR,
 * heart-beats) answer the peer, or end the session: queueing one takes a
 * waiting session off the wheel, and everything queued goes out in order
 * at the end of the iteration; a close still follows the last bytes
 * (session_out.c's slow path). A session that falls back to lws's writable
 * callback while it waits is written by that callback; its entry, when its
 * time comes, finds nothing more to do.
 *
 * The wheel: one slot per millisecond of loop time, a power of two of
 * them greater than D, each an array of the sessions due in that ms. A
 * session records its slot and index, so taking it off (a frame that must
 * not wait, its destruction) is O(1): its entry becomes NULL, and goes
 * when its slot is emptied. A due time is at most D ms after the moment
 * it is set, so one revolution holds them all; should the loop stall for
 * longer, a slot visited early writes its sessions early, never late.
 * session_list_flush (run by the server's check and prepare handles) first
 * moves the sessions of every slot whose time has come to the dirty list
 * (session_delay_due); before the loop blocks, the server sets its one uv
 * timer at session_list_write_due, the first ms whose slot is not empty.
 * With D = 0 there is no wheel and none of this runs.
 *
 * Invariants: s->wait_at != 0 iff s is slots[s->wait_slot].s[wait_at - 1];
 * a session on the wheel is not on the dirty list; count is the sum of
 * the slots' lengths; when count > 0, from <= every entry's due time.
 */
#include "session_internal.h"
#include "session.h"

#include "mem.h"

#include <stdlib.h>
#include <string.h>

void session_delay_init(session_list *list, uint64_t now_ms)
{
    session_waits *w = &list->waits;
    uint64_t delay = (uint64_t)list->env->conf->ws_write_delay_ms;
    memset(w, 0, sizeof *w);
    if (!delay)
        return;
    /* websocket.write_delay_ms is at most 100: 128 slots, whose index
     * fits s->wait_slot. */
    uint64_t n = 2;
    while (n <= delay)
        n *= 2;
    w->slots = xcalloc(n, sizeof *w->slots);
    w->mask = n - 1;
    w->from = now_ms;
}

void session_delay_deinit(session_list *list)
{
    session_waits *w = &list->waits;
    if (!w->slots)
        return;
    for (uint64_t i = 0; i <= w->mask; i++)
        free(w->slots[i].s);
    free(w->slots);
    w->slots = NULL;
}

bool session_delay_wait(session *s)
{
    session_waits *w = &s->list->waits;
    if (!w->slots)
        return false;
    uint64_t delay = (uint64_t)s->list->env->conf->ws_write_delay_ms;
    uint64_t now = session_now(s);
    if (now - s->last_tx_ms >= delay)
        return false;
    uint64_t due = s->last_tx_ms + delay;
    if (!w->count || due < w->from)
        w->from = due;
    session_wait_slot *slot = &w->slots[due & w->mask];
    if (slot->len == slot->cap) {
        slot->cap = slot->cap ? slot->cap * 2 : 16;
        slot->s = xrealloc(slot->s, slot->cap * sizeof *slot->s);
    }
    slot->s[slot->len++] = s;
    s->wait_slot = (uint8_t)(due & w->mask);
    s->wait_at = slot->len;
    w->count++;
    s->list->env->metrics->writes_delayed++;
    return true;
}

void session_delay_cancel(session *s)
{
    session_wait_slot *slot = &s->list->waits.slots[s->wait_slot];
    slot->s[s->wait_at - 1] = NULL;
    s->wait_at = 0;
}

void session_delay_due(session_list *list, uint64_t now_ms)
{
    session_waits *w = &list->waits;
    /* At most one revolution: after it every slot has been emptied. */
    for (uint64_t n = 0; w->count && w->from <= now_ms && n <= w->mask; n++, w->from++) {
        session_wait_slot *slot = &w->slots[w->from & w->mask];
        for (uint32_t i = 0; i < slot->len; i++) {
            session *s = slot->s[i];
            if (!s)
                continue;
            s->wait_at = 0;
            session_write_soon(s);
        }
        w->count -= slot->len;
        slot->len = 0;
    }
}

uint64_t session_list_write_due(session_list *list)
{
    session_waits *w = &list->waits;
    if (!w->count)
        return 0;
    /* The slots before the first entry are empty: skip them for good. */
    while (!w->slots[w->from & w->mask].len)
        w->from++;
    return w->from;
}
