/* publish.c — test publisher for lectern-storage (tests/storage/run.sh).
 *
 * Publishes room messages to the storage queue the way lectern-server does:
 * envelopes (lib/envelope.c) sent persistent to the default exchange with
 * the queue's name as routing key, on a channel in confirm mode; it waits
 * for the broker to confirm every one of them before it exits, so that
 * "published" means "on disk in the queue". Confirms may cover several tags
 * (multiple) and arrive in any order: the set of unsettled tags is a bitmap.
 *
 * Message i (i = start .. start+count-1) goes to room rooms[i % nrooms] with
 * id "<base>-<i>", seq i; the bodies, content types and header lines vary
 * with i (empty body, binary body with NUL, no content type, ...). On
 * request it also publishes:
 *   --dup-every K   a second copy of every K-th message, right after it;
 *   --poison N      N messages lectern-storage cannot decode (no headers,
 *                   an id that is not "<ms>-<n>", a mistyped header, an id
 *                   with a leading zero), spread evenly through the run;
 *   --bad-rows N    N well-formed messages MySQL refuses (a 300-byte room
 *                   name for a VARBINARY(255) column), spread evenly.
 *   --batch K       K messages per AMQP message, the way a server batches
 *                   storage copies under load (lib/envbatch.h); every
 *                   batch is one publish and one confirm;
 * --depth only prints the queue's ready messages and consumers.
 *
 * Output: one line of key=value counts; exit 0 when every publish was
 * confirmed (acked, not nacked), 1 otherwise, 2 on bad usage.
 */
#include "envbatch.h"
#include "envelope.h"
#include "storage_queue.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct pub {
    amqp_connection_state_t conn;
    const char *queue;
    unsigned char *settled;     /* per delivery tag (index tag - 1) */
    uint64_t next_tag, low;     /* next tag to use; lowest possibly unsettled */
    uint64_t confirmed, nacked;
} pub;

static double pub_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t pub_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int pub_rpc_ok(pub *p, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    fprintf(stderr, "storage-publish: %s failed (reply type %d, %s)\n", what, r.reply_type,
            r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                              : "server exception");
    return -1;
}

static void pub_settle(pub *p, uint64_t tag, bool multiple, bool ok)
{
    uint64_t from = multiple ? p->low : tag;
    for (uint64_t t = from; t <= tag && t < p->next_tag; t++) {
        if (p->settled[t - 1])
            continue;
        p->settled[t - 1] = 1;
        if (ok)
            p->confirmed++;
        else
            p->nacked++;
    }
    while (p->low < p->next_tag && p->settled[p->low - 1])
        p->low++;
}

/* Read confirms for up to `wait` seconds (0: only what is there). */
static int pub_read(pub *p, double wait)
{
    for (;;) {
        if (wait < 0)
            wait = 0;
        struct timeval tv = { (time_t)wait, (suseconds_t)((wait - (double)(time_t)wait) * 1e6) };
        amqp_frame_t f;
        int st = amqp_simple_wait_frame_noblock(p->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            return 0;
        if (st != AMQP_STATUS_OK) {
            fprintf(stderr, "storage-publish: read: %s\n", amqp_error_string2(st));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            pub_settle(p, a->delivery_tag, a->multiple, true);
            break;
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *n = f.payload.method.decoded;
            pub_settle(p, n->delivery_tag, n->multiple, false);
            break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            fprintf(stderr, "storage-publish: the broker closed the channel\n");
            return -1;
        default:
            break;
        }
        amqp_maybe_release_buffers(p->conn);
        wait = 0;
    }
}

static int pub_send(pub *p, amqp_basic_properties_t *props, const void *body, size_t len)
{
    props->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
    props->delivery_mode = 2;
    amqp_bytes_t b = { len, (void *)body };
    int st = amqp_basic_publish(p->conn, 1, amqp_empty_bytes, amqp_cstring_bytes(p->queue), 0, 0,
                                props, b);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "storage-publish: publish: %s\n", amqp_error_string2(st));
        return -1;
    }
    p->next_tag++;
    return 0;
}

static int pub_envelope(pub *p, const envelope *env)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    envelope_to_amqp(env, &props, entries);
    return pub_send(p, &props, env->body, env->body_len);
}

