/* test_loadgen.c — the pure parts of the load generator (tests/load/):
 * the WebSocket client codec, the STOMP frame scanner, the latency
 * histogram, the /status message parser, the connection layer's URL
 * parser, the TLS layer's peer name and CA loading, the Socket.IO packet
 * codec and the reports' JSON pieces. The generator's numbers are only as good as these: a scanner
 * that loses a frame would report loss that is not there, a histogram that
 * misplaces values would misreport p99. Parsers are fed whole and byte by
 * byte; results must match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../load/conn.h"
#include "../load/hist.h"
#include "../load/json.h"
#include "../load/scan.h"
#include "../load/sio.h"
#include "../load/statusmsg.h"
#include "../load/tlsio.h"
#include "../load/ws.h"

/* --- WebSocket ----------------------------------------------------------- */

static void test_ws_handshake(void **state)
{
    (void)state;
    /* RFC 6455 section 1.3's example key and accept value */
    const char key[25] = "dGhlIHNhbXBsZSBub25jZQ==";
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                     "Sec-WebSocket-Protocol: v12.stomp\r\n\r\nextra";
    const char *why = NULL;
    size_t head = strlen(ok) - 5;
    assert_int_equal(ws_response(ok, strlen(ok), key, &why), (ssize_t)head);
    for (size_t n = 0; n < head; n++)
        assert_int_equal(ws_response(ok, n, key, &why), WS_AGAIN);
    const char *bad = "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
    assert_int_equal(ws_response(bad, strlen(bad), key, &why), WS_BAD);
    assert_string_equal(why, "bad Sec-WebSocket-Accept");
    const char *no = "HTTP/1.1 404 Not Found\r\n\r\n";
    assert_int_equal(ws_response(no, strlen(no), key, &why), WS_BAD);

    char req[512];
    size_t n = ws_request(req, sizeof req, "127.0.0.1:1", "/ws", "v12.stomp", key);
    assert_true(n > 0);
    assert_non_null(strstr(req, "GET /ws HTTP/1.1\r\n"));
    assert_non_null(strstr(req, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(strstr(req, "Sec-WebSocket-Protocol: v12.stomp\r\n"));
    assert_int_equal(ws_request(req, 20, "h", "/ws", "p", key), 0);
    /* no offer: no Sec-WebSocket-Protocol line at all (Socket.IO) */
    n = ws_request(req, sizeof req, "127.0.0.1:1", "/socket.io/?" SIO_QUERY, NULL, key);
    assert_true(n > 0);
    assert_null(strstr(req, "Sec-WebSocket-Protocol"));
    assert_non_null(strstr(req, "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"));
    assert_memory_equal(req + n - 4, "\r\n\r\n", 4);
    assert_null(strstr(req, "\r\n\r\n\r\n"));
}

/* Frames as a server sends them: unmasked, 7-bit, 16-bit and 64-bit lengths. */
static size_t server_frame(unsigned char *dst, int op, bool fin, const void *p, size_t len)
{
    size_t n = 0;
    dst[n++] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (len < 126) {
        dst[n++] = (unsigned char)len;
    } else if (len <= 0xffff) {
        dst[n++] = 126;
        dst[n++] = (unsigned char)(len >> 8);
        dst[n++] = (unsigned char)len;
    } else {
        dst[n++] = 127;
        for (int i = 7; i >= 0; i--)
            dst[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(dst + n, p, len);
    return n + len;
}

static void test_ws_parse(void **state)
{
    (void)state;
    size_t sizes[] = { 0, 1, 125, 126, 65535, 65536, 70000 };
    unsigned char *payload = malloc(70000), *wire = malloc(70000 + 14);
    for (size_t i = 0; i < 70000; i++)
        payload[i] = (unsigned char)(i * 7);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = server_frame(wire, WS_TEXT, true, payload, sizes[s]);
        ws_frame f;
        assert_int_equal(ws_parse(wire, n, 1 << 20, &f), (ssize_t)n);
        assert_int_equal(f.opcode, WS_TEXT);
        assert_true(f.fin);
        assert_int_equal(f.len, sizes[s]);
        assert_memory_equal(f.payload, payload, sizes[s]);
        for (size_t cut = 0; cut < n; cut += (n > 300 ? 997 : 1))
            assert_int_equal(ws_parse(wire, cut, 1 << 20, &f), WS_AGAIN);
        if (sizes[s] > 100)
            assert_int_equal(ws_parse(wire, n, 100, &f), WS_BAD);   /* over the limit */
    }
    unsigned char masked[] = { 0x81, 0x80 | 1, 1, 2, 3, 4, 'x' };
    ws_frame f;
    assert_int_equal(ws_parse(masked, sizeof masked, 100, &f), WS_BAD);
    unsigned char rsv[] = { 0xC1, 1, 'x' };
    assert_int_equal(ws_parse(rsv, sizeof rsv, 100, &f), WS_BAD);
    free(payload);
    free(wire);
}

static void test_ws_client_frame(void **state)
{
    (void)state;
    const char *text = "SEND\ndestination:/topic/a\n\nhello\0";
    size_t len = 33;
    unsigned char out[64];
    uint32_t mask = 0xA1B2C3D4u;
    size_t hl = ws_header(out, WS_TEXT, len, mask);
    assert_int_equal(hl, 6);
    assert_int_equal(out[0], 0x81);
    assert_int_equal(out[1], 0x80 | len);
    memcpy(out + hl, text, len);
    ws_mask(out + hl, len, mask);
    assert_memory_not_equal(out + hl, text, len);
    ws_mask(out + hl, len, mask);                 /* masking twice restores */
    assert_memory_equal(out + hl, text, len);
    unsigned char big[16];
    assert_int_equal(ws_header(big, WS_BINARY, 300, 0), 8);
    assert_int_equal(big[1], 0x80 | 126);
    assert_int_equal(ws_header(big, WS_BINARY, 70000, 0), 14);
}

/* --- connection URLs ----------------------------------------------------- */

static void test_conn_url(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        const char *hostport, *path;   /* NULL: refused */
        unsigned port;
        const char *why;
        bool tls;
    } cases[] = {
        { "ws://127.0.0.1:8080/ws", "127.0.0.1:8080", "/ws", 8080, NULL, false },
        { "ws://127.0.0.2:9000", "127.0.0.2:9000", "/", 9000, NULL, false },
        { "ws://localhost:7000/a/b", "localhost:7000", "/a/b", 7000, NULL, false },
        { "ws://127.0.0.1/ws", "127.0.0.1", "/ws", 80, NULL, false },
        { "wss://127.0.0.1:8443/ws", "127.0.0.1:8443", "/ws", 8443, NULL, true },
        { "wss://localhost/ws", "localhost", "/ws", 443, NULL, true },
        { "wss://localhost:9001", "localhost:9001", "/", 9001, NULL, true },
        { "wss://10.0.0.1:443/ws", NULL, NULL, 0, "refusing a non-loopback target", false },
        { "wss:/127.0.0.1:443/ws", NULL, NULL, 0, "only ws:// and wss:// URLs", false },
        { "http://127.0.0.1:80/", NULL, NULL, 0, "only ws:// and wss:// URLs", false },
        { "https://127.0.0.1:443/", NULL, NULL, 0, "only ws:// and wss:// URLs", false },
        { "ws:///ws", NULL, NULL, 0, "bad URL", false },
        { "ws://127.0.0.1:0/ws", NULL, NULL, 0, "bad URL (IPv4 address and port needed)", false },
        { "ws://127.0.0.1:65536/ws", NULL, NULL, 0, "bad URL (IPv4 address and port needed)", false },
        { "ws://example.org:80/ws", NULL, NULL, 0, "bad URL (IPv4 address and port needed)", false },
        { "ws://10.0.0.1:80/ws", NULL, NULL, 0, "refusing a non-loopback target", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conn_url u;
        const char *why = NULL;
        int r = conn_url_parse(cases[i].url, &u, &why);
        if (!cases[i].hostport) {
            assert_int_equal(r, -1);
            assert_string_equal(why, cases[i].why);
            continue;
        }
        assert_int_equal(r, 0);
        assert_string_equal(u.hostport, cases[i].hostport);
        assert_string_equal(u.path, cases[i].path);
        assert_int_equal(ntohs(u.addr.sin_port), cases[i].port);
        assert_int_equal(ntohl(u.addr.sin_addr.s_addr) >> 24, 127);
        assert_int_equal(u.tls, cases[i].tls);
    }
}

/* The name a server's certificate must carry for a URL's host[:port]. */
static void test_tls_peer_name(void **state)
{
    (void)state;
    static const struct {
        const char *hostport, *name;   /* name NULL: refused */
        bool ip;
    } cases[] = {
        { "localhost:8443", "localhost", false },
        { "localhost", "localhost", false },
        { "127.0.0.1:443", "127.0.0.1", true },
        { "127.0.0.1", "127.0.0.1", true },
        { "127.0.0.1.example:1", "127.0.0.1.example", false },
        { "lectern.example.org:443", "lectern.example.org", false },
        { ":443", NULL, false },
        { "", NULL, false },
        { "a-name-longer-than-the-buffer-of-thirty-two:1", NULL, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32] = "untouched";
        bool ip = !cases[i].ip;
        int r = tlsio_peer_name(cases[i].hostport, name, sizeof name, &ip);
        if (!cases[i].name) {
            assert_int_equal(r, -1);
            continue;
        }
        assert_int_equal(r, 0);
        assert_string_equal(name, cases[i].name);
        assert_int_equal(ip, cases[i].ip);
    }
}

/* A CA file that is missing or holds no certificate is refused up front,
 * with the file named; a good one is accepted. */
static void test_tls_ctx(void **state)
{
    (void)state;
    char err[300] = "";
    assert_null(tlsio_ctx_create("/nonexistent/ca.pem", err, sizeof err));
    assert_non_null(strstr(err, "cannot load CA certificates from /nonexistent/ca.pem"));
    char path[] = "/tmp/lectern-test-ca-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    err[0] = '\0';
    assert_null(tlsio_ctx_create(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    unlink(path);
    tlsio_ctx *x = tlsio_ctx_create(NULL, err, sizeof err);   /* the system's store */
    assert_non_null(x);
    tlsio_ctx_destroy(x);
    tlsio_ctx_destroy(NULL);
}

/* --heart-beat CX,CY: two decimal ms values, nothing else. */
static void test_heart_beat_parse(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int r;
        long cx, cy;
    } cases[] = {
        { "0,0", 0, 0, 0 }, { "10000,5000", 0, 10000, 5000 }, { "86400000,1", 0, 86400000, 1 },
        { "", -1, 0, 0 }, { "10000", -1, 0, 0 }, { "10000,", -1, 0, 0 }, { ",10", -1, 0, 0 },
        { "-1,0", -1, 0, 0 }, { "1,2,3", -1, 0, 0 }, { "1, 2", -1, 0, 0 }, { "1,2x", -1, 0, 0 },
        { "86400001,0", -1, 0, 0 }, { "99999999999999999999,0", -1, 0, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long cx = -7, cy = -7;
        assert_int_equal(conn_heart_beat_parse(cases[i].s, &cx, &cy), cases[i].r);
        assert_int_equal(cx, cases[i].r == 0 ? cases[i].cx : -7);
        assert_int_equal(cy, cases[i].r == 0 ? cases[i].cy : -7);
    }
}

/* --- report JSON ---------------------------------------------------------- */

static void test_json(void **state)
{
    (void)state;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    json_str(f, "a\"b\\c\n\x01");
    fputc(' ', f);
    hist h;
    memset(&h, 0, sizeof h);
    json_lat(f, "empty", &h);
    fputc(' ', f);
    hist_add(&h, 1500);
    hist_add(&h, 2500);
    json_lat(f, "two", &h);
    fclose(f);
    assert_string_equal(out,
        "\"a\\\"b\\\\c\\u000a\\u0001\" "
        "\"empty\":{\"count\":0,\"p50\":0.000,\"p99\":0.000,\"p999\":0.000,\"max\":0.000,\"mean\":0.000} "
        "\"two\":{\"count\":2,\"p50\":1.488,\"p99\":2.496,\"p999\":2.496,\"max\":2.500,\"mean\":2.000}");
    free(out);
}

/* --- STOMP scanner --------------------------------------------------------- */

static const char stream[] =
    "\n\r\n"
    "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"
    "MESSAGE\nsubscription:0\nmessage-id:1-1\ndestination:/topic/a\ncontent-length:5\n\nab\0cd\0"
    "MESSAGE\r\nsubscription:0\r\nmessage-id:1-2\r\n\r\nplain body\0"
    "RECEIPT\nreceipt-id:s\n\n\0"
    "ERROR\nmessage:Access refused\n\nbye\0";

static void scan_all(const char *p, size_t n, scan_cmd *cmds, size_t *ncmds, char bodies[][16])
{
    size_t off = 0;
    *ncmds = 0;
    while (off < n) {
        scan_frame f;
        ssize_t r = scan_frame_next(p + off, n - off, 4096, &f);
        assert_true(r > 0);
        if (f.cmd != SCAN_HEARTBEAT) {
            memcpy(bodies[*ncmds], f.body, f.body_len < 15 ? f.body_len : 15);
            bodies[*ncmds][f.body_len < 15 ? f.body_len : 15] = 0;
            cmds[(*ncmds)++] = f.cmd;
        }
        off += (size_t)r;
    }
}

static void test_scan_stream(void **state)
{
    (void)state;
    size_t n = sizeof stream - 1;
    scan_cmd cmds[8];
    char bodies[8][16];
    size_t k;
    scan_all(stream, n, cmds, &k, bodies);
    assert_int_equal(k, 5);
    scan_cmd want[] = { SCAN_CONNECTED, SCAN_MESSAGE, SCAN_MESSAGE, SCAN_RECEIPT, SCAN_ERROR };
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(cmds[i], want[i]);
    assert_memory_equal(bodies[1], "ab\0cd", 5);          /* content-length: NUL inside */
    assert_string_equal(bodies[2], "plain body");
    assert_string_equal(bodies[4], "bye");
}

/* Every prefix of a frame is SCAN_AGAIN; the whole frame is consumed. */
static void test_scan_prefixes(void **state)
{
    (void)state;
    static const char f1[] = "MESSAGE\nsubscription:0\ncontent-length:5\n\nab\0cd\0";
    static const char f2[] = "MESSAGE\r\nmessage-id:1-2\r\n\r\nplain\0";
    static const char f3[] = "RECEIPT\nreceipt-id:s\n\n\0";
    const char *frames[] = { f1, f2, f3 };
    size_t lens[] = { sizeof f1 - 1, sizeof f2 - 1, sizeof f3 - 1 };   /* the literal's own NUL excluded */
    for (size_t i = 0; i < 3; i++) {
        scan_frame f;
        assert_int_equal(scan_frame_next(frames[i], lens[i], 4096, &f), (ssize_t)lens[i]);
        for (size_t cut = 1; cut < lens[i]; cut++)
            assert_int_equal(scan_frame_next(frames[i], cut, 4096, &f), SCAN_AGAIN);
    }
}

static void test_scan_headers_and_limits(void **state)
{
    (void)state;
    const char *fr = "ERROR\nmessage:Access refused\ncontent-type:text/plain\n\n\0";
    scan_frame f;
    assert_true(scan_frame_next(fr, strlen(fr) + 1, 4096, &f) > 0);
    size_t len = 0;
    const char *v = scan_header(&f, "message", &len);
    assert_non_null(v);
    assert_int_equal(len, 14);
    assert_memory_equal(v, "Access refused", 14);
    assert_null(scan_header(&f, "receipt-id", &len));
    /* content-length that is not a number, or a body not ending in NUL */
    const char *bad1 = "MESSAGE\ncontent-length:x\n\n\0";
    assert_int_equal(scan_frame_next(bad1, strlen(bad1) + 1, 4096, &f), SCAN_BAD);
    const char *bad2 = "MESSAGE\ncontent-length:2\n\nabc\0";
    assert_int_equal(scan_frame_next(bad2, strlen(bad2) + 1, 4096, &f), SCAN_BAD);
    /* a frame longer than the limit */
    char big[200];
    memset(big, 'a', sizeof big);
    memcpy(big, "MESSAGE\n\n", 9);
    assert_int_equal(scan_frame_next(big, sizeof big, 100, &f), SCAN_BAD);
}

/* --- Socket.IO ----------------------------------------------------------------- */

static sio_packet sio_ok(const char *s)
{
    sio_packet k;
    assert_int_equal(sio_parse(s, strlen(s), &k), 0);
    return k;
}

static void test_sio_parse(void **state)
{
    (void)state;
    sio_packet k = sio_ok("0{\"sid\":\"a\",\"upgrades\":[],\"pingInterval\":25000}");
    assert_int_equal(k.kind, SIO_OPEN);
    assert_int_equal(k.data_len, strlen(k.data));
    assert_int_equal(k.data[0], '{');
    assert_int_equal(sio_ok("2").kind, SIO_PING);
    assert_int_equal(sio_ok("3").kind, SIO_PONG);
    assert_int_equal(sio_ok("1").kind, SIO_CLOSE);
    assert_int_equal(sio_ok("6").kind, SIO_NOOP);
    assert_int_equal(sio_ok("40{\"sid\":\"x\"}").kind, SIO_CONNECT);
    assert_int_equal(sio_ok("41").kind, SIO_DISCONNECT);
    assert_int_equal(sio_ok("44{\"message\":\"no\"}").kind, SIO_CONNECT_ERROR);

    /* an event with a string argument: its name and body as views */
    k = sio_ok("42[\"m\",\"7:12:0:123456:xxxx\"]");
    assert_int_equal(k.kind, SIO_EVENT);
    assert_int_equal(k.ack, -1);
    assert_int_equal(k.name_len, 1);
    assert_memory_equal(k.name, "m", 1);
    assert_non_null(k.arg);
    assert_int_equal(k.arg_len, 18);
    assert_memory_equal(k.arg, "7:12:0:123456:xxxx", 18);
    /* escapes are skipped over, not ended on; kept as they are */
    k = sio_ok("42[\"a\\\"b\",\"c\\\\\",1]");
    assert_int_equal(k.name_len, 4);
    assert_memory_equal(k.name, "a\\\"b", 4);
    assert_int_equal(k.arg_len, 3);
    assert_memory_equal(k.arg, "c\\\\", 3);
    /* a non-string first argument, an ack id, a namespace */
    k = sio_ok("42[\"m\",{\"x\":1}]");
    assert_null(k.arg);
    k = sio_ok("4217[\"join\",\"r\"]");
    assert_int_equal(k.ack, 17);
    assert_memory_equal(k.arg, "r", 1);
    k = sio_ok("42/admin,3[\"m\",\"b\"]");
    assert_int_equal(k.ack, 3);
    assert_memory_equal(k.arg, "b", 1);
    k = sio_ok("430[]");
    assert_int_equal(k.kind, SIO_ACK);
    assert_int_equal(k.ack, 0);
    k = sio_ok("43123[\"ok\"]");
    assert_int_equal(k.ack, 123);

    /* malformed */
    const char *bad[] = { "", "9", "4", "47", "43[]", "42", "42{}", "42[1,\"m\"]", "42[\"m", "42[\"m\",\"b]",
                          "42[\"m\"" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sio_packet b;
        assert_int_equal(sio_parse(bad[i], strlen(bad[i]), &b), -1);
    }
}

static void test_sio_event(void **state)
{
    (void)state;
    char out[64];
    const char *args[] = { "room-1", "b\"q\\\n" };
    size_t n = sio_event(out, sizeof out, 0, "join", args, 1);
    assert_int_equal(n, strlen("420[\"join\",\"room-1\"]"));
    assert_memory_equal(out, "420[\"join\",\"room-1\"]", n);
    n = sio_event(out, sizeof out, -1, "pub", args, 2);
    const char *want = "42[\"pub\",\"room-1\",\"b\\\"q\\\\\\u000a\"]";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    /* what it writes parses back */
    sio_packet k;
    assert_int_equal(sio_parse(out, n, &k), 0);
    assert_int_equal(k.kind, SIO_EVENT);
    assert_memory_equal(k.arg, "room-1", 6);
    /* 0 at every size short of the packet, the packet from its own size on */
    for (size_t cap = 0; cap < strlen(want); cap++)
        assert_int_equal(sio_event(out, cap, -1, "pub", args, 2), 0);
    assert_int_equal(sio_event(out, strlen(want), -1, "pub", args, 2), strlen(want));
    assert_memory_equal(out, want, strlen(want));
}

/* --- histogram ---------------------------------------------------------------- */

static void test_hist(void **state)
{
    (void)state;
    hist *h = calloc(1, sizeof *h);
    assert_int_equal(hist_quantile(h, 0.5), 0);
    for (uint64_t v = 1; v <= 100000; v++)
        hist_add(h, v);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->max, 100000);
    double qs[] = { 0.5, 0.9, 0.99, 0.999 };
    for (size_t i = 0; i < 4; i++) {
        double want = qs[i] * 100000;
        double got = (double)hist_quantile(h, qs[i]);
        assert_true(got <= want + 1);
        assert_true(got >= want * (1 - 1.0 / 64) - 1);        /* within one bucket */
    }
    assert_int_equal(hist_quantile(h, 1.0), 100000);
    /* small values are exact */
    hist *s = calloc(1, sizeof *s);
    for (int i = 0; i < 99; i++)
        hist_add(s, 3);
    hist_add(s, 120);
    assert_int_equal(hist_quantile(s, 0.5), 3);
    assert_int_equal(hist_quantile(s, 0.99), 3);
    assert_int_equal(hist_quantile(s, 0.999), 120);
    /* merging adds counts */
    hist_merge(s, h);
    assert_int_equal(s->count, 100100);
    assert_int_equal(s->max, 100000);
    /* huge values land in the last bucket, max stays exact */
    hist_add(h, UINT64_MAX / 2);
    assert_true(h->max == UINT64_MAX / 2);
    free(h);
    free(s);
}

/* --- /status messages --------------------------------------------------------- */

typedef struct seen_entries {
    int n;
    char users[8][STATUS_USER_MAX + 1];
    int online[8];
    int64_t since[8], seen[8];
} seen_entries;

static void collect_entry(void *ctx, const status_entry *e)
{
    seen_entries *s = ctx;
    if (s->n >= 8)
        return;
    memcpy(s->users[s->n], e->user, e->user_len + 1);
    s->online[s->n] = e->online;
    s->since[s->n] = e->since;
    s->seen[s->n] = e->seen;
    s->n++;
}

static void test_status_snapshot(void **state)
{
    (void)state;
    const char *snap =
        "{\"type\":\"snapshot\",\"contacts\":[{\"user\":\"u1\",\"online\":true,\"since\":1733333333000,"
        "\"seen\":1733330000000},{\"user\":\"u2\",\"online\":false,\"since\":null,\"seen\":null},"
        " { \"seen\" : 5 , \"extra\":{\"a\":[1,2.5e3,\"x\"]}, \"user\" : \"a\\\"\\u00e9\\ud83d\\ude00\", \"online\" : false } ]}";
    status_msg m;
    seen_entries s = { 0 };
    assert_int_equal(status_msg_parse(snap, strlen(snap), &m, collect_entry, &s), 0);
    assert_int_equal(m.kind, STATUS_SNAPSHOT);
    assert_int_equal(m.entries, 3);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.users[0], "u1");
    assert_int_equal(s.online[0], 1);
    assert_true(s.since[0] == 1733333333000);
    assert_true(s.seen[0] == 1733330000000);
    assert_string_equal(s.users[1], "u2");
    assert_int_equal(s.online[1], 0);
    assert_true(s.since[1] == -1 && s.seen[1] == -1);
    assert_string_equal(s.users[2], "a\"\xc3\xa9\xf0\x9f\x98\x80");   /* escapes and a surrogate pair */
    assert_true(s.seen[2] == 5);
    /* the type may come last; the callbacks run as the entries are met */
    const char *late = "{\"contacts\":[{\"user\":\"x\",\"online\":true}],\"type\":\"snapshot\"}";
    seen_entries s2 = { 0 };
    assert_int_equal(status_msg_parse(late, strlen(late), &m, collect_entry, &s2), 0);
    assert_int_equal(m.kind, STATUS_SNAPSHOT);
    assert_int_equal(s2.n, 1);
    const char *empty = "{\"type\":\"snapshot\",\"contacts\":[]}";
    assert_int_equal(status_msg_parse(empty, strlen(empty), &m, NULL, NULL), 0);
    assert_int_equal(m.entries, 0);
}

static void test_status_changes(void **state)
{
    (void)state;
    status_msg m;
    const char *on = "{\"type\":\"online\",\"user\":\"s1-17\",\"since\":1733333333000}";
    assert_int_equal(status_msg_parse(on, strlen(on), &m, NULL, NULL), 0);
    assert_int_equal(m.kind, STATUS_ONLINE);
    assert_string_equal(m.ev.user, "s1-17");
    assert_int_equal(m.ev.user_len, 5);
    assert_true(m.ev.since == 1733333333000);
    const char *off = " {\"seen\":12,\"user\":\"s1-3\",\"type\":\"offline\"}\n";
    assert_int_equal(status_msg_parse(off, strlen(off), &m, NULL, NULL), 0);
    assert_int_equal(m.kind, STATUS_OFFLINE);
    assert_string_equal(m.ev.user, "s1-3");
    assert_true(m.ev.seen == 12 && m.ev.since == -1);
    const char *other = "{\"type\":\"something-else-entirely\",\"user\":\"u\"}";
    assert_int_equal(status_msg_parse(other, strlen(other), &m, NULL, NULL), 0);
    assert_int_equal(m.kind, STATUS_OTHER);
    /* every prefix of a valid body is refused (never read past the end) */
    for (size_t cut = 0; cut < strlen(on); cut++)
        assert_int_equal(status_msg_parse(on, cut, &m, NULL, NULL), -1);
}

static void test_status_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "[]", "{", "{\"type\":\"online\"}",                       /* change without a user */
        "{\"user\":\"u\"}",                                           /* no type */
        "{\"type\":\"online\",\"user\":\"u\"} x",                     /* trailing bytes */
        "{\"type\":\"snapshot\",\"contacts\":[{\"online\":true}]}",   /* entry without user */
        "{\"type\":\"snapshot\",\"contacts\":[1]}",
        "{\"type\":\"snapshot\",\"contacts\":{}}",
        "{\"type\":\"online\",\"user\":\"u\",\"since\":12x}",
        "{\"type\":\"online\",\"user\":\"u\\ud800\"}",                /* lone surrogate */
        "{\"type\":\"online\",\"user\":\"a\nb\"}",                    /* raw control character */
        "{\"type\":\"online\",\"user\":7}",
        "{\"type\":\"snapshot\",\"contacts\":[{\"user\":\"u\",\"online\":1}]}",
        "{\"type\":\"online\" \"user\":\"u\"}",
    };
    status_msg m;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (status_msg_parse(bad[i], strlen(bad[i]), &m, NULL, NULL) != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(m.err);
    }
    /* a user id of 128 bytes is fine, 129 is not */
    char body[400];
    char id[130];
    memset(id, 'a', 129);
    id[128] = '\0';
    snprintf(body, sizeof body, "{\"type\":\"online\",\"user\":\"%s\"}", id);
    assert_int_equal(status_msg_parse(body, strlen(body), &m, NULL, NULL), 0);
    assert_int_equal(m.ev.user_len, 128);
    id[128] = 'a';
    id[129] = '\0';
    snprintf(body, sizeof body, "{\"type\":\"online\",\"user\":\"%s\"}", id);
    assert_int_equal(status_msg_parse(body, strlen(body), &m, NULL, NULL), -1);
    /* nesting beyond 32 levels in a skipped value */
    char deep[200];
    size_t n = (size_t)snprintf(deep, sizeof deep, "{\"type\":\"online\",\"user\":\"u\",\"x\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(status_msg_parse(deep, n, &m, NULL, NULL), -1);
    assert_string_equal(m.err, "nested too deeply");
}

static void test_status_user_names(void **state)
{
    (void)state;
    char id[64];
    assert_int_equal(status_user_name(id, sizeof id, "s42-%u", 17), 6);
    assert_string_equal(id, "s42-17");
    status_user_name(id, sizeof id, "u%u@x", 0);
    assert_string_equal(id, "u0@x");
    assert_int_equal(status_user_index("s42-17", 6, "s42-%u"), 17);
    assert_int_equal(status_user_index("u0@x", 4, "u%u@x"), 0);
    assert_int_equal(status_user_index("u123456789@x", 12, "u%u@x"), 123456789);
    assert_int_equal(status_user_index("s42-", 4, "s42-%u"), -1);       /* no number */
    assert_int_equal(status_user_index("s42-017", 7, "s42-%u"), -1);    /* leading zero */
    assert_int_equal(status_user_index("s42-1x", 6, "s42-%u"), -1);
    assert_int_equal(status_user_index("s43-1", 5, "s42-%u"), -1);      /* another run's */
    assert_int_equal(status_user_index("u1234567890@x", 13, "u%u@x"), -1);
    assert_int_equal(status_user_index("u1@y", 4, "u%u@x"), -1);
    /* a name round-trips for every n */
    for (unsigned n = 0; n < 100000; n += 7) {
        size_t l = status_user_name(id, sizeof id, "st-%u", n);
        assert_int_equal(status_user_index(id, l, "st-%u"), (long)n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_handshake),
        cmocka_unit_test(test_ws_parse),
        cmocka_unit_test(test_ws_client_frame),
        cmocka_unit_test(test_conn_url),
        cmocka_unit_test(test_tls_peer_name),
        cmocka_unit_test(test_tls_ctx),
        cmocka_unit_test(test_scan_stream),
        cmocka_unit_test(test_scan_prefixes),
        cmocka_unit_test(test_scan_headers_and_limits),
        cmocka_unit_test(test_sio_parse),
        cmocka_unit_test(test_sio_event),
        cmocka_unit_test(test_heart_beat_parse),
        cmocka_unit_test(test_hist),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_status_snapshot),
        cmocka_unit_test(test_status_changes),
        cmocka_unit_test(test_status_malformed),
        cmocka_unit_test(test_status_user_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
