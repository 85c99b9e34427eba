/* config.h — lectern-server's knobs.
 *
 * server_config is a plain value filled by lib/cfg from the table in
 * config.c; every field is a knob listed, with its default and help text, in
 * config/lectern.conf (which `lectern-server --print-config` regenerates).
 * The modules that take a config of their own (registry, bus, history and
 * its MySQL pool) have it embedded here and their knob rows point
 * straight into it: the knob table is the only place defaults are written,
 * and server.c hands each module its part. The few fields that are not
 * knobs (the server id, the bus mode as a flag) are filled in by server.c.
 */
#ifndef LECTERN_SERVER_CONFIG_H
#define LECTERN_SERVER_CONFIG_H

#include "bus.h"
#include "cfg.h"
#include "contacts.h"
#include "history.h"
#include "registry.h"
#include "relay.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct server_config {
    /* [server] */
    int    port;
    char  *listen;            /* IPv4 address or interface name; "" = all */
    char  *id;                /* cluster-unique server id; "" = generated */
    bool   reuseport;         /* share the port with other processes */
    int    drain_timeout_ms;  /* SIGTERM: longest wait for clients and publishes */
    char  *tls_cert;          /* PEM chain served on server.port; "" = no TLS */
    char  *tls_key;           /* its private key */
    char  *tls_min_version;   /* "1.2" | "1.3" */
    char  *tls_ciphers;       /* OpenSSL cipher list for TLS 1.2 */
    /* [http] */
    char  *static_dir;        /* files served at / ("" = none) */
    int    http_max_users;    /* users in one /api/presence?users= lookup */
    int    status_chunk;      /* users per registry call of /status */
    int    http_max_inflight; /* history reads (HTTP and x-since) at once */
    int    http_write_timeout_s; /* a response must be written within this */
    /* [metrics] */
    char  *metrics_listen;    /* host:port of a separate /metrics listener; "" = server.port */
    /* [log] */
    char  *log_level;
    /* [websocket] */
    char  *ws_path;
    size_t ws_rx_buffer;      /* lws per-connection receive buffer */
    int ws_rx_reads;          /* most reads of one connection per loop iteration */
    size_t ws_write_max;      /* bytes per WebSocket message we write */
    bool   ws_tcp_nodelay;    /* TCP_NODELAY on established WebSockets */
    int    ws_write_delay_ms; /* MESSAGEs to a connection written at most this often; 0 off */
    char  *ws_allowed_origins; /* comma-separated scheme://host[:port]; "" = any */
    /* [stomp] */
    size_t max_frame;
    int    max_headers;
    size_t max_header_line;
    int    max_room_name;
    int    max_subscriptions;
    int    max_transactions;
    size_t max_transaction_bytes;
    size_t max_pending;       /* outbound bytes queued before a slow consumer is dropped */
    int    connect_timeout_ms;
    int    frame_timeout_ms;  /* a started frame must complete within this */
    int    drip_pieces;       /* small pieces of one frame before reads are paced; 0 off */
    int    max_frame_pieces;  /* WebSocket frames one STOMP frame may span; 0 off */
    int    idle_timeout_ms;   /* no input for this long (no heart-beats): close; 0 off */
    /* [auth] */
    char  *auth_mode;         /* none | insecure-dev | jwt */
    char  *auth_keys;         /* key file (jwt) */
    int    auth_skew_s;
    char  *auth_issuer;       /* iss every token must carry ("" = not checked) */
    char  *auth_audience;     /* aud every token must name ("" = not checked) */
    bool   auth_student_send; /* students may SEND (else read-only everywhere) */
    char  *auth_instructor_rooms; /* patterns where only instructors/admins SEND */
    /* [limits] */
    double send_rate;         /* SENDs per second per connection; 0 off */
    int    send_burst;
    size_t send_bytes_rate;   /* frame bytes per second per connection; 0 off */
    size_t send_bytes_burst;
    double frame_rate;        /* frames (any command) per second per connection; 0 off */
    int    frame_burst;
    size_t conn_memory;       /* server memory one connection may make us hold */
    int    max_conns_per_ip;  /* 0 off */
    char  *trusted_proxies;   /* addresses/CIDRs whose X-Forwarded-For is believed */
    int    handshake_timeout_s;
    /* [redis] and [registry]; server_id is the server's, set at start */
    registry_config registry;
    /* [bus], and the storage.* knobs of the publishing side; dynamic and
     * server_id are set at start (dynamic from bus_mode) */
    bus_config bus;
    char  *bus_mode;          /* fanout | dynamic */
    /* [mysql] (the read pool) and the history knobs of the reads */
    history_config history;
    /* [history] */
    int    history_default_limit;
    int    history_max_limit;
    int    resume_page;
    /* [relay]; server_id is set at start */
    relay_config relay;
    /* [contacts] */
    contacts_config contacts;
    /* [api] */
    char  *api_keys;          /* comma-separated server-to-server keys; "" = the API is off */
    size_t api_max_body;      /* most bytes of a request body */
    int    api_page_max;      /* rooms in one GET /api/rooms page */
    int    api_broadcast_max; /* rooms in one POST /api/broadcast */
    int    api_idempotency_window_s; /* how long an idempotency key is remembered */
    /* [moderation] */
    int    mod_max_duration_s;   /* longest ban or mute */
    int    mod_max_reason;       /* bytes of a kick's, ban's or mute's reason */
    /* [heartbeat] */
    int    hb_send_ms;
    int    hb_recv_ms;
    double hb_grace;
    int    hz;
} server_config;

extern const cfg_knob server_knobs[];

/* What the knob table cannot check alone: the forms of bus.host and
 * redis.sentinels (lib/addrlist), backoff bounds, limits.conn_memory against
 * the frame and output limits it must hold. Returns 0 or -1 with the reason
 * in err. */
int server_config_check(const server_config *c, char *err, size_t errlen);

/* The rule on auth.mode=none: allowed only when the server listens on
 * loopback alone (`loopback`: what server.listen resolves to, or what was
 * bound, is in 127.0.0.0/8). Returns 0, or -1 with the reason, naming the
 * knobs that lift it, in err. Pure. */
int server_config_check_exposure(const server_config *c, bool loopback, char *err,
                                 size_t errlen);

/* The header printed at the top of the generated config file. */
extern const char server_config_title[];

#endif
