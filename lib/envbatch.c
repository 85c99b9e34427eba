/* envbatch.c — a batch of envelopes in one AMQP body (see envbatch.h).
 *
 * The encoder writes lengths in front of everything, so the decoder never
 * scans for delimiters and can check every length against what is left
 * before it touches the bytes. Decoding first validates the whole body
 * (one pass that only reads), then allocates: a bad batch allocates
 * nothing and leaks nothing.
 */
#include "envbatch.h"

#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENVBATCH_MAGIC "LEB1"
#define ENVBATCH_ABSENT 0xFFFFFFFFu
#define ENVBATCH_FIELDS 8

static void put_u32(buf *b, uint32_t v)
{
    unsigned char p[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                           (unsigned char)(v >> 8), (unsigned char)v };
    buf_append(b, p, 4);
}

static void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b, (uint32_t)v);
}

static void put_field(buf *b, const void *p, size_t len, bool present)
{
    if (!present) {
        put_u32(b, ENVBATCH_ABSENT);
        return;
    }
    put_u32(b, (uint32_t)len);
    buf_append(b, p, len);
}

static void put_str(buf *b, const char *s)
{
    put_field(b, s ? s : "", s ? strlen(s) : 0, true);
}

void envbatch_encode(buf *out, const envelope *const *envs, size_t n)
{
    buf_append(out, ENVBATCH_MAGIC, 4);
    put_u32(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const envelope *e = envs[i];
        size_t at = out->len;
        put_u32(out, 0);                 /* record length, patched below */
        put_u64(out, e->seq);
        put_u64(out, e->epoch);
        put_u64(out, e->ts_ms);
        put_str(out, e->room);
        put_str(out, e->id);
        put_str(out, e->sender);
        put_str(out, e->sender_name);
        put_str(out, e->origin);
        put_field(out, e->content_type, e->content_type ? strlen(e->content_type) : 0,
                  e->content_type != NULL);
        put_field(out, e->headers, e->headers_len, e->headers != NULL);
        put_field(out, e->body, e->body_len, e->body != NULL);
        uint32_t rl = (uint32_t)(out->len - at - 4);
        unsigned char *p = (unsigned char *)out->data + at;
        p[0] = (unsigned char)(rl >> 24);
        p[1] = (unsigned char)(rl >> 16);
        p[2] = (unsigned char)(rl >> 8);
        p[3] = (unsigned char)rl;
    }
}

size_t envbatch_record_size(const envelope *e)
{
    size_t n = 4 + 3 * 8 + ENVBATCH_FIELDS * 4;     /* length, seq/epoch/ts, field lengths */
    const char *text[] = { e->room, e->id, e->sender, e->sender_name, e->origin,
                           e->content_type };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
        n += text[i] ? strlen(text[i]) : 0;
    return n + (e->headers ? e->headers_len : 0) + (e->body ? e->body_len : 0);
}

void envbatch_to_amqp(amqp_basic_properties_t *props, amqp_table_entry_t *entry, size_t n)
{
    memset(props, 0, sizeof *props);
    props->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props->content_type = amqp_cstring_bytes(ENVBATCH_CONTENT_TYPE);
    props->app_id = amqp_cstring_bytes("lectern");
    entry->key = amqp_cstring_bytes("x-lectern-batch");
    entry->value.kind = AMQP_FIELD_KIND_I32;
    entry->value.value.i32 = (int32_t)n;
    props->headers.num_entries = 1;
    props->headers.entries = entry;
}

bool envbatch_is(const amqp_basic_properties_t *props)
{
    static const char ct[] = ENVBATCH_CONTENT_TYPE;
    return (props->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) &&
           props->content_type.len == sizeof ct - 1 &&
           memcmp(props->content_type.bytes, ct, sizeof ct - 1) == 0;
}

/* A reader over the body: every take checks the length left. */
typedef struct rd {
    const unsigned char *p;
    size_t left;
} rd;

static bool get_u32(rd *r, uint32_t *v)
{
    if (r->left < 4)
        return false;
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    r->left -= 4;
    return true;
}