static void pub_make(envelope *e, const char *room, uint64_t base, uint64_t i, char *id,
                     char *sender, char *name, char *headers, char *body);

/* Messages start..start+count-1 in batches of `batch` (the last may be
 * smaller), at most `window` batches unconfirmed. */
static int pub_batches(pub *p, char **rooms, size_t nrooms, uint64_t base, uint64_t start,
                       uint64_t count, uint64_t batch, uint64_t window)
{
    struct slot {
        char id[64], sender[32], name[64], headers[96], body[64];
        envelope e;
    } *slots = calloc(batch, sizeof *slots);
    const envelope **envs = calloc(batch, sizeof *envs);
    buf b;
    buf_init(&b);
    int rc = 0;
    for (uint64_t k = 0; k < count && rc == 0;) {
        uint64_t n = count - k < batch ? count - k : batch;
        for (uint64_t j = 0; j < n; j++) {
            uint64_t i = start + k + j;
            struct slot *sl = &slots[j];
            pub_make(&sl->e, rooms[i % nrooms], base, i, sl->id, sl->sender, sl->name,
                     sl->headers, sl->body);
            envs[j] = &sl->e;
        }
        buf_clear(&b);
        envbatch_encode(&b, envs, n);
        amqp_basic_properties_t props;
        amqp_table_entry_t entry;
        envbatch_to_amqp(&props, &entry, n);
        rc = pub_send(p, &props, b.data, b.len);
        k += n;
        while (rc == 0 && p->next_tag - 1 - p->confirmed - p->nacked >= window)
            rc = pub_read(p, 0.1);
    }
    buf_deinit(&b);
    free(envs);
    free(slots);
    return rc;
}

/* Message i, in buffers the caller owns. */
static void pub_make(envelope *e, const char *room, uint64_t base, uint64_t i, char *id,
                     char *sender, char *name, char *headers, char *body)
{
    static const char binary[] = { 'b', 0, (char)0xff, 'x' };
    memset(e, 0, sizeof *e);
    sprintf(id, "%llu-%llu", (unsigned long long)base, (unsigned long long)i);
    sprintf(sender, "user%llu", (unsigned long long)(i % 50));
    sprintf(name, "User \"%llu\" é", (unsigned long long)(i % 50));
    e->room = (char *)room;
    e->id = id;
    e->seq = i;
    e->epoch = 1;
    e->ts_ms = pub_wall_ms();
    e->sender = sender;
    e->sender_name = name;
    e->origin = (char *)"storage-publish";
    e->content_type = i % 5 == 0 ? (char *)"text/plain" : NULL;
    if (i % 3 == 0) {
        e->headers_len = (size_t)sprintf(headers, "x-n:%llu\nx-colon:a\\cb\n",
                                         (unsigned long long)i);
        e->headers = headers;
    }
    if (i % 7 == 0) {
        e->body = NULL;
    } else if (i % 11 == 0) {
        memcpy(body, binary, sizeof binary);
        e->body = body;
        e->body_len = sizeof binary;
    } else {
        e->body_len = (size_t)sprintf(body, "body-%llu", (unsigned long long)i);
        e->body = body;
    }
}

/* Poison j: something lectern-storage cannot decode. */
static int pub_poison(pub *p, uint64_t j)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES];
    char id[64];
    envelope e;
    memset(&e, 0, sizeof e);
    e.room = (char *)"poison-room";
    e.origin = (char *)"storage-publish";
    e.sender = e.sender_name = (char *)"";
    e.id = id;
    switch (j % 4) {
    case 0:                                  /* no headers at all: no room */
        memset(&props, 0, sizeof props);
        props._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes("poison-no-headers");
        return pub_send(p, &props, "garbage", 7);
    case 1:                                  /* not a message id */
        snprintf(id, sizeof id, "not-an-id-%llu", (unsigned long long)j);
        break;
    case 2:                                  /* x-lectern-seq of the wrong type */
        snprintf(id, sizeof id, "1-%llu", (unsigned long long)j);
        envelope_to_amqp(&e, &props, entries);
        for (int k = 0; k < props.headers.num_entries; k++) {
            amqp_table_entry_t *t = &entries[k];
            if (t->key.len == 13 && !memcmp(t->key.bytes, "x-lectern-seq", 13)) {
                t->value.kind = AMQP_FIELD_KIND_UTF8;
                t->value.value.bytes = amqp_cstring_bytes("twelve");
            }
        }
        return pub_send(p, &props, "x", 1);
    default:                                 /* a leading zero */
        snprintf(id, sizeof id, "01-%llu", (unsigned long long)j);
        break;
    }
    envelope_to_amqp(&e, &props, entries);
    return pub_send(p, &props, "x", 1);
}

