/* statusmsg.c — /status MESSAGE bodies for the load generator (see statusmsg.h).
 *
 * A single pass over the bytes with a cursor: the top-level object's keys
 * are dispatched by name ("type", "user", "online", "since", "seen",
 * "contacts"), every other value is skipped by a small recursive skipper
 * bounded at 32 levels, so hostile nesting cannot exhaust the stack. Only
 * the user strings are decoded (into the entry's fixed buffer, \uXXXX to
 * UTF-8 with surrogate pairs); the "type" string is compared in place after
 * decoding into a small buffer. Numbers are read as integers (a fraction
 * or exponent is skipped: since/seen are whole milliseconds). Nothing is
 * allocated and the input is never modified, so a failed parse leaves no
 * trace but m->err.
 */
#include "statusmsg.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define STATUS_MAX_DEPTH 32

typedef struct jcur {
    const char *p, *end;
    const char *err;
} jcur;

static bool jfail(jcur *c, const char *why)
{
    if (!c->err)
        c->err = why;
    return false;
}

static void jws(jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool jlit(jcur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return jfail(c, "bad literal");
    c->p += n;
    return true;
}

static int jhex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool jhex4(jcur *c, unsigned *v)
{
    if (c->end - c->p < 4)
        return jfail(c, "short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int h = jhex(c->p[i]);
        if (h < 0)
            return jfail(c, "bad \\u escape");
        *v = *v << 4 | (unsigned)h;
    }
    c->p += 4;
    return true;
}

/* Append one byte to dst (when dst is given), failing past cap. */
static bool jput(jcur *c, char *dst, size_t cap, size_t *n, unsigned char b)
{
    if (dst) {
        if (*n >= cap)
            return jfail(c, "string too long");
        dst[*n] = (char)b;
    }
    (*n)++;
    return true;
}

/* A string at the cursor (which is on its opening quote): decoded into
 * dst[0..cap) and NUL-terminated when dst is given (cap excludes the NUL),
 * else only skipped. */
static bool jstring(jcur *c, char *dst, size_t cap, size_t *len)
{
    size_t n = 0;
    if (c->p >= c->end || *c->p != '"')
        return jfail(c, "string expected");
    c->p++;
    for (;;) {
        if (c->p >= c->end)
            return jfail(c, "unterminated string");
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            break;
        if (ch < 0x20)
            return jfail(c, "control character in string");
        if (ch != '\\') {
            if (!jput(c, dst, cap, &n, ch))
                return false;
            continue;
        }
        if (c->p >= c->end)
            return jfail(c, "unterminated escape");
        char e = *c->p++;
        unsigned cp;
        switch (e) {
        case '"': case '\\': case '/': cp = (unsigned char)e; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (!jhex4(c, &cp))
                return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u')
                    return jfail(c, "lone surrogate");
                c->p += 2;
                if (!jhex4(c, &lo))
                    return false;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jfail(c, "bad surrogate pair");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return jfail(c, "lone surrogate");
            }
            break;
        default:
            return jfail(c, "bad escape");
        }
        /* UTF-8 of cp */
        bool ok;
        if (cp < 0x80) {
            ok = jput(c, dst, cap, &n, (unsigned char)cp);
        } else if (cp < 0x800) {
            ok = jput(c, dst, cap, &n, (unsigned char)(0xC0 | cp >> 6)) &&
                 jput(c, dst, cap, &n, (unsigned char)(0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            ok = jput(c, dst, cap, &n, (unsigned char)(0xE0 | cp >> 12)) &&
                 jput(c, dst, cap, &n, (unsigned char)(0x80 | ((cp >> 6) & 0x3F))) &&
                 jput(c, dst, cap, &n, (unsigned char)(0x80 | (cp & 0x3F)));
        } else {
            ok = jput(c, dst, cap, &n, (unsigned char)(0xF0 | cp >> 18)) &&
                 jput(c, dst, cap, &n, (unsigned char)(0x80 | ((cp >> 12) & 0x3F))) &&
                 jput(c, dst, cap, &n, (unsigned char)(0x80 | ((cp >> 6) & 0x3F))) &&
                 jput(c, dst, cap, &n, (unsigned char)(0x80 | (cp & 0x3F)));
        }
        if (!ok)
            return false;
    }
    if (dst)
        dst[n] = '\0';
    if (len)
        *len = n;
    return true;
}

/* A number at the cursor: its integer part into *v (a fraction or an
 * exponent is read and dropped). */
static bool jnumber(jcur *c, int64_t *v)
{
    bool neg = false;
    if (c->p < c->end && *c->p == '-') {
        neg = true;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return jfail(c, "bad number");
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (x < INT64_MAX / 10)
            x = x * 10 + (*c->p - '0');
        c->p++;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return jfail(c, "bad number");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return jfail(c, "bad number");
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
            c->p++;
    }
    *v = neg ? -x : x;
    return true;
}

static bool jskip(jcur *c, int depth);

/* Walk the members of the object at the cursor; for each key (decoded
 * into a small buffer, longer keys are never ours) call member(), which
 * consumes the value. */
typedef bool (*jmember_fn)(jcur *c, const char *key, void *arg, int depth);

static bool jobject(jcur *c, int depth, jmember_fn member, void *arg)
{
    if (depth > STATUS_MAX_DEPTH)
        return jfail(c, "nested too deeply");
    if (c->p >= c->end || *c->p != '{')
        return jfail(c, "object expected");
    c->p++;
    jws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return true;
    }
    for (;;) {
        char key[16];
        size_t klen;
        jws(c);
        const char *k0 = c->p;
        if (!jstring(c, key, sizeof key - 1, &klen)) {
            /* a long key is not one of ours: skip it */
            if (c->err && strcmp(c->err, "string too long") == 0) {
                c->err = NULL;
                c->p = k0;
                if (!jstring(c, NULL, 0, NULL))
                    return false;
                key[0] = '\0';
            } else {
                return false;
            }
        }
        jws(c);
        if (c->p >= c->end || *c->p != ':')
            return jfail(c, "':' expected");
        c->p++;
        jws(c);
        if (!member(c, key, arg, depth + 1))
            return false;
        jws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return true;
        }
        return jfail(c, "',' or '}' expected");
    }
}

