/* envelope.c — a room message <-> AMQP basic properties + body.
 *
 * Encoding points the properties at the envelope's own bytes: no copy, no
 * allocation, so a publisher can encode straight from its job. The headers
 * table uses only the field kinds RabbitMQ itself understands: longstr ('S')
 * for text, int64 ('l') for numbers (the unsigned values are reinterpreted as
 * signed on the wire and back, so every uint64 survives the round trip) and
 * byte array ('x') for the SEND's header lines, which may hold any byte.
 *
 * Decoding is table-driven (env_fields below): each x-lectern-* header has a
 * kind, a slot in the envelope and the reason given when it has the wrong
 * type. It is strict about what it needs and lenient about what it can
 * safely accept from other AMQP clients:
 *   - room, id and origin must be present and non-empty;
 *   - text may arrive as longstr or byte array, but must not contain NUL
 *     (the fields are C strings);
 *   - numbers may arrive as any integer kind; a negative value is accepted
 *     only as int64 (our own encoding of values above INT64_MAX);
 *   - when x-lectern-id or x-lectern-ts is absent, message_id and timestamp
 *     (seconds) stand in for them;
 *   - unknown headers are ignored; of duplicate keys the first counts.
 * An empty body or empty header lines decode as NULL with length 0.
 *
 * Invariant: a decoded envelope owns every pointer in it; room, id, sender,
 * sender_name and origin are never NULL.
 */
#include "envelope.h"

#include "mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum { ENV_TEXT, ENV_INT, ENV_BYTES };

typedef struct env_field {
    const char *key;
    int kind;
    size_t off;              /* of the char * or uint64_t in envelope */
    bool required;
    const char *bad;         /* reason when present with the wrong type */
    const char *missing;     /* reason when required and absent or empty */
} env_field;

static const env_field env_fields[] = {
    { "x-lectern-room", ENV_TEXT, offsetof(envelope, room), true,
      "x-lectern-room is not a NUL-free string", "missing x-lectern-room" },
    { "x-lectern-id", ENV_TEXT, offsetof(envelope, id), true,
      "x-lectern-id is not a NUL-free string", "missing x-lectern-id" },
    { "x-lectern-seq", ENV_INT, offsetof(envelope, seq), false,
      "x-lectern-seq is not an integer", NULL },
    { "x-lectern-epoch", ENV_INT, offsetof(envelope, epoch), false,
      "x-lectern-epoch is not an integer", NULL },
    { "x-lectern-ts", ENV_INT, offsetof(envelope, ts_ms), false,
      "x-lectern-ts is not an integer", NULL },
    { "x-lectern-sender", ENV_TEXT, offsetof(envelope, sender), false,
      "x-lectern-sender is not a NUL-free string", NULL },
    { "x-lectern-sender-name", ENV_TEXT, offsetof(envelope, sender_name), false,
      "x-lectern-sender-name is not a NUL-free string", NULL },
    { "x-lectern-origin", ENV_TEXT, offsetof(envelope, origin), true,
      "x-lectern-origin is not a NUL-free string", "missing x-lectern-origin" },
    { "x-lectern-headers", ENV_BYTES, offsetof(envelope, headers), false,
      "x-lectern-headers is not a byte string", NULL },
};
#define ENV_NFIELDS (sizeof env_fields / sizeof env_fields[0])

_Static_assert(ENV_NFIELDS <= ENVELOPE_MAX_ENTRIES, "headers table too small");

static amqp_bytes_t env_bytes(const char *s)
{
    return s ? amqp_cstring_bytes(s) : amqp_empty_bytes;
}

