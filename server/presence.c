/* presence.c — presence subscriptions and their event fan-out.
 *
 * Established subscriptions live in a room_index of their own (the same
 * structure as topic rooms, without the ordering). A new subscription is
 * "pending" until its snapshot arrives: it is not in the index yet, so live
 * events do not reach it; they are copied into its pending record instead.
 * When the snapshot comes, the subscription gets the snapshot, then the
 * buffered events newer than it, then joins the index. Unsubscribing while
 * pending only detaches the record (the registry call still completes and
 * frees it).
 *
 * A resync (the event subscription reconnected, events may be lost) sends
 * every room with subscribers a fresh snapshot.
 *
 * Each subscriber remembers the last presence version it was sent
 * (sub->seen) and only gets newer snapshots and events, so an event already
 * reflected in its snapshot is never repeated.
 */
#include "presence.h"

#include "log.h"
#include "mem.h"
#include "msg.h"
#include "room.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending {
    struct pending *next;
    presence *p;
    subscriber *sub;          /* NULL: cancelled, or a room-wide resync */
    bool resync;
    msg **events;             /* events seen while waiting */
    size_t nevents, cap;
    char room[];
} pending;

struct presence {
    registry *reg;
    subscriber_deliver_fn deliver;
    room_index *subs;
    pending *pending;
};

presence *presence_create(subscriber_deliver_fn deliver)
{
    presence *p = xcalloc(1, sizeof *p);
    p->deliver = deliver;
    p->subs = room_index_create(deliver);
    return p;
}

void presence_attach(presence *p, registry *reg)
{
    p->reg = reg;
}

static void pending_unlink(presence *p, pending *pd)
{
    for (pending **pp = &p->pending; *pp; pp = &(*pp)->next) {
        if (*pp == pd) {
            *pp = pd->next;
            return;
        }
    }
}

static void pending_free(pending *pd)
{
    for (size_t i = 0; i < pd->nevents; i++)
        msg_unref(pd->events[i]);
    free(pd->events);
    free(pd);
}

void presence_destroy(presence *p)
{
    if (!p)
        return;
    /* Registry calls still in flight own their records; detach them. */
    for (pending *pd = p->pending; pd; pd = pd->next) {
        pd->p = NULL;
        pd->sub = NULL;
    }
    room_index_destroy(p->subs);
    free(p);
}

msg *presence_message(const char *rname, const char *id, const char *json, size_t len)
{
    buf b;
    buf_init(&b);
    buf_printf(&b, "destination:/presence/%s\nmessage-id:%s\ncontent-type:application/json\n"
                   "content-length:%zu\n", rname, id, len);
    stomp_put_body(&b, json, len);
    msg *m = msg_create(MSG_MESSAGE, &b);
    msg_set_id(m, id, strlen(id));
    buf_deinit(&b);
    return m;
}

/* Send m (m->seq = its presence version) to sub unless sub has seen that
 * version. A snapshot also goes out at an equal version (it restates). An
 * event at version 1 starts a new count (the room's version expired while
 * it was empty) and always goes out. */
static void presence_send(presence *p, subscriber *sub, msg *m, bool snapshot)
{
    bool restart = !snapshot && m->seq == 1;
    if (!restart && (m->seq < sub->seen || (m->seq == sub->seen && !snapshot && sub->seen)))
        return;
    sub->seen = m->seq;
    p->deliver(sub, m);
}

static void presence_send_all(presence *p, room *rm, msg *m, bool snapshot)
{
    size_t n;
    subscriber *const *subs = room_members(rm, &n);
    for (size_t i = 0; i < n; i++)
        presence_send(p, subs[i], m, snapshot);
}

static void presence_on_snapshot(void *ctx, json_t *value)
{
    pending *pd = ctx;
    presence *p = pd->p;
    if (p)
        pending_unlink(p, pd);
    if (!p || !value || (!pd->sub && !pd->resync)) {
        /* Cancelled, shut down, or the registry failed: a resync (or the
         * client's next subscription) will try again. */
        if (p && pd->sub && !value)
            log_warn("presence_snapshot_failed", "room=%s", pd->room);
        pending_free(pd);
        return;
    }
    char *text = json_dumps(value, JSON_COMPACT);
    uint64_t v = (uint64_t)json_integer_value(json_object_get(value, "v"));
    char id[48];
    snprintf(id, sizeof id, "presence-snapshot-%llu", (unsigned long long)v);
    msg *snap = presence_message(pd->room, id, text, strlen(text));
    free(text);
    snap->seq = v;
    if (pd->resync) {
        room *rm = room_lookup(p->subs, pd->room, strlen(pd->room));
        if (rm)
            presence_send_all(p, rm, snap, true);
    } else {
        pd->sub->seen = 0;
        presence_send(p, pd->sub, snap, true);
        for (size_t i = 0; i < pd->nevents; i++)
            presence_send(p, pd->sub, pd->events[i], false);
        room_join(p->subs, pd->room, strlen(pd->room), pd->sub);
    }
    msg_unref(snap);
    pending_free(pd);
}

static int presence_request(presence *p, subscriber *sub, const char *rname, bool resync)
{
    size_t n = strlen(rname);
    pending *pd = xcalloc(1, sizeof *pd + n + 1);
    pd->p = p;
    pd->sub = sub;
    pd->resync = resync;
    memcpy(pd->room, rname, n + 1);
    if (!p->reg || registry_presence(p->reg, rname, presence_on_snapshot, pd) < 0) {
        free(pd);
        return -1;
    }
    pd->next = p->pending;
    p->pending = pd;
    return 0;
}

int presence_subscribe(presence *p, subscriber *sub, const char *rname)
{
    return presence_request(p, sub, rname, false);
}

void presence_unsubscribe(presence *p, subscriber *sub)
{
    if (sub->room) {
        room_leave(p->subs, sub);
        return;
    }
    for (pending *pd = p->pending; pd; pd = pd->next)
        if (pd->sub == sub)
            pd->sub = NULL;
}

void presence_on_event(presence *p, const char *rname, uint64_t v, const char *json, size_t len)
{
    room *rm = room_lookup(p->subs, rname, strlen(rname));
    bool waiting = false;
    for (pending *pd = p->pending; pd && !waiting; pd = pd->next)
        waiting = pd->sub && !strcmp(pd->room, rname);
    if (!rm && !waiting)
        return;
    char id[40];
    snprintf(id, sizeof id, "presence-%llu", (unsigned long long)v);
    msg *m = presence_message(rname, id, json, len);
    m->seq = v;               /* compared with each subscription's version */
    if (rm)
        presence_send_all(p, rm, m, false);
    for (pending *pd = p->pending; pd; pd = pd->next) {
        if (!pd->sub || strcmp(pd->room, rname))
            continue;
        if (pd->nevents == pd->cap) {
            pd->cap = pd->cap ? pd->cap * 2 : 4;
            pd->events = xrealloc(pd->events, pd->cap * sizeof *pd->events);
        }
        pd->events[pd->nevents++] = msg_ref(m);
    }
    msg_unref(m);
}

void presence_resync(presence *p)
{
    for (room *rm = room_first(p->subs); rm; rm = room_next(rm))
        presence_request(p, NULL, room_name(rm), true);
}