static bool skip_member(jcur *c, const char *key, void *arg, int depth)
{
    (void)key;
    (void)arg;
    return jskip(c, depth);
}

static bool jskip(jcur *c, int depth)
{
    if (depth > STATUS_MAX_DEPTH)
        return jfail(c, "nested too deeply");
    jws(c);
    if (c->p >= c->end)
        return jfail(c, "value expected");
    int64_t ignored;
    switch (*c->p) {
    case '"':
        return jstring(c, NULL, 0, NULL);
    case '{':
        return jobject(c, depth, skip_member, NULL);
    case '[':
        c->p++;
        jws(c);
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            return true;
        }
        for (;;) {
            if (!jskip(c, depth + 1))
                return false;
            jws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == ']') {
                c->p++;
                return true;
            }
            return jfail(c, "',' or ']' expected");
        }
    case 't': return jlit(c, "true");
    case 'f': return jlit(c, "false");
    case 'n': return jlit(c, "null");
    default:
        return jnumber(c, &ignored);
    }
}

/* since / seen: a number, or null (-1). */
static bool jtime(jcur *c, int64_t *v)
{
    if (c->p < c->end && *c->p == 'n') {
        *v = -1;
        return jlit(c, "null");
    }
    return jnumber(c, v);
}

/* The members an entry and a change share: user, online, since, seen. */
static bool entry_member(jcur *c, const char *key, status_entry *e, bool *known)
{
    *known = true;
    if (strcmp(key, "user") == 0) {
        if (c->p >= c->end || *c->p != '"')
            return jfail(c, "user must be a string");
        return jstring(c, e->user, STATUS_USER_MAX, &e->user_len);
    }
    if (strcmp(key, "online") == 0) {
        if (c->p < c->end && *c->p == 't') {
            e->online = 1;
            return jlit(c, "true");
        }
        if (c->p < c->end && *c->p == 'f') {
            e->online = 0;
            return jlit(c, "false");
        }
        return jfail(c, "online must be true or false");
    }
    if (strcmp(key, "since") == 0)
        return jtime(c, &e->since);
    if (strcmp(key, "seen") == 0)
        return jtime(c, &e->seen);
    *known = false;
    return true;
}

static void entry_reset(status_entry *e)
{
    e->user[0] = '\0';
    e->user_len = 0;
    e->online = -1;
    e->since = e->seen = -1;
}