void envelope_to_amqp(const envelope *env, amqp_basic_properties_t *props,
                      amqp_table_entry_t entries[ENVELOPE_MAX_ENTRIES])
{
    memset(props, 0, sizeof *props);
    props->_flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                    AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    if (env->content_type) {
        props->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props->content_type = amqp_cstring_bytes(env->content_type);
    }
    props->message_id = env_bytes(env->id);
    props->timestamp = env->ts_ms / 1000;
    props->app_id = amqp_cstring_bytes("lectern");

    int n = 0;
    for (size_t i = 0; i < ENV_NFIELDS; i++) {
        const env_field *f = &env_fields[i];
        const char *slot = (const char *)env + f->off;
        amqp_field_value_t *v = &entries[n].value;

        if (f->kind == ENV_BYTES) {
            if (!env->headers)
                continue;       /* absent stays absent: decodes as NULL */
            v->kind = AMQP_FIELD_KIND_BYTES;
            v->value.bytes.len = env->headers_len;
            v->value.bytes.bytes = env->headers;
        } else if (f->kind == ENV_INT) {
            uint64_t u;
            memcpy(&u, slot, sizeof u);
            v->kind = AMQP_FIELD_KIND_I64;
            v->value.i64 = (int64_t)u;
        } else {
            const char *s;
            memcpy(&s, slot, sizeof s);
            v->kind = AMQP_FIELD_KIND_UTF8;
            v->value.bytes = env_bytes(s);
        }
        entries[n].key = amqp_cstring_bytes(f->key);
        n++;
    }
    props->headers.num_entries = n;
    props->headers.entries = entries;
}

size_t envelope_amqp_header_size(const envelope *env)
{
    /* frame type, channel, size; class, weight, body size; flags; frame end */
    size_t n = 7 + 2 + 2 + 8 + 2 + 1;
    if (env->content_type)
        n += 1 + strlen(env->content_type);           /* shortstr */
    n += 1 + (env->id ? strlen(env->id) : 0);         /* message_id */
    n += 8;                                           /* timestamp */
    n += 1 + strlen("lectern");                       /* app_id */
    n += 1;                                           /* delivery_mode */
    n += 4;                                           /* the headers table's length */
    for (size_t i = 0; i < ENV_NFIELDS; i++) {
        const env_field *f = &env_fields[i];
        const char *slot = (const char *)env + f->off;
        size_t value;
        if (f->kind == ENV_BYTES) {
            if (!env->headers)
                continue;
            value = 4 + env->headers_len;
        } else if (f->kind == ENV_INT) {
            value = 8;
        } else {
            const char *str;
            memcpy(&str, slot, sizeof str);
            value = 4 + (str ? strlen(str) : 0);
        }
        n += 1 + strlen(f->key) + 1 + value;          /* shortstr key, kind, value */
    }
    return n;
}

bool envelope_fits_amqp(const envelope *env, size_t frame_max)
{
    if (env->content_type && strlen(env->content_type) > 255)
        return false;
    if (env->id && strlen(env->id) > 255)
        return false;
    return !frame_max || envelope_amqp_header_size(env) <= frame_max;
}

static const amqp_field_value_t *env_lookup(const amqp_table_t *t, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        if (e->key.len == kl && !memcmp(e->key.bytes, key, kl))
            return &e->value;
    }
    return NULL;
}

static bool env_int(const amqp_field_value_t *v, uint64_t *out)
{
    int64_t s;
    switch (v->kind) {
    case AMQP_FIELD_KIND_I64: *out = (uint64_t)v->value.i64; return true;
    case AMQP_FIELD_KIND_U64: *out = v->value.u64; return true;
    case AMQP_FIELD_KIND_U32: *out = v->value.u32; return true;
    case AMQP_FIELD_KIND_U16: *out = v->value.u16; return true;
    case AMQP_FIELD_KIND_U8:  *out = v->value.u8; return true;
    case AMQP_FIELD_KIND_I32: s = v->value.i32; break;
    case AMQP_FIELD_KIND_I16: s = v->value.i16; break;
    case AMQP_FIELD_KIND_I8:  s = v->value.i8; break;
    default: return false;
    }
    if (s < 0)
        return false;
    *out = (uint64_t)s;
    return true;
}

/* Copy len bytes into a fresh NUL-terminated block; NULL when len is 0 and
 * `empty_null`, "" otherwise. */
static char *env_dup(const void *p, size_t len, bool empty_null)
{
    if (!len)
        return empty_null ? NULL : xstrdup("");
    return xstrndup(p, len);
}

