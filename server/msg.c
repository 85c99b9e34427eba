/* msg.c — refcounted encoded frames.
 *
 * Header and bytes live in one allocation (flexible array member), so a
 * delivery costs one pointer and one increment per subscriber, never a copy
 * or an allocation. The event loop is single-threaded, so counts are plain
 * integers.
 */
#include "msg.h"

#include "mem.h"
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

msg *msg_create(msg_kind kind, const buf *b)
{
    msg *m = xmalloc(sizeof *m + b->len);
    m->refs = 1;
    m->kind = (uint8_t)kind;
    m->immortal = false;
    m->id_len = 0;
    m->id[0] = '\0';
    m->epoch = m->seq = 0;
    m->len = b->len;
    if (b->len)
        memcpy(m->data, b->data, b->len);
    m->binary = !utf8_valid(m->data, m->len);
    return m;
}

void msg_set_id(msg *m, const char *id, size_t len)
{
    if (len > sizeof m->id)
        len = sizeof m->id;
    memcpy(m->id, id, len);
    m->id_len = (uint8_t)len;
}

void msg_unref(msg *m)
{
    if (!m || m->immortal)
        return;
    if (--m->refs == 0)
        free(m);
}

msg *msg_heartbeat(void)
{
    static struct {
        msg m;
        char eol[1];
    } hb = { { .refs = 1, .kind = MSG_FRAME, .immortal = true, .len = 1 }, { '\n' } };
    return &hb.m;
}