static bool get_u64(rd *r, uint64_t *v)
{
    uint32_t hi, lo;
    if (!get_u32(r, &hi) || !get_u32(r, &lo))
        return false;
    *v = (uint64_t)hi << 32 | lo;
    return true;
}

/* One field: p and len point into the body; present is false for ABSENT. */
static bool get_field(rd *r, const unsigned char **p, uint32_t *len, bool *present)
{
    if (!get_u32(r, len))
        return false;
    if (*len == ENVBATCH_ABSENT) {
        *present = false;
        *len = 0;
        *p = NULL;
        return true;
    }
    if (r->left < *len)
        return false;
    *present = true;
    *p = r->p;
    r->p += *len;
    r->left -= *len;
    return true;
}

/* Walk one record; when env is not NULL, fill it (allocating). */
static const char *envbatch_record(rd *rec, envelope *env)
{
    uint64_t num[3];
    for (int k = 0; k < 3; k++)
        if (!get_u64(rec, &num[k]))
            return "batch record truncated";
    const unsigned char *fp[ENVBATCH_FIELDS];
    uint32_t fl[ENVBATCH_FIELDS];
    bool fpres[ENVBATCH_FIELDS];
    for (int k = 0; k < ENVBATCH_FIELDS; k++) {
        if (!get_field(rec, &fp[k], &fl[k], &fpres[k]))
            return "batch record truncated";
        /* room, id, sender, sender_name, origin, content_type are C strings */
        if (k < 6 && fpres[k] && memchr(fp[k], '\0', fl[k]))
            return "batch text field contains NUL";
        if (k < 5 && !fpres[k])
            return "batch record lacks a required field";
    }
    if (rec->left != 0)
        return "batch record has trailing bytes";
    if (fl[0] == 0 || fl[1] == 0 || fl[4] == 0)
        return "batch record without room, id or origin";
    if (!env)
        return NULL;
    memset(env, 0, sizeof *env);
    env->seq = num[0];
    env->epoch = num[1];
    env->ts_ms = num[2];
    char **text[6] = { &env->room, &env->id, &env->sender, &env->sender_name, &env->origin,
                       &env->content_type };
    for (int k = 0; k < 6; k++)
        if (fpres[k])
            *text[k] = xstrndup((const char *)fp[k], fl[k]);
    if (fpres[6] && fl[6]) {
        env->headers = xmalloc(fl[6]);
        memcpy(env->headers, fp[6], fl[6]);
        env->headers_len = fl[6];
    }
    if (fpres[7] && fl[7]) {
        env->body = xmalloc(fl[7]);
        memcpy(env->body, fp[7], fl[7]);
        env->body_len = fl[7];
    }
    return NULL;
}

/* Walk the whole body; fill envs when not NULL. */
static const char *envbatch_walk(amqp_bytes_t body, uint32_t *count, envelope *envs)
{
    rd r = { body.bytes, body.len };
    if (r.left < 4 || memcmp(r.p, ENVBATCH_MAGIC, 4) != 0)
        return "not a lectern batch (bad magic)";
    r.p += 4;
    r.left -= 4;
    if (!get_u32(&r, count))
        return "batch truncated";
    if (*count == 0)
        return "empty batch";
    for (uint32_t i = 0; i < *count; i++) {
        uint32_t rl;
        if (!get_u32(&r, &rl) || r.left < rl)
            return "batch truncated";
        rd rec = { r.p, rl };
        const char *why = envbatch_record(&rec, envs ? &envs[i] : NULL);
        if (why)
            return why;
        r.p += rl;
        r.left -= rl;
    }
    if (r.left != 0)
        return "batch has trailing bytes";
    return NULL;
}

int envbatch_decode(amqp_bytes_t body, envelope **out, size_t *n, const char **why)
{
    uint32_t count = 0;
    const char *bad = envbatch_walk(body, &count, NULL);
    if (bad) {
        *why = bad;
        return -1;
    }
    envelope *envs = xcalloc(count, sizeof *envs);
    envbatch_walk(body, &count, envs);
    *out = envs;
    *n = count;
    return 0;
}

void envbatch_free(envelope *envs, size_t n)
{
    if (!envs)
        return;
    for (size_t i = 0; i < n; i++)
        envelope_free(&envs[i]);
    free(envs);
}
