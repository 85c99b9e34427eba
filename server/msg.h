/* msg.h — an encoded outgoing frame, shared by reference.
 *
 * A msg is built once and queued on as many connections as need it; each
 * queue holds a reference. Two kinds:
 *
 *   MSG_FRAME    a complete frame (CONNECTED, RECEIPT, ERROR, a heart-beat)
 *   MSG_MESSAGE  the shared part of a MESSAGE: every header but
 *                `subscription` (and `ack`), then the body and NUL. The writer
 *                puts "MESSAGE\nsubscription:<id>\n" in front for each
 *                subscriber, so one encoding serves every subscription.
 *
 * A msg is immutable after creation; `binary` says whether its bytes are not
 * valid UTF-8 and so must travel in a binary WebSocket frame.
 *
 * Versions. A MESSAGE block is written by STOMP 1.2 rules (escapes \r \n \c
 * \\). 1.1 and 1.0 subscribers get blocks of their own, made from it by
 * stomp_transcode_headers the first time a subscriber of that version needs
 * one and kept on the msg (the loop is single-threaded), so a message costs
 * one extra encoding per older version in use, never one per subscriber.
 * When the rewriting changes nothing (no escapes: the usual case) the
 * version shares the 1.2 block.
 */
#ifndef LECTERN_MSG_H
#define LECTERN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum msg_kind { MSG_FRAME, MSG_MESSAGE } msg_kind;

typedef struct msg {
    uint32_t refs;
    uint8_t  kind;       /* msg_kind */
    bool     binary;     /* bytes are not valid UTF-8 */
    bool     immortal;   /* static msg: references are not counted */
    uint8_t  id_len;     /* MSG_MESSAGE: message-id, for `ack` headers */
    char     id[40];
    uint64_t epoch;      /* MSG_MESSAGE: the room order (see seqbuf.h) */
    uint64_t seq;
    uint64_t ts_ms;      /* MSG_MESSAGE: the SEND's server time (wall clock) */
    struct msg *older[2];    /* MSG_MESSAGE: the 1.1 and 1.0 blocks once made
                              * (msg_for_version); this msg itself when they are
                              * the same bytes; NULL: not made yet */
    size_t   len;
    char     data[];     /* len bytes */
} msg;

/* A new msg holding a copy of b's bytes, with one reference held by the
 * caller. The UTF-8 check runs here, once. */
msg *msg_create(msg_kind kind, const buf *b);

/* Set the message id (MSG_MESSAGE); id is copied, at most sizeof(m->id). */
void msg_set_id(msg *m, const char *id, size_t len);

static inline msg *msg_ref(msg *m)
{
    if (!m->immortal)
        m->refs++;
    return m;
}

/* The block a subscriber of STOMP `version` (10, 11, 12) gets for m: m
 * itself for 1.2, for frames other than MESSAGE and when the rewriting
 * changes nothing; otherwise the version's block, made on first use and
 * owned by m (valid while the caller holds a reference to m, or to it). */
msg *msg_for_version(msg *m, int version);

/* Drop one reference; frees the msg with the last. Accepts NULL. */
void msg_unref(msg *m);

/* A one-byte heart-beat (EOL), shared by everyone, never freed. */
msg *msg_heartbeat(void);

#endif
