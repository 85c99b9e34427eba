/* room.c — local rooms: name -> members, and the fan-out loop.
 *
 * Rooms are kept in a uthash table keyed by name. Members are an array of
 * subscription pointers, not a list: fan-out walks it sequentially (cache
 * friendly at 1,000+ members) and removal is O(1) by moving the last member
 * into the leaver's slot, which each subscription remembers (sub->slot).
 * Order among members is irrelevant to delivery.
 *
 * Invariant: a room is in the table iff it has >= 1 member, and for every
 * member i, members[i]->room == room && members[i]->slot == i.
 */
#include "room.h"

#include "mem.h"
#include "session.h"

#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct room {
    char *name;
    size_t name_len;
    struct subscription **members;
    size_t n, cap;
    UT_hash_handle hh;
};

struct room_index {
    room *rooms;          /* uthash head */
};

room_index *room_index_create(void)
{
    return xcalloc(1, sizeof(room_index));
}

void room_index_destroy(room_index *ri)
{
    if (!ri)
        return;
    room *r, *tmp;
    HASH_ITER(hh, ri->rooms, r, tmp) {
        HASH_DEL(ri->rooms, r);
        free(r->members);
        free(r->name);
        free(r);
    }
    free(ri);
}

room *room_lookup(room_index *ri, const char *name, size_t len)
{
    room *r = NULL;
    HASH_FIND(hh, ri->rooms, name, len, r);
    return r;
}

void room_join(room_index *ri, const char *name, size_t len, subscription *sub)
{
    room *r = room_lookup(ri, name, len);
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->name = xstrndup(name, len);
        r->name_len = len;
        HASH_ADD_KEYPTR(hh, ri->rooms, r->name, r->name_len, r);
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->members = xrealloc(r->members, r->cap * sizeof *r->members);
    }
    sub->room = r;
    sub->slot = (uint32_t)r->n;
    r->members[r->n++] = sub;
}

void room_leave(room_index *ri, subscription *sub)
{
    room *r = sub->room;
    if (!r)
        return;
    size_t i = sub->slot;
    r->members[i] = r->members[--r->n];
    r->members[i]->slot = (uint32_t)i;
    sub->room = NULL;
    if (r->n == 0) {
        HASH_DEL(ri->rooms, r);
        free(r->members);
        free(r->name);
        free(r);
    } else if (r->cap > 16 && r->n < r->cap / 4) {
        r->cap /= 2;
        r->members = xrealloc(r->members, r->cap * sizeof *r->members);
    }
}

size_t room_deliver(room *r, msg *m)
{
    for (size_t i = 0; i < r->n; i++)
        session_deliver(r->members[i], m);
    return r->n;
}

const char *room_name(const room *r)
{
    return r->name;
}

size_t room_size(const room *r)
{
    return r->n;
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

int room_destination(const stomp_str *dest, size_t max_len, stomp_str *name)
{
    static const char prefix[] = "/topic/";
    const size_t pl = sizeof prefix - 1;

    if (dest->len < pl || memcmp(dest->p, prefix, pl))
        return ROOM_DEST_UNKNOWN;
    name->p = dest->p + pl;
    name->len = dest->len - pl;
    if (name->len == 0 || name->len > max_len)
        return ROOM_DEST_INVALID;
    for (size_t i = 0; i < name->len; i++)
        if (!room_name_char((unsigned char)name->p[i]))
            return ROOM_DEST_INVALID;
    return ROOM_DEST_OK;
}
