/* msg.c — refcounted encoded frames.
 *
 * Header and bytes live in one allocation (flexible array member), so a
 * delivery costs one pointer and one increment per subscriber, never a copy
 * or an allocation. The event loop is single-threaded, so counts are plain
 * integers.
 *
 * A MESSAGE's blocks for older STOMP versions (msg_for_version) hang off
 * the 1.2 block: each is a msg of its own with one reference held by the
 * 1.2 block, so a queue entry referencing it keeps it alive after the 1.2
 * block is gone. A slot pointing back at the msg itself means "same
 * bytes" and holds no reference.
 */
#include "msg.h"

#include "mem.h"
#include "stomp.h"
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
    m->ts_ms = 0;
    m->older[0] = m->older[1] = NULL;
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

/* m's block rewritten for `version`, or m when that changes nothing. */
static msg *msg_transcode(msg *m, stomp_version version)
{
    buf h;
    buf_init(&h);
    size_t used = stomp_transcode_headers(&h, version, m->data, m->len, NULL);
    if (h.len == used && (used == 0 || !memcmp(h.data, m->data, used))) {
        buf_deinit(&h);
        return m;
    }
    size_t body = m->len - used;
    msg *v = xmalloc(sizeof *v + h.len + body);
    *v = *m;
    v->refs = 1;
    v->older[0] = v->older[1] = NULL;
    v->len = h.len + body;
    memcpy(v->data, h.data, h.len);
    memcpy(v->data + h.len, m->data + used, body);
    /* Dropping lines and decoding escapes keeps valid UTF-8 valid. */
    v->binary = m->binary && !utf8_valid(v->data, v->len);
    buf_deinit(&h);
    return v;
}

msg *msg_for_version(msg *m, int version)
{
    if (m->kind != MSG_MESSAGE || (version != STOMP_V11 && version != STOMP_V10))
        return m;
    msg **slot = &m->older[version == STOMP_V11 ? 0 : 1];
    if (!*slot)
        *slot = msg_transcode(m, (stomp_version)version);
    return *slot;
}

void msg_unref(msg *m)
{
    if (!m || m->immortal)
        return;
    if (--m->refs == 0) {
        for (int i = 0; i < 2; i++)
            if (m->older[i] != m)
                msg_unref(m->older[i]);
        free(m);
    }
}

msg *msg_heartbeat(void)
{
    static struct {
        msg m;
        char eol[1];
    } hb = { { .refs = 1, .kind = MSG_FRAME, .immortal = true, .len = 1 }, { '\n' } };
    return &hb.m;
}
