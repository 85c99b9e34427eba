/* relay.h — where room messages come from and go to.
 *
 * Publishing (a SEND on this server):
 *   1. the message is appended to the room's log in Redis (registry_publish),
 *      which assigns its id, its place in the room order (epoch, seq) and
 *      says whether other servers have members in the room;
 *   2. it is encoded once as a STOMP MESSAGE and offered to the local room
 *      (local bypass: never through the broker);
 *   3. it is queued for the bus: the storage copy always (persistent, to the
 *      storage queue, confirmed), the room copy only if other servers have
 *      members; the publish completes when the storage copy is confirmed.
 * Receiving (bus): the envelope is encoded and offered to the local room.
 * Either way the room's seqbuf releases messages in room order, once.
 *
 * Gaps (a message overtaken by a later one, or lost on the bus) are filled
 * from the room's log after relay.gap_timeout_ms; catch-ups after a bus or
 * registry reconnect read the log too. Membership changes go through here
 * so that the local room, the registry and the bus bindings stay in step.
 */
#ifndef LECTERN_RELAY_H
#define LECTERN_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "envelope.h"
#include "metrics.h"
#include "msg.h"
#include "registry.h"
#include "room.h"
#include "stomp.h"
#include "storelimits.h"
#include "subscriber.h"

typedef struct relay relay;

typedef struct relay_config {
    const char *server_id;
    int gap_timeout_ms;      /* how long a gap may last before the log is read */
    int catchup_max;         /* most messages fetched to fill one gap or catch up */
    int pull_ms;             /* while the bus is down, read the room logs this often */
} relay_config;

/* All borrowed; they must outlive the relay. reg and b may be set later
 * with relay_attach (they need the relay's callbacks at creation). */
relay *relay_create(uv_loop_t *loop, room_index *rooms, metrics *m, const relay_config *cfg);
void relay_attach(relay *r, registry *reg, bus *b);
void relay_destroy(relay *r);   /* accepts NULL; loop must run once more */

/* Can a SEND be accepted now? (registry up, and the bus can publish: the
 * consumer side may be down, see relay_on_bus_state) */
bool relay_ready(const relay *r);

/* Membership of a topic subscription (its local room, the registry's
 * presence record, the bus binding of the room). done(ctx, true) runs once
 * this server is a member of the room cluster-wide (at once if it already
 * was), so that every message sent after it reaches the subscription;
 * done(ctx, false) if the room is left first. */
void relay_join(relay *r, subscriber *sub, const stomp_str *room, const char *user,
                const char *name, room_ready_fn done, void *ctx);
void relay_leave(relay *r, subscriber *sub, const char *user);

/* Would the message store hold this SEND to room `name` from user/user_name
 * with role (see relay_publish)? Counts the exact bytes of every stored
 * field, the envelope's escaped header lines included, against
 * lib/storelimits.h without building anything. Returns 0, or -1 with an
 * ERROR body naming the field, its size and its limit in why. */
int relay_check_send(const relay *r, const stomp_str *name, const stomp_frame *f,
                     const char *user, const char *user_name, const char *role, char *why,
                     size_t whylen);

/* The pure parts of the two (exported for the unit tests): the envelope
 * relay_publish makes of a SEND (id "", no room order yet; every field
 * allocated, free with envelope_free), and the stored sizes of that
 * envelope computed from the frame alone. Pointers are borrowed. */
void relay_envelope_of_send(envelope *env, const stomp_str *name, const stomp_frame *f,
                            const char *user, const char *user_name, const char *role,
                            const char *origin);
void relay_send_sizes(const stomp_str *name, const stomp_frame *f, const char *user,
                      const char *user_name, const char *role, const char *origin,
                      storelimits_sizes *out);

/* How a publish ended. */
typedef enum relay_outcome {
    RELAY_STORED,      /* in the room order, delivered, its storage copy confirmed */
    RELAY_FAILED,      /* something failed: it may or may not have been delivered */
    RELAY_BANNED,      /* refused: the sender is banned from the room (nothing done) */
    RELAY_MUTED        /* refused: the sender is muted in the room (nothing done) */
} relay_outcome;

typedef struct relay_result {
    relay_outcome outcome;
    const char *id;     /* the message's id ("" when it never got one); lent */
    bool duplicate;     /* STORED as a repeat of an idempotency key: id is the
                         * first copy's; nothing was delivered again */
    uint64_t until_ms;  /* BANNED, MUTED: when it ends (0: no end) */
} relay_result;

typedef void (*relay_published_fn)(void *ctx, const relay_result *res);

/* Options of one publish (all optional; NULL opts: none). */
typedef struct relay_pub_opts {
    bool moderated;           /* refuse if `user` is banned from / muted in the room */
    const char *idem_key;     /* idempotency key (NULL: none) ... */
    size_t idem_key_len;
    long long idem_window_ms; /* ... remembered this long, per (room, sender) */
} relay_pub_opts;

/* Publish a SEND frame to room `name` as user/name with role (NULL: none;
 * it becomes the sender-role header). done(ctx, res) runs once the message
 * has its place in the room order, was delivered locally and RabbitMQ
 * confirmed its storage copy durable (STORED), once any of that failed
 * (FAILED: the message may or may not have been delivered), or once the
 * registry refused it (BANNED, MUTED). A repeat of an idempotency key
 * (opts) within its window is not delivered again: its storage copy is
 * published again under the first copy's id (a no-op in MySQL if the first
 * was stored), and done reports STORED with that id and `duplicate`.
 * Returns 0, or -1 when the cluster is not ready or the message is over the
 * storage limits (callers check relay_check_send first, for a precise
 * ERROR); done is then not called. */
int relay_publish(relay *r, const stomp_str *name, const stomp_frame *f, const char *user,
                  const char *user_name, const char *role, const relay_pub_opts *opts,
                  relay_published_fn done, void *ctx);

/* Publish a message the server made itself (a redaction event): env's
 * room, sender, sender_name, content_type, headers (STOMP 1.2 header
 * lines, taken as they are: nothing is reserved here) and body. Its id,
 * room order and origin are set here; otherwise as relay_publish with no
 * options. env's fields are taken in every case (env is left zeroed).
 * Returns 0, or -1 when the cluster is not ready or env is over the
 * storage limits (done is then not called). */
int relay_publish_envelope(relay *r, envelope *env, relay_published_fn done, void *ctx);

/* env encoded as the shared part of a MESSAGE (one reference, the
 * caller's). For replays, which bypass the room order. */
msg *relay_message(relay *r, const envelope *env);

/* Callbacks wired to the registry and the bus (see server.c). */
void relay_on_room_sync(relay *r, const char *rname, uint64_t epoch, uint64_t seq);
void relay_on_bus_message(relay *r, envelope *env);
void relay_on_bus_state(relay *r, bool up);
void relay_on_bus_bound(relay *r, const char *rname, bool ok);

typedef struct relay_stats {
    uint64_t bus_published;      /* messages handed to the bus */
    uint64_t bus_skipped;        /* local bypass: no other server had members */
    uint64_t bus_received;       /* messages from the bus offered to a room */
    uint64_t bus_no_room;        /* messages from the bus for rooms not hosted here */
    uint64_t gaps_filled;        /* messages recovered from the room log */
    uint64_t gaps_lost;          /* messages given up on (log no longer had them) */
    uint64_t catchups;           /* catch-up reads after reconnects */
    uint64_t duplicates;         /* idempotent repeats: stored again, not delivered */
} relay_stats;

void relay_get_stats(const relay *r, relay_stats *out);

#endif
