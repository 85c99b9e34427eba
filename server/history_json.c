/* history_json.c — writing history pages as JSON without a tree (see history_json.h).
 *
 * One writer serves both passes: a jw with out == NULL only adds up
 * lengths, one with a buffer also copies. Measuring and writing therefore
 * cannot disagree, and a caller can size its buffer exactly once.
 *
 * Escaping follows jansson's dump_string with JSON_COMPACT and no other
 * flags (byte for byte what a jansson tree of the page prints): '"' and
 * '\\' get a backslash, \b \f \n \r \t their short forms, every other byte
 * below 0x20 \u00XX with upper-case hex; '/', DEL and non-ASCII go out as
 * they are. A body of control characters thus grows sixfold; history.c
 * cuts pages by this measured size, not by the stored one.
 *
 * The SEND's own headers are stored as STOMP 1.2 header lines
 * ("name:value\n", escaped). They are unescaped into a scratch copy (never
 * longer than the original), and a repeated name is found by sorting the
 * names, so a message with thousands of header lines costs n log n, not
 * n^2. sender-role, stamped by the server, is taken out of them and listed
 * beside sender. A redacted message's tombstone (redact.h: the headers
 * x-redacted-by and x-redacted-at, an empty body) also gets
 * "redacted": {"by", "at"} after its headers.
 */
#include "history_json.h"

#include "mem.h"
#include "utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jw {
    char *out;               /* NULL: measure only */
    size_t len;              /* bytes so far */
} jw;

static void jw_put(jw *w, const void *p, size_t n)
{
    if (w->out && n)
        memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void jw_lit(jw *w, const char *s)
{
    jw_put(w, s, strlen(s));
}

/* p[0..n), valid UTF-8, escaped (no quotes). */
static void jw_escaped(jw *w, const char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        jw_put(w, p + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': jw_put(w, "\\\"", 2); break;
        case '\\': jw_put(w, "\\\\", 2); break;
        case '\b': jw_put(w, "\\b", 2); break;
        case '\f': jw_put(w, "\\f", 2); break;
        case '\n': jw_put(w, "\\n", 2); break;
        case '\r': jw_put(w, "\\r", 2); break;
        case '\t': jw_put(w, "\\t", 2); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            jw_put(w, u, 6);
        }
        }
    }
    jw_put(w, p + run, n - run);
}

/* p[0..n) as a JSON string: as it is when it is UTF-8, else each byte that
 * does not start a valid sequence becomes U+FFFD. NULL is "". */
static void jw_text(jw *w, const char *p, size_t n)
{
    jw_put(w, "\"", 1);
    if (p && utf8_valid(p, n)) {
        jw_escaped(w, p, n);
    } else if (p) {
        for (size_t i = 0; i < n;) {
            size_t k = 1;
            while (k <= 4 && i + k <= n && !utf8_valid(p + i, k))
                k++;
            if (k <= 4 && i + k <= n) {
                jw_escaped(w, p + i, k);
                i += k;
            } else {
                jw_put(w, "\xef\xbf\xbd", 3);
                i++;
            }
        }
    }
    jw_put(w, "\"", 1);
}

static void jw_cstr(jw *w, const char *s)
{
    jw_text(w, s, s ? strlen(s) : 0);
}

/* Printed as jansson prints a json_int_t (signed). */
static void jw_int(jw *w, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", (long long)v);
    jw_put(w, num, (size_t)n);
}

/* Standard base64 with padding, in quotes. */
static void jw_base64(jw *w, const unsigned char *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    jw_put(w, "\"", 1);
    if (!w->out) {
        w->len += (n + 2) / 3 * 4;
    } else {
        char *o = w->out + w->len;
        size_t i = 0;
        for (; i + 3 <= n; i += 3) {
            uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
            *o++ = tab[v >> 18];
            *o++ = tab[(v >> 12) & 63];
            *o++ = tab[(v >> 6) & 63];
            *o++ = tab[v & 63];
        }
        if (i < n) {
            uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
            *o++ = tab[v >> 18];
            *o++ = tab[(v >> 12) & 63];
            *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
            *o++ = '=';
        }
        w->len = (size_t)(o - w->out);
    }
    jw_put(w, "\"", 1);
}

