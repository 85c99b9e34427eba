/* subscription.h — one SUBSCRIBE of a connection: the record the session
 * keeps, its output queue points to, and token refresh reads.
 *
 * A subscription embeds the subscriber (subscriber.h) that its room or
 * presence index holds; those modules see only that part, and reach the
 * subscription back through the index's deliver hook (subscription_of).
 * The record is one allocation: the fixed part, then the MESSAGE prefix
 * ("MESSAGE\nsubscription:<escaped id>\n", written in front of every
 * delivery), then the id unescaped, then the room's name.
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
    uint8_t ack;               /* enum sub_ack */
    uint8_t kind;              /* enum sub_kind */
    bool utf8;                 /* id (and so prefix) is valid UTF-8 */
    uint8_t room_len;          /* the room's name follows the id (sub->id + sub->id_len) */
    uint8_t mod;               /* SUB_TOPIC: SUB_MOD_* flags (session_moderation.c) */
    struct subscription *next; /* the session's list */
    union {
        struct resume *resume;     /* SUB_TOPIC: replaying history (x-since); NULL once live */
        struct session_modcheck *check; /* SUB_TOPIC while SUB_MOD_CHECKING */
        struct status_sub *status; /* SUB_STATUS: the watch (status.h) */
    };
    char *id;                  /* client's id, unescaped; points into prefix[] */
    uint32_t id_len;           /* 32 bits (a header line is far shorter): one */
    uint32_t prefix_len;       /* per subscription, so a connection's bytes count */
    char prefix[];             /* the MESSAGE prefix, the id, the room */
} subscription;

/* The subscription that embeds m. */
static inline subscription *subscription_of(subscriber *m)
{
    return (subscription *)(void *)((char *)m - offsetof(subscription, member));
}

#endif