int envelope_from_amqp(const amqp_basic_properties_t *props, amqp_bytes_t body,
                       envelope *out, const char **why)
{
    static const amqp_table_t no_headers = { 0, NULL };
    const amqp_table_t *t = (props->_flags & AMQP_BASIC_HEADERS_FLAG) ? &props->headers
                                                                       : &no_headers;
    const char *reason = NULL;
    bool have_ts = false;

    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < ENV_NFIELDS; i++) {
        const env_field *f = &env_fields[i];
        char *slot = (char *)out + f->off;
        const amqp_field_value_t *v = env_lookup(t, f->key);
        if (!v)
            continue;

        if (f->kind == ENV_INT) {
            uint64_t u;
            if (!env_int(v, &u)) {
                reason = f->bad;
                goto fail;
            }
            memcpy(slot, &u, sizeof u);
            if (f->off == offsetof(envelope, ts_ms))
                have_ts = true;
            continue;
        }
        if (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES) {
            reason = f->bad;
            goto fail;
        }
        amqp_bytes_t b = v->value.bytes;
        if (f->kind == ENV_BYTES) {
            out->headers = env_dup(b.bytes, b.len, true);
            out->headers_len = b.len;
            continue;
        }
        if (b.len && memchr(b.bytes, '\0', b.len)) {
            reason = f->bad;
            goto fail;
        }
        char *s = env_dup(b.bytes, b.len, false);
        memcpy(slot, &s, sizeof s);
    }

    if (!out->id && (props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && props->message_id.len &&
        !memchr(props->message_id.bytes, '\0', props->message_id.len))
        out->id = env_dup(props->message_id.bytes, props->message_id.len, false);
    if (!have_ts && (props->_flags & AMQP_BASIC_TIMESTAMP_FLAG))
        out->ts_ms = props->timestamp * 1000;

    for (size_t i = 0; i < ENV_NFIELDS; i++) {
        const env_field *f = &env_fields[i];
        if (f->kind != ENV_TEXT)
            continue;
        char **slot = (char **)((char *)out + f->off);
        if (f->required && (!*slot || !**slot)) {
            reason = f->missing;
            goto fail;
        }
        if (!*slot)
            *slot = xstrdup("");
    }

    if (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) {
        if (props->content_type.len && memchr(props->content_type.bytes, '\0',
                                              props->content_type.len)) {
            reason = "content_type contains NUL";
            goto fail;
        }
        out->content_type = env_dup(props->content_type.bytes, props->content_type.len, false);
    }
    if (body.len) {
        out->body = xmalloc(body.len);
        memcpy(out->body, body.bytes, body.len);
        out->body_len = body.len;
    }
    if (why)
        *why = NULL;
    return 0;

fail:
    envelope_free(out);
    if (why)
        *why = reason;
    return -1;
}

static char *env_strdup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void envelope_copy(envelope *dst, const envelope *src)
{
    dst->room = env_strdup_or_null(src->room);
    dst->id = env_strdup_or_null(src->id);
    dst->seq = src->seq;
    dst->epoch = src->epoch;
    dst->ts_ms = src->ts_ms;
    dst->sender = env_strdup_or_null(src->sender);
    dst->sender_name = env_strdup_or_null(src->sender_name);
    dst->origin = env_strdup_or_null(src->origin);
    dst->content_type = env_strdup_or_null(src->content_type);
    dst->headers = src->headers ? xstrndup(src->headers, src->headers_len) : NULL;
    dst->headers_len = src->headers ? src->headers_len : 0;
    if (src->body && src->body_len) {
        dst->body = xmalloc(src->body_len);
        memcpy(dst->body, src->body, src->body_len);
        dst->body_len = src->body_len;
    } else {
        dst->body = NULL;
        dst->body_len = 0;
    }
}

void envelope_free(envelope *env)
{
    if (!env)
        return;
    free(env->room);
    free(env->id);
    free(env->sender);
    free(env->sender_name);
    free(env->origin);
    free(env->content_type);
    free(env->headers);
    free(env->body);
    memset(env, 0, sizeof *env);
}