/* --- the SEND's headers ------------------------------------------------------------ */

typedef struct hj_header {
    const char *name, *value;    /* into the scratch copy */
    size_t nlen, vlen;
    size_t idx;                  /* order of appearance */
} hj_header;

typedef struct hj_headers {
    char *scratch;
    hj_header *list;             /* the headers to list, in order (first of each name) */
    size_t n;
    hj_header role;              /* sender-role (when has_role); not in list */
    bool has_role;
} hj_headers;

static int hj_by_name(const void *a, const void *b)
{
    const hj_header *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(x->name, y->name, n);
    if (c)
        return c;
    if (x->nlen != y->nlen)
        return x->nlen < y->nlen ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool hj_same_name(const hj_header *x, const hj_header *y)
{
    return x->nlen == y->nlen && !memcmp(x->name, y->name, x->nlen);
}

static int hj_by_idx(const void *a, const void *b)
{
    const hj_header *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Parse h[0..len): each line "name:value", escapes undone (\n \r \c, and
 * \x for any other x as x; the first unescaped ':' ends the name); a name
 * or value ends at a NUL byte. Kept: lines with a ':' and a name that is
 * UTF-8, the first of each name. */
static void hj_parse(const char *h, size_t len, hj_headers *out)
{
    memset(out, 0, sizeof *out);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += h[i] == '\n';
    out->scratch = xmalloc(len + 1);
    hj_header *all = xmalloc(lines * sizeof *all);
    size_t n = 0, w = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && h[end] != '\n')
            end++;
        char *name = out->scratch + w, *value = NULL;
        for (size_t k = i; k < end; k++) {
            char c = h[k];
            if (c == ':' && !value) {
                value = out->scratch + w;
                continue;
            }
            if (c == '\\' && k + 1 < end) {
                char e = h[++k];
                c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 'c' ? ':' : e;
            }
            out->scratch[w++] = c;
        }
        if (value) {
            hj_header *x = &all[n];
            x->name = name;
            x->nlen = strnlen(name, (size_t)(value - name));
            x->value = value;
            x->vlen = strnlen(value, (size_t)(out->scratch + w - value));
            x->idx = n;
            if (utf8_valid(x->name, x->nlen))
                n++;
        }
        i = end + 1;
    }
    /* The first of each name: sort by (name, order), keep group heads. */
    qsort(all, n, sizeof *all, hj_by_name);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (!kept || !hj_same_name(&all[kept - 1], &all[i]))
            all[kept++] = all[i];
    qsort(all, kept, sizeof *all, hj_by_idx);
    out->list = all;
    out->n = 0;
    for (size_t i = 0; i < kept; i++) {
        if (all[i].nlen == 11 && !memcmp(all[i].name, "sender-role", 11)) {
            out->role = all[i];
            out->has_role = true;
        } else {
            all[out->n++] = all[i];
        }
    }
}

/* The header named name in hs (NULL: none). */
static const hj_header *hj_find(const hj_headers *hs, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < hs->n; i++)
        if (hs->list[i].nlen == n && !memcmp(hs->list[i].name, name, n))
            return &hs->list[i];
    return NULL;
}

/* A tombstone (redact.h) carries x-redacted-by and x-redacted-at (digits)
 * and, unlike the redaction event, no x-redacts: its by and at. Only the
 * server writes x-redact* headers (relay.c strips them from every SEND). */