/* A well-formed message whose room is too long for its column. */
static int pub_bad_row(pub *p, uint64_t base, uint64_t j)
{
    char room[301], id[64];
    envelope e;
    memset(room, 'r', 300);
    room[300] = '\0';
    memset(&e, 0, sizeof e);
    snprintf(id, sizeof id, "%llu-%llu", (unsigned long long)base + 1, (unsigned long long)j);
    e.room = room;
    e.id = id;
    e.origin = (char *)"storage-publish";
    e.sender = e.sender_name = (char *)"";
    e.ts_ms = pub_wall_ms();
    e.body = (char *)"too long a room";
    e.body_len = 15;
    return pub_envelope(p, &e);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: storage-publish [--host H] [--port P] [--queue Q] [--queue-type T]\n"
            "         [--rooms a,b] [--count N] [--start I] [--base MS] [--dup-every K]\n"
            "         [--poison N] [--bad-rows N] [--rate R] [--window W] [--batch K]\n"
            "       storage-publish [--host H] [--port P] [--queue Q] --depth\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "host", required_argument, NULL, 'H' },
        { "port", required_argument, NULL, 'p' },
        { "queue", required_argument, NULL, 'q' },
        { "queue-type", required_argument, NULL, 't' },
        { "rooms", required_argument, NULL, 'r' },
        { "count", required_argument, NULL, 'n' },
        { "start", required_argument, NULL, 's' },
        { "base", required_argument, NULL, 'b' },
        { "dup-every", required_argument, NULL, 'd' },
        { "poison", required_argument, NULL, 'x' },
        { "bad-rows", required_argument, NULL, 'B' },
        { "rate", required_argument, NULL, 'R' },
        { "window", required_argument, NULL, 'w' },
        { "depth", no_argument, NULL, 'D' },
        { "batch", required_argument, NULL, 'K' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *host = "127.0.0.1", *qtype = "classic", *rooms_arg = "room";
    int port = 5690, opt, rc = 1;
    uint64_t count = 1000, start = 0, base = 1700000000000ULL, dup_every = 0, poison = 0;
    uint64_t bad = 0, window = 5000, batch = 1;
    double rate = 0;
    bool depth = false;
    pub p = { .queue = "lectern.storage", .next_tag = 1, .low = 1 };
    char *rooms_copy = NULL, **rooms = NULL;
    size_t nrooms = 0;

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'q': p.queue = optarg; break;
        case 't': qtype = optarg; break;
        case 'r': rooms_arg = optarg; break;
        case 'n': count = strtoull(optarg, NULL, 10); break;
        case 's': start = strtoull(optarg, NULL, 10); break;
        case 'b': base = strtoull(optarg, NULL, 10); break;
        case 'd': dup_every = strtoull(optarg, NULL, 10); break;
        case 'x': poison = strtoull(optarg, NULL, 10); break;
        case 'B': bad = strtoull(optarg, NULL, 10); break;
        case 'R': rate = atof(optarg); break;
        case 'w': window = strtoull(optarg, NULL, 10); break;
        case 'D': depth = true; break;
        case 'K': batch = strtoull(optarg, NULL, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!window)
        window = 1;

    rooms_copy = strdup(rooms_arg);
    rooms = calloc(strlen(rooms_arg) + 1, sizeof *rooms);
    for (char *save = NULL, *t = strtok_r(rooms_copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        rooms[nrooms++] = t;
    if (!nrooms) {
        usage(stderr);
        rc = 2;
        goto out;
    }

    p.conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(p.conn);
    struct timeval tv = { 5, 0 };
    int st = amqp_socket_open_noblock(sock, host, port, &tv);
    if (st != AMQP_STATUS_OK) {
        fprintf(stderr, "storage-publish: connect %s:%d: %s\n", host, port, amqp_error_string2(st));
        goto out;
    }
    amqp_rpc_reply_t lr = amqp_login(p.conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest",
                                     "guest");
    if (lr.reply_type != AMQP_RESPONSE_NORMAL) {
        fprintf(stderr, "storage-publish: login failed\n");
        goto out;
    }
    amqp_channel_open(p.conn, 1);
    if (pub_rpc_ok(&p, "channel.open") < 0)
        goto out;

    if (depth) {
        amqp_queue_declare_ok_t *ok = amqp_queue_declare(p.conn, 1, amqp_cstring_bytes(p.queue),
                                                         1, 0, 0, 0, amqp_empty_table);
        if (!ok) {
            pub_rpc_ok(&p, "queue.declare (passive)");
            goto out;
        }
        printf("messages=%u consumers=%u\n", ok->message_count, ok->consumer_count);
        rc = 0;
        goto out;
    }

    storage_queue_declare(p.conn, 1, p.queue, qtype);
    if (pub_rpc_ok(&p, "queue.declare") < 0)
        goto out;
    amqp_confirm_select(p.conn, 1);
    if (pub_rpc_ok(&p, "confirm.select") < 0)
        goto out;

    uint64_t total = count + (dup_every ? count / dup_every + 1 : 0) + poison + bad;
    p.settled = calloc(total + 1, 1);
    uint64_t dups = 0, sent_poison = 0, sent_bad = 0, sent = 0;
    double t0 = pub_now();
    if (batch > 1) {
        if (pub_batches(&p, rooms, nrooms, base, start, count, batch, window) < 0)
            goto out;
        sent = count;
        count = 0;                   /* the single-message loop below has nothing to do */
    }
    for (uint64_t k = 0; k < count; k++) {
        uint64_t i = start + k;
        char id[64], sender[32], name[64], headers[96], body[64];
        envelope e;
        pub_make(&e, rooms[i % nrooms], base, i, id, sender, name, headers, body);
        if (pub_envelope(&p, &e) < 0)
            goto out;
        sent++;
        if (dup_every && i % dup_every == dup_every - 1) {
            if (pub_envelope(&p, &e) < 0)
                goto out;
            dups++;
        }
        while (sent_poison < poison && (sent_poison + 1) * count / (poison + 1) <= k + 1) {
            if (pub_poison(&p, sent_poison) < 0)
                goto out;
            sent_poison++;
        }
        while (sent_bad < bad && (sent_bad + 1) * count / (bad + 1) <= k + 1) {
            if (pub_bad_row(&p, base, sent_bad) < 0)
                goto out;
            sent_bad++;
        }
        if (rate > 0) {
            double due = t0 + (double)(k + 1) / rate;
            while (pub_now() < due)
                if (pub_read(&p, due - pub_now()) < 0)
                    goto out;
        }
        if ((k & 255) == 0 && pub_read(&p, 0) < 0)
            goto out;
        while (p.next_tag - 1 - p.confirmed - p.nacked >= window)
            if (pub_read(&p, 0.1) < 0)
                goto out;
    }
    while (sent_poison < poison)
        if (pub_poison(&p, sent_poison++) < 0)
            goto out;
    while (sent_bad < bad)
        if (pub_bad_row(&p, base, sent_bad++) < 0)
            goto out;
    double deadline = pub_now() + 60;
    while (p.confirmed + p.nacked < p.next_tag - 1 && pub_now() < deadline)
        if (pub_read(&p, 0.2) < 0)
            goto out;
    double secs = pub_now() - t0;
    printf("messages=%llu duplicates=%llu poison=%llu bad_rows=%llu published=%llu "
           "confirmed=%llu nacked=%llu seconds=%.2f rate=%.0f\n",
           (unsigned long long)sent, (unsigned long long)dups, (unsigned long long)sent_poison,
           (unsigned long long)sent_bad, (unsigned long long)(p.next_tag - 1),
           (unsigned long long)p.confirmed, (unsigned long long)p.nacked, secs,
           secs > 0 ? (double)(p.next_tag - 1) / secs : 0.0);
    rc = p.confirmed == p.next_tag - 1 ? 0 : 1;

out:
    if (p.conn) {
        amqp_connection_close(p.conn, AMQP_REPLY_SUCCESS);
        amqp_destroy_connection(p.conn);
    }
    free(p.settled);
    free(rooms);
    free(rooms_copy);
    return rc;
}
