/* sio.c — Socket.IO over Engine.IO 4 packets for the load generator (see
 * sio.h).
 *
 * Engine.IO frames a session: on the WebSocket transport every message is
 * one packet whose first character is its type (0 open, 1 close, 2 ping,
 * 3 pong, 4 message, 6 noop). A message packet carries one Socket.IO packet:
 * its own type digit (0 connect, 1 disconnect, 2 event, 3 ack, 4 connect
 * error, 5/6 binary), then an optional "/namespace," (absent for "/"), an
 * optional ack id in decimal, and JSON data. So "42[\"m\",\"x\"]" is event m
 * with argument "x", "420[\"join\",\"r\"]" the same asking for ack 0, and
 * "430[]" that ack.
 *
 * Only what the generator needs is decoded: the kind, the ack id, and for
 * an event its name and first argument when that is a string (message
 * bodies are). Strings stay JSON-escaped: the generator's names and bodies
 * never need escapes, and a view is free where unescaping is a copy.
 * Nothing is allocated; the caller's bytes are not changed.
 */
#include "sio.h"

#include <stdio.h>
#include <string.h>

/* The JSON string starting at p[0] == '"' within p[0..n): its content
 * (escapes kept) in *s and *len; returns the bytes up to and including the
 * closing quote, or 0 if there is none. */
static size_t json_string(const char *p, size_t n, const char **s, size_t *len)
{
    if (n == 0 || p[0] != '"')
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] == '\\') {
            i++;
            continue;
        }
        if (p[i] == '"') {
            *s = p + 1;
            *len = i - 1;
            return i + 1;
        }
    }
    return 0;
}

/* An event's data: ["name", first, ...]. */
static int parse_event(sio_packet *out)
{
    const char *p = out->data;
    size_t n = out->data_len;
    if (n < 2 || p[0] != '[' || p[n - 1] != ']')
        return -1;
    size_t used = json_string(p + 1, n - 1, &out->name, &out->name_len);
    if (used == 0)
        return -1;
    size_t i = 1 + used;
    if (i < n && p[i] == ',' && i + 1 < n && p[i + 1] == '"') {
        if (json_string(p + i + 1, n - i - 1, &out->arg, &out->arg_len) == 0)
            return -1;
    }
    return 0;
}

int sio_parse(const char *p, size_t n, sio_packet *out)
{
    memset(out, 0, sizeof *out);
    out->ack = -1;
    if (n == 0)
        return -1;
    switch (p[0]) {
    case '0': out->kind = SIO_OPEN; break;
    case '1': out->kind = SIO_CLOSE; break;
    case '2': out->kind = SIO_PING; break;
    case '3': out->kind = SIO_PONG; break;
    case '4': break;
    case '5': out->kind = SIO_OTHER; break;   /* upgrade: only after polling */
    case '6': out->kind = SIO_NOOP; break;
    default: return -1;
    }
    if (p[0] != '4') {
        out->data = p + 1;
        out->data_len = n - 1;
        return 0;
    }
    if (n < 2)
        return -1;
    switch (p[1]) {
    case '0': out->kind = SIO_CONNECT; break;
    case '1': out->kind = SIO_DISCONNECT; break;
    case '2': out->kind = SIO_EVENT; break;
    case '3': out->kind = SIO_ACK; break;
    case '4': out->kind = SIO_CONNECT_ERROR; break;
    case '5': case '6': out->kind = SIO_OTHER; break;   /* binary event, binary ack */
    default: return -1;
    }
    size_t i = 2;
    if (i < n && p[i] == '/') {                       /* a namespace other than "/" */
        const char *comma = memchr(p + i, ',', n - i);
        i = comma ? (size_t)(comma - p) + 1 : n;
    }
    if (out->kind == SIO_EVENT || out->kind == SIO_ACK) {
        size_t d = i;
        long id = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - d < 12)
            id = id * 10 + (p[i++] - '0');
        if (i > d)
            out->ack = id;
        else if (out->kind == SIO_ACK)
            return -1;
    }
    out->data = p + i;
    out->data_len = n - i;
    if (out->kind == SIO_EVENT)
        return parse_event(out);
    return 0;
}

/* Append s as a JSON string at dst[*at..cap); returns -1 when it does not fit. */
static int put_string(char *dst, size_t cap, size_t *at, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *at;
    if (o + 1 > cap)
        return -1;
    dst[o++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        size_t need = ch == '"' || ch == '\\' ? 2 : ch < 0x20 ? 6 : 1;
        if (o + need > cap)
            return -1;
        if (need == 2) {
            dst[o++] = '\\';
            dst[o++] = (char)ch;
        } else if (need == 6) {
            memcpy(dst + o, "\\u00", 4);
            dst[o + 4] = hex[ch >> 4];
            dst[o + 5] = hex[ch & 15];
            o += 6;
        } else {
            dst[o++] = (char)ch;
        }
    }
    if (o + 1 > cap)
        return -1;
    dst[o++] = '"';
    *at = o;
    return 0;
}

size_t sio_event(char *dst, size_t cap, long ack, const char *name, const char *const *args, int nargs)
{
    int h = ack >= 0 ? snprintf(dst, cap, "42%ld[", ack) : snprintf(dst, cap, "42[");
    if (h < 0 || (size_t)h >= cap)
        return 0;
    size_t at = (size_t)h;
    if (put_string(dst, cap, &at, name) != 0)
        return 0;
    for (int k = 0; k < nargs; k++) {
        if (at >= cap)
            return 0;
        dst[at++] = ',';
        if (put_string(dst, cap, &at, args[k]) != 0)
            return 0;
    }
    if (at >= cap)
        return 0;
    dst[at++] = ']';
    return at;
}
