/* room.c — local rooms: name -> members, and the fan-out loop.
 *
 * Rooms are kept in a uthash table keyed by name. Members are an array of
 * subscriber pointers (subscriber.h), not a list: fan-out walks it sequentially (cache
 * friendly at 1,000+ members) and removal is O(1) by moving the last member
 * into the leaver's slot, which each subscriber remembers (sub->slot).
 * Order among members is irrelevant to delivery. A member is reached
 * through the index's deliver hook: the room never knows what a member is.
 *
 * Invariant: a room is in the table iff it has >= 1 member, and for every
 * member i, members[i]->room == room && members[i]->slot == i.
 */
#include "room.h"

#include "mem.h"
#include "seqbuf.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

typedef struct room_waiter {
    struct room_waiter *next;
    room_ready_fn fn;
    void *ctx;
} room_waiter;

struct room {
    char *name;
    room_waiter *waiters;     /* until the order is based */
    size_t name_len;
    subscriber_deliver_fn deliver;    /* the index's */
    subscriber **members;
    size_t n, cap;
    seqbuf order;
    uint64_t released;
    UT_hash_handle hh;
};

struct room_index {
    room *rooms;          /* uthash head */
    subscriber_deliver_fn deliver;
};

room_index *room_index_create(subscriber_deliver_fn deliver)
{
    room_index *ri = xcalloc(1, sizeof(room_index));
    ri->deliver = deliver;
    return ri;
}

static void room_run_waiters(room *r, bool ok)
{
    while (r->waiters) {
        room_waiter *w = r->waiters;
        r->waiters = w->next;
        w->fn(w->ctx, ok);
        free(w);
    }
}

static void room_free(room *r)
{
    room_run_waiters(r, false);
    seqbuf_deinit(&r->order);
    free(r->members);
    free(r->name);
    free(r);
}

void room_index_destroy(room_index *ri)
{
    if (!ri)
        return;
    room *r, *tmp;
    HASH_ITER(hh, ri->rooms, r, tmp) {
        HASH_DEL(ri->rooms, r);
        room_free(r);
    }
    free(ri);
}

static void room_on_release(void *ctx, void *item)
{
    room *r = ctx;
    msg *m = item;
    r->released++;
    room_deliver(r, m);
    msg_unref(m);
}

static void room_on_drop(void *ctx, void *item)
{
    (void)ctx;
    msg_unref(item);
}

room *room_lookup(room_index *ri, const char *name, size_t len)
{
    room *r = NULL;
    HASH_FIND(hh, ri->rooms, name, len, r);
    return r;
}

bool room_join(room_index *ri, const char *name, size_t len, subscriber *sub)
{
    room *r = room_lookup(ri, name, len);
    bool created = !r;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->name = xstrndup(name, len);
        r->name_len = len;
        r->deliver = ri->deliver;
        seqbuf_init(&r->order, room_on_release, room_on_drop, r);
        HASH_ADD_KEYPTR(hh, ri->rooms, r->name, r->name_len, r);
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->members = xrealloc(r->members, r->cap * sizeof *r->members);
    }
    sub->room = r;
    sub->slot = (uint32_t)r->n;
    r->members[r->n++] = sub;
    return created;
}

bool room_leave(room_index *ri, subscriber *sub)
{
    room *r = sub->room;
    if (!r)
        return false;
    size_t i = sub->slot;
    r->members[i] = r->members[--r->n];
    r->members[i]->slot = (uint32_t)i;
    sub->room = NULL;
    if (r->n == 0) {
        HASH_DEL(ri->rooms, r);
        room_free(r);
        return true;
    }
    if (r->cap > 16 && r->n < r->cap / 4) {
        r->cap /= 2;
        r->members = xrealloc(r->members, r->cap * sizeof *r->members);
    }
    return false;
}

void room_offer(room *r, msg *m)
{
    seqbuf_offer(&r->order, m->epoch, m->seq, msg_ref(m));
}

void room_when_based(room *r, room_ready_fn fn, void *ctx)
{
    if (r->order.based) {
        fn(ctx, true);
        return;
    }
    /* Appended, so that waiters complete in the order they came. */
    room_waiter *w = xmalloc(sizeof *w), **pp = &r->waiters;
    w->next = NULL;
    w->fn = fn;
    w->ctx = ctx;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
}

void room_based(room *r)
{
    room_run_waiters(r, true);
}

seqbuf *room_order(room *r)
{
    return &r->order;
}


uint64_t room_released(const room *r)
{
    return r->released;
}

size_t room_deliver(room *r, msg *m)
{
    for (size_t i = 0; i < r->n; i++)
        r->deliver(r->members[i], m);
    return r->n;
}

subscriber *const *room_members(const room *r, size_t *n)
{
    *n = r->n;
    return r->members;
}

room *room_first(room_index *ri)
{
    return ri->rooms;
}

room *room_next(room *r)
{
    return r->hh.next;
}

const char *room_name(const room *r)
{
    return r->name;
}


size_t room_index_count(const room_index *ri)
{
    return HASH_COUNT(ri->rooms);
}

static int room_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '~' || c == '-';
}

bool room_name_valid(const char *s, size_t len, size_t max_len)
{
    if (len == 0 || len > max_len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!room_name_char((unsigned char)s[i]))
            return false;
    return true;
}

int room_destination(const stomp_str *dest, size_t max_len, stomp_str *name)
{
    static const struct { const char *prefix; int kind; } kinds[] = {
        { "/topic/", ROOM_DEST_TOPIC },
        { "/presence/", ROOM_DEST_PRESENCE },
        { "/control/", ROOM_DEST_CONTROL },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        size_t pl = strlen(kinds[k].prefix);
        if (dest->len < pl || memcmp(dest->p, kinds[k].prefix, pl))
            continue;
        name->p = dest->p + pl;
        name->len = dest->len - pl;
        return room_name_valid(name->p, name->len, max_len) ? kinds[k].kind : ROOM_DEST_INVALID;
    }
    return ROOM_DEST_UNKNOWN;
}