static bool contact_member(jcur *c, const char *key, void *arg, int depth)
{
    bool known;
    if (!entry_member(c, key, arg, &known))
        return false;
    return known ? true : jskip(c, depth);
}

typedef struct top_ctx {
    status_msg *m;
    status_entry_fn fn;
    void *ctx;
    bool have_type;
} top_ctx;

static bool top_member(jcur *c, const char *key, void *arg, int depth)
{
    top_ctx *t = arg;
    if (strcmp(key, "type") == 0) {
        char type[16];
        size_t tl = 0;
        const char *s0 = c->p;
        if (!jstring(c, type, sizeof type - 1, &tl)) {
            if (!c->err || strcmp(c->err, "string too long") != 0)
                return false;
            c->err = NULL;       /* a long type is not one we know */
            c->p = s0;
            if (!jstring(c, NULL, 0, NULL))
                return false;
            type[0] = '\0';
        }
        t->have_type = true;
        t->m->kind = strcmp(type, "snapshot") == 0 ? STATUS_SNAPSHOT
                   : strcmp(type, "online") == 0   ? STATUS_ONLINE
                   : strcmp(type, "offline") == 0  ? STATUS_OFFLINE
                                                   : STATUS_OTHER;
        return true;
    }
    if (strcmp(key, "contacts") == 0) {
        if (c->p >= c->end || *c->p != '[')
            return jfail(c, "contacts must be an array");
        c->p++;
        jws(c);
        if (c->p < c->end && *c->p == ']') {
            c->p++;
            return true;
        }
        for (;;) {
            status_entry e;
            entry_reset(&e);
            jws(c);
            if (!jobject(c, depth + 1, contact_member, &e))
                return false;
            if (e.user_len == 0)
                return jfail(c, "contact entry without a user");
            t->m->entries++;
            if (t->fn)
                t->fn(t->ctx, &e);
            jws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == ']') {
                c->p++;
                return true;
            }
            return jfail(c, "',' or ']' expected");
        }
    }
    bool known;
    if (!entry_member(c, key, &t->m->ev, &known))
        return false;
    return known ? true : jskip(c, depth);
}

int status_msg_parse(const char *body, size_t len, status_msg *m, status_entry_fn fn, void *ctx)
{
    jcur c = { body, body + len, NULL };
    top_ctx t = { m, fn, ctx, false };
    m->kind = STATUS_OTHER;
    m->entries = 0;
    m->err = NULL;
    entry_reset(&m->ev);
    jws(&c);
    if (!jobject(&c, 0, top_member, &t))
        goto fail;
    jws(&c);
    if (c.p != c.end) {
        jfail(&c, "bytes after the object");
        goto fail;
    }
    if (!t.have_type) {
        jfail(&c, "no type");
        goto fail;
    }
    if ((m->kind == STATUS_ONLINE || m->kind == STATUS_OFFLINE) && m->ev.user_len == 0) {
        jfail(&c, "change without a user");
        goto fail;
    }
    return 0;
fail:
    m->err = c.err;
    return -1;
}

size_t status_user_name(char *dst, size_t cap, const char *pattern, unsigned n)
{
    const char *p = strstr(pattern, "%u");
    int len;
    if (!p)
        len = snprintf(dst, cap, "%s%u", pattern, n);
    else
        len = snprintf(dst, cap, "%.*s%u%s", (int)(p - pattern), pattern, n, p + 2);
    if (len < 0)
        return 0;
    return (size_t)len < cap ? (size_t)len : cap ? cap - 1 : 0;
}

long status_user_index(const char *id, size_t len, const char *pattern)
{
    const char *p = strstr(pattern, "%u");
    size_t pre = p ? (size_t)(p - pattern) : strlen(pattern);
    const char *suf = p ? p + 2 : "";
    size_t sl = strlen(suf);
    if (len < pre + sl + 1 || memcmp(id, pattern, pre) != 0 || memcmp(id + len - sl, suf, sl) != 0)
        return -1;
    const char *d = id + pre, *de = id + len - sl;
    if (de - d > 9 || (*d == '0' && de - d > 1))
        return -1;
    long v = 0;
    for (; d < de; d++) {
        if (*d < '0' || *d > '9')
            return -1;
        v = v * 10 + (*d - '0');
    }
    return v;
}
