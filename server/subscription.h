/* subscription.h — one SUBSCRIBE of a connection: the record the session
 * keeps, its output queue points to, and token refresh reads.
 *
 * A subscription embeds the subscriber (subscriber.h) that its room or
 * presence index holds; those modules see only that part, and reach the
 * subscription back through the index's deliver hook (subscription_of).
 * The record is one allocation: the fixed part, then the id unescaped,
 * then the room's name, then (only when escaping changes it) the id as
 * MESSAGE frames carry it. The MESSAGE prefix written in front of every
 * delivery ("MESSAGE\nsubscription:<wire id>\n") is put together by the
 * writer from those parts, not stored: it would cost every subscription
 * its 22 bytes of constant text and a pointer.
 */
#ifndef LECTERN_SUBSCRIPTION_H
#define LECTERN_SUBSCRIPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "subscriber.h"

struct session;
struct resume;
struct status_sub;
struct session_modcheck;

enum sub_ack { SUB_ACK_AUTO, SUB_ACK_CLIENT, SUB_ACK_CLIENT_INDIVIDUAL };
enum sub_kind { SUB_TOPIC, SUB_PRESENCE, SUB_STATUS };
/* A topic subscription's moderation state: its SUBSCRIBE's ban check is
 * still out (check, not resume, is the union's member then); ended by a
 * kick or ban (no longer a member of its room; known until UNSUBSCRIBE). */
enum sub_mod { SUB_MOD_CHECKING = 1, SUB_MOD_ENDED = 2 };

typedef struct subscription {
    subscriber member;         /* first: what rooms and presence hold */
    struct session *session;   /* the owner */
    struct subscription *next; /* the session's list */
    union {
        struct resume *resume;     /* SUB_TOPIC: replaying history (x-since); NULL once live */
        struct session_modcheck *check; /* SUB_TOPIC while SUB_MOD_CHECKING */
        struct status_sub *status; /* SUB_STATUS: the watch (status.h) */
    };
    uint32_t id_len;           /* 32 bits (a header line is far shorter): one */
    uint32_t wire_len;         /* the id as MESSAGE carries it (escaped for 1.1 and up);
                                * when it differs from id_len, its bytes follow the room */
    uint8_t ack;               /* enum sub_ack */
    uint8_t kind;              /* enum sub_kind */
    bool utf8;                 /* id (and so the prefix) is valid UTF-8 */
    uint8_t room_len;          /* the room's name follows the id (sub->id + sub->id_len) */
    uint8_t mod;               /* SUB_TOPIC: SUB_MOD_* flags (session_moderation.c) */
    char id[];                 /* client's id, unescaped; the room; the wire id */
} subscription;

/* What every MESSAGE prefix starts with; the wire id and "\n" follow. */
#define SUBSCRIPTION_HEAD "MESSAGE\nsubscription:"
#define SUBSCRIPTION_HEAD_LEN (sizeof SUBSCRIPTION_HEAD - 1)

/* The record's size for an id of id_len bytes (wire_len escaped), and a
 * room's name of room_len. */
static inline size_t subscription_size(size_t id_len, size_t wire_len, size_t room_len)
{
    return offsetof(subscription, id) + id_len + room_len + (wire_len != id_len ? wire_len : 0);
}

/* The id as MESSAGE frames carry it (wire_len bytes). Escaping only
 * lengthens, so equal lengths mean equal bytes. */
static inline const char *subscription_wire_id(const subscription *sub)
{
    return sub->wire_len == sub->id_len ? sub->id : sub->id + sub->id_len + sub->room_len;
}

/* The MESSAGE prefix's length: head, wire id, "\n". */
static inline size_t subscription_prefix_len(const subscription *sub)
{
    return SUBSCRIPTION_HEAD_LEN + sub->wire_len + 1;
}

/* The subscription that embeds m. */
static inline subscription *subscription_of(subscriber *m)
{
    return (subscription *)(void *)((char *)m - offsetof(subscription, member));
}

#endif