static bool hj_tombstone(const hj_headers *hs, const hj_header **by, uint64_t *at)
{
    const hj_header *a = hj_find(hs, "x-redacted-at");
    *by = hj_find(hs, "x-redacted-by");
    if (!*by || !a || !a->vlen || a->vlen > 19 || hj_find(hs, "x-redacts"))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < a->vlen; i++) {
        if (a->value[i] < '0' || a->value[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(a->value[i] - '0');
    }
    *at = v;
    return true;
}

static void hj_free(hj_headers *hs)
{
    free(hs->scratch);
    free(hs->list);
}

/* --- API ------------------------------------------------------------------------- */

size_t history_json_message(const envelope *m, char *out)
{
    jw w = { out, 0 };
    jw_lit(&w, "{\"id\":");
    jw_cstr(&w, m->id);
    jw_lit(&w, ",\"room\":");
    jw_cstr(&w, m->room);
    jw_lit(&w, ",\"seq\":");
    jw_int(&w, m->seq);
    jw_lit(&w, ",\"sender\":");
    jw_cstr(&w, m->sender);
    jw_lit(&w, ",\"sender_name\":");
    jw_cstr(&w, m->sender_name);
    jw_lit(&w, ",\"content_type\":");
    if (m->content_type)
        jw_cstr(&w, m->content_type);
    else
        jw_lit(&w, "null");
    jw_lit(&w, ",\"timestamp\":");
    jw_int(&w, m->ts_ms);
    const char *body = m->body ? m->body : "";
    if (utf8_valid(body, m->body_len)) {
        jw_lit(&w, ",\"body\":\"");
        jw_escaped(&w, body, m->body_len);
        jw_lit(&w, "\"");
    } else {
        jw_lit(&w, ",\"body_base64\":");
        jw_base64(&w, (const unsigned char *)body, m->body_len);
    }
    if (m->headers && m->headers_len) {
        hj_headers hs;
        hj_parse(m->headers, m->headers_len, &hs);
        if (hs.has_role) {
            jw_lit(&w, ",\"sender_role\":");
            jw_text(&w, hs.role.value, hs.role.vlen);
        }
        if (hs.n) {
            jw_lit(&w, ",\"headers\":{");
            for (size_t i = 0; i < hs.n; i++) {
                if (i)
                    jw_lit(&w, ",");
                jw_put(&w, "\"", 1);
                jw_escaped(&w, hs.list[i].name, hs.list[i].nlen);
                jw_lit(&w, "\":");
                jw_text(&w, hs.list[i].value, hs.list[i].vlen);
            }
            jw_lit(&w, "}");
        }
        const hj_header *by;
        uint64_t at;
        if (hj_tombstone(&hs, &by, &at)) {
            jw_lit(&w, ",\"redacted\":{\"by\":");
            jw_text(&w, by->value, by->vlen);
            jw_lit(&w, ",\"at\":");
            jw_int(&w, at);
            jw_lit(&w, "}");
        }
        hj_free(&hs);
    }
    jw_lit(&w, "}");
    return w.len;
}

size_t history_json_page(const char *room, const envelope *msgs, size_t n, bool more,
                         char *out)
{
    jw w = { out, 0 };
    jw_lit(&w, "{\"room\":");
    jw_cstr(&w, n ? msgs[0].room : room);
    jw_lit(&w, ",\"messages\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            jw_lit(&w, ",");
        w.len += history_json_message(&msgs[i], out ? out + w.len : NULL);
    }
    jw_lit(&w, more ? "],\"more\":true,\"before\":" : "],\"more\":false,\"before\":");
    if (n)
        jw_cstr(&w, msgs[0].id);
    else
        jw_lit(&w, "null");
    jw_lit(&w, ",\"after\":");
    if (n)
        jw_cstr(&w, msgs[n - 1].id);
    else
        jw_lit(&w, "null");
    jw_lit(&w, "}");
    return w.len;
}

size_t history_json_error(const char *why, char *out)
{
    jw w = { out, 0 };
    jw_lit(&w, "{\"error\":");
    jw_cstr(&w, why);
    jw_lit(&w, "}");
    return w.len;
}
